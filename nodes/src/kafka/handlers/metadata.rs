//! Metadata (key 3): brokers (with their zone as rack), topics and partition leaders with
//! their leader epochs (v7+; the leader's Raft term, see `partition::epochs`).

use super::{str, topic_name, KafkaCtx, AUTHORIZED_OPS_OMITTED};
use crate::kafka::errors;
use backwaters_actors::acl::op;
use backwaters_actors::node::Topic;
use backwaters_actors::topic::validate_topic_name;
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use std::sync::Arc;

/// v13 only adds a top-level error code; v0-v12 cover every client here.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 12 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: MetadataRequest) -> Option<MetadataResponse> {
    let v = h.request_api_version;
    let brokers = ctx
        .brokers
        .iter()
        .map(|b| MetadataResponseBroker::default().with_node_id(BrokerId(b.node_id)).with_host(str(&b.host)).with_port(b.port).with_rack(b.rack.as_deref().map(str)))
        .collect();
    // v0: an empty list means all topics; v1+: null means all, empty means none. From v10 a
    // topic may be asked for by id (name null): KIP-848 consumers learn their assignment as ids.
    let requested: Option<Vec<Result<String, uuid::Uuid>>> = match req.topics {
        None => None,
        Some(t) if t.is_empty() && v == 0 => None,
        Some(t) => Some(t.into_iter().filter_map(|t| match t.name {
            // Asked by id: a null name (an empty one from some encoders) and a topic id.
            _ if v >= 10 && !t.topic_id.is_nil() && t.name.as_ref().is_none_or(|n| n.is_empty()) => Some(Err(t.topic_id)),
            Some(n) => Some(Ok(n.0.to_string())),
            None => None,
        }).collect()),
    };
    let auto_create = v < 4 || req.allow_auto_topic_creation;
    let mut topics = Vec::new();
    let departed = ctx.node.departed_nodes();
    match requested {
        // All topics: those the requester may DESCRIBE, as Kafka lists them.
        None => topics.extend(ctx.node.topics().iter().filter(|t| ctx.visible_topic(&t.record.name)).map(|t| topic_entry(t, &departed, v))),
        Some(asked) => {
            for wanted in asked {
                let name = match wanted {
                    Ok(name) => name,
                    Err(id) => {
                        // An id the requester may not see is answered as unknown (ids are not secret,
                        // names may be).
                        topics.push(match ctx.node.topic_by_id(id).filter(|t| ctx.visible_topic(&t.record.name)) {
                            Some(t) => topic_entry(&t, &departed, v),
                            None => MetadataResponseTopic::default().with_topic_id(id).with_error_code(ResponseError::UnknownTopicId.code()).with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED),
                        });
                        continue;
                    }
                };
                if !ctx.allowed_topic(op::DESCRIBE, &name) {
                    let code = ResponseError::TopicAuthorizationFailed.code();
                    topics.push(MetadataResponseTopic::default().with_name(Some(topic_name(&name))).with_error_code(code).with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED));
                    continue;
                }
                let found = match ctx.node.topic(&name) {
                    Some(t) => Some(t),
                    // Auto-creation needs CREATE on the cluster or the topic.
                    None if auto_create && ctx.may_create_topic(&name) => ctx.node.topic_or_auto_create(&name).await,
                    None => None,
                };
                topics.push(match found {
                    Some(t) => topic_entry(&t, &departed, v),
                    None => {
                        let code = if validate_topic_name(&name).is_err() { ResponseError::InvalidTopicException } else { ResponseError::UnknownTopicOrPartition };
                        MetadataResponseTopic::default().with_name(Some(topic_name(&name))).with_error_code(code.code()).with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED)
                    }
                });
            }
        }
    }
    Some(
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(str(ctx.node.cluster_id())))
            // Before the metadata group has a leader: this broker (every node forwards admin
            // requests to the controller, and clients such as rskafka refuse -1).
            .with_controller_id(BrokerId(ctx.node.controller_id().unwrap_or(ctx.broker.node_id)))
            .with_topics(topics)
            .with_cluster_authorized_operations(AUTHORIZED_OPS_OMITTED),
    )
}

/// The partition's error code, and the leader and leader epoch (its Raft term) it is
/// reported with. `departed`: nodes whose actor-cluster session closed. A leader there is gone
/// before Raft notices: the partition is reported leaderless (see [`topic_entry`]).
pub fn reported_leader(p: &backwaters_actors::partition::PartitionShared, departed: &std::collections::BTreeSet<i32>) -> (i16, i32, i32) {
    match p.leader() {
        Some(l) if !departed.contains(&l) => (errors::NONE, l, p.leader_epoch()),
        _ => (ResponseError::LeaderNotAvailable.code(), -1, -1),
    }
}

/// `departed`: nodes whose actor-cluster session closed. A leader there is gone before Raft
/// notices (its election timeout is 1-1.5 s; a dropped session is seen in ~0.1 s): the
/// partition is reported leaderless, and clients look again soon instead of backing off
/// while reconnecting to a dead broker.
fn topic_entry(t: &Arc<Topic>, departed: &std::collections::BTreeSet<i32>, v: i16) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let replicas: Vec<BrokerId> = p.replicas.iter().map(|r| BrokerId(*r)).collect();
            let (code, leader, epoch) = reported_leader(p, departed);
            MetadataResponsePartition::default()
                .with_error_code(code)
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(leader))
                // Leader epochs exist from v7 on; before that the field keeps its default.
                .with_leader_epoch(if v >= 7 { epoch } else { -1 })
                .with_isr_nodes(replicas.clone())
                .with_replica_nodes(replicas)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.record.name)))
        .with_topic_id(t.id())
        .with_is_internal(t.record.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED)
}
