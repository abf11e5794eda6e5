//! AlterConfigs (key 33): replaces a topic's config overrides as a whole.

use backwaters_actors::acl::op;
use super::describe_configs::{ONLY_TOPICS, RESOURCE_TOPIC};
use super::{str, KafkaCtx};
use crate::kafka::errors;
use backwaters_actors::node::ConfigOp;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: AlterConfigsRequest) -> Option<AlterConfigsResponse> {
    let mut out = Vec::new();
    for r in req.resources {
        let resp = AlterConfigsResourceResponse::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
        if r.resource_type != RESOURCE_TOPIC {
            out.push(resp.with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(str(ONLY_TOPICS))));
            continue;
        }
        if !ctx.allowed_topic(op::ALTER_CONFIGS, &r.resource_name) {
            out.push(resp.with_error_code(ResponseError::TopicAuthorizationFailed.code()).with_error_message(Some(str("needs ALTER_CONFIGS on the topic"))));
            continue;
        }
        let ops = r.configs.iter().filter_map(|c| c.value.as_ref().map(|v| ConfigOp::Set(c.name.to_string(), v.to_string()))).collect();
        out.push(match ctx.node.alter_config(&r.resource_name, ops, true, req.validate_only).await {
            Ok(()) => resp,
            Err(e) => resp.with_error_code(errors::admin_error(&e)).with_error_message(Some(str(&e.to_string()))),
        });
    }
    Some(AlterConfigsResponse::default().with_responses(out))
}
