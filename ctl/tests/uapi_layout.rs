//! The C header `kmod/wasmfw/wasmfw_uapi.h` (written by `cargo xtask uapi`)
//! against the Rust definition (crate wasmfw-uapi, `kmod/uapi/src/lib.rs`, as
//! `wasmfw uapi-layout` prints it): a C
//! program compiled with the header prints every struct's size, every
//! field's offset and size, and every constant; each must equal Rust's.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::process::Command;

#[test]
fn c_header_matches_the_rust_definition() {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmfw")).arg("uapi-layout").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let layout: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // What Rust says, one line per fact, in the form the C program prints.
    let mut rust = Vec::new();
    let mut c = String::from("#include <stdio.h>\n#include <stddef.h>\n#include \"wasmfw_uapi.h\"\nint main(void) {\n");
    for (name, s) in layout["structs"].as_object().unwrap() {
        rust.push(format!("struct {name} {}", s["size"]));
        writeln!(c, "printf(\"struct {name} %zu\\n\", sizeof(struct wasmfw_{name}));").unwrap();
        for f in s["fields"].as_array().unwrap() {
            let (field, off, size) = (f[0].as_str().unwrap(), &f[1], &f[2]);
            rust.push(format!("field {name}.{field} {off} {size}"));
            writeln!(
                c,
                "printf(\"field {name}.{field} %zu %zu\\n\", offsetof(struct wasmfw_{name}, {field}), sizeof(((struct wasmfw_{name} *)0)->{field}));"
            )
            .unwrap();
        }
    }
    for (name, v) in layout["constants"].as_object().unwrap() {
        rust.push(format!("const {name} {v}"));
        writeln!(c, "printf(\"const {name} %llu\\n\", (unsigned long long)({name}));").unwrap();
    }
    c.push_str("return 0;\n}\n");

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("layout.c");
    let bin = dir.path().join("layout");
    std::fs::write(&src, c).unwrap();
    let header_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kmod/wasmfw");
    // The header includes <linux/ioctl.h> and <linux/types.h> (linux-libc-dev).
    let cc = Command::new("cc")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(&header_dir)
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .output()
        .unwrap();
    assert!(cc.status.success(), "the header does not define what Rust does:\n{}", String::from_utf8_lossy(&cc.stderr));
    let run = Command::new(&bin).output().unwrap();
    let c_lines: Vec<String> = String::from_utf8(run.stdout).unwrap().lines().map(String::from).collect();

    let diff: BTreeMap<_, _> = rust.iter().zip(&c_lines).filter(|(r, c)| r != c).collect();
    assert_eq!(rust.len(), c_lines.len());
    assert!(diff.is_empty(), "Rust vs C:\n{diff:#?}");
    // Struct sizes cover fields C has and Rust lacks; the count makes sure
    // the check looked at something.
    assert!(rust.len() > 100, "only {} facts compared", rust.len());
}
