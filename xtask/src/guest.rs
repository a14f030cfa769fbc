//! The kernel module's tests, inside guests booted from the project's own
//! kernel (kmod/guest/): User-Mode Linux and x86 under qemu (TCG).

use std::process::Command;

use anyhow::Result;

use crate::deps::{root, run};

/// Builds (or reuses) the kernels, the module, wasmfw and the filters, boots
/// the guests and runs `kmod/tests/` inside.
pub fn test() -> Result<()> {
    run(Command::new("bash").arg(root().join("kmod/tests/run.sh")))
}

/// Boots a guest and shows the ICMP interceptor dropping real ping.
pub fn demo() -> Result<()> {
    run(Command::new("bash").arg(root().join("kmod/tests/run.sh")).arg("--demo"))
}

/// The mechanism of `kmod/guest/patches/uml-xstate-runtime-size.patch`,
/// on this host's own XSAVE layout: a buffer smaller than the host's XSAVE
/// area is refused by PTRACE_SETREGSET (EFAULT, the AMX symptom), a
/// host-sized scratch buffer with the truncated components in init state
/// is accepted and keeps the registers UML holds (`kmod/guest/xstate-check.c`).
pub fn xstate_check() -> Result<()> {
    let out = root().join("target/xstate-check");
    std::fs::create_dir_all(root().join("target"))?;
    run(Command::new("gcc").arg("-O1").arg("-o").arg(&out).arg(root().join("kmod/guest/xstate-check.c")))?;
    run(&mut Command::new(&out))
}
