//! AlterClientQuotas (key 49, KIP-546): set and remove client quotas of users and client ids
//! (`kafka-configs --alter --entity-type users/clients --add-config producer_byte_rate=...`),
//! replicated in the metadata log like topics; every node enforces them on its own traffic
//! (see `backwaters_actors::quota`). An entity's changes are checked together and either all
//! written or none (INVALID_REQUEST naming what is wrong); `validate_only` writes nothing.
//! Needs ALTER_CONFIGS on the cluster, as in Kafka.

use super::{str, KafkaCtx};
use backwaters_actors::acl::op;
use backwaters_actors::controller::ControllerRequest;
use backwaters_actors::quota::{self, QuotaEntity, QuotaValue};
use kafka_protocol::messages::alter_client_quotas_request::EntryData as Entry;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
pub const ADVERTISED: VersionRange = VERSIONS;

/// One entity's changes, checked before any is written.
fn plan(entry: &Entry) -> Result<ControllerRequest, String> {
    let parts: Vec<(String, Option<String>)> = entry.entity.iter().map(|e| (e.entity_type.to_string(), e.entity_name.as_ref().map(|n| n.to_string()))).collect();
    quota::validate_entity(&parts)?;
    let mut ops = Vec::new();
    for o in &entry.ops {
        let value = (!o.remove).then_some(o.value);
        quota::validate_value(&o.key, value)?;
        if ops.iter().any(|(k, _)| *k == o.key.as_str()) {
            return Err(format!("more than one change to {}", o.key.as_str()));
        }
        ops.push((o.key.to_string(), value.map(QuotaValue)));
    }
    let entity: QuotaEntity = parts.into_iter().collect();
    Ok(ControllerRequest::Quotas { entity, ops })
}

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: AlterClientQuotasRequest) -> Option<AlterClientQuotasResponse> {
    let allowed = ctx.allowed_cluster(op::ALTER_CONFIGS);
    let mut entries = Vec::new();
    for entry in &req.entries {
        let outcome: Result<(), (ResponseError, String)> = if !allowed {
            Err((ResponseError::ClusterAuthorizationFailed, "AlterClientQuotas needs ALTER_CONFIGS on the cluster".into()))
        } else {
            match plan(entry) {
                Err(msg) => Err((ResponseError::InvalidRequest, msg)),
                Ok(_) if req.validate_only => Ok(()),
                Ok(change) => ctx.node.controller(change).await.map_err(|e| match e {
                    backwaters_actors::node::AdminError::InvalidConfig(msg) => (ResponseError::InvalidRequest, msg),
                    other => (ResponseError::try_from_code(crate::kafka::errors::admin_error(&other)).unwrap_or(ResponseError::UnknownServerError), other.to_string()),
                }),
            }
        };
        let entity = entry.entity.iter().map(|e| EntityData::default().with_entity_type(e.entity_type.clone()).with_entity_name(e.entity_name.clone())).collect();
        let (code, msg) = match outcome {
            Ok(()) => (0, None),
            Err((code, msg)) => (code.code(), Some(str(&msg))),
        };
        entries.push(EntryData::default().with_error_code(code).with_error_message(msg).with_entity(entity));
    }
    Some(AlterClientQuotasResponse::default().with_entries(entries))
}
