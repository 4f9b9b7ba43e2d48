//! Configure everything from a TOML or INI file in one call (like log4rs' `init_file`).
//!
//! `cargo run -p logger --example from_config -- logger/examples/logger.toml`

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "logger/examples/logger.toml".into());
    let guard = match logger::init_from_file(&path) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    logger::info!(config = path.as_str(); "configured from a file");
    logger::debug!("shown only where the config's levels allow it");
    log::warn!("`log` macros from any crate use the same outputs");
    drop(guard);
}
