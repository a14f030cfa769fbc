//! The three filters as plain Rust functions on `&[u8]`: the native
//! baseline. A small, faithful re-implementation of docs/filters.md (same
//! parsing rules, same rule order, same integer token bucket, same name
//! walk), configured from the same policy `[params]`. Counters are plain
//! integers. It exists only to be timed next to the Wasm filter and the eBPF
//! twin, and to cross-check their verdicts on the benchmark packets.

mod config;
mod filters;
mod parse;

pub use filters::Native;
pub use parse::Link;
