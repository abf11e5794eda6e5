//! Kafka transactions: the coordinator's state machine, pure (no clock, no I/O).
//!
//! Kafka keeps each transactional id's state in `__transaction_state`; Backwaters keeps it in
//! the metadata log (one `txn` record per change, the whole state each time), so the
//! coordinator is the controller and every node holds a replicated copy. A transaction goes
//! Empty -> Ongoing (AddPartitionsToTxn / AddOffsetsToTxn) -> PrepareCommit or PrepareAbort
//! (EndTxn, answered once that is recorded) -> CompleteCommit / CompleteAbort once every
//! partition's leader has written its marker ([`TxnOp::MarkersWritten`]). Until then a new
//! transaction of the same id gets CONCURRENT_TRANSACTIONS and retries.
//!
//! [`decide`] checks one request against the recorded state and says what to record.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Kafka's `transaction.max.timeout.ms` default: a producer may not ask for more.
pub const MAX_TIMEOUT_MS: i32 = 900_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnStatus {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// The id expired (`transactional.id.expiration.ms` without a transaction): applying
    /// this state removes it.
    Dead,
}

impl TxnStatus {
    /// The name Kafka tools show (DescribeTransactions, ListTransactions).
    pub fn kafka_name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
            TxnStatus::Dead => "Dead",
        }
    }

    /// No transaction is open or being completed.
    fn idle(self) -> bool {
        matches!(self, TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort)
    }

    fn preparing(self) -> bool {
        matches!(self, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
    }
}

/// Kafka's default `transactional.id.expiration.ms`: seven days.
pub const DEFAULT_ID_EXPIRATION_MS: i64 = 7 * 24 * 3600 * 1000;

/// A partition in a transaction: (topic, partition).
pub type TxnPartition = (String, i32);

/// One transactional id's state as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnState {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub status: TxnStatus,
    pub timeout_ms: i32,
    /// Partitions the transaction wrote to (or may have), offsets partitions included.
    pub partitions: BTreeSet<TxnPartition>,
    /// While preparing: the partitions whose marker is not written yet.
    #[serde(default)]
    pub pending: BTreeSet<TxnPartition>,
    /// Consumer groups whose offsets the transaction commits (AddOffsetsToTxn).
    #[serde(default)]
    pub groups: BTreeSet<String>,
    /// When the transaction became Ongoing (ms), for its timeout.
    pub started_ms: i64,
    pub updated_ms: i64,
}

/// What a request asks of the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TxnOp {
    /// InitProducerId with a transactional id; `producer_id`/`epoch` are the producer's
    /// current ones (KIP-360) or -1.
    Init { id: String, timeout_ms: i32, producer_id: i64, epoch: i16 },
    AddPartitions { id: String, producer_id: i64, epoch: i16, partitions: Vec<TxnPartition> },
    /// AddOffsetsToTxn: the group's offsets partition joins the transaction.
    AddGroup { id: String, producer_id: i64, epoch: i16, group: String, partition: TxnPartition },
    End { id: String, producer_id: i64, epoch: i16, commit: bool },
    /// A node wrote (and committed) the markers of these partitions, which it leads.
    MarkersWritten { id: String, producer_id: i64, epoch: i16, partitions: Vec<TxnPartition> },
    /// The coordinator aborts a transaction past its timeout (fencing its producer).
    Expire { id: String, producer_id: i64, epoch: i16 },
    /// The coordinator forgets an id idle past `transactional.id.expiration.ms`.
    Forget { id: String, producer_id: i64, epoch: i16 },
}

impl TxnOp {
    pub fn id(&self) -> &str {
        match self {
            TxnOp::Init { id, .. } | TxnOp::AddPartitions { id, .. } | TxnOp::AddGroup { id, .. } | TxnOp::End { id, .. } | TxnOp::MarkersWritten { id, .. } | TxnOp::Expire { id, .. } | TxnOp::Forget { id, .. } => id,
        }
    }
}

/// Why the coordinator refused; each maps to Kafka's error code of the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum TxnError {
    #[error("producer fenced: a newer producer with the same transactional.id exists (epoch {current})")]
    ProducerFenced { current: i16 },
    #[error("the producer id does not match the transactional id's")]
    InvalidProducerIdMapping,
    #[error("the transaction is being completed; retry")]
    ConcurrentTransactions,
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    #[error("transaction timeout {0} ms is outside 1..={MAX_TIMEOUT_MS}")]
    InvalidTimeout(i32),
}

/// The outcome of a request: the state to record (None: nothing changes) or a refusal. An
/// Init that fences an open transaction records its abort and refuses with
/// CONCURRENT_TRANSACTIONS, so the producer retries once the abort is done (as Kafka).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub record: Option<TxnState>,
    pub answer: Result<(), TxnError>,
}

impl Decision {
    fn ok(record: Option<TxnState>) -> Decision {
        Decision { record, answer: Ok(()) }
    }
    fn err(e: TxnError) -> Decision {
        Decision { record: None, answer: Err(e) }
    }
}

/// Checks a producer's id and epoch against the recorded ones.
fn check_producer(s: &TxnState, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
    if producer_id != s.producer_id {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if epoch != s.epoch {
        return Err(TxnError::ProducerFenced { current: s.epoch });
    }
    Ok(())
}

/// Moves `s` to preparing `commit`/abort; with nothing to mark it completes at once.
fn prepare(mut s: TxnState, commit: bool, now_ms: i64) -> TxnState {
    s.pending = s.partitions.clone();
    s.status = match (commit, s.pending.is_empty()) {
        (true, false) => TxnStatus::PrepareCommit,
        (false, false) => TxnStatus::PrepareAbort,
        (true, true) => TxnStatus::CompleteCommit,
        (false, true) => TxnStatus::CompleteAbort,
    };
    s.updated_ms = now_ms;
    s
}

/// Decides `op` against the recorded state `current` of its transactional id.
/// `new_producer_id` hands out a fresh producer id (Init of a new id, or epoch exhaustion).
pub fn decide(current: Option<&TxnState>, op: TxnOp, now_ms: i64, new_producer_id: &mut dyn FnMut() -> i64) -> Decision {
    match op {
        TxnOp::Init { id, timeout_ms, producer_id, epoch } => {
            if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
                return Decision::err(TxnError::InvalidTimeout(timeout_ms));
            }
            let Some(s) = current else {
                let pid = new_producer_id();
                let s = TxnState { transactional_id: id, producer_id: pid, epoch: 0, status: TxnStatus::Empty, timeout_ms, partitions: BTreeSet::new(), pending: BTreeSet::new(), groups: BTreeSet::new(), started_ms: now_ms, updated_ms: now_ms };
                return Decision::ok(Some(s));
            };
            // KIP-360: a producer that names an id/epoch must name the current ones.
            if producer_id >= 0 && (producer_id != s.producer_id || epoch != s.epoch) {
                return Decision::err(TxnError::ProducerFenced { current: s.epoch });
            }
            if s.status.preparing() {
                return Decision::err(TxnError::ConcurrentTransactions);
            }
            let mut next = s.clone();
            if next.epoch >= i16::MAX - 1 {
                next.producer_id = new_producer_id();
                next.epoch = -1;
            }
            next.epoch += 1;
            next.updated_ms = now_ms;
            if s.status == TxnStatus::Ongoing {
                // The previous producer's open transaction is aborted under the new epoch,
                // which fences it on every partition.
                return Decision { record: Some(prepare(next, false, now_ms)), answer: Err(TxnError::ConcurrentTransactions) };
            }
            next.status = TxnStatus::Empty;
            next.timeout_ms = timeout_ms;
            next.partitions.clear();
            next.groups.clear();
            Decision::ok(Some(next))
        }
        TxnOp::AddPartitions { partitions, producer_id, epoch, .. } => add(current, producer_id, epoch, partitions, None, now_ms),
        TxnOp::AddGroup { producer_id, epoch, group, partition, .. } => add(current, producer_id, epoch, vec![partition], Some(group), now_ms),
        TxnOp::End { producer_id, epoch, commit, .. } => {
            let Some(s) = current else { return Decision::err(TxnError::InvalidProducerIdMapping) };
            if let Err(e) = check_producer(s, producer_id, epoch) {
                return Decision::err(e);
            }
            match (s.status, commit) {
                (TxnStatus::Ongoing, _) => Decision::ok(Some(prepare(s.clone(), commit, now_ms))),
                // A retried EndTxn of the same outcome.
                (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => Decision::ok(None),
                (TxnStatus::PrepareCommit, true) | (TxnStatus::PrepareAbort, false) => Decision::err(TxnError::ConcurrentTransactions),
                (status, _) => Decision::err(TxnError::InvalidTxnState(format!("cannot {} a transaction in state {}", if commit { "commit" } else { "abort" }, status.kafka_name()))),
            }
        }
        TxnOp::MarkersWritten { producer_id, epoch, partitions, .. } => {
            let Some(s) = current.filter(|s| s.status.preparing() && s.producer_id == producer_id && s.epoch == epoch && partitions.iter().any(|p| s.pending.contains(p))) else {
                return Decision::ok(None); // stale or repeated report
            };
            let mut next = s.clone();
            for p in &partitions {
                next.pending.remove(p);
            }
            if next.pending.is_empty() {
                next.status = if s.status == TxnStatus::PrepareCommit { TxnStatus::CompleteCommit } else { TxnStatus::CompleteAbort };
            }
            next.updated_ms = now_ms;
            Decision::ok(Some(next))
        }
        TxnOp::Expire { producer_id, epoch, .. } => {
            let Some(s) = current.filter(|s| s.status == TxnStatus::Ongoing && s.producer_id == producer_id && s.epoch == epoch) else {
                return Decision::ok(None);
            };
            let mut next = s.clone();
            // The timed-out producer is fenced: its next request gets PRODUCER_FENCED.
            if next.epoch >= i16::MAX - 1 {
                return Decision::ok(Some(prepare(next, false, now_ms)));
            }
            next.epoch += 1;
            Decision::ok(Some(prepare(next, false, now_ms)))
        }
        TxnOp::Forget { producer_id, epoch, .. } => {
            // Only the idle state it was found in: a producer that came back since keeps it.
            let Some(s) = current.filter(|s| s.status.idle() && s.producer_id == producer_id && s.epoch == epoch) else {
                return Decision::ok(None);
            };
            Decision::ok(Some(TxnState { status: TxnStatus::Dead, updated_ms: now_ms, ..s.clone() }))
        }
    }
}

fn add(current: Option<&TxnState>, producer_id: i64, epoch: i16, partitions: Vec<TxnPartition>, group: Option<String>, now_ms: i64) -> Decision {
    let Some(s) = current else { return Decision::err(TxnError::InvalidProducerIdMapping) };
    if let Err(e) = check_producer(s, producer_id, epoch) {
        return Decision::err(e);
    }
    if s.status.preparing() {
        return Decision::err(TxnError::ConcurrentTransactions);
    }
    let mut next = s.clone();
    if s.status != TxnStatus::Ongoing {
        next.status = TxnStatus::Ongoing;
        next.partitions.clear();
        next.groups.clear();
        next.started_ms = now_ms;
    }
    let before = (next.partitions.len(), next.groups.len());
    next.partitions.extend(partitions);
    next.groups.extend(group);
    if s.status == TxnStatus::Ongoing && before == (next.partitions.len(), next.groups.len()) {
        return Decision::ok(None); // all there already
    }
    next.updated_ms = now_ms;
    Decision::ok(Some(next))
}

/// Ids with no transaction open that have not changed for `expiration_ms` (Kafka's
/// `transactional.id.expiration.ms`): (id, producer id, epoch).
pub fn idle_past<'a>(states: impl Iterator<Item = &'a TxnState>, now_ms: i64, expiration_ms: i64) -> Vec<(String, i64, i16)> {
    states.filter(|s| s.status.idle() && now_ms - s.updated_ms > expiration_ms).map(|s| (s.transactional_id.clone(), s.producer_id, s.epoch)).collect()
}

/// Ongoing transactions past their timeout at `now_ms`: (id, producer id, epoch).
pub fn expired<'a>(states: impl Iterator<Item = &'a TxnState>, now_ms: i64) -> Vec<(String, i64, i16)> {
    states.filter(|s| s.status == TxnStatus::Ongoing && now_ms - s.started_ms > s.timeout_ms as i64).map(|s| (s.transactional_id.clone(), s.producer_id, s.epoch)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: &mut Option<TxnState>, op: TxnOp, now: i64) -> Result<(), TxnError> {
        let mut next = 100;
        let d = decide(state.as_ref(), op, now, &mut || {
            next += 1;
            next
        });
        if let Some(r) = d.record {
            *state = Some(r);
        }
        d.answer
    }

    fn tp(p: i32) -> TxnPartition {
        ("t".to_string(), p)
    }

    #[test]
    fn a_commit_goes_through_prepare_and_the_markers() {
        let mut s = None;
        run(&mut s, TxnOp::Init { id: "a".into(), timeout_ms: 60_000, producer_id: -1, epoch: -1 }, 0).unwrap();
        let (pid, epoch) = (s.as_ref().unwrap().producer_id, s.as_ref().unwrap().epoch);
        assert_eq!((pid, epoch), (101, 0));
        run(&mut s, TxnOp::AddPartitions { id: "a".into(), producer_id: pid, epoch, partitions: vec![tp(0), tp(1)] }, 1).unwrap();
        assert_eq!(s.as_ref().unwrap().status, TxnStatus::Ongoing);
        run(&mut s, TxnOp::End { id: "a".into(), producer_id: pid, epoch, commit: true }, 2).unwrap();
        assert_eq!(s.as_ref().unwrap().status, TxnStatus::PrepareCommit);
        // A new transaction waits for the markers.
        assert_eq!(run(&mut s, TxnOp::AddPartitions { id: "a".into(), producer_id: pid, epoch, partitions: vec![tp(0)] }, 3), Err(TxnError::ConcurrentTransactions));
        run(&mut s, TxnOp::MarkersWritten { id: "a".into(), producer_id: pid, epoch, partitions: vec![tp(0)] }, 4).unwrap();
        assert_eq!(s.as_ref().unwrap().status, TxnStatus::PrepareCommit, "one partition still owes its marker");
        run(&mut s, TxnOp::MarkersWritten { id: "a".into(), producer_id: pid, epoch, partitions: vec![tp(0), tp(1)] }, 4).unwrap();
        assert_eq!(s.as_ref().unwrap().status, TxnStatus::CompleteCommit);
        // A retried EndTxn is answered without change; the opposite outcome is refused.
        assert_eq!(run(&mut s, TxnOp::End { id: "a".into(), producer_id: pid, epoch, commit: true }, 5), Ok(()));
        assert!(matches!(run(&mut s, TxnOp::End { id: "a".into(), producer_id: pid, epoch, commit: false }, 5), Err(TxnError::InvalidTxnState(_))));
        run(&mut s, TxnOp::AddPartitions { id: "a".into(), producer_id: pid, epoch, partitions: vec![tp(2)] }, 6).unwrap();
        assert_eq!(s.as_ref().unwrap().partitions, BTreeSet::from([tp(2)]));
    }

    #[test]
    fn a_new_producer_fences_the_old_and_aborts_its_transaction() {
        let mut s = None;
        run(&mut s, TxnOp::Init { id: "a".into(), timeout_ms: 60_000, producer_id: -1, epoch: -1 }, 0).unwrap();
        run(&mut s, TxnOp::AddPartitions { id: "a".into(), producer_id: 101, epoch: 0, partitions: vec![tp(0)] }, 1).unwrap();
        // The new instance's InitProducerId: the open transaction is aborted under epoch 1.
        assert_eq!(run(&mut s, TxnOp::Init { id: "a".into(), timeout_ms: 60_000, producer_id: -1, epoch: -1 }, 2), Err(TxnError::ConcurrentTransactions));
        assert_eq!((s.as_ref().unwrap().status, s.as_ref().unwrap().epoch), (TxnStatus::PrepareAbort, 1));
        // The old instance is fenced.
        assert_eq!(run(&mut s, TxnOp::End { id: "a".into(), producer_id: 101, epoch: 0, commit: true }, 3), Err(TxnError::ProducerFenced { current: 1 }));
        run(&mut s, TxnOp::MarkersWritten { id: "a".into(), producer_id: 101, epoch: 1, partitions: vec![tp(0)] }, 4).unwrap();
        run(&mut s, TxnOp::Init { id: "a".into(), timeout_ms: 60_000, producer_id: -1, epoch: -1 }, 5).unwrap();
        assert_eq!((s.as_ref().unwrap().status, s.as_ref().unwrap().epoch), (TxnStatus::Empty, 2));
    }

    #[test]
    fn timeouts_abort_and_bad_requests_are_refused() {
        let mut s = None;
        assert_eq!(run(&mut s, TxnOp::Init { id: "a".into(), timeout_ms: 0, producer_id: -1, epoch: -1 }, 0), Err(TxnError::InvalidTimeout(0)));
        run(&mut s, TxnOp::Init { id: "a".into(), timeout_ms: 1_000, producer_id: -1, epoch: -1 }, 0).unwrap();
        assert_eq!(run(&mut s, TxnOp::AddPartitions { id: "a".into(), producer_id: 7, epoch: 0, partitions: vec![tp(0)] }, 1), Err(TxnError::InvalidProducerIdMapping));
        assert!(matches!(run(&mut s, TxnOp::End { id: "a".into(), producer_id: 101, epoch: 0, commit: true }, 1), Err(TxnError::InvalidTxnState(_))));
        run(&mut s, TxnOp::AddPartitions { id: "a".into(), producer_id: 101, epoch: 0, partitions: vec![tp(0)] }, 10).unwrap();
        assert!(expired(s.iter(), 1_010).is_empty());
        assert_eq!(expired(s.iter(), 1_011), vec![("a".to_string(), 101, 0)]);
        run(&mut s, TxnOp::Expire { id: "a".into(), producer_id: 101, epoch: 0 }, 1_011).unwrap();
        assert_eq!((s.as_ref().unwrap().status, s.as_ref().unwrap().epoch), (TxnStatus::PrepareAbort, 1));
        assert_eq!(run(&mut s, TxnOp::End { id: "a".into(), producer_id: 101, epoch: 0, commit: true }, 1_012), Err(TxnError::ProducerFenced { current: 1 }));
    }

    #[test]
    fn an_idle_id_expires_but_not_one_with_a_transaction_open() {
        let mut s = None;
        run(&mut s, TxnOp::Init { id: "a".into(), timeout_ms: 60_000, producer_id: -1, epoch: -1 }, 0).unwrap();
        run(&mut s, TxnOp::AddPartitions { id: "a".into(), producer_id: 101, epoch: 0, partitions: vec![tp(0)] }, 10).unwrap();
        assert!(idle_past(s.iter(), 1_000_000, 100).is_empty(), "a transaction is open");
        run(&mut s, TxnOp::Forget { id: "a".into(), producer_id: 101, epoch: 0 }, 1_000_000).unwrap();
        assert_eq!(s.as_ref().unwrap().status, TxnStatus::Ongoing, "forgetting an open transaction does nothing");
        run(&mut s, TxnOp::End { id: "a".into(), producer_id: 101, epoch: 0, commit: false }, 20).unwrap();
        run(&mut s, TxnOp::MarkersWritten { id: "a".into(), producer_id: 101, epoch: 0, partitions: vec![tp(0)] }, 30).unwrap();
        assert!(idle_past(s.iter(), 130, 100).is_empty());
        assert_eq!(idle_past(s.iter(), 131, 100), vec![("a".to_string(), 101, 0)]);
        // A stale request (another epoch) changes nothing; the right one marks the id dead.
        run(&mut s, TxnOp::Forget { id: "a".into(), producer_id: 101, epoch: 1 }, 131).unwrap();
        assert_eq!(s.as_ref().unwrap().status, TxnStatus::CompleteAbort);
        run(&mut s, TxnOp::Forget { id: "a".into(), producer_id: 101, epoch: 0 }, 131).unwrap();
        assert_eq!(s.as_ref().unwrap().status, TxnStatus::Dead);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// Random requests from a producer that may be current or stale, against one id.
    fn op() -> impl Strategy<Value = (u8, bool, bool, u8)> {
        (0u8..7, any::<bool>(), any::<bool>(), 0u8..3)
    }

    proptest! {
        /// Whatever the order of requests: the epoch never goes back, the id keeps its
        /// producer id, only preparing transactions wait for markers (and only for their own
        /// partitions), and a refused request records nothing.
        #[test]
        fn coordinator_invariants_hold(ops in prop::collection::vec(op(), 1..60)) {
            let mut state: Option<TxnState> = None;
            let mut next_pid = 500;
            for (now, (kind, stale, commit, p)) in ops.into_iter().enumerate() {
                let now = now as i64 * 1000;
                let (pid, epoch) = state.as_ref().map(|s| (s.producer_id, s.epoch - stale as i16)).unwrap_or((-1, -1));
                let part = ("t".to_string(), p as i32);
                let op = match kind {
                    0 => TxnOp::Init { id: "x".into(), timeout_ms: 5_000, producer_id: -1, epoch: -1 },
                    1 | 2 => TxnOp::AddPartitions { id: "x".into(), producer_id: pid, epoch, partitions: vec![part] },
                    3 => TxnOp::End { id: "x".into(), producer_id: pid, epoch, commit },
                    4 => TxnOp::MarkersWritten { id: "x".into(), producer_id: pid, epoch, partitions: vec![part] },
                    5 => TxnOp::AddGroup { id: "x".into(), producer_id: pid, epoch, group: "g".into(), partition: ("__consumer_offsets".into(), 0) },
                    _ => TxnOp::Expire { id: "x".into(), producer_id: pid, epoch },
                };
                let before = state.clone();
                let d = decide(state.as_ref(), op, now, &mut || { next_pid += 1; next_pid });
                if d.answer.is_err() && d.record.is_some() {
                    // Only a fencing Init records while refusing (it aborts the open transaction).
                    prop_assert_eq!(d.record.as_ref().unwrap().status, TxnStatus::PrepareAbort);
                }
                if let Some(next) = d.record {
                    if let Some(b) = &before {
                        prop_assert!(next.epoch >= b.epoch, "epoch went back: {:?} -> {:?}", b, next);
                        prop_assert_eq!(next.producer_id, b.producer_id);
                    }
                    prop_assert!(next.pending.is_subset(&next.partitions));
                    let preparing = matches!(next.status, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort);
                    prop_assert_eq!(preparing, !next.pending.is_empty(), "{:?}", next);
                    state = Some(next);
                } else {
                    prop_assert_eq!(&state, &before);
                }
            }
        }
    }
}
