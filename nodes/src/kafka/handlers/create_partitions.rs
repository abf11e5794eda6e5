//! CreatePartitions (key 37): grow a topic.

use backwaters_actors::acl::op;
use super::{str, KafkaCtx};
use crate::kafka::errors;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: CreatePartitionsRequest) -> Option<CreatePartitionsResponse> {
    let mut results = Vec::new();
    for t in req.topics {
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !ctx.allowed_topic(op::ALTER, &t.name.0) {
            results.push(r.with_error_code(kafka_protocol::ResponseError::TopicAuthorizationFailed.code()).with_error_message(Some(str("CreatePartitions needs ALTER on the topic"))));
            continue;
        }
        results.push(match ctx.node.create_partitions(&t.name.0, t.count, req.validate_only).await {
            Ok(()) => r,
            Err(e) => r.with_error_code(errors::admin_error(&e)).with_error_message(Some(str(&e.to_string()))),
        });
    }
    Some(CreatePartitionsResponse::default().with_results(results))
}
