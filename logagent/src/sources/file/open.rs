//! The one way the agent opens a file it collects: the path a tailer follows, a rotation
//! sibling, the copy a copytruncate left, the rest of a generation rotated while the agent
//! was down. The agent runs as root on hosts whose log directories others can write to, so
//! a name is never trusted: what is checked is the file actually opened.
//!
//! On Linux the path is first opened with `O_PATH`, which resolves it (symlinks included)
//! to an inode without opening that inode: no device's open routine runs, a FIFO does not
//! block, nothing is read. The kernel's name for that inode (`/proc/self/fd/N`) must match
//! `allowed_paths`, and the inode must be a regular file (`fstat` of the same descriptor).
//! Only then is it opened for reading, through `/proc/self/fd/N`, which names that inode and
//! not the path again, so swapping a symlink between the check and the open changes nothing.
//! `O_NONBLOCK | O_NOCTTY` on that open are a second guard: even if a non-regular file got
//! that far it could neither block the thread nor become the controlling terminal.

use std::collections::HashMap;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::collect_config::AllowedPaths;
use crate::metrics::Metrics;

/// Why a file was not opened; the `reason` label of `logagent_files_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The file opened (after following symlinks) is not under `allowed_paths`.
    OutsideAllowedPaths,
    /// A FIFO, socket, device or directory.
    NotRegularFile,
    /// The open itself failed (permissions, I/O error, no `/proc`).
    OpenFailed,
}

impl RefusalReason {
    /// Every reason, so each series exists from the start.
    pub const ALL: [RefusalReason; 3] = [
        RefusalReason::OutsideAllowedPaths,
        RefusalReason::NotRegularFile,
        RefusalReason::OpenFailed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::OutsideAllowedPaths => "outside_allowed_paths",
            RefusalReason::NotRegularFile => "not_regular_file",
            RefusalReason::OpenFailed => "open_failed",
        }
    }
}

/// A file that was not opened, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// For the metric.
    pub reason: RefusalReason,
    /// For the log.
    pub detail: String,
}

/// Why [`open_collected`] returned no file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Nothing at the path (or it went away while being opened): not worth a warning.
    NotFound,
    /// Something is there and must not be read.
    Refused(Refusal),
    /// The process (`EMFILE`) or the system (`ENFILE`) is out of descriptors: nothing is
    /// wrong with the file, so it is not a refusal; it is tried again soon.
    NoDescriptor,
}

/// A regular file under `allowed_paths`, open for reading.
#[derive(Debug)]
pub struct OpenedFile {
    /// The descriptor (opened `O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC`).
    pub file: File,
    /// Its `fstat`.
    pub metadata: Metadata,
    /// Where it really is (symlinks resolved), as checked against `allowed_paths`.
    pub resolved: PathBuf,
}

/// Opens `path` for reading if what it names is a regular file under `allowed`.
pub fn open_collected(path: &Path, allowed: &AllowedPaths) -> Result<OpenedFile, OpenError> {
    open_checked(path, allowed, || {})
}

fn refused(reason: RefusalReason, detail: String) -> OpenError {
    OpenError::Refused(Refusal { reason, detail })
}

fn open_failed(e: io::Error) -> OpenError {
    match e.kind() {
        io::ErrorKind::NotFound => OpenError::NotFound,
        _ if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            OpenError::NoDescriptor
        }
        _ => refused(RefusalReason::OpenFailed, format!("cannot open: {e}")),
    }
}

/// The checks, shared by both platforms: `resolved` is where the opened inode really is.
fn check(resolved: &Path, metadata: &Metadata, allowed: &AllowedPaths) -> Result<(), OpenError> {
    if !allowed.allows(resolved) {
        return Err(refused(
            RefusalReason::OutsideAllowedPaths,
            format!(
                "resolves to {} which is outside allowed_paths",
                resolved.display()
            ),
        ));
    }
    if !metadata.is_file() {
        return Err(refused(
            RefusalReason::NotRegularFile,
            format!(
                "is not a regular file ({}); only regular files are collected",
                kind(metadata)
            ),
        ));
    }
    Ok(())
}

fn kind(m: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

/// [`open_collected`], with `between` run after the path was resolved and before the
/// checks, so a test can swap what the path names right there.
#[cfg(target_os = "linux")]
fn open_checked(
    path: &Path,
    allowed: &AllowedPaths,
    between: impl FnOnce(),
) -> Result<OpenedFile, OpenError> {
    use std::os::fd::AsRawFd;
    // Resolves the path to an inode without opening it (see the module comment).
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)
        .map_err(open_failed)?;
    between();
    let held = handle.metadata().map_err(open_failed)?;
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    let resolved = std::fs::read_link(&fd_path).map_err(|e| {
        refused(
            RefusalReason::OpenFailed,
            format!("cannot tell where it resolves ({e}; is /proc mounted?)"),
        )
    })?;
    if held.nlink() == 0 {
        // Deleted since the lookup; the kernel's name then ends in " (deleted)".
        return Err(OpenError::NotFound);
    }
    check(&resolved, &held, allowed)?;
    // Opens the inode held, not the path: whatever the path names by now does not matter.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&fd_path)
        .map_err(open_failed)?;
    let metadata = file.metadata().map_err(open_failed)?;
    if (metadata.dev(), metadata.ino()) != (held.dev(), held.ino()) || !metadata.is_file() {
        return Err(refused(
            RefusalReason::OpenFailed,
            "changed while being opened".to_string(),
        ));
    }
    Ok(OpenedFile {
        file,
        metadata,
        resolved,
    })
}

/// Without `O_PATH` and `/proc`: opened without blocking, then the inode opened must be the
/// one at the resolved path, so a swapped symlink is still caught.
#[cfg(not(target_os = "linux"))]
fn open_checked(
    path: &Path,
    allowed: &AllowedPaths,
    between: impl FnOnce(),
) -> Result<OpenedFile, OpenError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(open_failed)?;
    between();
    let metadata = file.metadata().map_err(open_failed)?;
    let resolved = std::fs::canonicalize(path).map_err(open_failed)?;
    let there = std::fs::metadata(&resolved).map_err(open_failed)?;
    if (there.dev(), there.ino()) != (metadata.dev(), metadata.ino()) {
        return Err(refused(
            RefusalReason::OpenFailed,
            "changed while being opened".to_string(),
        ));
    }
    check(&resolved, &metadata, allowed)?;
    Ok(OpenedFile {
        file,
        metadata,
        resolved,
    })
}

/// Paths remembered at most; past it the memory starts over (some warnings repeat).
const REMEMBERED: usize = 10_000;

/// Logs and counts refusals once per path and reason, not once per scan or poll: a FIFO
/// matching a glob is looked at every `scan_interval_ms`, forever.
#[derive(Debug, Default)]
pub struct Refusals {
    seen: Mutex<HashMap<PathBuf, RefusalReason>>,
}

impl Refusals {
    /// Opens `path` through [`open_collected`]; a refusal is warned about and counted in
    /// `metrics` the first time, a success forgets earlier refusals of the path.
    pub fn open(
        &self,
        path: &Path,
        allowed: &AllowedPaths,
        metrics: &Metrics,
    ) -> Result<OpenedFile, OpenError> {
        let opened = open_collected(path, allowed);
        match &opened {
            Ok(_) => {
                let mut seen = self.seen.lock();
                if !seen.is_empty() {
                    seen.remove(path);
                }
            }
            Err(OpenError::Refused(r)) => self.report(path, r, metrics),
            Err(OpenError::NotFound | OpenError::NoDescriptor) => {}
        }
        opened
    }

    fn report(&self, path: &Path, r: &Refusal, metrics: &Metrics) {
        let mut seen = self.seen.lock();
        if seen.get(path) == Some(&r.reason) {
            log::debug!("{}: {}; not collecting it", path.display(), r.detail);
            return;
        }
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(path.to_path_buf(), r.reason);
        drop(seen);
        log::warn!("{}: {}; not collecting it", path.display(), r.detail);
        metrics.file_refused(r.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn allowed(dir: &Path) -> AllowedPaths {
        AllowedPaths::new(&[format!("{}/in/**", dir.display())]).unwrap()
    }

    fn reason(r: Result<OpenedFile, OpenError>) -> Option<RefusalReason> {
        match r {
            Err(OpenError::Refused(r)) => Some(r.reason),
            _ => None,
        }
    }

    #[test]
    fn only_regular_files_that_really_are_inside_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let (d, inside) = (dir.path(), dir.path().join("in"));
        std::fs::create_dir(&inside).unwrap();
        let policy = allowed(d);
        std::fs::write(inside.join("a.log"), "a\n").unwrap();
        std::fs::write(d.join("secret"), "s\n").unwrap();
        symlink(inside.join("a.log"), inside.join("ok.log")).unwrap();
        symlink(d.join("secret"), inside.join("out.log")).unwrap();
        symlink("/dev/null", inside.join("null.log")).unwrap();
        std::fs::create_dir(inside.join("dir.log")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(inside.join("sock.log")).unwrap();
        let fifo = inside.join("fifo.log");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);

        let ok = open_collected(&inside.join("ok.log"), &policy).unwrap();
        assert_eq!(ok.resolved, inside.join("a.log").canonicalize().unwrap());
        assert!(open_collected(&inside.join("a.log"), &policy).is_ok());
        use RefusalReason::*;
        let r = |p: &str| reason(open_collected(&inside.join(p), &policy));
        assert_eq!(r("out.log"), Some(OutsideAllowedPaths));
        assert_eq!(r("null.log"), Some(OutsideAllowedPaths));
        assert_eq!(r("dir.log"), Some(NotRegularFile));
        assert_eq!(r("sock.log"), Some(NotRegularFile));
        assert_eq!(r("fifo.log"), Some(NotRegularFile), "and did not block");
        let any = AllowedPaths::any();
        assert_eq!(
            reason(open_collected(Path::new("/dev/null"), &any)),
            Some(NotRegularFile)
        );
        assert_eq!(
            open_collected(&inside.join("none.log"), &policy).unwrap_err(),
            OpenError::NotFound
        );
    }

    #[test]
    fn a_symlink_swapped_after_the_lookup_does_not_pass_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let (d, inside) = (dir.path(), dir.path().join("in"));
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(inside.join("a.log"), "a\n").unwrap();
        std::fs::write(d.join("secret"), "s\n").unwrap();
        let link = inside.join("app.log");
        symlink(d.join("secret"), &link).unwrap();
        // The path names the secret when it is looked up, and an allowed file when a
        // name-based check would look at it.
        let swap = || {
            std::fs::remove_file(&link).unwrap();
            symlink(inside.join("a.log"), &link).unwrap();
        };
        let got = open_checked(&link, &allowed(d), swap);
        assert_eq!(reason(got), Some(RefusalReason::OutsideAllowedPaths));
    }

    #[test]
    fn a_refusal_is_counted_once_per_path_until_the_path_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("in");
        std::fs::create_dir(&inside).unwrap();
        let p = inside.join("x.log");
        std::fs::create_dir(&p).unwrap();
        let (policy, metrics, refusals) =
            (allowed(dir.path()), Metrics::default(), Refusals::default());
        let count = || metrics.files_refused_count(RefusalReason::NotRegularFile);
        for _ in 0..3 {
            assert!(refusals.open(&p, &policy, &metrics).is_err());
        }
        assert_eq!(count(), 1);
        std::fs::remove_dir(&p).unwrap();
        std::fs::write(&p, "x\n").unwrap();
        assert!(refusals.open(&p, &policy, &metrics).is_ok());
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        assert!(refusals.open(&p, &policy, &metrics).is_err());
        assert_eq!(count(), 2);
    }
}
