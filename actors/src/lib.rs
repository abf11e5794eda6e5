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
pub mod quota;
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
    /// Wall time, ms since the epoch.
    fn now_ms(&self) -> i64;

    /// A reading of a clock that never jumps (only differences between readings mean
    /// anything). By default the wall time itself: a test clock that is moved forward makes
    /// timeouts expire, as time passing would.
    fn monotonic_ms(&self) -> i64 {
        self.now_ms()
    }
}

/// A clock set off from another by an offset that can change while it runs: the node's
/// clock, so fault injection can make a node's wall clock jump (chaos runs).
pub struct SkewedClock {
    inner: std::sync::Arc<dyn Clock>,
    offset_ms: std::sync::atomic::AtomicI64,
}

impl SkewedClock {
    pub fn new(inner: std::sync::Arc<dyn Clock>) -> SkewedClock {
        SkewedClock { inner, offset_ms: Default::default() }
    }

    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Clock for SkewedClock {
    fn now_ms(&self) -> i64 {
        self.inner.now_ms().saturating_add(self.offset_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn monotonic_ms(&self) -> i64 {
        self.inner.monotonic_ms()
    }
}

/// Real elapsed time on the scale of the wall clock it was anchored to: a later jump of that
/// clock does not move it. Timeouts run on it (group sessions, transaction timeouts), so a
/// node whose clock jumps ahead does not expire every consumer and transaction at once.
pub struct SteadyClock {
    wall: std::sync::Arc<dyn Clock>,
    base_ms: i64,
    base_monotonic_ms: i64,
}

impl SteadyClock {
    pub fn anchored(wall: std::sync::Arc<dyn Clock>) -> SteadyClock {
        let (base_ms, base_monotonic_ms) = (wall.now_ms(), wall.monotonic_ms());
        SteadyClock { wall, base_ms, base_monotonic_ms }
    }
}

impl Clock for SteadyClock {
    fn now_ms(&self) -> i64 {
        self.base_ms.saturating_add(self.wall.monotonic_ms() - self.base_monotonic_ms)
    }

    fn monotonic_ms(&self) -> i64 {
        self.wall.monotonic_ms()
    }
}

/// The earlier of a wall clock and a steady one: the time partitions go by, deleting by age
/// included (retention.ms, delete.retention.ms, idle producers). A wall clock that jumps
/// ahead cannot make a replica delete records early (every record would look a day older
/// after a jump of a day); one that falls behind only keeps them longer.
pub struct DeletionClock {
    pub wall: std::sync::Arc<dyn Clock>,
    pub steady: std::sync::Arc<dyn Clock>,
}

impl Clock for DeletionClock {
    fn now_ms(&self) -> i64 {
        self.wall.now_ms().min(self.steady.now_ms())
    }

    fn monotonic_ms(&self) -> i64 {
        self.steady.monotonic_ms()
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    /// A wall clock that jumps, over a monotonic clock the test moves.
    #[derive(Default)]
    struct Host {
        wall_offset: AtomicI64,
        monotonic: AtomicI64,
    }

    impl Clock for Host {
        fn now_ms(&self) -> i64 {
            1_000_000 + self.monotonic.load(Ordering::SeqCst) + self.wall_offset.load(Ordering::SeqCst)
        }
        fn monotonic_ms(&self) -> i64 {
            self.monotonic.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn steady_time_ignores_jumps_and_deletion_time_never_runs_ahead() {
        let host = Arc::new(Host::default());
        let steady = Arc::new(SteadyClock::anchored(host.clone()));
        let deletion = DeletionClock { wall: host.clone(), steady: steady.clone() };
        host.monotonic.store(500, Ordering::SeqCst);
        assert_eq!((steady.now_ms(), deletion.now_ms()), (1_000_500, 1_000_500));
        host.wall_offset.store(86_400_000, Ordering::SeqCst); // a day ahead
        assert_eq!((steady.now_ms(), deletion.now_ms()), (1_000_500, 1_000_500), "a forward jump moves neither");
        host.wall_offset.store(-3_600_000, Ordering::SeqCst); // an hour back
        assert_eq!(steady.now_ms(), 1_000_500);
        assert_eq!(deletion.now_ms(), 1_000_500 - 3_600_000, "a backward jump only makes deletion later");
        host.monotonic.store(1_500, Ordering::SeqCst);
        assert_eq!((steady.now_ms(), deletion.monotonic_ms()), (1_001_500, 1_500), "real time still passes");
    }
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }

    fn monotonic_ms(&self) -> i64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_millis() as i64
    }
}
