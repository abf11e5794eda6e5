//! Free-space guard: a node refuses new writes while its data folder's file system is nearly
//! full, instead of letting sled hit ENOSPC mid-write (which fails every flush, restarts the
//! partitions over and over, and leaves the store unusable until the node restarts).
//!
//! Refused writes get KAFKA_STORAGE_ERROR, which Kafka clients retry (after a metadata
//! refresh) until their delivery timeout; nothing is acknowledged that was not written.
//! A follower drops the leader's appends (and snapshots) while its disk is low, as if they were
//! lost on the network: it falls behind instead of failing its writes, Raft resends once space
//! is back, and the leader commits with the other replicas meanwhile (or, with a majority low,
//! refuses writes by timing out). Heartbeats and votes go on, so a full follower does not start
//! elections. The metadata log (creating and deleting topics), retention and DeleteRecords go
//! on, so space can be freed.

use super::Node;
use crate::service::RunFn;
use crate::partition::PartitionShared;
use crate::PartitionError;
use backwaters_proto::kafka::batch::BatchHeader;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the free space is read.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The latest free-space reading of a node's data folder and the floor below which writes are
/// refused (0: never refuse).
pub struct DiskGuard {
    free: AtomicU64,
    min: u64,
}

impl DiskGuard {
    pub fn new(min: u64) -> DiskGuard {
        DiskGuard { free: AtomicU64::new(u64::MAX), min }
    }

    /// Records a reading; returns whether writes are now refused.
    pub fn record(&self, free: u64) -> bool {
        self.free.store(free, Ordering::Relaxed);
        self.low()
    }

    /// Whether the last reading was below the floor: writes are refused and this node's
    /// partition leaders hand leadership to a caught-up replica.
    pub fn low(&self) -> bool {
        self.free.load(Ordering::Relaxed) < self.min
    }

    /// Whether a follower takes this Raft message now: while the disk is low it drops what
    /// would be written (appends with entries, snapshots).
    pub fn admits_raft(&self, m: &raft::prelude::Message) -> bool {
        use raft::prelude::MessageType;
        let writes = (m.get_msg_type() == MessageType::MsgAppend && !m.entries.is_empty()) || m.get_msg_type() == MessageType::MsgSnapshot;
        !writes || !self.low()
    }

    /// Refuses a write while the free space is below the floor.
    pub fn check(&self, dir: &std::path::Path) -> Result<(), PartitionError> {
        if !self.low() {
            return Ok(());
        }
        Err(PartitionError::DiskFull { free_mib: self.free.load(Ordering::Relaxed) >> 20, min_mib: self.min >> 20, dir: dir.display().to_string() })
    }
}

impl Node {
    /// Whether a Raft message for `shared`'s replica is delivered: see [`DiskGuard::admits_raft`].
    /// The metadata log is never held back.
    pub(super) fn admits_raft(&self, shared: &PartitionShared, m: &raft::prelude::Message) -> bool {
        if self.inner.disk.admits_raft(m) || shared.topic == crate::controller::METADATA_TOPIC {
            return true;
        }
        self.inner.metrics.raft_appends_refused_disk.inc();
        false
    }

    /// Refuses a write to `shared` while the disk is below the floor. The metadata log stays
    /// writable: deleting a topic is how space comes back.
    pub(super) fn check_disk(&self, shared: &PartitionShared, batches: &[(BatchHeader, Bytes)]) -> Result<(), PartitionError> {
        match self.inner.disk.check(&self.inner.settings.data_dir) {
            Err(_) if shared.topic == crate::controller::METADATA_TOPIC => Ok(()),
            Err(e) => {
                // Noted like any retriable refusal: a later batch of the same producer may get
                // in first once space is back.
                shared.note_refused(batches, self.now_ms());
                Err(e)
            }
            Ok(()) => Ok(()),
        }
    }

    /// Reads the free space of the data folder every second (a `3-disk` service).
    pub(super) async fn start_disk_watch(&self) -> Result<(), String> {
        // A first reading before the node serves anything (statvfs is quick).
        if let Ok(Some(free)) = self.inner.store.available_bytes() {
            self.inner.note_free_space(free);
        }
        let node = Arc::downgrade(&self.inner);
        let run: RunFn = Arc::new(move |mut stop| {
            let node = node.clone();
            Box::pin(async move {
                let mut tick = tokio::time::interval(CHECK_EVERY);
                let mut was_low = false;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => return Ok(()),
                    }
                    let Some(inner) = node.upgrade() else { return Ok(()) };
                    let store = inner.store.clone();
                    let reading = tokio::task::spawn_blocking(move || store.available_bytes()).await.map_err(|e| e.to_string())?;
                    let free = match reading {
                        Ok(Some(free)) => free,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the free space of the data folder");
                            continue;
                        }
                    };
                    let low = inner.note_free_space(free);
                    if low && !was_low {
                        tracing::error!(free_mib = free >> 20, min_mib = inner.settings.min_free_disk_bytes >> 20, dir = %inner.settings.data_dir.display(), "disk nearly full: refusing writes (as leader: KAFKA_STORAGE_ERROR; as follower: the leader's appends are dropped and the replica falls behind) until space is freed (retention, DeleteRecords, deleting topics) or limits.min_free_disk_bytes is lowered");
                    } else if was_low && !low {
                        tracing::info!(free_mib = free >> 20, "disk space back above the floor: accepting writes again");
                    }
                    was_low = low;
                }
            })
        });
        self.start_service("3-disk", run, false).await
    }
}

impl super::Inner {
    /// Records a free-space reading (guard and gauge); returns whether writes are now refused.
    fn note_free_space(&self, free: u64) -> bool {
        self.metrics.disk_free_bytes.store(free, Ordering::Relaxed);
        self.disk.record(free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_below_the_floor_and_accepts_again_above_it() {
        let g = DiskGuard::new(512 << 20);
        let dir = std::path::Path::new("/data");
        assert!(g.check(dir).is_ok(), "no reading yet: writes go on");
        assert!(g.record(100 << 20));
        match g.check(dir) {
            Err(PartitionError::DiskFull { free_mib, min_mib, dir }) => assert_eq!((free_mib, min_mib, dir.as_str()), (100, 512, "/data")),
            other => panic!("expected DiskFull, got {other:?}"),
        }
        assert!(!g.record(2 << 30));
        assert!(g.check(dir).is_ok());
        let never = DiskGuard::new(0);
        assert!(!never.record(0), "a floor of 0 never refuses");
    }

    #[test]
    fn a_low_follower_drops_only_what_it_would_write() {
        use raft::prelude::{Entry, Message, MessageType};
        let msg = |t: MessageType, entries: usize| {
            let mut m = Message::default();
            m.set_msg_type(t);
            m.entries = vec![Entry::default(); entries].into();
            m
        };
        let g = DiskGuard::new(512 << 20);
        assert!(g.admits_raft(&msg(MessageType::MsgAppend, 3)), "no reading yet");
        g.record(1 << 20);
        assert!(!g.admits_raft(&msg(MessageType::MsgAppend, 3)));
        assert!(!g.admits_raft(&msg(MessageType::MsgSnapshot, 0)));
        for kept in [MessageType::MsgAppend, MessageType::MsgHeartbeat, MessageType::MsgRequestVote, MessageType::MsgAppendResponse] {
            let n = if kept == MessageType::MsgAppend { 0 } else { 1 };
            assert!(g.admits_raft(&msg(kept, n)), "{kept:?} changes nothing on disk");
        }
        g.record(1 << 30);
        assert!(g.admits_raft(&msg(MessageType::MsgAppend, 3)), "space back: appends go in again");
    }
}
