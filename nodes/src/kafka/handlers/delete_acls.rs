//! DeleteAcls (key 31): removes the ACLs each filter selects and reports them. Needs ALTER
//! on the cluster; SECURITY_DISABLED without `[authorization]`.

use super::{str, KafkaCtx};
use backwaters_actors::acl::{op, AclFilter};
use backwaters_actors::controller::ControllerRequest;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: DeleteAclsRequest) -> Option<DeleteAclsResponse> {
    if let Some((e, msg)) = ctx.acl_api_refusal(op::ALTER, "DeleteAcls") {
        let r = DeleteAclsFilterResult::default().with_error_code(e.code()).with_error_message(Some(str(&msg)));
        return Some(DeleteAclsResponse::default().with_filter_results(vec![r; req.filters.len()]));
    }
    let acls = ctx.node.acls();
    let selected: Vec<Vec<_>> = req
        .filters
        .iter()
        .map(|f| {
            let filter = AclFilter {
                resource_type: f.resource_type_filter,
                name: f.resource_name_filter.as_ref().map(|s| s.to_string()),
                pattern: f.pattern_type_filter,
                principal: f.principal_filter.as_ref().map(|s| s.to_string()),
                host: f.host_filter.as_ref().map(|s| s.to_string()),
                operation: f.operation,
                permission: f.permission_type,
            };
            acls.iter().filter(|b| filter.matches(b)).cloned().collect()
        })
        .collect();
    let delete: Vec<_> = selected.iter().flatten().cloned().collect();
    let written = if delete.is_empty() { Ok(()) } else { ctx.node.controller(ControllerRequest::Acls { create: vec![], delete }).await };
    let results = selected
        .into_iter()
        .map(|matched| match &written {
            Err(e) => DeleteAclsFilterResult::default().with_error_code(crate::kafka::errors::admin_error(e)).with_error_message(Some(str(&e.to_string()))),
            Ok(()) => DeleteAclsFilterResult::default().with_matching_acls(
                matched
                    .iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type)
                            .with_resource_name(str(&b.name))
                            .with_pattern_type(b.pattern)
                            .with_principal(str(&b.principal))
                            .with_host(str(&b.host))
                            .with_operation(b.operation)
                            .with_permission_type(b.permission)
                    })
                    .collect(),
            ),
        })
        .collect();
    Some(DeleteAclsResponse::default().with_filter_results(results))
}
