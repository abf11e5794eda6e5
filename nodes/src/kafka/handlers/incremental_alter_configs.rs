//! IncrementalAlterConfigs (key 44): SET / DELETE single topic configs. APPEND and SUBTRACT
//! apply to list configs only; of ours only cleanup.policy is a list.

use backwaters_actors::acl::op;
use super::describe_configs::{ONLY_TOPICS, RESOURCE_TOPIC};
use super::{str, KafkaCtx};
use crate::kafka::errors;
use backwaters_actors::node::ConfigOp;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
pub const ADVERTISED: VersionRange = VERSIONS;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: IncrementalAlterConfigsRequest) -> Option<IncrementalAlterConfigsResponse> {
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
        let current = ctx.node.topic(&r.resource_name).map(|t| t.config());
        let mut ops = Vec::new();
        let mut bad = None;
        for c in &r.configs {
            let name = c.name.to_string();
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            match c.config_operation {
                SET => ops.push(ConfigOp::Set(name, value)),
                DELETE => ops.push(ConfigOp::Delete(name)),
                APPEND | SUBTRACT if name == "cleanup.policy" => {
                    let mut list: Vec<String> = current.as_ref().map(|c| c.cleanup_policy.split(',').map(String::from).collect()).unwrap_or_default();
                    for v in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                        list.retain(|x| x != v);
                        if c.config_operation == APPEND {
                            list.push(v.to_string());
                        }
                    }
                    ops.push(ConfigOp::Set(name, list.join(",")));
                }
                op => bad = Some(format!("operation {op} does not apply to {name}")),
            }
        }
        if let Some(msg) = bad {
            out.push(resp.with_error_code(ResponseError::InvalidConfig.code()).with_error_message(Some(str(&msg))));
            continue;
        }
        out.push(match ctx.node.alter_config(&r.resource_name, ops, false, req.validate_only).await {
            Ok(()) => resp,
            Err(e) => resp.with_error_code(errors::admin_error(&e)).with_error_message(Some(str(&e.to_string()))),
        });
    }
    Some(IncrementalAlterConfigsResponse::default().with_responses(out))
}
