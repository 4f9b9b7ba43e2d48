//! Why the logger could not be installed: a [`ConfigError`], or a reason found while opening
//! the outputs and installing the logger.

use std::path::PathBuf;

use crate::config::ConfigError;

/// Everything that can go wrong in [`Builder::init`](crate::Builder::init) and
/// [`init_from_file`](crate::init_from_file).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The config is wrong: it does not read or parse, or a key is unknown or has a bad value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An error while installing the logger a config file describes.
    #[error("in {path}: {source}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: Box<InitError>,
    },
    /// A file output's file cannot be opened for writing.
    #[error(
        "output `{output}`: cannot open log file {path} for appending: {source}; check that the directory exists or can be created and is writable"
    )]
    Open {
        /// Output name.
        output: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A Kafka output could not be created.
    #[error("output `{output}`: cannot create Kafka producer: {reason}")]
    Kafka {
        /// Output name.
        output: String,
        /// Why.
        reason: String,
    },
    /// `init` was called while a logger is installed.
    #[error("a logger is already installed; drop its LoggerGuard before calling init again")]
    AlreadyInstalled,
    /// Another crate already installed a `log` backend.
    #[error(
        "another `log` backend is already installed; set `log_facade = false` or remove the other logger"
    )]
    LogFacadeTaken,
    /// The writer or housekeeping thread could not be started.
    #[error("cannot start the logger's writer thread: {0}")]
    Thread(std::io::Error),
}
