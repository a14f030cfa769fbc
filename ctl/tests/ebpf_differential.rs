//! Differential test: the eBPF twins (BPF_PROG_TEST_RUN) and the Wasm
//! filters (`wasmfw replay --json`) must give the same verdict for every
//! packet, and the same filter counters.
//!
//! Needs root, `cargo xtask build-ebpf` and `cargo xtask build-filters`;
//! otherwise prints SKIPPED. Run:
//!   cargo test -p wasmfw --test ebpf_differential -- --nocapture
//!
//! Time: replay's clock is the capture timestamp, BPF_PROG_TEST_RUN's is
//! bpf_ktime_get_ns. The l4_dos captures are built so that no token is
//! refilled in either engine: every packet is stamped within 1 ms, rates
//! are 1 per second, and the eBPF run takes well under a second, so the
//! verdicts depend only on the burst sizes.

#[path = "differential/engines.rs"]
mod engines;
#[path = "differential/packets.rs"]
mod packets;

use std::path::{Path, PathBuf};

use wasmfw_ebpf::Twin;

use engines::compare;
use packets::{packets_common, packets_dns, packets_l4, truncations};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { geteuid() } != 0 {
        return Some("not root: BPF_PROG_TEST_RUN needs CAP_BPF".into());
    }
    for t in Twin::ALL {
        let w = root().join(format!("target/filters/{}.wasm", t.name()));
        if !w.is_file() {
            return Some(format!("{} missing: run `cargo xtask build-filters`", w.display()));
        }
        if let Err(e) = wasmfw_ebpf::object_path(t.name()) {
            return Some(format!("{e}"));
        }
    }
    None
}

extern "C" {
    fn geteuid() -> u32;
}

#[test]
fn ebpf_twins_agree_with_wasm_filters() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED ebpf_twins_agree_with_wasm_filters: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let filters = root().join("target/filters");
    let policy = |name: &str, filter: &str, params: &str| {
        let p = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "filter = {:?}\n[params]\n{params}\n",
                filters.join(format!("{filter}.wasm")).display().to_string()
            ),
        )
        .unwrap();
        p
    };
    let mut all = Vec::new();
    packets_common(&mut all);
    packets_dns(&mut all);
    truncations(&mut all);
    let mut l4 = Vec::new();
    packets_common(&mut l4);
    packets_l4(&mut l4);
    truncations(&mut l4);

    let mut bad = 0;
    bad += compare("icmp", &root().join("policies/icmp.toml"), &all);
    bad += compare(
        "icmp-lists",
        &policy(
            "icmp-lists",
            "icmp_drop",
            "from = [\"10.0.0.0/24\", \"fd00::/16\"]\nto = [\"10.0.0.2\", \"fd00::2\", \"2001:db8::/32\"]",
        ),
        &all,
    );
    bad += compare("icmp-any6", &policy("icmp-any6", "icmp_drop", "from = [\"::/0\"]"), &all);
    bad += compare("dns", &root().join("policies/dns-block.toml"), &all);
    bad += compare(
        "dns-hops",
        &policy("dns-hops", "dns_block", "block = [\"TRACKER.test\", \"com\"]\nmax_pointer_hops = 20"),
        &all,
    );
    bad += compare(
        "l4",
        &policy(
            "l4",
            "l4_dos",
            "syn_rate = 1\nsyn_burst = 5\nudp_rate = 1\nudp_burst = 5\nblocked_ports = [23, 2323]\nallow = [\"10.99.0.0/16\"]",
        ),
        &l4,
    );
    bad += compare("l4-defaults", &policy("l4-defaults", "l4_dos", ""), &l4);
    assert_eq!(bad, 0, "{bad} mismatches between the eBPF twins and the Wasm filters (see MISMATCH lines)");
}
