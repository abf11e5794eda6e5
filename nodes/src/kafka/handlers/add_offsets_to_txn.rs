//! AddOffsetsToTxn (key 25): the producer will commit a consumer group's offsets in its
//! transaction (`send_offsets_to_transaction`); the group's `__consumer_offsets` partition
//! joins the transaction, so it gets the marker that makes those offsets committed. Needs
//! WRITE on the transactional id and READ on the group.

use super::KafkaCtx;
use crate::kafka::errors;
use backwaters_actors::acl::op;
use backwaters_actors::group::OFFSETS_TOPIC;
use backwaters_actors::txn::TxnOp;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: AddOffsetsToTxnRequest) -> Option<AddOffsetsToTxnResponse> {
    let resp = AddOffsetsToTxnResponse::default();
    let (id, group) = (req.transactional_id.to_string(), req.group_id.to_string());
    if !ctx.allowed_txn(op::WRITE, &id) {
        return Some(resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()));
    }
    if !ctx.allowed_group(op::READ, &group) {
        return Some(resp.with_error_code(ResponseError::GroupAuthorizationFailed.code()));
    }
    if let Err(e) = backwaters_actors::group::validate_group_id(&group) {
        return Some(resp.with_error_code(errors::group_error(&e)));
    }
    if let Err(e) = ctx.node.ensure_groups().await {
        return Some(resp.with_error_code(errors::group_error(&e)));
    }
    let partition = (OFFSETS_TOPIC.to_string(), ctx.node.group_partition(&group));
    let op = TxnOp::AddGroup { id, producer_id: req.producer_id.0, epoch: req.producer_epoch, group, partition };
    Some(match ctx.node.txn_request_patiently(op, super::TXN_WAIT).await {
        Ok(_) => resp,
        Err(e) => resp.with_error_code(errors::txn_admin_error(&e)),
    })
}
