//! Scenarios against a real InfluxDB 1.6: points arrive with plausible values, an outage is
//! buffered and delivered, the buffer stays bounded, a missing database is recovered from.

use crate::common::*;
use test_servers::Influx;

#[test]
fn points_arrive_with_telegraf_names_and_plausible_values() {
    let influx = Influx::start();
    let agent = Running::start(influx_config(&influx.url(), 300));

    // Usage percentages need two collections, the dashboard's rates two seconds of points.
    wait_for(20, "8 collections in InfluxDB", || {
        count_cpu_total(&influx) >= 8
    });
    let latest = agent.latest.get().expect("a sample");
    let has_disks = !latest.filesystems.is_empty() && !latest.diskio.is_empty();
    let report = agent.stop();
    assert!(report.collections >= 2);
    assert_eq!(report.undelivered, 0);

    let cpu = influx.query(
        "sysagent",
        "SELECT usage_user, usage_system, usage_idle, usage_iowait, usage_nice, usage_irq, \
         usage_softirq, usage_steal, time_idle FROM cpu WHERE cpu = 'cpu-total' AND \
         usage_idle >= 0 ORDER BY time DESC LIMIT 1",
    );
    let row = &influx_rows(&cpu)[0];
    let mut sum = 0.0;
    for mode in [
        "usage_user",
        "usage_system",
        "usage_idle",
        "usage_iowait",
        "usage_nice",
        "usage_irq",
        "usage_softirq",
        "usage_steal",
    ] {
        let v = row[mode]
            .as_f64()
            .unwrap_or_else(|| panic!("{mode} in {row:?}"));
        assert!((0.0..=100.0).contains(&v), "{mode} = {v}");
        sum += v;
    }
    assert!(
        (sum - 100.0).abs() < 0.01,
        "modes add up to 100%, got {sum}"
    );
    assert!(row["time_idle"].as_f64().unwrap() > 0.0);

    // One cpu point per core, tagged cpu0, cpu1...
    let cores = influx.query("sysagent", "SHOW TAG VALUES FROM cpu WITH KEY = cpu");
    assert_eq!(influx_rows(&cores).len() as u64, online_cpus() + 1);

    let mem = influx.query(
        "sysagent",
        "SELECT last(total) AS total, last(used_percent) AS used_percent, \
         last(available) AS available FROM mem WHERE host = 'test-host'",
    );
    let row = &influx_rows(&mem)[0];
    assert_eq!(row["total"].as_u64(), Some(proc_meminfo("MemTotal")));
    let used = row["used_percent"].as_f64().unwrap();
    assert!(used > 0.0 && used < 100.0, "used_percent {used}");
    assert!(row["available"].as_u64().unwrap() <= proc_meminfo("MemTotal"));

    let swap = influx.query("sysagent", "SELECT last(total) FROM swap");
    assert_eq!(
        influx_scalar(&swap).and_then(|v| v.as_u64()),
        Some(proc_meminfo("SwapTotal"))
    );

    let system = influx.query(
        "sysagent",
        "SELECT last(n_cpus) AS n_cpus, last(load1) AS load1, last(uptime) AS uptime FROM system",
    );
    let row = &influx_rows(&system)[0];
    assert_eq!(row["n_cpus"].as_u64(), Some(online_cpus()));
    assert!(row["load1"].as_f64().unwrap() >= 0.0);
    assert!(row["uptime"].as_u64().unwrap() > 0);

    let lo = influx.query(
        "sysagent",
        "SELECT last(bytes_recv) FROM net WHERE interface = 'lo'",
    );
    // The agent's own writes to InfluxDB went over loopback.
    assert!(influx_scalar(&lo).and_then(|v| v.as_u64()).unwrap() > 0);

    let procs = influx.query("sysagent", "SELECT last(total) FROM processes");
    assert!(influx_scalar(&procs).and_then(|v| v.as_u64()).unwrap() >= 2);

    // The provisioned Grafana dashboard's queries run and find data.
    for (title, q) in dashboard_queries("host-influxdb.json", "query") {
        let q = q
            .replace("$timeFilter", "time > now() - 1h")
            .replace("$__interval", "1s")
            .replace("$host", "test-host");
        let a = influx.query("sysagent", &q);
        assert!(a["results"][0]["error"].is_null(), "{title}: {q}: {a}");
        let about_disks = q.contains("FROM \"disk");
        if !about_disks || has_disks {
            assert!(
                a["results"][0]["series"].is_array(),
                "{title}: no data for {q}"
            );
        }
    }

    for measurement in ["diskio", "kernel"] {
        let a = influx.query("sysagent", &format!("SELECT count(*) FROM {measurement}"));
        assert!(
            a["results"][0]["series"].is_array(),
            "no {measurement} points: {a}"
        );
    }
}

#[test]
fn influx_outage_is_buffered_and_delivered_after_restart() {
    let mut influx = Influx::start();
    let agent = Running::start(influx_config(&influx.url(), 200));
    wait_for(20, "the first points", || count_cpu_total(&influx) > 0);

    influx.stop();
    let at_stop = agent.stats.collections.get();
    wait_for(
        20,
        "failed writes and 5 collections during the outage",
        || agent.stats.write_errors.get() > 0 && agent.stats.collections.get() >= at_stop + 5,
    );
    assert!(agent.stats.points_buffered.get() > 0);

    influx.restart();
    wait_for(30, "the buffer to drain", || {
        agent.stats.points_buffered.get() == 0
    });
    let s = agent.stats.clone();
    let report = agent.stop();
    assert_eq!(report.undelivered, 0);
    assert_eq!(s.points_dropped.get(), 0);
    assert_eq!(s.points_failed.get(), 0);
    assert_eq!(s.points_sent.get(), s.points_collected.get());
    // Every collection, those during the outage included, is in InfluxDB exactly once.
    assert_eq!(count_cpu_total(&influx), report.collections);
}

#[test]
fn buffer_stays_bounded_and_drops_oldest_first() {
    let mut influx = Influx::start();
    let mut config = influx_config(&influx.url(), 100);
    config.influxdb.buffer = 60;
    config.influxdb.batch = 20;
    let agent = Running::start(config);
    wait_for(20, "the first points", || count_cpu_total(&influx) > 0);

    influx.stop();
    let at_stop = agent.stats.collections.get();
    wait_for(20, "two collections into the outage", || {
        agent.stats.collections.get() >= at_stop + 2
    });
    let early_outage = agent.latest.get().expect("a sample").unix_millis();
    let mut max_buffered = 0;
    wait_for(30, "points dropped during the outage", || {
        max_buffered = max_buffered.max(agent.stats.points_buffered.get());
        agent.stats.points_dropped.get() > 300
    });
    influx.restart();
    wait_for(30, "the buffer to drain", || {
        max_buffered = max_buffered.max(agent.stats.points_buffered.get());
        agent.stats.points_buffered.get() == 0
    });
    let s = agent.stats.clone();
    let latest = agent.latest.clone();
    let report = agent.stop();
    assert!(
        max_buffered <= 60,
        "buffer held {max_buffered} points, bound 60"
    );
    assert_eq!(report.undelivered, 0);
    assert_eq!(
        s.points_sent.get() + s.points_dropped.get(),
        s.points_collected.get(),
        "every point is either sent or counted dropped"
    );

    let cpu_total_at = |ms: i64| {
        let a = influx.query(
            "sysagent",
            &format!("SELECT count(time_idle) FROM cpu WHERE cpu = 'cpu-total' AND time = {ms}ms"),
        );
        influx_scalar(&a).and_then(|v| v.as_u64()).unwrap_or(0)
    };
    // Oldest dropped first: an early outage sample is gone, the newest one arrived.
    assert_eq!(
        cpu_total_at(early_outage),
        0,
        "early outage sample was dropped"
    );
    let newest = latest.get().expect("a sample").unix_millis();
    assert_eq!(
        cpu_total_at(newest),
        1,
        "newest sample was kept and delivered"
    );
}

#[test]
fn missing_database_is_retried_until_created() {
    let influx = Influx::start();
    let mut config = influx_config(&influx.url(), 200);
    config.influxdb.database = "not_there_yet".into();
    config.influxdb.create_database = false;
    let agent = Running::start(config);

    wait_for(20, "writes refused for the missing database", || {
        agent.stats.write_errors.get() >= 2
    });
    assert_eq!(agent.stats.points_sent.get(), 0);
    assert!(agent.stats.collections.get() >= 2, "still collecting");

    influx.query("", "CREATE DATABASE not_there_yet");
    wait_for(30, "the buffer to drain into the new database", || {
        agent.stats.points_sent.get() > 0 && agent.stats.points_buffered.get() == 0
    });
    let report = agent.stop();
    let a = influx.query(
        "not_there_yet",
        "SELECT count(time_idle) FROM cpu WHERE cpu = 'cpu-total'",
    );
    assert_eq!(
        influx_scalar(&a).and_then(|v| v.as_u64()),
        Some(report.collections),
        "every collection arrives, the ones made before the database existed included"
    );
}

#[test]
fn server_errors_are_retried_and_bad_requests_dropped_and_counted() {
    use test_servers::{Fault, FaultProxy};
    let influx = Influx::start();
    let proxy = FaultProxy::start(&influx.url());
    let agent = Running::start(influx_config(&proxy.url(), 200));
    wait_for(20, "the first points through the proxy", || {
        count_cpu_total(&influx) > 0
    });

    // 503 and 429: retried until they pass, nothing lost.
    proxy.fail_next(3, 503);
    wait_for(20, "three 503s answered", || proxy.faulted() >= 3);
    proxy.fail_next(2, 429);
    wait_for(20, "two 429s answered", || proxy.faulted() >= 5);
    wait_for(20, "the buffer to drain after the 5xx/429", || {
        agent.stats.points_buffered.get() == 0 && agent.stats.write_errors.get() >= 5
    });
    assert_eq!(
        agent.stats.points_failed.get(),
        0,
        "5xx and 429 are never dropped"
    );

    // 400: that batch is dropped and counted, not retried forever.
    proxy.set_fault(Fault::Status(400));
    wait_for(20, "batches refused with 400", || {
        agent.stats.points_failed.get() > 0 && agent.stats.points_buffered.get() == 0
    });
    proxy.set_fault(Fault::None);
    let s = agent.stats.clone();
    let report = agent.stop();
    assert_eq!(report.undelivered, 0);
    assert_eq!(
        s.points_sent.get() + s.points_failed.get(),
        s.points_collected.get(),
        "every point is either sent or counted failed"
    );
    assert_eq!(s.points_dropped.get(), 0);
}
