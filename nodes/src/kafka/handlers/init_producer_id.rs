//! InitProducerId (key 22): ids for idempotent producers. A producer that passes its current
//! id and epoch (KIP-360, after a sequence error) gets the epoch bumped, which resets its
//! sequences on every partition.

use backwaters_actors::acl::op;
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
