//! Partition replicas as Raft group members (issue 3, first step): [`ReplicaCore`] owns a
//! tikv raft-rs `RawNode` and runs its ready loop in the fixed order raft-rs requires
//! (send leader messages, apply snapshot, apply committed entries, persist entries and hard
//! state, send the messages that needed persistence, advance, apply what advancing
//! committed). It is pure: no clock (time is `tick()`), no sockets (messages leave as values),
//! and its storage is the raft-rs `Storage` it is given, so the same core runs in the
//! deterministic simulation ([`sim`]) and, next, in the partition actor over sled.
//!
//! The partition actor ([`crate::partition`]) drives a `RawNode` over the sled log
//! ([`log_store`]) with raft-rs's async-persist API: a ready's writes go to sled at once and
//! become durable at the node's next flush, and only then are the messages that needed them
//! (append answers, votes) sent. [`ReplicaCore`] runs the same loop over in-memory storage:
//! each ready becomes a [`DiskJob`] the simulation completes later (a slow disk completes
//! late), and a crash loses what was written but not yet completed.

pub mod log_store;
pub mod sim;

use bytes::Bytes;
use raft::prelude::{ConfState, Config, Entry, EntryType, HardState, Message, RawNode, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, StateRole, Storage};
use std::collections::VecDeque;

/// One committed entry as the state machine sees it (leader no-ops are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub index: u64,
    pub term: u64,
    pub data: Bytes,
}

/// What one turn of the ready loop produced.
#[derive(Debug, Default)]
pub struct Turn {
    pub messages: Vec<Message>,
    pub applied: Vec<Applied>,
}

/// How a replica's election timeout is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Each timeout drawn at random (production: spreads elections apart).
    Randomized,
    /// Always this many ticks (deterministic simulation; must be >= ELECTION_TICKS).
    Fixed(usize),
}

/// Raft timing in ticks (the caller decides how long a tick is).
pub const ELECTION_TICKS: usize = 10;
pub const HEARTBEAT_TICKS: usize = 2;

pub struct ReplicaCore {
    pub id: u64,
    node: RawNode<MemStorage>,
    storage: MemStorage,
    /// Fault injection for checker tests: send append answers and votes as soon as they are
    /// written, before the disk made them durable (what acks=all must never do).
    pub early_acks: bool,
    /// Readies written but not yet durable, oldest first.
    pending: VecDeque<DiskJob>,
}

/// One ready's writes, as they must reach the disk, and the messages that wait for them.
#[derive(Debug, Clone)]
pub struct DiskJob {
    pub number: u64,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    pub messages: Vec<Message>,
}

impl DiskJob {
    /// Applies the writes to `storage` (in order: snapshot, entries, hard state).
    pub fn write_to(&self, storage: &MemStorage) -> Result<(), raft::Error> {
        if let Some(s) = &self.snapshot {
            storage.wl().apply_snapshot(s.clone())?;
        }
        if !self.entries.is_empty() {
            storage.wl().append(&self.entries)?;
        }
        if let Some(hs) = &self.hard_state {
            storage.wl().set_hardstate(hs.clone());
        }
        Ok(())
    }
}

/// A separate copy of `s` (hard state, configuration, entries) for the simulation: what a
/// disk holds, apart from the live storage a replica keeps writing to. `s` must hold its
/// whole log (the simulation never compacts).
pub fn copy_storage(s: &MemStorage) -> Result<MemStorage, raft::Error> {
    let state = s.initial_state()?;
    let copy = MemStorage::new_with_conf_state(state.conf_state.clone());
    let (first, last) = (s.first_index()?, s.last_index()?);
    // The simulation never compacts its logs, so no snapshot stands in for early entries.
    assert_eq!(first, 1, "copy_storage: a compacted log");
    if last >= first {
        copy.wl().append(&s.entries(first, last + 1, None, GetEntriesContext::empty(false))?)?;
    }
    copy.wl().set_hardstate(state.hard_state);
    Ok(copy)
}

pub fn discard_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// Raft ids must not be 0 (raft-rs's "none"); Kafka broker ids may be.
pub fn raft_id(node: i32) -> u64 {
    node as u64 + 1
}

/// The node id of a Raft id.
pub fn node_of(raft_id: u64) -> i32 {
    (raft_id - 1) as i32
}

/// Carries Raft messages to the replicas of other nodes. Best effort: Raft retries what is
/// lost. The gRPC transport batches many groups' messages per destination node; tests use an
/// in-memory one.
pub trait Transport: Send + Sync {
    /// Sends `messages` of Raft group `group` to their destinations (`Message::to`).
    fn send(&self, group: u64, messages: Vec<Message>);
}

/// A Raft message as bytes on the wire (raft-rs's protobuf encoding).
pub fn encode_message(m: &Message) -> Vec<u8> {
    protobuf::Message::write_to_bytes(m).expect("raft message encodes")
}

/// Parses a Raft message from a peer. Only ever called on traffic from a peer that named our
/// cluster (rust-protobuf 2 has RUSTSEC-2024-0437: unbounded recursion on hostile input).
pub fn decode_message(b: &[u8]) -> Result<Message, String> {
    protobuf::Message::parse_from_bytes(b).map_err(|e| format!("bad raft message: {e}"))
}

/// A transport with nowhere to go (a single-node cluster never sends).
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&self, group: u64, messages: Vec<Message>) {
        if !messages.is_empty() {
            tracing::warn!(group, n = messages.len(), "raft messages with no peer transport dropped");
        }
    }
}

/// raft-rs configuration of a replica. `applied`: the index the state machine has applied.
pub fn raft_config(id: u64, timing: Timing, applied: u64) -> Config {
    let (min_election_tick, max_election_tick) = match timing {
        // raft-rs draws each election timeout from [min, max) with its own thread RNG. Its
        // default max is twice the min; 1.5x still keeps elections apart for a handful of
        // replicas and shortens the worst case of a failover (silence noticed, pre-vote,
        // vote, the new leader's first commit, the client's retry), which with 2x came
        // within 50 ms of the 2 s target (tests/cluster.rs, leader SIGKILL).
        Timing::Randomized => (ELECTION_TICKS, ELECTION_TICKS * 3 / 2),
        // A range of one value: no hidden randomness (the simulation picks it per replica
        // from its seed, so runs replay exactly).
        Timing::Fixed(ticks) => (ticks, ticks + 1),
    };
    Config {
        id,
        election_tick: ELECTION_TICKS,
        min_election_tick,
        max_election_tick,
        heartbeat_tick: HEARTBEAT_TICKS,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    }
}

impl ReplicaCore {
    /// A new member of a group of `voters` (all start empty with the same configuration).
    pub fn new(id: u64, voters: &[u64], timing: Timing) -> Result<ReplicaCore, raft::Error> {
        let storage = MemStorage::new_with_conf_state(ConfState::from((voters.to_vec(), vec![])));
        Self::restart(id, storage, timing)
    }

    /// A member restarted from what its storage kept (a crash loses nothing persisted).
    pub fn restart(id: u64, storage: MemStorage, timing: Timing) -> Result<ReplicaCore, raft::Error> {
        // The state machine is rebuilt by replaying the log from the start.
        let cfg = raft_config(id, timing, 0);
        cfg.validate()?;
        let node = RawNode::new(&cfg, storage.clone(), &discard_logger())?;
        Ok(ReplicaCore { id, node, storage, early_acks: false, pending: VecDeque::new() })
    }

    /// The storage (kept by the simulation across a crash, as a disk would be).
    pub fn storage(&self) -> MemStorage {
        self.storage.clone()
    }

    /// Readies written and not yet durable.
    pub fn disk_backlog(&self) -> usize {
        self.pending.len()
    }

    /// The disk makes the oldest `n` written readies durable: raft-rs learns they are
    /// persisted, and the jobs (with the messages that waited for them) are returned for
    /// the caller to store on its durable copy and send.
    pub fn complete_disk(&mut self, n: usize) -> Vec<DiskJob> {
        let done: Vec<DiskJob> = self.pending.drain(..n.min(self.pending.len())).collect();
        if let Some(last) = done.last() {
            self.node.on_persist_ready(last.number);
        }
        done
    }

    pub fn tick(&mut self) {
        self.node.tick();
    }

    pub fn step(&mut self, m: Message) -> Result<(), raft::Error> {
        self.node.step(m)
    }

    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), raft::Error> {
        self.node.propose(vec![], data)
    }

    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    pub fn commit_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    /// Runs the ready loop once, in the partition actor's order (partition/mod.rs `turn`):
    /// send what may go before persisting (a leader's appends), apply what is committed,
    /// write (storage reads it back at once, as sled does), queue the job, and hold the
    /// messages that need the write durable (append answers, votes) until
    /// [`ReplicaCore::complete_disk`].
    pub fn turn(&mut self) -> Result<Turn, raft::Error> {
        let mut out = Turn::default();
        if !self.node.has_ready() {
            return Ok(out);
        }
        let mut ready = self.node.ready();
        out.messages.extend(ready.take_messages());
        let committed = ready.take_committed_entries();
        let last_committed = committed.last().map(|e| e.index);
        collect(&mut out.applied, committed);
        let mut job = DiskJob {
            number: ready.number(),
            snapshot: (!ready.snapshot().is_empty()).then(|| ready.snapshot().clone()),
            entries: ready.take_entries(),
            hard_state: ready.hs().cloned(),
            messages: ready.take_persisted_messages(),
        };
        if self.early_acks {
            out.messages.append(&mut job.messages);
        }
        job.write_to(&self.storage)?;
        self.node.advance_append_async(ready);
        if let Some(i) = last_committed {
            self.node.advance_apply_to(i);
        }
        self.pending.push_back(job);
        Ok(out)
    }
}

fn collect(applied: &mut Vec<Applied>, entries: Vec<Entry>) {
    for e in entries {
        if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
            applied.push(Applied { index: e.index, term: e.term, data: Bytes::from(e.data.to_vec()) });
        }
    }
}
