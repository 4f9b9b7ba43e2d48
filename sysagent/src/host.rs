//! Who this host is: read once at start (the host name from service-kit, like every
//! binary; sysinfo for the OS, `uname` for the kernel).

use std::ffi::CStr;

use sysinfo::System;

use crate::sample::HostInfo;

/// Detect the host's identity. `hostname` overrides the kernel's node name when not empty;
/// `tags` are the configured extra tags.
pub fn detect(hostname: &str, tags: Vec<(String, String)>) -> HostInfo {
    let u = uname();
    let hostname = if hostname.trim().is_empty() {
        // The same name logagent and logtransfer put on their records.
        let name = service_kit::host::hostname();
        if name.is_empty() { u.nodename } else { name }
    } else {
        hostname.trim().to_string()
    };
    HostInfo {
        hostname,
        os_name: System::name().unwrap_or_default(),
        os_version: System::os_version().unwrap_or_default(),
        os_id: System::distribution_id(),
        sysname: u.sysname,
        release: u.release,
        version: u.version,
        machine: u.machine,
        domainname: u.domainname,
        tags,
    }
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
        let h = super::detect("", vec![]);
        assert_eq!(h.sysname, "Linux");
        assert!(!h.release.is_empty());
        assert!(!h.hostname.is_empty());
        assert_eq!(super::detect(" web1 ", vec![]).hostname, "web1");
    }
}
