//! Wake-ups from the kernel when a followed file changes (Linux inotify), so a line is
//! read as soon as it is written instead of at the next poll.
//!
//! Polling stays the source of truth: a tailer still looks at its file every
//! `poll_interval_ms`, and inotify only shortens the wait. That keeps every case inotify
//! does not see correct (network file systems, a file reached through a symlink in another
//! directory, a full inotify queue, the per-user watch limit, other operating systems); they
//! just wait for the poll.
//!
//! One watch per directory (not per file): the kernel reports events on the directory's
//! entries by name, and a directory watch also sees the file being replaced by rename
//! rotation. A watcher of a directory itself (the file source, for new files matching its
//! glob) is woken only when an entry is created or moved in.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Notify;

/// What a registration is woken for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Any change to the entry with this name.
    Entry(OsString),
    /// A new entry in the directory.
    NewEntries,
}

/// A handle on the process's inotify instance; cheap to clone.
#[derive(Clone, Default)]
pub struct FileEvents {
    inner: Option<Arc<imp::Inner>>,
    /// Stops the event reader when the last handle goes.
    _reader: Option<Arc<AbortOnDrop>>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl FileEvents {
    /// Starts reading inotify events on the current tokio runtime. Without inotify (another
    /// OS, or no descriptor left) every wake-up is "never" and tailers fall back to polling;
    /// that is logged once.
    pub fn start() -> Self {
        match imp::Inner::start() {
            Ok((inner, reader)) => FileEvents {
                inner: Some(inner),
                _reader: Some(Arc::new(AbortOnDrop(reader))),
            },
            Err(e) => {
                log::warn!(
                    "file change notifications are unavailable ({e}); new lines are found by \
                     polling every poll_interval_ms"
                );
                FileEvents::disabled()
            }
        }
    }

    /// Polling only: no wake-up ever fires.
    pub fn disabled() -> Self {
        FileEvents {
            inner: None,
            _reader: None,
        }
    }

    /// Wakes on any change to `file` (written, truncated, renamed, replaced, deleted).
    pub fn watch_file(&self, file: &Path) -> Wakeup {
        match (file.parent(), file.file_name()) {
            (Some(dir), Some(name)) => self.register(dir, Target::Entry(name.to_os_string())),
            _ => Wakeup::never(),
        }
    }

    /// Wakes when an entry is created in, or moved into, `dir`.
    pub fn watch_new_entries(&self, dir: &Path) -> Wakeup {
        self.register(dir, Target::NewEntries)
    }

    fn register(&self, dir: &Path, target: Target) -> Wakeup {
        let Some(inner) = &self.inner else {
            return Wakeup::never();
        };
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir.to_path_buf()
        };
        let notify = Arc::new(Notify::new());
        if inner.add(&dir, target.clone(), Arc::clone(&notify)) {
            Wakeup {
                notify: Some(notify),
                registration: Some((Arc::clone(inner), dir, target)),
            }
        } else {
            Wakeup::never()
        }
    }
}

/// One registration; dropping it removes it (and the directory's watch with the last one).
pub struct Wakeup {
    notify: Option<Arc<Notify>>,
    registration: Option<(Arc<imp::Inner>, PathBuf, Target)>,
}

impl Wakeup {
    /// A wake-up that never fires.
    pub fn never() -> Self {
        Wakeup {
            notify: None,
            registration: None,
        }
    }

    /// Whether the kernel is actually watching for this registration.
    pub fn is_active(&self) -> bool {
        self.notify.is_some()
    }

    /// Resolves after the next event (or at once if one came since the last call); never
    /// resolves for an inactive wake-up.
    pub async fn changed(&self) {
        match &self.notify {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    }
}

impl Drop for Wakeup {
    fn drop(&mut self) {
        if let (Some((inner, dir, target)), Some(notify)) =
            (self.registration.take(), self.notify.take())
        {
            inner.remove(&dir, &target, &notify);
        }
    }
}

/// Registrations of one watched directory.
#[derive(Default)]
struct Directory {
    /// Per entry name (looked up by the event's name without allocating).
    entries: HashMap<OsString, Vec<Arc<Notify>>>,
    new_entries: Vec<Arc<Notify>>,
}

impl Directory {
    fn list(&mut self, target: &Target) -> &mut Vec<Arc<Notify>> {
        match target {
            Target::Entry(name) => self.entries.entry(name.clone()).or_default(),
            Target::NewEntries => &mut self.new_entries,
        }
    }

    fn remove(&mut self, target: &Target, notify: &Arc<Notify>) {
        self.list(target).retain(|n| !Arc::ptr_eq(n, notify));
        if let Target::Entry(name) = target
            && self.entries.get(name).is_some_and(Vec::is_empty)
        {
            self.entries.remove(name);
        }
    }

    fn wake(&self, name: Option<&[u8]>, created: bool) {
        use std::os::unix::ffi::OsStrExt;
        let wake_all = |list: &Vec<Arc<Notify>>| list.iter().for_each(|n| n.notify_one());
        match name {
            Some(name) => {
                if let Some(list) = self.entries.get(std::ffi::OsStr::from_bytes(name)) {
                    wake_all(list);
                }
                if created {
                    wake_all(&self.new_entries);
                }
            }
            // An event without a name, or a lost one: wake everyone, they re-check.
            None => {
                self.entries.values().for_each(wake_all);
                wake_all(&self.new_entries);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.new_entries.is_empty()
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::HashMap;
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;
    use tokio::sync::Notify;

    use super::{Directory, Target};

    const DIR_EVENTS: u32 = libc::IN_MODIFY
        | libc::IN_ATTRIB
        | libc::IN_CREATE
        | libc::IN_DELETE
        | libc::IN_MOVED_FROM
        | libc::IN_MOVED_TO
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF
        | libc::IN_ONLYDIR;

    #[derive(Default)]
    pub(super) struct State {
        pub(super) by_dir: HashMap<PathBuf, i32>,
        by_wd: HashMap<i32, (PathBuf, Directory)>,
    }

    pub struct Inner {
        fd: AsyncFd<OwnedFd>,
        pub(super) state: parking_lot::Mutex<State>,
    }

    impl Inner {
        /// The instance and the task reading its events.
        pub fn start() -> std::io::Result<(Arc<Inner>, tokio::task::JoinHandle<()>)> {
            // SAFETY: plain syscall; the result is checked before use.
            let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
            if raw < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `raw` is a descriptor we just opened and own.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: an OwnedFd returns the same open descriptor until it is dropped, which
            // happens only with the AsyncFd.
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(std::io::Error::from)?;
            let inner = Arc::new(Inner {
                fd,
                state: parking_lot::Mutex::new(State::default()),
            });
            let reader = tokio::spawn(read_events(Arc::clone(&inner)));
            Ok((inner, reader))
        }

        /// Registers `notify`; false if the directory cannot be watched.
        pub fn add(&self, dir: &Path, target: Target, notify: Arc<Notify>) -> bool {
            let mut state = self.state.lock();
            let wd = match state.by_dir.get(dir) {
                Some(&wd) => wd,
                None => {
                    let Ok(c_dir) = CString::new(dir.as_os_str().as_bytes()) else {
                        return false;
                    };
                    // SAFETY: valid descriptor and NUL-terminated path.
                    let wd = unsafe {
                        libc::inotify_add_watch(self.fd.as_raw_fd(), c_dir.as_ptr(), DIR_EVENTS)
                    };
                    if wd < 0 {
                        let e = std::io::Error::last_os_error();
                        log::warn!(
                            "cannot watch {} for changes ({e}); its files are polled instead{}",
                            dir.display(),
                            if e.raw_os_error() == Some(libc::ENOSPC) {
                                " (raise fs.inotify.max_user_watches)"
                            } else {
                                ""
                            }
                        );
                        return false;
                    }
                    state.by_dir.insert(dir.to_path_buf(), wd);
                    state
                        .by_wd
                        .entry(wd)
                        .or_insert_with(|| (dir.to_path_buf(), Directory::default()));
                    wd
                }
            };
            if let Some((_, d)) = state.by_wd.get_mut(&wd) {
                d.list(&target).push(notify);
            }
            true
        }

        pub fn remove(&self, dir: &Path, target: &Target, notify: &Arc<Notify>) {
            let mut state = self.state.lock();
            let Some(&wd) = state.by_dir.get(dir) else {
                return;
            };
            let Some((_, d)) = state.by_wd.get_mut(&wd) else {
                return;
            };
            d.remove(target, notify);
            if d.is_empty() {
                state.by_wd.remove(&wd);
                state.by_dir.remove(dir);
                // SAFETY: valid descriptor; a stale wd only makes the call fail.
                unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
            }
        }

        pub(super) fn dispatch(&self, buf: &[u8]) {
            let mut state = self.state.lock();
            let mut at = 0;
            // struct inotify_event { int wd; u32 mask; u32 cookie; u32 len; char name[len]; }
            while at + 16 <= buf.len() {
                let word = |i: usize| {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(&buf[at + i..at + i + 4]);
                    b
                };
                let wd = i32::from_ne_bytes(word(0));
                let mask = u32::from_ne_bytes(word(4));
                let len = u32::from_ne_bytes(word(12)) as usize;
                let name_end = (at + 16 + len).min(buf.len());
                let raw_name = &buf[at + 16..name_end];
                let name = &raw_name[..raw_name
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(raw_name.len())];
                at = name_end;
                if mask & libc::IN_Q_OVERFLOW != 0 {
                    // Events were lost: everyone re-checks.
                    state.by_wd.values().for_each(|(_, d)| d.wake(None, true));
                    continue;
                }
                let Some((_, d)) = state.by_wd.get(&wd) else {
                    continue;
                };
                let created = mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0;
                d.wake((!name.is_empty()).then_some(name), created);
                if mask & libc::IN_IGNORED != 0 {
                    // The directory is gone (deleted, or its file system unmounted): its
                    // files are polled from now on, which notices that.
                    if let Some((dir, _)) = state.by_wd.remove(&wd) {
                        state.by_dir.remove(&dir);
                    }
                }
            }
        }
    }

    async fn read_events(inner: Arc<Inner>) {
        // Enough for many events at once; the kernel never splits one event across reads.
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let ready = inner.fd.readable().await;
            let Ok(mut guard) = ready else {
                log::warn!("file change notifications stopped; files are polled from now on");
                return;
            };
            let fd = inner.fd.as_raw_fd();
            // SAFETY: reading into our own buffer from our own descriptor.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                log::warn!(
                    "reading file change notifications failed ({e}); files are polled from now on"
                );
                return;
            }
            inner.dispatch(&buf[..n as usize]);
            drop(guard);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::path::Path;
    use std::sync::Arc;

    use tokio::sync::Notify;

    use super::Target;

    pub struct Inner;

    impl Inner {
        pub fn start() -> std::io::Result<(Arc<Inner>, tokio::task::JoinHandle<()>)> {
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "inotify is Linux-only",
            ))
        }

        pub fn add(&self, _: &Path, _: Target, _: Arc<Notify>) -> bool {
            false
        }

        pub fn remove(&self, _: &Path, _: &Target, _: &Arc<Notify>) {}
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    async fn fires(w: &Wakeup) -> bool {
        tokio::time::timeout(Duration::from_secs(2), w.changed())
            .await
            .is_ok()
    }

    async fn quiet(w: &Wakeup) -> bool {
        tokio::time::timeout(Duration::from_millis(200), w.changed())
            .await
            .is_err()
    }

    #[tokio::test]
    async fn writes_renames_and_new_files_wake_the_right_watchers() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app.log");
        let other = dir.path().join("other.log");
        let mut f = std::fs::File::create(&app).unwrap();
        std::fs::write(&other, "").unwrap();
        let events = FileEvents::start();
        let on_app = events.watch_file(&app);
        let on_other = events.watch_file(&other);
        let on_new = events.watch_new_entries(dir.path());
        assert!(on_app.is_active() && on_other.is_active() && on_new.is_active());

        f.write_all(b"line\n").unwrap();
        assert!(fires(&on_app).await, "a write wakes the file's watcher");
        assert!(quiet(&on_other).await, "…and not another file's");
        assert!(quiet(&on_new).await, "…nor the new-entry watcher");

        std::fs::rename(&app, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&app, "new\n").unwrap();
        assert!(fires(&on_app).await, "rotation wakes the path's watcher");
        assert!(
            fires(&on_new).await,
            "a created file wakes the new-entry watcher"
        );

        drop(on_other);
        drop(on_app);
        drop(on_new);
        let state = events.inner.as_ref().unwrap().state.lock();
        assert!(
            state.by_dir.is_empty(),
            "the last registration removes the watch"
        );
    }

    #[tokio::test]
    async fn a_lost_event_queue_wakes_every_watcher() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let events = FileEvents::start();
        let in_one = events.watch_file(&one.path().join("a.log"));
        let in_two = events.watch_new_entries(two.path());
        assert!(quiet(&in_one).await && quiet(&in_two).await);
        // What the kernel queues when its event queue overflowed: wd -1, no name.
        let mut overflow = Vec::new();
        overflow.extend_from_slice(&(-1i32).to_ne_bytes());
        overflow.extend_from_slice(&libc::IN_Q_OVERFLOW.to_ne_bytes());
        overflow.extend_from_slice(&0u32.to_ne_bytes());
        overflow.extend_from_slice(&0u32.to_ne_bytes());
        events.inner.as_ref().unwrap().dispatch(&overflow);
        assert!(fires(&in_one).await, "a watcher in the first directory");
        assert!(fires(&in_two).await, "a watcher in the second directory");
    }

    #[tokio::test]
    async fn a_deleted_directory_is_forgotten_and_can_be_watched_again() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("app.log"), "").unwrap();
        let events = FileEvents::start();
        let before = events.watch_file(&logs.join("app.log"));
        assert!(before.is_active());

        std::fs::remove_dir_all(&logs).unwrap();
        assert!(fires(&before).await, "the deletion wakes the tailer");
        let inner = events.inner.as_ref().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !inner.state.lock().by_dir.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the watch of a deleted directory is dropped"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        std::fs::create_dir(&logs).unwrap();
        let after = events.watch_file(&logs.join("app.log"));
        assert!(after.is_active(), "the recreated directory is watched");
        drop(before); // its directory's watch is gone: dropping it must not touch the new one
        std::fs::write(logs.join("app.log"), "line\n").unwrap();
        assert!(
            fires(&after).await,
            "a file in the recreated directory wakes"
        );
        assert_eq!(inner.state.lock().by_dir.len(), 1);
    }

    #[tokio::test]
    async fn an_unwatchable_directory_gives_an_inactive_wakeup() {
        let events = FileEvents::start();
        let w = events.watch_file(Path::new("/nonexistent-dir-for-logagent/x.log"));
        assert!(!w.is_active());
        assert!(quiet(&w).await);
        assert!(
            !FileEvents::disabled()
                .watch_file(Path::new("/tmp/x"))
                .is_active()
        );
    }
}
