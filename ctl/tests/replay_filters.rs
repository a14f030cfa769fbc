//! Each filter replayed over captures built packet by packet, every verdict
//! asserted: the reference for what the filters do (docs/filters.md).

mod common;
use common::*;
use pcap_file::DataLink;

#[test]
fn icmp_drop_drops_echo_requests_in_every_encapsulation() {
    let pol = policy("icmp.toml");
    let mut truncated = echo4("10.0.0.1", "10.0.0.2");
    truncated.truncate(14 + 12); // cut inside the IPv4 header
    let mut fragment = echo4("10.0.0.1", "10.0.0.2");
    fragment[14 + 6] = 0x00;
    fragment[14 + 7] = 0x10; // fragment offset 16 (x8 bytes): no ICMP header here
    let pkts = at_once(vec![
        echo4("10.0.0.1", "10.0.0.2"),
        build(eth().ipv4(v4("10.0.0.1"), v4("10.0.0.2"), 64).icmpv4_echo_reply(1, 1), &[0; 8]),
        build(eth().ipv6(v6("fd00::1"), v6("fd00::2"), 64).icmpv6_echo_request(1, 1), &[0; 8]),
        build(eth().ipv6(v6("fd00::1"), v6("fd00::2"), 64).icmpv6_echo_reply(1, 1), &[0; 8]),
        build(eth().single_vlan(vlan(10)).ipv4(v4("10.0.0.1"), v4("10.0.0.2"), 64).icmpv4_echo_request(1, 1), &[0; 8]),
        build(
            eth().double_vlan(vlan(10), vlan(20)).ipv6(v6("fd00::1"), v6("fd00::2"), 64).icmpv6_echo_request(1, 1),
            &[0; 8],
        ),
        syn4("10.0.0.1", "10.0.0.2", 80),
        udp4("10.0.0.1", "10.0.0.2", 53, b"x"),
        truncated,
        fragment,
        vec![0xff; 10],
        vec![],
    ]);
    let (v, summary) = verdicts(&pol, &pkts);
    assert_eq!(v, ["drop", "pass", "drop", "pass", "drop", "drop", "pass", "pass", "pass", "pass", "pass", "pass"]);
    assert_eq!(summary["counters"]["echo_dropped"], 4);
    assert_eq!(summary["counters"]["drop"], 4);
    assert_eq!(summary["counters"]["pass"], 8);
    assert_eq!(summary["counters"]["packets"], 12);
    assert_eq!(summary["counters"]["fault_trap"], 0);
}

#[test]
fn icmp_drop_on_raw_ip_captures() {
    // Netfilter hands filters packets without an Ethernet header.
    let dir = tempfile::tempdir().unwrap();
    let strip = |p: Vec<u8>| p[14..].to_vec();
    let pkts = at_once(vec![
        strip(echo4("10.0.0.1", "10.0.0.2")),
        strip(build(eth().ipv6(v6("fd00::1"), v6("fd00::2"), 64).icmpv6_echo_request(1, 1), &[])),
        strip(syn4("10.0.0.1", "10.0.0.2", 22)),
    ]);
    let (v, _) = replay(&policy("icmp.toml"), &write_pcap(dir.path(), &pkts, DataLink::RAW));
    assert_eq!(v, ["drop", "drop", "pass"]);
}

#[test]
fn icmp_drop_address_lists() {
    let dir = tempfile::tempdir().unwrap();
    let pol = write_policy(
        dir.path(),
        "icmp_drop",
        "",
        "from = [\"10.0.0.1\", \"fd00::/64\"]\nto = [\"10.0.0.0/24\", \"fd00::2\"]",
    );
    let pkts = at_once(vec![
        echo4("10.0.0.1", "10.0.0.2"),
        echo4("10.0.0.3", "10.0.0.2"),
        echo4("10.0.0.1", "10.0.1.2"),
        build(eth().ipv6(v6("fd00::9"), v6("fd00::2"), 64).icmpv6_echo_request(1, 1), &[]),
        build(eth().ipv6(v6("fd00::9"), v6("fd00::3"), 64).icmpv6_echo_request(1, 1), &[]),
        build(eth().ipv6(v6("fd01::9"), v6("fd00::2"), 64).icmpv6_echo_request(1, 1), &[]),
    ]);
    let (v, _) = verdicts(&pol, &pkts);
    assert_eq!(v, ["drop", "pass", "pass", "drop", "pass", "pass"]);
}

#[test]
fn l4_dos_syn_bucket_per_source_refills_with_time() {
    let pol = policy("l4-dos.toml"); // syn_rate 10/s, burst 20
    let mut pkts = at_once((0..30).map(|_| syn4("10.0.0.1", "10.0.0.2", 80)).collect());
    pkts.extend(at_once((0..5).map(|_| syn4("10.0.0.7", "10.0.0.2", 80)).collect()));
    // One second later the first source has 10 new tokens.
    pkts.extend((0..15).map(|_| Pkt { ts_ns: 2_000_000_000, data: syn4("10.0.0.1", "10.0.0.2", 80) }));
    let (v, s) = verdicts(&pol, &pkts);
    assert_eq!(v, expect(&[("pass", 20), ("drop", 10), ("pass", 5), ("pass", 10), ("drop", 5)]));
    assert_eq!(s["counters"]["syn_limited"], 15);
}

#[test]
fn l4_dos_rules_in_order() {
    let pol = policy("l4-dos.toml"); // blocked 23, 2323; allow 10.99.0.0/16
    let ack = build(eth().ipv4(v4("10.0.0.1"), v4("10.0.0.2"), 64).tcp(40000, 80, 1, 100).ack(5), &[]);
    let mut pkts = at_once((0..30).map(|_| ack.clone()).collect()); // not SYNs: no limit
    pkts.extend(at_once((0..30).map(|_| syn4("10.99.3.4", "10.0.0.2", 80)).collect())); // allowed
    pkts.extend(at_once(vec![
        syn4("10.0.0.5", "10.0.0.2", 23),
        udp4("10.0.0.5", "10.0.0.2", 2323, b"x"),
        syn4("10.99.0.1", "10.0.0.2", 23), // allowed beats blocked
        build(eth().single_vlan(vlan(5)).ipv4(v4("10.0.0.5"), v4("10.0.0.2"), 64).tcp(1, 23, 1, 1).syn(), &[]),
        build(eth().ipv6(v6("fd00::5"), v6("fd00::2"), 64).udp(1, 23), &[]),
    ]));
    let (v, s) = verdicts(&pol, &pkts);
    assert_eq!(v, expect(&[("pass", 60), ("drop", 2), ("pass", 1), ("drop", 2)]));
    assert_eq!(s["counters"]["blocked_port"], 4);
    assert_eq!(s["counters"]["allowed"], 31);
    assert_eq!(s["counters"]["syn_limited"], 0);
}

#[test]
fn l4_dos_udp_and_ipv6_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let pol = write_policy(dir.path(), "l4_dos", "", "udp_rate = 5\nudp_burst = 3\nsyn_rate = 1\nsyn_burst = 2");
    let syn6 = |src: &str| build(eth().ipv6(v6(src), v6("fd00::2"), 64).tcp(1, 80, 1, 1).syn(), &[]);
    let mut pkts = at_once((0..5).map(|_| udp4("10.0.0.1", "10.0.0.2", 9999, b"flood")).collect());
    pkts.extend(at_once((0..4).map(|_| syn6("fd00::1")).collect()));
    pkts.extend(at_once(vec![syn6("fd00::3")]));
    // 200 ms later: 5/s refills exactly one UDP token.
    pkts.extend((0..2).map(|_| Pkt { ts_ns: 1_200_000_000, data: udp4("10.0.0.1", "10.0.0.2", 9999, b"x") }));
    let (v, s) = verdicts(&pol, &pkts);
    assert_eq!(v, expect(&[("pass", 3), ("drop", 2), ("pass", 2), ("drop", 2), ("pass", 1), ("pass", 1), ("drop", 1)]));
    assert_eq!((s["counters"]["udp_limited"].as_u64(), s["counters"]["syn_limited"].as_u64()), (Some(3), Some(2)));
}

/// A DNS query: header + the given question name bytes + type A, class IN,
/// then `tail` (more names that pointers may reach).
fn dns_query(name: &[u8], tail: &[u8], response: bool) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, if response { 0x81 } else { 0x01 }, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(name);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend_from_slice(tail);
    m
}

/// `a.b.c` as DNS labels, terminated by the root label.
fn labels(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.') {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

fn dns4(payload: &[u8]) -> Vec<u8> {
    udp4("10.0.0.1", "10.0.0.53", 53, payload)
}

#[test]
fn dns_block_matches_suffixes_and_follows_pointers() {
    let pol = policy("dns-block.toml"); // ads.example.com, tracker.test; 8 hops
                                        // "x" + pointer to "ads.example.com" stored after the question (offset 12+3+4).
    let mut ptr_name = vec![1, b'x', 0xc0, 12 + 4 + 4];
    ptr_name.truncate(4);
    let pointed = dns_query(&ptr_name, &labels("ads.example.com"), false);
    // Pointer chain: name -> "www" + ptr -> "tracker.test".
    let chain_q = dns_query(
        &[0xc0, 12 + 2 + 4],
        &[&[3, b'w', b'w', b'w', 0xc0, 12 + 2 + 4 + 6][..], &labels("tracker.test")].concat(),
        false,
    );
    let pkts = at_once(vec![
        dns4(&dns_query(&labels("ads.example.com"), &[], false)),
        dns4(&dns_query(&labels("x.y.ads.example.com"), &[], false)),
        dns4(&dns_query(&labels("ADS.Example.COM"), &[], false)),
        dns4(&dns_query(&labels("badads.example.com"), &[], false)),
        dns4(&dns_query(&labels("example.com"), &[], false)),
        dns4(&dns_query(&labels("tracker.test"), &[], false)),
        dns4(&dns_query(&labels("ads.example.com"), &[], true)), // a response
        udp4("10.0.0.1", "10.0.0.53", 5353, &dns_query(&labels("ads.example.com"), &[], false)),
        dns4(&pointed),
        dns4(&chain_q),
        build(
            eth().ipv6(v6("fd00::1"), v6("fd00::53"), 64).udp(5000, 53),
            &dns_query(&labels("a.tracker.test"), &[], false),
        ),
        build(
            eth().single_vlan(vlan(7)).ipv4(v4("10.0.0.1"), v4("10.0.0.53"), 64).udp(5000, 53),
            &dns_query(&labels("ads.example.com"), &[], false),
        ),
    ]);
    let (v, s) = verdicts(&pol, &pkts);
    assert_eq!(v, ["drop", "drop", "drop", "pass", "pass", "drop", "pass", "pass", "drop", "drop", "drop", "drop"]);
    assert_eq!(s["counters"]["blocked"], 8);
    assert_eq!(s["counters"]["malformed"], 0);
}

#[test]
fn dns_block_survives_loops_and_malformed_names() {
    let pol = policy("dns-block.toml");
    let self_loop = dns_query(&[0xc0, 12], &[], false);
    let two_loop = dns_query(&[0xc0, 12 + 2 + 4], &[0xc0, 12], false);
    let past_end = {
        let mut q = dns_query(&labels("ads.example.com"), &[], false);
        q.truncate(12 + 8); // label runs past the payload
        q
    };
    let bad_label = dns_query(&[0x45, b'a', 0], &[], false); // 0b01xxxxxx
    let long_chain = {
        // 9 pointers, each to the next: one more than max_pointer_hops = 8.
        let mut tail = Vec::new();
        let base = 12 + 2 + 4;
        for i in 0..8u8 {
            tail.extend_from_slice(&[0xc0, base + 2 * (i + 1)]);
        }
        tail.extend_from_slice(&labels("ads.example.com"));
        dns_query(&[0xc0, base], &tail, false)
    };
    let long_name = dns_query(&labels(&vec!["a".repeat(63); 5].join(".")), &[], false);
    let pkts = at_once(vec![
        dns4(&self_loop),
        dns4(&two_loop),
        dns4(&past_end),
        dns4(&bad_label),
        dns4(&long_chain),
        dns4(&long_name),
    ]);
    let (v, s) = verdicts(&pol, &pkts);
    assert_eq!(v, expect(&[("pass", 6)]));
    assert_eq!(s["counters"]["malformed"], 6);
    assert_eq!(s["counters"]["fault_fuel"], 0, "loops are caught by the hop limit, not by fuel");
    assert_eq!(s["counters"]["fault_trap"], 0);
}
