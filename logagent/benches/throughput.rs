//! End-to-end throughput: lines appended to growing files → logagent (release binary, a
//! separate process, checkpoints on) → the broker, against a raw rdkafka producer sending
//! the same lines to the same broker in the same run. Also the agent's peak RSS while
//! tailing the files.
//!
//! `cargo bench -p logagent --bench throughput` (env: BENCH_FILES=100, BENCH_LINES=10000
//! lines per file, BENCH_RUNS=5, BENCH_LINE_BYTES=200). Prints a Markdown table.
//!
//! Diagnostics: BENCH_PERF=FILE records a `perf` profile of the agent while it ships,
//! BENCH_TIMELINE=1 prints lines read and sent every 20 ms, BENCH_SMAPS=PREFIX copies the
//! agent's /proc/PID/smaps when idle and at its peak (PREFIX.idle, PREFIX.peak).

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use test_servers::{Etcd, Kafka};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn line(file: usize, i: usize, len: usize) -> String {
    let head = format!("2026-11-25T14:00:00.000000Z INFO file={file:03} seq={i:08} ");
    let pad = len.saturating_sub(head.len());
    format!("{head}{}", "x".repeat(pad))
}

/// CPU seconds (user + system) used so far by process `pid`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The raw peer: the same lines, same keys, same producer settings. With `envelope` the
/// payload is the agent's JSON message, encoded before the clock starts.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn raw_producer(
    brokers: &str,
    topic: &str,
    files: usize,
    lines: usize,
    len: usize,
    host: &str,
    dir: &Path,
    envelope: bool,
) -> Duration {
    let config: ClientConfig = {
        let mut c = service_kit::kafka::producer_config(brokers);
        c.set("linger.ms", "5");
        c
    };
    let producer: ThreadedProducer<DefaultProducerContext> = config.create().unwrap();
    let keys: Vec<String> = (0..files)
        .map(|f| format!("{host}:{}/f{f:03}.log", dir.display()))
        .collect();
    let encoders: Vec<logagent::encode::FileEncoder> = (0..files)
        .map(|f| {
            logagent::encode::FileEncoder::new(
                host,
                &format!("{}/f{f:03}.log", dir.display()),
                None,
            )
        })
        .collect();
    let ts = logagent::encode::now_timestamp();
    let payloads: Vec<Vec<Vec<u8>>> = if envelope {
        (0..lines)
            .map(|i| {
                (0..files)
                    .map(|f| {
                        encoders[f].encode(
                            &ts,
                            line(f, i, len).as_bytes(),
                            false,
                            (i * (len + 1)) as u64,
                            0x5eed,
                        )
                    })
                    .collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    // warm-up outside the clock: connection and topic metadata, as the agent has them too
    producer
        .send(BaseRecord::to(topic).key("warmup").payload("warmup"))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let start = Instant::now();
    let busy0 = machine_jiffies();
    for i in 0..lines {
        for (f, key) in keys.iter().enumerate() {
            let payload = if envelope {
                payloads[i][f].clone()
            } else {
                line(f, i, len).into_bytes()
            };
            let mut record = BaseRecord::to(topic)
                .key(key.as_str())
                .payload(payload.as_slice());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(1));
                    }
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    eprintln!(
        "raw (envelope {envelope}): machine busy {:.0}%",
        100.0 * busy_since(busy0)
    );
    start.elapsed()
}

/// Busy and total jiffies of the whole machine so far (all CPUs).
fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = f.iter().sum();
    let idle = f.get(3).copied().unwrap_or(0.0) + f.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

fn busy_since(since: (f64, f64)) -> f64 {
    let now = machine_jiffies();
    (now.0 - since.0) / (now.1 - since.1).max(1.0)
}

fn metric(url: &str, name: &str) -> f64 {
    test_servers::scrape_metric(url, name).unwrap_or(0.0)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

struct AgentRun {
    elapsed: Duration,
    cpu: f64,
    peak_rss_kb: u64,
    idle_rss_kb: u64,
}

#[allow(clippy::too_many_arguments)]
fn agent_run(
    kafka: &Kafka,
    etcd: &Etcd,
    topic: &str,
    files: usize,
    lines: usize,
    len: usize,
    host: &str,
    run: usize,
) -> AgentRun {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut handles: Vec<std::fs::File> = (0..files)
        .map(|f| std::fs::File::create(logs.join(format!("f{f:03}.log"))).unwrap())
        .collect();
    let key = format!("/bench/{run}/collect_config");
    let value = format!(
        r#"[{{"path":"{}/*.log","topic":"{topic}"}}]"#,
        logs.display()
    );
    test_servers::etcd_put(&etcd.endpoint(), &key, &value);
    let port = test_servers::free_port();
    let conf = dir.path().join("conf.toml");
    std::fs::write(
        &conf,
        format!(
            "[kafka]\naddress = \"{}\"\n[etcd]\naddress = \"{}\"\ncollect_log_key = \"{key}\"\n\
             [agent]\ndata_dir = \"{}\"\nallowed_paths = \"{}/**\"\nmetrics_address = \"127.0.0.1:{port}\"\nhostname = \"{host}\"\n",
            kafka.bootstrap_servers(),
            etcd.endpoint(),
            dir.path().join("data").display(),
            logs.display()
        ),
    )
    .unwrap();
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_logagent"))
        .args(["--config", conf.to_str().unwrap(), "--log-level", "warn"])
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&url, "logagent_files_watched") < files as f64 {
        assert!(Instant::now() < deadline, "agent did not pick up the files");
        std::thread::sleep(Duration::from_millis(50));
    }
    let idle_rss_kb = rss_kb(child.id());
    if let Ok(p) = std::env::var("BENCH_SMAPS") {
        let _ = std::fs::copy(format!("/proc/{}/smaps", child.id()), format!("{p}.idle"));
    }
    // warm-up outside the clock: one line, so the producer is connected and has metadata
    handles[0].write_all(b"warmup\n").unwrap();
    while metric(&url, "logagent_lines_sent_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "agent did not ship the warm-up line"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let total = (files * lines) as f64 + 1.0;
    let cpu0 = cpu_secs(child.id());
    // BENCH_PERF=file: profile the agent while it ships (perf record -g -p PID)
    let perf = std::env::var("BENCH_PERF").ok().map(|out| {
        Command::new("perf")
            .args([
                "record",
                "-F",
                "2000",
                "-g",
                "-o",
                &out,
                "-p",
                &child.id().to_string(),
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    });
    let start = Instant::now();
    let busy0 = machine_jiffies();
    // growing files: appended in 100-line writes, round-robin over the files
    let mut peak = 0;
    for chunk in (0..lines).step_by(100) {
        for (f, h) in handles.iter_mut().enumerate() {
            let mut buf = String::new();
            for i in chunk..(chunk + 100).min(lines) {
                buf.push_str(&line(f, i, len));
                buf.push('\n');
            }
            h.write_all(buf.as_bytes()).unwrap();
        }
        let now = rss_kb(child.id());
        if now > peak
            && let Ok(p) = std::env::var("BENCH_SMAPS")
        {
            let _ = std::fs::copy(format!("/proc/{}/smaps", child.id()), format!("{p}.peak"));
        }
        peak = peak.max(now);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    let written = start.elapsed();
    let mut read_done = None;
    while metric(&url, "logagent_lines_sent_total") < total {
        if read_done.is_none() && metric(&url, "logagent_lines_read_total") >= total {
            read_done = Some(start.elapsed());
        }
        assert!(Instant::now() < deadline, "agent did not ship everything");
        let now = rss_kb(child.id());
        if now > peak
            && let Ok(p) = std::env::var("BENCH_SMAPS")
        {
            let _ = std::fs::copy(format!("/proc/{}/smaps", child.id()), format!("{p}.peak"));
        }
        peak = peak.max(now);
        if std::env::var("BENCH_TIMELINE").is_ok() {
            eprintln!(
                "  t={:?} read={} sent={}",
                start.elapsed(),
                metric(&url, "logagent_lines_read_total"),
                metric(&url, "logagent_lines_sent_total")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed();
    eprintln!("agent: machine busy {:.0}%", 100.0 * busy_since(busy0));
    eprintln!(
        "agent: files written after {written:?}, all lines read after {read_done:?}, all acknowledged after {elapsed:?}"
    );
    let cpu = cpu_secs(child.id()) - cpu0;
    if let Some(mut p) = perf {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(p.id() as i32, libc::SIGINT) };
        let _ = p.wait();
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success());
    AgentRun {
        elapsed,
        cpu,
        peak_rss_kb: peak,
        idle_rss_kb,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let files = env("BENCH_FILES", 100);
    let lines = env("BENCH_LINES", 10000);
    let runs = env("BENCH_RUNS", 5);
    let len = env("BENCH_LINE_BYTES", 200);
    let host = "benchhost";
    let kafka = Kafka::start();
    let etcd = Etcd::start();
    let total = (files * lines) as f64;
    let mb = total * (len + 1) as f64 / 1e6;
    let dir = tempfile::tempdir().unwrap();
    let me = std::process::id();
    let (mut raw, mut json, mut agent, mut peak, mut idle) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut raw_cpu, mut json_cpu, mut agent_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        for t in ["raw", "json", "agent"] {
            kafka.create_topic(&format!("{t}{run}"), 4);
        }
        let c0 = cpu_secs(me);
        let r = raw_producer(
            &kafka.bootstrap_servers(),
            &format!("raw{run}"),
            files,
            lines,
            len,
            host,
            dir.path(),
            false,
        );
        let c1 = cpu_secs(me);
        let j = raw_producer(
            &kafka.bootstrap_servers(),
            &format!("json{run}"),
            files,
            lines,
            len,
            host,
            dir.path(),
            true,
        );
        let c2 = cpu_secs(me);
        let a = agent_run(
            &kafka,
            &etcd,
            &format!("agent{run}"),
            files,
            lines,
            len,
            host,
            run,
        );
        eprintln!(
            "run {run}: raw {:.0} lines/s, raw+envelope {:.0} lines/s, agent {:.0} lines/s ({:.2} CPU s), agent RSS idle {} KiB peak {} KiB",
            total / r.as_secs_f64(),
            total / j.as_secs_f64(),
            total / a.elapsed.as_secs_f64(),
            a.cpu,
            a.idle_rss_kb,
            a.peak_rss_kb
        );
        raw.push(total / r.as_secs_f64());
        json.push(total / j.as_secs_f64());
        agent.push(total / a.elapsed.as_secs_f64());
        raw_cpu.push(c1 - c0);
        json_cpu.push(c2 - c1);
        agent_cpu.push(a.cpu);
        peak.push(a.peak_rss_kb as f64);
        idle.push(a.idle_rss_kb as f64);
    }
    // Runs drift on a shared machine: the ratio within each run is the steadier figure.
    let per_run_ratio = median(agent.iter().zip(&raw).map(|(a, r)| a / r).collect());
    let (raw_m, json_m, agent_m) = (median(raw), median(json), median(agent));
    println!(
        "| what | lines/s (median of {runs}) | MB/s of lines | ratio to raw | client CPU s per run |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| raw rdkafka producer, the bare lines | {raw_m:.0} | {:.1} | 1.00 | {:.2} |",
        raw_m * mb / total,
        median(raw_cpu)
    );
    println!(
        "| raw rdkafka producer, the agent's JSON messages (pre-encoded) | {json_m:.0} | {:.1} | {:.2} | {:.2} |",
        json_m * mb / total,
        json_m / raw_m,
        median(json_cpu)
    );
    println!(
        "| logagent: growing files → Kafka, checkpoints on | {agent_m:.0} | {:.1} | {:.2} | {:.2} |",
        agent_m * mb / total,
        agent_m / raw_m,
        median(agent_cpu)
    );
    println!();
    println!("median of the per-run agent/raw ratios: {per_run_ratio:.2}");
    println!(
        "{files} files × {lines} lines × {len} B = {total:.0} lines, {mb:.1} MB per run; agent RSS tailing {files} files: idle {:.1} MB, peak while shipping {:.1} MB (median)",
        median(idle) / 1024.0,
        median(peak) / 1024.0
    );
}
