//! aya-log: the programs' log records, printed on stderr or collected.

use anyhow::{anyhow, Result};

/// Prints the programs' aya-log records on stderr (`wasmfw poll`).
pub struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        eprintln!("[{} {}] {}", r.level(), r.target(), r.args());
    }
    fn flush(&self) {}
}

/// A reader of an attached program's aya-log ring buffer, by program id.
/// The programs only log if they were loaded with `WASMFW_EBPF_LOG` set.
pub fn program_logger(prog_id: u32) -> Result<aya_log::EbpfLogger<StderrLog>> {
    aya_log::EbpfLogger::init_from_id_with_logger(prog_id, StderrLog).map_err(|e| anyhow!("aya-log: {e}"))
}

/// One aya-log record of a program, as `wasmfw log` shows it.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// "error", "warn", "info", "debug" or "trace".
    pub level: &'static str,
    pub msg: String,
}

/// Collects records as EbpfLogger::flush hands them over.
#[derive(Clone, Default)]
struct Collect(std::sync::Arc<std::sync::Mutex<Vec<LogLine>>>);

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        let level = match r.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warn",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        if let Ok(mut v) = self.0.lock() {
            v.push(LogLine { level, msg: r.args().to_string() });
        }
    }
    fn flush(&self) {}
}

/// Reads an attached program's aya-log ring (map AYA_LOGS), found by
/// program id: records are consumed (a second reader does not see them).
pub struct LogReader {
    logger: aya_log::EbpfLogger<Collect>,
    lines: Collect,
}

impl LogReader {
    pub fn new(prog_id: u32) -> Result<LogReader> {
        let lines = Collect::default();
        let logger = aya_log::EbpfLogger::init_from_id_with_logger(prog_id, lines.clone())
            .map_err(|e| anyhow!("aya-log of program {prog_id}: {e}"))?;
        Ok(LogReader { logger, lines })
    }

    /// Every record in the ring now, oldest first.
    pub fn read(&mut self) -> Vec<LogLine> {
        self.logger.flush();
        self.lines.0.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}
