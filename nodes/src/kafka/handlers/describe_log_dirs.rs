//! DescribeLogDirs (key 35): this node's replicas with their stored size, as kafka-log-dirs
//! and the Kafka web consoles show them. A node has one log dir: its data folder (one sled
//! store). Needs DESCRIBE on the cluster.

use super::{str, topic_name, KafkaCtx};
use backwaters_actors::acl::op;
use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use std::sync::atomic::Ordering;

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: DescribeLogDirsRequest) -> Option<DescribeLogDirsResponse> {
    if !ctx.allowed_cluster(op::DESCRIBE) {
        let resp = DescribeLogDirsResponse::default();
        return Some(if h.request_api_version >= 3 { resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code()) } else { resp });
    }
    let me = ctx.broker.node_id;
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(ts) => ts.iter().any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
    };
    let mut topics = Vec::new();
    for t in ctx.node.topics() {
        let mut partitions = Vec::new();
        for p in t.partitions.iter().filter(|p| p.replicas.contains(&me) && wanted(&t.record.name, p.partition)) {
            let Some(s) = ctx.node.partition_status(p).await else { continue };
            // How far this replica's log is behind what the partition has committed.
            let lag = if p.leader() == Some(me) { 0 } else { (s.high_watermark - s.log_end_offset).max(0) };
            partitions.push(DescribeLogDirsPartition::default().with_partition_index(p.partition).with_partition_size(s.bytes as i64).with_offset_lag(lag));
        }
        if !partitions.is_empty() {
            topics.push(DescribeLogDirsTopic::default().with_name(topic_name(&t.record.name)).with_partitions(partitions));
        }
    }
    let usable = ctx.node.metrics().disk_free_bytes.load(Ordering::Relaxed);
    let dir = DescribeLogDirsResult::default()
        .with_log_dir(str(&ctx.node.settings().data_dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(if usable == 0 { -1 } else { usable as i64 });
    Some(DescribeLogDirsResponse::default().with_results(vec![dir]))
}
