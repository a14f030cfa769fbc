//! `wasmfw capture` on the eBPF engine with real traffic: pings through a
//! veth pair into a namespace whose interface runs the icmp_drop twin; the
//! drop capture must hold exactly those echo requests, each with its
//! verdict comment, readable by pcap-file, tshark (when installed) and
//! `wasmfw replay`; a pass capture holds the TCP traffic; capture is
//! disarmed when wasmfw exits. Needs root, XDP and `cargo xtask build-ebpf`,
//! `build-filters`; otherwise it prints SKIPPED.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

use common::lab::{sh, Lab, Net};
use common::{root, v4};

const NET: Net = Net::new(["wfc-a", "wfc-b"], ["wfc-a0", "wfc-b0"], ["10.204.0.1", "10.204.0.2"]);
const IF_B: &str = NET.if_b;
/// NET.ip_a and NET.ip_b, as the packets carry them.
const IP_A: [u8; 4] = [10, 204, 0, 1];
const IP_B: [u8; 4] = [10, 204, 0, 2];

fn skip_reason() -> Option<String> {
    common::lab::skip_reason(&["icmp_drop"], &["icmp_drop"], &["python3", "ping"])
}

impl Lab {
    /// The twin's capture configuration (hex of wasmfw_cap_cfg[0]).
    fn cap_cfg(&self) -> String {
        let out = self.wasmfw_ok(&["map", "get", "--iface", IF_B, "wasmfw_cap_cfg", "00000000", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["value"].as_str().unwrap_or_else(|| panic!("no value in {v}")).to_string()
    }

    /// Starts `wasmfw capture` and waits until the program is armed.
    fn start_capture(&self, args: &[&str]) -> Child {
        let child =
            self.wasmfw_cmd(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let t0 = Instant::now();
        while self.cap_cfg() == "0000000000000000" {
            assert!(t0.elapsed() < Duration::from_secs(10), "capture never armed");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    fn start_tcp_server(&mut self) {
        let script = "import socket\nt=socket.socket();t.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\nt.bind(('0.0.0.0',8080));t.listen(64)\nwhile True:\n c,_=t.accept();c.sendall(b'ok');c.close()\n";
        self.serve(script);
    }

    fn tcp(&self) -> bool {
        let ip_b = NET.ip_b;
        self.python_in_a(&format!(
            "import socket,sys\ns=socket.socket();s.settimeout(2)\ntry:\n s.connect(('{ip_b}',8080));sys.exit(0 if s.recv(2)==b'ok' else 1)\nexcept Exception:\n sys.exit(1)"
        ))
    }
}

/// Every packet of a pcapng file: link type, bytes, comments.
fn read_pcapng(path: &Path) -> Vec<(DataLink, Vec<u8>, Vec<String>)> {
    let mut r = PcapNgReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let (mut links, mut out) = (Vec::new(), Vec::new());
    while let Some(b) = r.next_block() {
        match b.unwrap() {
            Block::InterfaceDescription(i) => links.push(i.linktype),
            Block::EnhancedPacket(p) => {
                let comments = p
                    .options
                    .iter()
                    .filter_map(|o| if let EnhancedPacketOption::Comment(c) = o { Some(c.to_string()) } else { None })
                    .collect();
                out.push((links[p.interface_id as usize], p.data.to_vec(), comments));
            }
            _ => {}
        }
    }
    out
}

/// (IP protocol, source, destination, first L4 byte) of an Ethernet/IPv4 frame.
fn ipv4(frame: &[u8]) -> Option<(u8, [u8; 4], [u8; 4], u8)> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ihl = usize::from(frame[14] & 0xf) * 4;
    let l4 = *frame.get(14 + ihl)?;
    Some((frame[23], frame[26..30].try_into().ok()?, frame[30..34].try_into().ok()?, l4))
}

fn finish(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "capture: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn ebpf_capture_on_veth() {
    assert_eq!((v4(NET.ip_a), v4(NET.ip_b)), (IP_A, IP_B));
    let Some(mut lab) = Lab::unless_skipped("ebpf_capture_on_veth", skip_reason(), NET) else { return };
    let icmp = root().join("policies/icmp.toml");
    if !lab.load_ebpf_or_skip("ebpf_capture_on_veth", &icmp) {
        return;
    }
    assert_eq!(lab.cap_cfg(), "0000000000000000", "capture armed before any capture ran");

    // Drops: five pings, five echo requests in the file.
    let dir = tempfile::tempdir().unwrap();
    let drops = dir.path().join("drops.pcapng");
    let d = drops.to_str().unwrap();
    let child = lab.start_capture(&[
        "capture",
        "--iface",
        IF_B,
        "--verdict",
        "drop",
        "-c",
        "5",
        "-w",
        d,
        "--duration",
        "30",
        "--json",
    ]);
    assert!(!lab.ping(5), "pings got through icmp_drop");
    let summary = finish(child);
    assert_eq!(summary["packets"], 5, "{summary}");
    assert_eq!(summary["lost"], 0, "{summary}");
    assert_eq!(summary["engine"], "ebpf", "{summary}");
    assert_eq!(lab.cap_cfg(), "0000000000000000", "capture still armed after wasmfw capture exited");
    let pkts = read_pcapng(&drops);
    assert_eq!(pkts.len(), 5);
    for (link, data, comments) in &pkts {
        assert_eq!(*link, DataLink::ETHERNET);
        assert_eq!(ipv4(data), Some((1, IP_A, IP_B, 8)), "not an echo request from A to B: {data:02x?}");
        assert_eq!(comments.len(), 1);
        assert!(
            comments[0].starts_with("wasmfw verdict=drop filter=") && comments[0].contains(" name=icmp_drop cpu="),
            "{comments:?}"
        );
    }

    // tshark reads the same file the same way.
    if sh(Command::new("sh").args(["-c", "command -v tshark"])).status.success() {
        let out =
            sh(Command::new("tshark").args(["-r", d, "-Y", "icmp.type == 8", "-T", "fields", "-e", "frame.comment"]));
        assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "tshark: {text}");
        assert!(lines.iter().all(|l| l.contains("wasmfw verdict=drop")), "tshark: {text}");
    } else {
        eprintln!("tshark not installed: its check is skipped");
    }

    // Replay in userspace gives the same verdicts.
    let out =
        sh(Command::new(env!("CARGO_BIN_EXE_wasmfw")).args(["replay", icmp.to_str().unwrap(), "--pcap", d, "--json"]));
    assert!(out.status.success(), "replay: {}", String::from_utf8_lossy(&out.stderr));
    let verdicts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("verdict").is_some())
        .map(|v| v["verdict"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(verdicts, vec!["drop"; 5]);

    // Passes: a TCP connection's packets, no pings (they are dropped).
    lab.start_tcp_server();
    let passes = dir.path().join("passes.pcapng");
    let p = passes.to_str().unwrap();
    let child =
        lab.start_capture(&["capture", "--iface", IF_B, "--verdict", "pass", "--duration", "2", "-w", p, "--json"]);
    assert!(lab.tcp(), "TCP blocked by icmp_drop");
    assert!(!lab.ping(1));
    let summary = finish(child);
    let pkts = read_pcapng(&passes);
    assert_eq!(summary["packets"], pkts.len() as u64, "{summary}");
    let tcp_in: Vec<_> = pkts.iter().filter(|(_, d, _)| matches!(ipv4(d), Some((6, IP_A, IP_B, _)))).collect();
    assert!(tcp_in.len() >= 3, "fewer than 3 TCP packets from A (SYN, ACK, FIN...): {}", pkts.len());
    assert!(
        pkts.iter().all(|(_, d, c)| c[0].contains("verdict=pass") && ipv4(d).map(|i| i.0) != Some(1)),
        "a ping in the pass capture"
    );
}
