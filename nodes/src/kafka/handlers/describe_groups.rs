//! DescribeGroups (key 15): state, protocol and members of groups. As in Kafka, member
//! metadata and assignments are shown only while the group is Stable, and an unknown group
//! is reported as Dead with no error.

use backwaters_actors::acl::op;
use super::{str, KafkaCtx, AUTHORIZED_OPS_OMITTED, GROUP_CALL};
use crate::kafka::errors;
use backwaters_actors::group::CoordinatorMsg;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: DescribeGroupsRequest) -> Option<DescribeGroupsResponse> {
    let v = h.request_api_version;
    let mut out = Vec::with_capacity(req.groups.len());
    for id in &req.groups {
        let group = id.to_string();
        let d = DescribedGroup::default().with_group_id(id.clone());
        let d = if v >= 3 { d.with_authorized_operations(AUTHORIZED_OPS_OMITTED) } else { d };
        out.push(match ctx.ask_group(op::DESCRIBE, &group, GROUP_CALL, |port| CoordinatorMsg::Describe(group.clone(), port)).await {
            Err(e) => d.with_error_code(errors::group_error(&e)),
            Ok(None) => d.with_group_state(str("Dead")),
            Ok(Some(g)) => {
                let stable = g.state == "Stable";
                let members = g
                    .members
                    .iter()
                    .map(|m| {
                        let dm = DescribedGroupMember::default().with_member_id(str(&m.member_id)).with_client_id(str(&m.client_id)).with_client_host(str(&m.client_host));
                        let dm = if v >= 4 { dm.with_group_instance_id(m.instance_id.as_deref().map(str)) } else { dm };
                        if stable { dm.with_member_metadata(m.metadata.clone()).with_member_assignment(m.assignment.clone()) } else { dm }
                    })
                    .collect();
                d.with_group_state(str(g.state)).with_protocol_type(str(&g.protocol_type)).with_protocol_data(str(&g.protocol)).with_members(members)
            }
        });
    }
    Some(DescribeGroupsResponse::default().with_groups(out))
}
