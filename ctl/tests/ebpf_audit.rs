//! Audit mode and `load --replace [--keep-maps]` of the ebpf engine, with
//! real traffic on a veth pair between two network namespaces (`wfau-a`
//! sends, `wfau-b` runs the filter). Needs root, XDP and `cargo xtask
//! build-ebpf`; otherwise it prints SKIPPED. One #[test] runs every
//! scenario in turn: they share the namespaces.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::lab::{in_ns, n, ping_summary, sh, Lab, Net};

const NET: Net = Net::new(["wfau-a", "wfau-b"], ["wfau-a0", "wfau-b0"], ["10.202.0.1", "10.202.0.2"]);
const IF_B: &str = NET.if_b;
const NS_A: &str = NET.ns_a;
const IP_A: &str = NET.ip_a;
const IP_B: &str = NET.ip_b;
/// The bucket key of IP_A as `map dump` prints it (`::ffff:10.202.0.1`).
const KEY_A: &str = "00000000000000000000ffff0aca0001";

fn skip_reason() -> Option<String> {
    common::lab::skip_reason(&["icmp_drop", "l4_dos"], &[], &["ping", "hping3"])
}

impl Lab {
    /// A policy in the lab's state dir (the ebpf engine needs no .wasm).
    fn policy(&self, name: &str, text: &str) -> String {
        let p = self.state.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    /// `count` SYNs from IP_A to port 8080, 1 ms apart.
    fn syns(&self, count: u32) {
        let out = sh(&mut in_ns(
            NS_A,
            &[
                "timeout",
                "20",
                "hping3",
                "-q",
                "-S",
                "-p",
                "8080",
                "-i",
                "u1000",
                "-c",
                &count.to_string(),
                "-a",
                IP_A,
                IP_B,
            ],
        ));
        assert!(out.status.code().is_some(), "hping3 killed");
    }
}

#[test]
fn ebpf_audit_and_keep_maps() {
    let Some(lab) = Lab::unless_skipped("ebpf_audit_and_keep_maps", skip_reason(), NET) else { return };
    assert_eq!(lab.ping_counts(&["-c", "1", "-W", "1"]).1, 1, "no connectivity before loading anything");

    // --- audit: pings answered, their drops counted ----------------------
    let audit = lab.policy("icmp-audit.toml", "filter = \"icmp_drop\"\nmode = \"audit\"\n");
    let enforce = lab.policy("icmp-enforce.toml", "filter = \"icmp_drop\"\n");
    let loaded = lab.json(&["load", &audit, "--iface", IF_B, "--engine", "ebpf"]);
    assert_eq!(loaded["attached"]["filter_mode"], "audit", "{loaded}");
    assert_eq!(lab.ping_counts(&["-c", "5", "-i", "0.2", "-W", "1"]), (5, 5), "audit mode dropped pings");
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
    assert!(
        received > 0 && dropped > 0,
        "the switch was not inside the flood: sent {sent} received {received} dropped {dropped}"
    );
    assert_eq!(received + dropped, sent, "requests neither answered nor dropped by the new program: {c}");
    assert_eq!(n(&c, "audit_would_drop"), 0, "{c}");
    assert_eq!(lab.ping_counts(&["-c", "3", "-i", "0.2", "-W", "1"]).1, 0, "enforce mode answered pings");
    // --audit overrides the policy, and --keep-maps needs --replace.
    let back = lab.json(&["load", &enforce, "--iface", IF_B, "--engine", "ebpf", "--replace", "--audit"]);
    assert_eq!(back["attached"]["filter_mode"], "audit", "{back}");
    assert_eq!(lab.ping_counts(&["-c", "2", "-i", "0.2", "-W", "1"]).1, 2);
    let refused = lab.wasmfw(&["load", &enforce, "--iface", IF_B, "--engine", "ebpf", "--keep-maps"]);
    assert!(!refused.status.success());
    lab.wasmfw_ok(&["unload", "--iface", IF_B]);

    // --- --keep-maps: a SYN flooder's bucket survives a blocklist change --
    let l4 = |ports: &str| {
        format!("filter = \"l4_dos\"\n[params]\nsyn_rate = 1\nsyn_burst = 20\nblocked_ports = [{ports}]\n")
    };
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
