//! Loads a filter on a thread with a given stack size: used to measure how
//! much stack the load path needs (`kmod/README.md`, "kernel stack").
//!   cargo run --release -p wasmfw-engine --example stack_probe -- FILE.wasm BYTES
use std::sync::Arc;

struct Env;
impl wasmfw_engine::Env for Env {
    fn now_ns(&self) -> u64 {
        0
    }
    fn log(&self, _: i32, _: &[u8]) {}
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let wasm = std::fs::read(&args[1]).expect("read wasm");
    let stack: usize = args[2].parse().expect("stack bytes");
    let limits = wasmfw_engine::Limits { fuel: 100_000, memory_limit: 1 << 20, on_fault: wasmfw_engine::Verdict::Pass };
    let t = std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || wasmfw_engine::load(&wasm, limits, b"", 1, Arc::new(Env), 1).map(|_| ()).map_err(|e| e.to_string()))
        .unwrap();
    println!("{:?}", t.join().unwrap());
}
