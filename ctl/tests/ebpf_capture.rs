//! `wasmfw capture` on the eBPF engine with real traffic: pings through a
//! veth pair into a namespace whose interface runs the icmp_drop twin; the
//! drop capture must hold exactly those echo requests, each with its
//! verdict comment, readable by pcap-file, tshark (when installed) and
//! `wasmfw replay`; a pass capture holds the TCP traffic; capture is
//! disarmed when wasmfw exits. Needs root, XDP and `cargo xtask build-ebpf`,
//! `build-filters`; otherwise it prints SKIPPED.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

const NS_A: &str = "wfc-a";
const NS_B: &str = "wfc-b";
const IF_A: &str = "wfc-a0";
const IF_B: &str = "wfc-b0";
const IP_A: [u8; 4] = [10, 204, 0, 1];
const IP_B: [u8; 4] = [10, 204, 0, 2];

fn dotted(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

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

/// Namespaces, veth pair, state dir, servers: removed on drop.
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
        ip(&["-n", NS_A, "addr", "add", &format!("{}/24", dotted(IP_A)), "dev", IF_A]);
        ip(&["-n", NS_B, "addr", "add", &format!("{}/24", dotted(IP_B)), "dev", IF_B]);
        for (ns, dev) in [(NS_A, IF_A), (NS_B, IF_B), (NS_A, "lo"), (NS_B, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    fn wasmfw_cmd(&self, args: &[&str]) -> Command {
        let mut c = in_ns(NS_B, &[env!("CARGO_BIN_EXE_wasmfw")]);
        c.args(args).env("WASMFW_STATE_DIR", self.state.path());
        c
    }

    fn wasmfw_ok(&self, args: &[&str]) -> String {
        let out = sh(&mut self.wasmfw_cmd(args));
        assert!(out.status.success(), "wasmfw {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The twin's capture configuration (hex of wasmfw_cap_cfg[0]).
    fn cap_cfg(&self) -> String {
        let out = self.wasmfw_ok(&["map", "get", "--iface", IF_B, "wasmfw_cap_cfg", "00000000", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["value"].as_str().unwrap_or_else(|| panic!("no value in {v}")).to_string()
    }

    /// Starts `wasmfw capture` and waits until the program is armed.
    fn start_capture(&self, args: &[&str]) -> Child {
        let child = self.wasmfw_cmd(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let t0 = Instant::now();
        while self.cap_cfg() == "0000000000000000" {
            assert!(t0.elapsed() < Duration::from_secs(10), "capture never armed");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    fn start_tcp_server(&mut self) {
        let script = "import socket\nt=socket.socket();t.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\nt.bind(('0.0.0.0',8080));t.listen(64)\nwhile True:\n c,_=t.accept();c.sendall(b'ok');c.close()\n";
        self.children.push(in_ns(NS_B, &["python3", "-c", script]).stdin(Stdio::null()).spawn().unwrap());
        std::thread::sleep(Duration::from_millis(500));
    }

    fn tcp(&self) -> bool {
        let script = format!(
            "import socket,sys\ns=socket.socket();s.settimeout(2)\ntry:\n s.connect(('{}',8080));sys.exit(0 if s.recv(2)==b'ok' else 1)\nexcept Exception:\n sys.exit(1)",
            dotted(IP_B)
        );
        sh(&mut in_ns(NS_A, &["python3", "-c", &script])).status.success()
    }

    fn ping(&self, count: u32) -> bool {
        let n = count.to_string();
        sh(&mut in_ns(NS_A, &["ping", "-c", &n, "-i", "0.2", "-W", "1", &dotted(IP_B)])).status.success()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = sh(&mut self.wasmfw_cmd(&["unload", "--iface", IF_B]));
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
        return Some("not root".into());
    }
    if !root().join("target/ebpf/icmp_drop.o").is_file() {
        return Some("target/ebpf/icmp_drop.o missing: run `cargo xtask build-ebpf`".into());
    }
    if !root().join("target/filters/icmp_drop.wasm").is_file() {
        return Some("target/filters/icmp_drop.wasm missing: run `cargo xtask build-filters`".into());
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
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED ebpf_capture_on_veth: {why}");
        return;
    }
    let mut lab = Lab::new();
    let icmp = root().join("policies/icmp.toml");
    let out = sh(&mut lab.wasmfw_cmd(&["load", icmp.to_str().unwrap(), "--iface", IF_B, "--engine", "ebpf"]));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not supported") {
            eprintln!("SKIPPED ebpf_capture_on_veth: this kernel cannot attach XDP: {err}");
            return;
        }
        panic!("load: {err}");
    }
    assert_eq!(lab.cap_cfg(), "0000000000000000", "capture armed before any capture ran");

    // Drops: five pings, five echo requests in the file.
    let dir = tempfile::tempdir().unwrap();
    let drops = dir.path().join("drops.pcapng");
    let d = drops.to_str().unwrap();
    let child = lab.start_capture(&["capture", "--iface", IF_B, "--verdict", "drop", "-c", "5", "-w", d, "--duration", "30", "--json"]);
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
        assert!(comments[0].starts_with("wasmfw verdict=drop filter=") && comments[0].contains(" name=icmp_drop cpu="), "{comments:?}");
    }

    // tshark reads the same file the same way.
    if sh(Command::new("sh").args(["-c", "command -v tshark"])).status.success() {
        let out = sh(Command::new("tshark").args(["-r", d, "-Y", "icmp.type == 8", "-T", "fields", "-e", "frame.comment"]));
        assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "tshark: {text}");
        assert!(lines.iter().all(|l| l.contains("wasmfw verdict=drop")), "tshark: {text}");
    } else {
        eprintln!("tshark not installed: its check is skipped");
    }

    // Replay in userspace gives the same verdicts.
    let out = sh(Command::new(env!("CARGO_BIN_EXE_wasmfw")).args(["replay", icmp.to_str().unwrap(), "--pcap", d, "--json"]));
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
    let child = lab.start_capture(&["capture", "--iface", IF_B, "--verdict", "pass", "--duration", "2", "-w", p, "--json"]);
    assert!(lab.tcp(), "TCP blocked by icmp_drop");
    assert!(!lab.ping(1));
    let summary = finish(child);
    let pkts = read_pcapng(&passes);
    assert_eq!(summary["packets"], pkts.len() as u64, "{summary}");
    let tcp_in: Vec<_> = pkts.iter().filter(|(_, d, _)| matches!(ipv4(d), Some((6, IP_A, IP_B, _)))).collect();
    assert!(tcp_in.len() >= 3, "fewer than 3 TCP packets from A (SYN, ACK, FIN...): {}", pkts.len());
    assert!(pkts.iter().all(|(_, d, c)| c[0].contains("verdict=pass") && ipv4(d).map(|i| i.0) != Some(1)), "a ping in the pass capture");
}
