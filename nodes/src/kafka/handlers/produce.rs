//! Produce (key 0): check each partition's batches (CRC, format, size), append them through
//! the partition actors in parallel, and answer once they are durable. acks=0 gets no answer.
//! Transactional batches are appended like idempotent ones; the partition keeps them
//! unstable (above the last stable offset) until the coordinator's marker closes them.
//! A partition refused for not leading it names the leader this node knows (v10+, KIP-951).

use backwaters_actors::acl::op;
use backwaters_actors::group::OFFSETS_TOPIC;
use backwaters_actors::txn::TxnStatus;
use super::{topic_name, timeout_ms, KafkaCtx};
use crate::kafka::errors;
use backwaters_proto::kafka::batch::split_batches;
use futures::future::join_all;
use kafka_protocol::messages::produce_response::{LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

/// Served: v3 (record batch v2) to v11. v12+ names topics by id only.
pub const VERSIONS: VersionRange = VersionRange { min: 3, max: 11 };
/// Advertised from v0: librdkafka checks that Produce v0 exists (KAFKA-18659).
pub const ADVERTISED: VersionRange = VersionRange { min: 0, max: 11 };

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    // Client quotas count what was sent, answered or not (acks=0 is throttled too).
    let sent: usize = req.topic_data.iter().flat_map(|t| &t.partition_data).map(|p| p.records.as_ref().map_or(0, |r| r.len())).sum();
    let throttle_ms = ctx.throttler.charge(&ctx.node, backwaters_actors::quota::PRODUCER_BYTE_RATE, h.client_id.as_deref(), sent as u64);
    let timeout = timeout_ms(req.timeout_ms);
    // A transactional producer's batches need WRITE on its transactional id too.
    if let Some(id) = &req.transactional_id {
        if !ctx.allowed_txn(op::WRITE, id) {
            return Some(error_all(&req, ResponseError::TransactionalIdAuthorizationFailed.code()));
        }
    }
    if ![-1, 0, 1].contains(&acks) {
        return Some(error_all(&req, ResponseError::InvalidRequiredAcks.code()));
    }
    let txn_id = req.transactional_id.as_ref().map(|s| s.to_string());
    let mut jobs = Vec::new();
    for t in &req.topic_data {
        for p in &t.partition_data {
            let name = t.name.0.to_string();
            let index = p.index;
            let records = p.records.clone().unwrap_or_default();
            let writable = ctx.allowed_topic(op::WRITE, &name);
            let txn_id = txn_id.clone();
            jobs.push(async move {
                if !writable {
                    return (name, index, Err(ResponseError::TopicAuthorizationFailed.code()), None);
                }
                let Some(part) = ctx.node.partition(&name, index) else {
                    return (name, index, Err(ResponseError::UnknownTopicOrPartition.code()), None);
                };
                // Internal topics hold coordinator state; only the broker writes them (as Kafka).
                if name == OFFSETS_TOPIC {
                    return (name, index, Err(ResponseError::InvalidTopicException.code()), Some(format!("{OFFSETS_TOPIC} is written by the group coordinators only")));
                }
                let batches = match split_batches(&records) {
                    // A producer id without a sequence is how coordinators write; never a client.
                    Ok(b) if b.iter().any(|(h, _)| h.is_idempotent() && h.base_sequence < 0) => {
                        return (name, index, Err(ResponseError::InvalidRecord.code()), Some("a batch with a producer id needs a base sequence".into()));
                    }
                    Ok(b) if b.iter().any(|(h, _)| h.is_control()) => {
                        return (name, index, Err(ResponseError::InvalidRecord.code()), Some("control batches are written by the transaction coordinator, not by producers".into()));
                    }
                    Ok(b) if !b.is_empty() => b,
                    Ok(_) => return (name, index, Err(ResponseError::InvalidRecord.code()), None),
                    Err(e) => {
                        tracing::warn!(topic = %name, partition = index, error = %e, "refused record batch");
                        return (name, index, Err(errors::batch_error(&e)), None);
                    }
                };
                if let Some((h, _)) = batches.iter().find(|(h, _)| h.is_transactional()) {
                    if let Err((code, why)) = verify_txn(ctx, txn_id.as_deref(), &name, index, h.producer_id, h.producer_epoch).await {
                        return (name, index, Err(code), Some(why));
                    }
                }
                match ctx.node.produce(&part, batches, acks, timeout).await {
                    Ok(ack) => (name, index, Ok(ack), None),
                    Err(e) => (name, index, Err(errors::partition_error(&e)), Some(e.to_string())),
                }
            });
        }
    }
    let results = join_all(jobs).await;
    if acks == 0 {
        return None;
    }
    let mut topics: Vec<TopicProduceResponse> = Vec::new();
    let mut endpoints: Vec<NodeEndpoint> = Vec::new();
    for (name, index, r, msg) in results {
        let pr = match r {
            Ok(ack) => PartitionProduceResponse::default().with_index(index).with_base_offset(ack.base_offset).with_log_append_time_ms(-1).with_log_start_offset(ack.log_start_offset),
            Err(code) => {
                let pr = PartitionProduceResponse::default()
                    .with_index(index)
                    .with_error_code(code)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1)
                    .with_error_message(msg.map(|m| super::str(&m)));
                match leader_hint(ctx, h.request_api_version, code, &name, index, &mut endpoints) {
                    Some(leader) => pr.with_current_leader(leader),
                    None => pr,
                }
            }
        };
        match topics.iter_mut().find(|t| t.name.0.as_str() == name) {
            Some(t) => t.partition_responses.push(pr),
            None => topics.push(TopicProduceResponse::default().with_name(topic_name(&name)).with_partition_responses(vec![pr])),
        }
    }
    Some(ProduceResponse::default().with_responses(topics).with_throttle_time_ms(throttle_ms).with_node_endpoints(endpoints))
}

/// KIP-951: a v10+ answer that refuses a partition for not leading it names the leader this
/// node knows, with its epoch and address (`endpoints`), so the producer moves there at once
/// instead of after a metadata refresh.
fn leader_hint(ctx: &KafkaCtx, version: i16, code: i16, topic: &str, partition: i32, endpoints: &mut Vec<NodeEndpoint>) -> Option<LeaderIdAndEpoch> {
    if version < 10 || code != ResponseError::NotLeaderOrFollower.code() {
        return None;
    }
    let (leader, epoch, broker) = super::known_leader(ctx, topic, partition)?;
    if !endpoints.iter().any(|e| e.node_id.0 == leader) {
        endpoints.push(NodeEndpoint::default().with_node_id(BrokerId(leader)).with_host(super::str(&broker.host)).with_port(broker.port).with_rack(broker.rack.as_deref().map(super::str)));
    }
    Some(LeaderIdAndEpoch::default().with_leader_id(BrokerId(leader)).with_leader_epoch(epoch))
}

/// Checks a transactional batch against the transaction's recorded state (KIP-890's
/// verification): the partition must be in the producer's ongoing transaction. A batch that
/// arrives after its transaction ended (a late retry) would otherwise open a transaction no
/// marker will ever close, holding read_committed consumers back for good. This node's copy
/// of the metadata may trail the coordinator's: before refusing, it catches up with the
/// controller (a read barrier) and checks again; a controller it cannot reach makes the
/// answer retriable.
async fn verify_txn(ctx: &KafkaCtx, id: Option<&str>, topic: &str, partition: i32, producer_id: i64, epoch: i16) -> Result<(), (i16, String)> {
    let Some(id) = id else {
        return Err((ResponseError::InvalidRecord.code(), "a transactional batch needs the request's transactional id".into()));
    };
    let check = || ctx.node.with_txn_state(id, |s| match s {
        None => Err((ResponseError::InvalidTxnState.code(), "the transactional id is unknown".to_string())),
        Some(s) if s.producer_id != producer_id => Err((ResponseError::InvalidTxnState.code(), "the producer id is not the transactional id's".to_string())),
        Some(s) if s.epoch > epoch => Err((ResponseError::InvalidProducerEpoch.code(), format!("producer epoch {epoch} is fenced by {}", s.epoch))),
        Some(s) if s.status == TxnStatus::Ongoing && s.epoch == epoch && s.partitions.contains(&(topic.to_string(), partition)) => Ok(()),
        Some(s) => Err((ResponseError::InvalidTxnState.code(), format!("{topic}-{partition} is not in an ongoing transaction of this producer (state {})", s.status.kafka_name()))),
    });
    if check().is_ok() {
        return Ok(());
    }
    if let Err(e) = ctx.node.metadata_barrier().await {
        return Err((ResponseError::NotLeaderOrFollower.code(), format!("cannot check the transaction with the controller yet ({e}); retry")));
    }
    check()
}

fn error_all(req: &ProduceRequest, code: i16) -> ProduceResponse {
    let topics = req
        .topic_data
        .iter()
        .map(|t| {
            TopicProduceResponse::default().with_name(t.name.clone()).with_partition_responses(
                t.partition_data
                    .iter()
                    .map(|p| PartitionProduceResponse::default().with_index(p.index).with_error_code(code).with_base_offset(-1).with_log_append_time_ms(-1).with_log_start_offset(-1))
                    .collect(),
            )
        })
        .collect();
    ProduceResponse::default().with_responses(topics)
}
