//! Tails log files and ships new lines to Kafka; which files go to which topic comes from etcd.
