//! OffsetForLeaderEpoch (key 23, KIP-101 / KIP-320): where a leader epoch ends in the leader's
//! log. A consumer asks it after a leader change, with the epoch of the batch its position
//! came from; an end offset below its position would mean the log it read was truncated.
//! Epochs are Raft terms (see `partition::epochs`), so the answer comes from the terms of the
//! leader's entries.
//!
//! Only the leader answers (NOT_LEADER_OR_FOLLOWER elsewhere), except for Kafka's debugging
//! replica id (-2), which any replica answers from its own log. A `current_leader_epoch` older
//! or newer than the partition's is FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH. Needs DESCRIBE
//! on the topic, as in Kafka. v0-v1 predate Kafka 2.1 (KIP-896) and are not served.

use super::{topic_name, KafkaCtx};
use crate::kafka::errors;
use backwaters_actors::acl::op;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 4 };
pub const ADVERTISED: VersionRange = VERSIONS;

/// Kafka's `ListOffsetsRequest.DEBUGGING_REPLICA_ID`: may ask a follower.
const DEBUGGING_REPLICA_ID: i32 = -2;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: OffsetForLeaderEpochRequest) -> Option<OffsetForLeaderEpochResponse> {
    let me = ctx.broker.node_id;
    let any_replica = req.replica_id.0 == DEBUGGING_REPLICA_ID;
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let visible = ctx.allowed_topic(op::DESCRIBE, &t.topic.0);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
                    if !visible {
                        return r.with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(part) = ctx.node.partition(&t.topic.0, p.partition) else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let answers = if any_replica { part.replicas.contains(&me) && part.actor().is_some() } else { part.leader() == Some(me) };
                    if !answers {
                        return r.with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    if let Some(code) = errors::epoch_error(part.check_epoch(p.current_leader_epoch)) {
                        return r.with_error_code(code);
                    }
                    match part.end_offset_for_epoch(p.leader_epoch) {
                        Ok((epoch, end)) => r.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => r.with_error_code(errors::partition_error(&e)),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(topic_name(&t.topic.0)).with_partitions(partitions)
        })
        .collect();
    Some(OffsetForLeaderEpochResponse::default().with_topics(topics))
}
