//! InitProducerId (key 22): ids for idempotent producers. A producer that passes its current
//! id and epoch (KIP-360, after a sequence error) gets the epoch bumped, which resets its
//! sequences on every partition. A transactional producer's request goes to the transaction
//! coordinator ([`backwaters_actors::txn`]): the id keeps its producer id, the epoch goes up,
//! and an open transaction of the previous instance is aborted first (the answer is then
//! CONCURRENT_TRANSACTIONS until that abort is done; clients retry).

use backwaters_actors::acl::op;
use backwaters_actors::txn::{TxnOp, TxnStatus};
use super::KafkaCtx;
use crate::kafka::errors;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: InitProducerIdRequest) -> Option<InitProducerIdResponse> {
    let resp = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if let Some(id) = req.transactional_id.as_ref().filter(|id| !id.is_empty()) {
        if !ctx.allowed_txn(op::WRITE, id) {
            return Some(resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()));
        }
        let op = TxnOp::Init { id: id.to_string(), timeout_ms: req.transaction_timeout_ms, producer_id: req.producer_id.0, epoch: req.producer_epoch };
        return Some(match ctx.node.txn_request_patiently(op, super::TXN_WAIT).await {
            Ok(s) if matches!(s.status, TxnStatus::PrepareAbort | TxnStatus::PrepareCommit) => resp.with_error_code(ResponseError::ConcurrentTransactions.code()),
            Ok(s) => resp.with_producer_id(ProducerId(s.producer_id)).with_producer_epoch(s.epoch),
            Err(e) => resp.with_error_code(errors::txn_admin_error(&e)),
        });
    }
    // Kafka 2.8+: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic.
    if !ctx.allowed_cluster_quiet(op::IDEMPOTENT_WRITE) && !ctx.node.topics().iter().any(|t| ctx.allowed_quiet(op::WRITE, backwaters_actors::acl::resource::TOPIC, &t.record.name)) {
        return Some(resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code()));
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return Some(resp.with_producer_id(req.producer_id).with_producer_epoch(req.producer_epoch + 1));
    }
    Some(match ctx.node.init_producer_id().await {
        Ok((id, epoch)) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(epoch),
        Err(e) => resp.with_error_code(errors::admin_error(&e)),
    })
}
