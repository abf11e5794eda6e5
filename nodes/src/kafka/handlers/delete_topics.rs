//! DeleteTopics (key 20): by name (all versions) or by topic id (v6). The partitions deleted
//! count against the caller's `controller_mutation_rate` quota (KIP-599; refused from v5
//! while it is used up).

use backwaters_actors::acl::op;
use super::{str, topic_name, KafkaCtx};
use crate::kafka::errors;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 6 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: DeleteTopicsRequest) -> Option<DeleteTopicsResponse> {
    let client = h.client_id.as_deref();
    let mut throttle_ms = 0;
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = req.topic_names.iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect();
    targets.extend(req.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)));
    let mut out = Vec::new();
    for (name, id) in targets {
        let name = name.or_else(|| ctx.node.topics().iter().find(|t| t.id() == id).map(|t| t.record.name.clone()));
        let r = DeletableTopicResult::default().with_topic_id(id);
        let Some(name) = name else {
            out.push(r.with_error_code(ResponseError::UnknownTopicId.code()));
            continue;
        };
        let r = r.with_name(Some(topic_name(&name)));
        if !ctx.allowed_topic(op::DELETE, &name) {
            out.push(r.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        // KIP-599: from v5 a caller whose mutation quota is used up is refused (it retries).
        if let Some((ms, why)) = ctx.throttler.mutation_refused(&ctx.node, client, h.request_api_version >= 5) {
            throttle_ms = throttle_ms.max(ms);
            out.push(r.with_error_code(ResponseError::ThrottlingQuotaExceeded.code()).with_error_message(Some(str(&why))));
            continue;
        }
        let partitions = ctx.node.topic(&name).map_or(0, |t| t.partitions.len() as u64);
        out.push(match ctx.node.delete_topic(&name).await {
            Ok(()) => {
                throttle_ms = throttle_ms.max(ctx.throttler.charge_mutations(&ctx.node, client, partitions));
                r
            }
            Err(e) => r.with_error_code(errors::admin_error(&e)).with_error_message(Some(str(&e.to_string()))),
        });
    }
    Some(DeleteTopicsResponse::default().with_responses(out).with_throttle_time_ms(throttle_ms))
}
