//! ListGroups (key 16): every group this broker coordinates, filtered by state (v4+) and
//! type (v5+: "classic", or "consumer" for groups of the KIP-848 protocol).

use backwaters_actors::acl::op;
use super::{str, KafkaCtx};
use crate::kafka::errors;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: ListGroupsRequest) -> Option<ListGroupsResponse> {
    let v = h.request_api_version;
    let groups = match ctx.node.list_groups().await {
        Ok(g) => g,
        Err(e) => return Some(ListGroupsResponse::default().with_error_code(errors::group_error(&e))),
    };
    let state_ok = |s: &str| req.states_filter.is_empty() || req.states_filter.iter().any(|f| f.eq_ignore_ascii_case(s));
    let type_ok = |t: &str| req.types_filter.is_empty() || req.types_filter.iter().any(|f| f.eq_ignore_ascii_case(t));
    // DESCRIBE on the cluster lists every group; otherwise the groups the requester may DESCRIBE.
    let all = ctx.authz.is_none() || ctx.allowed_cluster_quiet(op::DESCRIBE);
    let listed = groups
        .into_iter()
        .filter(|g| all || ctx.allowed_quiet(op::DESCRIBE, backwaters_actors::acl::resource::GROUP, &g.group_id))
        .filter(|g| v < 4 || state_ok(g.state))
        .filter(|g| v < 5 || type_ok(g.group_type))
        .map(|g| {
            let l = ListedGroup::default().with_group_id(GroupId(str(&g.group_id))).with_protocol_type(str(&g.protocol_type));
            let l = if v >= 4 { l.with_group_state(str(g.state)) } else { l };
            if v >= 5 { l.with_group_type(str(g.group_type)) } else { l }
        })
        .collect();
    Some(ListGroupsResponse::default().with_groups(listed))
}
