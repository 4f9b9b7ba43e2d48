//! Where records go.

pub mod dead_letter;
pub mod elasticsearch;
