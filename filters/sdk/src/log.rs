//! Logging: one line per call, formatted on the stack, at most
//! [`abi::MAX_LOG_LEN`](crate::abi::MAX_LOG_LEN) bytes (longer lines are
//! cut at a character boundary).

use core::fmt::{self, Write};

use crate::{abi, sys};

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    Error = abi::LOG_ERROR,
    Warn = abi::LOG_WARN,
    Info = abi::LOG_INFO,
    Debug = abi::LOG_DEBUG,
}

/// Logs one line: `log!(Level::Info, "blocking {} names", n)`.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        $crate::log::write($level, format_args!($($arg)+))
    };
}

/// A fixed buffer that keeps the first [`abi::MAX_LOG_LEN`] bytes written.
pub struct Line {
    buf: [u8; abi::MAX_LOG_LEN],
    len: usize,
}

impl Line {
    pub const fn new() -> Self {
        Line { buf: [0; abi::MAX_LOG_LEN], len: 0 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = abi::MAX_LOG_LEN - self.len;
        let mut n = s.len().min(room);
        // Cut at a character boundary so the line stays UTF-8.
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), s.as_bytes().get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
        }
        Ok(())
    }
}

/// Formats and logs one line; used by [`log!`](crate::log!).
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let mut line = Line::new();
    let _ = line.write_fmt(args);
    sys::log(level as i32, line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_char_boundary() {
        let mut l = Line::new();
        for _ in 0..100 {
            write!(l, "é-").unwrap();
        }
        assert!(l.as_bytes().len() <= abi::MAX_LOG_LEN);
        assert!(core::str::from_utf8(l.as_bytes()).is_ok());
        assert_eq!(l.as_bytes().len(), 255);
    }

    #[test]
    fn logs_through_host() {
        crate::testing::reset();
        crate::log!(Level::Warn, "x={} y={}", 1, "two");
        assert_eq!(crate::testing::logs(), ["1 x=1 y=two"]);
    }
}
