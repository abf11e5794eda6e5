//! Free-space guard: a node refuses new writes while its data folder's file system is nearly
//! full, instead of letting sled hit ENOSPC mid-write (which fails every flush, restarts the
//! partitions over and over, and leaves the store unusable until the node restarts).
//!
//! Refused writes get KAFKA_STORAGE_ERROR, which Kafka clients retry (after a metadata
//! refresh) until their delivery timeout; nothing is acknowledged that was not written.
//! Raft traffic from leaders, the metadata log (creating and deleting topics), retention and
//! DeleteRecords go on, so space can be freed.

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

    fn low(&self) -> bool {
        self.free.load(Ordering::Relaxed) < self.min
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
    /// Refuses a write to `shared` while the disk is below the floor. The metadata log stays
    /// writable: deleting a topic is how space comes back.
    pub(super) fn check_disk(&self, shared: &PartitionShared, batches: &[(BatchHeader, Bytes)]) -> Result<(), PartitionError> {
        match self.inner.disk.check(&self.inner.settings.data_dir) {
            Err(_) if shared.topic == crate::controller::METADATA_TOPIC => Ok(()),
            Err(e) => {
                // Noted like any retriable refusal: a later batch of the same producer may get
                // in first once space is back.
                shared.note_refused(batches, self.inner.clock.now_ms());
                Err(e)
            }
            Ok(()) => Ok(()),
        }
    }

    /// Reads the free space of the data folder every second (a `3-disk` service).
    pub(super) async fn start_disk_watch(&self) -> Result<(), String> {
        // A first reading before the node serves anything (statvfs is quick).
        if let Ok(Some(free)) = self.inner.store.available_bytes() {
            self.inner.metrics.disk_free_bytes.store(free, Ordering::Relaxed);
            self.inner.disk.record(free);
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
                    inner.metrics.disk_free_bytes.store(free, Ordering::Relaxed);
                    let low = inner.disk.record(free);
                    if low && !was_low {
                        tracing::error!(free_mib = free >> 20, min_mib = inner.settings.min_free_disk_bytes >> 20, dir = %inner.settings.data_dir.display(), "disk nearly full: refusing writes until space is freed (retention, DeleteRecords, deleting topics) or limits.min_free_disk_bytes is lowered");
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
}
