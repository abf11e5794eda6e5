//! ApiVersions (key 18): what this broker serves, built from the dispatch table.
//!
//! The response carries no tagged fields (no supported/finalized features): librdkafka 2.0.2
//! (Debian's kcat 1.7.1) fails to parse a v3 response with non-empty tagged fields.

use super::{served_versions, KafkaCtx};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };
pub const ADVERTISED: VersionRange = VERSIONS;

fn api_keys() -> Vec<ApiVersion> {
    served_versions()
        .into_iter()
        .map(|(key, range)| ApiVersion::default().with_api_key(key as i16).with_min_version(range.min).with_max_version(range.max))
        .collect()
}

pub async fn handle(_ctx: &KafkaCtx, _h: &RequestHeader, _req: ApiVersionsRequest) -> Option<ApiVersionsResponse> {
    Some(ApiVersionsResponse::default().with_api_keys(api_keys()))
}

/// The answer to a version newer than we know: the error plus our table, in the v0 format.
pub fn unsupported() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(ResponseError::UnsupportedVersion.code()).with_api_keys(api_keys())
}
