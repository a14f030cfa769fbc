//! ns/packet of the eBPF twins and an empty XDP program (BPF_PROG_TEST_RUN):
//! `cargo run --release -p wasmfw-ebpf --example bench [-- REPEAT]`.
use etherparse::PacketBuilder;

fn main() -> anyhow::Result<()> {
    let repeat: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let eth = || PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let build = |b: Vec<u8>| b;
    let mut icmp = Vec::new();
    eth().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).icmpv4_echo_request(1, 1).write(&mut icmp, &[0x55; 22])?;
    let mut tcp = Vec::new();
    eth().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(40000, 80, 1, 64240).ack(1).write(&mut tcp, &[0; 10])?;
    let mut syn = Vec::new();
    eth().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(40000, 80, 1, 64240).syn().write(&mut syn, &[0; 10])?;
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in ["www", "ads", "example", "com"] {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut dns = Vec::new();
    eth().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(40000, 53).write(&mut dns, &q)?;
    let cases: [(&str, &str, Vec<u8>); 6] = [
        ("empty", "icmp 64B", build(icmp.clone())),
        ("icmp_drop", "icmp echo 64B (drop)", icmp.clone()),
        ("icmp_drop", "tcp ack 64B (pass)", tcp.clone()),
        ("l4_dos", "tcp ack 64B (pass)", tcp.clone()),
        ("l4_dos", "tcp syn 64B (bucket)", syn.clone()),
        ("dns_block", "dns query www.ads.example.com", dns.clone()),
    ];
    for (prog, what, pkt) in cases {
        let ns = if prog == "empty" {
            wasmfw_ebpf::bench_empty(&pkt, repeat)?
        } else {
            let l = wasmfw_ebpf::load(wasmfw_ebpf::Twin::from_name(prog).unwrap(), &[])?;
            l.bench(&pkt, repeat)?.as_nanos() as f64
        };
        println!("{prog:<10} {what:<32} {ns:>6.0} ns/packet ({} bytes, {repeat} runs)", pkt.len());
    }
    Ok(())
}
