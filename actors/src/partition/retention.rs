//! The front of the log: DeleteRecords on the leader, the log start the metadata log records
//! (DeleteRecords replicated), and retention by time and size.

use super::PartitionState;
use crate::flusher::FlusherMsg;
use crate::PartitionError;
use backwaters_storage::EntryKind;
use ractor::{ActorProcessingErr, RpcReplyPort};
use std::sync::atomic::Ordering;

/// Entries removed per retention pass, so a big backlog does not stall the partition.
const RETENTION_BATCH_MAX: usize = 1_000;

impl PartitionState {
    /// DeleteRecords on the leader: moves the log start to `offset` and answers once that is
    /// durable. (Recording it for the other replicas is the node's job, after this answer.)
    pub(super) fn delete_records(&mut self, offset: i64, reply: RpcReplyPort<Result<i64, PartitionError>>) -> Result<(), ActorProcessingErr> {
        if !self.is_leader() {
            let _ = reply.send(Err(PartitionError::NotLeader { leader: self.shared.leader() }));
            return Ok(());
        }
        let r = self.core.set_log_start(offset);
        if r.is_ok() {
            let seq = self.shared.log.set_meta(&self.core.meta())?;
            self.shared.publish(&self.core);
            self.remove_expired()?;
            // Answer once the new log start is durable.
            if let Some(f) = (self.flusher)() {
                f.cast(FlusherMsg::Register { seq, done: Box::new(move |res| { let _ = reply.send(res.map_err(PartitionError::Storage).and(r)); }) })?;
                return Ok(());
            }
        }
        let _ = reply.send(r);
        Ok(())
    }

    /// Removes batches from the front that retention (or DeleteRecords) no longer keeps, and
    /// forgets idle producers.
    pub(super) fn remove_expired(&mut self) -> Result<(), ActorProcessingErr> {
        let now = self.clock.now_ms();
        let recorded = self.shared.recorded_log_start.load(Ordering::SeqCst).min(self.core.high_watermark());
        if recorded > self.core.log_start_offset() {
            tracing::info!(topic = %self.shared.topic, partition = self.shared.partition, log_start = recorded, "log start raised to the offset the metadata log records");
            self.core.set_log_start(recorded)?;
            self.shared.log.set_meta(&self.core.meta())?;
            self.shared.publish(&self.core);
        }
        let gone = self.core.expire_producers(now);
        if !gone.is_empty() {
            self.shared.log.remove_producers(&gone)?;
        }
        let mut last: Option<(u64, u64, i64)> = None;
        let mut bytes = 0u64;
        let mut n = 0;
        let mut index = self.store.first_index();
        let applied = self.raft.raft.raft_log.applied;
        while n < RETENTION_BATCH_MAX && index <= applied {
            let Some(e) = self.shared.log.entry(index)? else { break };
            if e.kind != EntryKind::Batch {
                // A leader's no-op holds nothing; it goes with the batches around it.
                last = Some((e.index, e.term, e.next_offset()));
                index += 1;
                n += 1;
                continue;
            }
            let size = e.payload.len() as u64;
            let held = self.core.bytes().saturating_sub(bytes);
            if !self.core.retention_due(held, size, e.max_timestamp(), e.next_offset(), now) {
                break;
            }
            bytes += size;
            last = Some((e.index, e.term, e.next_offset()));
            index += 1;
            n += 1;
        }
        if let Some((up_to, term, next)) = last {
            let meta = self.core.on_prefix_removed(up_to, term, bytes, next);
            self.shared.log.remove_prefix(up_to, &meta)?;
            self.store.note_prefix_removed(up_to, term, next);
            self.metrics.retention_removed_batches.add(n as u64);
            self.shared.publish(&self.core);
            tracing::debug!(topic = %self.shared.topic, partition = self.shared.partition, removed = n, log_start = meta.log_start_offset, "retention removed batches");
        }
        Ok(())
    }
}
