//! DescribeAcls (key 29): the ACLs a filter selects, grouped by resource. Needs DESCRIBE on
//! the cluster; SECURITY_DISABLED without `[authorization]` (as Kafka without an authorizer).

use super::{str, KafkaCtx};
use backwaters_actors::acl::{op, AclFilter};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 3 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: DescribeAclsRequest) -> Option<DescribeAclsResponse> {
    if let Some((e, msg)) = ctx.acl_api_refusal(op::DESCRIBE, "DescribeAcls") {
        return Some(DescribeAclsResponse::default().with_error_code(e.code()).with_error_message(Some(str(&msg))));
    }
    let filter = AclFilter {
        resource_type: req.resource_type_filter,
        name: req.resource_name_filter.map(|s| s.to_string()),
        pattern: req.pattern_type_filter,
        principal: req.principal_filter.map(|s| s.to_string()),
        host: req.host_filter.map(|s| s.to_string()),
        operation: req.operation,
        permission: req.permission_type,
    };
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    // The ACLs are sorted by resource first, so one resource's bindings are adjacent.
    for b in ctx.node.acls().iter().filter(|b| filter.matches(b)) {
        let acl = AclDescription::default().with_principal(str(&b.principal)).with_host(str(&b.host)).with_operation(b.operation).with_permission_type(b.permission);
        match resources.last_mut() {
            Some(r) if r.resource_type == b.resource_type && r.resource_name.as_str() == b.name && r.pattern_type == b.pattern => r.acls.push(acl),
            _ => resources.push(DescribeAclsResource::default().with_resource_type(b.resource_type).with_resource_name(str(&b.name)).with_pattern_type(b.pattern).with_acls(vec![acl])),
        }
    }
    Some(DescribeAclsResponse::default().with_resources(resources))
}
