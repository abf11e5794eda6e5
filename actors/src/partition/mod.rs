//! The partition actor: one replica of a partition. It owns the replica's Raft state machine
//! (a raft-rs `RawNode` over the sled partition log, [`crate::replica::log_store`]) and the
//! partition state machine ([`core::PartitionCore`]), and performs their I/O.
//!
//! The Raft leader is the Kafka leader: only it accepts produces; it plans the append (offsets,
//! idempotence), proposes the batches, and answers acks=all once they are committed (a
//! majority has them flushed) and acks=1 once its own flush covers them. Every replica writes
//! the entries that enter its log to sled and tells raft-rs they are persisted only after the
//! node's flusher has flushed them (raft-rs's async-persist API: one fsync serves every
//! partition of the node). Reads go straight to storage through [`PartitionShared`], bounded by
//! the high watermark (the commit index mapped to offsets), so a slow consumer never holds up
//! producers. A restarted actor rebuilds everything from disk in `pre_start`;
//! `PartitionShared` outlives restarts.

pub mod core;
mod compaction;
pub mod epochs;
mod produce;
mod retention;
mod replicas;
pub mod refusals;

use crate::flusher::FlusherMsg;
use crate::metrics::Metrics;
use crate::replica::log_store::{LogStore, Payload, SnapshotData};
use crate::replica::{node_of, raft_config, raft_id, Timing, Transport};
use crate::topic::TopicConfig;
use crate::{Clock, PartitionError};
use backwaters_proto::kafka::batch::BatchHeader;
use backwaters_storage::{Entry, EntryKind, PartitionLog, Store};
use bytes::Bytes;
use core::PartitionCore;
use raft::prelude::{Message, RawNode};
use raft::StateRole;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::sync::watch;

/// Outstanding produce requests a partition holds before it answers new ones with a
/// retriable error (each connection also caps its own in-flight requests).
pub const MAX_PENDING_PRODUCES: usize = 10_000;

/// Ticks between checks whether leadership should go back to the preferred replica (3 s at
/// the default 100 ms tick).
const REBALANCE_TICKS: u64 = 30;

/// Where a partition is and what it knows, shared by the actor (writer) and readers.
pub struct PartitionShared {
    pub topic: String,
    pub partition: i32,
    pub log: PartitionLog,
    actor: RwLock<Option<ActorRef<PartitionMsg>>>,
    hw_tx: watch::Sender<i64>,
    log_start: AtomicI64,
    log_end: AtomicI64,
    /// The last stable offset (read_committed consumers read below it).
    last_stable: AtomicI64,
    /// Node id of the current leader as this replica knows it (-1: none known).
    leader: AtomicI64,
    leader_term: std::sync::Mutex<u64>,
    /// On the leader: the replicas that are reachable and hold everything committed (Kafka's
    /// in-sync replicas), the leader first. Empty elsewhere.
    in_sync: std::sync::Mutex<Vec<i32>>,
    /// Node ids of the replicas, the preferred leader first.
    pub replicas: Vec<i32>,
    /// Idempotent batches refused retriably here (kept across actor restarts).
    refusals: std::sync::Mutex<refusals::Refusals>,
    /// The log start the metadata log records for this partition (DeleteRecords); the
    /// replica moves its own log start up to it once its high watermark allows.
    recorded_log_start: AtomicI64,
    tombstone_horizon: AtomicI64,
}

impl PartitionShared {
    pub fn new(topic: String, partition: i32, store: &Store, uid: u64, replicas: Vec<i32>) -> Arc<PartitionShared> {
        let log = PartitionLog::handle(store, uid);
        let (hw_tx, _) = watch::channel(0);
        Arc::new(PartitionShared { topic, partition, log, actor: RwLock::new(None), hw_tx, log_start: AtomicI64::new(0), log_end: AtomicI64::new(0), last_stable: AtomicI64::new(0), leader: AtomicI64::new(-1), leader_term: std::sync::Mutex::new(0), in_sync: std::sync::Mutex::new(Vec::new()), replicas, refusals: Default::default(), recorded_log_start: AtomicI64::new(0), tombstone_horizon: AtomicI64::new(0) })
    }

    /// The metadata log recorded a DeleteRecords up to `offset`: the replica applies it now
    /// (or, if it is behind, once it has caught up that far).
    pub fn raise_log_start(&self, offset: i64) {
        if self.recorded_log_start.fetch_max(offset, Ordering::SeqCst) < offset {
            if let Some(a) = self.actor() {
                let _ = a.cast(PartitionMsg::Retention);
            }
        }
    }

    /// The log start the metadata log records (0 when it records none).
    pub fn recorded_log_start(&self) -> i64 {
        self.recorded_log_start.load(Ordering::SeqCst)
    }

    /// Every replica holds the log below this offset (the metadata log records it for
    /// compacted partitions): compaction drops tombstones only below it.
    pub fn tombstone_horizon(&self) -> i64 {
        self.tombstone_horizon.load(Ordering::SeqCst)
    }
    pub fn raise_tombstone_horizon(&self, offset: i64) {
        self.tombstone_horizon.fetch_max(offset, Ordering::SeqCst);
    }

    /// An idempotent produce was refused with a retriable error without being written.
    pub fn note_refused(&self, batches: &[(BatchHeader, Bytes)], now_ms: i64) {
        if let Some((h, _)) = batches.first().filter(|(h, _)| h.is_idempotent()) {
            self.refusals.lock().expect("refusals").note(h.producer_id, h.producer_epoch, h.base_sequence, now_ms);
        }
    }

    /// A metadata record says `node` leads in `term` (for partitions without a local
    /// replica; a local replica knows from Raft).
    pub fn note_leader(&self, node: i32, term: u64) {
        if self.actor().is_some() {
            return;
        }
        let mut known = self.leader_term.lock().expect("lock");
        if term >= *known {
            *known = term;
            self.leader.store(node as i64, Ordering::SeqCst);
        }
    }

    /// The leader's node id, if one is known.
    pub fn leader(&self) -> Option<i32> {
        let l = self.leader.load(Ordering::SeqCst);
        (l >= 0).then_some(l as i32)
    }

    /// The in-sync replicas as the local leader sees them (empty unless this node leads).
    pub fn in_sync(&self) -> Vec<i32> {
        self.in_sync.lock().expect("lock").clone()
    }

    /// The term of the leader [`Self::leader`] names.
    pub fn leader_term(&self) -> u64 {
        *self.leader_term.lock().expect("lock")
    }

    /// The running actor, if any (None while it restarts).
    pub fn actor(&self) -> Option<ActorRef<PartitionMsg>> {
        self.actor.read().expect("lock").clone()
    }

    pub fn high_watermark(&self) -> i64 {
        *self.hw_tx.borrow()
    }
    /// The last stable offset: read_committed consumers read below it. Never above the high
    /// watermark (a caller that reports a high watermark it read earlier clamps to that).
    pub fn last_stable_offset(&self) -> i64 {
        self.last_stable.load(Ordering::SeqCst).min(self.high_watermark())
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::SeqCst)
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::SeqCst)
    }
    /// Wakes on every high-watermark change (long-polling fetches wait on it).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.hw_tx.subscribe()
    }

    /// Reads committed batches from `offset`, up to about `max_bytes`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Entry>, PartitionError> {
        self.read_below(offset, max_bytes, false)
    }

    /// As [`PartitionShared::read`]; with `stable_only`, only below the last stable offset
    /// (read_committed), with the aborted transactions among what was read.
    pub fn read_below(&self, offset: i64, max_bytes: usize, stable_only: bool) -> Result<Vec<Entry>, PartitionError> {
        let hw = self.high_watermark();
        // Loaded after the high watermark: never past it.
        let bound = if stable_only { self.last_stable_offset().min(hw) } else { hw };
        let start = self.log_start_offset();
        // Past the log end is out of range; between the high watermark and the log end the
        // data exists but is not committed yet: nothing to return, not an error (as Kafka).
        let end = self.log_end_offset().max(hw);
        if offset < start || offset > end {
            return Err(PartitionError::OffsetOutOfRange { offset, start, end });
        }
        if offset >= bound {
            return Ok(Vec::new());
        }
        let entries = self.log.read(offset, max_bytes, bound).map_err(|e| PartitionError::Storage(e.to_string()))?;
        for e in &entries {
            // Checked again after the read: storage's CRC covered the bytes, this covers the batch.
            if let Some(Err(err)) = e.batch_header() {
                return Err(PartitionError::Storage(format!("stored batch at offset {} is corrupt: {err}", e.base_offset)));
            }
        }
        Ok(entries)
    }

    /// The aborted transactions with records in `from ..= to` (a read_committed fetch's).
    pub fn aborted_between(&self, from: i64, to: i64) -> Result<Vec<backwaters_storage::AbortedTxn>, PartitionError> {
        self.log.aborted_between(from, to).map_err(|e| PartitionError::Storage(e.to_string()))
    }

    /// The offset of the first record with timestamp >= `ts` (ListOffsets by time).
    pub fn offset_for_time(&self, ts: i64) -> Result<Option<(i64, i64)>, PartitionError> {
        let Some(e) = self.log.first_entry_at_or_after_time(ts).map_err(|e| PartitionError::Storage(e.to_string()))? else { return Ok(None) };
        if e.base_offset >= self.high_watermark() {
            return Ok(None);
        }
        let recs = backwaters_proto::kafka::batch::decode_records(&e.payload).map_err(PartitionError::Storage)?;
        let start = self.log_start_offset();
        Ok(recs.into_iter().find(|r| r.timestamp_ms >= ts && r.offset >= start).map(|r| (r.offset, r.timestamp_ms)))
    }

    fn publish(&self, core: &PartitionCore) {
        self.log_start.store(core.log_start_offset(), Ordering::SeqCst);
        self.log_end.store(core.next_offset(), Ordering::SeqCst);
        self.last_stable.store(core.last_stable_offset(), Ordering::SeqCst);
        self.hw_tx.send_if_modified(|hw| {
            let changed = *hw != core.high_watermark();
            *hw = core.high_watermark();
            changed
        });
    }
}

/// Acknowledgement of a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAck {
    pub base_offset: i64,
    pub log_start_offset: i64,
}

/// A point-in-time view of a partition replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub bytes: u64,
    pub producers: usize,
    pub leader: Option<i32>,
    pub term: u64,
    pub commit_index: u64,
    pub last_index: u64,
    /// On the leader: each replica's node id and the last index it is known to hold.
    pub progress: Vec<(i32, u64)>,
    /// On the leader: each replica's node id and the Kafka offset its log is known to reach.
    pub replica_ends: Vec<(i32, i64)>,
}

pub enum PartitionMsg {
    Produce { batches: Vec<(BatchHeader, Bytes)>, acks: i16, reply: RpcReplyPort<Result<ProduceAck, PartitionError>> },
    /// Sent by the flusher: every ready up to `number` is on disk.
    Persisted { number: u64 },
    /// A Raft message from a peer replica.
    Raft(Box<Message>),
    /// Runs the ready loop (sent by the actor to itself, see [`PartitionState::turn_soon`]).
    Turn,
    /// One Raft tick (the node's ticker drives every partition).
    Tick,
    /// Hand leadership to the replica on `node`.
    TransferLeader { node: i32 },
    FlushFailed(String),
    DeleteRecords { offset: i64, reply: RpcReplyPort<Result<i64, PartitionError>> },
    Retention,
    /// The next step of a compaction pass (sent by the actor to itself, one at a time).
    CompactStep,
    SetConfig(TopicConfig),
    Status(RpcReplyPort<PartitionStatus>),
    /// The idempotent producers this replica remembers (from the replicated log).
    Producers(RpcReplyPort<Vec<backwaters_storage::ProducerEntry>>),
    /// The transaction coordinator ends `producer_id`'s transaction here: write its marker
    /// (commit or abort) if it has one open, and answer once nothing of it is unmarked or
    /// uncommitted (the leader only).
    WriteMarker { producer_id: i64, epoch: i16, commit: bool, coordinator_epoch: i32, reply: RpcReplyPort<Result<ProduceAck, PartitionError>> },
    /// Fault injection for tests and chaos runs: the actor panics.
    InjectPanic,
}

// Local only (ractor's `cluster` feature wants every message type to say so).
impl ractor::Message for PartitionMsg {}

#[derive(Clone)]
pub struct PartitionActor;

pub struct PartitionArgs {
    pub shared: Arc<PartitionShared>,
    pub config: Arc<RwLock<TopicConfig>>,
    pub flusher: Arc<dyn Fn() -> Option<ActorRef<FlusherMsg>> + Send + Sync>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// This node's id.
    pub node_id: i32,
    /// The Raft group's id on the wire (the partition's cluster-wide uid).
    pub group: u64,
    pub transport: Arc<dyn Transport>,
    pub timing: Timing,
    /// Called whenever the leader this replica knows changes: (this replica leads, term).
    pub on_leader: Arc<dyn Fn(bool, u64) + Send + Sync>,
    /// Nodes that must lead nothing (drained by an operator).
    pub drained: Arc<RwLock<std::collections::BTreeSet<i32>>>,
    /// This node's free-space guard: while the disk is nearly full the node leads nothing.
    pub disk: Arc<crate::node::DiskGuard>,
    /// How long the preferred replica must be caught up before leadership goes back to it.
    pub rebalance_ms: u64,
    /// Length of a Raft tick in ms (paces the rebalance checks).
    pub tick_ms: u64,
}

/// A produce waiting for its acknowledgement.
struct Waiter {
    next_offset: i64,
    /// Term of the leadership that took it: a waiter never outlives it.
    term: u64,
    /// acks=1 waits for the local flush, acks=all for the commit.
    local: bool,
    started: Instant,
    reply: RpcReplyPort<Result<ProduceAck, PartitionError>>,
    ack: ProduceAck,
}

/// A ready handed to sled, waiting for the flush that makes it durable.
struct Unflushed {
    number: u64,
    /// The log's Kafka tail once this ready's entries are in.
    tail: i64,
    /// Messages raft-rs may only send once this ready is persisted (votes, append answers).
    messages: Vec<Message>,
    /// Whether this ready waits for a flush of its own (entries, a snapshot, a new term or
    /// vote). One that does not still completes only after every ready before it.
    needs_flush: bool,
}

/// How far back (in entries) a truncation looks for the batches of the producers it touched.
const PRODUCER_REBUILD_SCAN: u64 = 100_000;

pub struct PartitionState {
    core: PartitionCore,
    raft: RawNode<LogStore>,
    store: LogStore,
    shared: Arc<PartitionShared>,
    waiters: Vec<Waiter>,
    unflushed: VecDeque<Unflushed>,
    /// Kafka offset up to which this replica's own log is flushed.
    local_durable: i64,
    /// Ticks since start (paces the preferred-leader check).
    ticks: u64,
    /// Consecutive checks that found the preferred replica caught up.
    preferred_ready: u32,
    /// Checks the preferred replica must be caught up for before it gets leadership back.
    rebalance_checks: u32,
    /// On the leader: the tick at which each replica was last seen active. raft-rs's own
    /// `recent_active` is cleared every election timeout, so read at a fixed tick phase it
    /// can look false for good.
    last_active: std::collections::HashMap<i32, u64>,
    drained: Arc<RwLock<std::collections::BTreeSet<i32>>>,
    disk: Arc<crate::node::DiskGuard>,
    /// A snapshot installed by ready `.0`, to count as applied at index `.1` once persisted.
    snap_to_apply: Option<(u64, u64)>,
    /// On the leader: followers seen waiting for a snapshot at the last check, with its index.
    snapshot_waits: Vec<(u64, u64)>,
    node_id: i32,
    group: u64,
    transport: Arc<dyn Transport>,
    on_leader: Arc<dyn Fn(bool, u64) + Send + Sync>,
    flusher: Arc<dyn Fn() -> Option<ActorRef<FlusherMsg>> + Send + Sync>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    me: ActorRef<PartitionMsg>,
    /// A `Turn` is in the mailbox.
    turn_pending: bool,
    /// Log compaction's passes (compacted topics).
    cleaner: compaction::Cleaner,
}

impl Actor for PartitionActor {
    type Msg = PartitionMsg;
    type State = PartitionState;
    type Arguments = PartitionArgs;

    async fn pre_start(&self, me: ActorRef<PartitionMsg>, args: PartitionArgs) -> Result<PartitionState, ActorProcessingErr> {
        // A restart after a failure may find writes that were applied but not yet flushed:
        // flush before trusting them, so what Raft is told is persisted really is.
        let log = args.shared.log.clone();
        tokio::task::spawn_blocking(move || log.sync()).await??;
        let rec = args.shared.log.recover()?;
        let voters: Vec<u64> = args.shared.replicas.iter().map(|n| raft_id(*n)).collect();
        let store = LogStore::new(args.shared.log.clone(), &rec, &voters, Payload::Batches)?;
        let commit = store.hard_state().commit;
        let hw = offset_after(&args.shared.log, commit, &rec)?;
        let config = args.config.read().expect("lock").clone();
        let core = PartitionCore::recover(rec, config, hw);
        // Everything committed is applied (the high watermark covers it): raft-rs need not
        // hand it back.
        let cfg = raft_config(raft_id(args.node_id), args.timing, commit);
        let mut raft = RawNode::new(&cfg, store.clone(), &crate::replica::discard_logger())?;
        // The preferred leader (first replica) stands at once: a new partition gets a leader
        // without waiting for an election timeout, and leaders spread as placement spread them.
        if args.shared.replicas.first() == Some(&args.node_id) {
            raft.campaign()?;
        }
        args.shared.publish(&core);
        *args.shared.actor.write().expect("lock") = Some(me.clone());
        tracing::debug!(topic = %args.shared.topic, partition = args.shared.partition, hw = core.high_watermark(), "partition started");
        let local_durable = core.next_offset();
        let mut st = PartitionState {
            core,
            raft,
            store,
            shared: args.shared,
            waiters: Vec::new(),
            unflushed: VecDeque::new(),
            local_durable,
            ticks: 0,
            preferred_ready: 0,
            last_active: Default::default(),
            rebalance_checks: (args.rebalance_ms / (REBALANCE_TICKS * args.tick_ms.max(1))).max(1) as u32,
            drained: args.drained,
            disk: args.disk,
            snap_to_apply: None,
            snapshot_waits: Vec::new(),
            node_id: args.node_id,
            group: args.group,
            transport: args.transport,
            on_leader: args.on_leader,
            flusher: args.flusher,
            clock: args.clock,
            metrics: args.metrics,
            me,
            turn_pending: false,
            cleaner: Default::default(),
        };
        st.turn()?;
        Ok(st)
    }

    async fn post_stop(&self, _me: ActorRef<PartitionMsg>, st: &mut PartitionState) -> Result<(), ActorProcessingErr> {
        *st.shared.actor.write().expect("lock") = None;
        Ok(())
    }

    async fn handle(&self, _me: ActorRef<PartitionMsg>, msg: PartitionMsg, st: &mut PartitionState) -> Result<(), ActorProcessingErr> {
        match msg {
            PartitionMsg::Produce { batches, acks, reply } => st.produce(batches, acks, reply)?,
            PartitionMsg::Persisted { number } => {
                st.on_persisted_inner(number);
                st.turn_soon()?;
            }
            PartitionMsg::Raft(mut m) => {
                if !st.lost_entries(&mut m) {
                    if let Err(e) = st.raft.step(*m) {
                        tracing::debug!(topic = %st.shared.topic, partition = st.shared.partition, error = %e, "raft message refused");
                    }
                }
                st.turn_soon()?;
            }
            PartitionMsg::Turn => {
                st.turn_pending = false;
                st.turn()?;
            }
            PartitionMsg::Tick => {
                st.raft.tick();
                st.ticks += 1;
                st.note_in_sync();
                if st.ticks % REBALANCE_TICKS == 0 {
                    st.return_leadership();
                    st.retry_snapshots();
                }
                st.turn()?;
            }
            PartitionMsg::TransferLeader { node } => {
                st.raft.transfer_leader(raft_id(node));
                st.turn()?;
            }
            PartitionMsg::FlushFailed(e) => return Err(format!("flush failed: {e}").into()),
            PartitionMsg::DeleteRecords { offset, reply } => st.delete_records(offset, reply)?,
            PartitionMsg::Retention => {
                st.remove_expired()?;
                st.compact_tick()?;
            }
            PartitionMsg::CompactStep => st.compact_step()?,
            PartitionMsg::SetConfig(c) => st.core.config = c,
            PartitionMsg::Producers(reply) => {
                let _ = reply.send(st.core.producers());
            }
            PartitionMsg::Status(reply) => {
                let progress = if st.raft.raft.state == StateRole::Leader {
                    let mut p: Vec<(i32, u64)> = st.raft.raft.prs().iter().map(|(id, pr)| (node_of(*id), pr.matched)).collect();
                    p.sort();
                    p
                } else {
                    Vec::new()
                };
                let replica_ends = progress.iter().map(|(node, matched)| (*node, st.offset_at(*matched))).collect();
                let _ = reply.send(PartitionStatus {
                    log_start_offset: st.core.log_start_offset(),
                    high_watermark: st.core.high_watermark(),
                    log_end_offset: st.core.next_offset(),
                    bytes: st.core.bytes(),
                    producers: st.core.producer_count(),
                    leader: st.shared.leader(),
                    term: st.raft.raft.term,
                    commit_index: st.raft.raft.raft_log.committed,
                    last_index: st.store.last_index(),
                    progress,
                    replica_ends,
                });
            }
            PartitionMsg::WriteMarker { producer_id, epoch, commit, coordinator_epoch, reply } => st.write_marker(producer_id, epoch, commit, coordinator_epoch, reply)?,
            PartitionMsg::InjectPanic => panic!("injected panic in partition {}-{}", st.shared.topic, st.shared.partition),
        }
        Ok(())
    }
}

/// The Kafka offset after the entry at `index` (what a commit index up to there covers).
fn offset_after(log: &PartitionLog, index: u64, rec: &backwaters_storage::Recovered) -> Result<i64, ActorProcessingErr> {
    if index == 0 || index <= rec.meta.snap_index {
        return Ok(rec.meta.log_start_offset.max(if rec.first_index > rec.last_index { rec.next_offset } else { rec.meta.log_start_offset }));
    }
    match log.entry(index)? {
        Some(e) => Ok(e.next_offset()),
        None => Ok(rec.next_offset),
    }
}

impl PartitionState {
    fn is_leader(&self) -> bool {
        self.raft.raft.state == StateRole::Leader
    }

    /// The Kafka offset after Raft index `index` (the log end of a replica holding up to it).
    fn offset_at(&self, index: u64) -> i64 {
        if index >= self.store.last_index() {
            return self.core.next_offset();
        }
        match self.shared.log.entry(index) {
            Ok(Some(e)) => e.next_offset(),
            // Before the first entry kept (removed by retention) or unreadable: the log start.
            _ => self.core.log_start_offset(),
        }
    }

    /// A replica that lost its disk (or came back from an older copy of it) holds fewer
    /// entries than its leader believes. raft-rs assumes that never happens: a heartbeat
    /// committing past the end of the log panics the follower, and the leader, which only
    /// moves a follower's match index forward, would never resend what was lost. Both sides
    /// are handled here: the follower clamps the commit and tells the leader where its log
    /// really ends (an append rejection carrying its last index); the leader, told of an end
    /// below the match index, probes the follower from there and refills it (from a snapshot
    /// when retention removed that part). Returns true when the message was consumed.
    fn lost_entries(&mut self, m: &mut Message) -> bool {
        use raft::prelude::MessageType;
        match m.get_msg_type() {
            MessageType::MsgHeartbeat => {
                let last = self.raft.raft.raft_log.last_index();
                if m.commit > last {
                    tracing::warn!(topic = %self.shared.topic, partition = self.shared.partition, commit = m.commit, last, "the leader counts entries this replica does not hold (lost disk?); asking to be refilled");
                    let mut r = Message::default();
                    r.set_msg_type(MessageType::MsgAppendResponse);
                    (r.to, r.from, r.term, r.reject, r.index, r.reject_hint) = (m.from, m.to, m.term, true, m.commit, last);
                    m.commit = last;
                    if let Err(e) = self.raft.step(m.clone()) {
                        tracing::debug!(error = %e, "raft message refused");
                    }
                    self.transport.send(self.group, vec![r]);
                    return true;
                }
                false
            }
            MessageType::MsgAppendResponse if m.reject && self.raft.raft.state == StateRole::Leader && m.term == self.raft.raft.term => {
                let Some(pr) = self.raft.raft.mut_prs().get_mut(m.from) else { return false };
                if m.reject_hint >= pr.matched {
                    return false;
                }
                tracing::warn!(topic = %self.shared.topic, partition = self.shared.partition, replica = node_of(m.from), matched = pr.matched, has = m.reject_hint, "a replica lost entries it had acknowledged; refilling it");
                pr.matched = m.reject_hint;
                pr.become_probe();
                self.raft.raft.send_append(m.from);
                true
            }
            _ => false,
        }
    }

    /// Runs raft-rs's ready loop until it has nothing more to hand out.
    fn turn(&mut self) -> Result<(), ActorProcessingErr> {
        while self.raft.has_ready() {
            let mut rd = self.raft.ready();
            if let Some(ss) = rd.ss() {
                let leader = (ss.leader_id != raft::INVALID_ID).then(|| node_of(ss.leader_id) as i64).unwrap_or(-1);
                let was = self.shared.leader.swap(leader, Ordering::SeqCst);
                if was != leader {
                    tracing::info!(topic = %self.shared.topic, partition = self.shared.partition, leader, term = self.raft.raft.term, "partition leader changed");
                    *self.shared.leader_term.lock().expect("lock") = self.raft.raft.term;
                    (self.on_leader)(leader == self.node_id as i64, self.raft.raft.term);
                }
            }
            // A leader re-elected in a later term keeps its node id and may leave no
            // soft-state change: the term (Kafka's leader epoch) still moves, and the leader
            // records it for the nodes without a replica.
            let (leader, term) = (self.shared.leader.load(Ordering::SeqCst), self.raft.raft.term);
            let moved = leader >= 0 && std::mem::replace(&mut *self.shared.leader_term.lock().expect("lock"), term) != term;
            if moved && leader == self.node_id as i64 {
                (self.on_leader)(true, term);
            }
            // A leader sends its appends before it persists them (Raft thesis 10.2.1).
            self.transport.send(self.group, rd.take_messages());
            let mut wrote = false;
            if !rd.snapshot().is_empty() {
                self.install_snapshot(rd.snapshot().clone())?;
                // raft-rs counts the snapshot applied only when told, and only once it is
                // persisted; until then it would look for entries before it (and find them
                // compacted).
                self.snap_to_apply = Some((rd.number(), rd.snapshot().get_metadata().index));
                wrote = true;
            }
            let committed = rd.take_committed_entries();
            self.apply(&committed);
            // The hard state goes with this ready's entries (one atomic sled batch) or after
            // them, so a store recovered after a crash never has a commit index beyond its
            // own log. A change of the commit index alone need not be flushed (raft-rs's
            // `must_sync` is false then: the commit is learned again from the leader); a
            // new term or vote must be.
            if !rd.entries().is_empty() {
                self.append(rd.entries(), rd.hs())?;
                wrote = true;
            } else if let Some(hs) = rd.hs() {
                self.store.set_hard_state(hs)?;
            }
            let number = rd.number();
            let messages = rd.take_persisted_messages();
            let must_sync = rd.must_sync() || wrote;
            self.raft.advance_append_async(rd);
            if let Some(last) = committed.last() {
                self.raft.advance_apply_to(last.index);
            }
            self.unflushed.push_back(Unflushed { number, tail: self.core.next_offset(), messages, needs_flush: must_sync });
            if must_sync {
                let seq = self.shared.log.written_seq();
                let flusher = (self.flusher)().ok_or("flusher is not running")?;
                let me = self.me.clone();
                flusher.cast(FlusherMsg::Register {
                    seq,
                    done: Box::new(move |r| {
                        let _ = match r {
                            Ok(()) => me.cast(PartitionMsg::Persisted { number }),
                            Err(e) => me.cast(PartitionMsg::FlushFailed(e)),
                        };
                    }),
                })?;
            } else {
                // Nothing of its own to flush: done as soon as every earlier ready is.
                self.on_persisted_inner(0);
            }
            self.check_leadership();
        }
        Ok(())
    }

    /// Runs the ready loop after the messages already in the mailbox: a follower steps every
    /// append that has arrived (and the leader every answer and flush) before it writes, so
    /// under load one sled write and one flush registration cover many messages instead of
    /// one each. The produce path still turns at once (its proposals must enter the log
    /// before the next request is planned).
    fn turn_soon(&mut self) -> Result<(), ActorProcessingErr> {
        if !self.turn_pending {
            self.turn_pending = true;
            self.me.cast(PartitionMsg::Turn)?;
        }
        Ok(())
    }

    /// Completes, in order, the readies up to `number` and any after them that need no
    /// flush of their own. raft-rs takes `on_persist_ready(n)` to mean every ready up to `n`
    /// is on disk, so a ready without writes must never complete ahead of an earlier one
    /// still waiting for its flush (its answers would acknowledge entries not yet durable).
    fn on_persisted_inner(&mut self, number: u64) {
        let mut last = None;
        while self.unflushed.front().is_some_and(|u| u.number <= number || !u.needs_flush) {
            let u = self.unflushed.pop_front().expect("front");
            self.transport.send(self.group, u.messages);
            self.local_durable = u.tail;
            last = Some(u.number);
        }
        if let Some(number) = last {
            // Readies complete in order; a later flush covering an earlier one is fine.
            self.raft.on_persist_ready(number);
            if let Some((n, index)) = self.snap_to_apply {
                if n <= number {
                    self.snap_to_apply = None;
                    if index > self.raft.raft.raft_log.applied {
                        self.raft.advance_apply_to(index);
                    }
                }
            }
            self.release();
        }
    }

    /// Entries committed: the high watermark moves to the offset after the last batch.
    fn apply(&mut self, committed: &[raft::prelude::Entry]) {
        let Some(last_batch) = committed.iter().rev().find(|e| !e.data.is_empty()) else { return };
        let base = i64::from_be_bytes(last_batch.data[0..8].try_into().expect("batch entry"));
        let delta = i32::from_be_bytes(last_batch.data[23..27].try_into().expect("batch entry"));
        if self.core.on_commit(base + delta as i64 + 1) {
            self.shared.publish(&self.core);
        }
        self.release();
    }

    /// Writes entries that enter the log (the leader's proposals or a leader's appends),
    /// first removing a conflicting suffix; `hs`, the ready's hard state, goes in the same write.
    fn append(&mut self, entries: &[raft::prelude::Entry], hs: Option<&raft::prelude::HardState>) -> Result<(), ActorProcessingErr> {
        let first = entries[0].index;
        if first <= self.store.last_index() {
            // A new leader replaced our uncommitted suffix.
            let removed = self.shared.log.entry(first)?.ok_or("truncated entry is missing")?;
            let mut bytes = 0u64;
            for i in first..=self.store.last_index() {
                if let Some(e) = self.shared.log.entry(i)? {
                    if e.kind == EntryKind::Batch {
                        bytes += e.payload.len() as u64;
                    }
                }
            }
            let affected = self.core.on_truncate(removed.base_offset, bytes);
            let (rebuilt, gone) = self.rebuild_producers(first, &affected);
            self.shared.log.truncate_suffix(first, &self.core.meta(), &rebuilt, &gone)?;
            tracing::info!(topic = %self.shared.topic, partition = self.shared.partition, from_index = first, from_offset = removed.base_offset, "uncommitted suffix replaced by the leader's");
        }
        let now = self.clock.now_ms();
        let mut out = Vec::with_capacity(entries.len());
        let mut producers = std::collections::HashMap::new();
        let mut aborted = Vec::new();
        for e in entries {
            let le = self.store.to_log_entry(e, self.core.next_offset())?;
            let (changed, closed) = self.core.on_append(std::slice::from_ref(&le), now);
            for p in changed {
                producers.insert(p.producer_id, p);
            }
            aborted.extend(closed);
            out.push(le);
        }
        let producers: Vec<_> = producers.into_values().collect();
        let started = std::time::Instant::now();
        let log_hs = hs.map(crate::replica::log_store::to_log_hard_state);
        self.shared.log.append_with_hard_state(&out, &producers, &aborted, &self.core.meta(), log_hs.as_ref())?;
        self.metrics.log_write_us.record(started.elapsed().as_micros() as u64);
        if let Some(hs) = hs {
            self.store.note_hard_state(hs);
        }
        let last = out.last().expect("entries");
        self.store.note_appended(first, last.index, last.term);
        self.shared.log_end.store(self.core.next_offset(), Ordering::SeqCst);
        Ok(())
    }

    /// Rebuilds producers `ids` from the log before index `below`, walking back at most
    /// [`PRODUCER_REBUILD_SCAN`] entries (a producer idle for longer is forgotten: its next
    /// batch must start a new sequence, as after expiry).
    fn rebuild_producers(&mut self, below: u64, ids: &[i64]) -> (Vec<backwaters_storage::ProducerEntry>, Vec<i64>) {
        if ids.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let log = self.shared.log.clone();
        let lowest = self.store.first_index().max(below.saturating_sub(PRODUCER_REBUILD_SCAN));
        let older = log.batch_heads_back(lowest, below);
        let (rebuilt, gone) = self.core.rebuild_producers(ids, older, self.clock.now_ms());
        tracing::info!(topic = %self.shared.topic, partition = self.shared.partition, rebuilt = rebuilt.len(), forgotten = gone.len(), "producer states rebuilt from the kept log");
        (rebuilt, gone)
    }

    fn install_snapshot(&mut self, snap: raft::prelude::Snapshot) -> Result<(), ActorProcessingErr> {
        let data: SnapshotData = serde_json::from_slice(&snap.data).map_err(|e| format!("snapshot data: {e}"))?;
        if data.next_offset < 0 {
            return Err(format!("snapshot at index {} continues at offset {}: refused", snap.get_metadata().index, data.next_offset).into());
        }
        let (index, term) = (snap.get_metadata().index, snap.get_metadata().term);
        let meta = self.core.on_snapshot(index, term, data.next_offset, &data.producers);
        self.shared.log.install_snapshot(&meta, &data.producers)?;
        self.store.note_snapshot(index, term, data.next_offset);
        self.local_durable = data.next_offset;
        self.shared.publish(&self.core);
        tracing::info!(topic = %self.shared.topic, partition = self.shared.partition, index, next_offset = data.next_offset, "installed a snapshot from the leader");
        Ok(())
    }
}
