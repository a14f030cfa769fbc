//! `wasmfw`: check, replay, load and inspect Wasm packet filters.
//!
//! Modules, each importing only from the ones below it (no cycles):
//!
//! ```text
//! main ─> args (the clap types) ─> engines (for --engine's values)
//!  └─> commands: apply ─> manage, status, maps, log, capture, check, replay
//!       └─> args, backend (the Backend trait and its types), engines
//! engines (ENGINES, lookups) ─> engines/{kmod, ebpf, compiled, auto} ─> engines/xdp, backend
//! leaves, used by all above: kmod (the /dev/wasmfw client), records,
//!   netns, access, list_maps, wasm, replay (captures)
//! ```

mod access;
mod apply;
mod args;
mod backend;
mod capture;
mod check;
mod engines;
mod kmod;
mod list_maps;
mod log;
mod manage;
mod maps;
mod netns;
mod records;
mod replay;
mod status;
mod wasm;

use std::process::ExitCode;

use args::{Cli, Cmd, HookArg};
use clap::Parser;

fn main() -> ExitCode {
    // A closed pipe (`wasmfw map list | grep -q x`) ends the output as it
    // ends any Unix tool's, by SIGPIPE, not by println!'s panic ("failed
    // printing to stdout"), which Rust's runtime provokes by ignoring it.
    // SAFETY: no other thread exists yet; SIG_DFL is a valid disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // Whether errors are JSON is known before parsing, so that a command
    // line clap refuses is reported in the asked-for form too.
    let json_asked = std::env::args().any(|a| a == "--json" || a == "-j");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if json_asked && e.use_stderr() => {
            let text = e.render().to_string();
            let first: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            let first = first.join(" ").trim_start_matches("error: ").to_string();
            return fail(true, &anyhow::anyhow!("{first}"));
        }
        Err(e) => e.exit(),
    };
    let json = cli.json;
    let result = match &cli.netns {
        Some(ns) => netns::enter(ns).and_then(|()| run(cli.cmd, json)),
        None => run(cli.cmd, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(json, &e),
    }
}

/// One line, cause chain included, like `ip` or `bpftool`.
fn fail(json: bool, e: &anyhow::Error) -> ExitCode {
    let msg = format!("{e:#}").replace('\n', " ");
    if json {
        println!("{}", serde_json::json!({ "error": msg }));
    } else {
        eprintln!("wasmfw: {msg}");
    }
    ExitCode::FAILURE
}

fn run(cmd: Cmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        Cmd::Check { target } => check::run(&target, json),
        Cmd::Replay { target, pcap } => replay::run(&target, &pcap, json),
        Cmd::TestRun { target, pcap, repeat, hook } => {
            manage::test_run(&target, &pcap, repeat, hook == Some(HookArg::Xdp), json)
        }
        Cmd::Load(args) => manage::load(&args, json),
        Cmd::Unload { iface: Some(iface), .. } => manage::unload(&iface, json),
        Cmd::Unload { iface: None, .. } => manage::unload_all(json),
        Cmd::Status => status::status(json),
        Cmd::Stats { iface } => status::stats(iface.as_deref(), json),
        Cmd::Poll { iface, interval, count } => status::poll(iface.as_deref(), interval, count, json),
        Cmd::Map(cmd) => maps::run(&cmd, json),
        Cmd::Capture(args) => capture::run(&args, json),
        Cmd::Log { iface, follow } => log::run(&iface, follow, json),
        Cmd::Apply { dir, engine, mode, dry_run } => apply::run(&dir, engine, mode, dry_run, json),
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "wasmfw",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Cmd::UapiLayout => {
            println!("{}", kmod::uapi_layout_json());
            Ok(())
        }
        Cmd::Manpage => {
            Ok(clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut std::io::stdout())?)
        }
    }
}
