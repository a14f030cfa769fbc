//! `cargo xtask`: the one build entry point. It installs what the build
//! needs (Debian packages, cargo tools), builds the parts that need other
//! targets or toolchains, and runs every test.

mod bench;
mod demo;
mod deps;
mod ebpf;
mod filters;
mod guest;
mod install;
mod lint;
mod spec;
mod test;
mod testfilters;
mod uapi;

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
    /// Check that the filters link with no rust-lld on the PATH (a step of `test`).
    LinkCheck,
    /// Build the eBPF twins (compare-ebpf/ebpf; bpf-linker into ~/.cache/wasmfw/tools) into target/ebpf/.
    BuildEbpf,
    /// Install the Debian packages the build and the tests need (apt-get).
    Deps,
    /// Write the broken test filters and the capture the kernel-module tests use into target/test-filters/.
    BuildTestFilters,
    /// The main job: build everything and show a filter dropping real traffic.
    Demo {
        /// Only replay a sample capture in userspace (no guest kernel).
        #[arg(long)]
        replay: bool,
    },
    /// Install wasmfw, its filters and eBPF objects, completions, man page and
    /// the systemd unit (which runs `wasmfw apply POLICY_DIR` at boot).
    Install {
        #[arg(long, default_value = "/usr/local")]
        prefix: std::path::PathBuf,
        /// Stage under this directory instead of `/`.
        #[arg(long)]
        destdir: Option<std::path::PathBuf>,
        #[arg(long, default_value = "/etc/wasmfw/policies")]
        policy_dir: std::path::PathBuf,
        #[arg(long, default_value = "/etc/systemd/system")]
        unit_dir: std::path::PathBuf,
        /// A wasmfw.ko built for the running kernel.
        #[arg(long)]
        module: Option<std::path::PathBuf>,
    },
    /// The WebAssembly 1.0 spec test suite in userspace and in the kernel (UML guest), side by side (docs/conformance.md).
    Spec {
        /// Raw results as JSON.
        #[arg(long)]
        json: bool,
        /// Only the userspace column.
        #[arg(long)]
        no_kernel: bool,
        /// The guest for the kernel column.
        #[arg(long, default_value = "uml")]
        guest: String,
        /// Only the .wast files whose name contains one of these.
        files: Vec<String>,
    },
    /// Inside the guest: feed REQUESTS to /dev/wasmfw_spectest, write RESPONSES (used by `spec`).
    #[command(hide = true)]
    SpecGuest { requests: std::path::PathBuf, responses: std::path::PathBuf },
    /// Every benchmark in one table: host (Wasm, native, eBPF JIT) and UML guest (module, bridge, throughput), target/bench/results.{json,svg}.
    Bench {
        /// Shorter rounds and floods (a few minutes).
        #[arg(long)]
        quick: bool,
        /// Host figures only (no guest kernel).
        #[arg(long)]
        no_guest: bool,
    },
    /// The style gate (the first step of `test`): rustfmt, clippy -D warnings, shellcheck.
    Lint {
        /// Reformat every Rust file instead of checking (clippy and shellcheck are not run).
        #[arg(long)]
        fix: bool,
    },
    /// Write kmod/wasmfw/wasmfw_uapi.h from the Rust definition (kmod/uapi/src/lib.rs).
    Uapi,
    /// Run every test (what .ci/run runs).
    Test {
        /// Skip the guest kernel tests.
        #[arg(long)]
        no_guest: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::BuildFilters => filters::build(),
        Cmd::BuildEbpf => ebpf::build(),
        Cmd::LinkCheck => filters::link_check(),
        Cmd::Deps => deps::ensure_all(),
        Cmd::BuildTestFilters => testfilters::build(),
        Cmd::Demo { replay: true } => demo::replay_demo(),
        Cmd::Demo { replay: false } => guest::demo(),
        Cmd::Install { prefix, destdir, policy_dir, unit_dir, module } => {
            install::install(&install::Options { prefix, destdir, policy_dir, unit_dir, module })
        }
        Cmd::Spec { json, no_kernel, guest, files } => spec::run(&spec::Options { json, no_kernel, guest, files }),
        Cmd::SpecGuest { requests, responses } => spec::guest_driver(&requests, &responses),
        Cmd::Bench { quick, no_guest } => bench::run_all(&bench::Options { quick, no_guest }),
        Cmd::Lint { fix: true } => lint::fmt_fix(),
        Cmd::Lint { fix: false } => lint::run_all(),
        Cmd::Uapi => uapi::run(),
        Cmd::Test { no_guest } => test::run_all(&test::Options { no_guest }),
    }
}
