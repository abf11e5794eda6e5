//! InitProducerId (key 22): ids for idempotent producers. A producer that passes its current
//! id and epoch (KIP-360, after a sequence error) gets the epoch bumped, which resets its
//! sequences on every partition.

use super::KafkaCtx;
use crate::kafka::errors;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: InitProducerIdRequest) -> Option<InitProducerIdResponse> {
    let resp = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // No transaction coordinator yet: refuse clearly instead of pretending.
        return Some(resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()));
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return Some(resp.with_producer_id(req.producer_id).with_producer_epoch(req.producer_epoch + 1));
    }
    Some(match ctx.node.init_producer_id().await {
        Ok((id, epoch)) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(epoch),
        Err(e) => resp.with_error_code(errors::admin_error(&e)),
    })
}
