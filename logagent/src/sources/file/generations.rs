//! The generations a rename rotation leaves beside a path (`app.log.1`, `app.log.2`,
//! `app.log-20261201`, ...), which of them the agent has not finished, and in which order
//! they were written.
//!
//! A path may be rotated any number of times while the agent is down, or between two looks
//! of a running tailer. Only the generation the agent was reading has a checkpoint; the ones
//! created and rotated away unseen have none. So the checkpoints anchor the search: every
//! generation newer than the newest one the agent knows (by content fingerprint) was never
//! read and is shipped whole; a known one is shipped from its checkpoint when it grew past
//! it. Unknown generations older than every known one are history from before the agent
//! followed the path and are left alone, as is everything when the agent knows none (a first
//! start does not ship old rotations).

use std::cmp::Ordering;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::checkpoint::Checkpoint;
use crate::identity::FileIdentity;

/// Name endings of compressed rotations: their bytes are not the lines, so they are never
/// opened (logrotate's `delaycompress` keeps the newest rotation readable).
const COMPRESSED: [&str; 5] = [".gz", ".bz2", ".xz", ".zst", ".lz4"];

/// A file beside the followed path whose name starts with the path's name.
pub struct Sibling {
    /// Where it is now.
    pub path: PathBuf,
    /// Open for reading.
    pub file: File,
    /// `stat` of the open file.
    pub meta: Metadata,
}

/// The regular, uncompressed files beside `path` whose names start with its name (as
/// rotation tools name them), opened through `open`, in name order. `open` is the tailer's
/// checked opening (allowlist on the opened file, regular files only): a sibling is a name
/// anyone who can write the directory controls, e.g. a symlink to a file outside
/// `allowed_paths` whose head was made to match.
pub fn siblings(path: &Path, open: impl Fn(&Path) -> Option<(File, Metadata)>) -> Vec<Sibling> {
    let (Some(name), Some(dir)) = (path.file_name(), path.parent()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut candidates: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&name) && n != name && !COMPRESSED.iter().any(|c| n.ends_with(c))
        })
        .map(|e| e.path())
        .collect();
    candidates.sort();
    candidates
        .into_iter()
        .filter_map(|path| {
            let (file, meta) = open(&path)?;
            meta.is_file().then_some(Sibling { path, file, meta })
        })
        .collect()
}

/// What the agent knows of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// No checkpoint matches its content.
    Unknown,
    /// A tailer of this process reads it, or still holds it (a renamed file lingering).
    Reading,
    /// Its content was read under the path up to this offset.
    Read(u64),
}

/// A generation to ship, oldest first: the sibling and where to start.
pub struct Pending {
    /// The rotated file.
    pub sibling: Sibling,
    /// Where reading starts (its checkpoint, or 0 when it was never read).
    pub offset: u64,
}

/// The generations of `path` rotated away before the agent finished them, oldest first.
/// `current` is the file now at the path (never a generation), `leftovers` the checkpoints
/// of content last read under the path that is no longer the file there, and `reading`
/// tells whether a tailer of this process holds a file; siblings are opened through `open`
/// (see [`siblings`]).
pub fn unfinished(
    path: &Path,
    current: &Metadata,
    leftovers: &[Checkpoint],
    reading: impl Fn(&FileIdentity) -> bool,
    open: impl Fn(&Path) -> Option<(File, Metadata)>,
) -> Vec<Pending> {
    let mut gens: Vec<(Sibling, FileIdentity, Known)> = siblings(path, open)
        .into_iter()
        .filter(|s| !(s.meta.dev() == current.dev() && s.meta.ino() == current.ino()))
        .filter_map(|s| {
            let (identity, size) = FileIdentity::of(&s.file).ok()?;
            let known = if reading(&identity) {
                Known::Reading
            } else {
                leftovers
                    .iter()
                    .filter(|c| size >= c.offset && c.identity.same_content(&identity, &s.file))
                    .map(|c| c.offset)
                    .max()
                    .map_or(Known::Unknown, Known::Read)
            };
            Some((s, identity, known))
        })
        .collect();
    gens.sort_by(|a, b| age(&a.0, &b.0));
    let known: Vec<Known> = gens.iter().map(|g| g.2).collect();
    let plan = plan(&known);
    let mut gens: Vec<Option<Sibling>> = gens.into_iter().map(|g| Some(g.0)).collect();
    plan.into_iter()
        .filter_map(|(i, offset)| {
            let sibling = gens.get_mut(i)?.take()?;
            (sibling.meta.len() > offset).then_some(Pending { sibling, offset })
        })
        .collect()
}

/// Which generations (indices into `known`, oldest first) to ship and from where: every
/// known one from its checkpoint, and every unknown one newer than the newest known one
/// from 0. Unknown ones older than that were either never followed or are history.
pub fn plan(known: &[Known]) -> Vec<(usize, u64)> {
    let Some(newest_known) = known.iter().rposition(|k| *k != Known::Unknown) else {
        return Vec::new();
    };
    known
        .iter()
        .enumerate()
        .filter_map(|(i, k)| match k {
            Known::Read(offset) => Some((i, *offset)),
            Known::Unknown if i > newest_known => Some((i, 0)),
            _ => None,
        })
        .collect()
}

/// Older generation first. Numbered rotations (`app.log.2` before `app.log.1`) by their
/// number, which stays right even when a writer still appended to a renamed file after its
/// successor was created; any other naming (dates, custom suffixes) by modification time,
/// then by name.
fn age(a: &Sibling, b: &Sibling) -> Ordering {
    match (number(&a.path), number(&b.path)) {
        (Some(x), Some(y)) => y.cmp(&x),
        _ => mtime(&a.meta)
            .cmp(&mtime(&b.meta))
            .then_with(|| a.path.cmp(&b.path)),
    }
}

/// `N` of a name ending in `.N`.
fn number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let (_, n) = name.rsplit_once('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

fn mtime(meta: &Metadata) -> SystemTime {
    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Known::*;
    use std::io::Write;

    fn plain_open(path: &Path) -> Option<(File, Metadata)> {
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        Some((file, meta))
    }

    fn common_append(path: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn unknown_generations_newer_than_the_newest_known_one_are_shipped_whole() {
        // oldest first: history, the one read when the agent stopped, two rotated unseen
        assert_eq!(
            plan(&[Unknown, Read(40), Unknown, Unknown]),
            vec![(1, 40), (2, 0), (3, 0)]
        );
        // the file a running tailer still holds anchors the search the same way
        assert_eq!(plan(&[Unknown, Reading, Unknown]), vec![(2, 0)]);
        assert!(
            plan(&[Unknown, Unknown]).is_empty(),
            "a first start ships no history"
        );
    }

    #[test]
    fn numbered_rotations_are_ordered_by_number_and_compressed_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app.log");
        for name in [
            "app.log.10",
            "app.log.2",
            "app.log.1",
            "app.log.3.gz",
            "other.log",
        ] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        std::fs::write(&app, b"live").unwrap();
        let mut s = siblings(&app, plain_open);
        s.sort_by(age);
        let names: Vec<String> = s
            .iter()
            .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["app.log.10", "app.log.2", "app.log.1"]);
    }

    #[test]
    fn only_generations_after_the_checkpointed_one_are_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app.log");
        std::fs::write(dir.path().join("app.log.3"), b"history\n").unwrap();
        let read = dir.path().join("app.log.2");
        // read (and checkpointed) when it was `app.log`, then it grew and was rotated twice
        std::fs::write(&read, b"read one\n").unwrap();
        let (identity, _) = FileIdentity::of(&File::open(&read).unwrap()).unwrap();
        common_append(&read, b"rest\n");
        std::fs::write(dir.path().join("app.log.1"), b"unseen\n").unwrap();
        std::fs::write(&app, b"live\n").unwrap();
        let c = Checkpoint {
            topic: "t".into(),
            path: app.to_string_lossy().into_owned(),
            identity,
            offset: 9,
            updated: 0,
        };
        let current = std::fs::metadata(&app).unwrap();
        let got: Vec<(String, u64)> = unfinished(&app, &current, &[c], |_| false, plain_open)
            .into_iter()
            .map(|p| {
                let name = p.sibling.path.file_name().unwrap().to_string_lossy();
                (name.into_owned(), p.offset)
            })
            .collect();
        assert_eq!(got, [("app.log.2".into(), 9), ("app.log.1".into(), 0)]);
    }
}
