//! Loads one program from target/ebpf and prints the verifier's verdict:
//! `cargo run -p wasmfw-ebpf --example verify -- dns_block [verbose]`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let prog = args.get(1).map(String::as_str).unwrap_or("dns_block");
    match wasmfw_ebpf::Twin::from_name(prog) {
        Some(t) => match wasmfw_ebpf::load(t, &[]) {
            Ok(_) => println!("{prog}: accepted"),
            Err(e) => println!("{prog}: {e:#}"),
        },
        None => match wasmfw_ebpf::load_rejected_example(prog) {
            Ok((err, log)) => println!("{prog}: rejected ({err})\n{log}"),
            Err(e) => println!("{prog}: {e:#}"),
        },
    }
}
