//! The InfluxDB sink, split by role (Vector's layout):
//!
//! - [`config`]: the `[influxdb]` section and which API (1.x or 2.x) it selects;
//! - [`encoder`]: samples to line protocol with Telegraf's names;
//! - [`buffer`]: the bounded buffer (oldest dropped first, every point counted once);
//! - retries wait with [`service_kit::backoff::Backoff`], shared by every retry loop;
//! - [`service`]: the HTTP write, gzip, and what each answer means;
//! - [`sink`]: the driver task tying them together and the flush on shutdown.

pub mod buffer;
pub mod config;
pub mod encoder;
pub mod service;
pub mod sink;

pub use config::{Api, InfluxConfig};
pub use encoder::Encoder;
pub use service::WriteError;
pub use sink::{FlushReport, InfluxSender, InfluxSink};
