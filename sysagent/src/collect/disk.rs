//! Disk usage per mounted filesystem: the mount table plus one `statvfs` per mount.
//!
//! Only filesystems backed by a device are kept (types `/proc/filesystems` does not mark
//! `nodev`, plus zfs), like Telegraf's default; this also keeps `statvfs` away from network
//! mounts that could hang. `ignore_fs` removes more types on top.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{CollectError, Collector, ProcFile};
use crate::sample::{Filesystem, Sample};

/// Reads the mount table and `statvfs`es each kept mount.
#[derive(Debug)]
pub struct DiskCollector {
    /// PID 1's table first: with the host's /proc mounted into a container it is the host's.
    mounts: ProcFile,
    fallback: ProcFile,
    rootfs: PathBuf,
    /// Device-backed types from `/proc/filesystems`; `None` when that file was unreadable
    /// (then every type not in `ignore_fs` is kept).
    device_types: Option<Vec<String>>,
    ignore_fs: Vec<String>,
}

impl DiskCollector {
    /// `rootfs` is prefixed to mount points before `statvfs` (the host's `/` mounted in a
    /// container); `ignore_fs` lists filesystem types to skip.
    pub fn new(procfs: &Path, rootfs: PathBuf, ignore_fs: Vec<String>) -> Self {
        let device_types = std::fs::read_to_string(procfs.join("filesystems"))
            .ok()
            .map(|t| parse_device_types(&t));
        DiskCollector {
            mounts: ProcFile::new(procfs.join("1/mounts")),
            fallback: ProcFile::new(procfs.join("self/mounts")),
            rootfs,
            device_types,
            ignore_fs,
        }
    }

    fn keep(&self, fstype: &str) -> bool {
        if self.ignore_fs.iter().any(|t| t == fstype) {
            return false;
        }
        match &self.device_types {
            Some(types) => fstype == "zfs" || types.iter().any(|t| t == fstype),
            None => true,
        }
    }
}

impl Collector for DiskCollector {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError> {
        let mounts = match self.mounts.read() {
            Ok(t) => parse_mounts(t),
            Err(_) => parse_mounts(self.fallback.read()?),
        };
        let mut out: Vec<Filesystem> = Vec::with_capacity(mounts.len());
        for m in mounts {
            if !self.keep(&m.fstype) {
                continue;
            }
            let path = if self.rootfs.as_os_str() == "/" {
                PathBuf::from(&m.mountpoint)
            } else {
                self.rootfs.join(m.mountpoint.trim_start_matches('/'))
            };
            // A mount we may not stat (permissions, a vanished mount) is skipped, not fatal:
            // the other filesystems are still worth reporting.
            let Some(st) = statvfs(&path) else { continue };
            let fs = Filesystem {
                device: m.device,
                mountpoint: m.mountpoint,
                fstype: m.fstype,
                readonly: m.readonly,
                size: st.blocks.saturating_mul(st.frsize),
                free: st.bfree.saturating_mul(st.frsize),
                avail: st.bavail.saturating_mul(st.frsize),
                files: st.files,
                files_free: st.ffree,
            };
            // A later mount on the same point hides the earlier one.
            if let Some(prev) = out.iter_mut().find(|f| f.mountpoint == fs.mountpoint) {
                *prev = fs;
            } else {
                out.push(fs);
            }
        }
        sample.filesystems = out;
        Ok(())
    }
}

/// One line of a mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub readonly: bool,
}

/// Parse `/proc/*/mounts`, undoing the kernel's octal escapes (`\040` for a space).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut w = line.split_ascii_whitespace();
            let device = unescape(w.next()?);
            let mountpoint = unescape(w.next()?);
            let fstype = w.next()?.to_string();
            let readonly = w.next()?.split(',').any(|o| o == "ro");
            Some(Mount {
                device,
                mountpoint,
                fstype,
                readonly,
            })
        })
        .collect()
}

/// Filesystem types of `/proc/filesystems` not marked `nodev`.
pub fn parse_device_types(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with("nodev"))
        .map(|l| l.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct StatVfs {
    blocks: u64,
    bfree: u64,
    bavail: u64,
    frsize: u64,
    files: u64,
    ffree: u64,
}

fn statvfs(path: &Path) -> Option<StatVfs> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs the kernel fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = if st.f_frsize > 0 {
        st.f_frsize as u64
    } else {
        st.f_bsize as u64
    };
    Some(StatVfs {
        blocks: st.f_blocks as u64,
        bfree: st.f_bfree as u64,
        bavail: st.f_bavail as u64,
        frsize,
        files: st.f_files as u64,
        ffree: st.f_ffree as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_lines_parse_with_escapes_and_ro() {
        let m = parse_mounts(
            "/dev/vda / ext4 rw,relatime 0 0\n/dev/sdb1 /mnt/my\\040disk vfat ro,noatime 0 0\nbad\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].mountpoint, "/mnt/my disk");
        assert!(m[1].readonly);
        assert!(!m[0].readonly);
        assert_eq!(m[0].fstype, "ext4");
    }

    #[test]
    fn nodev_types_are_not_device_types() {
        let t = parse_device_types("nodev\tsysfs\n\text4\nnodev\ttmpfs\n\txfs\n");
        assert_eq!(t, vec!["ext4".to_string(), "xfs".to_string()]);
    }

    #[test]
    fn root_filesystem_is_reported_with_consistent_numbers() {
        let mut c = DiskCollector::new(Path::new("/proc"), PathBuf::from("/"), vec![]);
        let mut s = Sample::new(Default::default());
        c.collect(&mut s).unwrap();
        // The root of this machine may be an overlay in a container; then nothing is
        // device-backed and the list may be empty. When "/" is there, it must add up.
        if let Some(root) = s.filesystems.iter().find(|f| f.mountpoint == "/") {
            assert!(root.size > 0);
            assert!(root.free <= root.size);
            assert!(root.avail <= root.free);
            assert!(root.files_free <= root.files);
        }
        assert!(
            s.filesystems
                .iter()
                .all(|f| f.fstype != "tmpfs" && f.fstype != "proc")
        );
    }
}
