//! Standard output or standard error.

use std::io::{self, IsTerminal, Write};

use crate::outputs::Output;
use crate::record::Record;

/// Which standard stream a console output writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error (the default: keeps logs apart from program output).
    #[default]
    Stderr,
}

/// When to colour the level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorMode {
    /// Only when the stream is a terminal.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorMode {
    /// Whether to colour output written to `stream`.
    pub fn resolve(self, stream: Stream) -> bool {
        match self {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => match stream {
                Stream::Stdout => io::stdout().is_terminal(),
                Stream::Stderr => io::stderr().is_terminal(),
            },
        }
    }
}

/// Writes lines to stdout or stderr, one `write` per batch.
pub struct ConsoleOutput {
    stream: Stream,
    buf: Vec<u8>,
}

impl ConsoleOutput {
    /// A console output on `stream`.
    pub fn new(stream: Stream) -> Self {
        ConsoleOutput {
            stream,
            buf: Vec::with_capacity(8 * 1024),
        }
    }
}

impl Output for ConsoleOutput {
    fn write(&mut self, line: &[u8], _record: &Record) -> io::Result<()> {
        self.buf.extend_from_slice(line);
        if self.buf.len() >= 32 * 1024 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = match self.stream {
            Stream::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&self.buf).and_then(|_| out.flush())
            }
            Stream::Stderr => io::stderr().lock().write_all(&self.buf),
        };
        // Drop the batch even on error: retrying a broken pipe forever would grow the buffer.
        self.buf.clear();
        r
    }

    fn describe(&self) -> String {
        match self.stream {
            Stream::Stdout => "console (stdout)".into(),
            Stream::Stderr => "console (stderr)".into(),
        }
    }
}
