//! ListPartitionReassignments (key 46): replica moves in progress. Backwaters does not move
//! replicas between nodes (placement is fixed at creation; a lost node is refilled in
//! place), so there are never any: the answer is an empty list, which is the truth, for
//! tools that check before they act. Needs DESCRIBE on the cluster.

use super::{str, KafkaCtx};
use backwaters_actors::acl::op;
use kafka_protocol::messages::{ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, _req: ListPartitionReassignmentsRequest) -> Option<ListPartitionReassignmentsResponse> {
    if !ctx.allowed_cluster(op::DESCRIBE) {
        let msg = "ListPartitionReassignments needs DESCRIBE on the cluster";
        return Some(ListPartitionReassignmentsResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code()).with_error_message(Some(str(msg))));
    }
    Some(ListPartitionReassignmentsResponse::default())
}
