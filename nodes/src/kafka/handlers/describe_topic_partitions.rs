//! DescribeTopicPartitions (key 75, KIP-966): topics and their partitions, paged with a
//! cursor, as newer admin clients describe topics (Metadata stays for producers and
//! consumers). No topics named: every topic the requester may DESCRIBE. Same leaders as
//! Metadata reports.

use super::metadata::reported_leader;
use super::{topic_name, KafkaCtx, AUTHORIZED_OPS_OMITTED};
use kafka_protocol::messages::describe_topic_partitions_response::{Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };
pub const ADVERTISED: VersionRange = VERSIONS;

/// Most partitions in one answer when the client does not say (Kafka's default).
const DEFAULT_LIMIT: usize = 2000;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: DescribeTopicPartitionsRequest) -> Option<DescribeTopicPartitionsResponse> {
    let limit = if req.response_partition_limit > 0 { (req.response_partition_limit as usize).min(DEFAULT_LIMIT) } else { DEFAULT_LIMIT };
    let mut names: Vec<String> = if req.topics.is_empty() {
        ctx.node.topics().iter().map(|t| t.record.name.clone()).filter(|n| ctx.visible_topic(n)).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (start_topic, start_partition) = req.cursor.as_ref().map(|c| (c.topic_name.0.to_string(), c.partition_index.max(0))).unwrap_or_default();
    let departed = ctx.node.departed_nodes();
    let mut topics = Vec::new();
    let mut budget = limit;
    let mut next_cursor = None;
    for name in names.into_iter().filter(|n| *n >= start_topic) {
        let first = if name == start_topic { start_partition } else { 0 };
        let base = DescribeTopicPartitionsResponseTopic::default().with_name(Some(topic_name(&name))).with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED);
        if !ctx.allowed_topic(backwaters_actors::acl::op::DESCRIBE, &name) {
            topics.push(base.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let Some(t) = ctx.node.topic(&name) else {
            topics.push(base.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
            continue;
        };
        if budget == 0 {
            next_cursor = Some(Cursor::default().with_topic_name(topic_name(&name)).with_partition_index(first));
            break;
        }
        let mut partitions = Vec::new();
        for p in t.partitions.iter().filter(|p| p.partition >= first) {
            if budget == 0 {
                next_cursor = Some(Cursor::default().with_topic_name(topic_name(&name)).with_partition_index(p.partition));
                break;
            }
            budget -= 1;
            let (code, leader, epoch) = reported_leader(p, &departed);
            let replicas: Vec<BrokerId> = p.replicas.iter().map(|r| BrokerId(*r)).collect();
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(code)
                    .with_partition_index(p.partition)
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch)
                    .with_isr_nodes(replicas.clone())
                    .with_replica_nodes(replicas),
            );
        }
        topics.push(base.with_topic_id(t.id()).with_is_internal(t.record.internal).with_partitions(partitions));
        if next_cursor.is_some() {
            break;
        }
    }
    Some(DescribeTopicPartitionsResponse::default().with_topics(topics).with_next_cursor(next_cursor))
}
