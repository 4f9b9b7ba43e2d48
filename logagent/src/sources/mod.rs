//! Where lines and configuration come from: [`file`] (tailing) and [`etcd_watch`] (the
//! collect config).

pub mod etcd_watch;
pub mod file;
