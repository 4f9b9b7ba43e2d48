//! Where formatted records go. One implementation per file; add an output by
//! implementing [`Output`] and passing it to [`Builder::custom`](crate::Builder::custom).

pub mod console;
pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;

use std::io;

use crate::record::Record;

/// A destination for formatted lines.
///
/// Calls come from one thread at a time (the writer thread, or the caller holding the
/// output lock in sync mode), so implementations need no locking of their own.
pub trait Output: Send {
    /// Takes one formatted record, ending in `\n`. May buffer; must not block on the
    /// network.
    fn write(&mut self, line: &[u8], record: &Record) -> io::Result<()>;

    /// Formats the record straight into the output's own buffer, saving a copy.
    /// Outputs without a buffer of their own keep the default (`None`), and get the
    /// formatted line through [`Output::write`] instead.
    fn write_with(
        &mut self,
        _record: &Record,
        _format: &mut dyn FnMut(&mut Vec<u8>),
    ) -> Option<io::Result<()>> {
        None
    }

    /// Pushes everything buffered to the destination (end of a batch, the flush
    /// interval, `fatal!`, shutdown).
    fn flush(&mut self) -> io::Result<()>;

    /// Called now and then while idle, for upkeep such as reopening a deleted file.
    fn tick(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Last call before the output is dropped: flush and finish background work.
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }

    /// A short description for error reports (`file /var/log/app.log`).
    fn describe(&self) -> String;
}
