//! `wasmfw-bench`: ns per packet of the three filters, head to head:
//! the Wasm filter in the wasmfw engine (userspace), the same logic as plain
//! Rust (userspace), and the eBPF twin through BPF_PROG_TEST_RUN (kernel,
//! JIT), plus an empty XDP program for the test-run harness's fixed cost.
//!
//! `cargo run --release -p wasmfw-bench [-- --json] [-- --rounds 5 --round-ms 200]`
//! (eBPF columns need root and `cargo xtask build-ebpf`). Subcommands for
//! `cargo xtask bench`: `guest` (kernel paths, in a guest: guest.rs),
//! `flood` / `attach-native` (veth throughput: flood.rs), `report` (one
//! table, results.json, results.svg: report.rs). See bench/README.md.

#[allow(dead_code)] // run_ebpf (default params) is not used here
mod ebpf;
mod flood;
mod fuel;
mod guest;
mod native;
mod packets;
mod report;
mod xdp;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use wasmfw_engine::{Env, Instance, Limits, Verdict};
use wasmfw_policy::{Param, Policy};

use native::{Link, Native};
use packets::BenchPacket;

/// Every filter, with its policy file under `policies/`.
const FILTERS: [(&str, &str); 3] =
    [("icmp_drop", "icmp.toml"), ("l4_dos", "l4-dos.toml"), ("dns_block", "dns-block.toml")];
/// l4_dos: the SYN bucket size used instead of the policy's, so that the
/// in-rate SYN stays in rate for every repeat (the clock barely moves).
const L4_SYN_BURST: i64 = 1_000_000_000;

#[derive(Parser)]
#[command(about = "Wasm engine vs native Rust vs eBPF twins: ns per packet for each filter x packet x size")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Rounds per measurement; each round gives a mean ns/packet (see --stat).
    #[arg(long, default_value_t = 5, global = true)]
    rounds: u32,
    /// Target duration of one round, in ms (the packet count per round is
    /// calibrated to it after a warm-up).
    #[arg(long, default_value_t = 200, global = true)]
    round_ms: u64,
    /// Fixed number of packets per round (all engines) instead of calibrating.
    #[arg(long, global = true)]
    repeat: Option<u64>,
    /// Only these filters (comma-separated: icmp_drop,l4_dos,dns_block).
    #[arg(long, value_delimiter = ',', global = true)]
    filter: Vec<String>,
    /// Directory of the policy files.
    #[arg(long, global = true, default_value_os_t = default_policies())]
    policies: PathBuf,
    /// Skip the eBPF columns.
    #[arg(long, global = true)]
    no_ebpf: bool,
    /// Figure shown per measurement: the median of the rounds' means, or the
    /// fastest round (less sensitive to other load on a shared machine).
    #[arg(long, value_enum, default_value_t = Stat::Median, global = true)]
    stat: Stat,
    /// Clock for the userspace columns: the thread's CPU time (time spent
    /// descheduled is left out, as BPF_PROG_TEST_RUN's timer leaves it out
    /// for the eBPF columns) or wall time.
    #[arg(long, value_enum, default_value_t = Clock::Cpu, global = true)]
    clock: Clock,
    /// Print JSON instead of the table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Clock {
    Cpu,
    Wall,
}

impl Clock {
    fn name(self) -> &'static str {
        match self {
            Clock::Cpu => "thread's CPU clock (CLOCK_THREAD_CPUTIME_ID)",
            Clock::Wall => "wall clock",
        }
    }
}

/// A point in time on `clock`.
fn now(clock: Clock) -> Duration {
    match clock {
        Clock::Wall => {
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            START.get_or_init(Instant::now).elapsed()
        }
        Clock::Cpu => {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: clock_gettime writes one timespec.
            let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
            Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Stat {
    Median,
    Min,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure and print the table (the default).
    Run,
    /// In a guest with wasmfw.ko: empty XDP vs eBPF twin vs xdp-bridge +
    /// Wasm vs xdp-bridge + native Rust, via BPF_PROG_TEST_RUN.
    Xdp {
        /// BPF_PROG_TEST_RUN repeat count per measurement.
        #[arg(long, default_value_t = 100_000)]
        runs: u32,
    },
    /// List the benchmark packets (hex dump with -v) and check the verdicts.
    Packets {
        #[arg(short, long)]
        verbose: bool,
    },
    /// In a guest with wasmfw.ko: every benchmark packet through the
    /// module's test-run, xdp-bridge + Wasm, xdp-bridge + native kfunc, the
    /// eBPF twin and an empty XDP program (JSON on stdout).
    Guest {
        /// Runs per packet, path and round (the figure is the fastest of
        /// --rounds rounds).
        #[arg(long, default_value_t = 100_000)]
        runs: u32,
        /// Where to write the policies and captures used.
        #[arg(long)]
        work: PathBuf,
        /// The wasmfw CLI.
        #[arg(long, default_value_os_t = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/wasmfw"))]
        wasmfw: PathBuf,
    },
    /// Send the 64-byte ICMP echo frame out of IFACE as fast as possible for
    /// SECS seconds (AF_PACKET, sendmmsg); prints a JSON line.
    Flood {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        dst_mac: String,
        #[arg(long)]
        src_mac: String,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
    /// Attach xdp-bridge calling the module's native kfunc on IFACE.
    AttachNative {
        #[arg(long)]
        iface: String,
    },
    /// Merge DIR/host.json, DIR/guest-uml.json and DIR/throughput-uml.jsonl
    /// into one table, OUT/results.json and OUT/results.svg.
    Report {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

fn default_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

// ---- the Wasm side -----------------------------------------------------------------

/// A fixed clock (l4_dos's buckets then never refill: hence the large burst).
struct BenchEnv;

impl Env for BenchEnv {
    fn now_ns(&self) -> u64 {
        1_000_000_000
    }
    fn log(&self, level: i32, msg: &[u8]) {
        eprintln!("[filter log {level}] {}", String::from_utf8_lossy(msg));
    }
}

/// Loads the policy's filter as `wasmfw` does in userspace (ctl/src/wasm.rs):
/// same limits, same config text, one instance.
fn load_wasm(policy: &Policy) -> Result<Instance> {
    let wasm = std::fs::read(&policy.wasm)
        .with_context(|| format!("{} (build the filters with `cargo xtask build-filters`)", policy.wasm.display()))?;
    let limits = Limits { audit: false, ..policy.limits() };
    let (_filter, mut inst) = wasmfw_engine::load(&wasm, limits, &policy.config_bytes(), 1, Arc::new(BenchEnv), 42)
        .map_err(|e| anyhow!("{}: {e}", policy.wasm.display()))?;
    inst.pop().ok_or_else(|| anyhow!("engine returned no instance"))
}

fn load_policy(dir: &Path, filter: &str) -> Result<Policy> {
    let file = FILTERS.iter().find(|(f, _)| *f == filter).ok_or_else(|| anyhow!("unknown filter '{filter}'"))?.1;
    let path = dir.join(file);
    let mut policy = Policy::load(&path).map_err(|e| anyhow!("{e}"))?;
    if filter == "l4_dos" {
        match policy.params.iter_mut().find(|(k, _, _)| k == "syn_burst") {
            Some((_, v, _)) => *v = Param::Int(L4_SYN_BURST),
            None => policy.params.push(("syn_burst".into(), Param::Int(L4_SYN_BURST), 0)),
        }
    }
    Ok(policy)
}

// ---- timing ----------------------------------------------------------------------------

#[derive(Clone)]
struct Timing {
    /// Mean ns per packet of each round.
    rounds: Vec<f64>,
    /// Packets per round.
    per_round: u64,
}

impl Timing {
    /// The figure reported (see `--stat`).
    fn value(&self, stat: Stat) -> f64 {
        match stat {
            Stat::Median => self.median(),
            Stat::Min => self.rounds.iter().copied().fold(f64::INFINITY, f64::min),
        }
    }

    fn median(&self) -> f64 {
        let mut v = self.rounds.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
}

struct Opts {
    stat: Stat,
    clock: Clock,
    rounds: u32,
    round: Duration,
    repeat: Option<u64>,
}

/// Runs `f` `n` times; counts the runs whose verdict was not `expect`.
fn spin<F: FnMut() -> Verdict>(clock: Clock, f: &mut F, n: u64, expect: Verdict, wrong: &mut u64) -> Duration {
    let t = now(clock);
    for _ in 0..n {
        if f() != expect {
            *wrong += 1;
        }
    }
    now(clock).saturating_sub(t)
}

/// Times a userspace filter: warm-up and calibration, then `rounds` rounds.
/// Panics if any run gave another verdict than `expect` (wrong path measured).
fn time_user<F: FnMut() -> Verdict>(opts: &Opts, what: &str, expect: Verdict, mut f: F) -> Timing {
    let mut wrong = 0;
    let per_round = match opts.repeat {
        Some(n) => {
            spin(opts.clock, &mut f, (n / 10).max(1), expect, &mut wrong);
            n
        }
        None => {
            let mut n = 1_000u64;
            loop {
                let d = spin(opts.clock, &mut f, n, expect, &mut wrong);
                if d >= opts.round / 4 || n >= 1 << 34 {
                    break ((n as f64) * opts.round.as_secs_f64() / d.as_secs_f64().max(1e-9)).max(1.0) as u64;
                }
                n *= 4;
            }
        }
    };
    let rounds = (0..opts.rounds.max(1))
        .map(|_| spin(opts.clock, &mut f, per_round, expect, &mut wrong).as_nanos() as f64 / per_round as f64)
        .collect();
    assert!(
        wrong == 0,
        "{what}: {wrong} timed runs did not give the expected verdict {} - the benchmark measured another path",
        expect.as_str()
    );
    Timing { rounds, per_round }
}

/// Times an eBPF program: `measure(repeat)` returns the kernel's mean ns per
/// run over `repeat` runs; the first call (calibration) is the warm-up.
fn time_ebpf(opts: &Opts, mut measure: impl FnMut(u32) -> Result<f64>) -> Result<Timing> {
    let per_round = match opts.repeat {
        Some(n) => {
            measure((n / 10).clamp(1, u32::MAX as u64) as u32)?;
            n.clamp(1, u32::MAX as u64)
        }
        None => {
            let ns = measure(100_000)?.max(1.0);
            ((opts.round.as_nanos() as f64 / ns) as u64).clamp(10_000, 200_000_000)
        }
    };
    let rounds = (0..opts.rounds.max(1)).map(|_| measure(per_round as u32)).collect::<Result<_>>()?;
    Ok(Timing { rounds, per_round })
}

// ---- eBPF availability ------------------------------------------------------------

/// `Ok(())` if the eBPF columns can be measured, else why not.
fn ebpf_available(cli: &Cli) -> std::result::Result<(), String> {
    if cli.no_ebpf {
        return Err("skipped (--no-ebpf)".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: BPF_PROG_TEST_RUN needs CAP_BPF (run as root for the eBPF columns)".into());
    }
    for prog in ["icmp_drop", "l4_dos", "dns_block", "empty"] {
        if let Err(e) = wasmfw_ebpf::object_path(prog) {
            return Err(format!("{e:#}"));
        }
    }
    Ok(())
}

fn ebpf_verdict(policy: &Policy, frame: &[u8]) -> Result<Verdict> {
    let twin = wasmfw_ebpf::Twin::for_filter(&policy.filter)?;
    let loaded = wasmfw_ebpf::load(twin, &policy.params)?;
    let action = loaded.test_run(frame)?;
    match wasmfw_ebpf::xdp_verdict(action) {
        Some(v) => Ok(v),
        None => bail!("eBPF twin {} returned XDP action {action}", policy.filter),
    }
}

// ---- one row ------------------------------------------------------------------------

struct Row {
    filter: &'static str,
    what: String,
    bytes: usize,
    verdict: Verdict,
    fuel: u64,
    wasm: Timing,
    native: Timing,
    ebpf: Option<Timing>,
    empty: Option<Timing>,
}

/// Checks that Wasm, native and (if given) eBPF give the expected verdict.
/// Returns the fuel the Wasm run used.
fn check_verdicts(policy: &Policy, p: &BenchPacket, ebpf: bool) -> Result<u64> {
    let mut inst = load_wasm(policy)?;
    let out = inst.run(&p.frame, 1);
    let mut nat = Native::from_policy(policy)?;
    let native = nat.filter(&p.frame, Link::Ethernet, BenchEnv.now_ns());
    let ebpf = if ebpf { Some(ebpf_verdict(policy, &p.frame)?) } else { None };
    let name = format!("{} / {} ({} bytes)", p.filter, p.what, p.frame.len());
    assert!(out.fault.is_none(), "{name}: the Wasm filter faulted ({:?}, {} fuel used)", out.fault, out.fuel_used);
    let show = |v: Option<Verdict>| v.map_or("-", Verdict::as_str);
    let all = [Some(out.verdict), Some(native), ebpf];
    assert!(
        all.iter().flatten().all(|v| *v == p.expect),
        "{name}: verdicts disagree: expected {}, wasm {}, native {}, ebpf {} - the benchmark would measure the wrong path",
        p.expect.as_str(),
        out.verdict.as_str(),
        native.as_str(),
        show(ebpf)
    );
    Ok(out.fuel_used)
}

// ---- host description -------------------------------------------------------------

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

struct Host {
    cpu: String,
    cpus: usize,
    hypervisor: bool,
    kernel: String,
    jit: String,
}

fn host() -> Host {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let hypervisor = cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
    let jit = match read_trim("/proc/sys/net/core/bpf_jit_enable").as_deref() {
        Some("0") => "JIT off".to_string(),
        Some("1") => "JIT on".to_string(),
        Some("2") => "JIT on (debug)".to_string(),
        Some(v) => format!("bpf_jit_enable={v}"),
        None => "JIT state unknown".to_string(),
    };
    Host {
        cpu,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        hypervisor,
        kernel: read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "?".into()),
        jit,
    }
}

// ---- main ---------------------------------------------------------------------------------

fn main() -> Result<()> {
    let cli = Cli::parse();
    match &cli.cmd {
        Some(Cmd::Flood { iface, dst_mac, src_mac, secs }) => return flood::flood(iface, dst_mac, src_mac, *secs),
        Some(Cmd::AttachNative { iface }) => return flood::attach_native(iface),
        Some(Cmd::Report { dir, out }) => return report::run(dir, out),
        Some(Cmd::Guest { runs, work, wasmfw }) => {
            return guest::run(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."), wasmfw, work, *runs, cli.rounds)
        }
        _ => {}
    }
    let filters: Vec<&'static str> = if cli.filter.is_empty() {
        FILTERS.iter().map(|(f, _)| *f).collect()
    } else {
        cli.filter
            .iter()
            .map(|f| FILTERS.iter().map(|(n, _)| *n).find(|n| n == f).ok_or_else(|| anyhow!("unknown filter '{f}'")))
            .collect::<Result<_>>()?
    };
    let policies: BTreeMap<&str, Policy> =
        filters.iter().map(|f| load_policy(&cli.policies, f).map(|p| (*f, p))).collect::<Result<_>>()?;
    let pkts = packets::all(&filters)?;
    let ebpf_ok = ebpf_available(&cli);

    if let Some(Cmd::Xdp { runs }) = cli.cmd {
        return xdp::run(runs, cli.json);
    }
    if let Some(Cmd::Packets { verbose }) = cli.cmd {
        for p in &pkts {
            let fuel = check_verdicts(&policies[p.filter], p, ebpf_ok.is_ok())?;
            let budget = fuel::budget(p.filter).map_or("-".to_string(), |b| b.to_string());
            println!(
                "{:<10} {:<28} {:>5} bytes  {:<4}  {fuel:>5} fuel (budget {budget})",
                p.filter,
                p.what,
                p.frame.len(),
                p.expect.as_str()
            );
            if verbose {
                for chunk in p.frame.chunks(16) {
                    println!("    {}", chunk.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "));
                }
            }
        }
        match &ebpf_ok {
            Ok(()) => println!("verdicts agree: wasm, native, ebpf"),
            Err(why) => println!("verdicts agree: wasm, native (ebpf not checked: {why})"),
        }
        return Ok(());
    }

    let opts = Opts {
        stat: cli.stat,
        clock: cli.clock,
        rounds: cli.rounds.max(1),
        round: Duration::from_millis(cli.round_ms.max(1)),
        repeat: cli.repeat,
    };
    let mut rows = Vec::new();
    let mut ebpf_error: Option<String> = None;
    let mut empty_cache: BTreeMap<usize, Timing> = BTreeMap::new();
    for p in &pkts {
        let policy = &policies[p.filter];
        let use_ebpf = ebpf_ok.is_ok() && ebpf_error.is_none();
        eprintln!("measuring {} / {} ({} bytes)", p.filter, p.what, p.frame.len());
        let fuel = match check_verdicts(policy, p, use_ebpf) {
            Ok(f) => f,
            Err(e) if use_ebpf => {
                // The eBPF side failed to load or run: go on without it.
                ebpf_error = Some(format!("{e:#}"));
                check_verdicts(policy, p, false)?
            }
            Err(e) => return Err(e),
        };
        let name = format!("{} / {}", p.filter, p.what);

        let mut inst = load_wasm(policy)?;
        let frame = p.frame.as_slice();
        let wasm = time_user(&opts, &format!("wasm {name}"), p.expect, || inst.run(black_box(frame), 1).verdict);

        let mut nat = Native::from_policy(policy)?;
        let now = BenchEnv.now_ns();
        let native = time_user(&opts, &format!("native {name}"), p.expect, || {
            nat.filter(black_box(frame), Link::Ethernet, black_box(now))
        });

        let (mut ebpf_t, mut empty_t) = (None, None);
        if ebpf_ok.is_ok() && ebpf_error.is_none() {
            let r = time_ebpf(&opts, |n| ebpf::run_ebpf_with(&policy.filter, &policy.params, frame, n)).and_then(|t| {
                let e = match empty_cache.get(&frame.len()) {
                    Some(e) => e.clone(),
                    None => {
                        let e = time_ebpf(&opts, |n| ebpf::run_ebpf_empty(frame, n))?;
                        empty_cache.insert(frame.len(), e.clone());
                        e
                    }
                };
                Ok((t, e))
            });
            match r {
                Ok((t, e)) => {
                    ebpf_t = Some(t);
                    empty_t = Some(e);
                }
                Err(e) => ebpf_error = Some(format!("{e:#}")),
            }
        }
        rows.push(Row {
            filter: p.filter,
            what: p.what.clone(),
            bytes: p.frame.len(),
            verdict: p.expect,
            fuel,
            wasm,
            native,
            ebpf: ebpf_t,
            empty: empty_t,
        });
    }

    let h = host();
    let ebpf_note = match (&ebpf_ok, &ebpf_error) {
        (Err(why), _) => Some(format!("eBPF not measured: {why}")),
        (Ok(()), Some(e)) => Some(format!("eBPF measurement failed, eBPF columns incomplete: {e}")),
        _ => None,
    };
    if cli.json {
        print_json(&cli, &opts, &h, &policies, &rows, ebpf_note.as_deref())
    } else {
        print_table(&opts, &h, &policies, &rows, ebpf_note.as_deref());
        Ok(())
    }
}

fn policy_line(p: &Policy) -> String {
    let params = String::from_utf8_lossy(&p.config_bytes()).trim_end().replace('\n', " ");
    format!(
        "{}: fuel {}, memory_limit {}, on_fault {}, params: {}",
        p.filter,
        p.fuel,
        p.memory_limit,
        p.on_fault.as_str(),
        params
    )
}

fn print_table(opts: &Opts, h: &Host, policies: &BTreeMap<&str, Policy>, rows: &[Row], ebpf_note: Option<&str>) {
    let per_round = match opts.repeat {
        Some(n) => format!("{n} packets per round"),
        None => format!("packets per round calibrated to ~{} ms", opts.round.as_millis()),
    };
    let stat = match opts.stat {
        Stat::Median => "median",
        Stat::Min => "fastest",
    };
    println!("wasmfw-bench: ns per packet, {stat} of {} rounds ({per_round}), after a warm-up.", opts.rounds);
    println!("  wasm      wasmfw-engine (wasmi, fuel metering) in userspace on this host: Instance::run = copy the");
    println!("            frame into the filter's buffer, refuel, call wasmfw_filter (link = Ethernet)");
    println!("  native    the same filter logic as plain Rust on &[u8] (bench/src/native.rs), userspace");
    println!("            (both userspace columns timed with the {})", opts.clock.name());
    match ebpf_note {
        None => {
            println!("  ebpf      the eBPF twin (compare-ebpf/), XDP, BPF_PROG_TEST_RUN on this host's kernel");
            println!("            ({}, {}); the kernel reports whole ns per run", h.kernel, h.jit);
            println!("  xdp-empty an empty XDP program the same way: the fixed cost of the test-run loop");
        }
        Some(n) => println!("  ebpf      {n}"),
    }
    println!("  fuel      Wasm fuel one packet used (the budget per packet is the policy's fuel, below; the");
    println!(
        "            SDK keeps each filter under {} / {} / {} for icmp_drop / l4_dos / dns_block: bench/src/fuel.rs)",
        fuel::ICMP_DROP,
        fuel::L4_DOS,
        fuel::DNS_BLOCK
    );
    println!(
        "  host      {} x {} ({}); figures are from one run on a shared 2-core VM: expect 10%+ noise",
        h.cpus,
        h.cpu,
        if h.hypervisor { "virtual machine" } else { "no hypervisor flag" }
    );
    println!("  policies  (same limits as policies/*.toml)");
    for p in policies.values() {
        println!("            {}", policy_line(p));
    }
    println!("            l4_dos: syn_burst raised to {L4_SYN_BURST} so the in-rate SYN never runs the bucket dry");
    println!();
    let st = opts.stat;
    let num = |t: &Option<Timing>| t.as_ref().map_or("-".to_string(), |t| format!("{:.1}", t.value(st)));
    let ratio = |a: f64, b: Option<f64>| b.filter(|b| *b > 0.0).map_or("-".to_string(), |b| format!("{:.1}x", a / b));
    println!(
        "{:<10} {:<28} {:>5} {:<7} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "filter",
        "packet",
        "bytes",
        "verdict",
        "fuel",
        "wasm ns",
        "native ns",
        "ebpf ns",
        "xdp-empty",
        "wasm/ebpf",
        "wasm/native"
    );
    println!("{}", "-".repeat(10 + 28 + 5 + 7 + 6 + 9 * 5 + 11 + 10));
    for r in rows {
        let w = r.wasm.value(st);
        println!(
            "{:<10} {:<28} {:>5} {:<7} {:>6} {:>9.1} {:>9.1} {:>9} {:>9} {:>9} {:>11}",
            r.filter,
            r.what,
            r.bytes,
            r.verdict.as_str(),
            r.fuel,
            w,
            r.native.value(st),
            num(&r.ebpf),
            num(&r.empty),
            ratio(w, r.ebpf.as_ref().map(|t| t.value(st))),
            ratio(w, Some(r.native.value(st))),
        );
    }
    println!();
    println!(
        "Verdicts of wasm, native{} agreed on every packet.",
        if rows.iter().all(|r| r.ebpf.is_some()) { " and ebpf" } else { "" }
    );
}

fn timing_json(t: &Timing) -> serde_json::Value {
    json!({
        "median_ns": t.median(),
        "min_ns": t.value(Stat::Min),
        "rounds_ns": t.rounds,
        "packets_per_round": t.per_round,
    })
}

fn print_json(
    cli: &Cli,
    opts: &Opts,
    h: &Host,
    policies: &BTreeMap<&str, Policy>,
    rows: &[Row],
    ebpf_note: Option<&str>,
) -> Result<()> {
    let v = json!({
        "measured": "ns per packet: each round is the mean over packets_per_round packets, after warm-up; ratios use the stat below",
        "stat": match opts.stat { Stat::Median => "median", Stat::Min => "min" },
        "where": {
            "wasm": "wasmfw-engine (wasmi) in userspace, Instance::run on an Ethernet frame",
            "native": "bench/src/native.rs, userspace",
            "ebpf": "eBPF twins via BPF_PROG_TEST_RUN (XDP) on this host's kernel",
            "xdp_empty": "empty XDP program via BPF_PROG_TEST_RUN",
        },
        "host": {
            "cpu": h.cpu, "cpus": h.cpus, "hypervisor": h.hypervisor, "kernel": h.kernel, "bpf_jit": h.jit,
            "note": "one run on a shared 2-core VM",
        },
        "rounds": opts.rounds,
        "round_ms": cli.round_ms,
        "userspace_clock": opts.clock.name(),
        "repeat": cli.repeat,
        "policies": policies.values().map(policy_line).collect::<Vec<_>>(),
        "l4_dos_syn_burst": L4_SYN_BURST,
        "ebpf_note": ebpf_note,
        "rows": rows.iter().map(|r| json!({
            "filter": r.filter,
            "packet": r.what,
            "bytes": r.bytes,
            "verdict": r.verdict.as_str(),
            "fuel": r.fuel,
            "wasm": timing_json(&r.wasm),
            "native": timing_json(&r.native),
            "ebpf": r.ebpf.as_ref().map(timing_json),
            "xdp_empty": r.empty.as_ref().map(timing_json),
            "wasm_over_ebpf": r.ebpf.as_ref().map(|e| r.wasm.value(opts.stat) / e.value(opts.stat)),
            "wasm_over_native": r.wasm.value(opts.stat) / r.native.value(opts.stat),
        })).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
