//! Every config mistake is refused at init with the key and the reason; a good TOML
//! or INI file configures the logger in one call.

use std::path::Path;

use crate::common::{read_text, serial};
use logger::{Builder, ConfigFormat, InitError, LoggerConfig};

fn from_toml(text: &str) -> Result<logger::LoggerGuard, InitError> {
    let cfg = LoggerConfig::from_str(text, ConfigFormat::Toml)?;
    Builder::from_config(cfg).init()
}

/// Asserts the error message names `key` and contains `reason`.
fn expect_err(text: &str, key: &str, reason: &str) {
    let _s = serial();
    let e = from_toml(text).map(drop).unwrap_err().to_string();
    assert!(e.contains(&format!("`{key}`")), "key `{key}` not in: {e}");
    assert!(e.contains(reason), "`{reason}` not in: {e}");
}

#[test]
fn unknown_keys_are_named() {
    expect_err("levle = \"info\"", "levle", "unknown field");
    expect_err(
        "[outputs.f]\nkind = \"file\"\npath = \"/tmp/x\"\nrotaton = {}",
        "outputs.f.rotaton",
        "unknown field",
    );
    expect_err(
        "[outputs.f]\nkind = \"file\"\npath = \"/tmp/x\"\n[outputs.f.rotation]\nkeeep = 3",
        "outputs.f.rotation.keeep",
        "unknown field",
    );
}

#[test]
fn bad_values_are_named_with_what_is_expected() {
    expect_err("level = \"info,db=loud\"", "level", "unknown level `loud`");
    expect_err("mode = \"turbo\"", "mode", "unknown variant `turbo`");
    expect_err(
        "overflow = \"spill\"",
        "overflow",
        "unknown variant `spill`",
    );
    expect_err(
        "queue_capacity = \"lots\"",
        "queue_capacity",
        "invalid type",
    );
    expect_err("queue_capacity = 0", "queue_capacity", "at least 1");
    expect_err(
        "flush_interval = \"soon\"",
        "flush_interval",
        "invalid duration `soon`",
    );
    expect_err(
        "[outputs.c]\nkind = \"printer\"",
        "outputs.c.kind",
        "unknown variant `printer`",
    );
    expect_err(
        "[outputs.c]\nlevel = \"loud\"",
        "outputs.c.level",
        "unknown level `loud`",
    );
    expect_err(
        "[outputs.c]\npattern = \"{time} {lvl}\"",
        "outputs.c.pattern",
        "unknown placeholder `{lvl}`",
    );
    expect_err(
        "[outputs.c]\nformat = \"json\"\npattern = \"{message}\"",
        "outputs.c.pattern",
        "only applies to format",
    );
}

#[test]
fn file_outputs_need_a_path_a_trigger_and_valid_sizes() {
    expect_err("[outputs.f]\nkind = \"file\"", "outputs.f.path", "missing");
    expect_err(
        "[outputs.f]\nkind = \"file\"\npath = \"/tmp/x.log\"\nrotation = { max_size = \"12 parsecs\" }",
        "outputs.f.rotation.max_size",
        "unknown unit `parsecs`",
    );
    expect_err(
        "[outputs.f]\nkind = \"file\"\npath = \"/tmp/x.log\"\nrotation = { period = \"0s\" }",
        "outputs.f.rotation.period",
        "greater than zero",
    );
    expect_err(
        "[outputs.f]\nkind = \"file\"\npath = \"/tmp/x.log\"\nrotation = { keep = 3 }",
        "outputs.f.rotation.max_size",
        "need a rotation trigger",
    );
    expect_err(
        "[outputs.f]\nkind = \"file\"\npath = \"/tmp/x.log\"\nrotation = { max_size = \"1MB\", keep = 0 }",
        "outputs.f.rotation.keep",
        "at least 1",
    );
    expect_err(
        "[outputs.c]\npath = \"/tmp/x.log\"",
        "outputs.c.path",
        "only applies to file outputs",
    );
    expect_err(
        "[outputs.f]\nkind = \"file\"\npath = \"/tmp/x.log\"\nstream = \"stdout\"",
        "outputs.f.stream",
        "only applies to console outputs",
    );
    expect_err(
        "[outputs.f]\nkind = \"file\"\npath = \"/tmp/x.log\"\ntopic = \"t\"",
        "outputs.f.topic",
        "only applies to kafka outputs",
    );
}

#[test]
fn kafka_outputs_need_brokers_and_topic() {
    #[cfg(feature = "kafka")]
    {
        expect_err(
            "[outputs.k]\nkind = \"kafka\"\ntopic = \"t\"",
            "outputs.k.brokers",
            "missing",
        );
        expect_err(
            "[outputs.k]\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"",
            "outputs.k.topic",
            "missing",
        );
        expect_err(
            "[outputs.k]\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"\ntopic = \"t\"\non_full = \"spill\"",
            "outputs.k.spill_path",
            "missing",
        );
    }
    #[cfg(not(feature = "kafka"))]
    expect_err(
        "[outputs.k]\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"\ntopic = \"t\"",
        "outputs.k.kind",
        "`kafka` feature",
    );
}

#[test]
fn an_unwritable_file_is_an_error_at_init() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let path = blocker.join("app.log");
    let e = Builder::new()
        .output("app", logger::OutputConfig::file(&path))
        .init()
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, InitError::Open { .. }), "{msg}");
    assert!(
        msg.contains("output `app`") && msg.contains(&path.display().to_string()),
        "{msg}"
    );
    assert!(
        logger::handle().is_none(),
        "a failed init must not install anything"
    );
}

#[test]
fn file_level_errors_name_the_file() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let e = logger::init_from_file(&missing).unwrap_err().to_string();
    assert!(
        e.contains("cannot read") && e.contains("missing.toml"),
        "{e}"
    );

    let yaml = dir.path().join("log.yaml");
    std::fs::write(&yaml, "level: info").unwrap();
    let e = logger::init_from_file(&yaml).unwrap_err().to_string();
    assert!(e.contains("unknown extension"), "{e}");

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "level = \"info\"\n[outputs.x\n").unwrap();
    let e = logger::init_from_file(&broken).unwrap_err().to_string();
    assert!(
        e.contains("broken.toml") && e.contains("does not parse") && e.contains("line 2"),
        "{e}"
    );

    let bad_ini = dir.path().join("bad.ini");
    std::fs::write(&bad_ini, "[outputs.f]\nkind = file\nnonsense line\n").unwrap();
    let e = logger::init_from_file(&bad_ini).unwrap_err().to_string();
    assert!(e.contains("line 3") && e.contains("key = value"), "{e}");

    let bad_key = dir.path().join("key.ini");
    std::fs::write(&bad_key, "[outputs.f]\nkind = file\n").unwrap();
    let e = logger::init_from_file(&bad_key).unwrap_err().to_string();
    assert!(
        e.contains("key.ini") && e.contains("`outputs.f.path`"),
        "{e}"
    );
}

fn init_and_log(cfg: &Path, log: &Path) {
    let guard = logger::init_from_file(cfg).unwrap();
    logger::debug!("hidden by the file's level");
    logger::info!(k = 1; "from {}", cfg.extension().unwrap().to_string_lossy());
    drop(guard);
    let v: serde_json::Value = serde_json::from_str(read_text(log).trim()).unwrap();
    assert_eq!(
        v["message"],
        format!("from {}", cfg.extension().unwrap().to_string_lossy())
    );
    assert_eq!(v["k"], 1);
}

#[test]
fn toml_and_ini_files_configure_the_logger_in_one_call() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let toml_log = dir.path().join("t.log");
    let toml = dir.path().join("logger.toml");
    std::fs::write(
        &toml,
        format!(
            "level = \"info\"\nmode = \"sync\"\n[outputs.app]\nkind = \"file\"\npath = \"{}\"\nformat = \"json\"\nrotation = {{ max_size = \"10MB\", keep = 2 }}\n",
            toml_log.display()
        ),
    )
    .unwrap();
    init_and_log(&toml, &toml_log);

    let ini_log = dir.path().join("i.log");
    let ini = dir.path().join("logger.ini");
    std::fs::write(
        &ini,
        format!(
            "; same in INI\nlevel = warning,it::config_errors=info\n[outputs.app]\nkind = file\npath = {}\nformat = json\n[outputs.app.rotation]\nperiod = 1d\ngzip = true\n",
            ini_log.display()
        ),
    )
    .unwrap();
    init_and_log(&ini, &ini_log);
}
