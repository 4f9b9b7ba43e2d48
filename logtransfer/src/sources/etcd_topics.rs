//! The topic list from an etcd key, watched live (like logagent's collect config).
//!
//! The value is a JSON array of topic names (`["web","db"]`) or a comma-separated list.
//! What held up against etcd restarts and freezes (see TESTING.md): read the key, watch
//! from the read's revision + 1; on any error or cancel, back off with jitter, read again
//! and watch again. A missing or unreadable value keeps the current list.

use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use service_kit::backoff::Backoff;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Parses the key's value; `None` when it is neither a JSON array of strings nor a list.
pub fn parse_topics(value: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.starts_with('[') {
        let list: Vec<String> = serde_json::from_str(text).ok()?;
        return Some(
            list.into_iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
        );
    }
    Some(service_kit::split_list(text))
}

/// Keeps `out` equal to the key's topic list until `stop`.
pub async fn watch_topics(
    mut client: Client,
    key: String,
    out: watch::Sender<Vec<String>>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !stop.is_cancelled() {
        if let Err(e) = watch_once(&mut client, &key, &out, &stop, &mut backoff).await {
            let delay = backoff.next_delay();
            log::warn!(
                "etcd topic key {key:?}: {e}; reading it again in {} ms",
                delay.as_millis()
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

fn publish(key: &str, value: &[u8], out: &watch::Sender<Vec<String>>) {
    match parse_topics(value) {
        Some(list) => {
            out.send_if_modified(|cur| {
                if *cur == list {
                    false
                } else {
                    *cur = list;
                    true
                }
            });
        }
        None => log::warn!(
            "etcd key {key:?} holds {:?}, neither a JSON array of topics nor a comma-separated list; keeping the current topics",
            String::from_utf8_lossy(value)
        ),
    }
}

async fn watch_once(
    client: &mut Client,
    key: &str,
    out: &watch::Sender<Vec<String>>,
    stop: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), etcd_client::Error> {
    let resp = client.get(key, None::<GetOptions>).await?;
    let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
    match resp.kvs().first() {
        Some(kv) => publish(key, kv.value(), out),
        None => log::warn!("etcd key {key:?} is missing; keeping the current topics"),
    }
    let mut stream = client
        .watch(
            key,
            Some(
                WatchOptions::new()
                    .with_start_revision(revision + 1)
                    .with_progress_notify(),
            ),
        )
        .await?;
    backoff.reset();
    loop {
        let msg = tokio::select! {
            m = stream.message() => m?,
            _ = stop.cancelled() => return Ok(()),
        };
        let Some(msg) = msg else {
            return Err(etcd_client::Error::WatchError("watch stream ended".into()));
        };
        if msg.canceled() {
            return Err(etcd_client::Error::WatchError(format!(
                "watch canceled (compact revision {})",
                msg.compact_revision()
            )));
        }
        for event in msg.events() {
            if let Some(kv) = event.kv() {
                match event.event_type() {
                    EventType::Put => publish(key, kv.value(), out),
                    EventType::Delete => {
                        log::warn!("etcd key {key:?} deleted; keeping the current topics")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_or_list() {
        assert_eq!(
            parse_topics(br#"["a", "b"]"#),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_topics(b"a, b"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(parse_topics(b"[1]"), None);
    }
}
