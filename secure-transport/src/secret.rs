//! Passwords, API keys and tokens: held as [`Secret`], whose `Debug` and `Display` print
//! `"***"`, and read from the config, a `*_file` key, or the environment (the config's own
//! `<PREFIX>_<SECTION>_<KEY>` overrides).
//!
//! The one way a secret leaves its wrapper is [`Secret::expose`], called where it is handed to
//! a client library. Errors about secrets name the key and the file, never the value.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A secret string. Empty means "not set".
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the client library that needs it. Never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret from the inline key (`password`) or, when that is empty, from the file
    /// named by its `*_file` key (`password_file`), without the file's trailing newline.
    ///
    /// Both set is an error (which one wins would be a guess); neither set is an empty
    /// secret. `key` is the inline key's name as the user writes it (`[kafka] sasl_password`),
    /// used in the error.
    pub fn from_value_or_file(
        key: &str,
        inline: &Secret,
        file: &Path,
    ) -> Result<Secret, SecretError> {
        let file_given = !file.as_os_str().is_empty();
        match (inline.is_empty(), file_given) {
            (false, true) => Err(SecretError::Both {
                key: key.to_owned(),
            }),
            (false, false) => Ok(inline.clone()),
            (true, false) => Ok(Secret::default()),
            (true, true) => {
                let text = read_secret_file(file).map_err(|source| SecretError::File {
                    key: key.to_owned(),
                    path: file.to_owned(),
                    source,
                })?;
                let value = text.trim_end_matches(['\n', '\r']);
                if value.is_empty() {
                    return Err(SecretError::EmptyFile {
                        key: key.to_owned(),
                        path: file.to_owned(),
                    });
                }
                Ok(Secret(value.to_owned()))
            }
        }
    }
}

/// Largest secret file read: passwords, keys and tokens are short; a path naming a log or a
/// device by mistake must not be read into memory.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a secret file that is a regular file (a symlink to one, as Kubernetes mounts
/// secrets, is fine) of at most [`MAX_SECRET_FILE_BYTES`]. Opened non-blocking and checked
/// on the opened descriptor, so a FIFO or a device named by mistake is an error at start,
/// not a start that hangs or reads forever.
fn read_secret_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut text = String::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_SECRET_FILE_BYTES} bytes"),
        ));
    }
    Ok(text)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"***\"")
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            f.write_str("***")
        }
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

/// Why a secret could not be read. Never carries the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Both the inline key and its `*_file` key were set.
    #[error("both {key} and {key}_file are set; keep one of them")]
    Both {
        /// The inline key.
        key: String,
    },
    /// The `*_file` could not be read.
    #[error(
        "cannot read {key}_file {path}: {source}; check the path and that this user may read it"
    )]
    File {
        /// The inline key.
        key: String,
        /// The file named.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The `*_file` was empty.
    #[error("{key}_file {path} is empty; write the secret into it (one line)")]
    EmptyFile {
        /// The inline key.
        key: String,
        /// The file named.
        path: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "\"***\"");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
    }

    #[test]
    fn file_is_read_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let secret = Secret::from_value_or_file("password", &Secret::default(), &file).unwrap();
        assert_eq!(secret.expose(), "s3cret");
    }

    #[test]
    fn inline_and_file_together_are_refused_without_echoing_either() {
        let error = Secret::from_value_or_file(
            "[es] password",
            &Secret::new("inline-pw"),
            Path::new("/etc/pw"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("[es] password_file"), "{error}");
        assert!(!error.contains("inline-pw"), "{error}");
    }

    #[test]
    fn missing_or_empty_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let error = Secret::from_value_or_file("password", &Secret::default(), &missing)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot read password_file"), "{error}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let error = Secret::from_value_or_file("password", &Secret::default(), &empty)
            .unwrap_err()
            .to_string();
        assert!(error.contains("is empty"), "{error}");
    }

    #[test]
    fn nothing_given_is_an_empty_secret() {
        let secret =
            Secret::from_value_or_file("password", &Secret::default(), Path::new("")).unwrap();
        assert!(secret.is_empty());
    }
    #[test]
    fn a_fifo_a_device_or_a_huge_file_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        for path in [fifo.as_path(), Path::new("/dev/zero")] {
            let error = Secret::from_value_or_file("password", &Secret::default(), path)
                .unwrap_err()
                .to_string();
            assert!(error.contains("not a regular file"), "{error}");
        }
        let huge = dir.path().join("huge");
        std::fs::write(&huge, vec![b'a'; 100 * 1024]).unwrap();
        let error = Secret::from_value_or_file("password", &Secret::default(), &huge)
            .unwrap_err()
            .to_string();
        assert!(error.contains("larger than"), "{error}");
    }

    #[test]
    fn a_symlink_to_a_secret_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let secret = Secret::from_value_or_file("password", &Secret::default(), &link).unwrap();
        assert_eq!(secret.expose(), "s3cret");
    }
}
