//! Packets: the labelled frames both engines see (ICMP, VLANs, IPv6
//! extension headers, TCP/UDP, DNS names and pointers, truncations, floods).

use etherparse::{PacketBuilder, PacketBuilderStep, VlanId};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

trait Bytes {
    fn bytes(self, payload: &[u8]) -> Vec<u8>;
}
macro_rules! bytes_impl {
    ($($t:ty),*) => {$(
        impl Bytes for PacketBuilderStep<$t> {
            fn bytes(self, payload: &[u8]) -> Vec<u8> {
                let mut v = Vec::with_capacity(self.size(payload.len()));
                self.write(&mut v, payload).unwrap();
                v
            }
        }
    )*};
}
bytes_impl!(etherparse::Icmpv4Header, etherparse::Icmpv6Header, etherparse::TcpHeader, etherparse::UdpHeader);

fn eth() -> PacketBuilderStep<etherparse::Ethernet2Header> {
    PacketBuilder::ethernet2(MAC_A, MAC_B)
}
fn v4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}
fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}
fn vid(i: u16) -> VlanId {
    VlanId::try_new(i).unwrap()
}

/// A labelled packet.
pub(crate) struct P(pub(crate) String, pub(crate) Vec<u8>);

fn echo4(src: &str, dst: &str, ty_req: bool) -> Vec<u8> {
    let b = eth().ipv4(v4(src), v4(dst), 64);
    if ty_req {
        b.icmpv4_echo_request(1, 1).bytes(&[0x55; 32])
    } else {
        b.icmpv4_echo_reply(1, 1).bytes(&[0x55; 32])
    }
}
fn echo6(src: &str, dst: &str, ty_req: bool) -> Vec<u8> {
    let b = eth().ipv6(v6(src), v6(dst), 64);
    if ty_req {
        b.icmpv6_echo_request(1, 1).bytes(&[0x55; 32])
    } else {
        b.icmpv6_echo_reply(1, 1).bytes(&[0x55; 32])
    }
}
fn tcp4(src: &str, dport: u16, syn: bool, ack: bool) -> Vec<u8> {
    let mut b = eth().ipv4(v4(src), v4("10.0.0.2"), 64).tcp(40000, dport, 1, 64240);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(1);
    }
    b.bytes(&[])
}
fn tcp6(src: &str, dport: u16) -> Vec<u8> {
    eth().ipv6(v6(src), v6("fd00::2"), 64).tcp(40000, dport, 1, 64240).syn().bytes(&[])
}
fn udp4(src: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
    eth().ipv4(v4(src), v4("10.0.0.2"), 64).udp(40000, dport).bytes(payload)
}
fn udp6(src: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
    eth().ipv6(v6(src), v6("fd00::2"), 64).udp(40000, dport).bytes(payload)
}

/// Raw IPv6 with extension headers `exts` (next-header values, 8 bytes
/// each; fragment headers get `frag_off`) then an L4 header `l4` of `proto`.
fn ipv6_ext(exts: &[u8], frag_off: u16, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, &h) in exts.iter().enumerate() {
        let next = exts.get(i + 1).copied().unwrap_or(proto);
        if h == 44 {
            body.extend_from_slice(&[next, 0]);
            body.extend_from_slice(&(frag_off << 3).to_be_bytes());
            body.extend_from_slice(&[0, 0, 0, 1]);
        } else {
            body.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
    }
    body.extend_from_slice(l4);
    let first = exts.first().copied().unwrap_or(proto);
    let mut p = Vec::new();
    p.extend_from_slice(&MAC_B);
    p.extend_from_slice(&MAC_A);
    p.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    p.extend_from_slice(&(body.len() as u16).to_be_bytes());
    p.extend_from_slice(&[first, 64]);
    p.extend_from_slice(&v6("fd00::1"));
    p.extend_from_slice(&v6("fd00::2"));
    p.extend_from_slice(&body);
    p
}

/// An Ethernet frame with `tags` VLAN ethertypes before IPv4 `ip`.
fn tagged(tags: &[u16], ip: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&MAC_B);
    p.extend_from_slice(&MAC_A);
    for t in tags {
        p.extend_from_slice(&t.to_be_bytes());
        p.extend_from_slice(&[0, 7]);
    }
    p.extend_from_slice(&[0x08, 0x00]);
    p.extend_from_slice(ip);
    p
}

fn wire(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        w.push(l.len() as u8);
        w.extend_from_slice(l.as_bytes());
    }
    w.push(0);
    w
}

/// A DNS message: header (flags, qdcount) + question bytes + trailer.
fn dns(flags: u8, qd: u16, question: &[u8]) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, flags, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    m[4..6].copy_from_slice(&qd.to_be_bytes());
    m.extend_from_slice(question);
    m.extend_from_slice(&[0, 1, 0, 1]); // QTYPE A, QCLASS IN
    m
}

pub(crate) fn packets_common(out: &mut Vec<P>) {
    out.push(P("echo4 req".into(), echo4("10.0.0.1", "10.0.0.2", true)));
    out.push(P("echo4 reply".into(), echo4("10.0.0.1", "10.0.0.2", false)));
    out.push(P("echo4 req other src".into(), echo4("192.168.1.1", "10.0.0.3", true)));
    out.push(P("echo6 req".into(), echo6("fd00::1", "fd00::2", true)));
    out.push(P("echo6 reply".into(), echo6("fd00::1", "fd00::2", false)));
    out.push(P("echo6 req 2001".into(), echo6("2001:db8::1", "2001:db8::2", true)));
    let e = echo4("10.0.0.1", "10.0.0.2", true);
    let ip = e[14..].to_vec();
    out.push(P("echo4 1 vlan".into(), tagged(&[0x8100], &ip)));
    out.push(P("echo4 2 vlans".into(), tagged(&[0x88a8, 0x8100], &ip)));
    out.push(P("echo4 3 vlans".into(), tagged(&[0x8100, 0x8100, 0x8100], &ip)));
    out.push(P(
        "echo4 builder vlan".into(),
        eth().single_vlan(vid(5)).ipv4(v4("10.0.0.1"), v4("10.0.0.2"), 64).icmpv4_echo_request(1, 1).bytes(&[1; 8]),
    ));
    // Non-first fragment, IPv4 options, ihl < 5.
    let mut frag = ip.clone();
    frag[6] = 0;
    frag[7] = 10;
    out.push(P("echo4 later fragment".into(), tagged(&[], &frag)));
    let mut opts = ip.clone();
    opts[0] = 0x46;
    opts.splice(20..20, [1, 1, 1, 0]);
    out.push(P("echo4 with options".into(), tagged(&[], &opts)));
    let mut bad = ip.clone();
    bad[0] = 0x44;
    out.push(P("ihl 4".into(), tagged(&[], &bad)));
    out.push(P("arp".into(), {
        let mut a = e.clone();
        a[12] = 0x08;
        a[13] = 0x06;
        a
    }));
    // IPv6 extension headers.
    let icmp6_req = [128u8, 0, 0, 0, 0, 1, 0, 1];
    let udp53 = {
        let mut u = vec![0x9c, 0x40, 0, 53, 0, 0, 0, 0];
        let m = dns(0x01, 1, &wire("ads.example.com"));
        u[4..6].copy_from_slice(&((8 + m.len()) as u16).to_be_bytes());
        u.extend_from_slice(&m);
        u
    };
    let syn = {
        let t = tcp4("10.0.0.1", 80, true, false);
        t[34..54].to_vec()
    };
    for (exts, name) in [
        (&[][..], "none"),
        (&[0][..], "hbh"),
        (&[0, 60][..], "hbh+dst"),
        (&[43, 60, 0, 60][..], "4 ext"),
        (&[0, 60, 43, 60, 0][..], "5 ext"),
        (&[44][..], "frag0"),
    ] {
        out.push(P(format!("v6 ext {name} icmp"), ipv6_ext(exts, 0, 58, &icmp6_req)));
        out.push(P(format!("v6 ext {name} dns"), ipv6_ext(exts, 0, 17, &udp53)));
        out.push(P(format!("v6 ext {name} syn"), ipv6_ext(exts, 0, 6, &syn)));
    }
    out.push(P("v6 later fragment icmp".into(), ipv6_ext(&[44], 3, 58, &icmp6_req)));
    out.push(P("v6 later fragment dns".into(), ipv6_ext(&[60, 44], 3, 17, &udp53)));
    // TCP / UDP.
    for port in [22u16, 23, 80, 2323, 53] {
        out.push(P(format!("tcp4 ack :{port}"), tcp4("10.0.0.9", port, false, true)));
        out.push(P(format!("tcp4 synack :{port}"), tcp4("10.0.0.9", port, true, true)));
    }
    out.push(P("tcp6 syn :23".into(), tcp6("fd00::9", 23)));
    out.push(P("udp4 :23".into(), udp4("10.0.0.9", 23, b"x")));
    out.push(P("udp6 :2323".into(), udp6("fd00::9", 2323, b"x")));
    out.push(P("allowed syn :23".into(), tcp4("10.99.3.4", 23, true, false)));
    out.push(P("allowed udp".into(), udp4("10.99.3.4", 9999, b"x")));
}

pub(crate) fn packets_dns(out: &mut Vec<P>) {
    let q = |name: &str| dns(0x01, 1, &wire(name));
    for name in [
        "ads.example.com",
        "ADS.Example.COM",
        "sub.ads.example.com",
        "xads.example.com",
        "example.com",
        "tracker.test",
        "a.b.tracker.test",
        "tracker.testx",
        "test",
        "",
        "ads.example.com.evil",
    ] {
        out.push(P(format!("dns4 {name}"), udp4("10.0.0.1", 53, &q(name))));
        out.push(P(format!("dns6 {name}"), udp6("fd00::1", 53, &q(name))));
    }
    out.push(P("dns wrong port".into(), udp4("10.0.0.1", 5353, &q("ads.example.com"))));
    out.push(P("dns response".into(), udp4("10.0.0.1", 53, &dns(0x81, 1, &wire("ads.example.com")))));
    out.push(P("dns qdcount 0".into(), udp4("10.0.0.1", 53, &dns(0x01, 0, &wire("ads.example.com")))));
    out.push(P("dns short header".into(), udp4("10.0.0.1", 53, &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0])));
    out.push(P(
        "dns tcp".into(),
        eth().ipv4(v4("10.0.0.1"), v4("10.0.0.2"), 64).tcp(1, 53, 1, 1).bytes(&q("ads.example.com")),
    ));
    // Compression: question = "ads" + pointer to "example.com" stored later.
    let mut m = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    let target = 12 + 4 + 2 + 4; // after "\x03ads" + pointer + qtype/qclass
    m.extend_from_slice(b"\x03ads");
    m.extend_from_slice(&[0xc0, target as u8]);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend_from_slice(&wire("example.com"));
    out.push(P("dns pointer blocked".into(), udp4("10.0.0.1", 53, &m)));
    let mut m2 = m.clone();
    m2[12 + 1] = b'x';
    out.push(P("dns pointer not blocked".into(), udp4("10.0.0.1", 53, &m2)));
    // Pointer loop: points at itself.
    let mut l = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12];
    l.extend_from_slice(&[0, 1, 0, 1]);
    out.push(P("dns pointer loop".into(), udp4("10.0.0.1", 53, &l)));
    // Chains of n pointers ending in "tracker.test": hops = n.
    for n in [1usize, 7, 8, 9, 20] {
        let mut c = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for i in 0..n {
            let next = 12 + 2 * (i + 1);
            c.extend_from_slice(&[0xc0, next as u8]);
        }
        c.extend_from_slice(&wire("tracker.test"));
        out.push(P(format!("dns chain {n} hops"), udp4("10.0.0.1", 53, &c)));
    }
    // Pointer past the payload, pointer cut in half, reserved label types.
    out.push(P("dns pointer past end".into(), udp4("10.0.0.1", 53, &dns(1, 1, &[0xc3, 0xff]))));
    let mut half = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    half.extend_from_slice(b"\x03ads\xc0");
    out.push(P("dns half pointer".into(), udp4("10.0.0.1", 53, &half)));
    out.push(P("dns label 0x40".into(), udp4("10.0.0.1", 53, &dns(1, 1, b"\x41ab\x00"))));
    out.push(P("dns label 0x80".into(), udp4("10.0.0.1", 53, &dns(1, 1, b"\x81ab\x00"))));
    let mut past = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    past.extend_from_slice(b"\x3fabc");
    out.push(P("dns label past end".into(), udp4("10.0.0.1", 53, &past)));
    // Long names: 255 and 257 text bytes ending in a blocked suffix.
    let mk = |total: usize| {
        let tail = "tracker.test";
        let mut labels = Vec::new();
        let mut len = tail.len();
        while len + 1 + 63 <= total {
            labels.push("a".repeat(63));
            len += 64;
        }
        if total > len + 1 {
            labels.push("b".repeat(total - len - 1));
        }
        labels.push(tail.into());
        labels.join(".")
    };
    for total in [200usize, 254, 255, 256, 300] {
        let name = mk(total);
        out.push(P(format!("dns name {} bytes", name.len()), udp4("10.0.0.1", 53, &q(&name))));
    }
    // A dot inside a label: text "ads.example.com" from labels "ads.example", "com".
    let mut d = Vec::new();
    d.push(11);
    d.extend_from_slice(b"ads.example");
    d.extend_from_slice(b"\x03com\x00");
    out.push(P("dns dot in label".into(), udp4("10.0.0.1", 53, &dns(1, 1, &d))));
    // VLAN-tagged query.
    let v = eth().single_vlan(vid(9)).ipv4(v4("10.0.0.1"), v4("10.0.0.2"), 64).udp(1, 53).bytes(&q("tracker.test"));
    out.push(P("dns vlan".into(), v));
}

/// Every truncation (>= 14 bytes: XDP test runs need an Ethernet header)
/// of a few packets.
pub(crate) fn truncations(out: &mut Vec<P>) {
    let bases = [
        ("echo4", echo4("10.0.0.1", "10.0.0.2", true)),
        ("echo6", echo6("fd00::1", "fd00::2", true)),
        ("syn23", tcp4("10.0.0.9", 23, false, true)),
        ("dns", udp4("10.0.0.1", 53, &dns(1, 1, &wire("ads.example.com")))),
        ("v6ext", ipv6_ext(&[0, 44], 0, 58, &[128, 0, 0, 0, 0, 1, 0, 1])),
    ];
    for (name, p) in bases {
        for len in 14..p.len() {
            out.push(P(format!("{name} cut at {len}"), p[..len].to_vec()));
        }
    }
}

/// SYN / UDP floods: source A sends 8 SYNs and 8 UDP (burst 5), source B
/// (IPv6) 5 of each, source C 3 SYNs. Rates are 1/s: no refill in a run.
pub(crate) fn packets_l4(out: &mut Vec<P>) {
    for i in 0..8 {
        out.push(P(format!("flood A syn {i}"), tcp4("10.0.0.1", 80, true, false)));
        out.push(P(format!("flood A udp {i}"), udp4("10.0.0.1", 5000, b"x")));
    }
    for i in 0..5 {
        out.push(P(format!("flood B syn {i}"), tcp6("fd00::b", 80)));
        out.push(P(format!("flood B udp {i}"), udp6("fd00::b", 5000, b"x")));
    }
    for i in 0..3 {
        out.push(P(format!("C syn {i}"), tcp4("10.0.0.3", 443, true, false)));
    }
}
