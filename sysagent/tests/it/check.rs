//! `sysagent --check` / `--check-connections` on the built binary, against a real InfluxDB:
//! a good config passes, a bad key fails naming the key and why, an unreachable InfluxDB
//! fails naming the address. No secret is ever in the table.

use test_servers::{Influx, free_port, table_row as row};

/// Runs the binary on an INI config with `args`; returns (success, stdout, stderr).
fn run_check(ini: &str, args: &[&str]) -> (bool, String, String) {
    test_servers::run_check(env!("CARGO_BIN_EXE_sysagent"), "sysagent.ini", ini, args)
}

#[test]
fn a_good_config_passes_with_every_connection_checked() {
    let influx = Influx::start();
    let listen = format!("127.0.0.1:{}", free_port());
    let ini = format!(
        "[influxdb]\naddress = {}\ndatabase = checked\n[prometheus]\nlisten = {listen}\n",
        influx.url()
    );
    let (ok, table, stderr) = run_check(&ini, &["--check-connections"]);
    assert!(ok, "{table}\n{stderr}");
    assert!(!table.contains("FAIL"), "{table}");
    assert!(
        row(&table, &format!("InfluxDB {}", influx.url())).contains("answers /ping"),
        "{table}"
    );
    // Not there yet, and sysagent will create it: fine.
    assert!(
        row(&table, "[influxdb] database").contains("created at start"),
        "{table}"
    );
    assert!(
        row(&table, "[prometheus] listen").contains("free"),
        "{table}"
    );
    // The check only reads: it created no database.
    let shown = influx.query("", "SHOW DATABASES").to_string();
    assert!(!shown.contains("checked"), "{shown}");
}

#[test]
fn bad_keys_fail_naming_each_key_and_why() {
    let (ok, table, stderr) = run_check(
        "[collect]\ninterval = 10ms\ntags = dc=eu1, oops\n[prometheus]\nlisten = 127.0.0.1:0\n",
        &["--check"],
    );
    assert!(!ok, "{table}\n{stderr}");
    assert!(
        row(&table, "[collect] interval").contains("FAIL")
            && row(&table, "[collect] interval").contains("too short"),
        "{table}"
    );
    assert!(
        row(&table, "[collect] tags").contains("\"oops\""),
        "{table}"
    );

    // An unknown key is a failed load, named with the file.
    let (ok, table, _) = run_check("[influxdb]\nadress = http://x\n", &["--check"]);
    assert!(!ok);
    assert!(
        row(&table, "config").contains("FAIL") && row(&table, "config").contains("adress"),
        "{table}"
    );
}

#[test]
fn an_unreachable_influxdb_fails_naming_it_and_no_password_is_shown() {
    let address = format!("http://127.0.0.1:{}", free_port());
    let ini = format!(
        "[influxdb]\naddress = {address}\nusername = bob\npassword = hunter2-secret\n\
         [prometheus]\nlisten = 127.0.0.1:0\n"
    );
    // Without --check-connections nothing is contacted: the config is fine.
    let (ok, table, stderr) = run_check(&ini, &["--check"]);
    assert!(ok, "{table}\n{stderr}");
    let (ok, table, stderr) = run_check(&ini, &["--check-connections", "--check-timeout", "3s"]);
    assert!(!ok, "{table}\n{stderr}");
    let failed = row(&table, &format!("InfluxDB {address}"));
    assert!(
        failed.contains("FAIL") && failed.contains("unreachable"),
        "{table}"
    );
    for output in [&table, &stderr] {
        assert!(!output.contains("hunter2"), "{output}");
    }
}
