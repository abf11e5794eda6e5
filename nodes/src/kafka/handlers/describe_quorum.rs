//! DescribeQuorum (key 55): the controller's Raft group (`__cluster_metadata`-0) as KRaft
//! tools show it (kafka-metadata-quorum): leader, its term as the leader epoch, the high
//! watermark, and each voter's log end as the leader knows it. Any node answers (Kafka's
//! brokers forward to the controller): a follower from its own replica, with the leader it
//! follows, its term and high watermark, and -1 for the log ends of voters it cannot see.
//! Needs DESCRIBE on the cluster.

use super::{str, KafkaCtx};
use backwaters_actors::acl::op;
use backwaters_actors::controller::METADATA_TOPIC;
use kafka_protocol::messages::describe_quorum_response::{Listener, Node as QuorumNode, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, RequestHeader, TopicName};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: DescribeQuorumRequest) -> Option<DescribeQuorumResponse> {
    let v = h.request_api_version;
    let refuse = |e: ResponseError, msg: &str| {
        let resp = DescribeQuorumResponse::default().with_error_code(e.code());
        Some(if v >= 2 { resp.with_error_message(Some(str(msg))) } else { resp })
    };
    if !ctx.allowed_cluster(op::DESCRIBE) {
        return refuse(ResponseError::ClusterAuthorizationFailed, "DescribeQuorum needs DESCRIBE on the cluster");
    }
    let asked_ok = req.topics.len() == 1 && req.topics[0].topic_name.as_str() == METADATA_TOPIC && req.topics[0].partitions.len() == 1 && req.topics[0].partitions[0].partition_index == 0;
    if !asked_ok {
        return refuse(ResponseError::InvalidRequest, "DescribeQuorum describes __cluster_metadata partition 0 only");
    }
    let Some(meta) = ctx.node.metadata_partition() else {
        return refuse(ResponseError::CoordinatorNotAvailable, "the metadata log is not loaded yet");
    };
    let me = ctx.broker.node_id;
    let part = PartitionData::default().with_partition_index(0);
    let part = match ctx.node.partition_status(&meta).await {
        Some(st) => {
            // The leader knows every voter's log end; a follower only its own (others -1).
            let ends: Vec<(i32, i64)> = if st.leader == Some(me) {
                st.replica_ends.clone()
            } else {
                meta.replicas.iter().map(|n| (*n, if *n == me { st.log_end_offset } else { -1 })).collect()
            };
            let voter = |(node, end): &(i32, i64)| {
                let r = ReplicaState::default().with_replica_id(BrokerId(*node)).with_log_end_offset(*end);
                if v >= 1 { r.with_last_fetch_timestamp(-1).with_last_caught_up_timestamp(-1) } else { r }
            };
            part.with_leader_id(BrokerId(st.leader.unwrap_or(-1)))
                .with_leader_epoch(st.term.min(i32::MAX as u64) as i32)
                .with_high_watermark(st.high_watermark)
                .with_current_voters(ends.iter().map(voter).collect())
        }
        None => {
            let part = part.with_error_code(ResponseError::NotLeaderOrFollower.code()).with_leader_id(BrokerId(-1)).with_leader_epoch(-1).with_high_watermark(-1);
            if v >= 2 { part.with_error_message(Some(str("the metadata replica is restarting; retry"))) } else { part }
        }
    };
    let topic = TopicData::default().with_topic_name(TopicName(str(METADATA_TOPIC))).with_partitions(vec![part]);
    let resp = DescribeQuorumResponse::default().with_topics(vec![topic]);
    Some(if v >= 2 {
        let nodes = ctx.brokers.iter().map(|b| QuorumNode::default().with_node_id(BrokerId(b.node_id)).with_listeners(vec![Listener::default().with_name(str("PLAINTEXT")).with_host(str(&b.host)).with_port(b.port as u16)])).collect();
        resp.with_nodes(nodes)
    } else {
        resp
    })
}
