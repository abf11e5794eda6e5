//! The tombstone horizon of compacted partitions (see `partition/compaction.rs`).
//!
//! Each replica compacts its own log. Dropping a superseded value is always safe: the record
//! that supersedes it stays. Dropping a tombstone is not: a replica that was behind would
//! receive the leader's compacted log without the tombstone and keep, in its own older part,
//! the values the tombstone deleted (they would come back if it led). So a tombstone goes only
//! below the horizon every replica's log has reached. The leader knows how far each replica
//! is and records the horizon in the metadata log, as DeleteRecords records a log start, so
//! every replica drops the same tombstones.
//!
//! The horizon is recorded at most every half `delete.retention.ms` (at least each retention
//! check, at most hourly): tombstones live at least that long anyway, and a busy compacted
//! topic (`__consumer_offsets`) does not write the metadata log at every check.

use super::*;
use std::collections::HashMap;

/// Longest wait between two recordings of one partition's horizon.
const MAX_EVERY_MS: i64 = 3_600_000;

impl Node {
    /// Starts the service that records the tombstone horizons of the compacted partitions
    /// this node leads.
    pub(super) async fn start_tombstone_horizons(&self) -> Result<(), String> {
        let node = self.downgrade();
        let period = Duration::from_millis(self.inner.settings.retention_check_ms.max(10));
        let run: RunFn = Arc::new(move |mut stop| {
            let node = node.clone();
            Box::pin(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // When each partition's horizon was last recorded.
                let mut recorded: HashMap<u64, i64> = HashMap::new();
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => return Ok(()),
                    }
                    let Some(n) = node.upgrade() else { return Ok(()) };
                    n.record_tombstone_horizons(&mut recorded).await;
                }
            })
        });
        self.start_service("8-tombstone-horizons", run, false).await
    }

    async fn record_tombstone_horizons(&self, recorded: &mut HashMap<u64, i64>) {
        let me = self.inner.settings.node_id;
        let now = self.steady_ms();
        // Partitions deleted, or no longer compacted, are forgotten.
        let topics = self.topics();
        let compacted: std::collections::HashSet<u64> = topics.iter().filter(|t| t.config().cleanup_policy_compact()).flat_map(|t| t.record.partition_uids.iter().copied()).collect();
        recorded.retain(|uid, _| compacted.contains(uid));
        for t in topics {
            let config = t.config();
            if !config.cleanup_policy_compact() {
                continue;
            }
            let every = (config.delete_retention_ms / 2).clamp(0, MAX_EVERY_MS);
            for (uid, p) in t.record.partition_uids.iter().zip(&t.partitions) {
                if p.leader() != Some(me) || recorded.get(uid).is_some_and(|at| now - at < every) {
                    continue;
                }
                let Some(status) = self.partition_status(p).await else { continue };
                // Every replica must be known to reach it, not only a majority.
                if status.replica_ends.len() < p.replicas.len() {
                    continue;
                }
                let horizon = status.replica_ends.iter().map(|(_, end)| *end).min().unwrap_or(0).min(status.high_watermark);
                if horizon <= p.tombstone_horizon() {
                    continue;
                }
                match self.controller(ControllerRequest::TombstoneHorizon { uid: *uid, offset: horizon }).await {
                    Ok(()) => {
                        recorded.insert(*uid, now);
                    }
                    Err(e) => tracing::debug!(topic = %p.topic, partition = p.partition, error = %e, "tombstone horizon not recorded; trying again later"),
                }
            }
        }
    }
}
