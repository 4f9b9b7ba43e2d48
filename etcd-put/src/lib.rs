//! Validates and writes logagent's collect configuration into etcd.
//!
//! The value is checked with the agent's own schema (the [`collect_config`] crate) before
//! anything is written, so a config that the agent would reject never reaches etcd. Keys
//! accept the agent's `{ip}` and `{hostname}` templates.

use collect_config::{AllowedPaths, CollectConfig, CollectConfigError};
use etcd_client::{Client, DeleteOptions, GetOptions};
use service_kit::check::CheckReport;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum EtcdPutError {
    /// The value is not a valid collect config; nothing was written.
    #[error("{source_name}: {error}; nothing was written")]
    Invalid {
        /// Where the value came from (`conf.json`, `--value`, `stdin`).
        source_name: String,
        /// What is wrong and where.
        error: CollectConfigError,
    },
    /// The input could not be read.
    #[error("cannot read {source_name}: {error}")]
    Input {
        /// Where the value came from.
        source_name: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// `--allowed-paths` is invalid.
    #[error(transparent)]
    Policy(CollectConfigError),
    /// etcd could not be reached.
    #[error(transparent)]
    Connect(#[from] service_kit::etcd::EtcdError),
    /// An etcd request failed.
    #[error("etcd {op} of {key:?} failed: {error}; {}", request_check(error))]
    Request {
        /// put, get, delete, list.
        op: &'static str,
        /// Key or prefix.
        key: String,
        /// The client's error.
        error: etcd_client::Error,
    },
}

/// What to check when a request fails: the user's permissions, else etcd itself.
fn request_check(error: &etcd_client::Error) -> &'static str {
    match error {
        etcd_client::Error::GRpcStatus(status)
            if status.message().contains("permission denied") =>
        {
            "the --user may not do this; grant its role read/write on the key's prefix \
             (etcdctl role grant-permission ROLE readwrite PREFIX --prefix)"
        }
        _ => "check that etcd is running and --endpoints",
    }
}

/// Expands `{ip}` and `{hostname}` like the agent does.
pub fn expand_key(template: &str, ip: &str, hostname: &str) -> String {
    service_kit::host::expand_key_template(template, ip, hostname)
}

/// Checks `value` with the agent's schema and path policy; `source_name` names the input
/// in the error.
pub fn validate(
    value: &[u8],
    source_name: &str,
    allowed: &AllowedPaths,
) -> Result<CollectConfig, EtcdPutError> {
    collect_config::parse(value, allowed).map_err(|error| EtcdPutError::Invalid {
        source_name: source_name.to_string(),
        error,
    })
}

/// The path policy from `--allowed-paths` (comma-separated globs); none means any absolute path.
pub fn allowed_paths(globs: Option<&str>) -> Result<AllowedPaths, EtcdPutError> {
    match globs {
        None => Ok(AllowedPaths::any()),
        Some(g) => AllowedPaths::new(&service_kit::split_list(g)).map_err(EtcdPutError::Policy),
    }
}

/// Validates, then writes; returns the revision of the write.
pub async fn put(
    client: &mut Client,
    key: &str,
    value: &[u8],
    source_name: &str,
    allowed: &AllowedPaths,
) -> Result<i64, EtcdPutError> {
    validate(value, source_name, allowed)?;
    let resp = client
        .put(key, value.to_vec(), None)
        .await
        .map_err(|error| EtcdPutError::Request {
            op: "put",
            key: key.to_string(),
            error,
        })?;
    Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
}

/// The value and mod revision of `key`, if it exists.
pub async fn get(client: &mut Client, key: &str) -> Result<Option<(Vec<u8>, i64)>, EtcdPutError> {
    let resp = client
        .get(key, None)
        .await
        .map_err(|error| EtcdPutError::Request {
            op: "get",
            key: key.to_string(),
            error,
        })?;
    Ok(resp
        .kvs()
        .first()
        .map(|kv| (kv.value().to_vec(), kv.mod_revision())))
}

/// Deletes `key`; returns how many keys were deleted (0 or 1).
pub async fn delete(client: &mut Client, key: &str) -> Result<i64, EtcdPutError> {
    let resp = client
        .delete(key, None::<DeleteOptions>)
        .await
        .map_err(|error| EtcdPutError::Request {
            op: "delete",
            key: key.to_string(),
            error,
        })?;
    Ok(resp.deleted())
}

/// Every key under `prefix` with its value, sorted by key.
pub async fn list(
    client: &mut Client,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, EtcdPutError> {
    let mut out = Vec::new();
    list_pages(client, prefix, LIST_PAGE, |page, _| {
        out.extend_from_slice(page);
        true
    })
    .await?;
    Ok(out)
}

/// Keys per request of a listing: etcd answers a range with every value in one message, so a
/// prefix of many keys is read in pages of this many (and shows its progress between them).
pub const LIST_PAGE: i64 = 1000;

/// How far a listing is: keys listed so far, of how many there were at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    /// Keys handed out so far.
    pub done: u64,
    /// Keys under the prefix at the listing's revision.
    pub total: u64,
}

/// Lists every key under `prefix` in pages of `page` keys, all at the revision of the first
/// page (a consistent snapshot even while keys change), in key order, calling `on_page` with
/// each page and how far the listing is; `on_page` returns `false` to stop early (a closed
/// output). Returns how many keys were handed out.
pub async fn list_pages(
    client: &mut Client,
    prefix: &str,
    page: i64,
    mut on_page: impl FnMut(&[(String, Vec<u8>)], Listed) -> bool,
) -> Result<u64, EtcdPutError> {
    let failed = |error| EtcdPutError::Request {
        op: "list",
        key: prefix.to_string(),
        error,
    };
    let (mut from, end) = prefix_range(prefix.as_bytes());
    let mut revision = 0;
    let mut listed = Listed { done: 0, total: 0 };
    loop {
        let mut options = GetOptions::new()
            .with_range(end.clone())
            .with_limit(page.max(1));
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let resp = client
            .get(from.clone(), Some(options))
            .await
            .map_err(failed)?;
        if revision == 0 {
            revision = resp.header().map_or(0, |h| h.revision());
            listed.total = u64::try_from(resp.count()).unwrap_or(0);
        }
        let kvs: Vec<(String, Vec<u8>)> = resp
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.value().to_vec(),
                )
            })
            .collect();
        listed.done += kvs.len() as u64;
        let Some(last) = resp.kvs().last() else {
            return Ok(listed.done);
        };
        // The next page starts right after the last key of this one.
        from = [last.key(), b"\0"].concat();
        if !on_page(&kvs, listed) || !resp.more() {
            return Ok(listed.done);
        }
    }
}

/// The first key and the range end of every key starting with `prefix` (etcd's convention:
/// the prefix with its last byte below 0xff incremented; `\0` for "to the end").
fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        return (vec![0], vec![0]);
    }
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().unwrap_or(&mut 0) = last + 1;
            return (prefix.to_vec(), end);
        }
        end.pop();
    }
    (prefix.to_vec(), vec![0])
}

/// When a listing says how far it is, on standard error: a quick one never does.
///
/// Nothing during the first [`ListProgress::QUIET_FOR`]. Then, on a terminal, after every
/// page (the caller rewrites one line with `\r`); elsewhere (a log, a pipe) one line every
/// [`ListProgress::LOG_EVERY`], so a slow listing in a script still shows it is moving.
#[derive(Debug)]
pub struct ListProgress {
    started: std::time::Instant,
    tty: bool,
    last: Option<std::time::Instant>,
}

impl ListProgress {
    /// A listing this fast shows no progress.
    pub const QUIET_FOR: std::time::Duration = std::time::Duration::from_secs(2);
    /// How often progress is written when standard error is not a terminal.
    pub const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// A listing started at `started`, writing to a terminal or not.
    pub fn new(tty: bool, started: std::time::Instant) -> Self {
        ListProgress {
            started,
            tty,
            last: None,
        }
    }

    /// After a page, at `now`: the progress line to write, if one is due.
    pub fn page(&mut self, listed: Listed, now: std::time::Instant) -> Option<String> {
        let elapsed = now.duration_since(self.started);
        if elapsed < Self::QUIET_FOR || listed.done >= listed.total {
            return None;
        }
        let due = self.tty
            || self
                .last
                .is_none_or(|at| now.duration_since(at) >= Self::LOG_EVERY);
        if !due {
            return None;
        }
        self.last = Some(now);
        let rate = listed.done as f64 / elapsed.as_secs_f64();
        let left = listed.total.saturating_sub(listed.done);
        Some(format!(
            "etcd-put: listed {} of {} keys ({:.0}%), {rate:.0} keys/s, about {:.0} s to go",
            listed.done,
            listed.total,
            listed.done as f64 * 100.0 / listed.total.max(1) as f64,
            if rate > 0.0 { left as f64 / rate } else { 0.0 }
        ))
    }

    /// At the end, at `now`: a closing line when progress was shown.
    pub fn finish(&self, done: u64, now: std::time::Instant) -> Option<String> {
        self.last.map(|_| {
            format!(
                "etcd-put: listed {done} keys in {:.0} s",
                now.duration_since(self.started).as_secs_f64()
            )
        })
    }
}

/// `put --dry-run`: what a put would do, as a table, writing nothing: the value checked
/// like a put checks it, etcd reached (with the client a put uses), and whether `key` would
/// be created, changed or left as it is. Each wait is bounded by the target's timeout.
pub async fn dry_run(
    target: &service_kit::etcd::EtcdTarget,
    key: &str,
    value: &[u8],
    source_name: &str,
    allowed: &AllowedPaths,
) -> CheckReport {
    let mut report = CheckReport::new();
    let valid = report.record(
        format!("value {source_name}"),
        validate(value, source_name, allowed),
        |c: &CollectConfig| {
            let mut topics: Vec<&str> = c.entries.iter().map(|e| e.topic.as_str()).collect();
            topics.sort_unstable();
            topics.dedup();
            format!(
                "{} entr{} valid, topics {}",
                c.entries.len(),
                if c.entries.len() == 1 { "y" } else { "ies" },
                topics.join(", ")
            )
        },
    );
    let what = format!("etcd {}", target.endpoints.join(","));
    let timeout = target.timeout;
    let read = async {
        let mut client = service_kit::etcd::connect(target).await?;
        get(&mut client, key)
            .await
            .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
    };
    let current = match service_kit::check::within(timeout, &what, read).await {
        Ok(current) => {
            report.ok(&what, "reachable");
            current
        }
        Err(e) => {
            report.fail(&what, e);
            return report;
        }
    };
    let subject = format!("key {key}");
    match (current, valid) {
        (_, None) => report.fail(subject, "not written: the value is invalid"),
        (None, Some(_)) => report.ok(subject, "does not exist; a put would create it"),
        (Some((old, revision)), Some(_)) if old == value => report.ok(
            subject,
            format!("holds this value already (revision {revision}); a put changes nothing"),
        ),
        (Some((_, revision)), Some(_)) => report.ok(
            subject,
            format!("holds another value (revision {revision}); a put would replace it"),
        ),
    }
    report
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefix_ranges_follow_etcds_convention() {
        use super::prefix_range;
        assert_eq!(prefix_range(b"/a/"), (b"/a/".to_vec(), b"/a0".to_vec()));
        assert_eq!(prefix_range(b"a\xff"), (b"a\xff".to_vec(), b"b".to_vec()));
        assert_eq!(prefix_range(b"\xff"), (b"\xff".to_vec(), vec![0]));
        assert_eq!(prefix_range(b""), (vec![0], vec![0]));
    }

    #[test]
    fn a_listing_shows_progress_only_when_slow_every_page_on_a_terminal_else_every_10s() {
        use super::{ListProgress, Listed};
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let of = |done| Listed {
            done,
            total: 10_000,
        };

        let mut quick = ListProgress::new(true, t0);
        assert_eq!(quick.page(of(1000), at(500),), None, "under 2 s: quiet");
        assert_eq!(quick.page(of(10_000), at(1900)), None);
        assert_eq!(quick.finish(10_000, at(1900)), None, "nothing to close");

        let mut tty = ListProgress::new(true, t0);
        assert_eq!(tty.page(of(1000), at(1000)), None);
        assert_eq!(
            tty.page(of(2000), at(2000)).as_deref(),
            Some("etcd-put: listed 2000 of 10000 keys (20%), 1000 keys/s, about 8 s to go")
        );
        assert!(
            tty.page(of(3000), at(2500)).is_some(),
            "every page on a terminal"
        );
        assert_eq!(
            tty.page(of(10_000), at(5000)),
            None,
            "done: the closing line says it"
        );
        assert_eq!(
            tty.finish(10_000, at(5000)).as_deref(),
            Some("etcd-put: listed 10000 keys in 5 s")
        );

        let mut log = ListProgress::new(false, t0);
        assert!(log.page(of(2000), at(2000)).is_some());
        assert_eq!(
            log.page(of(3000), at(3000)),
            None,
            "not a terminal: every 10 s"
        );
        assert_eq!(log.page(of(6000), at(11_999)), None);
        assert!(log.page(of(7000), at(12_000)).is_some());
    }

    use super::*;

    #[test]
    fn errors_name_the_input_and_say_nothing_was_written() {
        let any = allowed_paths(None).unwrap();
        let e = validate(
            br#"[{"path":"/var/log/a","topic":"a","x":1}]"#,
            "conf.json",
            &any,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("conf.json: ")
                && e.contains("unknown field `x`")
                && e.ends_with("nothing was written"),
            "{e}"
        );
        let policy = allowed_paths(Some("/var/log/**")).unwrap();
        let e = validate(
            br#"[{"path":"/etc/passwd","topic":"a"}]"#,
            "--value",
            &policy,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("entry #0") && e.contains("outside allowed_paths"),
            "{e}"
        );
        assert!(validate(br#"[{"path":"/etc/passwd","topic":"a"}]"#, "--value", &any).is_ok());
        assert_eq!(
            expand_key("/logagent/{ip}/{hostname}", "1.2.3.4", "h"),
            "/logagent/1.2.3.4/h"
        );
    }
}
