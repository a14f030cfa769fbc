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

pub mod capture;
pub mod rawmap;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray};
use aya::programs::{ProgramError, TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader, VerifierLogLevel};
/// The shared map formats (also the typed keys of `wasmfw map`).
pub use wasmfw_ebpf_common as common;
use wasmfw_policy::Param;

pub use common::{COMMON_COUNTERS, DNS_COUNTERS, ICMP_COUNTERS, L4_COUNTERS};

/// XDP verdicts as BPF_PROG_TEST_RUN returns them.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

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
        Array::try_from(ebpf.map_mut("run_cfg").ok_or_else(|| anyhow!("{} has no map run_cfg (rebuild it with `cargo xtask build-ebpf`)", path.display()))?)?;
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

// ---- parameters -----------------------------------------------------------

fn param_list(key: &str, v: &Param) -> Result<Vec<String>> {
    match v {
        Param::List(l) => Ok(l.clone()),
        Param::Str(s) if s.is_empty() => Ok(Vec::new()),
        Param::Str(s) => Ok(s.split(',').map(|x| x.trim().to_string()).collect()),
        _ => bail!("parameter '{key}' must be a list"),
    }
}

fn param_int(key: &str, v: &Param, max: u64) -> Result<u64> {
    match v {
        Param::Int(i) if *i >= 0 && *i as u64 <= max => Ok(*i as u64),
        Param::Int(i) => bail!("parameter '{key}' = {i} is out of range 0..={max} (eBPF twin)"),
        _ => bail!("parameter '{key}' must be an integer"),
    }
}

/// Parses `10.0.0.0/8`, `fd00::/8` or a bare address into an LPM key.
pub fn cidr_key(s: &str) -> Result<Key<common::AddrKey>> {
    let (addr, plen) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr.trim().parse().map_err(|_| anyhow!("'{s}' is not an address or CIDR prefix"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let plen: u32 = match plen {
        Some(p) => p.trim().parse().ok().filter(|p| *p <= max).ok_or_else(|| anyhow!("'{s}': bad prefix length"))?,
        None => max,
    };
    let (k, base) = match ip {
        IpAddr::V4(a) => (a.to_ipv6_mapped().octets(), 96),
        IpAddr::V6(a) => (a.octets(), 0),
    };
    Ok(Key::new(base + plen, k))
}

fn fill_cidrs(ebpf: &mut Ebpf, map: &str, key: &str, list: &[String]) -> Result<u32> {
    if list.len() > common::MAX_CIDRS as usize {
        bail!("parameter '{key}' has {} entries, at most {} allowed", list.len(), common::MAX_CIDRS);
    }
    let mut trie: LpmTrie<_, common::AddrKey, u8> = LpmTrie::try_from(ebpf.map_mut(map).ok_or_else(|| anyhow!("no map {map}"))?)?;
    for s in list {
        let k = cidr_key(s).with_context(|| format!("parameter '{key}'"))?;
        trie.insert(&k, 1u8, 0)?;
    }
    Ok((!list.is_empty()) as u32)
}

fn configure(twin: Twin, ebpf: &mut Ebpf, params: &[(String, Param, usize)]) -> Result<()> {
    let known: &[&str] = match twin {
        Twin::IcmpDrop => &["from", "to"],
        Twin::L4Dos => &["syn_rate", "syn_burst", "udp_rate", "udp_burst", "blocked_ports", "allow"],
        Twin::DnsBlock => &["block", "max_pointer_hops"],
    };
    let mut p: BTreeMap<&str, &Param> = BTreeMap::new();
    for (k, v, _) in params {
        if !known.contains(&k.as_str()) {
            bail!("{}: unknown parameter '{k}' (known: {})", twin.name(), known.join(", "));
        }
        p.insert(k, v);
    }
    let list = |k: &str| p.get(k).map(|v| param_list(k, v)).transpose().map(Option::unwrap_or_default);
    match twin {
        Twin::IcmpDrop => {
            let from_set = fill_cidrs(ebpf, "icmp_from", "from", &list("from")?)?;
            let to_set = fill_cidrs(ebpf, "icmp_to", "to", &list("to")?)?;
            let mut cfg: Array<_, common::IcmpConfig> = Array::try_from(ebpf.map_mut("icmp_cfg").unwrap())?;
            cfg.set(0, common::IcmpConfig { from_set, to_set }, 0)?;
        }
        Twin::L4Dos => {
            let int = |k: &str, def: u64, max: u64| p.get(k).map(|v| param_int(k, v, max)).unwrap_or(Ok(def));
            let mut c = common::L4Config {
                syn_rate: int("syn_rate", 100, common::MAX_RATE)?,
                syn_burst: int("syn_burst", 200, common::MAX_BURST)?,
                udp_rate: int("udp_rate", 10_000, common::MAX_RATE)?,
                udp_burst: int("udp_burst", 20_000, common::MAX_BURST)?,
                allow_set: 0,
                ports_set: 0,
            };
            fill_cidrs(ebpf, "allow", "allow", &list("allow")?)?;
            let ports = list("blocked_ports")?;
            if ports.len() > common::MAX_PORTS as usize {
                bail!("parameter 'blocked_ports' has more than {} entries", common::MAX_PORTS);
            }
            let mut pm: HashMap<_, u16, u8> = HashMap::try_from(ebpf.map_mut("blocked_ports").unwrap())?;
            for s in &ports {
                let port: u16 = s.trim().parse().map_err(|_| anyhow!("parameter 'blocked_ports': '{s}' is not a port"))?;
                pm.insert(port, 1, 0)?;
            }
            // Always looked up, even when empty: `wasmfw map set` may fill
            // them live (docs/filter-abi.md, "List maps").
            c.allow_set = 1;
            c.ports_set = 1;
            let mut cfg: Array<_, common::L4Config> = Array::try_from(ebpf.map_mut("l4_cfg").unwrap())?;
            cfg.set(0, c, 0)?;
        }
        Twin::DnsBlock => {
            let hops = match p.get("max_pointer_hops") {
                Some(v) => param_int("max_pointer_hops", v, common::DNS_MAX_HOPS as u64)? as u32,
                None => 8,
            };
            let block = list("block")?;
            let mut names: HashMap<_, common::NameKey, u8> = HashMap::try_from(ebpf.map_mut("dns_names").unwrap())?;
            for b in &block {
                // As the Wasm twin: dot-separated labels of 1..=63 bytes, at most 255.
                let name = b.trim().to_ascii_lowercase();
                if name.is_empty() || name.len() > 255 || !name.split('.').all(|l| (1..=63).contains(&l.len())) {
                    bail!("parameter 'block': '{b}' is not a domain name");
                }
                names.insert(common::name_key(name.as_bytes()), 1, 0)?;
            }
            let mut cfg: Array<_, common::DnsConfig> = Array::try_from(ebpf.map_mut("dns_cfg").unwrap())?;
            // Every suffix is looked up: a name added live (`wasmfw map set
            // dns_names`) may have more labels than any in the policy.
            cfg.set(0, common::DnsConfig { max_pointer_hops: hops, max_block_labels: common::DNS_MAX_LABELS }, 0)?;
        }
    }
    Ok(())
}

// ---- running ----------------------------------------------------------------

impl Loaded {
    pub fn program(&self) -> &Xdp {
        self.ebpf.program(self.twin.name()).expect("loaded").try_into().expect("xdp")
    }

    /// Runs the program once on a frame (BPF_PROG_TEST_RUN): XDP_PASS / XDP_DROP.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32> {
        test_run(self.program(), frame, 1).map(|(v, _)| v)
    }

    /// Mean time per run over `repeat` runs (the kernel's own timing).
    pub fn bench(&self, frame: &[u8], repeat: u32) -> Result<Duration> {
        test_run(self.program(), frame, repeat).map(|(_, d)| d)
    }

    /// Counter values, summed over CPUs, `packets`, `pass`, `drop` first.
    pub fn counters(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for name in self.twin.counters() {
            let m = self.ebpf.map(name).ok_or_else(|| anyhow!("no map {name}"))?;
            let arr: PerCpuArray<_, u64> = PerCpuArray::try_from(m)?;
            out.push((name.to_string(), arr.get(&0, 0)?.iter().sum()));
        }
        Ok(out)
    }

    /// The loaded program's fd, to attach it (the caller attaches through
    /// netlink: `wasmfw_xdp_bridge::netlink`) and its id.
    pub fn prog_fd_and_id(&self) -> Result<(std::os::fd::RawFd, u32)> {
        use std::os::fd::{AsFd, AsRawFd};
        let prog = self.program();
        Ok((prog.fd()?.as_fd().as_raw_fd(), prog.info()?.id()))
    }
}

fn test_run(prog: &Xdp, frame: &[u8], repeat: u32) -> Result<(u32, Duration)> {
    let opts = TestRunOptions { data_in: Some(frame), repeat: repeat.max(1), ..Default::default() };
    let r = prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    Ok((r.return_value, r.duration))
}

/// Bytes of a map name the kernel keeps (BPF_OBJ_NAME_LEN - 1).
pub const BPF_NAME_MAX: usize = 15;

/// Counters of a loaded twin found by its program id (the program's maps,
/// by name; no pins needed), summed over CPUs, `packets`, `pass`, `drop`
/// first. Needs CAP_SYS_ADMIN.
pub fn counters_of_prog(twin: Twin, prog_id: u32) -> Result<Vec<(String, u64)>> {
    let info = aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .find(|p| p.id() == prog_id)
        .ok_or_else(|| anyhow!("no loaded program with id {prog_id}"))?;
    let mut by_name = BTreeMap::new();
    for id in info.map_ids()?.unwrap_or_default() {
        let mi = aya::maps::MapInfo::from_id(id)?;
        if let Some(name) = mi.name_as_str() {
            by_name.insert(name.to_string(), id);
        }
    }
    let mut out = Vec::new();
    for name in twin.counters() {
        // The kernel keeps 15 bytes of a map's name (`audit_would_dro`).
        let Some(&id) = by_name.get(&name[..name.len().min(BPF_NAME_MAX)]) else { continue };
        let data = MapData::from_id(id)?;
        let arr: PerCpuArray<_, u64> = PerCpuArray::try_from(Map::PerCpuArray(data))?;
        out.push((name.to_string(), arr.get(&0, 0)?.iter().sum()));
    }
    Ok(out)
}

// ---- bench helpers ------------------------------------------------------------

/// Loads the empty XDP program (`target/ebpf/empty.o`).
pub fn load_empty() -> Result<Ebpf> {
    let path = object_path("empty")?;
    let mut ebpf = loader().load_file(&path)?;
    let p: &mut Xdp = ebpf.program_mut("empty").ok_or_else(|| anyhow!("no program empty"))?.try_into()?;
    p.load()?;
    Ok(ebpf)
}

/// ns per run of the empty XDP program on `frame` (BPF_PROG_TEST_RUN).
pub fn bench_empty(frame: &[u8], repeat: u32) -> Result<f64> {
    let ebpf = load_empty()?;
    let p: &Xdp = ebpf.program("empty").unwrap().try_into()?;
    let (_, d) = test_run(p, frame, repeat)?;
    Ok(d.as_nanos() as f64)
}

pub use aya::programs::XdpMode as Mode;

// ---- aya-log ----------------------------------------------------------------

/// Prints the programs' aya-log records on stderr (`wasmfw poll`).
pub struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        eprintln!("[{} {}] {}", r.level(), r.target(), r.args());
    }
    fn flush(&self) {}
}

/// A reader of an attached program's aya-log ring buffer, by program id.
/// The programs only log if they were loaded with `WASMFW_EBPF_LOG` set.
pub fn program_logger(prog_id: u32) -> Result<aya_log::EbpfLogger<StderrLog>> {
    aya_log::EbpfLogger::init_from_id_with_logger(prog_id, StderrLog).map_err(|e| anyhow!("aya-log: {e}"))
}

/// One aya-log record of a program, as `wasmfw log` shows it.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// "error", "warn", "info", "debug" or "trace".
    pub level: &'static str,
    pub msg: String,
}

/// Collects records as EbpfLogger::flush hands them over.
#[derive(Clone, Default)]
struct Collect(std::sync::Arc<std::sync::Mutex<Vec<LogLine>>>);

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        let level = match r.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warn",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        if let Ok(mut v) = self.0.lock() {
            v.push(LogLine { level, msg: r.args().to_string() });
        }
    }
    fn flush(&self) {}
}

/// Reads an attached program's aya-log ring (map AYA_LOGS), found by
/// program id: records are consumed (a second reader does not see them).
pub struct LogReader {
    logger: aya_log::EbpfLogger<Collect>,
    lines: Collect,
}

impl LogReader {
    pub fn new(prog_id: u32) -> Result<LogReader> {
        let lines = Collect::default();
        let logger = aya_log::EbpfLogger::init_from_id_with_logger(prog_id, lines.clone())
            .map_err(|e| anyhow!("aya-log of program {prog_id}: {e}"))?;
        Ok(LogReader { logger, lines })
    }

    /// Every record in the ring now, oldest first.
    pub fn read(&mut self) -> Vec<LogLine> {
        self.logger.flush();
        self.lines.0.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}
