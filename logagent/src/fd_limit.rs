//! The process's descriptor limit, and how many of its descriptors collected files may use.
//!
//! A host with a low `RLIMIT_NOFILE` (1024 is the usual soft default, 256 on some systems)
//! and more matching files than that used to lose everything: every tailer opened its file
//! at once, and the Kafka producer then could not get a socket, so not one line was shipped.
//! So at start the soft limit is raised to the hard limit (the soft one is only a default
//! the process may change), and collected files get at most `max_open_files` descriptors
//! ([`super::sources::file::turns`]), the rest being kept for what the agent cannot run
//! without.

/// Descriptors kept out of the files' budget. What needs them, for one broker and one etcd
/// endpoint: librdkafka's sockets (bootstrap and per broker) and its queue wake-up
/// descriptors (~10), etcd's gRPC connection (1–2), a checkpoint or cached-config write
/// (temporary file + directory, 2), /metrics (listener + scrapes, a few), the runtime's
/// epoll and wake-up descriptors, inotify (1), stdio and the log file (4), the glob walk
/// (one directory per level, up to 16) and a file being opened (its `O_PATH` handle, 1 per
/// opening tailer) — about 40, with room to spare for more brokers.
pub const RESERVED: u64 = 64;

/// The smallest budget: even under a tiny limit some files are read, in turns.
const MIN_BUDGET: u64 = 8;

/// When the hard limit is unlimited (Linux caps it at `fs.nr_open` anyway).
const UNLIMITED_TARGET: u64 = 1 << 20;

/// The soft descriptor limit before and after [`raise_nofile`], and the hard one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and logs both. `None` (logged) when
/// the limit cannot be read.
// `rlim_t` is `u64` on Linux, not on every Unix: the casts are for the others.
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile() -> Option<NofileLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to write into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        log::warn!(
            "cannot read the descriptor limit: {}",
            std::io::Error::last_os_error()
        );
        return None;
    }
    let before = limit.rlim_cur as u64;
    let hard = limit.rlim_max as u64;
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        UNLIMITED_TARGET
    } else {
        hard
    };
    let mut soft = before;
    if before < target {
        let raised = libc::rlimit {
            rlim_cur: target as libc::rlim_t,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: a valid rlimit; raising the soft limit up to the hard one is allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            soft = target;
        } else {
            log::warn!(
                "cannot raise the descriptor limit from {before} to {target}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    log::info!("descriptor limit: soft {soft} (was {before}), hard {hard}");
    Some(NofileLimit { before, soft, hard })
}

/// How many descriptors collected files may hold: `configured` (`[agent] max_open_files`,
/// 0 = derived) within `soft` minus [`RESERVED`], at least [`MIN_BUDGET`]. A configured
/// value that would eat into the reserve is lowered, with a warning: the reserve is what
/// lets the agent ship at all.
pub fn budget(configured: usize, soft: Option<u64>) -> usize {
    let Some(soft) = soft else {
        // Limit unknown: trust the setting, or take the usual default soft limit.
        return if configured > 0 {
            configured
        } else {
            (1024 - RESERVED) as usize
        };
    };
    let room = soft.saturating_sub(RESERVED).max(MIN_BUDGET);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if configured == 0 {
        return room;
    }
    if configured > room {
        log::warn!(
            "[agent] max_open_files = {configured} leaves fewer than {RESERVED} of the {soft} \
             descriptors for Kafka, etcd, checkpoints and /metrics; using {room}"
        );
        return room;
    }
    configured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_the_reserve_free() {
        assert_eq!(
            budget(0, Some(256)),
            192,
            "derived: the limit less the reserve"
        );
        assert_eq!(budget(100, Some(256)), 100, "a setting within it is kept");
        assert_eq!(
            budget(1000, Some(256)),
            192,
            "one eating the reserve is lowered"
        );
        assert_eq!(
            budget(0, Some(20)),
            8,
            "a tiny limit still reads some files"
        );
        assert_eq!(budget(0, None), 960);
        assert_eq!(budget(50, None), 50);
    }

    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let got = raise_nofile().expect("the limit can be read");
        assert!(got.soft >= got.before);
        assert!(got.hard == libc::RLIM_INFINITY as u64 || got.soft == got.hard);
    }
}
