//! DeleteRecords (key 21): move a partition's log start forward (-1: to the high watermark),
//! on the leader at once and on every replica through the metadata log.

use backwaters_actors::acl::op;
use super::{timeout_ms, topic_name, KafkaCtx};
use crate::kafka::errors;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: DeleteRecordsRequest) -> Option<DeleteRecordsResponse> {
    let timeout = timeout_ms(req.timeout_ms);
    let mut topics = Vec::new();
    for t in &req.topics {
        let mut parts = Vec::new();
        let deletable = ctx.allowed_topic(op::DELETE, &t.name.0);
        for p in &t.partitions {
            let r = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
            if !deletable {
                parts.push(r.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                continue;
            }
            let Some(part) = ctx.node.partition(&t.name.0, p.partition_index) else {
                parts.push(r.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            parts.push(match ctx.node.delete_records_everywhere(&part, p.offset, timeout).await {
                Ok(low) => r.with_low_watermark(low),
                Err(e) => r.with_error_code(errors::partition_error(&e)),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(topic_name(&t.name.0)).with_partitions(parts));
    }
    Some(DeleteRecordsResponse::default().with_topics(topics))
}
