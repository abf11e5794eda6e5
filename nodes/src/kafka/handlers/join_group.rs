//! JoinGroup (key 11): a member joins (or rejoins) a group and waits until the rebalance
//! completes; the leader gets every member's subscription. Served from v0; v4+ gives new
//! members an id first (MEMBER_ID_REQUIRED), v5+ static membership.

use backwaters_actors::acl::op;
use super::{opt_str, str, KafkaCtx};
use crate::kafka::errors;
use backwaters_actors::group::state::{GroupError, JoinRequest, JoinResult};
use backwaters_actors::group::CoordinatorMsg;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use std::time::Duration;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 9 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: JoinGroupRequest) -> Option<JoinGroupResponse> {
    let v = h.request_api_version;
    let group = req.group_id.to_string();
    let client_id = opt_str(&h.client_id).unwrap_or_default();
    let rebalance_timeout_ms = if v >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms };
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: if v >= 5 { opt_str(&req.group_instance_id) } else { None },
        fresh_member_id: format!("{}-{}", if client_id.is_empty() { "member" } else { &client_id }, uuid::Uuid::new_v4()),
        client_id,
        client_host: crate::kafka::client_host(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        require_known_member: v >= 4,
    };
    // The answer waits for the rebalance, which the coordinator ends by the rebalance timeout.
    let wait = Duration::from_millis(rebalance_timeout_ms.clamp(0, 1_800_000) as u64) + Duration::from_secs(30);
    let r = ctx.ask_group(op::READ, &group, wait, |port| CoordinatorMsg::Join(group.clone(), join, port)).await;
    let r = r.unwrap_or_else(|e: GroupError| JoinResult { error: Some(e), generation: -1, member_id: req.member_id.to_string(), ..Default::default() });
    Some(response(v, r))
}

fn response(v: i16, r: JoinResult) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let m = JoinGroupResponseMember::default().with_member_id(str(&id)).with_metadata(metadata);
            if v >= 5 { m.with_group_instance_id(instance.as_deref().map(str)) } else { m }
        })
        .collect();
    let resp = JoinGroupResponse::default()
        .with_error_code(errors::group_code(r.error))
        .with_generation_id(r.generation)
        .with_leader(str(&r.leader))
        .with_member_id(str(&r.member_id))
        .with_members(members);
    if v >= 7 {
        resp.with_protocol_type(r.protocol_type.as_deref().map(str)).with_protocol_name(r.protocol.as_deref().map(str))
    } else {
        // Before v7 the protocol name is a plain string, never null.
        resp.with_protocol_name(Some(str(r.protocol.as_deref().unwrap_or(""))))
    }
}
