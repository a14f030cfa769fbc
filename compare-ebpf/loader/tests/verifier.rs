//! The natural dns_block loops are rejected by the verifier; the shipped
//! twins are accepted. Needs root (or CAP_BPF) and `cargo xtask build-ebpf`.

use wasmfw_ebpf::{load, load_rejected_example, objects_built, Twin};

fn skip() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: cannot load eBPF programs");
    }
    if !objects_built() {
        return Some("eBPF objects missing: run `cargo xtask build-ebpf`");
    }
    None
}

#[test]
fn twins_pass_the_verifier() {
    if let Some(why) = skip() {
        eprintln!("SKIPPED twins_pass_the_verifier: {why}");
        return;
    }
    for t in Twin::ALL {
        load(t, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", t.name()));
    }
}

/// Loads an example and checks the verifier's complaint; prints the tail of
/// the log so the reason is on record in the test output.
fn rejected(prog: &str, expect_any: &[&str]) {
    if let Some(why) = skip() {
        eprintln!("SKIPPED {prog}: {why}");
        return;
    }
    let (err, log) = load_rejected_example(prog).unwrap_or_else(|e| panic!("{prog}: {e:#}"));
    let tail: Vec<&str> = log.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    eprintln!("{prog}: rejected with {err}; verifier log ends:\n  {}", tail.join("\n  "));
    assert!(
        expect_any.iter().any(|m| log.contains(m)),
        "{prog}: verifier log lacks {expect_any:?}:\n{}",
        tail.join("\n")
    );
}

#[test]
fn loop_bounded_by_packet_length_is_rejected() {
    // The verifier walks the loop iteration by iteration; the label offset's
    // upper bound grows past the 64 KiB packet limit, the bounds check then
    // proves nothing and the read is refused.
    rejected("dns_block_pktlen", &["invalid access to packet", "outside of the packet"]);
}

#[test]
fn following_compression_pointers_is_rejected() {
    // Every pointer target is a new unknown offset and the hop bound comes
    // from a map: the verifier's path explodes.
    rejected("dns_block_ptr", &["The sequence of 8193 jumps is too complex", "BPF program is too large"]);
}
