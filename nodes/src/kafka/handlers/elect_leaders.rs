//! ElectLeaders (key 43): preferred leader election, as `kafka-leader-election
//! --election-type preferred` and admin clients' `elect_leaders` ask it. Leadership already
//! returns to the preferred replica (the first one not drained) on its own once it has been
//! caught up for `limits.leader_rebalance_ms`; this asks for it now. The request goes
//! through the metadata log to each partition's leader, which hands over once the preferred
//! replica has every entry. Unclean elections do not exist under Raft: a partition with a
//! leader needs none, one without gets ELIGIBLE_LEADERS_NOT_AVAILABLE. Needs ALTER on the
//! cluster.

use super::{str, timeout_ms, topic_name, KafkaCtx};
use backwaters_actors::acl::op;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };
pub const ADVERTISED: VersionRange = VERSIONS;

const PREFERRED: i8 = 0;

type Outcome = Result<(), (ResponseError, String)>;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: ElectLeadersRequest) -> Option<ElectLeadersResponse> {
    if !ctx.allowed_cluster(op::ALTER) {
        let resp = ElectLeadersResponse::default();
        return Some(if h.request_api_version >= 1 { resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code()) } else { resp });
    }
    let election = if h.request_api_version >= 1 { req.election_type } else { PREFERRED };
    // Null: every partition of every topic.
    let asked: Vec<(String, i32)> = match &req.topic_partitions {
        Some(ts) => ts.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.to_string(), *p))).collect(),
        None => ctx.node.topics().iter().flat_map(|t| t.partitions.iter().map(|p| (t.record.name.clone(), p.partition)).collect::<Vec<_>>()).collect(),
    };
    let mut outcome: BTreeMap<(String, i32), Outcome> = BTreeMap::new();
    let mut moving = Vec::new();
    for (topic, partition) in asked {
        let found = ctx.node.topic(&topic).and_then(|t| t.partitions.get(partition as usize).cloned().zip(t.record.partition_uids.get(partition as usize).copied()));
        let r = match found {
            None => Err((ResponseError::UnknownTopicOrPartition, format!("{topic}-{partition} does not exist"))),
            Some((p, _)) if election != PREFERRED => match p.leader() {
                Some(_) => Err((ResponseError::ElectionNotNeeded, "the partition has a leader".into())),
                None => Err((ResponseError::EligibleLeadersNotAvailable, "Raft elects only a replica that holds every committed record: no unclean elections".into())),
            },
            Some((p, uid)) => match ctx.node.preferred_leader(&p) {
                Some(pref) if p.leader() == Some(pref) => Err((ResponseError::ElectionNotNeeded, format!("node {pref}, the preferred replica, leads already"))),
                Some(pref) => {
                    moving.push((p, uid, pref));
                    Ok(())
                }
                None => Err((ResponseError::PreferredLeaderNotAvailable, "every replica is on a drained node".into())),
            },
        };
        outcome.insert((topic, partition), r);
    }
    if !moving.is_empty() {
        let uids = moving.iter().map(|(_, uid, _)| *uid).collect();
        if let Err(e) = ctx.node.elect_preferred(uids).await {
            for (p, _, _) in &moving {
                outcome.insert((p.topic.clone(), p.partition), Err((ResponseError::NotController, e.to_string())));
            }
            moving.clear();
        }
        // Each leader hands over once its preferred replica is caught up.
        let deadline = tokio::time::Instant::now() + timeout_ms(req.timeout_ms).min(std::time::Duration::from_secs(60));
        while moving.iter().any(|(p, _, pref)| p.leader() != Some(*pref)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        for (p, _, pref) in &moving {
            if p.leader() != Some(*pref) {
                let msg = format!("node {pref}, the preferred replica, did not take over in time (not caught up, or unreachable)");
                outcome.insert((p.topic.clone(), p.partition), Err((ResponseError::PreferredLeaderNotAvailable, msg)));
            }
        }
    }
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, partition), r) in outcome {
        let pr = match r {
            Ok(()) => PartitionResult::default().with_partition_id(partition),
            Err((code, msg)) => PartitionResult::default().with_partition_id(partition).with_error_code(code.code()).with_error_message(Some(str(&msg))),
        };
        match results.last_mut() {
            Some(t) if t.topic.0.as_str() == topic => t.partition_result.push(pr),
            _ => results.push(ReplicaElectionResult::default().with_topic(topic_name(&topic)).with_partition_result(vec![pr])),
        }
    }
    Some(ElectLeadersResponse::default().with_replica_election_results(results))
}
