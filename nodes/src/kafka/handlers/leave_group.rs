//! LeaveGroup (key 13): members leave so the others rebalance at once, without waiting for
//! a session timeout. v0-2 name one member; v3+ a batch (static members by instance id).

use backwaters_actors::acl::op;
use super::{opt_str, str, KafkaCtx, GROUP_CALL};
use crate::kafka::errors;
use backwaters_actors::group::CoordinatorMsg;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: LeaveGroupRequest) -> Option<LeaveGroupResponse> {
    let v = h.request_api_version;
    let group = req.group_id.to_string();
    let members: Vec<(String, Option<String>)> = if v >= 3 { req.members.iter().map(|m| (m.member_id.to_string(), opt_str(&m.group_instance_id))).collect() } else { vec![(req.member_id.to_string(), None)] };
    let asked = members.clone();
    let r = ctx.ask_group(op::READ, &group, GROUP_CALL, |reply| CoordinatorMsg::Leave { group: group.clone(), members, reply }).await.and_then(|r| r);
    let resp = LeaveGroupResponse::default();
    Some(match r {
        Err(e) => resp.with_error_code(errors::group_error(&e)),
        Ok(results) if v < 3 => resp.with_error_code(errors::group_code(results.into_iter().next().and_then(Result::err))),
        Ok(results) => resp.with_members(
            asked
                .into_iter()
                .zip(results)
                .map(|((id, instance), r)| MemberResponse::default().with_member_id(str(&id)).with_group_instance_id(instance.as_deref().map(str)).with_error_code(errors::group_code(r.err())))
                .collect(),
        ),
    })
}
