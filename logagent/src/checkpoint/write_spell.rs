//! Reporting checkpoint write failures without flooding the log.

use super::file_format::CheckpointError;

/// What a failure spell of checkpoint writes has to say, once at each end.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteSpellReport {
    /// The first failure of a spell: the error, and what it means for delivery.
    Failing(String),
    /// The first success after a spell.
    Recovered(String),
}

/// Turns each periodic checkpoint write's result into at most one log line per failure
/// spell: a disk that stays full for an hour is one error and one recovery, not an error
/// every second (written, likely, to the same full disk).
#[derive(Debug, Default)]
pub struct WriteSpell {
    failed_attempts: u64,
}

impl WriteSpell {
    /// Takes one write's result; returns a line to log when a spell starts or ends.
    pub fn observe(&mut self, result: &Result<(), CheckpointError>) -> Option<WriteSpellReport> {
        match result {
            Err(e) => {
                self.failed_attempts += 1;
                (self.failed_attempts == 1).then(|| {
                    WriteSpellReport::Failing(format!(
                        "{e}. Shipping goes on and the write is retried every checkpoint \
                         interval; until one succeeds, a restart re-sends what was shipped \
                         since the last good write (duplicates, no loss)"
                    ))
                })
            }
            Ok(()) if self.failed_attempts > 0 => {
                let attempts = std::mem::take(&mut self.failed_attempts);
                Some(WriteSpellReport::Recovered(format!(
                    "checkpoints written again after {attempts} failed attempt{}",
                    if attempts == 1 { "" } else { "s" }
                )))
            }
            Ok(()) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::checkpoint::CheckpointFile;
    use crate::checkpoint::testing::{granted, store_with_log};

    #[test]
    fn a_failing_spell_is_reported_once_at_each_end_and_the_write_retried() {
        let (dir, log, store) = store_with_log(b"0123456789");
        let (progress, _) = granted(store.claim("t", "a.log", &File::open(&log).unwrap()));
        progress.ack(progress.register(10));
        // A directory where the file goes: the rename over it fails like a full disk would.
        std::fs::create_dir(store.path()).unwrap();
        let mut spell = WriteSpell::default();
        let first = spell.observe(&store.flush());
        assert!(
            matches!(&first, Some(WriteSpellReport::Failing(m)) if m.contains("rename")),
            "{first:?}"
        );
        assert_eq!(spell.observe(&store.flush()), None, "one line per spell");
        assert_eq!(spell.observe(&store.flush()), None);

        std::fs::remove_dir(store.path()).unwrap();
        assert_eq!(
            spell.observe(&store.flush()),
            Some(WriteSpellReport::Recovered(
                "checkpoints written again after 3 failed attempts".into()
            ))
        );
        let saved = CheckpointFile::in_dir(dir.path()).load().unwrap();
        assert_eq!(saved.len(), 1, "the failed write was retried");
        assert_eq!(saved[0].offset, 10);
        assert_eq!(spell.observe(&store.flush()), None);
    }
}
