//! FindCoordinator (key 10). Group and transaction coordinators are not built yet, so every
//! key gets COORDINATOR_NOT_AVAILABLE (retriable) with a message that says why, instead of a
//! closed connection. Clients that only `assign()` partitions need nothing more.

use super::{str, KafkaCtx};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 6 };
pub const ADVERTISED: VersionRange = VERSIONS;

const WHY: &str = "consumer groups and transactions are not available on this broker yet";

pub async fn handle(_ctx: &KafkaCtx, h: &RequestHeader, req: FindCoordinatorRequest) -> Option<FindCoordinatorResponse> {
    let code = ResponseError::CoordinatorNotAvailable.code();
    let resp = FindCoordinatorResponse::default().with_node_id(BrokerId(-1)).with_port(-1);
    if h.request_api_version >= 4 {
        let coordinators = req.coordinator_keys.iter().map(|k| Coordinator::default().with_key(k.clone()).with_node_id(BrokerId(-1)).with_port(-1).with_error_code(code).with_error_message(Some(str(WHY)))).collect();
        return Some(resp.with_coordinators(coordinators));
    }
    let resp = resp.with_error_code(code);
    Some(if h.request_api_version >= 1 { resp.with_error_message(Some(str(WHY))) } else { resp })
}
