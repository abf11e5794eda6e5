//! FindCoordinator (key 10). Groups: the leader of the group's `__consumer_offsets`
//! partition, once that topic exists (it is created on the first request, as Kafka does).
//! Transactional ids: the controller, which coordinates transactions in the metadata log.

use backwaters_actors::acl::op;
use super::{str, KafkaCtx};
use crate::kafka::errors;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 6 };
pub const ADVERTISED: VersionRange = VERSIONS;

/// Key type 0 is a group, 1 a transactional id (2 a share group, not served).
/// The coordinator of a group is the broker that leads the group's `__consumer_offsets`
/// partition.
async fn find<'a>(ctx: &'a KafkaCtx, key: &str, key_type: i8) -> Result<&'a crate::kafka::BrokerInfo, (i16, String)> {
    if key_type == 1 {
        if key.is_empty() {
            return Err((ResponseError::InvalidRequest.code(), "the transactional id is empty".to_string()));
        }
        if !ctx.allowed_txn(op::DESCRIBE, key) {
            return Err((ResponseError::TransactionalIdAuthorizationFailed.code(), format!("not authorized to DESCRIBE transactional id {key:?}")));
        }
        let leader = ctx.node.txn_coordinator().ok_or_else(|| (ResponseError::CoordinatorNotAvailable.code(), "no controller is elected yet; retry".to_string()))?;
        return ctx.brokers.iter().find(|b| b.node_id == leader).ok_or_else(|| (ResponseError::CoordinatorNotAvailable.code(), format!("coordinator node {leader} is not in the cluster config")));
    }
    if key_type != 0 {
        return Err((ResponseError::InvalidRequest.code(), format!("coordinator key type {key_type} is not served (0: group, 1: transaction)")));
    }
    backwaters_actors::group::validate_group_id(key).map_err(|e| (errors::group_error(&e), format!("group id {key:?}: {e}")))?;
    if !ctx.allowed_group(op::DESCRIBE, key) {
        return Err((ResponseError::GroupAuthorizationFailed.code(), format!("not authorized to DESCRIBE group {key:?}")));
    }
    ctx.node.ensure_groups().await.map_err(|e| (errors::group_error(&e), e.to_string()))?;
    let leader = ctx.node.group_leader(key).ok_or_else(|| (ResponseError::CoordinatorNotAvailable.code(), "the group's partition has no leader yet; retry".to_string()))?;
    ctx.brokers.iter().find(|b| b.node_id == leader).ok_or_else(|| (ResponseError::CoordinatorNotAvailable.code(), format!("coordinator node {leader} is not in the cluster config")))
}

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: FindCoordinatorRequest) -> Option<FindCoordinatorResponse> {
    let v = h.request_api_version;
    if v >= 4 {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for k in &req.coordinator_keys {
            let c = Coordinator::default().with_key(k.clone());
            coordinators.push(match find(ctx, k, req.key_type).await {
                Ok(b) => c.with_node_id(BrokerId(b.node_id)).with_host(str(&b.host)).with_port(b.port),
                Err((code, msg)) => c.with_node_id(BrokerId(-1)).with_port(-1).with_error_code(code).with_error_message(Some(str(&msg))),
            });
        }
        return Some(FindCoordinatorResponse::default().with_coordinators(coordinators));
    }
    let key_type = if v >= 1 { req.key_type } else { 0 };
    let resp = FindCoordinatorResponse::default();
    Some(match find(ctx, &req.key, key_type).await {
        Ok(b) => resp.with_node_id(BrokerId(b.node_id)).with_host(str(&b.host)).with_port(b.port).with_error_message((v >= 1).then(|| str("NONE"))),
        Err((code, msg)) => {
            let resp = resp.with_node_id(BrokerId(-1)).with_port(-1).with_error_code(code);
            if v >= 1 { resp.with_error_message(Some(str(&msg))) } else { resp }
        }
    })
}
