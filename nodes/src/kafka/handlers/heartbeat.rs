//! Heartbeat (key 12): keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to
//! rejoin.

use backwaters_actors::acl::op;
use super::{opt_str, KafkaCtx, GROUP_CALL};
use crate::kafka::errors;
use backwaters_actors::group::CoordinatorMsg;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: HeartbeatRequest) -> Option<HeartbeatResponse> {
    let group = req.group_id.to_string();
    let instance_id = if h.request_api_version >= 3 { opt_str(&req.group_instance_id) } else { None };
    let r = ctx.ask_group(op::READ, &group, GROUP_CALL, |reply| CoordinatorMsg::Heartbeat { group: group.clone(), member_id: req.member_id.to_string(), instance_id, generation: req.generation_id, reply })
        .await
        .and_then(|r| r);
    Some(HeartbeatResponse::default().with_error_code(errors::group_code(r.err())))
}
