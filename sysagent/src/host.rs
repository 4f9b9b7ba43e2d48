//! Who this host is: read once at start (the host name from service-kit, like every
//! binary; sysinfo for the OS, `uname` for the kernel).
//!
//! In a container with the host's root mounted (`[collect] rootfs = /rootfs`), the
//! container's own name and OS are not the host's: the host name then comes from the
//! mounted `etc/hostname` and the OS from its `etc/os-release` (or `usr/lib/os-release`),
//! falling back to the container's own when they are missing. The kernel is the host's
//! either way.

use std::ffi::CStr;
use std::path::Path;

use sysinfo::System;

use crate::sample::HostInfo;

/// Detect the host's identity. `hostname` overrides the detected name when not empty;
/// `rootfs` is where the host's `/` is (`/` outside a container; see the module docs);
/// `tags` are the configured extra tags.
pub fn detect(hostname: &str, rootfs: &str, tags: Vec<(String, String)>) -> HostInfo {
    let u = uname();
    let mounted =
        Some(Path::new(rootfs)).filter(|r| !r.as_os_str().is_empty() && *r != Path::new("/"));
    let hostname = if !hostname.trim().is_empty() {
        hostname.trim().to_string()
    } else if let Some(name) = mounted.and_then(mounted_hostname) {
        name
    } else {
        // The same name logagent and logtransfer put on their records.
        let name = service_kit::host::hostname();
        if name.is_empty() { u.nodename } else { name }
    };
    let os = mounted
        .and_then(mounted_os_release)
        .unwrap_or_else(|| OsRelease {
            name: System::name().unwrap_or_default(),
            version: System::os_version().unwrap_or_default(),
            id: System::distribution_id(),
        });
    HostInfo {
        hostname,
        os_name: os.name,
        os_version: os.version,
        os_id: os.id,
        sysname: u.sysname,
        release: u.release,
        version: u.version,
        machine: u.machine,
        domainname: u.domainname,
        tags,
    }
}

/// The host name in the mounted root's `etc/hostname`, if there is one.
fn mounted_hostname(rootfs: &Path) -> Option<String> {
    let text = std::fs::read_to_string(rootfs.join("etc/hostname")).ok()?;
    // One name; comments are allowed (hostname(5)).
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
}

/// The OS as `os-release(5)` names it: `NAME`, `VERSION_ID`, `ID` (what sysinfo reads on
/// the running system).
#[derive(Debug, PartialEq, Eq)]
struct OsRelease {
    name: String,
    version: String,
    id: String,
}

/// The mounted root's `etc/os-release`, else its `usr/lib/os-release`.
fn mounted_os_release(rootfs: &Path) -> Option<OsRelease> {
    let text = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|f| std::fs::read_to_string(rootfs.join(f)).ok())?;
    let value = |key: &str| -> Option<String> {
        text.lines().find_map(|line| {
            let v = line.trim().strip_prefix(key)?.strip_prefix('=')?;
            Some(v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        })
    };
    Some(OsRelease {
        name: value("NAME")?,
        version: value("VERSION_ID").unwrap_or_default(),
        id: value("ID").unwrap_or_default(),
    })
}

struct Uname {
    sysname: String,
    /// The fallback host name (the kernel's node name; the host name is that same name).
    nodename: String,
    release: String,
    version: String,
    machine: String,
    domainname: String,
}

fn uname() -> Uname {
    // SAFETY: `u` is a writable utsname the kernel fills with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::uname(&mut u) } == 0;
    let field = |f: &[libc::c_char]| -> String {
        if !ok {
            return String::new();
        }
        // SAFETY: uname succeeded, so the field is NUL-terminated within its array.
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    Uname {
        sysname: field(&u.sysname),
        nodename: field(&u.nodename),
        release: field(&u.release),
        version: field(&u.version),
        machine: field(&u.machine),
        domainname: field(&u.domainname),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn detects_kernel_and_host() {
        let h = super::detect("", "/", vec![]);
        assert_eq!(h.sysname, "Linux");
        assert!(!h.release.is_empty());
        assert!(!h.hostname.is_empty());
        assert_eq!(super::detect(" web1 ", "/", vec![]).hostname, "web1");
    }

    #[test]
    fn a_mounted_host_root_names_the_host_and_its_os_not_the_containers() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/hostname"),
            "# set by the installer\nhost-7\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("etc/os-release"),
            "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n",
        )
        .unwrap();
        let rootfs = root.path().to_str().unwrap();
        let h = super::detect("", rootfs, vec![]);
        assert_eq!(h.hostname, "host-7");
        assert_eq!(
            (h.os_name.as_str(), h.os_version.as_str(), h.os_id.as_str()),
            ("Ubuntu", "24.04", "ubuntu")
        );
        assert_eq!(
            super::detect("web1", rootfs, vec![]).hostname,
            "web1",
            "the config wins"
        );

        // Nothing to read there: this system's own, as without a mounted root.
        let empty = tempfile::tempdir().unwrap();
        let own = super::detect("", "/", vec![]);
        let fallback = super::detect("", empty.path().to_str().unwrap(), vec![]);
        assert_eq!(fallback.hostname, own.hostname);
        assert_eq!(fallback.os_name, own.os_name);
    }
}
