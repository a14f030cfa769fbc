//! wasmfw policies: one TOML file names a filter, where it runs, the limits
//! it runs under and its parameters. Every error names the file, the line
//! and the key, on one line, the way a compiler would.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// Where a filter is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Xdp,
    Netfilter,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Xdp => "xdp",
            Hook::Netfilter => "netfilter",
        }
    }
}

/// A packet verdict; policies and `wasmfw` output spell it [`Verdict::as_str`].
pub use wasmfw_abi::Verdict;

/// How a policy spells a [`Verdict`] (serde's mirror of the ABI's enum).
#[derive(Deserialize)]
#[serde(remote = "Verdict", rename = "Verdict", rename_all = "lowercase")]
enum VerdictDef {
    Pass,
    Drop,
}

/// `on_fault` as read from TOML.
#[derive(Deserialize)]
#[serde(transparent)]
struct RawVerdict(#[serde(with = "VerdictDef")] Verdict);

/// What a filter's verdicts do: `enforce` drops what the filter drops;
/// `audit` passes every packet and counts the drops it would have made
/// (`audit_would_drop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// One filter parameter from `[params]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Int(i64),
    Bool(bool),
    Str(String),
    List(Vec<String>),
}

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The policy file, if the policy came from one.
    pub source: Option<PathBuf>,
    /// Filter name as written (`icmp_drop`), or the file stem of a bare .wasm.
    pub filter: String,
    /// The resolved `.wasm` file.
    pub wasm: PathBuf,
    pub hook: Hook,
    /// `iface = "eth0"` or `iface = ["eth0", "eth1"]`: one filter instance
    /// set per interface (each attachment loads the filter once).
    pub ifaces: Vec<String>,
    pub fuel: u64,
    pub memory_limit: u64,
    pub on_fault: Verdict,
    /// `mode = "audit"`: pass every packet, count would-be drops.
    pub mode: Mode,
    /// Parameters in file order, with the line each is on.
    pub params: Vec<(String, Param, usize)>,
}

pub const DEFAULT_FUEL: u64 = 100_000;
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 20;
use wasmfw_uapi as uapi;
/// The kernel's ceiling (`WASMFW_MAX_FUEL`, about 2 ms of one CPU per
/// packet: crate wasmfw-uapi), so `check` refuses what `load` would.
pub const MAX_FUEL: u64 = uapi::MAX_FUEL;
pub const MAX_MEMORY_LIMIT: u64 = uapi::MAX_MEMORY_LIMIT;
const WASM_PAGE: u64 = 65_536;

/// A policy error: `file:line: key 'k': message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "key '{key}': ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for PolicyError {}

/// `iface`: one name or a list of names.
#[derive(Deserialize)]
#[serde(untagged)]
enum Ifaces {
    One(String),
    Many(Vec<String>),
}

/// Interfaces one policy may name.
pub const MAX_IFACES: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    filter: Spanned<String>,
    hook: Option<Spanned<Hook>>,
    iface: Option<Spanned<Ifaces>>,
    fuel: Option<Spanned<i64>>,
    memory_limit: Option<Spanned<i64>>,
    on_fault: Option<Spanned<RawVerdict>>,
    mode: Option<Spanned<Mode>>,
    params: Option<toml::Table>,
}

/// Where filters are looked up when a policy names one without a path:
/// `$WASMFW_FILTER_DIR`, then `target/filters` of the repository the policy
/// lives in, then `/usr/local/lib/wasmfw/filters`.
pub fn filter_search_path(policy_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("WASMFW_FILTER_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    for anc in policy_dir.ancestors() {
        let cand = anc.join("target/filters");
        if cand.is_dir() {
            dirs.push(cand);
            break;
        }
    }
    dirs.push(PathBuf::from("/usr/local/lib/wasmfw/filters"));
    dirs
}

impl Policy {
    /// A policy for a bare `.wasm` file: defaults everywhere, no parameters.
    pub fn for_wasm(path: &Path) -> Policy {
        Policy {
            source: None,
            filter: path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "filter".into()),
            wasm: path.to_path_buf(),
            hook: Hook::Xdp,
            ifaces: Vec::new(),
            fuel: DEFAULT_FUEL,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            on_fault: Verdict::Pass,
            mode: Mode::Enforce,
            params: Vec::new(),
        }
    }

    /// Reads a policy file or, for a `.wasm` path, the defaults around it.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        if path.extension().is_some_and(|e| e == "wasm") {
            if !path.is_file() {
                return Err(PolicyError {
                    file: path.display().to_string(),
                    line: None,
                    key: None,
                    message: "no such file".into(),
                });
            }
            return Ok(Policy::for_wasm(path));
        }
        Policy::parse(path, &read(path)?)
    }

    /// Reads and checks a policy file whose filter need not be on disk
    /// (the eBPF engine runs the filter's twin, not its .wasm): everything
    /// is checked but the `.wasm`'s existence; `wasm` is where it would be.
    pub fn load_without_wasm(path: &Path) -> Result<Policy, PolicyError> {
        Policy::parse_inner(path, &read(path)?, false)
    }

    /// Parses policy text; `path` names it in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
        Policy::parse_inner(path, text, true)
    }

    fn parse_inner(path: &Path, text: &str, need_wasm: bool) -> Result<Policy, PolicyError> {
        let file = path.display().to_string();
        let err = |span: Option<std::ops::Range<usize>>, key: Option<String>, message: String| {
            let line = span.map(|s| line_of(text, s.start));
            let key = key.or_else(|| line.and_then(|l| key_on_line(text, l)));
            PolicyError { file: file.clone(), line, key, message }
        };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| err(e.span(), None, e.message().trim().to_string()))?;

        let dir = path.parent().unwrap_or(Path::new("."));
        let name = raw.filter.get_ref().clone();
        let wasm = match resolve_filter(dir, &name) {
            Ok(p) => p,
            Err(Unresolved::Missing(p)) if !need_wasm => p,
            Err(Unresolved::Missing(_)) | Err(Unresolved::Bad) => {
                let m = resolve_error(dir, &name);
                return Err(err(Some(raw.filter.span()), Some("filter".into()), m));
            }
        };

        let hook = raw.hook.map(|h| *h.get_ref()).unwrap_or(Hook::Xdp);
        let ifaces = match raw.iface {
            Some(s) => {
                let list = match s.get_ref() {
                    Ifaces::One(v) => vec![v.clone()],
                    Ifaces::Many(l) => l.clone(),
                };
                if list.is_empty() || list.len() > MAX_IFACES {
                    return Err(err(
                        Some(s.span()),
                        Some("iface".into()),
                        format!("give 1 to {MAX_IFACES} interface names"),
                    ));
                }
                for (i, v) in list.iter().enumerate() {
                    if v.is_empty() || v.len() > 15 || v.contains(['/', ' ', '\0']) {
                        return Err(err(
                            Some(s.span()),
                            Some("iface".into()),
                            format!("'{v}' is not a valid interface name (1-15 characters, no '/' or space)"),
                        ));
                    }
                    if list[..i].contains(v) {
                        return Err(err(Some(s.span()), Some("iface".into()), format!("'{v}' is named twice")));
                    }
                }
                list
            }
            None => Vec::new(),
        };
        let fuel = match raw.fuel {
            Some(f) => {
                let v = *f.get_ref();
                if v < 1 || v as u64 > MAX_FUEL {
                    return Err(err(
                        Some(f.span()),
                        Some("fuel".into()),
                        format!("{v} is out of range 1..={MAX_FUEL}"),
                    ));
                }
                v as u64
            }
            None => DEFAULT_FUEL,
        };
        let memory_limit = match raw.memory_limit {
            Some(m) => {
                let v = *m.get_ref();
                if v < WASM_PAGE as i64 || v as u64 > MAX_MEMORY_LIMIT || !(v as u64).is_multiple_of(WASM_PAGE) {
                    return Err(err(
                        Some(m.span()),
                        Some("memory_limit".into()),
                        format!("{v} must be a multiple of 65536 (one Wasm page) between 65536 and {MAX_MEMORY_LIMIT}"),
                    ));
                }
                v as u64
            }
            None => DEFAULT_MEMORY_LIMIT,
        };
        let on_fault = raw.on_fault.map(|v| v.get_ref().0).unwrap_or(Verdict::Pass);
        let mode = raw.mode.map(|v| *v.get_ref()).unwrap_or_default();

        let mut params = Vec::new();
        if let Some(table) = raw.params {
            for (key, value) in table {
                let line = find_param_line(text, &key);
                let perr = |m: String| PolicyError {
                    file: file.clone(),
                    line,
                    key: Some(format!("params.{key}")),
                    message: m,
                };
                if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(perr("parameter names are letters, digits and '_'".into()));
                }
                params.push((key.clone(), to_param(value).map_err(perr)?, line.unwrap_or(0)));
            }
        }
        // A filter given as a path is named by its file stem, like a bare .wasm.
        let filter = wasm.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or(name);
        let policy = Policy {
            source: Some(path.to_path_buf()),
            filter,
            wasm,
            hook,
            ifaces,
            fuel,
            memory_limit,
            on_fault,
            mode,
            params,
        };
        let len = policy.config_bytes().len();
        if len > wasmfw_abi::MAX_CONFIG_LEN {
            return Err(err(
                None,
                Some("params".into()),
                format!("parameters encode to {len} bytes, more than {}", wasmfw_abi::MAX_CONFIG_LEN),
            ));
        }
        Ok(policy)
    }

    /// What the engine applies to this policy's filter (fuel, memory, fault
    /// verdict, audit mode): the one place a policy becomes engine limits,
    /// for `wasmfw load` (the kernel's `Load`), replay and the bench.
    pub fn limits(&self) -> wasmfw_engine::Limits {
        wasmfw_engine::Limits {
            fuel: self.fuel,
            memory_limit: self.memory_limit,
            on_fault: self.on_fault,
            audit: self.mode == Mode::Audit,
        }
    }

    /// The parameters in the ABI v1 text encoding (`key=value\n`).
    pub fn config_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        for (key, value, _) in &self.params {
            out.push_str(key);
            out.push('=');
            match value {
                Param::Int(i) => out.push_str(&i.to_string()),
                Param::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Param::Str(s) => out.push_str(s),
                Param::List(l) => out.push_str(&l.join(",")),
            }
            out.push('\n');
        }
        out.into_bytes()
    }

    /// Finds the policy line a filter's complaint about `param <key>` is about.
    pub fn param_line(&self, key: &str) -> Option<usize> {
        self.params.iter().find(|(k, _, _)| k == key).map(|(_, _, l)| *l).filter(|l| *l > 0)
    }

    /// Where this policy is named in messages.
    pub fn origin(&self) -> String {
        self.source.as_ref().unwrap_or(&self.wasm).display().to_string()
    }

    /// Looks up a parameter by name.
    pub fn param(&self, key: &str) -> Option<&Param> {
        self.params.iter().find(|(k, _, _)| k == key).map(|(_, v, _)| v)
    }
}

/// Why a filter name did not resolve: a well-formed name whose file is
/// missing (with where it would be), or a malformed one.
enum Unresolved {
    Missing(PathBuf),
    Bad,
}

/// A policy file's text, or an error naming the file.
fn read(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|e| PolicyError {
        file: path.display().to_string(),
        line: None,
        key: None,
        message: e.to_string(),
    })
}

fn resolve_filter(dir: &Path, name: &str) -> Result<PathBuf, Unresolved> {
    if name.contains('/') || name.ends_with(".wasm") {
        let p = dir.join(name);
        return if p.is_file() { Ok(p) } else { Err(Unresolved::Missing(p)) };
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(Unresolved::Bad);
    }
    let dirs = filter_search_path(dir);
    for d in &dirs {
        let p = d.join(format!("{name}.wasm"));
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Unresolved::Missing(dirs.first().map(|d| d.join(format!("{name}.wasm"))).unwrap_or_default()))
}

fn resolve_error(dir: &Path, name: &str) -> String {
    if name.contains('/') || name.ends_with(".wasm") {
        return format!("filter file {} does not exist", dir.join(name).display());
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return format!("'{name}' is not a filter name");
    }
    let list: Vec<String> = filter_search_path(dir).iter().map(|d| d.display().to_string()).collect();
    format!("filter '{name}' not found in {} (build it with `cargo xtask build-filters`)", list.join(", "))
}

fn to_param(value: toml::Value) -> Result<Param, String> {
    fn scalar(v: &toml::Value) -> Result<String, String> {
        match v {
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::String(s) if s.contains([',', '\n']) => {
                Err(format!("list element '{s}' may not contain ',' or a newline"))
            }
            toml::Value::String(s) => Ok(s.clone()),
            other => Err(format!("list elements must be integers or strings, not {}", other.type_str())),
        }
    }
    match value {
        toml::Value::Integer(i) => Ok(Param::Int(i)),
        toml::Value::Boolean(b) => Ok(Param::Bool(b)),
        toml::Value::String(s) if s.contains('\n') => Err("strings may not contain a newline".into()),
        toml::Value::String(s) => Ok(Param::Str(s)),
        toml::Value::Array(a) => Ok(Param::List(a.iter().map(scalar).collect::<Result<_, _>>()?)),
        other => Err(format!("parameters are integers, booleans, strings or lists, not {}", other.type_str())),
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The key assigned on a line (`key = value`), for errors toml reports by position only.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (k, _) = l.split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty() && !k.starts_with('[')).then(|| k.to_string())
}

/// The line of `key = ...` inside the `[params]` table.
fn find_param_line(text: &str, key: &str) -> Option<usize> {
    let mut in_params = false;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            in_params = t == "[params]";
        } else if in_params && key_on_line(text, i + 1).as_deref() == Some(key) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests;
