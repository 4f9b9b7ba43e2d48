//! Where lines come from: [`file`](mod@file) (tailing). The collect config comes from etcd through
//! [`service_kit::etcd::KeyWatcher`], wired in [`crate::agent`].

pub mod file;
