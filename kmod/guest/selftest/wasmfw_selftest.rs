// SPDX-License-Identifier: GPL-2.0
//! Harness self-test: a minimal out-of-tree Rust module.
//!
//! It allocates a little (so KASAN and kmemleak in the debug kernel have
//! something to watch) and prints a line on load and on unload, which
//! `kmod/guest/selftest.sh` looks for in the kernel log.

use kernel::prelude::*;

module! {
    type: Selftest,
    name: "wasmfw_selftest",
    author: "wasmfw",
    description: "wasmfw guest harness self-test module",
    license: "GPL",
}

struct Selftest {
    values: KVec<u32>,
}

impl kernel::Module for Selftest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut values = KVec::new();
        for i in 1..=4u32 {
            values.push(i * i, GFP_KERNEL)?;
        }
        let sum: u32 = values.iter().sum();
        pr_info!("loaded (sum={})\n", sum);
        Ok(Selftest { values })
    }
}

impl Drop for Selftest {
    fn drop(&mut self) {
        pr_info!("unloaded ({} values)\n", self.values.len());
    }
}
