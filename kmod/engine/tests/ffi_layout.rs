//! The engine FFI's C header `kmod/engine-ffi/include/wasmfw_engine.h`
//! against its Rust definition (`kmod/engine-ffi/src/abi.rs`): a C program
//! compiled with the header prints every shared struct's size, every
//! field's offset and size, and every constant; each must equal Rust's.

use std::mem::{offset_of, size_of, size_of_val};
use std::path::Path;
use std::process::Command;

#[allow(dead_code)]
#[path = "../../engine-ffi/src/abi.rs"]
mod abi;

use abi::*;

/// Rust's facts, one line each, and the C statement that prints the same line.
struct Facts {
    rust: Vec<String>,
    c: String,
}

impl Facts {
    fn structure(&mut self, c_name: &str, size: usize, fields: &[(&str, usize, usize)]) {
        self.rust.push(format!("struct {c_name} {size}"));
        self.c.push_str(&format!("printf(\"struct {c_name} %zu\\n\", sizeof(struct {c_name}));\n"));
        for (field, off, size) in fields {
            self.rust.push(format!("field {c_name}.{field} {off} {size}"));
            self.c.push_str(&format!(
                "printf(\"field {c_name}.{field} %zu %zu\\n\", offsetof(struct {c_name}, {field}), sizeof(((struct {c_name} *)0)->{field}));\n"
            ));
        }
    }
}

/// `(name, offset, size)` of a field of a value.
macro_rules! field {
    ($ty:ty, $v:expr, $f:ident) => {
        (stringify!($f), offset_of!($ty, $f), size_of_val(&$v.$f))
    };
}

#[test]
fn c_header_matches_the_rust_definition() {
    let mut facts = Facts { rust: Vec::new(), c: String::new() };
    let a = WfLoadArgs::default();
    facts.structure(
        "wf_load_args",
        size_of::<WfLoadArgs>(),
        &[
            field!(WfLoadArgs, a, fuel),
            field!(WfLoadArgs, a, memory_limit),
            field!(WfLoadArgs, a, on_fault),
            field!(WfLoadArgs, a, slots),
            field!(WfLoadArgs, a, seed),
            field!(WfLoadArgs, a, cookie),
            field!(WfLoadArgs, a, audit),
            field!(WfLoadArgs, a, pad),
        ],
    );
    for (name, v) in CONSTANTS {
        facts.rust.push(format!("const {name} {v}"));
        facts.c.push_str(&format!("printf(\"const {name} %lld\\n\", (long long)({name}));\n"));
    }

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ffi_layout");
    std::fs::create_dir_all(&dir).unwrap();
    let (src, bin) = (dir.join("layout.c"), dir.join("layout"));
    let program = format!(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"wasmfw_engine.h\"\nint main(void) {{\n{}return 0;\n}}\n",
        facts.c
    );
    std::fs::write(&src, program).unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine-ffi/include");
    // wasmfw_engine.h includes the interface's header for the records it shares.
    let uapi_include = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasmfw");
    // The header includes <linux/types.h> (linux-libc-dev).
    let cc = Command::new("cc")
        .args(["-Wall", "-Werror", "-I"])
        .arg(&include)
        .arg("-I")
        .arg(&uapi_include)
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .output()
        .unwrap();
    assert!(cc.status.success(), "the header does not define what Rust does:\n{}", String::from_utf8_lossy(&cc.stderr));
    let run = Command::new(&bin).output().unwrap();
    let c_lines: Vec<String> = String::from_utf8(run.stdout).unwrap().lines().map(String::from).collect();
    let diff: Vec<_> = facts.rust.iter().zip(&c_lines).filter(|(r, c)| r != c).collect();
    assert_eq!(facts.rust.len(), c_lines.len());
    assert!(diff.is_empty(), "Rust vs C:\n{diff:#?}");
    // wf_load_args (9 facts) and the 6 constants: the shared counter and map
    // records are the uapi's structs, checked by ctl/tests/uapi_layout.rs.
    assert!(facts.rust.len() >= 15, "only {} facts compared", facts.rust.len());
}
