//! `wasmfw load/status/stats/unload --engine compiled|auto` on a veth pair
//! between two network namespaces (`wfc-a` sends, `wfc-b` receives and runs
//! the filter translated to eBPF by wasm2ebpf). Needs root, XDP and `cargo
//! xtask build-filters`; otherwise it prints SKIPPED. One #[test] runs every
//! scenario in turn: they share the namespaces.

mod common;

use common::lab::{n, Lab, Net};
use common::root;

const NET: Net = Net::new(["wfc-a", "wfc-b"], ["wfc-a0", "wfc-b0"], ["10.202.0.1", "10.202.0.2"]);
const IF_B: &str = NET.if_b;
const NS_B: &str = NET.ns_b;
const IP_B: &str = NET.ip_b;

/// TCP port 8080 answers "ok"; UDP port 53 echoes (a stand-in resolver).
const SERVERS: &str = r#"
import socket, threading
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 8080)); t.listen(1024)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 53))
def udp():
    while True:
        d, a = u.recvfrom(2048); u.sendto(d, a)
threading.Thread(target=udp, daemon=True).start()
while True:
    c, _ = t.accept(); c.sendall(b"ok"); c.close()
"#;

impl Lab {
    fn tcp_to(&self, port: u16) -> bool {
        let script = format!(
            "import socket,sys\ns=socket.socket();s.settimeout(2)\ntry:\n s.connect(('{IP_B}',{port}));sys.exit(0 if s.recv(2)==b'ok' else 1)\nexcept Exception:\n sys.exit(1)"
        );
        self.python_in_a(&script)
    }

    /// A DNS query for `name` to the echo on port 53: whether it came back.
    fn dns_answered(&self, name: &str) -> bool {
        let script = format!(
            "import socket,struct,sys\nq=struct.pack('>HHHHHH',0x1234,0x0100,1,0,0,0)+b''.join(bytes([len(l)])+l.encode() for l in '{name}'.split('.'))+b'\\0'+struct.pack('>HH',1,1)\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(1)\ns.sendto(q,('{IP_B}',53))\ntry:\n s.recv(2048);sys.exit(0)\nexcept Exception:\n sys.exit(1)"
        );
        self.python_in_a(&script)
    }

    /// `wasmfw --netns wfc-b ARGS` run from the host's namespace.
    fn wasmfw_netns(&self, args: &[&str]) -> std::process::Output {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_wasmfw"));
        c.args(["--netns", NS_B]).args(args).env("WASMFW_STATE_DIR", self.state.path());
        common::lab::sh(&mut c)
    }

    fn status(&self) -> serde_json::Value {
        self.json(&["status"])
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn compiled_engine_on_veth() {
    let reason = common::lab::skip_reason(&[], &["icmp_drop", "l4_dos", "dns_block"], &["python3", "ping"]);
    let Some(mut lab) = Lab::unless_skipped("compiled_engine_on_veth", reason, NET) else { return };
    lab.serve(SERVERS);
    assert!(lab.ping(1), "no connectivity before loading anything");
    assert!(lab.tcp_to(8080), "no TCP before loading anything");

    // --- icmp_drop (policy) through `ip netns exec` ------------------------
    let icmp = root().join("policies/icmp.toml");
    let out = lab.wasmfw(&["load", icmp.to_str().unwrap(), "--iface", IF_B, "--engine", "compiled"]);
    if !out.status.success() && stderr(&out).contains("not supported") {
        eprintln!("SKIPPED compiled_engine_on_veth: this kernel cannot attach XDP: {}", stderr(&out));
        return;
    }
    assert!(out.status.success(), "load compiled: {}", stderr(&out));
    assert!(!lab.ping(3), "ping got through compiled icmp_drop");
    assert!(lab.tcp_to(8080), "TCP blocked by compiled icmp_drop");
    let c = lab.counters();
    assert_eq!(n(&c, "echo_dropped"), 3, "{c}");
    assert_eq!(n(&c, "drop"), 3, "{c}");
    assert_eq!(n(&c, "packets"), n(&c, "pass") + n(&c, "drop"), "{c}");
    assert!(n(&c, "pass") >= 3, "the TCP exchange passed uncounted: {c}");
    for k in ["fault_trap", "fault_fuel", "audit_would_drop"] {
        assert_eq!(n(&c, k), 0, "{k}: {c}");
    }
    let st = lab.status();
    assert_eq!(st[0]["engine"], "compiled", "{st}");
    assert_eq!(st[0]["iface"], IF_B);
    assert_eq!(st[0]["netns"], NS_B);
    assert_eq!(st[0]["attached"], true);
    assert_eq!(st[0]["filter"], "icmp_drop");
    assert_eq!(st[0]["mode"], "skb");
    let text = lab.wasmfw_ok(&["status"]);
    assert!(text.lines().any(|l| l.contains(IF_B) && l.contains("compiled") && l.contains("attached")), "{text}");
    let text = lab.wasmfw_ok(&["stats", "--iface", IF_B]);
    assert!(text.contains("(compiled)") && text.contains("echo_dropped=3"), "{text}");

    // Already attached; --replace swaps; verbs not done yet fail clearly.
    let again = lab.wasmfw(&["load", icmp.to_str().unwrap(), "--iface", IF_B, "--engine", "compiled"]);
    assert!(!again.status.success() && stderr(&again).contains("already"), "{}", stderr(&again));
    let old = st[0]["prog_id"].as_u64().unwrap();
    lab.wasmfw_ok(&["load", icmp.to_str().unwrap(), "--iface", IF_B, "--engine", "compiled", "--replace"]);
    let st = lab.status();
    assert_ne!(st[0]["prog_id"].as_u64().unwrap(), old, "--replace kept the old program: {st}");
    assert!(!lab.ping(1), "ping got through after --replace");
    for args in [
        vec!["log", "--iface", IF_B],
        vec!["capture", "--iface", IF_B, "--verdict", "drop", "-w", "/dev/null", "-c", "1"],
        vec!["apply", "/nonexistent", "--engine", "compiled"],
    ] {
        let out = lab.wasmfw(&args);
        let err = stderr(&out);
        assert!(!out.status.success() && err.contains("not supported by the compiled engine yet"), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    }
    let out =
        lab.wasmfw(&["load", icmp.to_str().unwrap(), "--iface", IF_B, "--engine", "compiled", "--hook", "netfilter"]);
    assert!(!out.status.success() && stderr(&out).contains("xdp hook only"), "{}", stderr(&out));

    let d: serde_json::Value = lab.json(&["unload", "--iface", IF_B]);
    assert_eq!(d["detached"]["engine"], "compiled", "{d}");
    assert!(lab.ping(1), "ping still fails after unload");
    assert_eq!(lab.status(), serde_json::json!([]));

    // --- a bare .wasm through --netns, from the host's namespace -----------
    let wasm = root().join("target/filters/icmp_drop.wasm");
    let out = lab.wasmfw_netns(&["load", wasm.to_str().unwrap(), "--iface", IF_B, "--engine", "compiled"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!lab.ping(2), "ping got through compiled icmp_drop loaded with --netns");
    let out = lab.wasmfw_netns(&["stats", "--iface", IF_B, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(n(&v[0]["counters"], "echo_dropped"), 2, "{v}");
    let out = lab.wasmfw_netns(&["unload", "--iface", IF_B]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(lab.ping(1), "ping still fails after unload --netns");

    // --- native XDP mode (veth has a driver hook), then audit ----------
    lab.wasmfw_ok(&["load", icmp.to_str().unwrap(), "--iface", IF_B, "--engine", "compiled", "--mode", "native"]);
    assert_eq!(lab.status()[0]["mode"], "native");
    assert!(!lab.ping(2), "ping got through compiled icmp_drop in native mode");
    assert_eq!(n(&lab.counters(), "echo_dropped"), 2);
    lab.wasmfw_ok(&["unload", "--iface", IF_B]);
    lab.wasmfw_ok(&["load", icmp.to_str().unwrap(), "--iface", IF_B, "--engine", "compiled", "--audit"]);
    assert_eq!(lab.status()[0]["filter_mode"], "audit");
    assert!(lab.ping(2), "ping dropped by compiled icmp_drop in audit mode");
    let c = lab.counters();
    // `drop` still counts the filter's drops in audit mode (docs/audit-and-replace.md).
    assert_eq!((n(&c, "audit_would_drop"), n(&c, "echo_dropped"), n(&c, "drop")), (2, 2, 2), "{c}");
    lab.wasmfw_ok(&["unload", "--iface", IF_B]);

    // --- --engine auto picks compiled (the verifier accepts icmp_drop) -----
    let r = lab.json(&["load", icmp.to_str().unwrap(), "--iface", IF_B, "--engine", "auto"]);
    assert_eq!(r["attached"]["engine"], "compiled", "{r}");
    assert_eq!(r["attached"]["chosen_by"], "auto", "{r}");
    assert_eq!(lab.status()[0]["engine"], "compiled");
    assert!(!lab.ping(1), "ping got through icmp_drop loaded with --engine auto");
    lab.wasmfw_ok(&["unload", "--iface", IF_B]);

    // A filter the compiled tier refuses (log on the packet path): without
    // the module, auto says why and what to do.
    if !std::path::Path::new("/dev/wasmfw").exists() {
        let d = tempfile::tempdir().unwrap();
        let logging = d.path().join("logging.wasm");
        let wat = r#"(module (import "wasmfw" "log" (func $log (param i32 i32 i32)))
          (memory (export "memory") 1)
          (func (export "wasmfw_abi_version") (result i32) i32.const 1)
          (func (export "wasmfw_buffer") (result i32) i32.const 1024)
          (func (export "wasmfw_buffer_len") (result i32) i32.const 2048)
          (func (export "wasmfw_init") (param i32) (result i32) i32.const 0)
          (func (export "wasmfw_filter") (param i32 i32) (result i32)
            (call $log (i32.const 0) (i32.const 0) (i32.const 1)) (i32.const 0)))"#;
        std::fs::write(&logging, wat::parse_str(wat).unwrap()).unwrap();
        let out = lab.wasmfw(&["load", logging.to_str().unwrap(), "--iface", IF_B, "--engine", "auto"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "auto loaded a filter the compiled tier refuses");
        assert!(err.contains("log on the packet path") && err.contains("wasmfw.ko"), "{err}");
        assert_eq!(lab.status(), serde_json::json!([]));
    }

    // --- l4_dos: the verifier accepts it; port 23 is always dropped -------
    let l4 = root().join("policies/l4-dos.toml");
    lab.wasmfw_ok(&["load", l4.to_str().unwrap(), "--iface", IF_B, "--engine", "compiled"]);
    assert!(!lab.tcp_to(23), "TCP to port 23 answered under l4_dos");
    assert!(lab.tcp_to(8080), "TCP to 8080 blocked by l4_dos");
    let c = lab.counters();
    assert!(n(&c, "blocked_port") >= 1, "{c}");
    assert_eq!(n(&c, "fault_trap") + n(&c, "fault_fuel"), 0, "{c}");
    // `map` reaches the program's BPF maps: the next packet sees an edit.
    let maps = lab.json(&["map", "list", "--iface", IF_B]);
    let names: Vec<&str> = maps.as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(names.contains(&"blocked_ports") && !names.iter().any(|n| n.starts_with("wf_")), "{maps}");
    lab.wasmfw_ok(&["map", "set", "--iface", IF_B, "blocked_ports", "8080"]);
    let before = n(&lab.counters(), "blocked_port");
    assert!(!lab.tcp_to(8080), "TCP to 8080 answered after `map set blocked_ports 8080`");
    assert!(n(&lab.counters(), "blocked_port") > before);
    lab.wasmfw_ok(&["map", "del", "--iface", IF_B, "blocked_ports", "8080"]);
    assert!(lab.tcp_to(8080), "TCP to 8080 blocked after `map del blocked_ports 8080`");
    lab.wasmfw_ok(&["unload", "--iface", IF_B]);

    // --- dns_block: a blocked name is dropped, another answered -----------
    let dns = root().join("policies/dns-block.toml"); // blocks ads.example.com, tracker.test
    lab.wasmfw_ok(&["load", dns.to_str().unwrap(), "--iface", IF_B, "--engine", "compiled"]);
    assert!(lab.dns_answered("www.example.org"), "www.example.org dropped by dns_block");
    assert!(!lab.dns_answered("x.ads.example.com"), "x.ads.example.com answered under dns_block");
    let c = lab.counters();
    assert_eq!(n(&c, "blocked"), 1, "{c}");
    assert_eq!(n(&c, "fault_trap") + n(&c, "fault_fuel"), 0, "{c}");
    lab.wasmfw_ok(&["unload", "--iface", IF_B]);
}
