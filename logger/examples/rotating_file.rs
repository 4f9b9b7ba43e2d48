//! JSON lines into a file that rotates by size or every minute (first to trigger wins),
//! keeps 5 gzipped rotated files and deletes any older than a day.
//!
//! `cargo run -p logger --example rotating_file -- /tmp/rotating-demo`

use std::time::Duration;

use logger::OutputConfig;

fn main() -> Result<(), logger::InitError> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/rotating-demo".into());
    let guard = logger::Builder::new()
        .level("debug")
        .output(
            "app",
            OutputConfig::file(format!("{dir}/app.log"))
                .json()
                .max_size(256 * 1024)
                .period(Duration::from_secs(60))
                .keep(5)
                .max_age(Duration::from_secs(86_400))
                .gzip(true),
        )
        .output("console", OutputConfig::console().level("warn"))
        .init()?;
    for i in 0..20_000u32 {
        logger::info!(request = i, status = 200; "served /index.html in {} ms", i % 17);
        if i % 1000 == 0 {
            logger::warn!(request = i; "slow request");
        }
    }
    drop(guard);
    println!("wrote 20000 records under {dir}: app.log plus rotated app.log.*.gz");
    Ok(())
}
