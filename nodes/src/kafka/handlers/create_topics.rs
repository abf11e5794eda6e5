//! CreateTopics (key 19). The partitions created count against the caller's
//! `controller_mutation_rate` quota (KIP-599): from v6 a caller over it is refused with
//! THROTTLING_QUOTA_EXCEEDED until its quota recovers, before that it is only throttled.

use super::{str, KafkaCtx};
use crate::kafka::errors;
use backwaters_actors::node::AdminError;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 7 };
pub const ADVERTISED: VersionRange = VERSIONS;

/// Config source codes of DescribeConfigs/CreateTopics.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_DEFAULT: i8 = 5;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: CreateTopicsRequest) -> Option<CreateTopicsResponse> {
    let mut results = Vec::new();
    let client = h.client_id.as_deref();
    let mut throttle_ms = 0;
    for t in req.topics {
        let name = t.name.0.to_string();
        let base = CreatableTopicResult::default().with_name(t.name.clone()).with_num_partitions(-1).with_replication_factor(-1);
        if !ctx.may_create_topic(&name) {
            results.push(base.with_error_code(ResponseError::TopicAuthorizationFailed.code()).with_error_message(Some(str("CreateTopics needs CREATE on the cluster or the topic"))));
            continue;
        }
        // KIP-599: from v6 a caller whose mutation quota is used up is refused (it retries).
        if let Some((ms, why)) = ctx.throttler.mutation_refused(&ctx.node, client, h.request_api_version >= 6) {
            throttle_ms = throttle_ms.max(ms);
            results.push(base.with_error_code(ResponseError::ThrottlingQuotaExceeded.code()).with_error_message(Some(str(&why))));
            continue;
        }
        if !t.assignments.is_empty() {
            let only_me = t.assignments.iter().all(|a| a.broker_ids.iter().all(|b| b.0 == ctx.broker.node_id));
            if !only_me {
                results.push(base.with_error_code(ResponseError::InvalidReplicaAssignment.code()).with_error_message(Some(str("replica assignment names brokers this cluster does not have"))));
                continue;
            }
        }
        let partitions = if t.assignments.is_empty() { t.num_partitions } else { t.assignments.len() as i32 };
        let rf = if t.assignments.is_empty() { t.replication_factor } else { t.assignments[0].broker_ids.len() as i16 };
        let mut overrides = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                overrides.insert(c.name.to_string(), v.to_string());
            }
        }
        match ctx.node.create_topic(&name, partitions, rf, overrides, req.validate_only).await {
            Ok(topic) => {
                if !req.validate_only {
                    throttle_ms = throttle_ms.max(ctx.throttler.charge_mutations(&ctx.node, client, topic.partitions.len() as u64));
                }
                let config = topic.config();
                let configs = config
                    .entries(&topic.record.overrides)
                    .into_iter()
                    .map(|e| CreatableTopicConfigs::default().with_name(str(e.name)).with_value(Some(str(&e.value))).with_config_source(if e.is_default { SOURCE_DEFAULT } else { SOURCE_TOPIC }))
                    .collect();
                results.push(
                    base.with_topic_id(topic.id())
                        .with_num_partitions(if req.validate_only { partitions } else { topic.partitions.len() as i32 })
                        .with_replication_factor(topic.record.replication_factor)
                        .with_configs(Some(configs)),
                );
            }
            Err(e) => results.push(error(base, &e)),
        }
    }
    Some(CreateTopicsResponse::default().with_topics(results).with_throttle_time_ms(throttle_ms))
}

fn error(base: CreatableTopicResult, e: &AdminError) -> CreatableTopicResult {
    base.with_error_code(errors::admin_error(e)).with_error_message(Some(str(&e.to_string())))
}
