//! `wasmfw load/stats/unload --engine ebpf` on a veth pair between two
//! network namespaces (`wfe-a` sends, `wfe-b` receives and runs the filter).
//! Needs root, XDP and `cargo xtask build-ebpf`; otherwise it prints SKIPPED.
//! One #[test] runs every scenario in turn: they share the namespaces.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NS_A: &str = "wfe-a";
const NS_B: &str = "wfe-b";
const IF_A: &str = "wfe-a0";
const IF_B: &str = "wfe-b0";
const IP_A: &str = "10.201.0.1";
const IP_A2: &str = "10.201.0.3";
const IP_B: &str = "10.201.0.2";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn sh(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = sh(cmd);
    assert!(out.status.success(), "{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) {
    ok(Command::new("ip").args(args));
}

fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

/// The namespaces, the veth pair, the state dir and whatever was started:
/// all removed on drop, also when an assertion fails.
struct Lab {
    state: tempfile::TempDir,
    children: Vec<Child>,
}

impl Lab {
    fn new() -> Lab {
        let _ = sh(Command::new("ip").args(["netns", "del", NS_A]));
        let _ = sh(Command::new("ip").args(["netns", "del", NS_B]));
        ip(&["netns", "add", NS_A]);
        ip(&["netns", "add", NS_B]);
        let lab = Lab { state: tempfile::tempdir().unwrap(), children: Vec::new() };
        ip(&["link", "add", IF_A, "netns", NS_A, "type", "veth", "peer", "name", IF_B, "netns", NS_B]);
        ip(&["-n", NS_A, "addr", "add", &format!("{IP_A}/24"), "dev", IF_A]);
        ip(&["-n", NS_A, "addr", "add", &format!("{IP_A2}/24"), "dev", IF_A]);
        ip(&["-n", NS_B, "addr", "add", &format!("{IP_B}/24"), "dev", IF_B]);
        for (ns, dev) in [(NS_A, IF_A), (NS_B, IF_B), (NS_A, "lo"), (NS_B, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    /// `wasmfw` in the receiving namespace, through `ip netns exec` as
    /// users run it (a private mount namespace and /sys that end with the
    /// command: the attachment must outlive them).
    fn wasmfw(&self, args: &[&str]) -> Output {
        let mut c = in_ns(NS_B, &[env!("CARGO_BIN_EXE_wasmfw")]);
        c.args(args).env("WASMFW_STATE_DIR", self.state.path());
        sh(&mut c)
    }

    fn wasmfw_ok(&self, args: &[&str]) -> String {
        let out = self.wasmfw(args);
        assert!(out.status.success(), "wasmfw {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn counters(&self) -> serde_json::Value {
        let out = self.wasmfw_ok(&["stats", "--iface", IF_B, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0]["counters"].clone()
    }

    /// TCP port 8080 and UDP port 8081 servers in the receiving namespace:
    /// each answers "ok".
    fn start_servers(&mut self) {
        let script = r#"
import socket, threading
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 8080)); t.listen(1024)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 8081))
def udp():
    while True:
        d, a = u.recvfrom(2048); u.sendto(b"ok", a)
threading.Thread(target=udp, daemon=True).start()
while True:
    c, _ = t.accept(); c.sendall(b"ok"); c.close()
"#;
        let child = in_ns(NS_B, &["python3", "-c", script]).stdin(Stdio::null()).spawn().unwrap();
        self.children.push(child);
        std::thread::sleep(Duration::from_millis(500));
    }

    fn tcp_from(&self, src: &str, port: u16) -> bool {
        let script = format!(
            "import socket,sys\ns=socket.socket();s.settimeout(2)\ns.bind(('{src}',0))\ntry:\n s.connect(('{IP_B}',{port}));sys.exit(0 if s.recv(2)==b'ok' else 1)\nexcept Exception:\n sys.exit(1)"
        );
        sh(&mut in_ns(NS_A, &["python3", "-c", &script])).status.success()
    }

    fn udp_from(&self, src: &str) -> bool {
        let script = format!(
            "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2)\ns.bind(('{src}',0));s.sendto(b'hi',('{IP_B}',8081))\ntry:\n sys.exit(0 if s.recv(2)==b'ok' else 1)\nexcept Exception:\n sys.exit(1)"
        );
        sh(&mut in_ns(NS_A, &["python3", "-c", &script])).status.success()
    }

    fn ping(&self, count: u32) -> bool {
        let n = count.to_string();
        sh(&mut in_ns(NS_A, &["ping", "-c", &n, "-i", "0.2", "-W", "1", IP_B])).status.success()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.wasmfw(&["unload", "--iface", IF_B]);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(Command::new("ip").args(["netns", "del", NS_A]));
        let _ = sh(Command::new("ip").args(["netns", "del", NS_B]));
    }
}

fn skip_reason() -> Option<String> {
    if unsafe { libc_geteuid() } != 0 {
        return Some("not root (needs CAP_NET_ADMIN, CAP_BPF and network namespaces)".into());
    }
    for o in ["icmp_drop", "l4_dos"] {
        if !root().join(format!("target/ebpf/{o}.o")).is_file() {
            return Some(format!("target/ebpf/{o}.o missing: run `cargo xtask build-ebpf`"));
        }
    }
    for tool in ["ip", "nsenter", "python3", "ping"] {
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

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("counter {k} missing in {v}"))
}

#[test]
fn ebpf_engine_on_veth() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED ebpf_engine_on_veth: {why}");
        return;
    }
    let mut lab = Lab::new();
    lab.start_servers();
    assert!(lab.ping(1), "no connectivity before loading anything");

    // XDP itself: if attaching fails for lack of XDP support, skip.
    let icmp = root().join("policies/icmp.toml");
    let out = lab.wasmfw(&["load", icmp.to_str().unwrap(), "--iface", IF_B, "--engine", "ebpf"]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Operation not supported") || err.contains("not supported") {
            eprintln!("SKIPPED ebpf_engine_on_veth: this kernel cannot attach XDP: {err}");
            return;
        }
        panic!("load icmp.toml: {err}");
    }

    // --- icmp_drop: ping fails, TCP and UDP pass --------------------------
    // (after `ip netns exec` has exited: the attachment is the interface's)
    assert!(!lab.ping(3), "ping got through icmp_drop");
    assert!(lab.tcp_from(IP_A, 8080), "TCP blocked by icmp_drop");
    assert!(lab.udp_from(IP_A), "UDP blocked by icmp_drop");
    let c = lab.counters();
    assert_eq!(n(&c, "echo_dropped"), 3, "{c}");
    assert_eq!(n(&c, "drop"), 3, "{c}");
    assert_eq!(n(&c, "packets"), n(&c, "pass") + n(&c, "drop"), "{c}");

    // Errors: already attached, wasm engine, missing interface, unknown filter.
    let again = lab.wasmfw(&["load", icmp.to_str().unwrap(), "--iface", IF_B, "--engine", "ebpf"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already"), "{}", String::from_utf8_lossy(&again.stderr));
    let status = lab.wasmfw_ok(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(st[0]["iface"], IF_B);
    assert_eq!(st[0]["netns"], NS_B);
    assert_eq!(st[0]["attached"], true);
    assert_eq!(st[0]["engine"], "ebpf");
    assert_eq!(st[0]["filter"], "icmp_drop");
    assert_eq!(st[0]["hook"], "xdp");
    assert_eq!(st[0]["mode"], "skb");
    for (args, msg) in [
        (vec!["load", icmp.to_str().unwrap(), "--iface", "wfe-none0", "--engine", "ebpf"], "no interface"),
        (vec!["load", icmp.to_str().unwrap(), "--iface", IF_B], "/dev/wasmfw"),
        (vec!["load", "nosuch.wasm", "--iface", IF_B, "--engine", "ebpf"], "unknown filter"),
    ] {
        let out = lab.wasmfw(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(msg), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    }

    lab.wasmfw_ok(&["unload", "--iface", IF_B]);
    assert!(lab.ping(1), "ping still fails after unload");

    // --- l4_dos: a SYN flood from one source is cut to the burst ---------
    let hping = sh(Command::new("sh").args(["-c", "command -v hping3"])).status.success();
    if !hping {
        eprintln!("SKIPPED l4_dos part of ebpf_engine_on_veth: hping3 is not installed");
        return;
    }
    let l4 = root().join("policies/l4-dos.toml"); // syn_rate 10, syn_burst 20, ports 23/2323
    lab.wasmfw_ok(&["load", l4.to_str().unwrap(), "--iface", IF_B, "--engine", "ebpf"]);
    const SYNS: u64 = 300;
    let t0 = Instant::now();
    let out = sh(&mut in_ns(
        NS_A,
        &["timeout", "20", "hping3", "-q", "-S", "-p", "8080", "-i", "u1000", "-c", &SYNS.to_string(), "-a", IP_A, IP_B],
    ));
    let secs = t0.elapsed().as_secs_f64();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let c = lab.counters();
    let limited = n(&c, "syn_limited");
    // At most burst + rate * duration (+1) SYNs pass; the rest are dropped.
    let max_pass = 20 + (10.0 * secs).ceil() as u64 + 1;
    assert!(limited >= SYNS - max_pass && limited <= SYNS - 20, "syn_limited {limited} of {SYNS} in {secs:.2}s: {c}\n{report}");
    // hping3 counts the SYN-ACKs of the SYNs that passed.
    if let Some(rx) = report.split(" packets received").next().and_then(|s| s.rsplit(' ').next()).and_then(|s| s.parse::<u64>().ok()) {
        assert_eq!(rx + limited, SYNS, "received {rx} + limited {limited} != sent {SYNS}: {c}\n{report}");
    }
    // The flooder stays limited; a second source address still connects.
    assert!(lab.tcp_from(IP_A2, 8080), "second source cannot connect");
    assert!(lab.udp_from(IP_A2), "UDP from second source blocked");
    // Blocked port: dropped whatever the source.
    let out = sh(&mut in_ns(NS_A, &["timeout", "10", "hping3", "-q", "-S", "-p", "23", "-i", "u10000", "-c", "5", "-a", IP_A2, IP_B]));
    assert!(out.status.code().is_some());
    let c2 = lab.counters();
    assert_eq!(n(&c2, "blocked_port"), 5, "{c2}");
    assert_eq!(n(&c2, "allowed"), 0, "{c2}");
    assert_eq!(n(&c2, "packets"), n(&c2, "pass") + n(&c2, "drop"), "{c2}");
    assert_eq!(n(&c2, "drop"), n(&c2, "syn_limited") + n(&c2, "blocked_port") + n(&c2, "udp_limited"), "{c2}");
    eprintln!("l4_dos: {SYNS} SYNs in {secs:.2}s, syn_limited={limited}; counters {c2}");

    // Maps from the CLI: the flooder has a bucket; blocking port 8080 live
    // (key: the u16 port in the map's native byte order) changes the next
    // verdict for a source that connected a moment ago; deleting unblocks.
    let dump: serde_json::Value =
        serde_json::from_str(&lab.wasmfw_ok(&["map", "dump", "--iface", IF_B, "syn_buckets", "--json"])).unwrap();
    let flooder = "00000000000000000000ffff0ac90001"; // ::ffff:10.201.0.1
    assert!(dump.as_array().unwrap().iter().any(|e| e["key"] == flooder), "no bucket for the flooder: {dump}");
    let port: String = 8080u16.to_ne_bytes().iter().map(|b| format!("{b:02x}")).collect();
    lab.wasmfw_ok(&["map", "set", "--iface", IF_B, "blocked_ports", &port, "01"]);
    assert!(!lab.tcp_from(IP_A2, 8080), "port 8080 still open after `map set blocked_ports`");
    let got = lab.wasmfw_ok(&["map", "get", "--iface", IF_B, "blocked_ports", &port, "--json"]);
    assert!(got.contains("\"01\""), "{got}");
    lab.wasmfw_ok(&["map", "del", "--iface", IF_B, "blocked_ports", &port]);
    assert!(lab.tcp_from(IP_A2, 8080), "port 8080 still blocked after `map del`");
    let bad = lab.wasmfw(&["map", "set", "--iface", IF_B, "blocked_ports", "1f", "01"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("2 bytes"), "{bad:?}");
    // Typed keys (docs/filter-abi.md, "List maps"): a port, then an allowed
    // prefix that overrides it, each seen by the next connection.
    lab.wasmfw_ok(&["map", "set", "--iface", IF_B, "blocked_ports", "8080"]);
    assert!(!lab.tcp_from(IP_A2, 8080), "port 8080 still open after `map set blocked_ports 8080`");
    let got: serde_json::Value =
        serde_json::from_str(&lab.wasmfw_ok(&["map", "get", "--iface", IF_B, "blocked_ports", "8080", "--json"])).unwrap();
    assert_eq!((got["key"].as_str(), got["as"].as_str()), (Some(port.as_str()), Some("8080")), "{got}");
    lab.wasmfw_ok(&["map", "set", "--iface", IF_B, "allow", IP_A2]);
    assert!(lab.tcp_from(IP_A2, 8080), "allowed source still blocked after `map set allow`");
    lab.wasmfw_ok(&["map", "del", "--iface", IF_B, "allow", &format!("{IP_A2}/32")]);
    assert!(!lab.tcp_from(IP_A2, 8080), "port 8080 open after `map del allow`");
    lab.wasmfw_ok(&["map", "del", "--iface", IF_B, "blocked_ports", "8080"]);
    assert!(lab.tcp_from(IP_A2, 8080), "port 8080 still blocked after `map del blocked_ports 8080`");

    lab.wasmfw_ok(&["unload", "--iface", IF_B]);
    // After unload: the flooder's address connects again, ping works.
    assert!(lab.tcp_from(IP_A, 8080), "TCP still limited after unload");
    assert!(lab.ping(1), "ping fails after unload");
    let st = lab.wasmfw_ok(&["status", "--json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&st).unwrap(), serde_json::json!([]));
}

/// dns_block on the eBPF engine: a name the policy does not block is
/// answered until `wasmfw map set dns_names <suffix>`, dropped from the next
/// query on, answered again after `map del`.
#[test]
fn ebpf_dns_names_live() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED ebpf_dns_names_live: {why}");
        return;
    }
    let mut lab = Lab::new();
    let echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',53))\nwhile True:\n d,a=s.recvfrom(2048);s.sendto(d,a)";
    lab.children.push(in_ns(NS_B, &["python3", "-c", echo]).stdin(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let answered = |name: &str| {
        let script = format!(
            "import socket,struct,sys\nq=struct.pack('>HHHHHH',0x1234,0x0100,1,0,0,0)+b''.join(bytes([len(l)])+l.encode() for l in '{name}'.split('.'))+b'\\0'+struct.pack('>HH',1,1)\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(1)\ns.sendto(q,('{IP_B}',53))\ntry:\n s.recv(2048);sys.exit(0)\nexcept Exception:\n sys.exit(1)"
        );
        sh(&mut in_ns(NS_A, &["python3", "-c", &script])).status.success()
    };
    let dns = root().join("policies/dns-block.toml"); // blocks ads.example.com, tracker.test
    lab.wasmfw_ok(&["load", dns.to_str().unwrap(), "--iface", IF_B, "--engine", "ebpf"]);
    assert!(!answered("ads.example.com"), "a name of the policy was answered");
    assert!(answered("www.example.org"), "www.example.org dropped before any edit: {}", lab.counters());
    lab.wasmfw_ok(&["map", "set", "--iface", IF_B, "dns_names", "Example.ORG"]);
    assert!(!answered("www.example.org"), "www.example.org answered after `map set dns_names example.org`");
    assert_eq!(n(&lab.counters(), "blocked"), 2);
    // Deleted by the hex key `map get` (or `map dump`) shows for it.
    let got: serde_json::Value =
        serde_json::from_str(&lab.wasmfw_ok(&["map", "get", "--iface", IF_B, "dns_names", "example.org", "--json"])).unwrap();
    let key = got["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 32, "{got}");
    let del: serde_json::Value =
        serde_json::from_str(&lab.wasmfw_ok(&["map", "del", "--iface", IF_B, "dns_names", &key, "--json"])).unwrap();
    assert_eq!(del["deleted"], true, "{del}");
    assert!(answered("www.example.org"), "www.example.org dropped after `map del`");
    lab.wasmfw_ok(&["map", "del", "--iface", IF_B, "dns_names", "ads.example.com"]);
    assert!(answered("ads.example.com"), "ads.example.com dropped after deleting the policy's entry");
    lab.wasmfw_ok(&["unload", "--iface", IF_B]);
}

/// (network namespace, interface) is the key: the same interface name in
/// two namespaces, loaded through `ip netns exec` and `nsenter`, each
/// dropping ping; `status` tells them apart and tells the truth once an
/// interface or a namespace is gone.
#[test]
fn same_iface_name_in_two_namespaces() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED same_iface_name_in_two_namespaces: {why}");
        return;
    }
    const PAIRS: [(&str, &str); 2] = [("wfs-a", "wfs-b"), ("wfs-c", "wfs-d")];
    struct Nets(tempfile::TempDir);
    impl Drop for Nets {
        fn drop(&mut self) {
            for (a, b) in PAIRS {
                let _ = sh(Command::new("ip").args(["netns", "del", a]));
                let _ = sh(Command::new("ip").args(["netns", "del", b]));
            }
        }
    }
    let nets = Nets(tempfile::tempdir().unwrap());
    let state = nets.0.path().to_path_buf();
    let wasmfw = |launcher: &[&str], args: &[&str]| {
        let mut c = Command::new(launcher[0]);
        c.args(&launcher[1..]).arg(env!("CARGO_BIN_EXE_wasmfw")).args(args).env("WASMFW_STATE_DIR", &state);
        sh(&mut c)
    };
    for (a, b) in PAIRS {
        let _ = sh(Command::new("ip").args(["netns", "del", a]));
        let _ = sh(Command::new("ip").args(["netns", "del", b]));
        ip(&["netns", "add", a]);
        ip(&["netns", "add", b]);
        ip(&["link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb", "netns", b]);
        ip(&["-n", a, "addr", "add", "10.202.0.1/24", "dev", "va"]);
        ip(&["-n", b, "addr", "add", "10.202.0.2/24", "dev", "vb"]);
        ip(&["-n", a, "link", "set", "va", "up"]);
        ip(&["-n", b, "link", "set", "vb", "up"]);
    }
    let ping = |a: &str| sh(&mut in_ns(a, &["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.202.0.2"])).status.success();
    assert!(ping("wfs-a") && ping("wfs-c"), "no connectivity before loading");
    let icmp = root().join("policies/icmp.toml");
    let icmp = icmp.to_str().unwrap();
    let out = wasmfw(&["ip", "netns", "exec", "wfs-b"], &["load", icmp, "--iface", "vb", "--engine", "ebpf"]);
    assert!(out.status.success(), "ip netns exec load: {}", String::from_utf8_lossy(&out.stderr));
    let out = wasmfw(&["nsenter", "--net=/run/netns/wfs-d"], &["load", icmp, "--iface", "vb", "--engine", "ebpf"]);
    assert!(out.status.success(), "nsenter load of the same name elsewhere: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!ping("wfs-a"), "ping passes in wfs-b after ip netns exec exited");
    assert!(!ping("wfs-c"), "ping passes in wfs-d");

    let status = |args: &[&str]| -> Vec<(String, String, bool)> {
        let out = wasmfw(&["env"], args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut l: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["netns"].as_str().unwrap().to_string(), e["iface"].as_str().unwrap().to_string(), e["attached"].as_bool().unwrap()))
            .collect();
        l.sort();
        l
    };
    let st = status(&["status", "--json"]);
    assert_eq!(st, vec![("wfs-b".into(), "vb".into(), true), ("wfs-d".into(), "vb".into(), true)]);
    // Per-namespace counters: 2 pings dropped in each.
    for ns in ["wfs-b", "wfs-d"] {
        let out = wasmfw(&["env"], &["--netns", ns, "stats", "--iface", "vb", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
        assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
        assert_eq!(n(&v[0]["counters"], "echo_dropped"), 2, "{ns}: {v}");
    }

    // Unload in one namespace leaves the other's filter in place.
    let out = wasmfw(&["env"], &["--netns", "wfs-d", "unload", "--iface", "vb"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(ping("wfs-c"), "wfs-d still drops after its unload");
    assert!(!ping("wfs-a"), "wfs-b's filter went with wfs-d's");

    // The interface goes away: GONE, never attached; unload clears it.
    ip(&["-n", "wfs-b", "link", "del", "vb"]);
    assert_eq!(status(&["status", "--json"]), vec![("wfs-b".into(), "vb".into(), false)]);
    let out = wasmfw(&["ip", "netns", "exec", "wfs-b"], &["unload", "--iface", "vb"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(status(&["status", "--json"]), vec![]);

    // The namespace goes away with a filter attached: GONE, and it is freed.
    ip(&["link", "add", "va", "netns", "wfs-a", "type", "veth", "peer", "name", "vb", "netns", "wfs-b"]);
    ip(&["-n", "wfs-b", "link", "set", "vb", "up"]);
    let out = wasmfw(&["ip", "netns", "exec", "wfs-b"], &["load", icmp, "--iface", "vb", "--engine", "ebpf"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ip(&["netns", "del", "wfs-b"]);
    let st = status(&["status", "--json"]);
    assert_eq!(st.len(), 1, "{st:?}");
    assert!(!st[0].2, "a filter in a deleted namespace is reported attached: {st:?}");
    // Its peer goes with it (no namespace leak; the kernel cleans up a
    // deleted namespace asynchronously): wfs-a has no va any more.
    let t0 = Instant::now();
    while sh(Command::new("ip").args(["-n", "wfs-a", "link", "show", "va"])).status.success() {
        assert!(t0.elapsed() < Duration::from_secs(10), "veth peer survived its namespace for 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `wasmfw apply DIR` (boot persistence) with a policy naming two
/// interfaces: the first run attaches both, the second changes nothing,
/// removing the policy file detaches them again.
#[test]
fn apply_converges() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED apply_converges: {why}");
        return;
    }
    const NS: &str = "wfp-b";
    const PEER: &str = "wfp-a";
    struct Nets;
    impl Drop for Nets {
        fn drop(&mut self) {
            let _ = sh(Command::new("ip").args(["netns", "del", NS]));
            let _ = sh(Command::new("ip").args(["netns", "del", PEER]));
        }
    }
    let _nets = Nets;
    for ns in [NS, PEER] {
        let _ = sh(Command::new("ip").args(["netns", "del", ns]));
        ip(&["netns", "add", ns]);
    }
    for i in ["1", "2"] {
        ip(&["link", "add", &format!("pa{i}"), "netns", PEER, "type", "veth", "peer", "name", &format!("pb{i}"), "netns", NS]);
        ip(&["-n", PEER, "addr", "add", &format!("10.203.{i}.1/24"), "dev", &format!("pa{i}")]);
        ip(&["-n", NS, "addr", "add", &format!("10.203.{i}.2/24"), "dev", &format!("pb{i}")]);
        ip(&["-n", PEER, "link", "set", &format!("pa{i}"), "up"]);
        ip(&["-n", NS, "link", "set", &format!("pb{i}"), "up"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("policies/icmp.toml"))
        .unwrap()
        .replace("filter = \"icmp_drop\"", &format!("filter = \"{}\"", root().join("target/filters/icmp_drop.wasm").display()))
        .lines()
        .map(|l| if l.starts_with("iface") { "iface = [\"pb1\", \"pb2\"]" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("icmp.toml"), text).unwrap();
    let apply = || -> serde_json::Value {
        let out = sh(in_ns(NS, &[env!("CARGO_BIN_EXE_wasmfw"), "apply", dir.path().to_str().unwrap(), "--engine", "ebpf", "--json"])
            .env("WASMFW_STATE_DIR", state.path()));
        assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stdout));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let ping = |i: &str| sh(&mut in_ns(PEER, &["ping", "-c", "2", "-i", "0.2", "-W", "1", &format!("10.203.{i}.2")])).status.success();
    assert!(ping("1") && ping("2"), "no connectivity before apply");
    let first = apply();
    assert_eq!(first["changed"], 2, "{first}");
    assert!(!ping("1") && !ping("2"), "ping passes after apply");
    let second = apply();
    assert_eq!(second["changed"], 0, "apply is not idempotent: {second}");
    std::fs::remove_file(dir.path().join("icmp.toml")).unwrap();
    let third = apply();
    assert_eq!(third["changed"], 2, "{third}");
    assert!(ping("1") && ping("2"), "ping still dropped after the policy was removed");
}
