//! DescribeClientQuotas (key 48, KIP-546): the client quotas set for the entities a filter
//! matches, as `kafka-configs --describe --entity-type users/clients` lists them. Each filter
//! component names an entity type and matches one name (0), the default entity (1) or any
//! entity with that type (2); `strict` leaves out entities with types the filter does not name.
//! Needs DESCRIBE_CONFIGS on the cluster, as in Kafka.

use super::{str, KafkaCtx};
use backwaters_actors::acl::op;
use backwaters_actors::quota::{QuotaEntity, CLIENT_ID, USER};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
pub const ADVERTISED: VersionRange = VERSIONS;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

/// Why Kafka would refuse the filter, if it would.
fn invalid(components: &[ComponentData]) -> Option<String> {
    for (i, c) in components.iter().enumerate() {
        let kind = c.entity_type.as_str();
        if kind != USER && kind != CLIENT_ID {
            return Some(format!("unknown entity type {kind:?} in the filter: use \"user\" or \"client-id\""));
        }
        if components[..i].iter().any(|p| p.entity_type == c.entity_type) {
            return Some(format!("entity type {kind:?} named twice in the filter"));
        }
        match c.match_type {
            MATCH_EXACT if c._match.is_none() => return Some(format!("an exact match on {kind} needs a name")),
            MATCH_EXACT | MATCH_DEFAULT | MATCH_ANY => {}
            other => return Some(format!("unknown match type {other} (0: exact, 1: default, 2: any)")),
        }
    }
    None
}

/// Whether `entity` passes the (valid) filter.
fn matches(entity: &QuotaEntity, components: &[ComponentData], strict: bool) -> bool {
    components.iter().all(|c| match entity.get(c.entity_type.as_str()) {
        None => false,
        Some(name) => match c.match_type {
            MATCH_EXACT => c._match.as_ref().is_some_and(|m| name.as_deref() == Some(m.as_str())),
            MATCH_DEFAULT => name.is_none(),
            _ => true,
        },
    }) && (!strict || entity.keys().all(|k| components.iter().any(|c| c.entity_type.as_str() == k)))
}

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: DescribeClientQuotasRequest) -> Option<DescribeClientQuotasResponse> {
    let refuse = |code: ResponseError, msg: String| Some(DescribeClientQuotasResponse::default().with_error_code(code.code()).with_error_message(Some(str(&msg))).with_entries(None));
    if !ctx.allowed_cluster(op::DESCRIBE_CONFIGS) {
        return refuse(ResponseError::ClusterAuthorizationFailed, "DescribeClientQuotas needs DESCRIBE_CONFIGS on the cluster".into());
    }
    if let Some(msg) = invalid(&req.components) {
        return refuse(ResponseError::InvalidRequest, msg);
    }
    let mut entries = Vec::new();
    for (entity, values) in ctx.node.quotas().iter().filter(|(e, _)| matches(e, &req.components, req.strict)) {
        let entity = entity.iter().map(|(k, v)| EntityData::default().with_entity_type(str(k)).with_entity_name(v.as_deref().map(str))).collect();
        let values = values.iter().map(|(k, v)| ValueData::default().with_key(str(k)).with_value(v.0)).collect();
        entries.push(EntryData::default().with_entity(entity).with_values(values));
    }
    Some(DescribeClientQuotasResponse::default().with_entries(Some(entries)))
}
