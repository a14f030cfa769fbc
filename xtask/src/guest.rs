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
