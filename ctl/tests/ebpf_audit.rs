//! Audit mode and `load --replace [--keep-maps]` of the ebpf engine, with
//! real traffic on a veth pair between two network namespaces (`wfau-a`
//! sends, `wfau-b` runs the filter). Needs root, XDP and `cargo xtask
//! build-ebpf`; otherwise it prints SKIPPED. One #[test] runs every
//! scenario in turn: they share the namespaces.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const NS_A: &str = "wfau-a";
const NS_B: &str = "wfau-b";
const IF_A: &str = "wfau-a0";
const IF_B: &str = "wfau-b0";
const IP_A: &str = "10.202.0.1";
const IP_B: &str = "10.202.0.2";
/// The bucket key of IP_A as `map dump` prints it (`::ffff:10.202.0.1`).
const KEY_A: &str = "00000000000000000000ffff0aca0001";

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

/// The namespaces, the veth pair and the state dir: removed on drop, also
/// when an assertion fails.
struct Lab {
    state: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        for ns in [NS_A, NS_B] {
            let _ = sh(Command::new("ip").args(["netns", "del", ns]));
            ip(&["netns", "add", ns]);
        }
        let lab = Lab { state: tempfile::tempdir().unwrap() };
        ip(&["link", "add", IF_A, "netns", NS_A, "type", "veth", "peer", "name", IF_B, "netns", NS_B]);
        ip(&["-n", NS_A, "addr", "add", &format!("{IP_A}/24"), "dev", IF_A]);
        ip(&["-n", NS_B, "addr", "add", &format!("{IP_B}/24"), "dev", IF_B]);
        for (ns, dev) in [(NS_A, IF_A), (NS_B, IF_B), (NS_A, "lo"), (NS_B, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

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

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.wasmfw_ok(&a)).unwrap()
    }

    fn counters(&self) -> serde_json::Value {
        self.json(&["stats", "--iface", IF_B])[0]["counters"].clone()
    }

    /// A policy in the lab's state dir (the ebpf engine needs no .wasm).
    fn policy(&self, name: &str, text: &str) -> String {
        let p = self.state.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    /// Pings with `args`; (transmitted, received) as ping reports them.
    fn ping(&self, args: &[&str]) -> (u64, u64) {
        let mut a = vec!["ping", "-q"];
        a.extend_from_slice(args);
        a.push(IP_B);
        let out = sh(&mut in_ns(NS_A, &a));
        ping_summary(&String::from_utf8_lossy(&out.stdout))
    }

    /// `count` SYNs from IP_A to port 8080, 1 ms apart.
    fn syns(&self, count: u32) {
        let out = sh(&mut in_ns(
            NS_A,
            &["timeout", "20", "hping3", "-q", "-S", "-p", "8080", "-i", "u1000", "-c", &count.to_string(), "-a", IP_A, IP_B],
        ));
        assert!(out.status.code().is_some(), "hping3 killed");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.wasmfw(&["unload", "--iface", IF_B]);
        let _ = sh(Command::new("ip").args(["netns", "del", NS_A]));
        let _ = sh(Command::new("ip").args(["netns", "del", NS_B]));
    }
}

/// "N packets transmitted, M received" of ping's summary.
fn ping_summary(text: &str) -> (u64, u64) {
    let line = text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("no ping summary: {text}"));
    let nums: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect();
    (nums[0], nums[1])
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
    for tool in ["ip", "ping", "hping3"] {
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
fn ebpf_audit_and_keep_maps() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED ebpf_audit_and_keep_maps: {why}");
        return;
    }
    let lab = Lab::new();
    assert_eq!(lab.ping(&["-c", "1", "-W", "1"]).1, 1, "no connectivity before loading anything");

    // --- audit: pings answered, their drops counted ----------------------
    let audit = lab.policy("icmp-audit.toml", "filter = \"icmp_drop\"\nmode = \"audit\"\n");
    let enforce = lab.policy("icmp-enforce.toml", "filter = \"icmp_drop\"\n");
    let loaded = lab.json(&["load", &audit, "--iface", IF_B, "--engine", "ebpf"]);
    assert_eq!(loaded["attached"]["filter_mode"], "audit", "{loaded}");
    assert_eq!(lab.ping(&["-c", "5", "-i", "0.2", "-W", "1"]), (5, 5), "audit mode dropped pings");
    let c = lab.counters();
    assert_eq!((n(&c, "audit_would_drop"), n(&c, "echo_dropped"), n(&c, "drop")), (5, 5, 5), "{c}");
    assert_eq!(n(&c, "packets"), n(&c, "pass") + n(&c, "drop"), "{c}");
    let st = lab.json(&["status"]);
    assert_eq!(st[0]["filter_mode"], "audit", "{st}");
    let text = lab.wasmfw_ok(&["status"]);
    assert!(text.lines().next().unwrap().contains("MODE") && text.contains(" audit "), "{text}");

    // --- audit -> enforce under a ping flood: no request unfiltered or lost
    // Every echo request is answered (the audit program passed it) or
    // counted by the enforcing program (it dropped it): sent = received +
    // echo_dropped, with both sides non-empty.
    let old_prog = loaded["attached"]["prog_id"].as_u64().unwrap();
    let flood = in_ns(NS_A, &["ping", "-q", "-i", "0.002", "-c", "1500", "-W", "1", IP_B])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    // The same filter, a policy without `mode`: enforce.
    let swapped = lab.json(&["load", &enforce, "--iface", IF_B, "--engine", "ebpf", "--replace"]);
    let out = flood.wait_with_output().unwrap();
    let (sent, received) = ping_summary(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(swapped["attached"]["filter_mode"], "enforce", "{swapped}");
    assert_ne!(swapped["attached"]["prog_id"].as_u64().unwrap(), old_prog, "{swapped}");
    let c = lab.counters();
    let dropped = n(&c, "echo_dropped");
    eprintln!("audit->enforce under flood: sent {sent}, received {received}, dropped by the new program {dropped}");
    assert!(received > 0 && dropped > 0, "the switch was not inside the flood: sent {sent} received {received} dropped {dropped}");
    assert_eq!(received + dropped, sent, "requests neither answered nor dropped by the new program: {c}");
    assert_eq!(n(&c, "audit_would_drop"), 0, "{c}");
    assert_eq!(lab.ping(&["-c", "3", "-i", "0.2", "-W", "1"]).1, 0, "enforce mode answered pings");
    // --audit overrides the policy, and --keep-maps needs --replace.
    let back = lab.json(&["load", &enforce, "--iface", IF_B, "--engine", "ebpf", "--replace", "--audit"]);
    assert_eq!(back["attached"]["filter_mode"], "audit", "{back}");
    assert_eq!(lab.ping(&["-c", "2", "-i", "0.2", "-W", "1"]).1, 2);
    let refused = lab.wasmfw(&["load", &enforce, "--iface", IF_B, "--engine", "ebpf", "--keep-maps"]);
    assert!(!refused.status.success());
    lab.wasmfw_ok(&["unload", "--iface", IF_B]);

    // --- --keep-maps: a SYN flooder's bucket survives a blocklist change --
    let l4 = |ports: &str| format!("filter = \"l4_dos\"\n[params]\nsyn_rate = 1\nsyn_burst = 20\nblocked_ports = [{ports}]\n");
    let first = lab.policy("l4-a.toml", &l4("23"));
    let second = lab.policy("l4-b.toml", &l4("23, 2323"));
    lab.wasmfw_ok(&["load", &first, "--iface", IF_B, "--engine", "ebpf"]);
    lab.syns(60);
    let flooded = std::time::Instant::now();
    let c = lab.counters();
    assert!(n(&c, "syn_limited") >= 35, "the bucket was not exhausted: {c}");
    let kept = lab.json(&["load", &second, "--iface", IF_B, "--engine", "ebpf", "--replace", "--keep-maps"]);
    let maps = kept["kept_maps"].as_array().unwrap_or_else(|| panic!("no kept_maps: {kept}"));
    let syn = maps.iter().find(|m| m["map"] == "syn_buckets").unwrap_or_else(|| panic!("{kept}"));
    assert_eq!((syn["kept"].as_bool(), syn["entries"].as_u64()), (Some(true), Some(1)), "{kept}");
    let ports = maps.iter().find(|m| m["map"] == "blocked_ports").unwrap();
    assert_eq!(ports["kept"], false, "configuration must come from the new policy: {kept}");
    let dump = lab.json(&["map", "dump", "syn_buckets", "--iface", IF_B]);
    assert!(dump.to_string().contains(KEY_A), "bucket of {IP_A} not carried over: {dump}");
    // The flooder is still limited: the carried bucket refilled 1 token a
    // second since the flood; a fresh one would pass all 10.
    let want = 10u64.saturating_sub(flooded.elapsed().as_secs() + 2).max(1);
    lab.syns(10);
    let c = lab.counters();
    assert!(n(&c, "syn_limited") >= want, "carried bucket not in force (want >= {want} limited): {c}");
    // Without --keep-maps the new program starts with a full bucket.
    lab.wasmfw_ok(&["load", &first, "--iface", IF_B, "--engine", "ebpf", "--replace"]);
    assert_eq!(lab.json(&["map", "dump", "syn_buckets", "--iface", IF_B]).as_array().map(Vec::len), Some(0));
    lab.syns(10);
    let c = lab.counters();
    assert_eq!(n(&c, "syn_limited"), 0, "a fresh bucket limited: {c}");
}
