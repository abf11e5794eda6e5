//! Offsets committed inside a transaction (TxnOffsetCommit), as Kafka's group coordinator
//! keeps them: written at once to the coordinator's partition as a transactional batch of the
//! producer (no sequence), held aside as pending, and made the group's committed offsets only
//! when the transaction's commit marker is written to that partition (dropped on an abort).
//! Replaying the partition does the same from the batches and markers in it, so a restarted
//! coordinator agrees with the one before.

use super::*;
use backwaters_proto::kafka::batch::set_transactional;

/// Offsets a transaction has committed but not yet closed: (group, (topic, partition), value).
pub(super) type Pending = Vec<(String, (String, i32), OffsetValue)>;

impl CoordinatorState {
    /// TxnOffsetCommit: validates like OffsetCommit (a producer outside any group passes no
    /// member and generation -1), writes the offsets in the transaction, and holds them.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn txn_commit(&mut self, now: i64, group: &str, producer_id: i64, epoch: i16, member_id: &str, instance_id: Option<&str>, generation: i32, offsets: Vec<CommitOffset>) -> PartitionResults {
        let (results, records, accepted) = self.plan_commit(now, group, member_id, instance_id, generation, offsets)?;
        if let Err(e) = self.write_in_txn(records, producer_id, epoch).await {
            return Ok(results.into_iter().map(|r| r.and(Err(e))).collect());
        }
        self.pending.entry(producer_id).or_default().extend(accepted.into_iter().map(|(k, v)| (group.to_string(), k, v)));
        Ok(results)
    }

    /// One transactional batch of `producer_id`/`epoch` (a fenced epoch is refused by the
    /// partition, which the producer learns as INVALID_PRODUCER_EPOCH).
    async fn write_in_txn(&self, records: Vec<(GroupRecordKey, Option<Bytes>)>, producer_id: i64, epoch: i16) -> Result<(), GroupError> {
        if records.is_empty() {
            return Ok(());
        }
        let node = self.node.upgrade().ok_or(GroupError::CoordinatorNotAvailable)?;
        let recs: Vec<NewRecord> = records.iter().map(|(k, v)| NewRecord { key: Some(rec::encode_key(k)), value: v.clone(), headers: vec![], timestamp_ms: self.clock.now_ms() }).collect();
        let b = encode_batch(&recs).map_err(|_| GroupError::CoordinatorNotAvailable)?;
        let b = set_transactional(&b, producer_id, epoch);
        let h = parse_batch(&b).map_err(|_| GroupError::CoordinatorNotAvailable)?;
        node.produce(&self.shared, vec![(h, b)], -1, Duration::from_secs(15)).await.map_err(|e| {
            tracing::warn!(partition = self.shared.partition, producer_id, error = %e, "writing transactional offsets failed");
            match e {
                crate::PartitionError::InvalidProducerEpoch => GroupError::ProducerFenced,
                _ => GroupError::CoordinatorNotAvailable,
            }
        })?;
        Ok(())
    }

    /// The transaction of `producer_id` ended here: its pending offsets become committed
    /// (commit) or are dropped (abort).
    pub(super) fn txn_ended(&mut self, producer_id: i64, commit: bool, now: i64) {
        let Some(pending) = self.pending.remove(&producer_id) else { return };
        if !commit {
            tracing::debug!(producer_id, offsets = pending.len(), "transactional offsets dropped (aborted)");
            return;
        }
        let limits = self.settings.limits;
        self.metrics.group_offset_commits.add(pending.len() as u64);
        for (group, key, v) in pending {
            self.groups.entry(group.clone()).or_insert_with(|| Group::new(&group, limits, now)).offsets.insert(key, v);
        }
    }

    /// Replay of a transactional batch's offset record: pending until its marker.
    pub(super) fn replay_pending(&mut self, producer_id: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<(), String> {
        if let (GroupRecordKey::Offset { group, topic, partition }, Some(v)) = (rec::decode_key(key.ok_or("record without a key")?)?, value) {
            let v = rec::decode_offset_value(v)?;
            self.pending.entry(producer_id).or_default().push((group, (topic, partition), v));
        }
        Ok(())
    }

    /// Partitions of `group` with offsets in an open transaction (OffsetFetch with
    /// require_stable answers UNSTABLE_OFFSET_COMMIT for them; the client retries).
    pub(super) fn unstable(&self, group: &str) -> Vec<(String, i32)> {
        self.pending.values().flatten().filter(|(g, _, _)| g == group).map(|(_, k, _)| k.clone()).collect()
    }
}
