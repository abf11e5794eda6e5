//! DescribeProducers (key 61, KIP-664): the idempotent producers a partition's leader
//! remembers (from the replicated log, so every replica agrees), with their epoch, last
//! sequence and last write time, as `kafka-transactions describe-producers` shows them.
//! The open transaction's first offset is its start; the coordinator epoch is -1. Needs READ on the
//! topic; a node that does not lead the partition answers NOT_LEADER_OR_FOLLOWER.

use super::{str, topic_name, KafkaCtx};
use backwaters_actors::acl::op;
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: DescribeProducersRequest) -> Option<DescribeProducersResponse> {
    let me = ctx.broker.node_id;
    let mut topics = Vec::new();
    for t in &req.topics {
        let readable = ctx.allowed_topic(op::READ, &t.name.0);
        let topic = ctx.node.topic(&t.name.0);
        let mut partitions = Vec::new();
        for &index in &t.partition_indexes {
            let r = PartitionResponse::default().with_partition_index(index);
            let part = topic.as_ref().and_then(|t| t.partitions.get(index as usize).cloned());
            let r = match part {
                _ if !readable => r.with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                None => r.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                Some(p) if p.leader() != Some(me) => r.with_error_code(ResponseError::NotLeaderOrFollower.code()),
                Some(p) => match ctx.node.partition_producers(&p).await {
                    None => r.with_error_code(ResponseError::NotLeaderOrFollower.code()).with_error_message(Some(str("the partition is restarting; retry"))),
                    Some(producers) => r.with_active_producers(
                        producers
                            .iter()
                            .map(|s| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(s.producer_id))
                                    .with_producer_epoch(s.epoch as i32)
                                    .with_last_sequence(s.batches.last().map(|b| b.1).unwrap_or(-1))
                                    .with_last_timestamp(s.last_timestamp_ms)
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(s.txn_first_offset.unwrap_or(-1))
                            })
                            .collect(),
                    ),
                },
            };
            partitions.push(r);
        }
        topics.push(TopicResponse::default().with_name(topic_name(&t.name.0)).with_partitions(partitions));
    }
    Some(DescribeProducersResponse::default().with_topics(topics))
}
