//! OffsetCommit (key 8): a member (current generation) or a standalone consumer (generation
//! -1, only while the group has no members) stores its positions. The answer comes once the
//! records are durable in `__consumer_offsets`. Unknown topics or partitions get
//! UNKNOWN_TOPIC_OR_PARTITION; metadata over 4 KiB gets OFFSET_METADATA_TOO_LARGE.

use backwaters_actors::acl::op;
use super::{opt_str, KafkaCtx, GROUP_CALL};
use crate::kafka::errors;
use backwaters_actors::group::{CommitOffset, CoordinatorMsg};
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 9 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: OffsetCommitRequest) -> Option<OffsetCommitResponse> {
    let v = h.request_api_version;
    let group = req.group_id.to_string();
    // Topics the requester may not READ are answered TOPIC_AUTHORIZATION_FAILED, not committed.
    let denied: std::collections::BTreeSet<String> = req.topics.iter().map(|t| t.name.to_string()).filter(|t| !ctx.allowed_topic(op::READ, t)).collect();
    let offsets: Vec<CommitOffset> = req
        .topics
        .iter()
        .filter(|t| !denied.contains(t.name.as_str()))
        .flat_map(|t| {
            t.partitions.iter().map(|p| CommitOffset {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                metadata: opt_str(&p.committed_metadata).unwrap_or_default(),
            })
        })
        .collect();
    let instance_id = if v >= 7 { opt_str(&req.group_instance_id) } else { None };
    let r = ctx.ask_group(op::READ, &group, GROUP_CALL, |reply| CoordinatorMsg::Commit {
        group: group.clone(),
        member_id: req.member_id.to_string(),
        instance_id,
        generation: req.generation_id_or_member_epoch,
        offsets,
        reply,
    })
    .await
    .and_then(|r| r);
    let mut codes = match r {
        Ok(results) => results.into_iter().map(|r| errors::group_code(r.err())).collect::<Vec<_>>().into_iter(),
        Err(e) => vec![errors::group_error(&e); req.topics.iter().filter(|t| !denied.contains(t.name.as_str())).map(|t| t.partitions.len()).sum()].into_iter(),
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let denied = denied.contains(t.name.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if denied { kafka_protocol::ResponseError::TopicAuthorizationFailed.code() } else { codes.next().unwrap_or(errors::NONE) };
                    OffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    Some(OffsetCommitResponse::default().with_topics(topics))
}
