//! The node's side of Kafka transactions ([`crate::txn`] has the state machine).
//!
//! The controller coordinates: it decides each request against the recorded state and writes
//! the new state to the metadata log. Every node applies those records; a node that leads a
//! partition still waiting for a transaction's marker writes it there (through the partition
//! actor, which answers once the marker is committed) and reports it to the controller. A
//! transaction is complete once every partition has reported. Leadership changes and
//! restarts need no special path: the writer looks again every [`MARKER_SCAN`] and a marker
//! for a transaction already closed on a partition writes nothing.

use super::*;
use crate::txn::{decide, TxnOp, TxnPartition, TxnState, TxnStatus};
use std::collections::HashSet;

/// How often each node looks for markers to write and (the controller) for transactions
/// past their timeout; a new PrepareCommit/Abort wakes it at once.
const MARKER_SCAN: Duration = Duration::from_millis(250);

/// Longest a marker write may wait for its commit before it is tried again.
const MARKER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct TxnBook {
    states: RwLock<BTreeMap<String, TxnState>>,
    /// Wakes the marker writer when a transaction starts preparing.
    kick: Arc<tokio::sync::Notify>,
    /// Markers being written from this node, and expiries asked for: never two at once.
    /// Keyed by transaction (id, epoch, start time: an id's next transaction keeps the
    /// epoch) and partition (None: the expiry).
    in_flight: std::sync::Mutex<HashSet<(String, i16, i64, Option<TxnPartition>)>>,
}

impl Node {
    /// The recorded state of transactional id `id`.
    pub fn txn_state(&self, id: &str) -> Option<TxnState> {
        self.with_txn_state(id, |s| s.cloned())
    }

    /// Reads a transactional id's state in place (the produce path checks every
    /// transactional batch against it; a clone per batch would copy its partition set).
    pub fn with_txn_state<R>(&self, id: &str, f: impl FnOnce(Option<&TxnState>) -> R) -> R {
        f(self.inner.txns.states.read().expect("lock").get(id))
    }

    /// Every recorded transactional id's state.
    pub fn txn_states(&self) -> Vec<TxnState> {
        self.inner.txns.states.read().expect("lock").values().cloned().collect()
    }

    /// The transaction coordinator: the controller (None while there is none).
    pub fn txn_coordinator(&self) -> Option<i32> {
        self.inner.meta.get().and_then(|m| m.leader())
    }

    /// Waits until this node's copy of the metadata holds everything the controller had
    /// applied when asked (a read barrier for decisions that must not use a stale copy).
    pub async fn metadata_barrier(&self) -> Result<(), AdminError> {
        self.controller(ControllerRequest::Barrier).await
    }

    /// Carries out a coordinator request and returns the id's state as recorded after it.
    pub async fn txn_request(&self, op: TxnOp) -> Result<TxnState, AdminError> {
        let id = op.id().to_string();
        self.controller(ControllerRequest::Txn { op }).await?;
        self.txn_state(&id).ok_or_else(|| AdminError::Unavailable(format!("transactional id {id:?} is not recorded here yet; retry")))
    }

    /// As [`Node::txn_request`], but a request that finds the id's previous transaction still
    /// being completed (CONCURRENT_TRANSACTIONS; for InitProducerId, the abort of the
    /// instance it fences) waits for that here and is asked again, for up to `limit`: the
    /// client would otherwise back off (librdkafka: 100 ms) and ask again itself, which
    /// bounded a producer to a few transactions a second.
    pub async fn txn_request_patiently(&self, op: TxnOp, limit: Duration) -> Result<TxnState, AdminError> {
        let deadline = tokio::time::Instant::now() + limit;
        let preparing = |s: &TxnState| matches!(s.status, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort);
        let waiting = || tokio::time::Instant::now() < deadline && self.running();
        loop {
            match self.txn_request(op.clone()).await {
                Err(AdminError::Txn(crate::txn::TxnError::ConcurrentTransactions)) if waiting() => {}
                Ok(s) if preparing(&s) && matches!(op, TxnOp::Init { .. }) && waiting() => {}
                r => return r,
            }
            // This node applies the completion like every other: wake on each metadata
            // record applied (the short timeout re-checks `waiting`).
            let mut applied = self.inner.applied.subscribe();
            while waiting() && self.with_txn_state(op.id(), |s| s.is_some_and(preparing)) {
                let _ = tokio::time::timeout(Duration::from_millis(50), applied.changed()).await;
            }
        }
    }

    /// The controller's side: the records a coordinator request turns into.
    pub(super) fn plan_txn(&self, op: TxnOp) -> Result<Vec<MetaRecord>, AdminError> {
        let current = self.txn_state(op.id());
        let block_end = self.inner.producer_block_end.lock().expect("lock").max(1);
        let granted = std::cell::Cell::new(0);
        let d = decide(current.as_ref(), op, self.steady_ms(), &mut || {
            granted.set(granted.get() + 1);
            block_end + granted.get() - 1
        });
        let Some(state) = d.record else { return d.answer.map(|()| Vec::new()).map_err(AdminError::Txn) };
        let mut records = Vec::new();
        if granted.get() > 0 {
            // Transactional producers' ids come from the same space as the nodes' blocks.
            records.push(MetaRecord::ProducerIds { node: -1, first: block_end, count: granted.get() });
        }
        match state.status {
            TxnStatus::CompleteCommit if current.as_ref().is_none_or(|c| c.status != TxnStatus::CompleteCommit) => self.inner.metrics.txn_committed.inc(),
            TxnStatus::CompleteAbort if current.as_ref().is_none_or(|c| c.status != TxnStatus::CompleteAbort) => self.inner.metrics.txn_aborted.inc(),
            _ => {}
        }
        records.push(MetaRecord::Txn { state });
        Ok(records)
    }

    pub(super) fn apply_txn(&self, state: TxnState) {
        if state.status == TxnStatus::Dead {
            tracing::info!(id = %state.transactional_id, producer_id = state.producer_id, "transactional id expired: no transaction for transactional_id_expiration_ms");
            self.inner.txns.states.write().expect("lock").remove(&state.transactional_id);
            return;
        }
        let preparing = matches!(state.status, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort);
        tracing::debug!(id = %state.transactional_id, producer_id = state.producer_id, epoch = state.epoch, status = state.status.kafka_name(), "transaction state");
        self.inner.txns.states.write().expect("lock").insert(state.transactional_id.clone(), state);
        if preparing {
            self.inner.txns.kick.notify_one();
        }
    }

    /// Starts the service that writes the markers of prepared transactions on the partitions
    /// this node leads, and (on the controller) aborts transactions past their timeout.
    pub(super) async fn start_txn_markers(&self) -> Result<(), String> {
        let node = self.downgrade();
        let kick = self.inner.txns.kick.clone();
        let run: RunFn = Arc::new(move |mut stop| {
            let (node, kick) = (node.clone(), kick.clone());
            Box::pin(async move {
                let mut tick = tokio::time::interval(MARKER_SCAN);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = kick.notified() => {}
                        _ = stop.changed() => return Ok(()),
                    }
                    let Some(n) = node.upgrade() else { return Ok(()) };
                    n.drive_txns();
                }
            })
        });
        self.start_service("6-txn-markers", run, false).await
    }

    /// One look at the recorded transactions: starts what this node has to do for them.
    fn drive_txns(&self) {
        if !self.running() {
            return;
        }
        let me = self.inner.settings.node_id;
        let controller = self.txn_coordinator() == Some(me) && self.inner.caught_up.load(Ordering::SeqCst);
        let states = self.txn_states();
        for s in &states {
            if !matches!(s.status, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort) {
                continue;
            }
            // The partitions this node owes a marker: those it leads, and (the controller)
            // those of deleted topics, which have nothing left to mark.
            let mine: Vec<(TxnPartition, Option<Arc<PartitionShared>>)> = s
                .pending
                .iter()
                .map(|tp| (tp.clone(), self.partition(&tp.0, tp.1)))
                .filter(|(_, p)| match p {
                    Some(p) => p.leader() == Some(me),
                    None => controller,
                })
                .filter(|(tp, _)| self.inner.txns.in_flight.lock().expect("lock").insert((s.transactional_id.clone(), s.epoch, s.started_ms, Some(tp.clone()))))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let (n, s) = (self.clone(), s.clone());
            tokio::spawn(async move {
                // Every marker at once; one report for all those written.
                let results = futures::future::join_all(mine.iter().map(|(tp, p)| {
                    let (n, s) = (&n, &s);
                    async move {
                        let r = match p {
                            Some(p) => n.write_marker(p, s).await,
                            None => Ok(()),
                        };
                        if r.is_ok() && tp.0 == crate::group::OFFSETS_TOPIC {
                            // The group coordinator of that partition runs here (it follows the
                            // leader): the transaction's offsets become committed, or go.
                            if let Some(c) = ractor::registry::where_is(n.coordinator_name(tp.1)).map(ActorRef::<crate::group::CoordinatorMsg>::from) {
                                let _ = c.cast(crate::group::CoordinatorMsg::TxnEnded { producer_id: s.producer_id, commit: s.status == TxnStatus::PrepareCommit });
                            }
                        }
                        if let Err(e) = &r {
                            tracing::info!(id = %s.transactional_id, topic = %tp.0, partition = tp.1, error = %e, "transaction marker not written yet; retrying");
                        }
                        r
                    }
                }))
                .await;
                let written: Vec<TxnPartition> = mine.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|((tp, _), _)| tp.clone()).collect();
                if !written.is_empty() {
                    let op = TxnOp::MarkersWritten { id: s.transactional_id.clone(), producer_id: s.producer_id, epoch: s.epoch, partitions: written };
                    if let Err(e) = n.controller(ControllerRequest::Txn { op }).await {
                        tracing::info!(id = %s.transactional_id, error = %e, "transaction markers written, not yet reported; retrying");
                    }
                }
                let mut in_flight = n.inner.txns.in_flight.lock().expect("lock");
                for (tp, _) in mine {
                    in_flight.remove(&(s.transactional_id.clone(), s.epoch, s.started_ms, Some(tp)));
                }
            });
        }
        if controller {
            let expiration = self.inner.settings.transactional_id_expiration_ms;
            for (id, producer_id, epoch) in crate::txn::idle_past(states.iter(), self.steady_ms(), expiration) {
                // Guarded like the timeouts below; a marker of `i64::MIN` tells the two apart.
                if !self.inner.txns.in_flight.lock().expect("lock").insert((id.clone(), epoch, i64::MIN, None)) {
                    continue;
                }
                let n = self.clone();
                tokio::spawn(async move {
                    let op = TxnOp::Forget { id: id.clone(), producer_id, epoch };
                    if let Err(e) = n.controller(ControllerRequest::Txn { op }).await {
                        tracing::info!(id = %id, error = %e, "forgetting an expired transactional id failed; retrying");
                    }
                    n.inner.txns.in_flight.lock().expect("lock").remove(&(id, epoch, i64::MIN, None));
                });
            }
            for (id, producer_id, epoch) in crate::txn::expired(states.iter(), self.steady_ms()) {
                if !self.inner.txns.in_flight.lock().expect("lock").insert((id.clone(), epoch, 0, None)) {
                    continue;
                }
                tracing::warn!(id = %id, producer_id, epoch, "transaction timed out; aborting it and fencing its producer");
                self.inner.metrics.txn_timeouts.inc();
                let n = self.clone();
                tokio::spawn(async move {
                    let op = TxnOp::Expire { id: id.clone(), producer_id, epoch };
                    if let Err(e) = n.controller(ControllerRequest::Txn { op }).await {
                        tracing::info!(id = %id, error = %e, "aborting a timed-out transaction failed; retrying");
                    }
                    n.inner.txns.in_flight.lock().expect("lock").remove(&(id, epoch, 0, None));
                });
            }
        }
    }

    /// Writes `s`'s marker on the local leader `p` and waits for its commit.
    async fn write_marker(&self, p: &PartitionShared, s: &TxnState) -> Result<(), PartitionError> {
        self.write_txn_marker(p, s.producer_id, s.epoch, s.status == TxnStatus::PrepareCommit, 0).await
    }

    /// Ends `producer_id`'s open transaction on the local leader `p` with a commit or abort
    /// marker and waits for it to commit; nothing is written when none is open there. Also
    /// Kafka's WriteTxnMarkers (an operator aborting a hanging transaction).
    pub async fn write_txn_marker(&self, p: &PartitionShared, producer_id: i64, epoch: i16, commit: bool, coordinator_epoch: i32) -> Result<(), PartitionError> {
        let actor = p.actor().ok_or(PartitionError::NotLeader { leader: p.leader() })?;
        match actor.call(|reply| PartitionMsg::WriteMarker { producer_id, epoch, commit, coordinator_epoch, reply }, Some(MARKER_TIMEOUT)).await {
            Ok(ractor::rpc::CallResult::Success(r)) => r.map(|_| ()),
            Ok(ractor::rpc::CallResult::Timeout) => Err(PartitionError::Timeout),
            _ => Err(PartitionError::Busy),
        }
    }
}
