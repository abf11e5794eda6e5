//! EndTxn (key 26): commit or abort. Answered once the coordinator has recorded
//! PrepareCommit / PrepareAbort in the metadata log; the partitions' leaders then write the
//! markers (see `backwaters_actors::node::txn`), and the id's next transaction waits for
//! them (CONCURRENT_TRANSACTIONS). Versions 0-4 (5 is KIP-890's transaction version 2).

use super::KafkaCtx;
use crate::kafka::errors;
use backwaters_actors::acl::op;
use backwaters_actors::txn::TxnOp;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: EndTxnRequest) -> Option<EndTxnResponse> {
    let resp = EndTxnResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    let id = req.transactional_id.to_string();
    if !ctx.allowed_txn(op::WRITE, &id) {
        return Some(resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()));
    }
    let op = TxnOp::End { id, producer_id: req.producer_id.0, epoch: req.producer_epoch, commit: req.committed };
    Some(match ctx.node.txn_request_patiently(op, super::TXN_WAIT).await {
        Ok(_) => resp,
        Err(e) => resp.with_error_code(errors::txn_admin_error(&e)),
    })
}
