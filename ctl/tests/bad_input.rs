//! Bad input gets a clear one-line error and a non-zero exit; filters that
//! loop, trap or grab memory get the policy's fault verdict, counted.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A minimal ABI v1 filter whose `wasmfw_filter` body is `body` and which
/// imports `imports`; `version` is what `wasmfw_abi_version` returns.
fn wat_filter(imports: &str, body: &str, version: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {imports}
          (memory (export "memory") 1)
          (func (export "wasmfw_abi_version") (result i32) i32.const {version})
          (func (export "wasmfw_buffer") (result i32) i32.const 1024)
          (func (export "wasmfw_buffer_len") (result i32) i32.const 2048)
          (func (export "wasmfw_init") (param i32) (result i32) i32.const 0)
          (func (export "wasmfw_filter") (param i32 i32) (result i32) {body}))"#
    ))
    .unwrap()
}

fn check(path: &Path) -> String {
    fails(&["check", path.to_str().unwrap()])
}

#[test]
fn malformed_modules_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let e = check(&write(d.path(), "garbage.wasm", b"this is not wasm at all"));
    assert!(e.contains("garbage.wasm: invalid module"), "{e}");
    let real = std::fs::read(filter("icmp_drop")).unwrap();
    let e = check(&write(d.path(), "truncated.wasm", &real[..real.len() / 3]));
    assert!(e.contains("truncated.wasm: invalid module"), "{e}");
    let e = check(&write(d.path(), "empty.wasm", b""));
    assert!(e.contains("invalid module"), "{e}");
    let e = check(&d.path().join("absent.wasm"));
    assert!(e.contains("absent.wasm: no such file"), "{e}");
}

#[test]
fn modules_that_break_the_abi_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let e =
        check(&write(d.path(), "noexports.wasm", &wat::parse_str("(module (memory (export \"memory\") 1))").unwrap()));
    assert!(e.contains("not a wasmfw filter: missing export wasmfw_abi_version"), "{e}");
    let e = check(&write(
        d.path(),
        "import.wasm",
        &wat_filter(r#"(import "wasmfw" "exec" (func (param i32)))"#, "i32.const 0", 1),
    ));
    assert!(e.contains("imports unknown function wasmfw.exec"), "{e}");
    let e = check(&write(d.path(), "env.wasm", &wat_filter(r#"(import "env" "abort" (func))"#, "i32.const 0", 1)));
    assert!(e.contains("imports unknown function env.abort"), "{e}");
    let e = check(&write(d.path(), "v2.wasm", &wat_filter("", "i32.const 0", 2)));
    assert!(e.contains("built for ABI version 2, this host supports 1"), "{e}");
    let floats = wat_filter("", "f32.const 1.5 i32.trunc_f32_s", 1);
    let e = check(&write(d.path(), "floats.wasm", &floats));
    assert!(e.contains("invalid module") && e.to_lowercase().contains("float"), "{e}");
    // A valid filter passes the same check.
    let ok = wasmfw(&["check", write(d.path(), "ok.wasm", &wat_filter("", "i32.const 0", 1)).to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn broken_policies_name_file_line_and_key() {
    let d = tempfile::tempdir().unwrap();
    let f = filter("l4_dos").display().to_string();
    let cases = [
        (format!("filter = {f:?}\nfuel = 100\nfuell = 5\n"), ":3: key 'fuell': unknown field"),
        (format!("filter = {f:?}\nfuel = \"many\"\n"), ":2: key 'fuel': invalid type"),
        (format!("filter = {f:?}\nhook = \"tc\"\n"), ":2: key 'hook'"),
        (format!("filter = {f:?}\nmemory_limit = 100\n"), ":2: key 'memory_limit'"),
        // The filter itself rejects a parameter it does not know, or a bad value.
        (
            format!("filter = {f:?}\n[params]\nsyn_rate = 5\nsynburst = 3\n"),
            ":4: key 'params.synburst': filter l4_dos rejected it",
        ),
        (
            format!("filter = {f:?}\n[params]\nallow = [\"10.0.0.0/33\"]\n"),
            ":3: key 'params.allow': filter l4_dos rejected it",
        ),
        (format!("filter = {f:?}\n[params]\nsyn_rate = -1\n"), ":3: key 'params.syn_rate'"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = write(d.path(), &format!("p{i}.toml"), text.as_bytes());
        let e = check(&p);
        assert!(e.contains(&format!("p{i}.toml{want}")), "case {i}: {e}");
    }
    let e = check(&write(
        d.path(),
        "icmp.toml",
        format!("filter = {:?}\n[params]\nfrom = [\"not-an-ip\"]\n", filter("icmp_drop").display().to_string())
            .as_bytes(),
    ));
    assert!(e.contains(":3: key 'params.from'"), "{e}");
    let e = check(&write(
        d.path(),
        "dns.toml",
        format!(
            "filter = {:?}\n[params]\nblock = [\"ok.com\"]\nmax_pointer_hops = \"x\"\n",
            filter("dns_block").display().to_string()
        )
        .as_bytes(),
    ));
    assert!(e.contains(":4: key 'params.max_pointer_hops'"), "{e}");
    // Every shipped policy is valid.
    for p in ["icmp.toml", "l4-dos.toml", "dns-block.toml"] {
        let out = wasmfw(&["check", policy(p).to_str().unwrap()]);
        assert!(out.status.success(), "{p}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn replay_refuses_bad_captures() {
    let d = tempfile::tempdir().unwrap();
    let pcap = write(d.path(), "bad.pcap", b"\xd4\xc3\xb2\xa1garbage");
    let e = fails(&["replay", policy("icmp.toml").to_str().unwrap(), "--pcap", pcap.to_str().unwrap()]);
    assert!(e.contains("bad.pcap"), "{e}");
    let e = fails(&["replay", policy("icmp.toml").to_str().unwrap(), "--pcap", "/nonexistent.pcap"]);
    assert!(e.contains("/nonexistent.pcap"), "{e}");
}

/// Replays `n` packets through a WAT filter under a policy with `on_fault`.
fn faulty(body: &str, on_fault: &str, extra: &str, n: usize) -> (Vec<String>, serde_json::Value) {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f.wasm", &wat_filter("", body, 1));
    let pol = write(
        d.path(),
        "p.toml",
        format!("filter = \"f.wasm\"\non_fault = \"{on_fault}\"\nfuel = 5000\n{extra}\n").as_bytes(),
    );
    verdicts(&pol, &at_once((0..n).map(|_| echo4("10.0.0.1", "10.0.0.2")).collect()))
}

#[test]
fn looping_filter_is_stopped_by_fuel() {
    let (v, s) = faulty("(loop $l (br $l)) i32.const 0", "drop", "", 5);
    assert_eq!(v, expect(&[("drop", 5)]));
    assert_eq!(s["counters"]["fault_fuel"], 5);
    let (v, s) = faulty("(loop $l (br $l)) i32.const 1", "pass", "", 3);
    assert_eq!(v, expect(&[("pass", 3)]));
    assert_eq!(s["counters"]["fault_fuel"], 3);
    assert!(s["fuel"].as_u64().unwrap() >= 3 * 4999);
}

#[test]
fn out_of_bounds_filter_traps() {
    let (v, s) = faulty("(drop (i32.load (i32.const 70000))) i32.const 0", "drop", "", 4);
    assert_eq!(v, expect(&[("drop", 4)]));
    assert_eq!((s["counters"]["fault_trap"].as_u64(), s["counters"]["fault_fuel"].as_u64()), (Some(4), Some(0)));
    // A return value that is not a verdict is a fault too.
    let (v, s) = faulty("i32.const 42", "drop", "", 2);
    assert_eq!(v, expect(&[("drop", 2)]));
    assert_eq!(s["counters"]["fault_trap"], 2);
}

#[test]
fn memory_cannot_grow_past_the_limit() {
    // Drop if memory.grow succeeded: memory never grows on a packet (the
    // packet path does not allocate), even below the limit; a plain -1,
    // not a fault.
    let body = "(i32.ne (memory.grow (i32.const 1)) (i32.const -1))";
    let (v, s) = faulty(body, "pass", "memory_limit = 131072", 3);
    assert_eq!(v, ["pass", "pass", "pass"]);
    assert_eq!(s["counters"]["fault_trap"], 0);
    // A module whose initial memory is over the limit never loads.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f.wasm", &wat_filter("", "i32.const 0", 1).to_vec());
    let pol = write(d.path(), "p.toml", b"filter = \"f.wasm\"\nmemory_limit = 65536\n");
    assert!(wasmfw(&["check", pol.to_str().unwrap()]).status.success());
    let big = wat::parse_str(
        r#"(module (memory (export "memory") 3)
          (func (export "wasmfw_abi_version") (result i32) i32.const 1)
          (func (export "wasmfw_buffer") (result i32) i32.const 1024)
          (func (export "wasmfw_buffer_len") (result i32) i32.const 2048)
          (func (export "wasmfw_init") (param i32) (result i32) i32.const 0)
          (func (export "wasmfw_filter") (param i32 i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    write(d.path(), "f.wasm", &big);
    let e = check(&write(d.path(), "p2.toml", b"filter = \"f.wasm\"\nmemory_limit = 131072\n"));
    assert!(e.contains("initial memory of 196608 bytes exceeds the memory limit of 131072 bytes"), "{e}");
}

/// A closed pipe ends the output by SIGPIPE, as for any Unix tool, not by a
/// panic ("failed printing to stdout: Broken pipe") — `wasmfw map list |
/// grep -q name` closes the pipe at its first match.
#[test]
fn closed_pipe_is_sigpipe_not_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // closed before the first write: the write must fail
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmfw")).arg("manpage").stdout(writer).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}: {stderr}", out.status);
}

/// `--engine ebpf` runs a stock filter's hand-written twin only for that
/// stock filter's own bytes: a file that merely has a stock name (edited,
/// or not Wasm at all) is refused, never silently replaced by the twin.
#[test]
fn ebpf_engine_refuses_a_file_that_is_not_the_stock_filter() {
    let d = tempfile::tempdir().unwrap();
    let fake = write(d.path(), "icmp_drop.wasm", &[0x55; 4096]);
    let stock_dir = root().join("target/filters");
    let load = |file: &Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmfw"))
            .args(["load", file.to_str().unwrap(), "--iface", "wfx-none0", "--engine", "ebpf"])
            .env("WASMFW_FILTER_DIR", &stock_dir)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = load(&fake);
    assert!(e.contains("is not the stock icmp_drop filter") && e.contains("--engine wasm"), "{e}");
    // The stock file itself passes the check (and fails later, on the interface).
    let e = load(&filter("icmp_drop"));
    assert!(!e.contains("stock"), "{e}");
}
