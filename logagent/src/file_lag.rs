//! `logagent_file_lag_bytes{path}`: bytes of a file not yet acknowledged by Kafka, for the
//! files furthest behind, with a bounded number of series.
//!
//! Why top-N by path: an agent may follow thousands of files (one per pod, per day, per
//! tenant). A series per file would be thousands of series per agent in Prometheus, nearly
//! all 0, each kept for the retention period after its file is gone. The question the
//! metric answers is "which file is behind?", so only the [`TOP_FILES`] files with the
//! largest lag get a series labelled with their path; the lag of every other file is summed
//! into one series `path="other"` (collected paths are absolute, so no file is called that).
//! Files with no lag get no series of their own. An agent therefore exports at most
//! `TOP_FILES + 1` series, and they add up to `logagent_send_lag_bytes`. Labelling by
//! collect-config entry or topic would be bounded too, but would not name the file of a
//! glob that is stuck. A file that leaves the top loses its series at once, so a scrape
//! never shows a stale lag for it.

use std::collections::HashSet;

use crate::metrics::{FileLagLabels, Metrics};

/// Files with a series of their own: the ones furthest behind.
pub const TOP_FILES: usize = 10;

/// The `path` of the series summing every file outside the top.
pub const OTHER: &str = "other";

/// Which paths have a series right now, between two rounds.
#[derive(Debug, Default)]
pub struct FileLagSeries {
    shown: HashSet<String>,
}

impl FileLagSeries {
    /// Publishes this round's lag per path (a path may come more than once: a rotated
    /// generation being finished, or the same file collected for two topics; those are
    /// summed). Returns the total.
    pub fn publish(&mut self, metrics: &Metrics, lags: Vec<(String, u64)>) -> u64 {
        let mut per_path: std::collections::HashMap<String, u64> =
            std::collections::HashMap::with_capacity(lags.len());
        for (path, bytes) in lags {
            if bytes > 0 {
                *per_path.entry(path).or_default() += bytes;
            }
        }
        let mut lags: Vec<(String, u64)> = per_path.into_iter().collect();
        // Largest first; equal lags by path, so that the same state gives the same series.
        let order =
            |a: &(String, u64), b: &(String, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
        if lags.len() > TOP_FILES {
            lags.select_nth_unstable_by(TOP_FILES, order);
        }
        let rest = lags.split_off(lags.len().min(TOP_FILES));
        let other: u64 = rest.iter().map(|(_, b)| b).sum();
        let total = other + lags.iter().map(|(_, b)| b).sum::<u64>();

        let now: HashSet<String> = lags.iter().map(|(p, _)| p.clone()).collect();
        for gone in self.shown.difference(&now) {
            metrics
                .file_lag_bytes
                .remove(&FileLagLabels { path: gone.clone() });
        }
        for (path, bytes) in lags {
            metrics
                .file_lag_bytes
                .get_or_create(&FileLagLabels { path })
                .set(bytes);
        }
        metrics
            .file_lag_bytes
            .get_or_create(&FileLagLabels { path: OTHER.into() })
            .set(other);
        self.shown = now;
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    /// The `logagent_file_lag_bytes` series of a scrape: `(path, bytes)`.
    fn scrape(metrics: &Metrics) -> Vec<(String, u64)> {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let mut series: Vec<(String, u64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("logagent_file_lag_bytes{path=\""))
            .map(|rest| {
                let (path, value) = rest.split_once("\"} ").unwrap();
                (path.to_string(), value.parse().unwrap())
            })
            .collect();
        series.sort();
        series
    }

    #[test]
    fn thousands_of_files_make_at_most_top_plus_one_series() {
        let metrics = Metrics::default();
        let mut series = FileLagSeries::default();
        // 5,000 files behind by 1..=5000 bytes, 1,000 caught up, and one file read for two
        // topics (its lags add up).
        let mut lags: Vec<(String, u64)> = (1..=5000u64)
            .map(|i| (format!("/var/log/pods/p{i}.log"), i))
            .collect();
        lags.extend((0..1000).map(|i| (format!("/var/log/idle/{i}.log"), 0)));
        lags.push(("/var/log/pods/p7.log".into(), 9_000));
        let total: u64 = lags.iter().map(|(_, b)| b).sum();
        assert_eq!(series.publish(&metrics, lags), total);

        let shown = scrape(&metrics);
        assert_eq!(shown.len(), TOP_FILES + 1, "{shown:?}");
        assert_eq!(shown.iter().map(|(_, b)| b).sum::<u64>(), total);
        let named: Vec<&str> = shown
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| *p != OTHER)
            .collect();
        assert!(named.contains(&"/var/log/pods/p7.log"), "{named:?}");
        for i in 4992..=5000 {
            assert!(named.contains(&format!("/var/log/pods/p{i}.log").as_str()));
        }

        // The next round: p5000 caught up, so it loses its series; nothing stale remains.
        let lags: Vec<(String, u64)> = (1..=4999u64)
            .map(|i| (format!("/var/log/pods/p{i}.log"), i))
            .collect();
        series.publish(&metrics, lags);
        let shown = scrape(&metrics);
        assert_eq!(shown.len(), TOP_FILES + 1);
        assert!(!shown.iter().any(|(p, _)| p == "/var/log/pods/p5000.log"));
        assert!(shown.iter().any(|(p, _)| p == "/var/log/pods/p4990.log"));

        // Everything acknowledged: only `other`, at 0.
        assert_eq!(series.publish(&metrics, Vec::new()), 0);
        assert_eq!(scrape(&metrics), vec![(OTHER.to_string(), 0)]);
    }

    #[test]
    fn a_few_files_each_have_their_series_and_other_is_zero() {
        let metrics = Metrics::default();
        let mut series = FileLagSeries::default();
        // `other` is there from the start, before any round.
        assert_eq!(scrape(&metrics), vec![(OTHER.to_string(), 0)]);
        series.publish(&metrics, vec![("/a".into(), 5), ("/b".into(), 7)]);
        assert_eq!(
            scrape(&metrics),
            vec![("/a".into(), 5), ("/b".into(), 7), (OTHER.to_string(), 0)]
        );
    }
}
