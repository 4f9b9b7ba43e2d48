//! Scenarios: files an attacker or a careless neighbour puts where the agent looks. A FIFO
//! in place of a collected file, a rotation sibling that is a symlink to a secret, symlink
//! loops under `**`, a file whose reads never return (a hung network mount). The agent must
//! skip them, count them, and keep shipping, answering /metrics and stopping on request:
//! every wait here is bounded so a frozen agent fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use logagent::config::LocalConfig;
use test_servers::{Etcd, Kafka};

const LIMIT: Duration = Duration::from_secs(20);

fn refused(reason: &str) -> String {
    format!("logagent_files_refused_total{{reason=\"{reason}\"}}")
}

/// Waits (bounded) until `name` satisfies `ok`.
fn wait(agent: &Frozen, name: &str, ok: impl Fn(f64) -> bool + Send + 'static) -> f64 {
    let (addr, n) = (agent.metrics(), name.to_string());
    bounded(&format!("waiting for {name}"), LIMIT + LIMIT, move || {
        wait_metric_at(addr, &n, LIMIT, ok)
    })
}

/// The agent, not joined when the test fails: dropping a frozen agent waits for its
/// runtime forever, and the failure must be reported instead.
struct Frozen(Option<Agent>);

impl Frozen {
    fn start(config: logagent::config::LocalConfig) -> Frozen {
        Frozen(Some(Agent::start(config)))
    }

    fn metrics(&self) -> std::net::SocketAddr {
        self.0.as_ref().map(|a| a.metrics).unwrap()
    }

    /// Stops the agent like SIGTERM; fails if that does not finish within the limit.
    fn stop(mut self) {
        let agent = self.0.take().unwrap();
        bounded("shutdown", LIMIT, move || agent.stop());
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(agent) = self.0.take() {
            std::mem::forget(agent);
        }
    }
}

/// The servers, `topic` with one partition, a temporary directory and its `logs`.
fn servers(topic: &str) -> (Kafka, Etcd, tempfile::TempDir, PathBuf) {
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    kafka.create_topic(topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = logs_dir(dir.path());
    (kafka, etcd, dir, logs)
}

/// `normal.log` (`n 0..100`) and `other` (`lines`) collected into `topic`, and a config
/// with one runtime thread (the default: one call blocking on it is the whole agent).
fn two_files(
    topic: &str,
    other: &str,
    lines: Vec<String>,
) -> (Kafka, Etcd, tempfile::TempDir, [PathBuf; 2], LocalConfig) {
    let (kafka, etcd, dir, logs) = servers(topic);
    let (normal, other) = (logs.join("normal.log"), logs.join(other));
    append(&normal, self::lines("n", 0..100));
    append(&other, lines);
    etcd_put(
        &etcd.endpoint(),
        KEY,
        &format!("[{},{}]", entry(&normal, topic), entry(&other, topic)),
    );
    let mut cfg = config(dir.path(), &kafka.bootstrap_servers(), &etcd.endpoint());
    cfg.agent.worker_threads = 1;
    (kafka, etcd, dir, [normal, other], cfg)
}

/// What reached `topic` (`n` messages expected) from each of `files`, in order.
fn shipped_from(kafka: &Kafka, topic: &str, n: usize, files: &[PathBuf; 2]) -> [Vec<String>; 2] {
    let shipped = consume(
        &kafka.bootstrap_servers(),
        topic,
        n,
        Duration::from_secs(30),
    );
    files.each_ref().map(|f| messages_of(&shipped, f))
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn a_fifo_in_place_of_a_collected_file_is_skipped_and_nothing_freezes() {
    // One thread reads every file, so one blocking open is the whole agent.
    let (kafka, _etcd, _dir, files, cfg) = two_files("fifo", "odd.log", lines("o", 0..10));
    let [normal, odd] = &files;
    let agent = Frozen::start(cfg);
    wait(&agent, "logagent_lines_sent_total", |v| v == 110.0);

    // The collected file is replaced by a FIFO that no one ever writes to.
    std::fs::remove_file(odd).unwrap();
    let made = Command::new("mkfifo").arg(odd).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    std::thread::sleep(Duration::from_millis(500));
    append(normal, lines("n", 100..200));

    wait(&agent, "logagent_lines_sent_total", |v| v == 210.0);
    // Several scans and polls later it was still refused (and warned about) only once.
    std::thread::sleep(Duration::from_secs(2));
    wait(&agent, &refused("not_regular_file"), |v| v == 1.0);
    agent.stop();

    let [from_normal, from_odd] = shipped_from(&kafka, "fifo", 210, &files);
    assert!(from_normal == lines("n", 0..200));
    assert_eq!(from_odd, lines("o", 0..10));
}

#[test]
fn a_rotation_sibling_linked_to_a_file_outside_allowed_paths_is_never_read() {
    let (kafka, etcd, dir, logs) = servers("leak");
    // Outside allowed_paths (`<dir>/logs/**`); its first line is known to the attacker.
    let secret = dir.path().join("secret.txt");
    std::fs::write(
        &secret,
        "HEAD-0123456789\nsecret line 1\nsecret line 2\nsecret line 3\n",
    )
    .unwrap();
    let app = logs.join("app.log");
    // Whoever can write app.log writes the secret's first line: the copytruncate copy is
    // recognised by its head, so the secret looks like the copy of app.log.
    append(&app, ["HEAD-0123456789".to_string()]);
    etcd_put(&etcd.endpoint(), KEY, &format!("[{}]", entry(&app, "leak")));
    let agent = Frozen::start(config(
        dir.path(),
        &kafka.bootstrap_servers(),
        &etcd.endpoint(),
    ));
    wait(&agent, "logagent_lines_sent_total", |v| v == 1.0);

    symlink(&secret, &logs.join("app.log.1"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&app)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&app, lines("app", 0..10));

    wait(&agent, "logagent_lines_sent_total", |v| v >= 11.0);
    wait(&agent, &refused("outside_allowed_paths"), |v| v == 1.0);
    agent.stop();
    let shipped = consume(
        &kafka.bootstrap_servers(),
        "leak",
        11,
        Duration::from_secs(30),
    );
    let leaked: Vec<_> = shipped
        .iter()
        .filter(|s| s.message.contains("secret"))
        .collect();
    assert!(leaked.is_empty(), "secret content shipped: {leaked:?}");
    let mut want = vec!["HEAD-0123456789".to_string()];
    want.extend(lines("app", 0..10));
    assert_eq!(messages_of(&shipped, &app), want);
}

#[test]
fn symlink_loops_under_a_double_star_glob_neither_freeze_nor_duplicate() {
    let (kafka, etcd, dir, logs) = servers("loops");
    let sub = logs.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let app = sub.join("app.log");
    append(&app, lines("app", 0..100));
    for l in ["l1", "l2", "l3"] {
        symlink(Path::new("."), &sub.join(l));
    }
    let glob = logs.join("**").join("*.log");
    etcd_put(
        &etcd.endpoint(),
        KEY,
        &format!("[{}]", entry(&glob, "loops")),
    );
    let agent = Frozen::start(config(
        dir.path(),
        &kafka.bootstrap_servers(),
        &etcd.endpoint(),
    ));
    wait(&agent, "logagent_lines_sent_total", |v| v == 100.0);
    append(&app, lines("app", 100..200));
    wait(&agent, "logagent_lines_sent_total", |v| v == 200.0);
    // Several more scans: still one tailer for the one file.
    std::thread::sleep(Duration::from_secs(1));
    wait(&agent, "logagent_files_watched", |v| v == 1.0);
    agent.stop();
    let shipped = consume(
        &kafka.bootstrap_servers(),
        "loops",
        200,
        Duration::from_secs(30),
    );
    assert_eq!(shipped.len(), 200, "duplicates or missing lines");
    assert!(messages_of(&shipped, &app) == lines("app", 0..200));
}

/// Reads of one file never return, as on a hung NFS mount: a test seam (feature
/// `test-hooks`) blocks its reading thread for ever at the read call. Read on reader threads
/// with a bound, that file stalls alone: the other file ships, /metrics answers, the stall
/// and the stuck thread are counted once, and shutdown completes. Read inline on the runtime
/// thread (`blocking_reads = never`, the read path before the bound) the same hang froze the
/// whole agent and this test failed at the first wait after it.
#[cfg(feature = "test-hooks")]
#[test]
fn a_file_whose_reads_never_return_stalls_alone() {
    use logagent::sources::file::reads::{BlockingReads, hooks};
    // One runtime thread: a read hanging on it would be the whole agent.
    let (kafka, _etcd, _dir, files, mut cfg) = two_files("hung", "hung.log", lines("h", 0..100));
    // The test's files are local: take the path a network file system's files take.
    cfg.agent.blocking_reads = BlockingReads::Always;
    cfg.agent.read_timeout_ms = 500;
    let [normal, hung] = &files;
    let agent = Frozen::start(cfg);
    wait(&agent, "logagent_lines_sent_total", |v| v == 200.0);

    hooks::hang_reads_of(hung).unwrap();
    append(hung, lines("h", 100..110));
    append(normal, lines("n", 100..200));
    // The hung file is not read again while its read hangs: one stall, one stuck thread.
    let stalled_once = |agent: &Frozen| {
        wait(agent, "logagent_reads_stalled_total", |v| v == 1.0);
        wait(agent, "logagent_reader_threads_stuck", |v| v == 1.0);
    };
    wait(&agent, "logagent_lines_sent_total", |v| v == 300.0);
    stalled_once(&agent);
    // Many polls later.
    std::thread::sleep(Duration::from_secs(1));
    append(normal, lines("n", 200..300));
    wait(&agent, "logagent_lines_sent_total", |v| v == 400.0);
    stalled_once(&agent);
    agent.stop();

    let [from_normal, from_hung] = shipped_from(&kafka, "hung", 400, &files);
    assert!(from_normal == lines("n", 0..300));
    assert!(from_hung == lines("h", 0..100));
}
