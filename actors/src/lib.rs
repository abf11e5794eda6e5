//! The supervised actors of a Backwaters node.
//!
//! # Layout
//! - [`supervisor`]: one-for-one supervisor with an explicit restart budget (N restarts in a
//!   window, then escalate), since ractor ships none.
//! - [`node`]: the node root: opens the store, builds the supervision tree
//!   (`root` → `flusher`, `partitions` → one actor per partition, `retention`, `listeners`),
//!   keeps the topic catalog, and offers the operations the Kafka and gRPC edges call.
//! - [`partition`]: the partition actor (shell) around a pure state machine
//!   ([`partition::core`]): offsets, idempotent-producer checks, high watermark, retention.
//! - [`flusher`]: group commit: one store flush acknowledges many partitions' writes.
//! - [`group`]: consumer-group coordinators (one actor per `__consumer_offsets` partition)
//!   around a pure group state machine ([`group::state`]).
//! - [`replica`]: Raft plumbing: raft-rs `Storage` over the sled partition log
//!   ([`replica::log_store`]), the transport trait, and a seeded simulation of a group under
//!   faults. The partition actor drives a `RawNode` with it.
//! - [`acl`]: Kafka ACL bindings and the authorizer's decision (pure).
//! - [`controller`]: cluster metadata as a Raft-replicated log (`__cluster_metadata`), its
//!   records, requests, and zone-aware placement.
//! - [`service`]: an actor that runs a long-lived task (a listener), restarted on failure.
//! - [`topic`]: topic names, configs and the catalog record.
//! - [`metrics`]: counters and histograms rendered for Prometheus.
//!
//! # Supervision tree
//! ```text
//! root (5 restarts / 10 s, then the node stops)
//! ├── 0-flusher
//! ├── 1-partitions (supervisor, 10 restarts / 10 s per partition)
//! │   └── p{uid} ... one per partition
//! ├── 2-retention (ticker)
//! ├── 3-listeners (supervisor) → kafka, grpc, http
//! └── 4-groups (supervisor, 10 restarts / 10 s) → g{n}: one coordinator per
//!     __consumer_offsets partition, started when that topic first exists
//! ```
//! Requests that fail are answered with an error, never with an actor failure; an actor fails
//! only when its state can no longer be trusted (a storage error, a failed flush), and then it
//! restarts from what is on disk.

pub mod acl;
pub mod controller;
pub mod flusher;
pub mod group;
pub mod metrics;
pub mod node;
pub mod partition;
pub mod replica;
pub mod service;
pub mod supervisor;
pub mod topic;
pub mod txn;

use thiserror::Error;

/// Why a partition operation failed. The Kafka edge maps each to one error code.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PartitionError {
    #[error("record batch of {size} bytes is larger than max.message.bytes={max}")]
    MessageTooLarge { size: usize, max: i32 },
    #[error("invalid record batch: {0}")]
    InvalidRecord(&'static str),
    #[error("corrupt record batch: {0}")]
    CorruptRecord(String),
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence { expected: i32, got: i32 },
    #[error("producer epoch is older than the partition has seen (fenced)")]
    InvalidProducerEpoch,
    #[error("offset {offset} is outside the log [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("partition is restarting or overloaded; retry")]
    Busy,
    #[error("this node is not the partition's leader (leader: {leader:?}); refresh metadata and retry")]
    NotLeader { leader: Option<i32> },
    #[error("request timed out before the write was durable")]
    Timeout,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("storage: {0}")]
    Storage(String),
    #[error("only {free_mib} MiB free under {dir} (limits.min_free_disk_bytes is {min_mib} MiB): writes are refused until space is freed (retention, DeleteRecords, deleting topics) or the limit is lowered")]
    DiskFull { free_mib: u64, min_mib: u64, dir: String },
}

impl From<backwaters_storage::StorageError> for PartitionError {
    fn from(e: backwaters_storage::StorageError) -> Self {
        PartitionError::Storage(e.to_string())
    }
}

/// Time as the node sees it; injected so tests can move it.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}
