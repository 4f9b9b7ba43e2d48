//! Stages between the source and the sinks.

pub mod decode;
pub mod fast_lift;
