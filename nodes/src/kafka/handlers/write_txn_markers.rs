//! WriteTxnMarkers (key 27): in Kafka the coordinator's request to partition leaders; here
//! the coordinator writes markers itself (through the metadata log), so this serves
//! operators: `kafka-transactions abort` (and admin clients' abort_transaction) ends a
//! producer's open transaction on one partition with a marker. Each partition must be led by
//! this node; a producer with nothing open there needs no marker and gets no error; an epoch
//! older than the producer's is refused. Needs CLUSTER_ACTION on the cluster.

use super::{topic_name, KafkaCtx};
use crate::kafka::errors;
use backwaters_actors::acl::op;
use kafka_protocol::messages::write_txn_markers_response::{WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult};
use kafka_protocol::messages::{RequestHeader, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 1 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: WriteTxnMarkersRequest) -> Option<WriteTxnMarkersResponse> {
    let allowed = ctx.allowed_cluster(op::CLUSTER_ACTION);
    let me = ctx.broker.node_id;
    let mut markers = Vec::with_capacity(req.markers.len());
    for m in &req.markers {
        let mut topics = Vec::with_capacity(m.topics.len());
        for t in &m.topics {
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for &index in &t.partition_indexes {
                let code = match ctx.node.partition(&t.name.0, index) {
                    _ if !allowed => ResponseError::ClusterAuthorizationFailed.code(),
                    None => ResponseError::UnknownTopicOrPartition.code(),
                    Some(p) if p.leader() != Some(me) => ResponseError::NotLeaderOrFollower.code(),
                    Some(p) => match ctx.node.write_txn_marker(&p, m.producer_id.0, m.producer_epoch, m.transaction_result, m.coordinator_epoch).await {
                        Ok(()) => {
                            tracing::info!(topic = %t.name.0, partition = index, producer_id = m.producer_id.0, epoch = m.producer_epoch, commit = m.transaction_result, "transaction marker written on request (WriteTxnMarkers)");
                            errors::NONE
                        }
                        Err(e) => errors::partition_error(&e),
                    },
                };
                partitions.push(WritableTxnMarkerPartitionResult::default().with_partition_index(index).with_error_code(code));
            }
            topics.push(WritableTxnMarkerTopicResult::default().with_name(topic_name(&t.name.0)).with_partitions(partitions));
        }
        markers.push(WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics));
    }
    Some(WriteTxnMarkersResponse::default().with_markers(markers))
}
