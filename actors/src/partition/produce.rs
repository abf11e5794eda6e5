//! The leader's produce path: plan the append against the producers' state (answering the
//! retries of written batches with their offsets, and gaps behind a refused batch
//! retriably: see [`super::refusals`]), propose, and answer each waiter once its batches are
//! durable (acks=1: on the leader's disk; acks=all: committed) or leadership is gone.

use super::core::AppendPlan;
use super::{PartitionState, ProduceAck, Waiter, MAX_PENDING_PRODUCES};
use crate::PartitionError;
use backwaters_proto::kafka::batch::BatchHeader;
use bytes::Bytes;
use ractor::{ActorProcessingErr, RpcReplyPort};
use std::time::Instant;

impl PartitionState {
    pub(super) fn produce(&mut self, batches: Vec<(BatchHeader, Bytes)>, acks: i16, reply: RpcReplyPort<Result<ProduceAck, PartitionError>>) -> Result<(), ActorProcessingErr> {
        let now = self.clock.now_ms();
        if !self.is_leader() || self.raft.raft.lead_transferee.is_some() {
            if self.is_leader() {
                tracing::debug!(topic = %self.shared.topic, partition = self.shared.partition, "produce refused while leadership is handed over");
            }
            self.shared.note_refused(&batches, now);
            let _ = reply.send(Err(PartitionError::NotLeader { leader: self.shared.leader().filter(|l| *l != self.node_id) }));
            return Ok(());
        }
        if self.waiters.len() >= MAX_PENDING_PRODUCES {
            self.shared.note_refused(&batches, now);
            let _ = reply.send(Err(PartitionError::Busy));
            return Ok(());
        }
        let started = Instant::now();
        let plan = match self.core.prepare_append(&batches) {
            Ok(p) => p,
            Err(PartitionError::OutOfOrderSequence { expected, got })
                if got > expected && {
                    let (pid, epoch) = (batches[0].0.producer_id, batches[0].0.producer_epoch);
                    let mut r = self.shared.refusals.lock().expect("refusals");
                    r.explains_gap(pid, epoch, expected, now) || r.in_gap_grace(pid, epoch, expected, now)
                } =>
            {
                // The missing batch was refused retriably (here or by the previous leader):
                // have this one retried after it (see `refusals`).
                tracing::info!(topic = %self.shared.topic, partition = self.shared.partition, producer_id = batches[0].0.producer_id, expected, got, "batch behind a missing one answered retriably");
                let _ = reply.send(Err(PartitionError::NotLeader { leader: None }));
                return Ok(());
            }
            Err(e) => {
                if matches!(e, PartitionError::OutOfOrderSequence { .. } | PartitionError::InvalidProducerEpoch) {
                    let h = &batches[0].0;
                    tracing::warn!(topic = %self.shared.topic, partition = self.shared.partition, producer_id = h.producer_id, epoch = h.producer_epoch, base_sequence = h.base_sequence, last_sequence = h.last_sequence(), state = ?self.core.producer(h.producer_id), error = %e, "idempotent batch refused");
                }
                let _ = reply.send(Err(e));
                return Ok(());
            }
        };
        let (base_offset, next_offset) = match plan {
            AppendPlan::Duplicate { base_offset, next_offset } => {
                self.metrics.produce_duplicates.inc();
                let h = &batches[0].0;
                tracing::info!(topic = %self.shared.topic, partition = self.shared.partition, producer_id = h.producer_id, base_sequence = h.base_sequence, base_offset, "retried batch answered with its original offset");
                (base_offset, next_offset)
            }
            AppendPlan::Write { batches: written, base_offset, next_offset } => {
                let h = &batches[0].0;
                if h.is_idempotent() {
                    self.shared.refusals.lock().expect("refusals").written(h.producer_id, h.producer_epoch, h.last_sequence());
                }
                let batches = written;
                let bytes: u64 = batches.iter().map(|b| b.len() as u64).sum();
                for b in batches {
                    // Refused only while leadership moves (checked above): the actor restarts
                    // from disk and the client retries.
                    self.raft.propose(vec![], b.to_vec())?;
                }
                // Client traffic only: the metadata log's own writes are not produce.
                if self.group != crate::controller::METADATA_UID {
                    self.metrics.produce_batches.add(1);
                    self.metrics.produce_bytes.add(bytes);
                }
                // The proposals enter the log (and the core) now, before any other request
                // is planned against the tail.
                self.turn()?;
                (base_offset, next_offset)
            }
        };
        let ack = ProduceAck { base_offset, log_start_offset: self.core.log_start_offset() };
        let local = acks == 1;
        let done = if local { next_offset <= self.local_durable } else { next_offset <= self.core.high_watermark() };
        if acks == 0 || done {
            let _ = reply.send(Ok(ack));
        } else {
            self.waiters.push(Waiter { next_offset, term: self.raft.raft.term, local, started, reply, ack });
        }
        Ok(())
    }

    /// Ends `producer_id`'s open transaction here with a marker (see
    /// [`super::PartitionMsg::WriteMarker`]); answers once the log's tail is committed, so a
    /// marker the answer vouches for can never be lost to a leader change.
    pub(super) fn write_marker(&mut self, producer_id: i64, epoch: i16, commit: bool, coordinator_epoch: i32, reply: RpcReplyPort<Result<ProduceAck, PartitionError>>) -> Result<(), ActorProcessingErr> {
        if !self.is_leader() || self.raft.raft.lead_transferee.is_some() {
            let _ = reply.send(Err(PartitionError::NotLeader { leader: self.shared.leader().filter(|l| *l != self.node_id) }));
            return Ok(());
        }
        let started = Instant::now();
        match self.core.prepare_marker(producer_id, epoch, commit, coordinator_epoch, self.clock.now_ms()) {
            Err(e) => {
                let _ = reply.send(Err(e));
                return Ok(());
            }
            Ok(Some(marker)) => {
                tracing::debug!(topic = %self.shared.topic, partition = self.shared.partition, producer_id, epoch, commit, offset = self.core.next_offset(), "transaction marker");
                self.raft.propose(vec![], marker.to_vec())?;
                self.metrics.txn_markers.inc();
                self.turn()?;
            }
            Ok(None) => {}
        }
        let next_offset = self.core.next_offset();
        let ack = ProduceAck { base_offset: next_offset, log_start_offset: self.core.log_start_offset() };
        if next_offset <= self.core.high_watermark() {
            let _ = reply.send(Ok(ack));
        } else {
            self.waiters.push(Waiter { next_offset, term: self.raft.raft.term, local: false, started, reply, ack });
        }
        Ok(())
    }

    /// Waiters never outlive the leadership that took them: their entries may be replaced.
    pub(super) fn check_leadership(&mut self) {
        let term = self.raft.raft.term;
        if self.is_leader() && self.waiters.iter().all(|w| w.term == term) {
            return;
        }
        let leader = self.shared.leader().filter(|l| *l != self.node_id);
        let mut i = 0;
        while i < self.waiters.len() {
            if !self.is_leader() || self.waiters[i].term != term {
                let w = self.waiters.swap_remove(i);
                let _ = w.reply.send(Err(PartitionError::NotLeader { leader }));
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn release(&mut self) {
        let (hw, local) = (self.core.high_watermark(), self.local_durable);
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i];
            if w.next_offset <= if w.local { local } else { hw } {
                let w = self.waiters.swap_remove(i);
                self.metrics.produce_latency_us.record(w.started.elapsed().as_micros() as u64);
                let _ = w.reply.send(Ok(w.ack));
            } else {
                i += 1;
            }
        }
    }
}
