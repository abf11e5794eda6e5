//! Log compaction (`cleanup.policy=compact`): the log keeps at least the latest record of
//! every key, as Kafka's log cleaner does, so a compacted topic holds current state (asset
//! inventories, Kafka Connect's configs and offsets, a schema registry) in bounded space.
//!
//! Each replica compacts its own copy of the committed log, as each Kafka broker cleans its
//! own. That is safe under Raft: compaction touches only entries below the high watermark
//! (and the last stable offset), never moves an offset or a term, and leaves every batch in
//! place (an emptied batch stays, so offsets and producer sequences hold). A follower that
//! receives entries from a leader that compacted them first simply holds them compacted.
//! Replicas compact at their own times, so their bytes differ for a while; compacting the
//! same range twice gives the same result, so they agree again once each has compacted
//! everything it holds (a quiet partition).
//!
//! A pass, like the cleaner's:
//! 1. Plan (heads only): the dirty part runs from `cleaned_to` to the first record younger
//!    than `min.compaction.lag.ms`, the high watermark or the last stable offset. Like Kafka's
//!    active segment, it is compacted only once it holds `segment.bytes` or its oldest batch
//!    is `segment.ms` old, and only when it is at least `min.cleanable.dirty.ratio` of the log
//!    (or whatever its size once its oldest record is `max.compaction.lag.ms` old).
//! 2. Map, in 4 MiB steps: each key's latest offset in the dirty part (records of aborted
//!    transactions do not count), bounded in memory; a full map ends the pass early there.
//! 3. Rewrite, a few hundred entries per step so the partition keeps serving between steps:
//!    from the log start to the pass's end, a record goes when its key has a later record in
//!    the map, when it belongs to an aborted transaction, or when it is a tombstone older
//!    than `delete.retention.ms` and below the tombstone horizon. Control batches stay.
//!
//! Dropping a tombstone is the one step that is not safe on a replica's own say: a replica
//! that was behind would get the leader's log without the tombstone and keep the values it
//! deleted. The tombstone horizon, which every replica's log has reached, is recorded in the
//! metadata log by the leader (`node/compaction.rs`); a pass over the compacted part alone
//! runs once a kept tombstone may go.
//!
//! Records without a key cannot be compacted; the produce path refuses them on compacted
//! topics (as Kafka does), and any already stored stay.

use super::PartitionState;
use backwaters_proto::kafka::compact::{batch_records, RawRecord};
use backwaters_storage::{AbortedTxn, Entry};
use bytes::Bytes;
use ractor::ActorProcessingErr;
use std::collections::HashMap;

/// Entries looked at per step (then the partition serves what waits in its mailbox).
const STEP_ENTRIES: usize = 256;
/// Largest key map of one pass (key bytes plus overhead); a pass that fills it ends early.
const MAP_BYTES_MAX: usize = 64 << 20;
/// Bytes of batches read per planning read of the dirty part.
const READ_BYTES: usize = 4 << 20;
/// Most entries the plan walks past the cleaned part (a longer dirty part is due anyway).
const PLAN_WALK_MAX: usize = 200_000;

/// The cleaner's state on one replica.
pub(super) struct Cleaner {
    pass: Option<Compaction>,
    /// The first tombstone the last pass kept (too young, or not below the horizon yet): its
    /// offset and the time it may go. Once it may, a pass over the compacted part runs even
    /// without new records (and removes at least it). Unknown after a start: assumed.
    tombstones: Option<(i64, i64)>,
    /// The dirty part as walked so far while no pass was due: the next plan walks on from
    /// there instead of from the start (what lies below the high watermark does not change
    /// until a pass or retention moves `from`).
    scan: Option<DirtyScan>,
}

impl Default for Cleaner {
    fn default() -> Self {
        Cleaner { pass: None, tombstones: Some((0, 0)), scan: None }
    }
}

struct DirtyScan {
    from: i64,
    next_index: u64,
    end: i64,
    bytes: u64,
    oldest: i64,
}

/// A pass in progress.
struct Compaction {
    /// The pass compacts offsets below this.
    end: i64,
    /// While the map is being built: the next offset to read.
    mapping_at: Option<i64>,
    /// Each key's latest offset in the dirty part, and about how much memory it takes.
    latest: HashMap<Bytes, i64>,
    map_bytes: usize,
    aborted: Vec<AbortedTxn>,
    now_ms: i64,
    delete_retention_ms: i64,
    tombstone_horizon: i64,
    /// The first tombstone kept so far: (offset, time it may go).
    kept_tombstones: Option<(i64, i64)>,
    /// Next entry to rewrite.
    next_index: u64,
    removed: u64,
    saved_bytes: u64,
}

/// Which records of a batch stay. `latest` maps each key to its latest offset in the
/// dirty part; `aborted` says the batch belongs to an aborted transaction; tombstones at or
/// past `tombstone_horizon` stay (a replica may not hold them yet).
pub(super) fn keep_flags(records: &[RawRecord], latest: &HashMap<Bytes, i64>, aborted: bool, now_ms: i64, delete_retention_ms: i64, tombstone_horizon: i64) -> Vec<bool> {
    records
        .iter()
        .map(|r| {
            if aborted {
                return false;
            }
            let Some(key) = &r.key else { return true };
            match latest.get(key) {
                Some(at) if *at > r.offset => false,
                // The latest of its key: a tombstone goes once it has been for long enough
                // and every replica holds it.
                _ => !(r.tombstone && r.offset < tombstone_horizon && now_ms.saturating_sub(r.timestamp_ms) > delete_retention_ms),
            }
        })
        .collect()
}

fn in_aborted(aborted: &[AbortedTxn], producer_id: i64, offset: i64) -> bool {
    aborted.iter().any(|a| a.producer_id == producer_id && a.first_offset <= offset && offset <= a.last_offset)
}

impl PartitionState {
    /// On each retention check: starts a pass when none is under way and one is due (a pass
    /// under way goes on by its own steps).
    pub(super) fn compact_tick(&mut self) -> Result<(), ActorProcessingErr> {
        if !self.core.config.cleanup_policy_compact() {
            self.cleaner = Cleaner::default();
            return Ok(());
        }
        if self.cleaner.pass.is_none() {
            self.cleaner.pass = self.plan_compaction()?;
            if self.cleaner.pass.is_some() {
                self.compact_step()?;
            }
        }
        Ok(())
    }

    /// The next step of the pass under way; the one after it is queued behind whatever
    /// waits in the mailbox (one step message at a time).
    pub(super) fn compact_step(&mut self) -> Result<(), ActorProcessingErr> {
        let Some(mut c) = self.cleaner.pass.take() else { return Ok(()) };
        if !self.core.config.cleanup_policy_compact() {
            return Ok(());
        }
        if c.mapping_at.is_some() {
            self.map_step(&mut c)?;
            self.cleaner.pass = Some(c);
            self.me.cast(super::PartitionMsg::CompactStep)?;
            return Ok(());
        }
        // 3. Rewriting, from the log start.
        let mut rewritten: Vec<Entry> = Vec::new();
        let (mut old_bytes, mut new_bytes) = (0u64, 0u64);
        let mut index = c.next_index.max(self.store.first_index());
        let mut done = false;
        let mut scanned = 0;
        while scanned < STEP_ENTRIES {
            scanned += 1;
            let Some(e) = self.shared.log.entry(index)? else {
                done = true;
                break;
            };
            if e.base_offset >= c.end {
                done = true;
                break;
            }
            index += 1;
            let Some(Ok(h)) = e.batch_header() else { continue };
            if h.is_control() {
                continue;
            }
            let br = match batch_records(&e.payload) {
                Ok(br) => br,
                Err(err) => {
                    tracing::warn!(topic = %self.shared.topic, partition = self.shared.partition, offset = e.base_offset, error = %err, "batch not compacted: its records do not parse");
                    continue;
                }
            };
            let aborted = h.is_transactional() && in_aborted(&c.aborted, h.producer_id, h.base_offset);
            let keep = keep_flags(&br.records, &c.latest, aborted, c.now_ms, c.delete_retention_ms, c.tombstone_horizon);
            if c.kept_tombstones.is_none() {
                if let Some(r) = br.records.iter().zip(&keep).find(|(r, k)| **k && r.tombstone).map(|(r, _)| r) {
                    c.kept_tombstones = Some((r.offset, r.timestamp_ms.saturating_add(c.delete_retention_ms).saturating_add(1)));
                }
            }
            if keep.iter().all(|k| *k) {
                continue;
            }
            let payload = match br.rebuild(&e.payload, &keep) {
                Ok(p) => p,
                Err(err) => {
                    tracing::warn!(topic = %self.shared.topic, partition = self.shared.partition, offset = e.base_offset, error = %err, "batch not compacted");
                    continue;
                }
            };
            c.removed += keep.iter().filter(|k| !**k).count() as u64;
            old_bytes += e.payload.len() as u64;
            new_bytes += payload.len() as u64;
            rewritten.push(Entry { payload, ..e });
        }
        c.next_index = index;
        c.saved_bytes += old_bytes.saturating_sub(new_bytes);
        if !rewritten.is_empty() || done {
            let meta = self.core.on_compacted(old_bytes, new_bytes, done.then_some(c.end));
            self.shared.log.rewrite_entries(&rewritten, &meta)?;
            self.shared.publish(&self.core);
        }
        if done {
            self.cleaner.tombstones = c.kept_tombstones;
            self.metrics.compaction_passes.add(1);
            self.metrics.compaction_removed_records.add(c.removed);
            tracing::info!(topic = %self.shared.topic, partition = self.shared.partition, cleaned_to = c.end, removed = c.removed, saved_bytes = c.saved_bytes, keys = c.latest.len(), "log compacted");
        } else {
            self.cleaner.pass = Some(c);
            self.me.cast(super::PartitionMsg::CompactStep)?;
        }
        Ok(())
    }

    /// Plans a pass, or `None` when none is due.
    fn plan_compaction(&mut self) -> Result<Option<Compaction>, ActorProcessingErr> {
        let config = &self.core.config;
        let now_ms = self.clock.now_ms();
        let bound = self.core.last_stable_offset().min(self.core.high_watermark());
        let from = self.core.meta().cleaned_to.max(self.core.log_start_offset());
        // 1. The dirty part, from the heads alone, walked on from where the last plan stopped
        // (none when `from` is at the bound: the walk stops at once).
        let mut scan = match self.cleaner.scan.take() {
            Some(s) if s.from == from && s.next_index >= self.store.first_index() => s,
            _ => {
                let Some(first) = self.shared.log.index_for_offset(from)? else { return Ok(None) };
                DirtyScan { from, next_index: first, end: from, bytes: 0, oldest: i64::MAX }
            }
        };
        for s in self.shared.log.summaries_from(scan.next_index).take(PLAN_WALK_MAX) {
            let s = s?;
            if let Some(h) = &s.header {
                if s.next_offset() > bound || (config.min_compaction_lag_ms > 0 && now_ms - h.max_timestamp < config.min_compaction_lag_ms) {
                    break;
                }
                if s.next_offset() > from {
                    scan.end = s.next_offset();
                    scan.bytes += s.payload_len as u64;
                    scan.oldest = scan.oldest.min(h.max_timestamp);
                }
            }
            scan.next_index = s.index + 1;
        }
        let total = self.core.bytes().max(1);
        let age = now_ms.saturating_sub(scan.oldest);
        let rolled = scan.bytes >= config.segment_bytes as u64 || age >= config.segment_ms;
        let due = (rolled && scan.bytes as f64 >= config.min_cleanable_dirty_ratio * total as f64) || age >= config.max_compaction_lag_ms;
        let horizon = self.shared.tombstone_horizon();
        let end = if scan.end <= from || !due {
            self.cleaner.scan = Some(scan);
            // Nothing new to compact; kept tombstones that may go now are reason enough for
            // a pass over the compacted part.
            match self.cleaner.tombstones {
                Some((first, due)) if first < horizon && now_ms >= due && from > self.core.log_start_offset() => from,
                _ => return Ok(None),
            }
        } else {
            scan.end
        };
        self.cleaner.scan = None;
        tracing::debug!(topic = %self.shared.topic, partition = self.shared.partition, from, end, horizon, "compaction pass starts");
        let aborted = self.shared.log.aborted_between(self.core.log_start_offset(), end)?;
        Ok(Some(Compaction { end, mapping_at: (end > from).then_some(from), kept_tombstones: None, latest: HashMap::new(), map_bytes: 0, aborted, now_ms, delete_retention_ms: config.delete_retention_ms, tombstone_horizon: horizon, next_index: self.store.first_index(), removed: 0, saved_bytes: 0 }))
    }

    /// 2. One step of mapping each key to its latest offset in the dirty part.
    fn map_step(&self, c: &mut Compaction) -> Result<(), ActorProcessingErr> {
        let Some(at) = c.mapping_at else { return Ok(()) };
        let entries = self.shared.log.read(at, READ_BYTES, c.end)?;
        let Some(next) = entries.last().map(Entry::next_offset) else {
            c.mapping_at = None;
            return Ok(());
        };
        for e in entries {
            let Some(Ok(h)) = e.batch_header() else { continue };
            if h.is_control() || (h.is_transactional() && in_aborted(&c.aborted, h.producer_id, h.base_offset)) {
                continue;
            }
            let Ok(br) = batch_records(&e.payload) else { continue };
            let adds: usize = br.records.iter().filter_map(|r| r.key.as_ref()).map(|k| k.len() + 48).sum();
            if c.map_bytes + adds > MAP_BYTES_MAX && !c.latest.is_empty() {
                // The map is full: this pass ends before this batch, the next goes on from it.
                c.end = e.base_offset;
                c.mapping_at = None;
                return Ok(());
            }
            c.map_bytes += adds;
            for r in br.records {
                if let Some(k) = r.key {
                    // Copied out of the batch: a key must not pin its whole batch.
                    c.latest.insert(Bytes::copy_from_slice(&k), r.offset);
                }
            }
        }
        c.mapping_at = (next < c.end).then_some(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backwaters_proto::kafka::batch::{encode_batch, with_base_offset, NewRecord};
    use proptest::prelude::*;

    fn rec(key: Option<u8>, value: Option<u8>, ts: i64) -> NewRecord {
        NewRecord { key: key.map(|k| Bytes::from(vec![k])), value: value.map(|v| Bytes::from(vec![v])), headers: vec![], timestamp_ms: ts }
    }

    proptest! {
        /// Compacting a log of single-record batches keeps, for every key, exactly its latest
        /// record (or nothing, for a tombstone past its retention and below the horizon every
        /// replica holds), keeps every unkeyed record, and compacting the result again
        /// changes nothing.
        #[test]
        fn latest_per_key_survives(ops in proptest::collection::vec((proptest::option::weighted(0.9, 0u8..6), proptest::option::weighted(0.8, any::<u8>())), 1..60), retention in 0i64..100, horizon in 0i64..70) {
            let now = 1_000;
            let batches: Vec<Bytes> = ops.iter().enumerate().map(|(i, (k, v))| with_base_offset(&encode_batch(&[rec(*k, *v, 900 + i as i64)]).unwrap(), i as i64)).collect();
            let compact = |batches: &[Bytes]| -> Vec<Bytes> {
                let mut latest = HashMap::new();
                for b in batches {
                    for r in batch_records(b).unwrap().records {
                        if let Some(k) = r.key { latest.insert(k, r.offset); }
                    }
                }
                batches.iter().map(|b| {
                    let br = batch_records(b).unwrap();
                    br.rebuild(b, &keep_flags(&br.records, &latest, false, now, retention, horizon)).unwrap()
                }).collect()
            };
            let once = compact(&batches);
            let kept: Vec<RawRecord> = once.iter().flat_map(|b| batch_records(b).unwrap().records).collect();
            for (i, (k, v)) in ops.iter().enumerate() {
                let later = ops[i + 1..].iter().any(|(k2, _)| k.is_some() && k2 == k);
                let expired_tombstone = v.is_none() && (i as i64) < horizon && now - (900 + i as i64) > retention;
                let want = k.is_none() || (!later && !expired_tombstone);
                prop_assert_eq!(kept.iter().any(|r| r.offset == i as i64), want, "offset {}", i);
            }
            prop_assert_eq!(compact(&once), once);
        }
    }
}
