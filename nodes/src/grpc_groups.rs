//! Consumer-group administration over gRPC: list, describe with lag, reset offsets (only
//! while the group is empty, as Kafka's `kafka-consumer-groups --reset-offsets`), delete.

use backwaters_actors::group::state::GroupError;
use backwaters_actors::group::{CommitOffset, CoordinatorMsg, GroupDescription};
use backwaters_actors::node::Node;
use backwaters_proto::grpc::v1 as pb;
use backwaters_proto::kafka::consumer_protocol::assignment_partitions;
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::Status;

const CALL: Duration = Duration::from_secs(30);

pub fn group_status(e: GroupError) -> Status {
    let msg = e.to_string();
    match e {
        GroupError::GroupIdNotFound => Status::not_found(msg),
        GroupError::NonEmptyGroup => Status::failed_precondition("the group has members; stop its consumers first"),
        GroupError::UnknownMemberId => Status::failed_precondition("the group has active members; stop its consumers before resetting offsets"),
        GroupError::InvalidGroupId | GroupError::UnknownTopicOrPartition | GroupError::OffsetMetadataTooLarge => Status::invalid_argument(msg),
        GroupError::CoordinatorNotAvailable | GroupError::CoordinatorLoadInProgress | GroupError::NotCoordinator | GroupError::RebalanceInProgress => Status::unavailable(format!("{msg}; retry")),
        _ => Status::failed_precondition(msg),
    }
}

pub async fn list(node: &Node) -> Result<pb::ListGroupsResponse, Status> {
    let groups = node.list_groups().await.map_err(group_status)?;
    Ok(pb::ListGroupsResponse { groups: groups.into_iter().map(|g| pb::GroupSummary { group_id: g.group_id, protocol_type: g.protocol_type, state: g.state.to_string(), group_type: g.group_type.to_string() }).collect() })
}

async fn describe_raw(node: &Node, group: &str) -> Result<GroupDescription, Status> {
    node.ask_coordinator(group, CALL, |port| CoordinatorMsg::Describe(group.to_string(), port))
        .await
        .map_err(group_status)?
        .ok_or_else(|| Status::not_found(format!("group {group:?} does not exist")))
}

pub async fn describe(node: &Node, group: &str) -> Result<pb::DescribeGroupResponse, Status> {
    let d = describe_raw(node, group).await?;
    let consumer = d.protocol_type == "consumer";
    let mut rows: BTreeMap<(String, i32), pb::GroupPartition> = BTreeMap::new();
    let mut members = Vec::with_capacity(d.members.len());
    for m in &d.members {
        let assignment = if consumer { assignment_partitions(&m.assignment).unwrap_or_default() } else { vec![] };
        for (t, ps) in &assignment {
            for p in ps {
                rows.entry((t.clone(), *p)).or_insert_with(|| row(node, t, *p, -1, "")).member_id = m.member_id.clone();
            }
        }
        members.push(pb::GroupMember {
            member_id: m.member_id.clone(),
            instance_id: m.instance_id.clone().unwrap_or_default(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            assignment: assignment.into_iter().map(|(topic, partitions)| pb::TopicPartitions { topic, partitions }).collect(),
        });
    }
    for (t, p, v) in &d.offsets {
        let member = rows.get(&(t.clone(), *p)).map(|r| r.member_id.clone()).unwrap_or_default();
        let mut r = row(node, t, *p, v.offset, &v.metadata);
        r.member_id = member;
        rows.insert((t.clone(), *p), r);
    }
    Ok(pb::DescribeGroupResponse {
        group_id: d.group_id,
        state: d.state.to_string(),
        protocol_type: d.protocol_type,
        protocol: d.protocol,
        generation: d.generation,
        leader: d.leader,
        members,
        partitions: rows.into_values().collect(),
        coordinator: node.settings().node_id,
        group_type: d.group_type.to_string(),
    })
}

/// A partition row with lag against the high watermark (-1 when nothing is committed).
fn row(node: &Node, topic: &str, partition: i32, committed: i64, metadata: &str) -> pb::GroupPartition {
    let hw = node.partition(topic, partition).map(|p| p.high_watermark()).unwrap_or(-1);
    let lag = if committed >= 0 && hw >= 0 { (hw - committed).max(0) } else { -1 };
    pb::GroupPartition { topic: topic.into(), partition, committed_offset: committed, high_watermark: hw, lag, member_id: String::new(), metadata: metadata.into() }
}

/// Resets a group's offsets; `may_read` refuses a topic the caller may not read.
pub async fn reset(node: &Node, r: pb::ResetGroupOffsetsRequest, may_read: impl Fn(&str) -> Result<(), Status>) -> Result<pb::ResetGroupOffsetsResponse, Status> {
    use pb::reset_group_offsets_request::To;
    let to = r.to.ok_or_else(|| Status::invalid_argument("say where to: earliest, latest, timestamp_ms or offset"))?;
    let topics: Vec<String> = if r.topics.is_empty() {
        let d = describe_raw(node, &r.group_id).await?;
        let mut ts: Vec<String> = d.offsets.iter().map(|(t, _, _)| t.clone()).collect();
        ts.dedup();
        if ts.is_empty() {
            return Err(Status::invalid_argument(format!("group {:?} has no committed offsets; name the topics to reset", r.group_id)));
        }
        ts
    } else {
        r.topics
    };
    let mut plan = Vec::new();
    for t in &topics {
        may_read(t)?;
        let topic = node.topic(t).ok_or_else(|| Status::not_found(format!("topic {t:?} does not exist")))?;
        for p in &topic.partitions {
            let (start, hw) = (p.log_start_offset(), p.high_watermark());
            let target = match to {
                To::Earliest(_) => start,
                To::Latest(_) => hw,
                To::Offset(o) => o.clamp(start, hw),
                To::TimestampMs(ts) => p.offset_for_time(ts).map_err(|e| Status::internal(e.to_string()))?.map(|(o, _)| o).unwrap_or(hw),
            };
            plan.push(CommitOffset { topic: t.clone(), partition: p.partition, offset: target, leader_epoch: -1, metadata: String::new() });
        }
    }
    if !r.dry_run {
        let offsets = plan.clone();
        let results = node
            .ask_coordinator(&r.group_id, CALL, |reply| CoordinatorMsg::Commit { group: r.group_id.clone(), member_id: String::new(), instance_id: None, generation: -1, offsets, reply })
            .await
            .and_then(|r| r)
            .map_err(group_status)?;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(group_status(e));
        }
        tracing::info!(group = %r.group_id, partitions = plan.len(), "group offsets reset");
    }
    Ok(pb::ResetGroupOffsetsResponse { partitions: plan.iter().map(|c| row(node, &c.topic, c.partition, c.offset, "")).collect() })
}

pub async fn delete(node: &Node, group: &str) -> Result<pb::DeleteGroupResponse, Status> {
    node.ask_coordinator(group, CALL, |port| CoordinatorMsg::Delete(group.to_string(), port)).await.and_then(|r| r).map_err(group_status)?;
    Ok(pb::DeleteGroupResponse {})
}
