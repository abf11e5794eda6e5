//! OffsetDelete (key 47): drops a group's committed offsets for partitions of topics the
//! group no longer subscribes to (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use backwaters_actors::acl::op;
use super::{KafkaCtx, GROUP_CALL};
use crate::kafka::errors;
use backwaters_actors::group::CoordinatorMsg;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: OffsetDeleteRequest) -> Option<OffsetDeleteResponse> {
    let group = req.group_id.to_string();
    let partitions: Vec<(String, i32)> = req.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), p.partition_index))).collect();
    let r = ctx.ask_group(op::DELETE, &group, GROUP_CALL, |reply| CoordinatorMsg::DeleteOffsets { group: group.clone(), partitions, reply }).await.and_then(|r| r);
    let mut codes = match r {
        Ok(rs) => rs.into_iter().map(|r| errors::group_code(r.err())).collect::<Vec<_>>().into_iter(),
        Err(e) => return Some(OffsetDeleteResponse::default().with_error_code(errors::group_error(&e))),
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let ps = t.partitions.iter().map(|p| OffsetDeleteResponsePartition::default().with_partition_index(p.partition_index).with_error_code(codes.next().unwrap_or(errors::NONE))).collect();
            OffsetDeleteResponseTopic::default().with_name(t.name.clone()).with_partitions(ps)
        })
        .collect();
    Some(OffsetDeleteResponse::default().with_topics(topics))
}
