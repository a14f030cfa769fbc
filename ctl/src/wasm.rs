//! The userspace host of the Wasm engine: what `check`, `replay` and the
//! benchmarks run. Same engine, same limits as the kernel; the clock is the
//! capture timestamp so replays are deterministic.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use wasmfw_engine::{abi, Env, Filter, Instance, Limits, LoadError};
use wasmfw_policy::Policy;

/// Clock and log sink for filters run in userspace.
pub struct UserEnv {
    pub now: AtomicU64,
    name: String,
    quiet: bool,
}

impl Env for UserEnv {
    fn now_ns(&self) -> u64 {
        self.now.load(Relaxed)
    }
    fn log(&self, level: i32, msg: &[u8]) {
        if self.quiet {
            return;
        }
        let level = match level {
            abi::LOG_ERROR => "error",
            abi::LOG_WARN => "warn",
            abi::LOG_INFO => "info",
            _ => "debug",
        };
        eprintln!("[{}] {level}: {}", self.name, String::from_utf8_lossy(msg));
    }
}

/// A filter loaded in userspace with one instance.
pub struct Loaded {
    pub filter: Filter,
    pub instance: Instance,
    pub env: Arc<UserEnv>,
}

pub fn limits(policy: &Policy) -> Limits {
    // Replay shows the filter's own verdicts, whatever the policy's mode.
    Limits { audit: false, ..policy.limits() }
}

/// Reads the policy's module and loads it; errors name the file, and a
/// rejected parameter names the policy line it came from.
pub fn load(policy: &Policy, quiet: bool) -> Result<Loaded> {
    let wasm = std::fs::read(&policy.wasm).with_context(|| format!("{}", policy.wasm.display()))?;
    let env = Arc::new(UserEnv { now: AtomicU64::new(0), name: policy.filter.clone(), quiet });
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    match wasmfw_engine::load(&wasm, limits(policy), &policy.config_bytes(), 1, env.clone(), seed) {
        Ok((filter, mut instances)) => {
            let instance = instances.pop().ok_or_else(|| anyhow!("engine returned no instance"))?;
            Ok(Loaded { filter, instance, env })
        }
        Err(e) => Err(anyhow!(describe(policy, &e))),
    }
}

/// One line for a load error; a filter's `param <key>: why` points at the policy line.
pub fn describe(policy: &Policy, e: &LoadError) -> String {
    if let LoadError::Init { message, .. } = e {
        if let Some(rest) = message.strip_prefix("param ") {
            if let Some((key, why)) = rest.split_once(':') {
                if let (Some(src), Some(line)) = (&policy.source, policy.param_line(key)) {
                    return format!(
                        "{}:{line}: key 'params.{key}': filter {} rejected it:{why}",
                        src.display(),
                        policy.filter
                    );
                }
                return format!("{}: parameter '{key}': filter {} rejected it:{why}", policy.origin(), policy.filter);
            }
        }
    }
    format!("{}: {e}", policy.wasm.display())
}
