//! The partition as a pure state machine: no sled, no Raft, no clock, no sockets.
//!
//! The partition's log is its Raft log. This core tracks what the log holds at its tail (the
//! next Kafka offset, idempotent-producer state as of the last entry), the high watermark
//! (the Kafka offset after the last committed entry) and the partition meta. The leader asks
//! it to plan an append (sequence checks, base offsets); every replica feeds it the entries
//! that enter its log (its own proposals and the leader's entries alike) and what Raft
//! committed. So producer state is a function of the log, the same on every replica, and a
//! retried batch after a failover maps to the offsets it got the first time.

use crate::topic::TopicConfig;
use crate::PartitionError;
use backwaters_proto::kafka::batch::{control_marker, encode_control_batch, parse_stored_batch, with_base_offset, BatchHeader};
use backwaters_storage::log::PartitionMeta;
use backwaters_storage::{AbortedTxn, Entry, EntryKind, ProducerEntry, Recovered};
use bytes::Bytes;
use std::collections::HashMap;

/// A producer that has not written for this long is forgotten, as Kafka's
/// `producer.id.expiration.ms` (1 day): its next batch must start a new sequence.
pub const PRODUCER_EXPIRATION_MS: i64 = 24 * 3600 * 1000;

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5,
/// the most a client may have in flight with idempotence on).
pub const PRODUCER_BATCHES_KEPT: usize = 5;

/// The result of planning an append on the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendPlan {
    /// Propose these batches (base offsets set) as consecutive entries; acknowledge once
    /// `next_offset` is committed.
    Write { batches: Vec<Bytes>, base_offset: i64, next_offset: i64 },
    /// A retry of a batch already in the log: acknowledge with its original offset once
    /// `next_offset` is committed; nothing is written.
    Duplicate { base_offset: i64, next_offset: i64 },
}

#[derive(Debug, Clone)]
pub struct PartitionCore {
    next_offset: i64,
    high_watermark: i64,
    meta: PartitionMeta,
    producers: HashMap<i64, ProducerEntry>,
    /// Transactions whose marker is in the log but not yet committed, as (first offset,
    /// marker offset): their records stay unstable until the marker is (Kafka's
    /// "unreplicated transactions"), since a new leader may not have it.
    closing: Vec<(i64, i64)>,
    pub config: TopicConfig,
}

impl PartitionCore {
    /// Rebuilds the state from what storage recovered; `high_watermark` is the offset after
    /// the last entry the stored commit index covers.
    pub fn recover(rec: Recovered, config: TopicConfig, high_watermark: i64) -> PartitionCore {
        let producers = rec.producers.into_iter().map(|p| (p.producer_id, p)).collect();
        let next_offset = rec.next_offset.max(rec.meta.log_start_offset);
        let core = PartitionCore {
            next_offset,
            high_watermark: high_watermark.clamp(rec.meta.log_start_offset, next_offset),
            meta: rec.meta,
            producers,
            closing: Vec::new(),
            config,
        };
        core.check();
        core
    }

    fn check(&self) {
        assert!(self.meta.log_start_offset <= self.high_watermark, "log start {} past high watermark {}", self.meta.log_start_offset, self.high_watermark);
        assert!(self.high_watermark <= self.next_offset, "high watermark {} past log end {}", self.high_watermark, self.next_offset);
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

    /// Every remembered idempotent producer, by id (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerEntry> {
        let mut all: Vec<ProducerEntry> = self.producers.values().cloned().collect();
        all.sort_by_key(|p| p.producer_id);
        all
    }

    /// The remembered state of one idempotent producer (for logs and tests).
    pub fn producer(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks batches from one produce request and plans their append at the log's tail.
    /// `batches` are CRC-checked headers and bytes from the wire. Changes nothing: the
    /// state moves when the proposed entries enter the log ([`PartitionCore::on_append`]).
    pub fn prepare_append(&self, batches: &[(BatchHeader, Bytes)]) -> Result<AppendPlan, PartitionError> {
        assert!(!batches.is_empty(), "produce of no batch");
        for (h, b) in batches {
            if b.len() > self.config.max_message_bytes as usize {
                return Err(PartitionError::MessageTooLarge { size: b.len(), max: self.config.max_message_bytes });
            }
            if h.is_control() {
                return Err(PartitionError::InvalidRecord("control batches are written by the transaction coordinator, not by producers"));
            }
            if h.is_transactional() && !h.is_idempotent() {
                return Err(PartitionError::InvalidRecord("a transactional batch needs a producer id"));
            }
            if self.config.cleanup_policy_compact() {
                // Compaction keeps the latest record of each key: a record without one could
                // never be compacted (Kafka refuses it the same way).
                let records = backwaters_proto::kafka::compact::batch_records(b).map_err(PartitionError::CorruptRecord)?;
                if records.records.iter().any(|r| r.key.is_none()) {
                    return Err(PartitionError::InvalidRecord("compacted topic cannot accept a record without a key"));
                }
            }
        }
        if batches.len() > 1 && batches.iter().any(|(h, _)| h.is_idempotent()) {
            return Err(PartitionError::InvalidRecord("an idempotent produce carries exactly one batch per partition"));
        }
        let (first, _) = &batches[0];
        if first.is_transactional() && first.base_sequence < 0 {
            // A group coordinator's write for a transaction (offsets): no sequence, but a
            // fenced epoch is still refused. Producers' batches never come here without a
            // sequence (the Kafka edge refuses them).
            if self.producers.get(&first.producer_id).is_some_and(|p| first.producer_epoch < p.epoch) {
                return Err(PartitionError::InvalidProducerEpoch);
            }
        } else if first.is_idempotent() {
            if let SeqCheck::Duplicate { base_offset, next_offset } = self.check_sequence(first)? {
                return Ok(AppendPlan::Duplicate { base_offset, next_offset });
            }
        }
        let base_offset = self.next_offset;
        let mut next_offset = base_offset;
        let mut out = Vec::with_capacity(batches.len());
        for (h, b) in batches {
            out.push(with_base_offset(b, next_offset));
            next_offset += h.last_offset_delta as i64 + 1;
        }
        assert!(next_offset > base_offset, "offsets only grow");
        Ok(AppendPlan::Write { batches: out, base_offset, next_offset })
    }

    /// Entries entered the log at its tail (after any truncation): moves the tail, the
    /// producer states and their open transactions. Returns the producer states that changed
    /// and the transactions the entries' abort markers closed (both stored with the entries).
    pub fn on_append(&mut self, entries: &[Entry], now_ms: i64) -> (Vec<ProducerEntry>, Vec<AbortedTxn>) {
        let mut changed: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut aborted = Vec::new();
        for e in entries {
            if e.kind != EntryKind::Batch {
                assert_eq!(e.base_offset, self.next_offset, "a no-op sits at the tail");
                continue;
            }
            assert_eq!(e.base_offset, self.next_offset, "entry {} starts at offset {}, the log ends at {}", e.index, e.base_offset, self.next_offset);
            self.next_offset = e.next_offset();
            self.meta.bytes += e.payload.len() as u64;
            let Ok(h) = parse_stored_batch(&e.payload) else { continue };
            if !h.is_idempotent() {
                continue;
            }
            let p = self.producers.entry(h.producer_id).or_insert_with(|| new_producer(&h, now_ms));
            if h.is_control() {
                // A marker closes the producer's open transaction here. One written when a
                // producer was fenced carries the bumped epoch: older batches are refused.
                if h.producer_epoch > p.epoch {
                    p.epoch = h.producer_epoch;
                    p.batches.clear();
                }
                if let Some(first) = p.txn_first_offset.take() {
                    self.closing.push((first, e.base_offset));
                    if control_marker(&e.payload) == Some(false) {
                        aborted.push(AbortedTxn { producer_id: h.producer_id, first_offset: first, last_offset: e.base_offset });
                    }
                }
                p.marker_offset = Some(e.base_offset);
            } else {
                if p.epoch != h.producer_epoch {
                    p.epoch = h.producer_epoch;
                    p.batches.clear();
                }
                // Batches without a sequence (a coordinator's) take no part in dedupe.
                if h.base_sequence >= 0 {
                    p.batches.push((h.base_sequence, h.last_sequence(), e.base_offset));
                    if p.batches.len() > PRODUCER_BATCHES_KEPT {
                        p.batches.remove(0);
                    }
                }
                if h.is_transactional() && p.txn_first_offset.is_none() {
                    p.txn_first_offset = Some(e.base_offset);
                }
            }
            p.last_timestamp_ms = now_ms;
            changed.insert(p.producer_id, p.clone());
        }
        self.check();
        (changed.into_values().collect(), aborted)
    }

    /// The last stable offset: records before it belong to no open transaction (what
    /// read_committed consumers may read up to). Never past the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        let open = self.producers.values().filter_map(|p| p.txn_first_offset);
        let closing = self.closing.iter().filter(|(_, marker)| *marker >= self.high_watermark).map(|(first, _)| *first);
        open.chain(closing).fold(self.high_watermark, i64::min).max(self.meta.log_start_offset)
    }

    /// Whether `producer_id` has an open transaction on this partition.
    pub fn in_transaction(&self, producer_id: i64) -> bool {
        self.producers.get(&producer_id).is_some_and(|p| p.txn_first_offset.is_some())
    }

    /// Plans the marker that ends `producer_id`'s open transaction here (commit or abort),
    /// at the log's tail; None when it has none open (never started here, or already
    /// marked). The coordinator's epoch is at least the transaction's.
    pub fn prepare_marker(&self, producer_id: i64, epoch: i16, commit: bool, coordinator_epoch: i32, now_ms: i64) -> Result<Option<Bytes>, PartitionError> {
        let Some(p) = self.producers.get(&producer_id).filter(|p| p.txn_first_offset.is_some()) else { return Ok(None) };
        if epoch < p.epoch {
            return Err(PartitionError::InvalidProducerEpoch);
        }
        Ok(Some(with_base_offset(&encode_control_batch(producer_id, epoch, commit, coordinator_epoch, now_ms), self.next_offset)))
    }

    /// The log lost its suffix from `from_offset` on (a follower's uncommitted entries that a
    /// new leader replaced). Returns the producers that remembered removed batches: their
    /// state must be rebuilt from the kept log ([`PartitionCore::rebuild_producers`]) —
    /// merely dropping the removed batches would forget the older ones that the window of
    /// [`PRODUCER_BATCHES_KEPT`] had pushed out, and with them where the sequence stands.
    pub fn on_truncate(&mut self, from_offset: i64, bytes_removed: u64) -> Vec<i64> {
        assert!(from_offset >= self.high_watermark, "truncating committed data: from {from_offset}, high watermark {}", self.high_watermark);
        self.next_offset = from_offset;
        self.meta.bytes = self.meta.bytes.saturating_sub(bytes_removed);
        self.closing.retain(|(_, marker)| *marker < from_offset);
        let removed = |o: Option<i64>| o.is_some_and(|o| o >= from_offset);
        let mut affected: Vec<i64> = self
            .producers
            .values()
            .filter(|p| p.batches.iter().any(|b| b.2 >= from_offset) || removed(p.txn_first_offset) || removed(p.marker_offset))
            .map(|p| p.producer_id)
            .collect();
        affected.sort_unstable();
        for id in &affected {
            self.producers.remove(id);
        }
        self.check();
        affected
    }

    /// Rebuilds the state of producers `ids` from the batches of the log, `older` walking it
    /// from the tail backwards as (header, base offset): their recent batches, epoch and open
    /// transaction. Stops reading once every producer has its window (or met an older epoch)
    /// and knows where its open transaction starts (a marker, a non-transactional batch or an
    /// older epoch before it); what `older` does not reach is forgotten (the caller bounds the
    /// walk). Returns the rebuilt states and the ids left with nothing.
    pub fn rebuild_producers(&mut self, ids: &[i64], older: impl Iterator<Item = (BatchHeader, i64)>, now_ms: i64) -> (Vec<ProducerEntry>, Vec<i64>) {
        struct Walk {
            p: ProducerEntry,
            window_done: bool,
            /// The transaction is known: closed by a marker, or open from `txn_first_offset`
            /// with nothing of it before.
            txn_done: bool,
        }
        let mut open: HashMap<i64, Walk> = HashMap::new();
        let mut done: HashMap<i64, ProducerEntry> = HashMap::new();
        let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
        for (h, base) in older {
            if done.len() == wanted.len() {
                break;
            }
            assert!(base < self.next_offset, "batch at {base} past the log end {}", self.next_offset);
            if !h.is_idempotent() || !wanted.contains(&h.producer_id) || done.contains_key(&h.producer_id) {
                continue;
            }
            let w = open.entry(h.producer_id).or_insert_with(|| Walk { p: new_producer(&h, now_ms), window_done: false, txn_done: false });
            let older_epoch = h.producer_epoch < w.p.epoch;
            if h.is_control() {
                // Newest first: the latest marker closes whatever came before it.
                w.p.marker_offset.get_or_insert(base);
                w.txn_done = true;
                if older_epoch {
                    w.window_done = true;
                }
            } else {
                if !w.txn_done {
                    if h.is_transactional() && !older_epoch {
                        w.p.txn_first_offset = Some(base);
                    } else {
                        w.txn_done = true;
                    }
                }
                if !w.window_done {
                    if older_epoch {
                        // Batches of an older epoch no longer count (a new epoch restarts sequences).
                        w.window_done = true;
                    } else if h.base_sequence >= 0 {
                        w.p.batches.insert(0, (h.base_sequence, h.last_sequence(), base));
                        w.window_done = w.p.batches.len() == PRODUCER_BATCHES_KEPT;
                    }
                }
            }
            if w.window_done && w.txn_done {
                let w = open.remove(&h.producer_id).expect("open");
                done.insert(w.p.producer_id, w.p);
            }
        }
        done.extend(open.into_iter().map(|(id, w)| (id, w.p)));
        let mut rebuilt: Vec<ProducerEntry> = done.into_values().collect();
        rebuilt.sort_by_key(|p| p.producer_id);
        for p in &rebuilt {
            self.producers.insert(p.producer_id, p.clone());
        }
        let gone = ids.iter().copied().filter(|id| !self.producers.contains_key(id)).collect();
        (rebuilt, gone)
    }

    /// The log was replaced by a snapshot point (Raft entry `index` of `term`): it continues
    /// at `next_offset`. The snapshot point stays in the meta stored with every later append:
    /// a leader restarted from disk must still know it, or it can never send a snapshot to a
    /// replica that needs one (raft-rs would wait forever for it to become available).
    /// `producers` are the producers' recent batches before the point (shipped with it).
    pub fn on_snapshot(&mut self, index: u64, term: u64, next_offset: i64, producers: &[ProducerEntry]) -> PartitionMeta {
        self.next_offset = next_offset;
        self.high_watermark = next_offset;
        self.meta.log_start_offset = next_offset;
        self.meta.snap_index = index;
        self.meta.snap_term = term;
        self.meta.bytes = 0;
        self.producers.clear();
        self.closing.clear();
        for p in producers {
            assert!(p.batches.iter().all(|b| b.2 < next_offset), "a snapshot at offset {next_offset} remembers a batch after it: {p:?}");
            self.producers.insert(p.producer_id, p.clone());
        }
        self.check();
        self.meta
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

    /// Everything before `next_offset` is committed: advance the high watermark.
    pub fn on_commit(&mut self, next_offset: i64) -> bool {
        let new_hw = next_offset.min(self.next_offset);
        let moved = new_hw > self.high_watermark;
        if moved {
            self.high_watermark = new_hw;
            self.closing.retain(|(_, marker)| *marker >= new_hw);
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

    /// Accounts for entries removed from the front of the log, up to entry `index` of `term`.
    pub fn on_prefix_removed(&mut self, index: u64, term: u64, bytes: u64, next_offset_after: i64) -> PartitionMeta {
        assert!(next_offset_after <= self.high_watermark, "removed past the high watermark");
        self.meta.snap_index = index;
        self.meta.snap_term = term;
        self.meta.bytes = self.meta.bytes.saturating_sub(bytes);
        self.meta.log_start_offset = self.meta.log_start_offset.max(next_offset_after);
        self.check();
        self.meta
    }

    /// Compaction replaced batches of `old_bytes` by `new_bytes` (a batch compressed again
    /// may even grow); with `cleaned_to`, its pass ended there.
    pub fn on_compacted(&mut self, old_bytes: u64, new_bytes: u64, cleaned_to: Option<i64>) -> PartitionMeta {
        self.meta.bytes = self.meta.bytes.saturating_sub(old_bytes) + new_bytes;
        if let Some(c) = cleaned_to {
            assert!(c <= self.high_watermark, "compacted past the high watermark");
            self.meta.cleaned_to = self.meta.cleaned_to.max(c);
        }
        self.meta
    }

    pub fn meta(&self) -> PartitionMeta {
        self.meta
    }

    /// Forgets producers idle for longer than [`PRODUCER_EXPIRATION_MS`]; returns their ids
    /// so the caller removes their stored state too.
    pub fn expire_producers(&mut self, now_ms: i64) -> Vec<i64> {
        // One with an open transaction stays until a marker closes it (the coordinator
        // aborts transactions long before this).
        let expired: Vec<i64> = self.producers.values().filter(|p| p.txn_first_offset.is_none() && now_ms - p.last_timestamp_ms > PRODUCER_EXPIRATION_MS).map(|p| p.producer_id).collect();
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

fn new_producer(h: &BatchHeader, now_ms: i64) -> ProducerEntry {
    ProducerEntry { producer_id: h.producer_id, epoch: h.producer_epoch, batches: Vec::new(), last_timestamp_ms: now_ms, txn_first_offset: None, marker_offset: None }
}

enum SeqCheck {
    Accept,
    Duplicate { base_offset: i64, next_offset: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use backwaters_proto::kafka::batch::{encode_batch, encode_control_batch, parse_batch, set_producer, NewRecord};

    fn idem_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> (BatchHeader, Bytes) {
        let recs = vec![NewRecord { value: Some(Bytes::from_static(b"x")), ..Default::default() }; n];
        let b = if pid < 0 { encode_batch(&recs).unwrap() } else { set_producer(&encode_batch(&recs).unwrap(), pid, epoch, seq) };
        (parse_batch(&b).unwrap(), b)
    }

    fn core() -> PartitionCore {
        PartitionCore::recover(Recovered { first_index: 1, ..Default::default() }, TopicConfig::default(), 0)
    }

    /// Plans an append and, as the leader's log would, takes the entries in.
    fn append(c: &mut PartitionCore, b: (BatchHeader, Bytes), now: i64) -> Result<AppendPlan, PartitionError> {
        let plan = c.prepare_append(&[b])?;
        if let AppendPlan::Write { batches, .. } = &plan {
            let entries: Vec<Entry> = batches
                .iter()
                .map(|p| Entry { index: 0, term: 1, base_offset: i64::from_be_bytes(p[0..8].try_into().unwrap()), kind: EntryKind::Batch, payload: p.clone() })
                .collect();
            c.on_append(&entries, now);
        }
        Ok(plan)
    }

    #[test]
    fn retry_is_stored_once_and_gap_is_refused() {
        let mut c = core();
        let b0 = idem_batch(7, 0, 0, 3);
        let AppendPlan::Write { base_offset, .. } = append(&mut c, b0.clone(), 0).unwrap() else { panic!() };
        assert_eq!(base_offset, 0);
        assert_eq!(append(&mut c, b0, 0).unwrap(), AppendPlan::Duplicate { base_offset: 0, next_offset: 3 });
        assert_eq!(c.next_offset(), 3);
        let gap = idem_batch(7, 0, 5, 1);
        assert_eq!(append(&mut c, gap, 0), Err(PartitionError::OutOfOrderSequence { expected: 3, got: 5 }));
        let next = idem_batch(7, 0, 3, 2);
        assert!(matches!(append(&mut c, next, 0).unwrap(), AppendPlan::Write { base_offset: 3, .. }));
        let fenced = idem_batch(7, -1, 5, 1);
        assert_eq!(append(&mut c, fenced, 0), Err(PartitionError::InvalidProducerEpoch));
    }

    /// The kept log as the partition actor walks it: (header, base offset), tail first.
    fn walk_back(log: &[(BatchHeader, Bytes)], below: i64) -> impl Iterator<Item = (BatchHeader, i64)> + '_ {
        log.iter().rev().map(|(h, b)| (h.clone(), i64::from_be_bytes(b[0..8].try_into().unwrap()))).filter(move |(_, base)| *base < below)
    }

    /// Appends and keeps what was written, as the log would.
    fn append_kept(c: &mut PartitionCore, log: &mut Vec<(BatchHeader, Bytes)>, b: (BatchHeader, Bytes)) {
        if let AppendPlan::Write { batches, .. } = append(c, b, 0).unwrap() {
            for w in batches {
                log.push((parse_batch(&w).unwrap(), w));
            }
        }
    }

    #[test]
    fn truncation_rebuilds_producers_from_the_kept_log() {
        let mut c = core();
        let mut log = Vec::new();
        append_kept(&mut c, &mut log, idem_batch(7, 0, 0, 3));
        append_kept(&mut c, &mut log, idem_batch(7, 0, 3, 2));
        append_kept(&mut c, &mut log, idem_batch(8, 0, 0, 1));
        c.on_commit(3);
        let affected = c.on_truncate(3, 0);
        assert_eq!(affected, vec![7, 8]);
        let (rebuilt, gone) = c.rebuild_producers(&affected, walk_back(&log, 3), 0);
        assert_eq!(gone, vec![8]);
        assert_eq!(rebuilt.len(), 1);
        assert_eq!(rebuilt[0].batches, vec![(0, 2, 0)]);
        assert_eq!(c.next_offset(), 3);
        // The retry of the removed batch is written again, at the new tail.
        assert!(matches!(append(&mut c, idem_batch(7, 0, 3, 2), 0).unwrap(), AppendPlan::Write { base_offset: 3, .. }));
    }

    /// A truncation that removed every remembered batch of a producer used to forget it,
    /// although older batches of it stayed in the log: its next batch was then refused as
    /// out of order (fatal for librdkafka at the head of the line, an epoch bump otherwise).
    #[test]
    fn truncation_of_a_whole_window_keeps_the_older_batches() {
        let mut c = core();
        let mut log = Vec::new();
        for i in 0..8 {
            append_kept(&mut c, &mut log, idem_batch(7, 0, i * 2, 2));
        }
        c.on_commit(6);
        // Offsets 6..16 (the last five batches) are replaced by the new leader's entries.
        let affected = c.on_truncate(6, 0);
        let (rebuilt, gone) = c.rebuild_producers(&affected, walk_back(&log, 6), 0);
        assert!(gone.is_empty());
        assert_eq!(rebuilt[0].batches, vec![(0, 1, 0), (2, 3, 2), (4, 5, 4)]);
        // A retry of the batch at offset 4 is still a duplicate; the removed one is next.
        assert_eq!(append(&mut c, idem_batch(7, 0, 4, 2), 0).unwrap(), AppendPlan::Duplicate { base_offset: 4, next_offset: 6 });
        assert!(matches!(append(&mut c, idem_batch(7, 0, 6, 2), 0).unwrap(), AppendPlan::Write { base_offset: 6, .. }));
    }

    #[test]
    fn rebuilding_stops_at_an_older_epoch() {
        let mut c = core();
        let mut log = Vec::new();
        append_kept(&mut c, &mut log, idem_batch(7, 0, 0, 2));
        append_kept(&mut c, &mut log, idem_batch(7, 1, 0, 2));
        append_kept(&mut c, &mut log, idem_batch(7, 1, 2, 2));
        c.on_commit(4);
        let affected = c.on_truncate(4, 0);
        let (rebuilt, _) = c.rebuild_producers(&affected, walk_back(&log, 4), 0);
        assert_eq!((rebuilt[0].epoch, rebuilt[0].batches.clone()), (1, vec![(0, 1, 2)]));
    }

    #[test]
    fn a_snapshot_point_stays_in_the_meta() {
        let mut c = core();
        let meta = c.on_snapshot(7, 3, 40, &[]);
        assert_eq!((meta.snap_index, meta.snap_term, meta.log_start_offset), (7, 3, 40));
        // What later appends store is the core's meta: it must still name the snapshot point.
        assert_eq!((c.meta().snap_index, c.meta().snap_term), (7, 3));
    }

    /// A replica that starts from a snapshot knows the producers' batches before it: a
    /// retry of one is answered with its offsets, the next sequence is accepted.
    #[test]
    fn producers_shipped_with_a_snapshot_are_remembered() {
        let mut leader = core();
        for i in 0..3 {
            append(&mut leader, idem_batch(7, 0, i * 2, 2), 0).unwrap();
        }
        let tail = vec![leader.producer(7).unwrap().clone()];
        // The snapshot point sits after offset 4: the batch at 4..6 is not part of it.
        let data = crate::replica::log_store::SnapshotData::at(4, tail);
        assert_eq!(data.producers[0].batches, vec![(0, 1, 0), (2, 3, 2)]);
        let mut follower = core();
        follower.on_snapshot(9, 2, 4, &data.producers);
        assert_eq!(append(&mut follower, idem_batch(7, 0, 2, 2), 0).unwrap(), AppendPlan::Duplicate { base_offset: 2, next_offset: 4 });
        assert!(matches!(append(&mut follower, idem_batch(7, 0, 4, 2), 0).unwrap(), AppendPlan::Write { base_offset: 4, .. }));
    }

    fn txn_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> (BatchHeader, Bytes) {
        let (_, b) = idem_batch(pid, epoch, seq, n);
        let mut m = bytes::BytesMut::from(&b[..]);
        let attrs = i16::from_be_bytes([m[21], m[22]]) | 0x10;
        m[21..23].copy_from_slice(&attrs.to_be_bytes());
        let crc = crc32c::crc32c(&m[21..]);
        m[17..21].copy_from_slice(&crc.to_be_bytes());
        let b = m.freeze();
        (parse_batch(&b).unwrap(), b)
    }

    /// Writes the marker the coordinator asks for, as the leader would.
    fn mark(c: &mut PartitionCore, log: &mut Vec<(BatchHeader, Bytes)>, pid: i64, epoch: i16, commit: bool) -> Vec<AbortedTxn> {
        let Some(m) = c.prepare_marker(pid, epoch, commit, 0, 0).unwrap() else { return Vec::new() };
        let e = Entry { index: 0, term: 1, base_offset: c.next_offset(), kind: EntryKind::Batch, payload: m.clone() };
        log.push((parse_batch(&m).unwrap(), m));
        c.on_append(&[e], 0).1
    }

    #[test]
    fn open_transactions_hold_the_last_stable_offset_until_their_marker_commits() {
        let mut c = core();
        let mut log = Vec::new();
        append_kept(&mut c, &mut log, idem_batch(5, 0, 0, 2)); // 0..2, not transactional
        append_kept(&mut c, &mut log, txn_batch(7, 0, 0, 3)); // 2..5
        append_kept(&mut c, &mut log, txn_batch(8, 0, 0, 1)); // 5
        c.on_commit(6);
        assert_eq!(c.last_stable_offset(), 2);
        assert!(c.in_transaction(7));
        // A marker for a producer with nothing open writes nothing.
        assert_eq!(c.prepare_marker(5, 0, true, 0, 0).unwrap(), None);
        assert!(mark(&mut c, &mut log, 7, 0, true).is_empty()); // commit at 6
        // Until the marker is committed, 7's records stay unstable.
        assert_eq!(c.last_stable_offset(), 2);
        c.on_commit(7);
        assert_eq!(c.last_stable_offset(), 5, "8's transaction is still open");
        let aborted = mark(&mut c, &mut log, 8, 1, false); // abort at 7, bumped epoch
        assert_eq!(aborted, vec![AbortedTxn { producer_id: 8, first_offset: 5, last_offset: 7 }]);
        c.on_commit(8);
        assert_eq!(c.last_stable_offset(), 8);
        // The fenced epoch is refused; the bumped one starts over at sequence 0.
        assert_eq!(append(&mut c, txn_batch(8, 0, 1, 1), 0), Err(PartitionError::InvalidProducerEpoch));
        assert!(matches!(append(&mut c, txn_batch(8, 1, 0, 1), 0).unwrap(), AppendPlan::Write { base_offset: 8, .. }));
        // Producers' own control batches are refused.
        let forged = { let m = encode_control_batch(9, 0, true, 0, 0); (parse_batch(&m).unwrap(), m) };
        assert!(matches!(c.prepare_append(&[forged]), Err(PartitionError::InvalidRecord(_))));
    }

    /// A truncation that removes a marker reopens the transaction; one that removes the
    /// first batches of a transaction closes it again; the walk finds where it started.
    #[test]
    fn truncation_rebuilds_open_transactions() {
        let mut c = core();
        let mut log = Vec::new();
        append_kept(&mut c, &mut log, txn_batch(7, 0, 0, 2)); // 0..2
        append_kept(&mut c, &mut log, txn_batch(7, 0, 2, 2)); // 2..4
        c.on_commit(4);
        mark(&mut c, &mut log, 7, 0, false); // abort at 4
        assert!(!c.in_transaction(7));
        let affected = c.on_truncate(4, 0);
        assert_eq!(affected, vec![7]);
        log.truncate(2);
        let (rebuilt, _) = c.rebuild_producers(&affected, walk_back(&log, 4), 0);
        assert_eq!(rebuilt[0].txn_first_offset, Some(0));
        assert_eq!(c.last_stable_offset(), 0);
        // Marked again (the new leader's marker), then a new transaction that is truncated away.
        mark(&mut c, &mut log, 7, 0, true); // commit at 4
        append_kept(&mut c, &mut log, txn_batch(7, 0, 4, 1)); // 5
        c.on_commit(5);
        let affected = c.on_truncate(5, 0);
        log.truncate(3);
        let (rebuilt, _) = c.rebuild_producers(&affected, walk_back(&log, 5), 0);
        assert_eq!((rebuilt[0].txn_first_offset, rebuilt[0].marker_offset), (None, Some(4)));
        assert_eq!(rebuilt[0].batches, vec![(0, 1, 0), (2, 3, 2)]);
    }

    #[test]
    fn idle_producers_expire() {
        let mut c = core();
        append(&mut c, idem_batch(9, 0, 0, 1), 1_000).unwrap();
        assert!(c.expire_producers(1_000 + PRODUCER_EXPIRATION_MS).is_empty());
        assert_eq!(c.expire_producers(1_001 + PRODUCER_EXPIRATION_MS), vec![9]);
        // Forgotten: a new sequence from 0 is accepted again.
        assert!(matches!(append(&mut c, idem_batch(9, 0, 0, 1), 2_000).unwrap(), AppendPlan::Write { .. }));
    }

    #[test]
    fn high_watermark_never_passes_log_end() {
        let mut c = core();
        append(&mut c, idem_batch(-1, -1, -1, 4), 0).unwrap();
        assert!(c.on_commit(100));
        assert_eq!(c.high_watermark(), 4);
        assert_eq!(c.set_log_start(5), Err(PartitionError::OffsetOutOfRange { offset: 5, start: 0, end: 4 }));
        assert_eq!(c.set_log_start(2), Ok(2));
    }

    #[test]
    fn oversized_batch_is_refused() {
        let mut c = core();
        c.config.max_message_bytes = 10;
        assert!(matches!(c.prepare_append(&[idem_batch(-1, -1, -1, 1)]), Err(PartitionError::MessageTooLarge { .. })));
    }
}
