//! `wasmfw log --iface IF [-f]` for the eBPF engine: the twins, loaded with
//! `WASMFW_EBPF_LOG=debug`, log through aya-log at the points where they
//! drop; real traffic over a veth pair between two network namespaces
//! (`wfl-a` sends, `wfl-b` runs the filter) must produce exactly the lines
//! `wasmfw log` prints, in order. Needs root, XDP and `cargo xtask
//! build-ebpf`; otherwise it prints SKIPPED.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const NS_A: &str = "wfl-a";
const NS_B: &str = "wfl-b";
const IF_A: &str = "wfl-a0";
const IF_B: &str = "wfl-b0";
const IP_A: &str = "10.202.0.1";
const IP_B: &str = "10.202.0.2";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn sh(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn ip(args: &[&str]) {
    let out = sh(Command::new("ip").args(args));
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// The namespaces, the veth pair and the state dir: removed on drop.
struct Lab {
    state: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let _ = sh(Command::new("ip").args(["netns", "del", NS_A]));
        let _ = sh(Command::new("ip").args(["netns", "del", NS_B]));
        ip(&["netns", "add", NS_A]);
        ip(&["netns", "add", NS_B]);
        let lab = Lab { state: tempfile::tempdir().unwrap() };
        ip(&["link", "add", IF_A, "netns", NS_A, "type", "veth", "peer", "name", IF_B, "netns", NS_B]);
        ip(&["-n", NS_A, "addr", "add", &format!("{IP_A}/24"), "dev", IF_A]);
        ip(&["-n", NS_B, "addr", "add", &format!("{IP_B}/24"), "dev", IF_B]);
        for (ns, dev) in [(NS_A, IF_A), (NS_B, IF_B), (NS_A, "lo"), (NS_B, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    /// `wasmfw` in the receiving namespace; the twins log at debug level.
    fn wasmfw_cmd(&self, args: &[&str]) -> Command {
        let mut c = in_ns(NS_B, &[env!("CARGO_BIN_EXE_wasmfw")]);
        c.args(args).env("WASMFW_STATE_DIR", self.state.path()).env("WASMFW_EBPF_LOG", "debug");
        c
    }

    fn wasmfw(&self, args: &[&str]) -> Output {
        sh(&mut self.wasmfw_cmd(args))
    }

    fn wasmfw_ok(&self, args: &[&str]) -> String {
        let out = self.wasmfw(args);
        assert!(out.status.success(), "wasmfw {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `wasmfw log --json`: one object per line.
    fn log_json(&self) -> Vec<serde_json::Value> {
        self.wasmfw_ok(&["log", "--iface", IF_B, "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// `count` echo requests from wfl-a, 0.2 s apart; returns how many were sent.
    fn ping(&self, count: u32) -> u32 {
        let out = sh(&mut in_ns(NS_A, &["ping", "-c", &count.to_string(), "-i", "0.2", "-W", "1", IP_B]));
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.split(" packets transmitted").next().filter(|_| l.contains("packets transmitted")).map(str::to_string))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("ping printed no statistics: {text}"))
    }

    /// One UDP datagram from wfl-a to `port` on wfl-b.
    fn udp_to(&self, port: u16) {
        let script = format!("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.sendto(b'hi',('{IP_B}',{port}))");
        assert!(sh(&mut in_ns(NS_A, &["python3", "-c", &script])).status.success());
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.wasmfw(&["unload", "--iface", IF_B]);
        let _ = sh(Command::new("ip").args(["netns", "del", NS_A]));
        let _ = sh(Command::new("ip").args(["netns", "del", NS_B]));
    }
}

fn skip_reason() -> Option<String> {
    // SAFETY: plain libc call.
    if unsafe { libc_geteuid() } != 0 {
        return Some("not root (needs CAP_NET_ADMIN, CAP_BPF and network namespaces)".into());
    }
    for o in ["icmp_drop", "l4_dos"] {
        if !root().join(format!("target/ebpf/{o}.o")).is_file() {
            return Some(format!("target/ebpf/{o}.o missing: run `cargo xtask build-ebpf`"));
        }
    }
    for tool in ["ip", "python3", "ping"] {
        if !sh(Command::new("sh").args(["-c", &format!("command -v {tool}")])).status.success() {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn msgs(lines: &[serde_json::Value]) -> Vec<String> {
    lines.iter().map(|l| l["msg"].as_str().unwrap_or_else(|| panic!("no msg in {l}")).to_string()).collect()
}

#[test]
fn ebpf_log_lines_match_traffic() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED ebpf_log_lines_match_traffic: {why}");
        return;
    }
    let lab = Lab::new();
    let icmp = root().join("policies/icmp.toml");
    let out = lab.wasmfw(&["load", icmp.to_str().unwrap(), "--iface", IF_B, "--engine", "ebpf"]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not supported") {
            eprintln!("SKIPPED ebpf_log_lines_match_traffic: this kernel cannot attach XDP: {err}");
            return;
        }
        panic!("load icmp.toml: {err}");
    }

    // icmp_drop: one line per echo request dropped, nothing else.
    let sent = lab.ping(4);
    assert_eq!(sent, 4);
    let lines = lab.log_json();
    assert_eq!(msgs(&lines), vec!["icmp_drop: echo request dropped"; 4], "{lines:?}");
    for l in &lines {
        assert_eq!(l["level"], "debug", "{l}");
        assert_eq!(l["filter"], "icmp_drop", "{l}");
        assert!(l["cpu"].is_null(), "aya-log records carry no CPU: {l}");
        assert!(l["ts_ns"].as_u64().is_some_and(|t| t > 0), "{l}");
    }
    // Read lines are consumed; UDP is not logged.
    lab.udp_to(9999);
    assert_eq!(lab.log_json(), Vec::<serde_json::Value>::new());

    // -f (text): follows lines as traffic comes.
    let follow = lab.wasmfw_cmd(&["log", "--iface", IF_B, "-f"]).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(lab.ping(3), 3);
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: plain libc call on our own child (SIGTERM).
    unsafe { libc_kill(follow.id() as i32, 15) };
    let out = follow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), 3, "-f printed: {text}");
    for l in &got {
        // TIME CPU LEVEL FILTER message
        let f: Vec<&str> = l.split_whitespace().collect();
        assert!(f[0].contains('.') && f[1] == "-" && f[2] == "debug" && f[3] == "icmp_drop", "{l}");
        assert!(l.ends_with(" icmp_drop: echo request dropped"), "{l}");
    }
    lab.wasmfw_ok(&["unload", "--iface", IF_B]);

    // l4_dos: the blocked ports the datagrams were sent to, in order.
    let l4 = root().join("policies/l4-dos.toml"); // blocked_ports 23, 2323
    lab.wasmfw_ok(&["load", l4.to_str().unwrap(), "--iface", IF_B, "--engine", "ebpf"]);
    for port in [23, 2323, 9999, 23] {
        lab.udp_to(port);
    }
    let lines = lab.log_json();
    assert_eq!(msgs(&lines), ["l4_dos: blocked port 23", "l4_dos: blocked port 2323", "l4_dos: blocked port 23"], "{lines:?}");
    assert!(lines.iter().all(|l| l["filter"] == "l4_dos"), "{lines:?}");
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
