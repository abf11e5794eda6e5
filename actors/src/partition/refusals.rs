//! Idempotent batches this replica refused with a retriable error, so that the batches
//! pipelined behind them get a retriable error too instead of OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! Why: librdkafka keeps up to five produce requests in flight per partition. When the first
//! one (R1) is refused without being written — NOT_LEADER while leadership is moving, the
//! partition restarting — and a later one (R2) reaches the same replica once it leads again,
//! R2's sequence skips R1's. Answering that with OUT_OF_ORDER_SEQUENCE_NUMBER makes
//! librdkafka bump the producer's epoch and renumber everything it has not seen
//! acknowledged, on every partition; a batch that was written but whose answer was lost
//! (a killed leader) is then written a second time under the new epoch. Both halves were
//! seen in chaos runs: librdkafka logging "failed due to skipped sequence numbers ... caused
//! by previous failed request (NOT_LEADER_FOR_PARTITION)" and bumping the epoch of every
//! partition, and (in CI) a batch of five records written twice, 40 offsets apart.
//! Answered retriably, R2 is simply sent again after R1, in order, with the same sequence
//! numbers.
//!
//! A gap that starts exactly at a batch refused here (same producer, epoch and first
//! sequence) within [`REFUSAL_MEMORY_MS`] is answered this way at once. R1 may also have been
//! refused by the previous leader while R2 already reached this one (librdkafka does not
//! always wait for the old leader's answers; the soak showed it), or this replica is a
//! leader that was paused and has not heard of its successor yet, so the producer is far
//! ahead of what it knows (the soak: a head-of-line OUT_OF_ORDER_SEQUENCE_NUMBER, which
//! librdkafka treats as fatal, stopped a producer for good). Any other gap is answered
//! retriably for [`GAP_GRACE_MS`] from when it was first seen, long enough for R1's retry to
//! arrive. A gap still open after that is a real one (the client gave R1 up) and gets
//! OUT_OF_ORDER_SEQUENCE_NUMBER; librdkafka bumps its epoch on its own in that case anyway.

use std::collections::HashMap;

/// How long a retriable refusal explains a gap (a client retries well within this).
pub const REFUSAL_MEMORY_MS: i64 = 30_000;

/// At most this many producers remembered; the oldest refusals go first.
pub const MAX_REFUSALS: usize = 10_000;

/// Refused batches remembered per producer (librdkafka has at most five in flight).
pub const REFUSALS_PER_PRODUCER: usize = 8;

/// How long an unexplained sequence gap is answered retriably before it counts as real.
pub const GAP_GRACE_MS: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal {
    epoch: i16,
    first_sequence: i32,
    at_ms: i64,
}

#[derive(Debug, Default)]
pub struct Refusals {
    by_producer: HashMap<i64, Vec<Refusal>>,
    /// Open gaps: producer -> (epoch, the sequence expected, first seen at).
    gaps: HashMap<i64, (i16, i32, i64)>,
}

impl Refusals {
    /// A batch of `producer_id`/`epoch` starting at `first_sequence` was refused retriably.
    /// Every refused batch is remembered (a few per producer): an older refusal may be of a
    /// batch that another leader wrote since, so it says nothing about where a gap starts.
    pub fn note(&mut self, producer_id: i64, epoch: i16, first_sequence: i32, now_ms: i64) {
        if self.by_producer.len() >= MAX_REFUSALS && !self.by_producer.contains_key(&producer_id) {
            self.by_producer.retain(|_, rs| rs.iter().any(|r| now_ms - r.at_ms <= REFUSAL_MEMORY_MS));
            if self.by_producer.len() >= MAX_REFUSALS {
                let oldest = self.by_producer.iter().min_by_key(|(_, rs)| rs.iter().map(|r| r.at_ms).max()).map(|(id, _)| *id);
                if let Some(id) = oldest {
                    self.by_producer.remove(&id);
                }
            }
        }
        let rs = self.by_producer.entry(producer_id).or_default();
        rs.retain(|r| now_ms - r.at_ms <= REFUSAL_MEMORY_MS && !(r.epoch == epoch && r.first_sequence == first_sequence));
        rs.push(Refusal { epoch, first_sequence, at_ms: now_ms });
        if rs.len() > REFUSALS_PER_PRODUCER {
            rs.remove(0);
        }
        assert!(self.by_producer.len() <= MAX_REFUSALS, "refusals unbounded");
    }

    /// Whether a gap that should have started at `expected` is explained by a recent
    /// retriable refusal of that very batch.
    pub fn explains_gap(&self, producer_id: i64, epoch: i16, expected: i32, now_ms: i64) -> bool {
        self.by_producer.get(&producer_id).is_some_and(|rs| rs.iter().any(|r| r.epoch == epoch && r.first_sequence == expected && now_ms - r.at_ms <= REFUSAL_MEMORY_MS))
    }

    /// Whether a batch that skips ahead of `expected` should be retried rather than refused
    /// for good: true for [`GAP_GRACE_MS`] after this gap was first seen.
    pub fn in_gap_grace(&mut self, producer_id: i64, epoch: i16, expected: i32, now_ms: i64) -> bool {
        if self.gaps.len() >= MAX_REFUSALS && !self.gaps.contains_key(&producer_id) {
            self.gaps.retain(|_, g| now_ms - g.2 <= GAP_GRACE_MS);
            if self.gaps.len() >= MAX_REFUSALS {
                return false;
            }
        }
        let g = self.gaps.entry(producer_id).or_insert((epoch, expected, now_ms));
        if (g.0, g.1) != (epoch, expected) {
            *g = (epoch, expected, now_ms);
        }
        now_ms - g.2 <= GAP_GRACE_MS
    }

    /// A batch of the producer ending at `last_sequence` was written: refusals up to it are
    /// settled, and so is its gap.
    pub fn written(&mut self, producer_id: i64, epoch: i16, last_sequence: i32) {
        self.gaps.remove(&producer_id);
        if let Some(rs) = self.by_producer.get_mut(&producer_id) {
            rs.retain(|r| r.epoch == epoch && r.first_sequence > last_sequence);
            if rs.is_empty() {
                self.by_producer.remove(&producer_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_at_a_refused_batch_is_explained_until_written_or_forgotten() {
        let mut r = Refusals::default();
        r.note(7, 0, 100, 1_000);
        r.note(7, 0, 105, 1_001);
        assert!(r.explains_gap(7, 0, 100, 1_002));
        assert!(r.explains_gap(7, 0, 105, 1_002));
        assert!(!r.explains_gap(7, 0, 103, 1_002), "not a refused batch's start");
        assert!(!r.explains_gap(7, 1, 100, 1_002), "another epoch");
        assert!(!r.explains_gap(8, 0, 100, 1_002), "another producer");
        assert!(!r.explains_gap(7, 0, 100, 1_000 + REFUSAL_MEMORY_MS + 1), "too old");
        r.written(7, 0, 104);
        assert!(!r.explains_gap(7, 0, 100, 1_003));
        assert!(r.explains_gap(7, 0, 105, 1_003));
    }

    /// Seen in a chaos run: a follower refused a batch (written by the leader of the time),
    /// later led, refused a newer batch while leadership moved, and answered the one behind
    /// it out of order because only the older refusal was kept.
    #[test]
    fn an_older_refusal_does_not_hide_a_newer_one() {
        let mut r = Refusals::default();
        r.note(7, 0, 4_900, 1_000);
        r.note(7, 0, 5_055, 5_000);
        assert!(r.explains_gap(7, 0, 5_055, 5_001));
    }

    /// Seen in the soak: the old leader refused R1 while R2 already reached the new one.
    #[test]
    fn an_unexplained_gap_is_retried_for_a_while_then_refused() {
        let mut r = Refusals::default();
        assert!(r.in_gap_grace(7, 0, 12_042, 1_000));
        assert!(r.in_gap_grace(7, 0, 12_042, 1_000 + GAP_GRACE_MS));
        assert!(!r.in_gap_grace(7, 0, 12_042, 1_001 + GAP_GRACE_MS), "a gap that stays open is real");
        // R1's retry closes it; a later gap gets its own grace.
        r.written(7, 0, 12_049);
        assert!(r.in_gap_grace(7, 0, 12_100, 2_000 + GAP_GRACE_MS));
        // Another epoch starts a new gap.
        assert!(r.in_gap_grace(7, 1, 5, 3_000 + 2 * GAP_GRACE_MS));
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = Refusals::default();
        for id in 0..(MAX_REFUSALS as i64 + 50) {
            r.note(id, 0, 0, id);
        }
        assert_eq!(r.by_producer.len(), MAX_REFUSALS);
        assert!(r.explains_gap(MAX_REFUSALS as i64 + 49, 0, 0, MAX_REFUSALS as i64 + 50));
        assert!(!r.explains_gap(0, 0, 0, 60), "the oldest went first");
        for s in 0..20 {
            r.note(1, 0, s * 5, 100_000);
        }
        assert_eq!(r.by_producer[&1].len(), REFUSALS_PER_PRODUCER);
    }
}
