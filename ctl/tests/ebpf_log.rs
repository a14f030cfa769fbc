//! `wasmfw log --iface IF [-f]` for the eBPF engine: the twins, loaded with
//! `WASMFW_EBPF_LOG=debug`, log through aya-log at the points where they
//! drop; real traffic over a veth pair between two network namespaces
//! (`wfl-a` sends, `wfl-b` runs the filter) must produce exactly the lines
//! `wasmfw log` prints, in order. Needs root, XDP and `cargo xtask
//! build-ebpf`; otherwise it prints SKIPPED.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::lab::{Lab, Net};
use common::root;

const NET: Net = Net::new(["wfl-a", "wfl-b"], ["wfl-a0", "wfl-b0"], ["10.202.0.1", "10.202.0.2"])
    // The twins log at debug level.
    .env(&[("WASMFW_EBPF_LOG", "debug")]);
const IF_B: &str = NET.if_b;

fn skip_reason() -> Option<String> {
    common::lab::skip_reason(&["icmp_drop", "l4_dos"], &[], &["python3", "ping"])
}

impl Lab {
    /// `wasmfw log --json`: one object per line.
    fn log_json(&self) -> Vec<serde_json::Value> {
        self.wasmfw_ok(&["log", "--iface", IF_B, "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// `count` echo requests from wfl-a, 0.2 s apart; returns how many were sent.
    fn pings_sent(&self, count: u32) -> u64 {
        self.ping_counts(&["-c", &count.to_string(), "-i", "0.2", "-W", "1"]).0
    }

    /// One UDP datagram from wfl-a to `port` on wfl-b.
    fn udp_to(&self, port: u16) {
        let ip_b = NET.ip_b;
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.sendto(b'hi',('{ip_b}',{port}))"
        );
        assert!(self.python_in_a(&script));
    }
}

fn msgs(lines: &[serde_json::Value]) -> Vec<String> {
    lines.iter().map(|l| l["msg"].as_str().unwrap_or_else(|| panic!("no msg in {l}")).to_string()).collect()
}

#[test]
fn ebpf_log_lines_match_traffic() {
    let Some(lab) = Lab::unless_skipped("ebpf_log_lines_match_traffic", skip_reason(), NET) else { return };
    let icmp = root().join("policies/icmp.toml");
    if !lab.load_ebpf_or_skip("ebpf_log_lines_match_traffic", &icmp) {
        return;
    }

    // icmp_drop: one line per echo request dropped, nothing else.
    let sent = lab.pings_sent(4);
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
    let follow =
        lab.wasmfw_cmd(&["log", "--iface", IF_B, "-f"]).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(lab.pings_sent(3), 3);
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: plain libc call on our own child (SIGTERM).
    unsafe { libc::kill(follow.id() as i32, libc::SIGTERM) };
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
    assert_eq!(
        msgs(&lines),
        ["l4_dos: blocked port 23", "l4_dos: blocked port 2323", "l4_dos: blocked port 23"],
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l["filter"] == "l4_dos"), "{lines:?}");
}
