//! CreateAcls (key 30): ACLs written to the metadata log by the controller. Needs ALTER on
//! the cluster; SECURITY_DISABLED without `[authorization]`.

use super::{str, KafkaCtx};
use backwaters_actors::acl::{op, AclBinding};
use backwaters_actors::controller::ControllerRequest;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: CreateAclsRequest) -> Option<CreateAclsResponse> {
    if let Some((e, msg)) = ctx.acl_api_refusal(op::ALTER, "CreateAcls") {
        let r = AclCreationResult::default().with_error_code(e.code()).with_error_message(Some(str(&msg)));
        return Some(CreateAclsResponse::default().with_results(vec![r; req.creations.len()]));
    }
    let bindings: Vec<AclBinding> = req
        .creations
        .iter()
        .map(|c| AclBinding {
            resource_type: c.resource_type,
            name: c.resource_name.to_string(),
            pattern: c.resource_pattern_type,
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission: c.permission_type,
        })
        .collect();
    // Invalid bindings get their own error; the valid ones are written in one change.
    let valid: Vec<AclBinding> = bindings.iter().filter(|b| b.invalid().is_none()).cloned().collect();
    let written = if valid.is_empty() { Ok(()) } else { ctx.node.controller(ControllerRequest::Acls { create: valid, delete: vec![] }).await };
    let results = bindings
        .iter()
        .map(|b| match (b.invalid(), &written) {
            (Some(why), _) => AclCreationResult::default().with_error_code(ResponseError::InvalidRequest.code()).with_error_message(Some(str(&why))),
            (None, Err(e)) => AclCreationResult::default().with_error_code(crate::kafka::errors::admin_error(e)).with_error_message(Some(str(&e.to_string()))),
            (None, Ok(())) => AclCreationResult::default(),
        })
        .collect();
    Some(CreateAclsResponse::default().with_results(results))
}
