//! Where records come from.

pub mod etcd_topics;
pub mod kafka;
mod offset_commit;
mod partition_holds;
