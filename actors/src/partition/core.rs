//! The partition as a pure state machine: no sled, no clock, no sockets.
//!
//! The actor shell feeds it produce requests (with the time as an argument) and durability
//! notices; it answers with what to write and when a request may be acknowledged. Offsets only
//! grow, the high watermark never passes the log end, and a retried idempotent batch maps to
//! the offsets it got the first time.

use crate::topic::TopicConfig;
use crate::PartitionError;
use backwaters_proto::kafka::batch::{with_base_offset, BatchHeader};
use backwaters_storage::log::PartitionMeta;
use backwaters_storage::{Entry, EntryKind, ProducerEntry, Recovered};
use bytes::Bytes;
use std::collections::HashMap;

/// A producer that has not written for this long is forgotten, as Kafka's
/// `producer.id.expiration.ms` (1 day): its next batch must start a new sequence.
pub const PRODUCER_EXPIRATION_MS: i64 = 24 * 3600 * 1000;

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5,
/// the most a client may have in flight with idempotence on).
pub const PRODUCER_BATCHES_KEPT: usize = 5;

/// The result of preparing an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendPlan {
    /// Write these entries (and producer states) and acknowledge once `next_offset` is durable.
    Write { entries: Vec<Entry>, producers: Vec<ProducerEntry>, meta: PartitionMeta, base_offset: i64, next_offset: i64 },
    /// A retry of a batch already in the log: acknowledge with its original offset once
    /// `next_offset` is durable; nothing is written.
    Duplicate { base_offset: i64, next_offset: i64 },
}

#[derive(Debug, Clone)]
pub struct PartitionCore {
    pub term: u64,
    next_index: u64,
    first_index: u64,
    next_offset: i64,
    high_watermark: i64,
    meta: PartitionMeta,
    producers: HashMap<i64, ProducerEntry>,
    pub config: TopicConfig,
}

impl PartitionCore {
    /// Rebuilds the state from what storage recovered. Everything recovered was flushed or is
    /// a clean prefix of what was, so the whole recovered log counts as durable.
    pub fn recover(rec: Recovered, config: TopicConfig) -> PartitionCore {
        let producers = rec.producers.into_iter().map(|p| (p.producer_id, p)).collect();
        let core = PartitionCore {
            term: rec.last_term.max(1),
            next_index: rec.last_index + 1,
            first_index: rec.first_index,
            next_offset: rec.next_offset.max(rec.meta.log_start_offset),
            high_watermark: rec.next_offset.max(rec.meta.log_start_offset),
            meta: rec.meta,
            producers,
            config,
        };
        core.check();
        core
    }

    fn check(&self) {
        assert!(self.meta.log_start_offset <= self.high_watermark, "log start past high watermark");
        assert!(self.high_watermark <= self.next_offset, "high watermark past log end");
        assert!(self.first_index <= self.next_index, "first index past next index");
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    pub fn log_start_offset(&self) -> i64 {
        self.meta.log_start_offset
    }
    pub fn bytes(&self) -> u64 {
        self.meta.bytes
    }
    /// Idempotent producers with remembered state.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Checks batches from one produce request and plans their append.
    /// `batches` are CRC-checked headers and bytes from the wire.
    pub fn prepare_append(&mut self, batches: &[(BatchHeader, Bytes)], now_ms: i64) -> Result<AppendPlan, PartitionError> {
        assert!(!batches.is_empty(), "produce of no batch");
        for (h, b) in batches {
            if b.len() > self.config.max_message_bytes as usize {
                return Err(PartitionError::MessageTooLarge { size: b.len(), max: self.config.max_message_bytes });
            }
            if h.is_transactional() || h.is_control() {
                return Err(PartitionError::TransactionsUnsupported);
            }
        }
        if batches.len() > 1 && batches.iter().any(|(h, _)| h.is_idempotent()) {
            return Err(PartitionError::InvalidRecord("an idempotent produce carries exactly one batch per partition"));
        }
        let (first, _) = &batches[0];
        let mut producer_update = None;
        if first.is_idempotent() {
            match self.check_sequence(first)? {
                SeqCheck::Duplicate { base_offset, next_offset } => {
                    return Ok(AppendPlan::Duplicate { base_offset, next_offset });
                }
                SeqCheck::Accept => {}
            }
            producer_update = Some(first);
        }
        let base_offset = self.next_offset;
        let mut entries = Vec::with_capacity(batches.len());
        let mut meta = self.meta;
        let mut next_offset = self.next_offset;
        let mut next_index = self.next_index;
        for (h, b) in batches {
            let entry = Entry { index: next_index, term: self.term, base_offset: next_offset, kind: EntryKind::Batch, payload: with_base_offset(b, next_offset) };
            next_offset += h.last_offset_delta as i64 + 1;
            next_index += 1;
            meta.bytes += b.len() as u64;
            entries.push(entry);
        }
        let mut producers = Vec::new();
        if let Some(h) = producer_update {
            let p = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                batches: Vec::new(),
                last_timestamp_ms: now_ms,
            });
            if p.epoch != h.producer_epoch {
                p.epoch = h.producer_epoch;
                p.batches.clear();
            }
            p.batches.push((h.base_sequence, h.last_sequence(), base_offset));
            if p.batches.len() > PRODUCER_BATCHES_KEPT {
                p.batches.remove(0);
            }
            p.last_timestamp_ms = now_ms;
            producers.push(p.clone());
        }
        assert!(next_offset > self.next_offset, "offsets only grow");
        self.next_offset = next_offset;
        self.next_index = next_index;
        self.meta = meta;
        Ok(AppendPlan::Write { entries, producers, meta, base_offset, next_offset })
    }

    fn check_sequence(&self, h: &BatchHeader) -> Result<SeqCheck, PartitionError> {
        let Some(p) = self.producers.get(&h.producer_id) else {
            // A producer we have no state for must start at sequence 0.
            return if h.base_sequence == 0 { Ok(SeqCheck::Accept) } else { Err(PartitionError::OutOfOrderSequence { expected: 0, got: h.base_sequence }) };
        };
        if h.producer_epoch < p.epoch {
            return Err(PartitionError::InvalidProducerEpoch);
        }
        if h.producer_epoch > p.epoch {
            return if h.base_sequence == 0 { Ok(SeqCheck::Accept) } else { Err(PartitionError::OutOfOrderSequence { expected: 0, got: h.base_sequence }) };
        }
        for &(first, last, base) in &p.batches {
            if first == h.base_sequence && last == h.last_sequence() {
                return Ok(SeqCheck::Duplicate { base_offset: base, next_offset: base + h.last_offset_delta as i64 + 1 });
            }
        }
        let expected = match p.batches.last() {
            Some(&(_, last, _)) => if last == i32::MAX { 0 } else { last + 1 },
            None => 0,
        };
        if h.base_sequence != expected {
            return Err(PartitionError::OutOfOrderSequence { expected, got: h.base_sequence });
        }
        Ok(SeqCheck::Accept)
    }

    /// Everything before `next_offset` is durable: advance the high watermark.
    pub fn on_durable(&mut self, next_offset: i64) -> bool {
        let new_hw = next_offset.min(self.next_offset);
        let moved = new_hw > self.high_watermark;
        if moved {
            self.high_watermark = new_hw;
        }
        self.check();
        moved
    }

    /// Plans moving the log start to `offset` (DeleteRecords). Returns the new start, clamped
    /// to the high watermark as Kafka does (OFFSET_OUT_OF_RANGE beyond it).
    pub fn set_log_start(&mut self, offset: i64) -> Result<i64, PartitionError> {
        let target = if offset == -1 { self.high_watermark } else { offset };
        if target > self.high_watermark || target < 0 {
            return Err(PartitionError::OffsetOutOfRange { offset, start: self.meta.log_start_offset, end: self.high_watermark });
        }
        if target > self.meta.log_start_offset {
            self.meta.log_start_offset = target;
        }
        Ok(self.meta.log_start_offset)
    }

    /// Accounts for entries removed from the front of the log.
    pub fn on_prefix_removed(&mut self, up_to_index: u64, bytes: u64, next_offset_after: i64) -> PartitionMeta {
        assert!(up_to_index < self.next_index, "removed past the log end");
        self.first_index = up_to_index + 1;
        self.meta.bytes = self.meta.bytes.saturating_sub(bytes);
        self.meta.log_start_offset = self.meta.log_start_offset.max(next_offset_after);
        self.check();
        self.meta
    }

    pub fn meta(&self) -> PartitionMeta {
        self.meta
    }

    /// Forgets producers idle for longer than [`PRODUCER_EXPIRATION_MS`]; returns their ids
    /// so the caller removes their stored state too.
    pub fn expire_producers(&mut self, now_ms: i64) -> Vec<i64> {
        let expired: Vec<i64> = self.producers.values().filter(|p| now_ms - p.last_timestamp_ms > PRODUCER_EXPIRATION_MS).map(|p| p.producer_id).collect();
        for id in &expired {
            self.producers.remove(id);
        }
        expired
    }

    /// Whether the entry at the front of the log should go under the topic's retention.
    /// `entry_next_offset` is one past its last record; entries at or past the high
    /// watermark are never removed (nothing unacknowledged is deleted).
    /// `held_bytes` is what the partition holds before this entry goes.
    pub fn retention_due(&self, held_bytes: u64, entry_bytes: u64, entry_max_ts: i64, entry_next_offset: i64, now_ms: i64) -> bool {
        if entry_next_offset > self.high_watermark {
            return false;
        }
        if !self.config.cleanup_policy_delete() {
            return false;
        }
        if entry_next_offset <= self.meta.log_start_offset {
            return true; // DeleteRecords already moved the start past it
        }
        let by_time = self.config.retention_ms >= 0 && entry_max_ts >= 0 && now_ms - entry_max_ts > self.config.retention_ms;
        let by_size = self.config.retention_bytes >= 0 && held_bytes.saturating_sub(entry_bytes) >= self.config.retention_bytes as u64;
        by_time || by_size
    }
}

enum SeqCheck {
    Accept,
    Duplicate { base_offset: i64, next_offset: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use backwaters_proto::kafka::batch::{encode_batch, parse_batch, NewRecord};

    fn idem_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> (BatchHeader, Bytes) {
        let recs = vec![NewRecord { value: Some(Bytes::from_static(b"x")), ..Default::default() }; n];
        let mut b = encode_batch(&recs).unwrap().to_vec();
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let b = Bytes::from(b);
        (parse_batch(&b).unwrap(), b)
    }

    fn core() -> PartitionCore {
        PartitionCore::recover(Recovered { first_index: 1, ..Default::default() }, TopicConfig::default())
    }

    #[test]
    fn retry_is_stored_once_and_gap_is_refused() {
        let mut c = core();
        let b0 = idem_batch(7, 0, 0, 3);
        let AppendPlan::Write { base_offset, .. } = c.prepare_append(&[b0.clone()], 0).unwrap() else { panic!() };
        assert_eq!(base_offset, 0);
        assert_eq!(c.prepare_append(&[b0], 0).unwrap(), AppendPlan::Duplicate { base_offset: 0, next_offset: 3 });
        assert_eq!(c.next_offset(), 3);
        let gap = idem_batch(7, 0, 5, 1);
        assert_eq!(c.prepare_append(&[gap], 0), Err(PartitionError::OutOfOrderSequence { expected: 3, got: 5 }));
        let next = idem_batch(7, 0, 3, 2);
        assert!(matches!(c.prepare_append(&[next], 0).unwrap(), AppendPlan::Write { base_offset: 3, .. }));
        let fenced = idem_batch(7, -1, 5, 1);
        assert_eq!(c.prepare_append(&[fenced], 0), Err(PartitionError::InvalidProducerEpoch));
    }

    #[test]
    fn idle_producers_expire() {
        let mut c = core();
        c.prepare_append(&[idem_batch(9, 0, 0, 1)], 1_000).unwrap();
        assert!(c.expire_producers(1_000 + PRODUCER_EXPIRATION_MS).is_empty());
        assert_eq!(c.expire_producers(1_001 + PRODUCER_EXPIRATION_MS), vec![9]);
        // Forgotten: a new sequence from 0 is accepted again.
        assert!(matches!(c.prepare_append(&[idem_batch(9, 0, 0, 1)], 2_000).unwrap(), AppendPlan::Write { .. }));
    }

    #[test]
    fn high_watermark_never_passes_log_end() {
        let mut c = core();
        c.prepare_append(&[idem_batch(-1, -1, -1, 4)], 0).unwrap();
        assert!(c.on_durable(100));
        assert_eq!(c.high_watermark(), 4);
        assert_eq!(c.set_log_start(5), Err(PartitionError::OffsetOutOfRange { offset: 5, start: 0, end: 4 }));
        assert_eq!(c.set_log_start(2), Ok(2));
    }

    #[test]
    fn oversized_batch_is_refused() {
        let mut c = core();
        c.config.max_message_bytes = 10;
        assert!(matches!(c.prepare_append(&[idem_batch(-1, -1, -1, 1)], 0), Err(PartitionError::MessageTooLarge { .. })));
    }
}
