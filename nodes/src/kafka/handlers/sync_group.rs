//! SyncGroup (key 14): the leader hands in the assignment, every member gets its share.
//! Assignments are opaque to the broker (range, roundrobin and cooperative-sticky all pass
//! through unchanged); assignments for members not in the group are ignored, as in Kafka.

use backwaters_actors::acl::op;
use super::{opt_str, str, KafkaCtx, GROUP_CALL};
use crate::kafka::errors;
use backwaters_actors::group::state::{SyncRequest, SyncResult};
use backwaters_actors::group::CoordinatorMsg;
use kafka_protocol::messages::{RequestHeader, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: SyncGroupRequest) -> Option<SyncGroupResponse> {
    let v = h.request_api_version;
    let group = req.group_id.to_string();
    let sync = SyncRequest {
        member_id: req.member_id.to_string(),
        instance_id: if v >= 3 { opt_str(&req.group_instance_id) } else { None },
        generation: req.generation_id,
        protocol_type: if v >= 5 { opt_str(&req.protocol_type) } else { None },
        protocol: if v >= 5 { opt_str(&req.protocol_name) } else { None },
        assignments: req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect(),
    };
    // Followers wait for the leader's assignment; the coordinator bounds that wait by the
    // rebalance timeout, so allow for the longest one.
    let wait = GROUP_CALL + std::time::Duration::from_secs(1_800);
    let r = ctx.ask_group(op::READ, &group, wait, |port| CoordinatorMsg::Sync(group.clone(), sync, port)).await;
    let r = r.unwrap_or_else(|e| SyncResult { error: Some(e), ..Default::default() });
    let resp = SyncGroupResponse::default().with_error_code(errors::group_code(r.error)).with_assignment(r.assignment);
    Some(if v >= 5 { resp.with_protocol_type(r.protocol_type.as_deref().map(str)).with_protocol_name(r.protocol.as_deref().map(str)) } else { resp })
}
