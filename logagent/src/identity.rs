//! Which file is this? Device + inode + a fingerprint of the first bytes.
//!
//! Device and inode alone are not enough: when a file is deleted its inode number is soon
//! reused by a new file, and a checkpoint keyed only by inode would skip the new file's first
//! bytes. The fingerprint (FNV-1a over the first up to [`FINGERPRINT_BYTES`] bytes, with the
//! length it covers) tells a reused inode apart, and also notices a copytruncate whose new
//! content already grew past the old read offset.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use serde::{Deserialize, Serialize};

/// How many leading bytes the fingerprint covers once the file is that long.
pub const FINGERPRINT_BYTES: usize = 1024;

/// A file's identity as stored in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    /// `st_dev` of the file system.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// How many leading bytes `fingerprint` covers (less than [`FINGERPRINT_BYTES`] while
    /// the file is shorter).
    pub fingerprint_len: u32,
    /// FNV-1a 64 of those bytes.
    pub fingerprint: u64,
}

impl FileIdentity {
    /// Reads the identity of an open file; also returns its current size.
    pub fn of(file: &File) -> io::Result<(FileIdentity, u64)> {
        let meta = file.metadata()?;
        let (len, fingerprint) = head_hash(file, FINGERPRINT_BYTES.min(meta.len() as usize))?;
        Ok((
            FileIdentity {
                dev: meta.dev(),
                ino: meta.ino(),
                fingerprint_len: len as u32,
                fingerprint,
            },
            meta.len(),
        ))
    }

    /// Whether the file's first `fingerprint_len` bytes are still the ones fingerprinted
    /// (false after a truncation or when the inode now belongs to another file).
    pub fn head_matches(&self, file: &File) -> io::Result<bool> {
        let (len, hash) = head_hash(file, self.fingerprint_len as usize)?;
        Ok(len == self.fingerprint_len as usize && hash == self.fingerprint)
    }

    /// Whether `other` (the identity of the open `file`) holds the content this identity
    /// fingerprinted, under whatever inode: the file was renamed, or copied before a
    /// truncation. Compared without reading when both fingerprints cover the same bytes; an
    /// empty fingerprint matches nothing, as it would match every file.
    pub fn same_content(&self, other: &FileIdentity, file: &File) -> bool {
        match self.fingerprint_len.cmp(&other.fingerprint_len) {
            _ if self.fingerprint_len == 0 => false,
            std::cmp::Ordering::Equal => self.fingerprint == other.fingerprint,
            std::cmp::Ordering::Less => self.head_matches(file).unwrap_or(false),
            std::cmp::Ordering::Greater => false,
        }
    }

    /// Whether the fingerprint still covers fewer bytes than it could.
    pub fn is_partial(&self) -> bool {
        (self.fingerprint_len as usize) < FINGERPRINT_BYTES
    }

    /// Grows a partial fingerprint with `bytes`, read from the file at offset `at`, where
    /// they continue (or overlap) what it covers; true if it grew. Growing it from what was
    /// actually read, and not by reading the head again, matters: a file truncated and
    /// rewritten to the same length between two reads would otherwise have its new head
    /// fingerprinted as if it were the content already read, and the truncation would go
    /// unnoticed when the old fingerprint covered only a common prefix (`app line `).
    pub fn extend(&mut self, at: u64, bytes: &[u8]) -> bool {
        let covered = u64::from(self.fingerprint_len);
        let end = at + bytes.len() as u64;
        if !self.is_partial() || at > covered || end <= covered {
            return false;
        }
        let skip = (covered - at) as usize;
        let take = (FINGERPRINT_BYTES - covered as usize).min(bytes.len() - skip);
        self.fingerprint = fnv1a_from(self.fingerprint, &bytes[skip..skip + take]);
        self.fingerprint_len += take as u32;
        true
    }
}

/// The content part of the event ids of one file's lines (see `docs/dev/CONTRACTS.md`,
/// "Event id"): FNV-1a 64 of the file's first `min(end, FINGERPRINT_BYTES)` bytes, where
/// `end` is the offset just past the line.
///
/// Why not [`FileIdentity::fingerprint`]: it covers whatever was read when it was last
/// grown, which depends on timing (how far the writer had got at each read, whether the
/// agent restarted in between); an id must be the same every time the same line is read.
/// The bytes before a line's end are fixed once the line is complete (a line is only shipped
/// then), so a key over them is a function of the content alone: the same after a restart,
/// under any name after a rename, and in a copytruncate copy of the same bytes. It never
/// involves the inode or the path. Lines ending past the first [`FINGERPRINT_BYTES`] — nearly
/// all of them — share one hash, computed once; only the first lines of a file hash their
/// own prefix (at most that many bytes each).
#[derive(Debug, Clone, Default)]
pub struct EventKey {
    /// The file's first bytes read so far, at most [`FINGERPRINT_BYTES`].
    head: Vec<u8>,
    /// The hash of all [`FINGERPRINT_BYTES`] once `head` has them.
    full: Option<u64>,
    /// Mixed into the key of a line whose head could not be read whole (see
    /// [`EventKey::for_line`]); 0 when none is needed.
    salt: u64,
}

impl EventKey {
    /// A key for content read from offset 0.
    pub fn new() -> Self {
        EventKey::default()
    }

    /// A key for content resumed at `offset`: what comes before it is read from `file`.
    pub fn resumed(file: &File, offset: u64) -> io::Result<Self> {
        let mut key = EventKey::new();
        key.fill(file, offset)?;
        Ok(key)
    }

    /// A key for content resumed at `offset` whose head could not be read: its lines' keys
    /// are made this file's own (by inode and fingerprint) rather than shared with every
    /// file whose head is as short — a later re-send may then be a duplicate document, but
    /// no other file's line is ever taken for one of these.
    pub fn unread(identity: &FileIdentity) -> Self {
        let mut salt = fnv1a(&identity.dev.to_le_bytes());
        salt = fnv1a_from(salt, &identity.ino.to_le_bytes());
        salt = fnv1a_from(salt, &identity.fingerprint.to_le_bytes());
        EventKey {
            salt: salt | 1,
            ..EventKey::default()
        }
    }

    /// Whether the head read holds the content `identity` fingerprinted, as far as both
    /// go (false when the file was rewritten since: its head is then not this content's).
    pub fn agrees_with(&self, identity: &FileIdentity) -> bool {
        let n = (identity.fingerprint_len as usize).min(self.head.len());
        if n < identity.fingerprint_len as usize {
            return true;
        }
        fnv1a(&self.head[..n]) == identity.fingerprint
    }

    /// Whether the head lacks bytes before `offset` (resumed past what was read).
    pub fn has_gap(&self, offset: u64) -> bool {
        (self.head.len() as u64) < offset.min(FINGERPRINT_BYTES as u64)
    }

    /// Reads what is missing of the head before `offset` from `file` (after a resume past
    /// what was read, so that no line's key is computed over a gap).
    pub fn fill(&mut self, file: &File, offset: u64) -> io::Result<()> {
        let want = (offset.min(FINGERPRINT_BYTES as u64)) as usize;
        if self.head.len() >= want {
            return Ok(());
        }
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let mut got = self.head.len();
        while got < want {
            let n = file.read_at(&mut buf[got..want], got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let from = self.head.len();
        self.extend(from as u64, &buf[from..got]);
        Ok(())
    }

    /// Takes in `bytes`, read at offset `at`, where they continue (or overlap) the head.
    pub fn extend(&mut self, at: u64, bytes: &[u8]) {
        let covered = self.head.len() as u64;
        let end = at + bytes.len() as u64;
        if self.full.is_some() || at > covered || end <= covered {
            return;
        }
        let skip = (covered - at) as usize;
        let take = (FINGERPRINT_BYTES - self.head.len()).min(bytes.len() - skip);
        self.head.extend_from_slice(&bytes[skip..skip + take]);
        if self.head.len() == FINGERPRINT_BYTES {
            self.full = Some(fnv1a(&self.head));
        }
    }

    /// The key of the line ending just before `end`.
    pub fn for_line(&self, end: u64) -> u64 {
        match self.full {
            Some(full) if end >= FINGERPRINT_BYTES as u64 => full,
            _ if !self.has_gap(end) => fnv1a(&self.head[..(end as usize).min(self.head.len())]),
            // `fill` and `extend` keep the head up to every shipped line's end; should a
            // read have failed, a hash of a shorter head would be shared with other files.
            _ => fnv1a_from(self.salt ^ 0xcbf2_9ce4_8422_2325, &self.head),
        }
    }
}

fn head_hash(file: &File, want: usize) -> io::Result<(usize, u64)> {
    let mut buf = [0u8; FINGERPRINT_BYTES];
    let want = want.min(FINGERPRINT_BYTES);
    let mut got = 0;
    while got < want {
        let n = file.read_at(&mut buf[got..want], got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok((got, fnv1a(&buf[..got])))
}

/// FNV-1a, 64 bit: stable across Rust versions, unlike `DefaultHasher`, so checkpoints
/// written by one build are understood by the next.
fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(0xcbf2_9ce4_8422_2325, bytes)
}

/// FNV-1a continued from `hash` (of the bytes before), so a fingerprint can grow.
fn fnv1a_from(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn event_keys_depend_on_the_content_before_the_line_end_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.log");
        let mut content = Vec::new();
        for i in 0..100 {
            content.extend_from_slice(format!("k line {i:06}\n").as_bytes());
        }
        std::fs::write(&path, &content).unwrap();
        let file = File::open(&path).unwrap();
        // Read in one go from 0.
        let mut whole = EventKey::new();
        whole.extend(0, &content);
        // Read in small uneven pieces, as a slow writer makes the agent read.
        let mut pieces = EventKey::new();
        let mut at = 0;
        for len in [3usize, 50, 7, 400, 1, 2000].iter().cycle() {
            if at >= content.len() {
                break;
            }
            let end = (at + len).min(content.len());
            pieces.extend(at as u64, &content[at..end]);
            at = end;
        }
        for end in [14u64, 28, 1022, 1036, 1400] {
            let expected = fnv1a(&content[..(end as usize).min(FINGERPRINT_BYTES)]);
            assert_eq!(whole.for_line(end), expected, "{end}");
            assert_eq!(pieces.for_line(end), expected, "{end}");
            // Resumed after a restart at the line's start, or anywhere before its end.
            let resumed = EventKey::resumed(&file, end - 14).unwrap();
            let mut resumed = resumed;
            resumed.extend(end - 14, &content[end as usize - 14..]);
            assert_eq!(resumed.for_line(end), expected, "{end} resumed");
        }
        assert_ne!(whole.for_line(14), whole.for_line(28), "first lines differ");
        assert_eq!(
            whole.for_line(1036),
            whole.for_line(1400),
            "one key past the head"
        );
        // A copy of the same bytes (copytruncate, or a renamed file) gives the same keys.
        let copy = dir.path().join("k.log.1");
        std::fs::copy(&path, &copy).unwrap();
        let copied = EventKey::resumed(&File::open(&copy).unwrap(), 2000).unwrap();
        assert_eq!(copied.for_line(1400), whole.for_line(1400));
        assert_eq!(copied.for_line(28), whole.for_line(28));
        // A head that could not be read gives keys of that file's own, never shared.
        let id = |ino| FileIdentity {
            dev: 1,
            ino,
            fingerprint_len: 0,
            fingerprint: 0,
        };
        let (a, b) = (EventKey::unread(&id(2)), EventKey::unread(&id(3)));
        assert!(a.has_gap(14));
        assert_ne!(a.for_line(14), b.for_line(14));
        assert_ne!(a.for_line(14), EventKey::new().for_line(14));
        // A resumed head checked against a checkpoint of other content.
        let (real, _) = FileIdentity::of(&file).unwrap();
        let read = EventKey::resumed(&file, 2000).unwrap();
        assert!(read.agrees_with(&real));
        assert!(!read.agrees_with(&FileIdentity {
            fingerprint: 1,
            ..real
        }));
    }

    #[test]
    fn identity_grows_with_the_file_and_notices_rewritten_heads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"first line\n").unwrap();
        let r = File::open(&path).unwrap();
        let (id, size) = FileIdentity::of(&r).unwrap();
        assert_eq!((id.fingerprint_len, size), (11, 11));
        assert!(id.is_partial());
        f.write_all(&[b'x'; 2000]).unwrap();
        assert!(id.head_matches(&r).unwrap(), "appending keeps the head");
        let (full, _) = FileIdentity::of(&r).unwrap();
        assert_eq!(full.fingerprint_len as usize, FINGERPRINT_BYTES);
        // copytruncate, then the writer carries on with other content
        f.set_len(0).unwrap();
        std::fs::write(&path, b"other line\n").unwrap();
        assert!(!id.head_matches(&r).unwrap());
        assert!(
            !full.head_matches(&r).unwrap(),
            "shorter than the fingerprint"
        );
    }

    #[test]
    fn a_fingerprint_grown_from_reads_notices_a_same_length_rewrite_with_a_common_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let old = b"c line 000001\nc line 000002\n";
        let new = b"c line 000003\nc line 000004\n";
        std::fs::write(&path, &old[..7]).unwrap();
        let r = File::open(&path).unwrap();
        // Seen when only the first write ("c line ") had landed.
        let (mut id, _) = FileIdentity::of(&r).unwrap();
        assert_eq!(id.fingerprint_len, 7);
        std::fs::write(&path, old).unwrap();
        // The reader reads everything from 0 and grows the fingerprint with what it read.
        assert!(id.extend(0, old));
        assert_eq!(id.fingerprint_len as usize, old.len());
        assert_eq!(
            id,
            FileIdentity::of(&r).unwrap().0,
            "same as hashing the file"
        );
        assert!(!id.extend(0, old), "nothing new to cover");
        assert!(!id.extend(40, b"gap"), "not contiguous");
        // copytruncate and a rewrite to the same length, sharing the first 7 bytes
        std::fs::write(&path, new).unwrap();
        assert!(!id.head_matches(&r).unwrap(), "the rewrite is noticed");
    }
}
