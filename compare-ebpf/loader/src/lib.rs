//! `wasmfw-ebpf`: loads the eBPF (XDP) twins of the wasmfw filters
//! (`compare-ebpf/ebpf`), fills their maps from a policy's `[params]`, pins
//! them so they outlive the loading process, reads their counters and runs
//! them on single packets with BPF_PROG_TEST_RUN.
//!
//! The objects are found at run time (see [`object_dir`]), not embedded:
//! the root workspace builds with a stable toolchain, while the objects need
//! Debian's rustc + bpf-linker (`cargo xtask build-ebpf`). Embedding them with
//! `include_bytes_aligned!` would make every `cargo build` depend on that
//! second toolchain; a run-time lookup keeps `cargo build` working and gives
//! a one-line "build it with `cargo xtask build-ebpf`" error instead.

mod bench;
pub mod capture;
mod logs;
mod params;
pub mod rawmap;
mod run;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::Array;
use aya::programs::{ProgramError, Xdp};
use aya::{Ebpf, EbpfLoader, VerifierLogLevel};
/// The shared map formats (also the typed keys of `wasmfw map`).
pub use wasmfw_ebpf_common as common;
use wasmfw_policy::{Param, Verdict};

pub use aya::programs::XdpMode as Mode;
pub use bench::{bench_empty, load_empty};
pub use common::{COMMON_COUNTERS, DNS_COUNTERS, ICMP_COUNTERS, L4_COUNTERS};
pub use logs::{program_logger, LogLine, LogReader, StderrLog};
pub use params::cidr_key;
use params::configure;
pub use run::{counters_of_prog, BPF_NAME_MAX};

/// XDP verdicts as BPF_PROG_TEST_RUN returns them.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// The verdict an XDP action stands for (XDP_DROP or XDP_PASS; `None` for
/// the others, which no twin or bridge returns).
pub fn xdp_verdict(action: u32) -> Option<Verdict> {
    match action {
        XDP_PASS => Some(Verdict::Pass),
        XDP_DROP => Some(Verdict::Drop),
        _ => None,
    }
}

/// One of the eBPF twins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Twin {
    IcmpDrop,
    L4Dos,
    DnsBlock,
}

impl Twin {
    pub const ALL: [Twin; 3] = [Twin::IcmpDrop, Twin::L4Dos, Twin::DnsBlock];

    pub fn name(self) -> &'static str {
        match self {
            Twin::IcmpDrop => "icmp_drop",
            Twin::L4Dos => "l4_dos",
            Twin::DnsBlock => "dns_block",
        }
    }

    pub fn from_name(name: &str) -> Option<Twin> {
        Twin::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The twin of a filter named by a policy: `icmp_drop`, or a path whose
    /// file stem is one (`target/filters/icmp_drop.wasm`).
    pub fn for_filter(filter: &str) -> Result<Twin> {
        let stem = Path::new(filter).file_stem().and_then(|s| s.to_str()).unwrap_or(filter);
        Twin::from_name(stem).ok_or_else(|| {
            anyhow!(
                "unknown filter '{filter}': the ebpf engine has twins of {} only",
                Twin::ALL.map(|t| t.name()).join(", ")
            )
        })
    }

    /// The maps the program itself writes (per-source state such as token
    /// buckets), which `load --replace --keep-maps` carries over; every
    /// other map is configuration the loader fills from the policy, or a
    /// counter.
    pub fn state_maps(self) -> &'static [&'static str] {
        match self {
            Twin::IcmpDrop | Twin::DnsBlock => &[],
            Twin::L4Dos => &["syn_buckets", "udp_buckets"],
        }
    }

    /// Counter names, `packets`, `pass`, `drop` first.
    pub fn counters(self) -> Vec<&'static str> {
        let own: &[&str] = match self {
            Twin::IcmpDrop => &ICMP_COUNTERS,
            Twin::L4Dos => &L4_COUNTERS,
            Twin::DnsBlock => &DNS_COUNTERS,
        };
        COMMON_COUNTERS.iter().chain(own).copied().collect()
    }
}

/// Where the eBPF objects are: `$WASMFW_EBPF_DIR`, else `target/ebpf` of
/// this source tree, else `../ebpf` next to the running executable
/// (`target/debug/wasmfw` -> `target/ebpf`), else
/// `/usr/local/lib/wasmfw/ebpf`.
pub fn object_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("WASMFW_EBPF_DIR") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ebpf"));
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1).take(3) {
            dirs.push(anc.join("ebpf"));
        }
    }
    dirs.push(PathBuf::from("/usr/local/lib/wasmfw/ebpf"));
    dirs
}

/// The object file of a program (`icmp_drop` -> `icmp_drop.o`).
pub fn object_path(prog: &str) -> Result<PathBuf> {
    let dirs = object_dirs();
    for d in &dirs {
        let p = d.join(format!("{prog}.o"));
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "eBPF object {prog}.o not found in {} (build it with `cargo xtask build-ebpf`)",
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

/// True if the objects are built (tests skip otherwise).
pub fn objects_built() -> bool {
    Twin::ALL.iter().all(|t| object_path(t.name()).is_ok())
}

/// aya-log level compiled into the programs: `$WASMFW_EBPF_LOG` = off
/// (default: logging costs a ring-buffer write per logged packet), error,
/// warn, info, debug, trace.
fn log_level() -> u8 {
    match std::env::var("WASMFW_EBPF_LOG").as_deref() {
        Ok("error") => 1,
        Ok("warn") => 2,
        Ok("info") => 3,
        Ok("debug") => 4,
        Ok("trace") => 5,
        _ => 0,
    }
}

fn loader() -> EbpfLoader<'static> {
    let mut l = EbpfLoader::new();
    let level: &'static u8 = Box::leak(Box::new(log_level()));
    l.override_global("AYA_LOG_LEVEL", level, false);
    l
}

/// A twin loaded into the kernel (program verified, maps filled), not yet
/// attached.
pub struct Loaded {
    pub twin: Twin,
    pub ebpf: Ebpf,
}

/// Loads a twin with the given policy parameters (`[params]`; empty =
/// defaults of docs/filters.md), enforcing its verdicts.
pub fn load(twin: Twin, params: &[(String, Param, usize)]) -> Result<Loaded> {
    load_in_mode(twin, params, false)
}

/// [`load`], in audit mode if `audit` (every packet passes; drop verdicts
/// are counted in `drop` and `audit_would_drop`).
pub fn load_in_mode(twin: Twin, params: &[(String, Param, usize)], audit: bool) -> Result<Loaded> {
    let path = object_path(twin.name())?;
    let mut ebpf = loader().load_file(&path).with_context(|| format!("loading {}", path.display()))?;
    configure(twin, &mut ebpf, params)?;
    let mut run: Array<_, common::RunConfig> =
        Array::try_from(ebpf.map_mut("run_cfg").ok_or_else(|| {
            anyhow!("{} has no map run_cfg (rebuild it with `cargo xtask build-ebpf`)", path.display())
        })?)?;
    run.set(0, common::RunConfig { audit: audit as u32 }, 0)?;
    let prog: &mut Xdp = ebpf
        .program_mut(twin.name())
        .ok_or_else(|| anyhow!("{} has no program {}", path.display(), twin.name()))?
        .try_into()?;
    prog.load().map_err(|e| load_error(twin.name(), e))?;
    Ok(Loaded { twin, ebpf })
}

fn load_error(name: &str, e: ProgramError) -> anyhow::Error {
    match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            if std::env::var_os("WASMFW_VERIFIER_LOG").is_some() {
                eprintln!("{log}");
            }
            let stats = ["verification time", "stack depth", "processed "];
            let last: Vec<&str> =
                log.lines().filter(|l| !l.trim().is_empty() && !stats.iter().any(|s| l.starts_with(s))).collect();
            let tail = last[last.len().saturating_sub(2)..].join(" | ");
            anyhow!("the verifier rejected {name}: {io_error}: {tail}")
        }
        e => anyhow!("loading {name}: {e}"),
    }
}

/// Loads one of the example programs the verifier rejects
/// (`dns_block_pktlen`, `dns_block_ptr`): `Ok(log)` = rejected, with the
/// verifier's log; `Err` = it loaded (or something else failed).
pub fn load_rejected_example(prog: &str) -> Result<(std::io::Error, String)> {
    let path = object_path(prog)?;
    let mut l = loader();
    l.verifier_log_level(VerifierLogLevel::DEBUG | VerifierLogLevel::STATS);
    let mut ebpf = l.load_file(&path).with_context(|| format!("loading {}", path.display()))?;
    let p: &mut Xdp = ebpf.program_mut(prog).ok_or_else(|| anyhow!("no program {prog}"))?.try_into()?;
    match p.load() {
        Ok(()) => bail!("the verifier accepted {prog}"),
        Err(ProgramError::LoadError { io_error, verifier_log }) => Ok((io_error, verifier_log.to_string())),
        Err(e) => Err(anyhow!("loading {prog}: {e}")),
    }
}
