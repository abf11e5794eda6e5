//! Metadata checkpoints: the metadata log would otherwise grow for good (every transaction
//! adds a few records). When it holds many more records than the live state needs, the
//! controller writes the live state again as records (a checkpoint: topics, where their
//! leaders are, producer-id blocks, drains, liveness, SCRAM users, ACLs, transactions) and,
//! once every replica's log holds the whole checkpoint, deletes the records before it and
//! records the new log start in the metadata log itself, so every replica trims its copy
//! (KRaft's snapshots serve the same end).
//!
//! Applying a checkpoint is harmless to a node that already holds that state: every record
//! sets a value to what it already is. A node that has to start over (its disk lost, or new)
//! gets the log from the checkpoint on (Raft sends it a snapshot point there) and rebuilds
//! the whole state from it. No replica lacking the deleted records is left behind: the
//! prefix goes only after every replica's log reaches the checkpoint's end.

use super::*;

/// How often the controller considers a checkpoint.
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// Records per batch of a checkpoint (each batch stays far under the metadata partition's
/// largest message).
const RECORDS_PER_BATCH: usize = 200;

impl Node {
    /// Starts the service that checkpoints the metadata log while this node is the controller.
    pub(super) async fn start_checkpoints(&self) -> Result<(), String> {
        let node = self.downgrade();
        let run: RunFn = Arc::new(move |mut stop| {
            let node = node.clone();
            Box::pin(async move {
                let mut tick = tokio::time::interval(CHECK_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // A checkpoint written whose prefix is not deleted yet: (start, end).
                let mut written: Option<(i64, i64)> = None;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => return Ok(()),
                    }
                    let Some(n) = node.upgrade() else { return Ok(()) };
                    n.maybe_checkpoint(&mut written).await;
                }
            })
        });
        self.start_service("7-metadata-checkpoints", run, false).await
    }

    async fn maybe_checkpoint(&self, written: &mut Option<(i64, i64)>) {
        let threshold = self.inner.settings.metadata_checkpoint_records;
        let Some(meta) = self.inner.meta.get().cloned() else { return };
        if threshold == 0 || meta.leader() != Some(self.inner.settings.node_id) || !self.inner.caught_up.load(Ordering::SeqCst) {
            *written = None;
            return;
        }
        if written.is_none() {
            let held = meta.high_watermark() - meta.log_start_offset();
            if held < threshold as i64 || held < 4 * self.live_records().len() as i64 {
                return;
            }
            match self.write_checkpoint(&meta).await {
                Ok(span) => {
                    tracing::info!(records = span.1 - span.0, from = span.0, held, "metadata checkpoint written");
                    *written = Some(span);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metadata checkpoint not written; trying again later");
                    return;
                }
            }
        }
        let Some((start, end)) = *written else { return };
        // Every replica's log must hold the whole checkpoint before what precedes it goes.
        let Some(status) = self.partition_status(&meta).await else { return };
        let voters = self.inner.settings.members().len();
        if status.replica_ends.len() < voters || status.replica_ends.iter().any(|(_, e)| *e < end) {
            tracing::debug!(?status.replica_ends, end, "metadata checkpoint waits for every replica");
            return;
        }
        match self.delete_records_everywhere(&meta, start, Duration::from_secs(30)).await {
            Ok(low) => {
                tracing::info!(log_start = low, "metadata log before the checkpoint deleted");
                *written = None;
            }
            Err(e) => tracing::warn!(error = %e, "deleting the metadata log before the checkpoint failed; trying again later"),
        }
    }

    /// Every record needed to rebuild the applied metadata.
    fn live_records(&self) -> Vec<MetaRecord> {
        let mut out = Vec::new();
        for t in self.topics() {
            out.push(MetaRecord::Topic { record: t.record.clone() });
            for (uid, p) in t.record.partition_uids.iter().zip(&t.partitions) {
                if let Some(node) = p.leader() {
                    out.push(MetaRecord::Leader { uid: *uid, node, term: p.leader_term() });
                }
                if p.recorded_log_start() > 0 {
                    out.push(MetaRecord::LogStart { uid: *uid, offset: p.recorded_log_start() });
                }
                if p.tombstone_horizon() > 0 {
                    out.push(MetaRecord::TombstoneHorizon { uid: *uid, offset: p.tombstone_horizon() });
                }
            }
        }
        // Raises every node's idea of the highest block granted; grants nobody anything.
        out.push(MetaRecord::ProducerIds { node: -1, first: *self.inner.producer_block_end.lock().expect("lock"), count: 0 });
        out.extend(self.drained().into_iter().map(|node| MetaRecord::Drain { node, drained: true }));
        out.extend(self.liveness().into_iter().map(|(node, alive)| MetaRecord::Liveness { node, alive }));
        let scram = self.inner.scram.read().expect("lock").clone();
        out.extend(scram.into_iter().map(|((user, mechanism), c)| MetaRecord::Scram { user, mechanism: mechanism.name().to_string(), credential: Some(c) }));
        out.extend(self.acls().iter().map(|b| MetaRecord::Acl { binding: b.clone(), present: true }));
        out.extend(self.txn_states().into_iter().map(|state| MetaRecord::Txn { state }));
        for (entity, values) in self.quotas().iter() {
            out.extend(values.iter().map(|(key, v)| MetaRecord::Quota { entity: entity.clone(), key: key.clone(), value: Some(*v) }));
        }
        out
    }

    /// Writes the live state at the log's end, nothing else in between (the catalog lock
    /// keeps every other change out); returns the offsets it spans.
    async fn write_checkpoint(&self, meta: &Arc<PartitionShared>) -> Result<(i64, i64), String> {
        let _guard = self.inner.catalog.lock().await;
        let mut rx = self.inner.applied.subscribe();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|a| *a + 1 >= meta.high_watermark())).await.map_err(|_| "the controller is still catching up".to_string())?.map_err(|_| "node stopping".to_string())?;
        let records = self.live_records();
        let now = self.now_ms();
        let mut batches = Vec::new();
        for chunk in records.chunks(RECORDS_PER_BATCH) {
            let recs: Vec<backwaters_proto::kafka::batch::NewRecord> = chunk
                .iter()
                .map(|r| backwaters_proto::kafka::batch::NewRecord { value: Some(Bytes::from(serde_json::to_vec(r).expect("record serializes"))), timestamp_ms: now, ..Default::default() })
                .collect();
            let b = backwaters_proto::kafka::batch::encode_batch(&recs)?;
            let h = backwaters_proto::kafka::batch::parse_batch(&b).map_err(|e| e.to_string())?;
            batches.push((h, b));
        }
        let ack = self.produce(meta, batches, -1, Duration::from_secs(30)).await.map_err(|e| format!("writing the checkpoint: {e}"))?;
        let end = ack.base_offset + records.len() as i64;
        tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|a| *a + 1 >= end)).await.map_err(|_| "checkpoint not applied here".to_string())?.map_err(|_| "node stopping".to_string())?;
        Ok((ack.base_offset, end))
    }
}
