//! ConsumerGroupHeartbeat (key 68): the consumer group protocol of KIP-848 (librdkafka 2.12+
//! and Java 3.7+ with `group.protocol=consumer`). The coordinator assigns partitions itself
//! (assignors `uniform` and `range`) and each heartbeat carries the member's part; see
//! `backwaters_actors::group::consumer` for the epochs and the revoke-before-assign rule.
//!
//! Topics travel by id here: the member's owned partitions come as topic ids and its
//! assignment goes back as topic ids (Metadata v10+ maps ids to names). Needs READ on the
//! group and DESCRIBE on every topic subscribed by name; a regex subscription matches only
//! topics the member may DESCRIBE.

use super::{opt_str, str, KafkaCtx, GROUP_CALL};
use crate::kafka::errors;
use backwaters_actors::acl::op;
use backwaters_actors::group::consumer::{Assignment, ConsumerHeartbeat};
use backwaters_actors::group::state::GroupError;
use backwaters_actors::group::{validate_group_id, CoordinatorMsg};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment as WireAssignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

/// v0 lets the coordinator choose a joining member's id; v1 has the client choose it.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: ConsumerGroupHeartbeatRequest) -> Option<ConsumerGroupHeartbeatResponse> {
    let v = h.request_api_version;
    let refuse = |code: i16, why: String| Some(ConsumerGroupHeartbeatResponse::default().with_error_code(code).with_error_message(Some(str(&why))).with_member_id(Some(req.member_id.clone())).with_member_epoch(-1));
    let group = req.group_id.to_string();
    if let Err(e) = validate_group_id(&group) {
        return refuse(errors::group_error(&e), format!("group id must be 1 to {} bytes", backwaters_actors::group::GROUP_ID_MAX_BYTES));
    }
    let denied: Vec<String> = req.subscribed_topic_names.iter().flatten().map(|t| t.to_string()).filter(|t| !ctx.allowed_topic(op::DESCRIBE, t)).collect();
    if !denied.is_empty() {
        return refuse(ResponseError::TopicAuthorizationFailed.code(), format!("not authorized to describe subscribed topics: {}", denied.join(", ")));
    }
    let topics: BTreeMap<String, i32> = ctx.node.topics().iter().filter(|t| ctx.visible_topic(&t.record.name)).map(|t| (t.record.name.clone(), t.partitions.len() as i32)).collect();
    // Owned partitions of topics that no longer exist are dropped: nobody can own those.
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            if let Some(t) = ctx.node.topic_by_id(tp.topic_id) {
                a.entry(t.record.name.clone()).or_default().extend(tp.partitions.iter().copied());
            }
        }
        a
    });
    let mut member_id = req.member_id.to_string();
    if v == 0 && member_id.is_empty() && req.member_epoch == 0 {
        member_id = uuid::Uuid::new_v4().to_string();
    }
    let hb = ConsumerHeartbeat {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: opt_str(&req.instance_id),
        rack_id: opt_str(&req.rack_id),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_names: req.subscribed_topic_names.as_ref().map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        regex: if v >= 1 { opt_str(&req.subscribed_topic_regex) } else { None },
        assignor: opt_str(&req.server_assignor),
        owned,
        client_id: opt_str(&h.client_id).unwrap_or_default(),
        client_host: crate::kafka::client_host(),
    };
    let r = match ctx.ask_group(op::READ, &group, GROUP_CALL, |reply| CoordinatorMsg::ConsumerHeartbeat { group: group.clone(), req: hb, topics, reply }).await {
        Ok(r) => r,
        Err(GroupError::GroupAuthorizationFailed) => return refuse(ResponseError::GroupAuthorizationFailed.code(), format!("not authorized to read group {group}")),
        Err(e) => return refuse(errors::group_error(&e), format!("group coordinator: {e}")),
    };
    let assignment = r.assignment.map(|a| {
        WireAssignment::default().with_topic_partitions(
            a.into_iter()
                .filter_map(|(t, ps)| ctx.node.topic(&t).map(|topic| TopicPartitions::default().with_topic_id(topic.id()).with_partitions(ps.into_iter().collect())))
                .collect(),
        )
    });
    Some(
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(errors::group_code(r.error))
            .with_error_message(r.message.as_deref().map(str))
            .with_member_id(Some(str(&r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(assignment),
    )
}
