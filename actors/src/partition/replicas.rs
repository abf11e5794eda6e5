//! The leader's view of its replicas, checked on ticks: which are in sync, which wait for a
//! snapshot that was lost, and where leadership belongs (preferred replica, drained nodes,
//! a nearly full disk).

use super::PartitionState;
use crate::replica::{node_of, raft_id};
use raft::StateRole;

impl PartitionState {
    /// Whether replica `node` was heard from within the last two election timeouts.
    pub(super) fn active(&self, node: i32) -> bool {
        self.last_active.get(&node).is_some_and(|t| self.ticks.saturating_sub(*t) <= 2 * crate::replica::ELECTION_TICKS as u64)
    }

    /// Records which replicas are in sync (leader only): recently heard from and holding
    /// every committed entry.
    pub(super) fn note_in_sync(&mut self) {
        let mut isr = Vec::new();
        if self.raft.raft.state == StateRole::Leader {
            isr.push(self.node_id);
            let committed = self.raft.raft.raft_log.committed;
            let now = self.ticks;
            for (id, pr) in self.raft.raft.prs().iter() {
                if pr.recent_active {
                    self.last_active.insert(node_of(*id), now);
                }
            }
            for (id, pr) in self.raft.raft.prs().iter() {
                let node = node_of(*id);
                if node != self.node_id && self.active(node) && pr.matched >= committed {
                    isr.push(node);
                }
            }
        } else {
            self.last_active.clear();
        }
        *self.shared.in_sync.lock().expect("lock") = isr;
    }

    /// A snapshot message lost on the way (a dropped or full link) leaves raft-rs waiting for
    /// it forever unless told it failed: a follower still waiting for the same snapshot one
    /// check later is reported failed, so the leader probes it and sends a fresh one.
    pub(super) fn retry_snapshots(&mut self) {
        let waiting: Vec<(u64, u64)> = if self.raft.raft.state == StateRole::Leader {
            self.raft.raft.prs().iter().filter(|(_, pr)| pr.state == raft::ProgressState::Snapshot).map(|(id, pr)| (*id, pr.pending_snapshot)).collect()
        } else {
            Vec::new()
        };
        for w in &waiting {
            if self.snapshot_waits.contains(w) {
                tracing::info!(topic = %self.shared.topic, partition = self.shared.partition, replica = node_of(w.0), index = w.1, "snapshot not acknowledged; sending it again");
                self.raft.report_snapshot(w.0, raft::SnapshotStatus::Failure);
            }
        }
        self.snapshot_waits = waiting;
    }

    /// Moves leadership where it belongs: to the first replica (placement spread those over
    /// the nodes) that is not drained, once it has been caught up for `rebalance_checks`
    /// checks in a row, so after a node returns leaders rebalance instead of piling up on the
    /// nodes that stayed (Kafka's auto.leader.rebalance). A drained leader hands over at once
    /// to the first caught-up replica that is not drained, and so does a leader whose disk is
    /// nearly full (it refuses writes; a follower whose disk is full drops appends, so it is
    /// never caught up and never handed leadership). The metadata log's leader stays.
    pub(super) fn return_leadership(&mut self) {
        if self.raft.raft.state != StateRole::Leader || self.shared.topic == crate::controller::METADATA_TOPIC {
            self.preferred_ready = 0;
            return;
        }
        let drained = self.drained.read().expect("lock").clone();
        let last = self.raft.raft.raft_log.last_index();
        let caught_up = |st: &PartitionState, node: i32| st.active(node) && st.raft.raft.prs().get(raft_id(node)).is_some_and(|pr| pr.matched >= last);
        let candidates: Vec<i32> = self.shared.replicas.iter().copied().filter(|r| !drained.contains(r)).collect();
        let disk_low = self.disk.low();
        if drained.contains(&self.node_id) || disk_low {
            self.preferred_ready = 0;
            if let Some(to) = candidates.iter().copied().find(|r| *r != self.node_id && caught_up(self, *r)) {
                let why = if disk_low { "disk nearly full" } else { "drained" };
                tracing::info!(topic = %self.shared.topic, partition = self.shared.partition, to, why, "this node should lead nothing: handing leadership over");
                self.raft.transfer_leader(raft_id(to));
            }
            return;
        }
        let Some(&preferred) = candidates.first() else { return };
        if preferred == self.node_id || !caught_up(self, preferred) {
            self.preferred_ready = 0;
            return;
        }
        self.preferred_ready += 1;
        if self.preferred_ready >= self.rebalance_checks {
            tracing::info!(topic = %self.shared.topic, partition = self.shared.partition, to = preferred, "handing leadership back to the preferred replica");
            self.raft.transfer_leader(raft_id(preferred));
            self.preferred_ready = 0;
        }
    }
}
