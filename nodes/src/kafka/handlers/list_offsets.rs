//! ListOffsets (key 2): earliest (-2), latest (-1; the last stable offset for
//! read_committed), max timestamp (-3) or the first offset at or after a timestamp, each with
//! the leader epoch of the batch holding it (v4+). A `current_leader_epoch` older or newer than
//! the partition's is FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH, as in Kafka.

use super::{topic_name, KafkaCtx};
use crate::kafka::errors;
use backwaters_actors::acl::op;
use backwaters_actors::PartitionError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 8 };
pub const ADVERTISED: VersionRange = VERSIONS;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: ListOffsetsRequest) -> Option<ListOffsetsResponse> {
    // Leader epochs exist from v4 on; before that the fields stay at their defaults.
    let epochs = h.request_api_version >= 4;
    let mut topics = Vec::new();
    for t in &req.topics {
        let mut parts = Vec::new();
        let visible = ctx.allowed_topic(op::DESCRIBE, &t.name.0);
        for p in &t.partitions {
            let r = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            if !visible {
                parts.push(r.with_error_code(ResponseError::TopicAuthorizationFailed.code()).with_offset(-1).with_timestamp(-1));
                continue;
            }
            let Some(part) = ctx.node.partition(&t.name.0, p.partition_index) else {
                parts.push(r.with_error_code(ResponseError::UnknownTopicOrPartition.code()).with_offset(-1).with_timestamp(-1));
                continue;
            };
            if let Some(code) = errors::epoch_error(part.check_epoch(p.current_leader_epoch)).filter(|_| epochs) {
                parts.push(r.with_error_code(code).with_offset(-1).with_timestamp(-1));
                continue;
            }
            let found: Result<(i64, i64), PartitionError> = match p.timestamp {
                // read_committed consumers start at the last stable offset.
                LATEST if req.isolation_level == 1 => Ok((part.last_stable_offset(), -1)),
                LATEST => Ok((part.high_watermark(), -1)),
                EARLIEST => Ok((part.log_start_offset(), -1)),
                MAX_TIMESTAMP => max_timestamp(&part),
                ts => part.offset_for_time(ts).map(|o| o.unwrap_or((-1, -1))),
            };
            // The epoch of the batch holding the offset (Kafka's), which a consumer keeps
            // with a position it starts from.
            let found = found.and_then(|(offset, ts)| Ok((offset, ts, if epochs && offset >= 0 { part.epoch_at_offset(offset)? } else { -1 })));
            parts.push(match found {
                Ok((offset, ts, epoch)) => r.with_offset(offset).with_timestamp(ts).with_leader_epoch(epoch),
                Err(e) => r.with_error_code(errors::partition_error(&e)).with_offset(-1).with_timestamp(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic_name(&t.name.0)).with_partitions(parts));
    }
    Some(ListOffsetsResponse::default().with_topics(topics))
}

/// The offset and timestamp of the record with the highest timestamp (KIP-734).
fn max_timestamp(part: &backwaters_actors::partition::PartitionShared) -> Result<(i64, i64), PartitionError> {
    let mut best = (-1i64, -1i64);
    let mut offset = part.log_start_offset();
    loop {
        let entries = part.read(offset, 1 << 20)?;
        let Some(last) = entries.last() else { break };
        offset = last.next_offset();
        for e in &entries {
            if e.max_timestamp() > best.1 {
                let recs = backwaters_proto::kafka::batch::decode_records(&e.payload).map_err(PartitionError::Storage)?;
                if let Some(r) = recs.iter().find(|r| r.timestamp_ms == e.max_timestamp()) {
                    best = (r.offset, r.timestamp_ms);
                }
            }
        }
    }
    Ok(best)
}
