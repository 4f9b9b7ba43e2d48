//! Validates and writes logagent's collect configuration into etcd.
//!
//! The value is checked with the agent's own schema (the [`collect_config`] crate) before
//! anything is written, so a config that the agent would reject never reaches etcd. Keys
//! accept the agent's `{ip}` and `{hostname}` templates.

use collect_config::{AllowedPaths, CollectConfig, CollectConfigError};
use etcd_client::{Client, DeleteOptions, GetOptions};

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum EtcdPutError {
    /// The value is not a valid collect config; nothing was written.
    #[error("{source_name}: {error}; nothing was written")]
    Invalid {
        /// Where the value came from (`conf.json`, `--value`, `stdin`).
        source_name: String,
        /// What is wrong and where.
        error: CollectConfigError,
    },
    /// The input could not be read.
    #[error("cannot read {source_name}: {error}")]
    Input {
        /// Where the value came from.
        source_name: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// `--allowed-paths` is invalid.
    #[error(transparent)]
    Policy(CollectConfigError),
    /// etcd could not be reached.
    #[error(transparent)]
    Connect(#[from] service_kit::etcd::EtcdError),
    /// An etcd request failed.
    #[error("etcd {op} of {key:?} failed: {error}; {}", request_check(error))]
    Request {
        /// put, get, delete, list.
        op: &'static str,
        /// Key or prefix.
        key: String,
        /// The client's error.
        error: etcd_client::Error,
    },
}

/// What to check when a request fails: the user's permissions, else etcd itself.
fn request_check(error: &etcd_client::Error) -> &'static str {
    match error {
        etcd_client::Error::GRpcStatus(status)
            if status.message().contains("permission denied") =>
        {
            "the --user may not do this; grant its role read/write on the key's prefix \
             (etcdctl role grant-permission ROLE readwrite PREFIX --prefix)"
        }
        _ => "check that etcd is running and --endpoints",
    }
}

/// Expands `{ip}` and `{hostname}` like the agent does.
pub fn expand_key(template: &str, ip: &str, hostname: &str) -> String {
    service_kit::host::expand_key_template(template, ip, hostname)
}

/// Checks `value` with the agent's schema and path policy; `source_name` names the input
/// in the error.
pub fn validate(
    value: &[u8],
    source_name: &str,
    allowed: &AllowedPaths,
) -> Result<CollectConfig, EtcdPutError> {
    collect_config::parse(value, allowed).map_err(|error| EtcdPutError::Invalid {
        source_name: source_name.to_string(),
        error,
    })
}

/// The path policy from `--allowed-paths` (comma-separated globs); none means any absolute path.
pub fn allowed_paths(globs: Option<&str>) -> Result<AllowedPaths, EtcdPutError> {
    match globs {
        None => Ok(AllowedPaths::any()),
        Some(g) => AllowedPaths::new(&service_kit::split_list(g)).map_err(EtcdPutError::Policy),
    }
}

/// Validates, then writes; returns the revision of the write.
pub async fn put(
    client: &mut Client,
    key: &str,
    value: &[u8],
    source_name: &str,
    allowed: &AllowedPaths,
) -> Result<i64, EtcdPutError> {
    validate(value, source_name, allowed)?;
    let resp = client
        .put(key, value.to_vec(), None)
        .await
        .map_err(|error| EtcdPutError::Request {
            op: "put",
            key: key.to_string(),
            error,
        })?;
    Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
}

/// The value and mod revision of `key`, if it exists.
pub async fn get(client: &mut Client, key: &str) -> Result<Option<(Vec<u8>, i64)>, EtcdPutError> {
    let resp = client
        .get(key, None)
        .await
        .map_err(|error| EtcdPutError::Request {
            op: "get",
            key: key.to_string(),
            error,
        })?;
    Ok(resp
        .kvs()
        .first()
        .map(|kv| (kv.value().to_vec(), kv.mod_revision())))
}

/// Deletes `key`; returns how many keys were deleted (0 or 1).
pub async fn delete(client: &mut Client, key: &str) -> Result<i64, EtcdPutError> {
    let resp = client
        .delete(key, None::<DeleteOptions>)
        .await
        .map_err(|error| EtcdPutError::Request {
            op: "delete",
            key: key.to_string(),
            error,
        })?;
    Ok(resp.deleted())
}

/// Every key under `prefix` with its value, sorted by key.
pub async fn list(
    client: &mut Client,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, EtcdPutError> {
    let resp = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|error| EtcdPutError::Request {
            op: "list",
            key: prefix.to_string(),
            error,
        })?;
    let mut out: Vec<(String, Vec<u8>)> = resp
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.value().to_vec(),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_input_and_say_nothing_was_written() {
        let any = allowed_paths(None).unwrap();
        let e = validate(
            br#"[{"path":"/var/log/a","topic":"a","x":1}]"#,
            "conf.json",
            &any,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("conf.json: ")
                && e.contains("unknown field `x`")
                && e.ends_with("nothing was written"),
            "{e}"
        );
        let policy = allowed_paths(Some("/var/log/**")).unwrap();
        let e = validate(
            br#"[{"path":"/etc/passwd","topic":"a"}]"#,
            "--value",
            &policy,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("entry #0") && e.contains("outside allowed_paths"),
            "{e}"
        );
        assert!(validate(br#"[{"path":"/etc/passwd","topic":"a"}]"#, "--value", &any).is_ok());
        assert_eq!(
            expand_key("/logagent/{ip}/{hostname}", "1.2.3.4", "h"),
            "/logagent/1.2.3.4/h"
        );
    }
}
