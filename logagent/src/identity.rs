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
