//! Bench helpers: the empty XDP program, the baseline of the benchmarks.

use anyhow::{anyhow, Result};
use aya::programs::Xdp;
use aya::Ebpf;

use crate::run::test_run;
use crate::{loader, object_path};

/// Loads the empty XDP program (`target/ebpf/empty.o`).
pub fn load_empty() -> Result<Ebpf> {
    let path = object_path("empty")?;
    let mut ebpf = loader().load_file(&path)?;
    let p: &mut Xdp = ebpf.program_mut("empty").ok_or_else(|| anyhow!("no program empty"))?.try_into()?;
    p.load()?;
    Ok(ebpf)
}

/// ns per run of the empty XDP program on `frame` (BPF_PROG_TEST_RUN).
pub fn bench_empty(frame: &[u8], repeat: u32) -> Result<f64> {
    let ebpf = load_empty()?;
    let p: &Xdp = ebpf.program("empty").unwrap().try_into()?;
    let (_, d) = test_run(p, frame, repeat)?;
    Ok(d.as_nanos() as f64)
}
