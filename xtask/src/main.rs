//! `cargo xtask`: the one build entry point. It installs what the build
//! needs (Debian packages, cargo tools), builds the parts that need other
//! targets or toolchains, and runs every test.

mod deps;
mod filters;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build and test orchestration for wasmfw")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the Wasm filters (wasm32v1-none, Debian rustc-web, -Zbuild-std) into target/filters/.
    BuildFilters,
    /// Install the Debian packages the build and the tests need (apt-get).
    Deps,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::BuildFilters => filters::build(),
        Cmd::Deps => deps::ensure_all(),
    }
}
