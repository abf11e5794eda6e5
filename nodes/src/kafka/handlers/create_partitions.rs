//! CreatePartitions (key 37): grow a topic. The partitions added count against the caller's
//! `controller_mutation_rate` quota (KIP-599; refused from v3 while it is used up).

use backwaters_actors::acl::op;
use super::{str, KafkaCtx};
use crate::kafka::errors;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: CreatePartitionsRequest) -> Option<CreatePartitionsResponse> {
    let mut results = Vec::new();
    let client = h.client_id.as_deref();
    let mut throttle_ms = 0;
    for t in req.topics {
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !ctx.allowed_topic(op::ALTER, &t.name.0) {
            results.push(r.with_error_code(ResponseError::TopicAuthorizationFailed.code()).with_error_message(Some(str("CreatePartitions needs ALTER on the topic"))));
            continue;
        }
        // KIP-599: from v3 a caller whose mutation quota is used up is refused (it retries).
        if let Some((ms, why)) = ctx.throttler.mutation_refused(&ctx.node, client, h.request_api_version >= 3) {
            throttle_ms = throttle_ms.max(ms);
            results.push(r.with_error_code(ResponseError::ThrottlingQuotaExceeded.code()).with_error_message(Some(str(&why))));
            continue;
        }
        let before = ctx.node.topic(&t.name.0).map_or(0, |topic| topic.partitions.len() as i32);
        results.push(match ctx.node.create_partitions(&t.name.0, t.count, req.validate_only).await {
            Ok(()) => {
                if !req.validate_only {
                    let added = (t.count - before).max(0) as u64;
                    throttle_ms = throttle_ms.max(ctx.throttler.charge_mutations(&ctx.node, client, added));
                }
                r
            }
            Err(e) => r.with_error_code(errors::admin_error(&e)).with_error_message(Some(str(&e.to_string()))),
        });
    }
    Some(CreatePartitionsResponse::default().with_results(results).with_throttle_time_ms(throttle_ms))
}
