//! DescribeCluster (key 60).

use backwaters_actors::acl::op;
use super::{str, KafkaCtx, AUTHORIZED_OPS_OMITTED};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
pub const ADVERTISED: VersionRange = VERSIONS;

/// Endpoint type "brokers" (KIP-919).
const ENDPOINT_BROKERS: i8 = 1;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: DescribeClusterRequest) -> Option<DescribeClusterResponse> {
    let b = &ctx.broker;
    if req.endpoint_type != 0 && req.endpoint_type != ENDPOINT_BROKERS {
        return Some(DescribeClusterResponse::default().with_error_code(ResponseError::UnsupportedEndpointType.code()).with_cluster_id(str(ctx.node.cluster_id())));
    }
    if !ctx.allowed_cluster(op::DESCRIBE) {
        let msg = "DescribeCluster needs DESCRIBE on the cluster";
        return Some(DescribeClusterResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code()).with_error_message(Some(str(msg))).with_cluster_id(str(ctx.node.cluster_id())));
    }
    let brokers = ctx.brokers.iter().map(|b| DescribeClusterBroker::default().with_broker_id(BrokerId(b.node_id)).with_host(str(&b.host)).with_port(b.port).with_rack(b.rack.as_deref().map(str))).collect();
    Some(
        DescribeClusterResponse::default()
            .with_endpoint_type(ENDPOINT_BROKERS)
            .with_cluster_id(str(ctx.node.cluster_id()))
            .with_controller_id(BrokerId(ctx.node.controller_id().unwrap_or(b.node_id)))
            .with_brokers(brokers)
            .with_cluster_authorized_operations(AUTHORIZED_OPS_OMITTED),
    )
}
