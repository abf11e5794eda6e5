//! The controller: cluster metadata in its own Raft group.
//!
//! As Kafka's KRaft, the metadata is a log: the partition `__cluster_metadata`-0, replicated
//! by Raft over every node, holds one JSON record per change (topics with their partition
//! assignments and configs, partition leaders, producer-id blocks, node drains, node
//! liveness as the controller sees it in the actor cluster, Kafka users' SCRAM
//! credentials, ACLs and client quotas). Every node applies the
//! committed records in order to its own copy (the catalog behind Metadata), starting the
//! replicas it is assigned and stopping those of deleted topics. Changes are decided by the
//! leader of that group (the controller): a node forwards a request to it, the controller
//! checks it against the applied state, writes the records (acks=all) and answers with the
//! offset after them; the asking node answers its client once it has applied that far itself,
//! so a client that created a topic finds it on the node it asked.

use crate::node::{AdminError, ConfigOp};
use crate::topic::TopicRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The metadata log's topic (as KRaft's); never listed to clients.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Storage and Raft-group id of the metadata partition; topic partitions get 1, 2, ...
pub const METADATA_UID: u64 = 0;
/// Producer ids handed to a node at once.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// One record of the metadata log. Versioned by its `type` tag; unknown types are skipped
/// with a warning (a newer node's record on an older node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetaRecord {
    /// A topic as it is now (created, grown, or reconfigured).
    Topic { record: TopicRecord },
    DeleteTopic { name: String },
    /// The replica on `node` leads partition `uid` in Raft term `term`.
    Leader { uid: u64, node: i32, term: u64 },
    /// Producer ids `first .. first + count` belong to `node`.
    ProducerIds { node: i32, first: i64, count: i64 },
    /// `node` is drained (leads nothing; its leaderships move to other replicas) or back.
    Drain { node: i32, drained: bool },
    /// The controller saw `node`'s actor system join (alive) or leave the actor cluster.
    Liveness { node: i32, alive: bool },
    /// Records of partition `uid` before `offset` are deleted (DeleteRecords): every replica
    /// moves its log start there once its high watermark has, so a new leader never serves
    /// them again.
    LogStart { uid: u64, offset: i64 },
    /// Every replica of compacted partition `uid` holds its log up to `offset`: compaction
    /// may drop tombstones below it (a replica that was behind must still receive a key's
    /// tombstone, or it would keep the values the tombstone deleted).
    TombstoneHorizon { uid: u64, offset: i64 },
    /// A Kafka user's SCRAM credential for `mechanism` ("SCRAM-SHA-256" / "SCRAM-SHA-512"),
    /// set (`Some`) or removed (`None`). Only the salted keys, never a password.
    Scram { user: String, mechanism: String, credential: Option<backwaters_proto::sasl::ScramCredential> },
    /// A Kafka ACL added (`present`) or removed.
    Acl { binding: crate::acl::AclBinding, present: bool },
    /// ElectLeaders (preferred): the leaders of these partitions hand leadership to their
    /// preferred replica now instead of after the rebalance delay. Acted on only when
    /// applied live, never when a restarting node replays the log.
    ElectPreferred { uids: Vec<u64> },
    /// A transactional id's state as it is now (see [`crate::txn`]).
    Txn { state: crate::txn::TxnState },
    /// A client quota of `entity` set (`Some`) or removed (see [`crate::quota`]).
    Quota { entity: crate::quota::QuotaEntity, key: String, value: Option<crate::quota::QuotaValue> },
}

/// What a node asks of the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControllerRequest {
    CreateTopic { name: String, partitions: i32, replication_factor: i16, overrides: BTreeMap<String, String> },
    DeleteTopic { name: String },
    CreatePartitions { name: String, total: i32 },
    AlterConfig { name: String, ops: Vec<(String, Option<String>)>, replace: bool },
    ProducerIds { node: i32 },
    Leader { uid: u64, node: i32, term: u64 },
    Drain { node: i32, drained: bool },
    Liveness { node: i32, alive: bool },
    LogStart { uid: u64, offset: i64 },
    TombstoneHorizon { uid: u64, offset: i64 },
    /// Set (`Some`) or remove (`None`) a user's SCRAM credential (AlterUserScramCredentials).
    Scram { user: String, mechanism: String, credential: Option<backwaters_proto::sasl::ScramCredential> },
    /// Add and remove ACLs (CreateAcls / DeleteAcls); ones already there / already gone are
    /// skipped.
    Acls { create: Vec<crate::acl::AclBinding>, delete: Vec<crate::acl::AclBinding> },
    ElectPreferred { uids: Vec<u64> },
    /// A transaction coordinator request (the controller is the coordinator).
    Txn { op: crate::txn::TxnOp },
    /// Set (`Some`) or remove (`None`) client quotas of one entity (AlterClientQuotas).
    Quotas { entity: crate::quota::QuotaEntity, ops: Vec<(String, Option<crate::quota::QuotaValue>)> },
    /// Writes nothing: answered with the controller's applied offset, so the asking node,
    /// once it has applied that far, knows everything the controller knew when asked.
    Barrier,
}

impl ControllerRequest {
    pub fn alter(name: &str, ops: &[ConfigOp], replace: bool) -> ControllerRequest {
        let ops = ops
            .iter()
            .map(|o| match o {
                ConfigOp::Set(k, v) => (k.clone(), Some(v.clone())),
                ConfigOp::Delete(k) => (k.clone(), None),
            })
            .collect();
        ControllerRequest::AlterConfig { name: name.to_string(), ops, replace }
    }
}

/// The controller's answer: the metadata offset the change is applied at.
pub type ControllerReply = Result<i64, AdminError>;

/// A node of the cluster as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: i32,
    pub zone: String,
}

/// Zone-aware placement: nodes are interleaved by zone (east-1, central-1, west-1, east-2,
/// ...), and partition `p` takes `rf` consecutive nodes from position `start + p`. With equal
/// zone sizes and `rf` <= zones the replicas of a partition are in different zones; the first
/// replica (the preferred leader) walks over every node, so leaders spread evenly.
pub fn place(members: &[Member], partitions: std::ops::Range<i32>, rf: usize, start: usize) -> Vec<Vec<i32>> {
    let mut zones: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for m in members {
        zones.entry(m.zone.as_str()).or_default().push(m.id);
    }
    for ids in zones.values_mut() {
        ids.sort();
    }
    let mut ring = Vec::with_capacity(members.len());
    let depth = zones.values().map(|v| v.len()).max().unwrap_or(0);
    for i in 0..depth {
        for ids in zones.values() {
            if let Some(id) = ids.get(i) {
                ring.push(*id);
            }
        }
    }
    assert!(rf <= ring.len(), "replication factor {rf} above {} nodes", ring.len());
    partitions.map(|p| (0..rf).map(|k| ring[(start + p as usize + k) % ring.len()]).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<Member> {
        let zones = ["east", "central", "west"];
        (0..n).map(|i| Member { id: i as i32 + 1, zone: zones[i % 3].to_string() }).collect()
    }

    #[test]
    fn replicas_sit_in_different_zones_and_leaders_spread() {
        for n in [3, 6, 9] {
            let m = members(n);
            let zone = |id: i32| m.iter().find(|x| x.id == id).unwrap().zone.clone();
            let placed = place(&m, 0..30, 3, 7);
            let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
            for r in &placed {
                let zones: std::collections::BTreeSet<String> = r.iter().map(|id| zone(*id)).collect();
                assert_eq!(zones.len(), 3, "{r:?} not spread over zones");
                *leaders.entry(r[0]).or_default() += 1;
            }
            assert_eq!(leaders.len(), n, "every node leads some partitions");
            let (lo, hi) = (leaders.values().min().unwrap(), leaders.values().max().unwrap());
            assert!(hi - lo <= 1, "leaders uneven: {leaders:?}");
        }
    }
}
