//! Filter ABI v1: what a wasmfw filter module exports and imports.
//!
//! This crate is the single source of truth shared by the filter SDK
//! (wasm32v1-none), the engine (kernel and userspace) and `wasmfw`. It holds
//! numbers and names, and the [`Verdict`] with the encodings derived from
//! it (run result, capture bits); `docs/filter-abi.md` explains them.
#![no_std]

mod exports;
mod imports;
mod limits;
mod values;
mod verdict;

pub use exports::*;
pub use imports::*;
pub use limits::*;
pub use values::*;
pub use verdict::*;

/// ABI version a host accepts; returned by the export [`EXPORT_ABI_VERSION`].
pub const ABI_VERSION: u32 = 1;

/// Module name of every host import.
pub const IMPORT_MODULE: &str = "wasmfw";
