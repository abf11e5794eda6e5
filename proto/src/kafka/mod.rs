//! Kafka wire protocol pieces that the `kafka-protocol` crate does not do for a server.

pub mod batch;
pub mod compact;
pub mod consumer_protocol;
pub mod decompress;
pub mod frame;
pub mod group_records;
pub mod partitioner;
