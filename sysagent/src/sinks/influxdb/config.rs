//! `[influxdb]`: where and how points are written.

use std::time::Duration;

use serde::Deserialize;

/// `[influxdb]` section. InfluxDB 1.x is addressed by `database` (and optional
/// `username`/`password`); 2.x by `org`, `bucket` and `token` (setting `bucket` selects 2.x).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfluxConfig {
    /// Base URL, e.g. `http://127.0.0.1:8086`. Empty: no InfluxDB output.
    pub address: String,
    /// 1.x database to write to.
    pub database: String,
    /// 1.x: create the database at start (`CREATE DATABASE`, a no-op when it exists) and
    /// again when a write says it is missing. Turn off when the user may not create databases.
    pub create_database: bool,
    /// 1.x user (empty: no authentication).
    pub username: String,
    /// 1.x password.
    pub password: String,
    /// 2.x organisation.
    pub org: String,
    /// 2.x bucket; setting it switches to the 2.x API (`/api/v2/write`).
    pub bucket: String,
    /// 2.x API token.
    pub token: String,
    /// Most points in one write request.
    pub batch: usize,
    /// Most points held while InfluxDB is unreachable; beyond it the oldest are dropped and
    /// counted in `sysagent_points_dropped_total`. Each costs 200–400 bytes of RSS; the
    /// default keeps sysagent under 10 MB (measured, docs/bench/sysagent.md).
    pub buffer: usize,
    /// Give up on one request after this long (then retry).
    #[serde(with = "service_kit::duration")]
    pub timeout: Duration,
    /// Longest wait between retries; waits start at 0.5 s and double up to this.
    #[serde(with = "service_kit::duration")]
    pub max_backoff: Duration,
    /// On shutdown, keep trying to deliver what is buffered for this long.
    #[serde(with = "service_kit::duration")]
    pub flush_timeout: Duration,
    /// Compress request bodies with gzip (`Content-Encoding: gzip`).
    pub gzip: bool,
}

impl Default for InfluxConfig {
    fn default() -> Self {
        InfluxConfig {
            address: String::new(),
            database: "sysagent".into(),
            create_database: true,
            username: String::new(),
            password: String::new(),
            org: String::new(),
            bucket: String::new(),
            token: String::new(),
            batch: 1000,
            buffer: 5_000,
            timeout: Duration::from_secs(5),
            max_backoff: Duration::from_secs(30),
            flush_timeout: Duration::from_secs(5),
            gzip: true,
        }
    }
}

/// Which write API to use, derived from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    /// InfluxDB 1.x `/write?db=`.
    V1 {
        database: String,
        username: String,
        password: String,
        create_database: bool,
    },
    /// InfluxDB 2.x `/api/v2/write?org=&bucket=`.
    V2 {
        org: String,
        bucket: String,
        token: String,
    },
}

impl InfluxConfig {
    /// The API to talk, or what is missing (message without the `[influxdb]` prefix).
    pub fn api(&self) -> Result<Api, String> {
        let url = reqwest::Url::parse(self.address.trim()).map_err(|e| {
            format!(
                "address = {:?} is not a URL ({e}); write e.g. http://127.0.0.1:8086",
                self.address
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "address = {:?} must start with http:// or https://",
                self.address
            ));
        }
        if self.batch == 0 || self.buffer == 0 {
            return Err("batch and buffer must be at least 1".into());
        }
        if !self.bucket.is_empty() {
            if self.org.is_empty() || self.token.is_empty() {
                return Err(
                    "bucket is set (InfluxDB 2.x) but org or token is empty; set all three, or \
                     unset bucket and set database for 1.x"
                        .into(),
                );
            }
            return Ok(Api::V2 {
                org: self.org.clone(),
                bucket: self.bucket.clone(),
                token: self.token.clone(),
            });
        }
        if self.database.is_empty() {
            return Err(
                "database is empty; set database (1.x) or org, bucket and token (2.x)".into(),
            );
        }
        Ok(Api::V1 {
            database: self.database.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            create_database: self.create_database,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_by_default_v2_when_bucket_set() {
        let mut c = InfluxConfig {
            address: "http://127.0.0.1:8086".into(),
            ..Default::default()
        };
        assert!(matches!(c.api(), Ok(Api::V1 { .. })));
        c.bucket = "b".into();
        assert!(c.api().unwrap_err().contains("org or token is empty"));
        c.org = "o".into();
        c.token = "t".into();
        assert!(matches!(c.api(), Ok(Api::V2 { .. })));
    }

    #[test]
    fn bad_address_says_what_to_write() {
        let c = InfluxConfig {
            address: "127.0.0.1:8086".into(),
            ..Default::default()
        };
        let e = c.api().unwrap_err();
        assert!(e.contains("http://"), "{e}");
    }
}
