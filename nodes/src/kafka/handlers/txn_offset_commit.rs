//! TxnOffsetCommit (key 28): a transactional producer commits a consumer group's offsets
//! inside its transaction, at the group's coordinator. They are written at once but count
//! only once the transaction commits (see `backwaters_actors::group` and its `txn`);
//! OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT for them meanwhile. Needs
//! WRITE on the transactional id, READ on the group and on each topic. Versions 0-4 (5 is
//! KIP-890's transaction version 2).

use super::{topic_name, KafkaCtx, GROUP_CALL};
use crate::kafka::errors;
use backwaters_actors::acl::op;
use backwaters_actors::group::{CommitOffset, CoordinatorMsg};
use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{RequestHeader, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: TxnOffsetCommitRequest) -> Option<TxnOffsetCommitResponse> {
    let group = req.group_id.to_string();
    let asked: Vec<(String, i32)> = req.topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index))).collect();
    let every = |code: i16| -> Vec<Result<(), i16>> { vec![Err(code); asked.len()] };
    let results: Vec<Result<(), i16>> = if !ctx.allowed_txn(op::WRITE, &req.transactional_id) {
        every(ResponseError::TransactionalIdAuthorizationFailed.code())
    } else {
        let readable: Vec<bool> = asked.iter().map(|(t, _)| ctx.allowed_topic(op::READ, t)).collect();
        let offsets: Vec<CommitOffset> = req
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
            .zip(&readable)
            .filter(|(_, ok)| **ok)
            .map(|((t, p), _)| CommitOffset { topic: t.name.0.to_string(), partition: p.partition_index, offset: p.committed_offset, leader_epoch: p.committed_leader_epoch, metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default() })
            .collect();
        let (producer_id, epoch, member_id, instance_id, generation) = (req.producer_id.0, req.producer_epoch, req.member_id.to_string(), req.group_instance_id.as_ref().map(|s| s.to_string()), req.generation_id);
        let answer = ctx
            .ask_group(op::READ, &group, GROUP_CALL, |reply| CoordinatorMsg::TxnCommit { group: group.clone(), producer_id, epoch, member_id, instance_id, generation, offsets, reply })
            .await
            .and_then(|r| r);
        match answer {
            Err(e) => every(errors::group_error(&e)),
            Ok(done) => {
                let mut done = done.into_iter();
                readable
                    .iter()
                    .map(|ok| match (ok, done.next()) {
                        (false, _) => Err(ResponseError::TopicAuthorizationFailed.code()),
                        (true, Some(r)) => r.map_err(|e| errors::group_error(&e)),
                        (true, None) => Err(ResponseError::UnknownServerError.code()),
                    })
                    .collect()
            }
        }
    };
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for ((t, p), r) in asked.iter().zip(results) {
        let pr = TxnOffsetCommitResponsePartition::default().with_partition_index(*p).with_error_code(r.err().unwrap_or(errors::NONE));
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == t => last.partitions.push(pr),
            _ => topics.push(TxnOffsetCommitResponseTopic::default().with_name(topic_name(t)).with_partitions(vec![pr])),
        }
    }
    Some(TxnOffsetCommitResponse::default().with_topics(topics))
}
