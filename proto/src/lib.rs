//! Wire formats of Backwaters. Nothing in this crate touches a socket, a file or a clock:
//! every function takes bytes and returns a value or a protocol error (sans-io).
//!
//! # Layout
//! - [`kafka::frame`]: the Kafka length-prefixed frame, with the size limit checked before a
//!   frame is buffered, and request-header parsing over the `kafka-protocol` crate.
//! - [`kafka::batch`]: record batch v2 headers: CRC32C check, base-offset rewrite, idempotence
//!   fields; building batches for the gRPC produce path and reading them for gRPC consume.
//! - [`kafka::partitioner`]: Kafka's murmur2 key partitioner, so gRPC and Kafka producers agree.
//! - [`grpc`]: the `backwaters.v1` gRPC types generated from `proto/` (and the descriptor set
//!   that server reflection serves).

pub mod grpc;
pub mod kafka;
pub mod sasl;
pub mod syslog;

pub use kafka_protocol;
