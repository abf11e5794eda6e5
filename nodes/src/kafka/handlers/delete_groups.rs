//! DeleteGroups (key 42): removes empty groups and their committed offsets
//! (NON_EMPTY_GROUP while members remain, GROUP_ID_NOT_FOUND for unknown ones).

use backwaters_actors::acl::op;
use super::{KafkaCtx, GROUP_CALL};
use crate::kafka::errors;
use backwaters_actors::group::CoordinatorMsg;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: DeleteGroupsRequest) -> Option<DeleteGroupsResponse> {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in &req.groups_names {
        let group = id.to_string();
        let r = ctx.ask_group(op::DELETE, &group, GROUP_CALL, |port| CoordinatorMsg::Delete(group.clone(), port)).await.and_then(|r| r);
        results.push(DeletableGroupResult::default().with_group_id(id.clone()).with_error_code(errors::group_code(r.err())));
    }
    Some(DeleteGroupsResponse::default().with_results(results))
}
