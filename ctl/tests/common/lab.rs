//! The network lab of the host eBPF tests (ebpf_log, ebpf_audit,
//! ebpf_capture, ebpf_netns): network namespaces that are removed on drop,
//! veth pairs between them, and a `Lab` where one namespace sends and the
//! other runs `wasmfw` with a state dir of its own. The test files only
//! define tests: each names its namespaces, interfaces and addresses in a
//! `Net`, and says what it needs through `skip_reason`.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::root;

pub fn sh(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// `ip ARGS`, which must succeed.
pub fn ip(args: &[&str]) {
    let out = sh(Command::new("ip").args(args));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ARGS` run in network namespace `ns` (`ip netns exec`).
pub fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// Why an eBPF network test cannot run here, if it cannot: not root, a
/// twin of `ebpf` not built (`cargo xtask build-ebpf`), a filter of
/// `filters` not built (`cargo xtask build-filters`), a tool of `tools`
/// (besides `ip`) not installed. The test prints `SKIPPED name: reason`.
pub fn skip_reason(ebpf: &[&str], filters: &[&str], tools: &[&str]) -> Option<String> {
    // SAFETY: plain libc call.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (needs CAP_NET_ADMIN, CAP_BPF and network namespaces)".into());
    }
    for o in ebpf {
        if !root().join(format!("target/ebpf/{o}.o")).is_file() {
            return Some(format!("target/ebpf/{o}.o missing: run `cargo xtask build-ebpf`"));
        }
    }
    for f in filters {
        if !root().join(format!("target/filters/{f}.wasm")).is_file() {
            return Some(format!("target/filters/{f}.wasm missing: run `cargo xtask build-filters`"));
        }
    }
    for tool in std::iter::once(&"ip").chain(tools) {
        if !sh(Command::new("sh").args(["-c", &format!("command -v {tool}")])).status.success() {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// Whether `test` is to be skipped for `reason` (of `skip_reason`): if so,
/// prints `SKIPPED test: reason`.
pub fn skipped(test: &str, reason: Option<String>) -> bool {
    match reason {
        Some(why) => {
            eprintln!("SKIPPED {test}: {why}");
            true
        }
        None => false,
    }
}

/// Network namespaces, created afresh (a stale one of the same name, left
/// by a killed run, is deleted first) and deleted on drop, also when an
/// assertion fails. Deleting a namespace deletes the veth ends in it.
pub struct Netns(Vec<String>);

impl Netns {
    pub fn new(names: &[&str]) -> Netns {
        let nets = Netns(names.iter().map(|s| s.to_string()).collect());
        for ns in names {
            let _ = sh(Command::new("ip").args(["netns", "del", ns]));
            ip(&["netns", "add", ns]);
        }
        nets
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = sh(Command::new("ip").args(["netns", "del", ns]));
        }
    }
}

/// A veth pair: `if_a` in `ns_a` with address `cidr_a`, `if_b` in `ns_b`
/// with `cidr_b`, both up.
pub fn veth((ns_a, if_a, cidr_a): (&str, &str, &str), (ns_b, if_b, cidr_b): (&str, &str, &str)) {
    ip(&["link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b]);
    ip(&["-n", ns_a, "addr", "add", cidr_a, "dev", if_a]);
    ip(&["-n", ns_b, "addr", "add", cidr_b, "dev", if_b]);
    ip(&["-n", ns_a, "link", "set", if_a, "up"]);
    ip(&["-n", ns_b, "link", "set", if_b, "up"]);
}

/// What a `Lab` is made of: namespace `ns_a` sends from `ip_a` on `if_a`
/// to `ip_b` on `if_b` in `ns_b`, where `wasmfw` runs (a /24 between them).
/// Each test binary has namespace names of its own, so that binaries run
/// side by side do not collide (addresses and interface names live inside
/// the namespaces: they may repeat).
#[derive(Clone, Copy)]
pub struct Net {
    pub ns_a: &'static str,
    pub ns_b: &'static str,
    pub if_a: &'static str,
    pub if_b: &'static str,
    pub ip_a: &'static str,
    pub ip_b: &'static str,
    /// More addresses of `if_a` (other traffic sources).
    pub more_a: &'static [&'static str],
    /// Environment of every `wasmfw` the lab runs.
    pub env: &'static [(&'static str, &'static str)],
}

impl Net {
    /// Namespaces `[a, b]`, interfaces `[a, b]`, addresses `[a, b]`.
    pub const fn new(ns: [&'static str; 2], ifs: [&'static str; 2], ips: [&'static str; 2]) -> Net {
        Net { ns_a: ns[0], ns_b: ns[1], if_a: ifs[0], if_b: ifs[1], ip_a: ips[0], ip_b: ips[1], more_a: &[], env: &[] }
    }

    pub const fn more_a(self, more_a: &'static [&'static str]) -> Net {
        Net { more_a, ..self }
    }

    pub const fn env(self, env: &'static [(&'static str, &'static str)]) -> Net {
        Net { env, ..self }
    }
}

/// The namespaces and veth pair of a `Net`, the state dir and whatever the
/// test started in them (`serve`): all removed on drop, also when an
/// assertion fails, after `wasmfw unload` of `if_b`.
pub struct Lab {
    pub net: Net,
    pub state: tempfile::TempDir,
    children: Vec<Child>,
    // Last: Drop for Lab unloads and stops the children first.
    _netns: Netns,
}

impl Lab {
    pub fn new(net: Net) -> Lab {
        let netns = Netns::new(&[net.ns_a, net.ns_b]);
        veth((net.ns_a, net.if_a, &format!("{}/24", net.ip_a)), (net.ns_b, net.if_b, &format!("{}/24", net.ip_b)));
        for a in net.more_a {
            ip(&["-n", net.ns_a, "addr", "add", &format!("{a}/24"), "dev", net.if_a]);
        }
        ip(&["-n", net.ns_a, "link", "set", "lo", "up"]);
        ip(&["-n", net.ns_b, "link", "set", "lo", "up"]);
        Lab { net, state: tempfile::tempdir().unwrap(), children: Vec::new(), _netns: netns }
    }

    /// `Lab::new(net)`, or None when `test` is `skipped` for `reason`.
    pub fn unless_skipped(test: &str, reason: Option<String>, net: Net) -> Option<Lab> {
        (!skipped(test, reason)).then(|| Lab::new(net))
    }

    /// `wasmfw ARGS` in the receiving namespace, through `ip netns exec` as
    /// users run it (a private mount namespace and /sys that end with the
    /// command: an attachment must outlive them).
    pub fn wasmfw_cmd(&self, args: &[&str]) -> Command {
        let mut c = in_ns(self.net.ns_b, &[env!("CARGO_BIN_EXE_wasmfw")]);
        c.args(args).env("WASMFW_STATE_DIR", self.state.path()).envs(self.net.env.iter().copied());
        c
    }

    pub fn wasmfw(&self, args: &[&str]) -> Output {
        sh(&mut self.wasmfw_cmd(args))
    }

    pub fn wasmfw_ok(&self, args: &[&str]) -> String {
        let out = self.wasmfw(args);
        assert!(out.status.success(), "wasmfw {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `wasmfw ARGS --json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.wasmfw_ok(&a)).unwrap()
    }

    /// The filter counters of `if_b` (`wasmfw stats --json`).
    pub fn counters(&self) -> serde_json::Value {
        self.json(&["stats", "--iface", self.net.if_b])[0]["counters"].clone()
    }

    /// Loads `policy` on `if_b` with the ebpf engine. False, after printing
    /// `SKIPPED test: ...`, when this kernel cannot attach XDP; any other
    /// failure panics.
    pub fn load_ebpf_or_skip(&self, test: &str, policy: &Path) -> bool {
        let out = self.wasmfw(&["load", policy.to_str().unwrap(), "--iface", self.net.if_b, "--engine", "ebpf"]);
        if out.status.success() {
            return true;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not supported") {
            eprintln!("SKIPPED {test}: this kernel cannot attach XDP: {err}");
            return false;
        }
        panic!("load {}: {err}", policy.display());
    }

    /// A Python `script` left running in the receiving namespace (a server:
    /// stopped on drop), given 0.5 s to start listening.
    pub fn serve(&mut self, script: &str) {
        self.children.push(in_ns(self.net.ns_b, &["python3", "-c", script]).stdin(Stdio::null()).spawn().unwrap());
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Whether a Python `script` run in the sending namespace exits 0.
    pub fn python_in_a(&self, script: &str) -> bool {
        sh(&mut in_ns(self.net.ns_a, &["python3", "-c", script])).status.success()
    }

    /// `count` pings from `ns_a` to `ip_b`, 0.2 s apart: whether any was
    /// answered (ping's exit status).
    pub fn ping(&self, count: u32) -> bool {
        let n = count.to_string();
        sh(&mut in_ns(self.net.ns_a, &["ping", "-c", &n, "-i", "0.2", "-W", "1", self.net.ip_b])).status.success()
    }

    /// `ping -q ARGS ip_b` from `ns_a`: (transmitted, received).
    pub fn ping_counts(&self, args: &[&str]) -> (u64, u64) {
        let mut a = vec!["ping", "-q"];
        a.extend_from_slice(args);
        a.push(self.net.ip_b);
        let out = sh(&mut in_ns(self.net.ns_a, &a));
        ping_summary(&String::from_utf8_lossy(&out.stdout))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.wasmfw(&["unload", "--iface", self.net.if_b]);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// "N packets transmitted, M received" of ping's summary.
pub fn ping_summary(text: &str) -> (u64, u64) {
    let line =
        text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("no ping summary: {text}"));
    let nums: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
    (nums[0], nums[1])
}

/// Counter `k` of `wasmfw stats` counters `v`.
pub fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("counter {k} missing in {v}"))
}
