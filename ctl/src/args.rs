//! The command line: every clap type the commands take (`Cli`, its
//! subcommands and their arguments). Commands import their argument types
//! from here, never from `main.rs`; the `--engine` values come from the one
//! list of engines (`engines::ENGINES`).

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Parser, Subcommand, ValueEnum};

use crate::engines::{self, Engine};

#[derive(Parser)]
#[command(name = "wasmfw", version, about = "WebAssembly packet filters for the Linux kernel")]
pub struct Cli {
    /// Run in this network namespace (an `ip netns` name or a path such as
    /// /proc/PID/ns/net), like `ip -n`; default: wasmfw's own.
    #[arg(long, global = true, value_name = "NAME")]
    pub netns: Option<String>,
    /// JSON output, errors included (`{"error": "..."}` on stdout), like
    /// `bpftool -j`; streams (replay, test-run, poll) print one object a line.
    #[arg(long, short = 'j', global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
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
    /// Engine that runs the filter (docs/compiled.md for compiled and auto).
    #[arg(long, value_enum, default_value_t = engines::DEFAULT)]
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
pub enum Cmd {
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
        /// Engine for every policy (wasm or ebpf: compiled and auto are not
        /// supported by apply yet).
        #[arg(long, value_enum, default_value_t = engines::DEFAULT)]
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
    Map(MapCmd),
    /// Record the packets the attached filter gives some verdicts into a
    /// pcapng file (verdict and filter in each packet's comment), until
    /// -c packets, --duration seconds or Ctrl-C.
    Capture(CaptureArgs),
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

/// `--engine`: one value per entry of [`engines::ENGINES`], in its order.
impl ValueEnum for Engine {
    fn value_variants<'a>() -> &'a [Self] {
        engines::ENGINES
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()).help(self.about()))
    }
}

impl XdpMode {
    /// The attach mode as xdp-bridge's netlink calls take it.
    pub fn bridge(self) -> wasmfw_xdp_bridge::Mode {
        match self {
            XdpMode::Skb => wasmfw_xdp_bridge::Mode::Skb,
            XdpMode::Native => wasmfw_xdp_bridge::Mode::Native,
        }
    }
}

impl HookArg {
    /// The hook as policies name it.
    pub fn hook(self) -> wasmfw_policy::Hook {
        match self {
            HookArg::Xdp => wasmfw_policy::Hook::Xdp,
            HookArg::Netfilter => wasmfw_policy::Hook::Netfilter,
        }
    }
}

/// What `map` does.
#[derive(clap::Subcommand, Debug)]
pub enum MapCmd {
    /// The filter's maps: name, kind, key and value sizes, capacity.
    List {
        #[arg(long)]
        iface: String,
    },
    /// Every entry of a map (per-CPU maps: one value per CPU).
    Dump {
        #[arg(long)]
        iface: String,
        name: String,
    },
    /// One key's value.
    Get {
        #[arg(long)]
        iface: String,
        name: String,
        /// Hex bytes, the map's key size; for list maps also a port,
        /// CIDR prefix or domain name (tried first; `0x` forces hex).
        key: String,
    },
    /// Sets a key (created if missing; per-CPU maps: on every CPU).
    Set {
        #[arg(long)]
        iface: String,
        name: String,
        key: String,
        /// Hex bytes, the map's value size; list maps default to `01`.
        value: Option<String>,
    },
    /// Deletes a key.
    Del {
        #[arg(long)]
        iface: String,
        name: String,
        key: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VerdictArg {
    Drop,
    Pass,
    /// The filter trapped or ran out of fuel (its on_fault verdict applied);
    /// Wasm engine only: the eBPF twins cannot fault.
    Fault,
}

#[derive(clap::Args, Debug)]
pub struct CaptureArgs {
    /// Interface whose attached filter to watch (this network namespace).
    #[arg(long)]
    pub iface: String,
    /// Verdicts to record (repeat or comma-separate for several).
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    pub verdict: Vec<VerdictArg>,
    /// The pcapng file to write.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: PathBuf,
    /// Stop after this many packets.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Bytes kept of each packet (at most 2048).
    #[arg(long, default_value_t = crate::kmod::CAPTURE_SNAPLEN)]
    pub snaplen: u32,
}
