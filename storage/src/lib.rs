//! Durable storage of a Backwaters node, on sled. This is the only crate that names sled.
//!
//! # Layout
//! - [`store`]: the node's one sled `Db`: format-version check, the node-wide write sequence
//!   that group commit uses, flush, and a small metadata key space (topic catalog, counters).
//! - [`log`]: a partition log. Entries are keyed by a Raft-style index and hold one whole
//!   record batch each (or a no-op), with the Kafka base offset and the term beside it, so the
//!   Raft log of the next stage *is* the partition log: no second copy, no second fsync.
//!   A secondary key maps Kafka base offsets to indexes for fetches.
//! - [`keys`]: the byte layout of keys and values, and its format version.
//!
//! # Durability
//! Nothing here flushes on its own. Writers call [`Store::written_seq`] after an append and
//! acknowledge only once [`Store::flush`] has returned a sequence at least as high: one flush
//! covers every append made before it started (group commit).

pub mod keys;
pub mod log;
pub mod store;

pub use log::{AbortedTxn, Entry, EntryKind, EntrySummary, HardState, PartitionLog, PartitionMeta, ProducerEntry, Recovered};
pub use store::Store;

use thiserror::Error;

/// Storage failures. The Kafka and gRPC edges map these to protocol errors in one place.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt entry at {what}: {why}")]
    Corrupt { what: String, why: String },
    #[error("data directory was written by storage format {found}, this build reads {expected} (there is no converter: point this build at an empty data directory, or run the build that wrote it)")]
    FormatVersion { found: u32, expected: u32 },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, StorageError>;
