//! raft-rs `Storage` over a sled partition log: the Raft log *is* the partition log.
//!
//! Entries are stored by `backwaters_storage::PartitionLog` keyed by Raft index, with their
//! term beside them; a Raft entry's data is the stored payload (a Kafka batch whose base
//! offset is already set, or a controller command); an empty entry (a leader's no-op) is
//! stored as a no-op. The hard state and voters live in the same key space. What raft-rs
//! asks for most (first/last index, terms near the tail, the hard state) is cached here; the
//! owner keeps the cache right through the write methods, which also write to sled (the
//! owner flushes before it tells raft-rs anything is persisted).

use backwaters_storage::{Entry as LogEntry, EntryKind, HardState as LogHardState, PartitionLog, Recovered};
use bytes::Bytes;
use raft::prelude::{ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use std::sync::{Arc, RwLock};

/// What the entries of a group carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// Kafka record batches (partition groups).
    Batches,
    /// Opaque commands (the controller group).
    Commands,
}

#[derive(Debug, Clone, Default)]
struct Cache {
    hs: HardState,
    voters: Vec<u64>,
    first: u64,
    last: u64,
    last_term: u64,
    snap_index: u64,
    snap_term: u64,
    /// Offset after the snapshot point (what a follower installing it starts from).
    snap_next_offset: i64,
}

/// Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct LogStore {
    pub log: PartitionLog,
    payload: Payload,
    cache: Arc<RwLock<Cache>>,
}

fn store_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(std::io::Error::other(e.to_string()))))
}

impl LogStore {
    /// Wraps a recovered log. `voters` is used when the log never stored any (a new group).
    pub fn new(log: PartitionLog, rec: &Recovered, voters: &[u64], payload: Payload) -> Result<LogStore, String> {
        let stored = if rec.voters.is_empty() { voters.to_vec() } else { rec.voters.clone() };
        if rec.voters.is_empty() {
            log.set_voters(&stored).map_err(|e| e.to_string())?;
        }
        let mut hs = HardState::default();
        hs.term = rec.hard_state.term.max(rec.last_term);
        hs.vote = rec.hard_state.vote;
        // A commit index past the log (the entries were lost with an unflushed write) would
        // make raft-rs panic; the leader re-sends what is missing.
        hs.commit = rec.hard_state.commit.min(rec.last_index);
        if rec.first_index > 1 && rec.meta.snap_index == 0 {
            // Written by a version that lost the snapshot point: this replica cannot send a
            // snapshot until retention moves its start again.
            tracing::error!(first_index = rec.first_index, "the log starts after index 1 but no snapshot point is stored");
        }
        let cache = Cache {
            hs,
            voters: stored,
            first: rec.first_index,
            last: rec.last_index,
            last_term: rec.last_term,
            snap_index: rec.meta.snap_index,
            snap_term: rec.meta.snap_term,
            snap_next_offset: if rec.first_index > rec.last_index { rec.next_offset } else { -1 },
        };
        Ok(LogStore { log, payload, cache: Arc::new(RwLock::new(cache)) })
    }

    pub fn hard_state(&self) -> HardState {
        self.cache.read().expect("lock").hs.clone()
    }

    pub fn last_index(&self) -> u64 {
        self.cache.read().expect("lock").last
    }

    pub fn first_index(&self) -> u64 {
        self.cache.read().expect("lock").first
    }

    /// Turns a Raft entry into a log entry. `tail` is the Kafka offset after the previous
    /// entry (a no-op or command starts there).
    pub fn to_log_entry(&self, e: &Entry, tail: i64) -> Result<LogEntry, String> {
        if e.get_entry_type() != EntryType::EntryNormal {
            return Err(format!("entry {} is a configuration change; replica sets are fixed per partition", e.index));
        }
        let mut data = e.data.clone();
        let (kind, base_offset) = if data.is_empty() {
            (EntryKind::Noop, tail)
        } else {
            match self.payload {
                Payload::Commands => (EntryKind::Command, tail),
                Payload::Batches => {
                    if data.len() < backwaters_proto::kafka::batch::HEADER_BYTES {
                        return Err(format!("entry {} is too short for a record batch", e.index));
                    }
                    // The batch carries its entry's term as its partition leader epoch (Kafka's
                    // leader epoch is the Raft term): every replica stamps the same bytes.
                    let epoch = i32::try_from(e.term).unwrap_or(i32::MAX);
                    if data[12..16] != epoch.to_be_bytes() {
                        let mut stamped = data.to_vec();
                        backwaters_proto::kafka::batch::set_partition_leader_epoch(&mut stamped, epoch);
                        data = stamped.into();
                    }
                    (EntryKind::Batch, i64::from_be_bytes(data[0..8].try_into().expect("8 bytes")))
                }
            }
        };
        Ok(LogEntry { index: e.index, term: e.term, base_offset, kind, payload: data })
    }

    /// Notes entries written to the log (after a truncation of anything from their first index).
    pub fn note_appended(&self, first: u64, last: u64, last_term: u64) {
        let mut c = self.cache.write().expect("lock");
        assert!(first <= c.last + 1, "gap in the log: appending {first} after {}", c.last);
        assert!(first >= c.first, "appending {first} below the first index {}", c.first);
        c.last = last;
        c.last_term = last_term;
    }

    /// Writes the hard state.
    pub fn set_hard_state(&self, hs: &HardState) -> Result<u64, String> {
        let seq = self.log.set_hard_state(&to_log_hard_state(hs)).map_err(|e| e.to_string())?;
        self.note_hard_state(hs);
        Ok(seq)
    }

    /// Notes a hard state written by other means (with a ready's entries).
    pub fn note_hard_state(&self, hs: &HardState) {
        self.cache.write().expect("lock").hs = hs.clone();
    }

    /// Notes entries up to `index` (term `term`) removed from the front; `next_offset` is the
    /// Kafka offset after them.
    pub fn note_prefix_removed(&self, index: u64, term: u64, next_offset: i64) {
        let mut c = self.cache.write().expect("lock");
        c.first = index + 1;
        c.snap_index = index;
        c.snap_term = term;
        c.snap_next_offset = next_offset;
        if c.last < index {
            c.last = index;
            c.last_term = term;
        }
    }

    /// Notes an installed snapshot: the log is empty and continues after `index`.
    pub fn note_snapshot(&self, index: u64, term: u64, next_offset: i64) {
        let mut c = self.cache.write().expect("lock");
        c.first = index + 1;
        c.last = index;
        c.last_term = term;
        c.snap_index = index;
        c.snap_term = term;
        c.snap_next_offset = next_offset;
        if c.hs.commit < index {
            c.hs.commit = index;
        }
    }

    fn raft_entry(&self, e: LogEntry) -> Entry {
        let mut out = Entry::default();
        out.set_entry_type(EntryType::EntryNormal);
        out.term = e.term;
        out.index = e.index;
        out.data = if e.kind == EntryKind::Noop { Bytes::new() } else { e.payload };
        out
    }
}

/// The data of a snapshot: where the log continues (retention removed what came before) and
/// the idempotent producers' recent batches below that point, so a replica that starts from
/// the snapshot still recognises their retries and knows where their sequences stand (it
/// learns the batches after the point from the entries that follow).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotData {
    pub next_offset: i64,
    #[serde(default)]
    pub producers: Vec<backwaters_storage::ProducerEntry>,
}

impl SnapshotData {
    /// The snapshot point with the producer states `tail` (as of the log's end) cut down to
    /// the batches before it.
    pub fn at(next_offset: i64, tail: Vec<backwaters_storage::ProducerEntry>) -> SnapshotData {
        let producers = tail
            .into_iter()
            .filter_map(|mut p| {
                p.batches.retain(|b| b.2 < next_offset);
                // Transactions as they stood at the point: one opened after it is not open
                // yet; one a later marker closed may have been open (assumed so: if that
                // marker aborts, the producer's records from the point to it are skipped,
                // which are exactly that transaction's).
                if p.txn_first_offset.is_some_and(|f| f >= next_offset) {
                    p.txn_first_offset = None;
                }
                if p.txn_first_offset.is_none() && p.marker_offset.is_some_and(|m| m >= next_offset) {
                    p.txn_first_offset = Some(next_offset);
                }
                p.marker_offset = p.marker_offset.filter(|m| *m < next_offset);
                (!p.batches.is_empty() || p.txn_first_offset.is_some()).then_some(p)
            })
            .collect();
        SnapshotData { next_offset, producers }
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let c = self.cache.read().expect("lock");
        Ok(RaftState::new(c.hs.clone(), ConfState::from((c.voters.clone(), vec![]))))
    }

    fn entries(&self, low: u64, high: u64, max_size: impl Into<Option<u64>>, _ctx: GetEntriesContext) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let (first, last) = {
            let c = self.cache.read().expect("lock");
            (c.first, c.last)
        };
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(high <= last + 1, "entries up to {high} asked, the log ends at {last}");
        let mut out = Vec::new();
        let mut size = 0u64;
        for i in low..high {
            let Some(e) = self.log.entry(i).map_err(store_err)? else {
                // Removed by retention while we read: compacted.
                return Err(raft::Error::Store(StorageError::Compacted));
            };
            size += e.payload.len() as u64 + 24;
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(self.raft_entry(e));
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        {
            let c = self.cache.read().expect("lock");
            if idx == c.snap_index {
                return Ok(c.snap_term);
            }
            if idx == c.last {
                return Ok(c.last_term);
            }
            if idx < c.first {
                return Err(raft::Error::Store(StorageError::Compacted));
            }
            if idx > c.last {
                return Err(raft::Error::Store(StorageError::Unavailable));
            }
        }
        match self.log.term_of(idx).map_err(store_err)? {
            Some(t) => Ok(t),
            None => Err(raft::Error::Store(StorageError::Compacted)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.cache.read().expect("lock").first)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.cache.read().expect("lock").last)
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let c = self.cache.read().expect("lock");
        if c.snap_index == 0 {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let mut meta = SnapshotMetadata::default();
        meta.index = c.snap_index;
        meta.term = c.snap_term;
        meta.set_conf_state(ConfState::from((c.voters.clone(), vec![])));
        // Known once retention moved the start, or when the log was empty at recovery;
        // otherwise it is where the first entry kept starts.
        let next_offset = if c.snap_next_offset >= 0 {
            c.snap_next_offset
        } else {
            match self.log.entry(c.first) {
                Ok(Some(e)) => e.base_offset,
                _ => return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable)),
            }
        };
        let mut s = Snapshot::default();
        s.set_metadata(meta);
        let producers = match self.log.producers() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "producer states unreadable; snapshot postponed");
                return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
            }
        };
        s.data = Bytes::from(serde_json::to_vec(&SnapshotData::at(next_offset, producers)).expect("serializes"));
        Ok(s)
    }
}

/// Raft's hard state as the storage crate keeps it.
pub fn to_log_hard_state(hs: &HardState) -> LogHardState {
    LogHardState { term: hs.term, vote: hs.vote, commit: hs.commit }
}
