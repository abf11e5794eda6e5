//! AddPartitionsToTxn (key 24): a transactional producer names the partitions it is about
//! to write before its first batch to each. Versions 0-3 (clients); 4+ are Kafka's
//! broker-to-broker verification, not used here. Needs WRITE on the transactional id and on
//! each topic; the partitions must exist. Any refused partition fails the whole request
//! (the others get OPERATION_NOT_ATTEMPTED), as in Kafka.

use super::{topic_name, KafkaCtx};
use crate::kafka::errors;
use backwaters_actors::acl::op;
use backwaters_actors::txn::TxnOp;
use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: AddPartitionsToTxnRequest) -> Option<AddPartitionsToTxnResponse> {
    let id = req.v3_and_below_transactional_id.to_string();
    let wanted: Vec<(String, i32)> = req.v3_and_below_topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p))).collect();
    // Per-partition refusals first; any of them fails the request.
    let mut refused: Vec<Option<i16>> = wanted
        .iter()
        .map(|(topic, p)| {
            if !ctx.allowed_topic(op::WRITE, topic) {
                Some(ResponseError::TopicAuthorizationFailed.code())
            } else if ctx.node.partition(topic, *p).is_none() {
                Some(ResponseError::UnknownTopicOrPartition.code())
            } else {
                None
            }
        })
        .collect();
    let all = |code: i16| -> Vec<Option<i16>> { vec![Some(code); wanted.len()] };
    if !ctx.allowed_txn(op::WRITE, &id) {
        refused = all(ResponseError::TransactionalIdAuthorizationFailed.code());
    } else if refused.iter().any(|r| r.is_some()) {
        for r in refused.iter_mut().filter(|r| r.is_none()) {
            *r = Some(ResponseError::OperationNotAttempted.code());
        }
    } else {
        let op = TxnOp::AddPartitions { id, producer_id: req.v3_and_below_producer_id.0, epoch: req.v3_and_below_producer_epoch, partitions: wanted.clone() };
        if let Err(e) = ctx.node.txn_request_patiently(op, super::TXN_WAIT).await {
            refused = all(errors::txn_admin_error(&e));
        }
    }
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, p), r) in wanted.iter().zip(refused) {
        let pr = AddPartitionsToTxnPartitionResult::default().with_partition_index(*p).with_partition_error_code(r.unwrap_or(errors::NONE));
        match results.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(pr),
            None => results.push(AddPartitionsToTxnTopicResult::default().with_name(topic_name(topic)).with_results_by_partition(vec![pr])),
        }
    }
    Some(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results))
}
