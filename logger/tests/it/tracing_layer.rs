//! `tracing` events reach the logger's outputs through the layer (feature `tracing`).
#![cfg(feature = "tracing")]

use crate::common::{read_text, serial};
use logger::{Builder, OutputConfig};
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn tracing_events_become_records_with_fields_and_filters() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let guard = Builder::new()
        .level("debug,tracing_layer::noisy=warn")
        .output("json", OutputConfig::file(&path).json())
        .init()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(logger::tracing_layer::LoggerLayer::new());
    tracing::subscriber::with_default(subscriber, || {
        let line = line!() + 1;
        tracing::info!(user = 42, name = "ann", ok = true, "login {}", "ok");
        tracing::trace!("below debug");
        tracing::info!(target: "tracing_layer::noisy", "filtered");
        tracing::error!(target: "tracing_layer::noisy", code = 7u64, "kept");
        drop(guard);
        let lines: Vec<serde_json::Value> = read_text(&path)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let r = &lines[0];
        assert_eq!(r["message"], "login ok");
        assert_eq!(r["log.level"], "info");
        assert_eq!(r["user"], 42);
        assert_eq!(r["name"], "ann");
        assert_eq!(r["ok"], true);
        assert_eq!(r["log"]["logger"], module_path!());
        assert_eq!(r["log"]["origin"]["file"]["line"], line);
        assert_eq!(lines[1]["message"], "kept");
        assert_eq!(lines[1]["code"], 7);
        assert_eq!(lines[1]["log.level"], "error");
    });
}
