//! Kafka ACLs: the bindings (replicated in the metadata log like topics) and the pure
//! decision Kafka's standard authorizer makes from them.
//!
//! A binding says: `principal` from `host` is allowed (or denied) `operation` on the
//! resources of `resource_type` whose name matches `name` (literally, `*` for every name, or
//! as a prefix). A request is allowed when a super user makes it, or when no DENY binding
//! matches and an ALLOW binding does; DESCRIBE is implied by READ, WRITE, DELETE and ALTER,
//! DESCRIBE_CONFIGS by ALTER_CONFIGS (for ALLOW bindings only, as in Kafka). A resource that
//! no binding names at all is allowed only with `allow_if_no_acls` (Kafka's
//! `allow.everyone.if.no.acl.found`).
//!
//! Codes are Kafka's (AclOperation, ResourceType, PatternType, AclPermissionType), so the
//! ACL APIs carry them unchanged.

use serde::{Deserialize, Serialize};

pub const CLUSTER_NAME: &str = "kafka-cluster";

pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
}

pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

pub mod op {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
}

pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// One ACL, as Kafka's CreateAcls carries it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: i8,
    pub name: String,
    pub pattern: i8,
    /// `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// A client IP address, or `*`.
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// Why this binding cannot be stored (Kafka's INVALID_REQUEST cases), if it cannot.
    pub fn invalid(&self) -> Option<String> {
        if ![resource::TOPIC, resource::GROUP, resource::CLUSTER, resource::TRANSACTIONAL_ID].contains(&self.resource_type) {
            return Some(format!("resource type {} cannot carry ACLs (topic 2, group 3, cluster 4, transactional id 5)", self.resource_type));
        }
        if ![pattern::LITERAL, pattern::PREFIXED].contains(&self.pattern) {
            return Some(format!("pattern type {} is not LITERAL (3) or PREFIXED (4)", self.pattern));
        }
        if !(op::ALL..=op::IDEMPOTENT_WRITE).contains(&self.operation) {
            return Some(format!("operation {} is not a concrete operation (2-12)", self.operation));
        }
        if ![permission::ALLOW, permission::DENY].contains(&self.permission) {
            return Some(format!("permission {} is not ALLOW (3) or DENY (2)", self.permission));
        }
        if self.name.is_empty() {
            return Some("empty resource name".into());
        }
        if self.resource_type == resource::CLUSTER && self.name != CLUSTER_NAME {
            return Some(format!("the cluster resource is named {CLUSTER_NAME:?}"));
        }
        if !self.principal.starts_with("User:") || self.principal.len() == 5 {
            return Some(format!("principal {:?} is not User:NAME (or User:*)", self.principal));
        }
        if self.host.is_empty() {
            return Some("empty host (use * for any)".into());
        }
        None
    }

    /// Whether the binding names this resource.
    fn names(&self, resource_type: i8, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern {
                pattern::LITERAL => self.name == name || self.name == "*",
                pattern::PREFIXED => name.starts_with(&self.name),
                _ => false,
            }
    }

    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == "User:*") && (self.host == host || self.host == "*")
    }
}

/// What a Describe/DeleteAcls filter selects (Kafka's AclBindingFilter); `None`: any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AclFilter {
    pub resource_type: i8,
    pub name: Option<String>,
    pub pattern: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let name_ok = match (self.pattern, &self.name) {
            (pattern::MATCH, Some(n)) => b.names(b.resource_type, n),
            (pattern::MATCH, None) | (pattern::ANY, _) => self.name.as_ref().is_none_or(|n| *n == b.name),
            (p, n) => p == b.pattern && n.as_ref().is_none_or(|n| *n == b.name),
        };
        (self.resource_type == resource::ANY || self.resource_type == b.resource_type)
            && name_ok
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && (self.operation == op::ANY || self.operation == b.operation)
            && (self.permission == permission::ANY || self.permission == b.permission)
    }
}

/// Who asks, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// `User:alice` (`User:ANONYMOUS` without SASL).
    pub principal: String,
    pub host: String,
}

/// Kafka's standard authorizer decision for one operation on one resource.
pub fn authorize(acls: &[AclBinding], super_users: &[String], allow_if_no_acls: bool, who: &Requester, operation: i8, resource_type: i8, name: &str) -> bool {
    if super_users.contains(&who.principal) {
        return true;
    }
    let named = || acls.iter().filter(|b| b.names(resource_type, name));
    if named().next().is_none() {
        return allow_if_no_acls;
    }
    let mine = named().filter(|b| b.applies_to(&who.principal, &who.host));
    let mut allowed = false;
    for b in mine {
        let exact = b.operation == operation || b.operation == op::ALL;
        if b.permission == permission::DENY && exact {
            return false;
        }
        let implied = match operation {
            op::DESCRIBE => [op::READ, op::WRITE, op::DELETE, op::ALTER].contains(&b.operation),
            op::DESCRIBE_CONFIGS => b.operation == op::ALTER_CONFIGS,
            _ => false,
        };
        allowed |= b.permission == permission::ALLOW && (exact || implied);
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(rt: i8, name: &str, pat: i8, who: &str, operation: i8, perm: i8) -> AclBinding {
        AclBinding { resource_type: rt, name: name.into(), pattern: pat, principal: who.into(), host: "*".into(), operation, permission: perm }
    }

    fn alice() -> Requester {
        Requester { principal: "User:alice".into(), host: "10.0.0.1".into() }
    }

    #[test]
    fn kafka_standard_authorizer_rules() {
        let acls = vec![
            b(resource::TOPIC, "logs.", pattern::PREFIXED, "User:alice", op::READ, permission::ALLOW),
            b(resource::TOPIC, "logs.secret", pattern::LITERAL, "User:alice", op::ALL, permission::DENY),
            b(resource::TOPIC, "metrics", pattern::LITERAL, "User:*", op::WRITE, permission::ALLOW),
            b(resource::GROUP, "*", pattern::LITERAL, "User:alice", op::READ, permission::ALLOW),
            b(resource::TOPIC, "cfg", pattern::LITERAL, "User:alice", op::ALTER_CONFIGS, permission::ALLOW),
        ];
        let can = |operation, rt, name: &str| authorize(&acls, &[], false, &alice(), operation, rt, name);
        assert!(can(op::READ, resource::TOPIC, "logs.syslog"));
        assert!(can(op::DESCRIBE, resource::TOPIC, "logs.syslog"), "READ implies DESCRIBE");
        assert!(!can(op::WRITE, resource::TOPIC, "logs.syslog"));
        assert!(!can(op::READ, resource::TOPIC, "logs.secret"), "DENY wins");
        assert!(!can(op::DESCRIBE, resource::TOPIC, "logs.secret"));
        assert!(can(op::WRITE, resource::TOPIC, "metrics"), "User:* applies to everyone");
        assert!(can(op::DESCRIBE, resource::TOPIC, "metrics"));
        assert!(!can(op::READ, resource::TOPIC, "metrics"));
        assert!(can(op::READ, resource::GROUP, "any-group"), "* names every group");
        assert!(can(op::DESCRIBE_CONFIGS, resource::TOPIC, "cfg"), "ALTER_CONFIGS implies DESCRIBE_CONFIGS");
        assert!(!can(op::READ, resource::TOPIC, "other"), "no ACL: denied");
        assert!(authorize(&acls, &[], true, &alice(), op::READ, resource::TOPIC, "other"), "no ACL with allow_if_no_acls: allowed");
        assert!(!authorize(&acls, &[], true, &alice(), op::WRITE, resource::TOPIC, "logs.a"), "named by an ACL: the ACLs decide");
        assert!(authorize(&acls, &["User:alice".into()], false, &alice(), op::WRITE, resource::TOPIC, "logs.secret"), "super user");
        let bob = Requester { principal: "User:bob".into(), host: "10.0.0.1".into() };
        assert!(!authorize(&acls, &[], false, &bob, op::READ, resource::TOPIC, "logs.syslog"));
        // Host-bound bindings.
        let hosted = vec![AclBinding { host: "10.0.0.2".into(), ..b(resource::TOPIC, "t", pattern::LITERAL, "User:alice", op::READ, permission::ALLOW) }];
        assert!(!authorize(&hosted, &[], false, &alice(), op::READ, resource::TOPIC, "t"));
        assert!(authorize(&hosted, &[], false, &Requester { host: "10.0.0.2".into(), ..alice() }, op::READ, resource::TOPIC, "t"));
    }

    #[test]
    fn filters_select_as_kafka_does() {
        let lit = b(resource::TOPIC, "logs.syslog", pattern::LITERAL, "User:alice", op::READ, permission::ALLOW);
        let pre = b(resource::TOPIC, "logs.", pattern::PREFIXED, "User:bob", op::WRITE, permission::DENY);
        let any = AclFilter { resource_type: resource::ANY, pattern: pattern::ANY, operation: op::ANY, permission: permission::ANY, ..Default::default() };
        assert!(any.matches(&lit) && any.matches(&pre));
        let matching = AclFilter { name: Some("logs.syslog".into()), pattern: pattern::MATCH, ..any.clone() };
        assert!(matching.matches(&lit) && matching.matches(&pre));
        let literal = AclFilter { name: Some("logs.syslog".into()), pattern: pattern::LITERAL, ..any.clone() };
        assert!(literal.matches(&lit) && !literal.matches(&pre));
        let by_user = AclFilter { principal: Some("User:bob".into()), ..any.clone() };
        assert!(!by_user.matches(&lit) && by_user.matches(&pre));
        let groups = AclFilter { resource_type: resource::GROUP, ..any.clone() };
        assert!(!groups.matches(&lit));
        let denies = AclFilter { permission: permission::DENY, ..any };
        assert!(denies.matches(&pre) && !denies.matches(&lit));
    }

    #[test]
    fn invalid_bindings_are_named() {
        let ok = b(resource::TOPIC, "t", pattern::LITERAL, "User:alice", op::READ, permission::ALLOW);
        assert_eq!(ok.invalid(), None);
        assert!(AclBinding { resource_type: resource::ANY, ..ok.clone() }.invalid().unwrap().contains("resource type"));
        assert!(AclBinding { pattern: pattern::MATCH, ..ok.clone() }.invalid().unwrap().contains("pattern"));
        assert!(AclBinding { operation: op::ANY, ..ok.clone() }.invalid().unwrap().contains("operation"));
        assert!(AclBinding { permission: permission::ANY, ..ok.clone() }.invalid().unwrap().contains("permission"));
        assert!(AclBinding { principal: "alice".into(), ..ok.clone() }.invalid().unwrap().contains("User:NAME"));
        assert!(AclBinding { resource_type: resource::CLUSTER, ..ok }.invalid().unwrap().contains("kafka-cluster"));
    }
}
