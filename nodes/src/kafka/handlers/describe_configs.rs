//! DescribeConfigs (key 32): topic configs (with defaults marked) and read-only broker configs.

use backwaters_actors::acl::op;
use super::create_topics::{SOURCE_DEFAULT, SOURCE_TOPIC};
use super::{str, KafkaCtx};
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub const RESOURCE_TOPIC: i8 = 2;
/// Why AlterConfigs / IncrementalAlterConfigs refuse anything but topics.
pub const ONLY_TOPICS: &str = "only topic configs can be altered; broker configs come from the cluster config file";
pub const RESOURCE_BROKER: i8 = 4;
/// Config source: static broker config (from the cluster config file).
const SOURCE_STATIC_BROKER: i8 = 4;

struct Row {
    name: String,
    value: String,
    source: i8,
    read_only: bool,
    doc: &'static str,
}

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: DescribeConfigsRequest) -> Option<DescribeConfigsResponse> {
    let mut results = Vec::new();
    for r in req.resources {
        let res = DescribeConfigsResult::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
        let rows = match r.resource_type {
            RESOURCE_TOPIC if !ctx.allowed_topic(op::DESCRIBE_CONFIGS, &r.resource_name) => Err((ResponseError::TopicAuthorizationFailed, "DescribeConfigs needs DESCRIBE_CONFIGS on the topic".to_string())),
            RESOURCE_BROKER if !ctx.allowed_cluster(op::DESCRIBE_CONFIGS) => Err((ResponseError::ClusterAuthorizationFailed, "DescribeConfigs needs DESCRIBE_CONFIGS on the cluster".to_string())),
            RESOURCE_TOPIC => match ctx.node.topic(&r.resource_name) {
                Some(t) => Ok(t
                    .config()
                    .entries(&t.record.overrides)
                    .into_iter()
                    .map(|e| Row { name: e.name.into(), value: e.value, source: if e.is_default { SOURCE_DEFAULT } else { SOURCE_TOPIC }, read_only: false, doc: e.doc })
                    .collect::<Vec<_>>()),
                None => Err((ResponseError::UnknownTopicOrPartition, format!("topic {} does not exist", &*r.resource_name))),
            },
            RESOURCE_BROKER => {
                if r.resource_name.is_empty() || r.resource_name.parse::<i32>().ok() == Some(ctx.broker.node_id) {
                    Ok(broker_rows(ctx))
                } else {
                    Err((ResponseError::InvalidRequest, format!("broker {} is not this broker ({})", &*r.resource_name, ctx.broker.node_id)))
                }
            }
            other => Err((ResponseError::InvalidRequest, format!("resource type {other} is not supported; use 2 (topic) or 4 (broker)"))),
        };
        results.push(match rows {
            Ok(rows) => {
                let configs = rows
                    .into_iter()
                    .filter(|row| r.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| k.as_str() == row.name)))
                    .map(|row| {
                        DescribeConfigsResourceResult::default()
                            .with_name(str(&row.name))
                            .with_value(Some(str(&row.value)))
                            .with_read_only(row.read_only)
                            .with_config_source(row.source)
                            .with_documentation(req.include_documentation.then(|| str(row.doc)))
                    })
                    .collect();
                res.with_configs(configs)
            }
            Err((code, msg)) => res.with_error_code(code.code()).with_error_message(Some(str(&msg))),
        });
    }
    Some(DescribeConfigsResponse::default().with_results(results))
}

fn broker_rows(ctx: &KafkaCtx) -> Vec<Row> {
    let s = ctx.node.settings();
    let row = |name: &str, value: String, doc| Row { name: name.into(), value, source: SOURCE_STATIC_BROKER, read_only: true, doc };
    vec![
        row("broker.id", s.node_id.to_string(), "This node's id"),
        row("broker.rack", s.zone.clone(), "This node's zone"),
        row("auto.create.topics.enable", s.auto_create_topics.to_string(), "Create unknown topics on first metadata request"),
        row("num.partitions", s.default_partitions.to_string(), "Partitions of auto-created topics"),
        row("default.replication.factor", s.default_replication_factor.to_string(), "Replication factor of new topics"),
        row("socket.request.max.bytes", ctx.max_frame_bytes.to_string(), "Largest request frame accepted"),
    ]
}
