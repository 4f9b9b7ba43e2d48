//! The topic list from an etcd key, watched live (like logagent's collect config).
//!
//! The value is a JSON array of topic names (`["web","db"]`) or a comma-separated list.
//! Following the key across etcd restarts, freezes and compactions is service-kit's
//! [`KeyWatcher`] (read, watch from the read's revision + 1, re-read and re-watch with
//! backoff on any error or cancel); this module only turns its values into topics. A
//! missing, deleted or unreadable value keeps the current list.

use service_kit::etcd::{KeyUpdate, KeyWatcher};
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

/// Keeps `out` equal to the topic list of the key `watcher` follows, until `stop`.
pub async fn watch_topics(
    watcher: KeyWatcher,
    out: watch::Sender<Vec<String>>,
    stop: CancellationToken,
) {
    let key = watcher.key().to_owned();
    watcher
        .run_with(stop, |update| {
            publish(&key, &update, &out);
            // Keep following until `stop`, as the subscriber may come and go.
            async { true }
        })
        .await;
}

fn publish(key: &str, update: &KeyUpdate, out: &watch::Sender<Vec<String>>) {
    let Some(value) = update.value.as_deref() else {
        log::warn!("etcd key {key:?} is missing or was deleted; keeping the current topics");
        return;
    };
    match parse_topics(value) {
        // A re-read after a watch error delivers the current value again: only a change
        // wakes the source.
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
