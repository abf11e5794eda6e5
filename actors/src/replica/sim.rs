//! A deterministic simulation of one Raft group: replicas, a network that can cut, isolate,
//! reorder and drop messages, disks that persist late (each replica writes at once and its
//! disk makes the writes durable some steps later, in order, as sled and the flusher do; a
//! slow disk takes much longer), clock jumps (a replica's timer firing a burst of ticks at
//! once, as after a pause or a jump of the clock its timer runs on), crashes that lose what
//! was not yet durable (or keep a prefix of it, as sled's recovery may), and restarts from
//! the disk, all driven by one seeded RNG, so a failing seed replays exactly. The checker
//! looks at what every replica applied: replicas never disagree about an index, and after
//! everything heals every committed entry is on every replica, in the same order, once.

use super::{copy_storage, Applied, DiskJob, ReplicaCore, Timing, ELECTION_TICKS};
use raft::prelude::Message;
use raft::storage::MemStorage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

/// Messages the network holds at most; more are dropped (as a full socket buffer would).
const IN_FLIGHT_MAX: usize = 10_000;
/// Chance per step that a disk completes some of its backlog: a healthy one, a slow one.
const DISK_RATE: f64 = 0.7;
const SLOW_DISK_RATE: f64 = 0.04;

pub struct SimCluster {
    pub seed: u64,
    rng: StdRng,
    ids: Vec<u64>,
    replicas: BTreeMap<u64, Option<ReplicaCore>>,
    /// Each replica's disk: what survives a crash (the live storage may hold more).
    storages: BTreeMap<u64, MemStorage>,
    /// Each disk's chance per step of completing writes.
    disk_rate: BTreeMap<u64, f64>,
    in_flight: Vec<Message>,
    /// Directed links that lose everything.
    cut: BTreeSet<(u64, u64)>,
    pub drop_rate: f64,
    /// What each replica applied since it last started (a restart replays from the log).
    pub applied: BTreeMap<u64, Vec<Applied>>,
    /// Every entry some replica applied: committed, so it must never be lost.
    pub committed: BTreeMap<u64, Applied>,
    proposals: u64,
    pub log: Vec<String>,
    /// Replicas whose disk acknowledges without storing (to show the checker catches loss).
    pub lying_disks: BTreeSet<u64>,
    /// Replicas that answer before their writes are durable (to show the checker catches it).
    pub early_acks: BTreeSet<u64>,
    /// Each replica's election timeout, drawn from the seed (raft-rs would use its own RNG).
    timing: BTreeMap<u64, Timing>,
}

impl SimCluster {
    pub fn new(seed: u64, replicas: u64) -> SimCluster {
        let ids: Vec<u64> = (1..=replicas).collect();
        let mut c = SimCluster {
            seed,
            rng: StdRng::seed_from_u64(seed),
            ids: ids.clone(),
            replicas: BTreeMap::new(),
            storages: BTreeMap::new(),
            disk_rate: BTreeMap::new(),
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
            drop_rate: 0.05,
            applied: BTreeMap::new(),
            committed: BTreeMap::new(),
            proposals: 0,
            log: Vec::new(),
            lying_disks: BTreeSet::new(),
            early_acks: BTreeSet::new(),
            timing: BTreeMap::new(),
        };
        for id in &ids {
            let t = Timing::Fixed(c.rng.gen_range(ELECTION_TICKS..2 * ELECTION_TICKS));
            c.timing.insert(*id, t);
            let r = ReplicaCore::new(*id, &ids, t).expect("valid config");
            c.storages.insert(*id, copy_storage(&r.storage()).expect("copy"));
            c.disk_rate.insert(*id, DISK_RATE);
            c.replicas.insert(*id, Some(r));
            c.applied.insert(*id, Vec::new());
        }
        c
    }

    fn note(&mut self, what: String) {
        self.log.push(what);
    }

    /// Makes replica `id`'s disk lie from now on.
    pub fn lie(&mut self, id: u64) {
        self.lying_disks.insert(id);
    }

    /// Makes replica `id` answer before its writes are durable, from now on.
    pub fn ack_early(&mut self, id: u64) {
        self.early_acks.insert(id);
        if let Some(Some(r)) = self.replicas.get_mut(&id) {
            r.early_acks = true;
        }
    }

    pub fn leader(&self) -> Option<u64> {
        // The live leader with the highest term (a deposed one may not know it yet).
        self.replicas.iter().filter_map(|(id, r)| r.as_ref().filter(|r| r.is_leader()).map(|r| (r.term(), *id))).max().map(|(_, id)| id)
    }

    fn live(&self) -> Vec<u64> {
        self.replicas.iter().filter(|(_, r)| r.is_some()).map(|(id, _)| *id).collect()
    }

    /// Disks complete part of their backlog, each at its own rate.
    fn run_disks(&mut self, all: bool) -> Result<(), String> {
        for id in self.live() {
            let r = self.replicas.get_mut(&id).and_then(Option::as_mut).expect("live");
            let backlog = r.disk_backlog();
            if backlog == 0 || !(all || self.rng.gen_bool(self.disk_rate[&id])) {
                continue;
            }
            let n = if all { backlog } else { self.rng.gen_range(1..=backlog) };
            for job in r.complete_disk(n) {
                self.make_durable(id, &job)?;
                for m in job.messages {
                    if self.in_flight.len() < IN_FLIGHT_MAX {
                        self.in_flight.push(m);
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes a job the disk of replica `id` completed (a lying disk keeps no entries).
    fn make_durable(&self, id: u64, job: &DiskJob) -> Result<(), String> {
        let kept = self.lying_disks.contains(&id).then(|| DiskJob { entries: Vec::new(), ..job.clone() });
        kept.as_ref().unwrap_or(job).write_to(&self.storages[&id]).map_err(|e| format!("replica {id} disk: {e}"))
    }

    /// Starts replica `id` again from what its disk holds.
    fn restart(&mut self, id: u64) -> Result<(), String> {
        let live = copy_storage(&self.storages[&id]).map_err(|e| e.to_string())?;
        let mut r = ReplicaCore::restart(id, live, self.timing[&id]).map_err(|e| format!("restart {id}: {e}"))?;
        r.early_acks = self.early_acks.contains(&id);
        self.replicas.insert(id, Some(r));
        self.applied.insert(id, Vec::new());
        Ok(())
    }

    /// One random action, then every replica's ready loop, then the checks.
    pub fn step(&mut self) -> Result<(), String> {
        let roll: f64 = self.rng.gen();
        if roll < 0.55 {
            self.deliver_one();
        } else if roll < 0.80 {
            for id in self.live() {
                self.replicas.get_mut(&id).and_then(Option::as_mut).expect("live").tick();
            }
        } else if roll < 0.97 {
            self.propose();
        } else {
            self.nemesis()?;
        }
        self.run_disks(false)?;
        self.turn_all()?;
        self.check()
    }

    fn deliver_one(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        let i = self.rng.gen_range(0..self.in_flight.len());
        let m = self.in_flight.swap_remove(i); // any order: the network reorders
        if self.cut.contains(&(m.from, m.to)) || self.rng.gen_bool(self.drop_rate) {
            return;
        }
        if let Some(Some(r)) = self.replicas.get_mut(&m.to) {
            let _ = r.step(m); // stale or foreign messages are Raft's to ignore
        }
    }

    fn propose(&mut self) {
        let Some(l) = self.leader() else { return };
        self.proposals += 1;
        let data = format!("s{}-w{}", self.seed, self.proposals).into_bytes();
        let _ = self.replicas.get_mut(&l).and_then(Option::as_mut).expect("leader is live").propose(data);
    }

    fn nemesis(&mut self) -> Result<(), String> {
        let id = self.ids[self.rng.gen_range(0..self.ids.len())];
        match self.rng.gen_range(0..7) {
            0 => {
                for o in self.ids.clone() {
                    if o != id {
                        self.cut.insert((id, o));
                        self.cut.insert((o, id));
                    }
                }
                self.note(format!("isolate {id}"));
            }
            1 => {
                let o = self.ids[self.rng.gen_range(0..self.ids.len())];
                if o != id {
                    self.cut.insert((id, o));
                    self.note(format!("cut {id}->{o}"));
                }
            }
            2 => {
                self.cut.clear();
                for rate in self.disk_rate.values_mut() {
                    *rate = DISK_RATE;
                }
                self.note("heal".into());
            }
            3 => {
                // Crash: the process is gone, its disk stays with what was durable, and
                // perhaps a prefix of what was still being written.
                let down = self.replicas.values().filter(|r| r.is_none()).count();
                if self.replicas[&id].is_some() && down + 1 < self.ids.len().div_ceil(2) + 1 {
                    let mut r = self.replicas.insert(id, None).flatten().expect("live");
                    let kept = self.rng.gen_range(0..=r.disk_backlog());
                    for job in r.complete_disk(kept) {
                        self.make_durable(id, &job)?;
                    }
                    self.in_flight.retain(|m| m.to != id);
                    self.note(format!("crash {id} (kept {kept} unflushed writes)"));
                }
            }
            4 => {
                self.disk_rate.insert(id, SLOW_DISK_RATE);
                self.note(format!("slow disk {id}"));
            }
            5 => {
                // The replica's timer fires a burst of ticks at once.
                if let Some(Some(r)) = self.replicas.get_mut(&id) {
                    let ticks = self.rng.gen_range(ELECTION_TICKS..3 * ELECTION_TICKS);
                    for _ in 0..ticks {
                        r.tick();
                    }
                    self.note(format!("clock jump {id} ({ticks} ticks)"));
                }
            }
            _ => {
                if self.replicas[&id].is_none() {
                    self.restart(id)?;
                    self.note(format!("restart {id}"));
                }
            }
        }
        Ok(())
    }

    fn turn_all(&mut self) -> Result<(), String> {
        for id in self.live() {
            let turn = self.replicas.get_mut(&id).and_then(Option::as_mut).expect("live").turn().map_err(|e| format!("replica {id}: {e}"))?;
            for m in turn.messages {
                if self.in_flight.len() < IN_FLIGHT_MAX {
                    self.in_flight.push(m);
                }
            }
            for a in turn.applied {
                self.committed.entry(a.index).or_insert_with(|| a.clone());
                self.applied.get_mut(&id).expect("known").push(a);
            }
        }
        Ok(())
    }

    /// Replicas agree on every index they both applied, and apply indexes in order.
    pub fn check(&self) -> Result<(), String> {
        for (id, applied) in &self.applied {
            for w in applied.windows(2) {
                if w[1].index <= w[0].index {
                    return Err(format!("seed {}: replica {id} applied index {} after {}", self.seed, w[1].index, w[0].index));
                }
            }
            for a in applied {
                let c = &self.committed[&a.index];
                if c != a {
                    return Err(format!("seed {}: replicas diverge at index {}: {:?} vs {:?}", self.seed, a.index, c, a));
                }
            }
        }
        Ok(())
    }

    /// Heals everything, restarts crashed replicas, and runs until every replica applied
    /// every committed entry; then checks nothing committed was lost or duplicated.
    pub fn settle(&mut self) -> Result<(), String> {
        self.cut.clear();
        self.drop_rate = 0.0;
        for id in self.ids.clone() {
            if self.replicas[&id].is_none() {
                self.restart(id)?;
            }
        }
        // Make sure the last term commits something, so everything before it commits too.
        for round in 0..20_000 {
            while !self.in_flight.is_empty() || self.replicas.values().flatten().any(|r| r.disk_backlog() > 0) {
                self.deliver_one();
                self.run_disks(true)?;
                self.turn_all()?;
            }
            for id in self.live() {
                self.replicas.get_mut(&id).and_then(Option::as_mut).expect("live").tick();
            }
            self.turn_all()?;
            if round % 50 == 0 {
                self.propose();
            }
            let max = self.committed.keys().next_back().copied().unwrap_or(0);
            let done = self.applied.values().all(|a| a.last().map(|x| x.index) == Some(max));
            if done && round > 100 {
                break;
            }
        }
        self.check()?;
        let reference: Vec<&Applied> = self.committed.values().collect();
        for (id, applied) in &self.applied {
            let got: Vec<&Applied> = applied.iter().collect();
            if got != reference {
                return Err(format!("seed {}: replica {id} applied {} entries, {} are committed", self.seed, got.len(), reference.len()));
            }
        }
        let unique: BTreeSet<&[u8]> = reference.iter().map(|a| a.data.as_ref()).collect();
        if unique.len() != reference.len() {
            return Err(format!("seed {}: an entry was committed twice", self.seed));
        }
        Ok(())
    }
}
