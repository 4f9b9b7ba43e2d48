//! Console output with colours (on a terminal), per-module levels and fields.
//!
//! `cargo run -p logger --example console`

fn main() -> Result<(), logger::InitError> {
    let guard = logger::Builder::new()
        .level("debug,console::noisy=warn")
        .output("console", logger::OutputConfig::console())
        .init()?;
    logger::trace!("not shown: below the global level");
    logger::debug!("starting with {} workers", 4);
    logger::info!(user = 42, ip = "10.0.0.7"; "user {} logged in", "ann");
    log::warn!("the `log` facade goes through the same outputs");
    noisy::chatter();
    logger::error!("request failed: {}", "connection reset");
    guard.handle().set_level("info")?;
    logger::debug!("not shown: the level was raised at run time");
    logger::fatal!("fatal flushes before returning (exit_on_fatal is off by default)");
    Ok(())
}

mod noisy {
    pub fn chatter() {
        logger::info!("not shown: console::noisy only logs warn and above");
        logger::warn!("shown: warn passes console::noisy=warn");
    }
}
