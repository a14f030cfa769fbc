//! `wasmfw`: check, replay, load and inspect Wasm packet filters.

mod access;
mod apply;
mod attachments;
mod capture;
mod check;
mod kmod;
mod log;
mod manage;
mod maps;
mod netns;
mod records;
mod replay;
mod status;
mod wasm;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "wasmfw", version, about = "WebAssembly packet filters for the Linux kernel")]
struct Cli {
    /// Run in this network namespace (an `ip netns` name or a path such as
    /// /proc/PID/ns/net), like `ip -n`; default: wasmfw's own.
    #[arg(long, global = true, value_name = "NAME")]
    netns: Option<String>,
    /// JSON output, errors included (`{"error": "..."}` on stdout), like
    /// `bpftool -j`; streams (replay, test-run, poll) print one object a line.
    #[arg(long, short = 'j', global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Which engine runs the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// The Wasm filter inside the wasmfw kernel module.
    Wasm,
    /// The filter's eBPF twin from compare-ebpf/ (any modern kernel).
    Ebpf,
}

/// XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum XdpMode {
    /// Generic XDP (after the skb is built); works on every interface.
    Skb,
    /// Driver XDP.
    Native,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HookArg {
    Xdp,
    Netfilter,
}

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// A policy (.toml) or a filter (.wasm, default parameters).
    pub target: PathBuf,
    /// Interface to attach to (overrides the policy's `iface`).
    #[arg(long)]
    pub iface: Option<String>,
    /// Engine that runs the filter.
    #[arg(long, value_enum, default_value_t = Engine::Wasm)]
    pub engine: Engine,
    /// Hook (overrides the policy's `hook`).
    #[arg(long, value_enum)]
    pub hook: Option<HookArg>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpMode::Skb)]
    pub mode: XdpMode,
    /// Atomically replace a filter already attached on the interface (the
    /// interface is never without a filter).
    #[arg(long)]
    pub replace: bool,
    /// Audit mode (overrides the policy's `mode`): every packet passes, the
    /// drops the filter would make are counted (`audit_would_drop`).
    #[arg(long)]
    pub audit: bool,
    /// With --replace: carry the entries of the old filter's state maps (same
    /// name, kind and sizes, e.g. token buckets) over to the new filter.
    #[arg(long, requires = "replace")]
    pub keep_maps: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a filter or policy: module, ABI version, imports, limits, parameters.
    Check {
        /// A policy (.toml) or a filter (.wasm).
        target: PathBuf,
    },
    /// Run every packet of a pcap/pcapng file through the filter in userspace.
    Replay {
        /// A policy (.toml) or a filter (.wasm).
        target: PathBuf,
        /// Capture to replay (pcap or pcapng; Ethernet or raw IP).
        #[arg(long)]
        pcap: PathBuf,
    },
    /// Run a filter in the kernel on every packet of a capture, N times each
    /// (like BPF_PROG_TEST_RUN): verdicts and ns per run.
    TestRun {
        /// A policy (.toml) or a filter (.wasm).
        target: PathBuf,
        #[arg(long)]
        pcap: PathBuf,
        /// Runs per packet.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// `xdp`: through the xdp-bridge program with BPF_PROG_TEST_RUN (the
        /// filter is attached at XDP on `lo` meanwhile); default: the
        /// module's own test-run ioctl.
        #[arg(long, value_enum)]
        hook: Option<HookArg>,
    },
    /// Load a filter and attach it to an interface of this network namespace;
    /// it stays attached after wasmfw exits, however wasmfw was started.
    Load(LoadArgs),
    /// Detach and unload the filter on an interface of this network namespace.
    Unload {
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        iface: Option<String>,
        /// Every attachment of this network namespace (like `xdp-filter unload --all`).
        #[arg(long)]
        all: bool,
    },
    /// List attached filters of every network namespace, each checked against
    /// the kernel (GONE: no longer attached, with the reason; one in a deleted
    /// namespace is reported once, then forgotten).
    Status,
    /// Show counters of attached filters.
    Stats {
        #[arg(long)]
        iface: Option<String>,
    },
    /// Make the filters attached in this network namespace equal to the
    /// policies (*.toml, each naming its interfaces) in a directory.
    Apply {
        dir: PathBuf,
        /// Engine for every policy.
        #[arg(long, value_enum, default_value_t = Engine::Wasm)]
        engine: Engine,
        /// XDP attach mode.
        #[arg(long, value_enum, default_value_t = XdpMode::Skb)]
        mode: XdpMode,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `wasmfw manpage | man -l -`.
    Manpage,
    /// Read and change the maps of the filter attached on an interface.
    #[command(subcommand)]
    Map(maps::MapCmd),
    /// Record the packets the attached filter gives some verdicts into a
    /// pcapng file (verdict and filter in each packet's comment), until
    /// -c packets, --duration seconds or Ctrl-C.
    Capture(capture::CaptureArgs),
    /// Print the `log` lines of the filter on an interface, oldest first:
    /// `TIME CPU LEVEL FILTER message` (TIME: CLOCK_MONOTONIC seconds, as
    /// in dmesg), and how many were lost to a full ring.
    Log {
        #[arg(long)]
        iface: String,
        /// Keep printing new lines until interrupted.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Print the module interface this wasmfw was built with (structs,
    /// offsets, constants, ioctl numbers) as JSON: for tools that speak the
    /// ioctls directly, like the guest tests' wfioctl.py.
    #[command(hide = true)]
    UapiLayout,
    /// Print per-second counter rates until interrupted (or --count times).
    Poll {
        #[arg(long)]
        iface: Option<String>,
        /// Seconds between samples.
        #[arg(long, default_value_t = 1)]
        interval: u64,
        /// Stop after this many samples.
        #[arg(long)]
        count: Option<u64>,
    },
}

fn main() -> ExitCode {
    // Whether errors are JSON is known before parsing, so that a command
    // line clap refuses is reported in the asked-for form too.
    let json_asked = std::env::args().any(|a| a == "--json" || a == "-j");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if json_asked && e.use_stderr() => {
            let text = e.render().to_string();
            let first: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            let first = first.join(" ").trim_start_matches("error: ").to_string();
            return fail(true, &anyhow::anyhow!("{first}"));
        }
        Err(e) => e.exit(),
    };
    let json = cli.json;
    let result = match &cli.netns {
        Some(ns) => netns::enter(ns).and_then(|()| run(cli.cmd, json)),
        None => run(cli.cmd, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(json, &e),
    }
}

/// One line, cause chain included, like `ip` or `bpftool`.
fn fail(json: bool, e: &anyhow::Error) -> ExitCode {
    let msg = format!("{e:#}").replace('\n', " ");
    if json {
        println!("{}", serde_json::json!({ "error": msg }));
    } else {
        eprintln!("wasmfw: {msg}");
    }
    ExitCode::FAILURE
}

fn run(cmd: Cmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        Cmd::Check { target } => check::run(&target, json),
        Cmd::Replay { target, pcap } => replay::run(&target, &pcap, json),
        Cmd::TestRun { target, pcap, repeat, hook } => {
            manage::test_run(&target, &pcap, repeat, hook == Some(HookArg::Xdp), json)
        }
        Cmd::Load(args) => manage::load(&args, json),
        Cmd::Unload { iface: Some(iface), .. } => manage::unload(&iface, json),
        Cmd::Unload { iface: None, .. } => manage::unload_all(json),
        Cmd::Status => status::status(json),
        Cmd::Stats { iface } => status::stats(iface.as_deref(), json),
        Cmd::Poll { iface, interval, count } => status::poll(iface.as_deref(), interval, count, json),
        Cmd::Map(cmd) => maps::run(&cmd, json),
        Cmd::Capture(args) => capture::run(&args, json),
        Cmd::Log { iface, follow } => log::run(&iface, follow, json),
        Cmd::Apply { dir, engine, mode, dry_run } => apply::run(&dir, engine, mode, dry_run, json),
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "wasmfw",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Cmd::UapiLayout => {
            println!("{}", kmod::uapi_layout_json());
            Ok(())
        }
        Cmd::Manpage => {
            Ok(clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut std::io::stdout())?)
        }
    }
}
