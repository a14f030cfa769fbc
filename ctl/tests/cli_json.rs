//! `--json` on every command, errors included (`{"error": ...}` on stdout,
//! exit status 1), like `bpftool -j`.

use std::process::Command;

fn wasmfw(args: &[&str]) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmfw")).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!("{args:?}: stdout is not JSON ({e}): {text:?} stderr {:?}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.success(), v)
}

#[test]
fn errors_are_json_with_json() {
    for args in [
        vec!["load", "no/such/policy.toml", "--iface", "lo", "--json"],
        vec!["--json", "unload", "--iface", "no-such-if0"],
        vec!["-j", "no-such-command"],
        vec!["load", "--json"],
        vec!["map", "list", "--iface", "no-such-if0", "--json"],
        vec!["capture", "--iface", "no-such-if0", "--verdict", "drop", "-w", "/nonexistent/x.pcapng", "--json"],
        vec!["log", "--iface", "no-such-if0", "--json"],
        vec!["check", "no/such.wasm", "--json"],
        vec!["--netns", "no-such-netns", "status", "--json"],
    ] {
        let (ok, v) = wasmfw(&args);
        assert!(!ok, "{args:?} succeeded");
        let msg = v["error"].as_str().unwrap_or_else(|| panic!("{args:?}: no error field in {v}"));
        assert!(!msg.is_empty() && !msg.contains('\n'), "{args:?}: {msg:?}");
    }
}

#[test]
fn check_reports_json() {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/icmp.toml");
    if !std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/filters/icmp_drop.wasm")).exists() {
        eprintln!("SKIPPED check_reports_json: run `cargo xtask build-filters`");
        return;
    }
    let (ok, v) = wasmfw(&["check", policy, "--json"]);
    assert!(ok, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["filter"], "icmp_drop");
    assert_eq!(v["hook"], "xdp");
}
