//! Authorization of Kafka requests (`[authorization]`): every request is checked against the
//! ACLs in the metadata log for the connection's principal and the client's IP address, as
//! Kafka's standard authorizer does. The principal is `User:<SASL user>` after a SASL login,
//! else `User:<certificate subject>` (`User:CN=reader,O=Security`) for a TLS client
//! certificate, else `User:ANONYMOUS`. Without `[authorization]` every request is allowed (Kafka without an authorizer).
//! The decision itself is pure: `backwaters_actors::acl::authorize`.

use super::{KafkaCtx, PEER};
use backwaters_actors::acl::{self, op, resource, Requester};
use backwaters_actors::group::state::GroupError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The principal of a connection without a SASL login.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

tokio::task_local! {
    /// The connection's principal while one of its requests is handled.
    pub static PRINCIPAL: Arc<str>;
}

/// `[authorization]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthzConfig {
    /// Users allowed everything, ACLs or not ("admin" or "User:admin"); they create the
    /// first ACLs.
    pub super_users: Vec<String>,
    /// Allow a resource that no ACL names (Kafka's allow.everyone.if.no.acl.found).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_if_no_acls: bool,
}

impl AuthzConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.super_users.is_empty() {
            return Err("authorization.super_users: name at least one user (e.g. a [[sasl.users]] name) who may create the first ACLs".into());
        }
        if let Some(i) = self.super_users.iter().position(|u| u.trim_start_matches("User:").is_empty()) {
            return Err(format!("authorization.super_users[{i}]: empty user name"));
        }
        Ok(())
    }

    /// Super users as principals (`User:NAME`).
    pub fn super_principals(&self) -> Vec<String> {
        self.super_users.iter().map(|u| if u.starts_with("User:") { u.clone() } else { format!("User:{u}") }).collect()
    }
}

/// What the edge keeps of `[authorization]`.
#[derive(Debug, Clone)]
pub struct Authorizer {
    pub super_users: Vec<String>,
    pub allow_if_no_acls: bool,
}

impl From<&AuthzConfig> for Authorizer {
    fn from(c: &AuthzConfig) -> Self {
        Authorizer { super_users: c.super_principals(), allow_if_no_acls: c.allow_if_no_acls }
    }
}

/// The requester of the request being handled.
pub fn requester() -> Requester {
    Requester {
        principal: PRINCIPAL.try_with(|p| p.to_string()).unwrap_or_else(|_| ANONYMOUS.to_string()),
        host: PEER.try_with(|p| p.ip().to_string()).unwrap_or_default(),
    }
}

impl KafkaCtx {
    /// Whether the request being handled may do `operation` on the resource; denials are
    /// counted and logged.
    pub fn allowed(&self, operation: i8, resource_type: i8, name: &str) -> bool {
        let ok = self.allowed_quiet(operation, resource_type, name);
        if !ok {
            self.node.metrics().kafka_authorization_denied.inc();
            let who = requester();
            tracing::debug!(principal = %who.principal, host = %who.host, operation, resource_type, name, "denied by the ACLs");
        }
        ok
    }

    /// The decision alone: for filtering lists (what a requester does not see is not a
    /// denial) and for the first of two alternative checks.
    pub fn allowed_quiet(&self, operation: i8, resource_type: i8, name: &str) -> bool {
        let Some(a) = &self.authz else { return true };
        acl::authorize(&self.node.acls(), &a.super_users, a.allow_if_no_acls, &requester(), operation, resource_type, name)
    }

    /// Whether the requester may see `topic` in lists (DESCRIBE).
    pub fn visible_topic(&self, topic: &str) -> bool {
        self.allowed_quiet(op::DESCRIBE, resource::TOPIC, topic)
    }

    pub fn allowed_topic(&self, operation: i8, topic: &str) -> bool {
        self.allowed(operation, resource::TOPIC, topic)
    }

    pub fn allowed_group(&self, operation: i8, group: &str) -> bool {
        self.allowed(operation, resource::GROUP, group)
    }

    pub fn allowed_txn(&self, operation: i8, transactional_id: &str) -> bool {
        self.allowed(operation, resource::TRANSACTIONAL_ID, transactional_id)
    }

    pub fn allowed_cluster(&self, operation: i8) -> bool {
        self.allowed(operation, resource::CLUSTER, acl::CLUSTER_NAME)
    }

    /// Asks the group's coordinator once the ACLs allow `operation` on the group.
    pub async fn ask_group<R: Send + 'static>(
        &self,
        operation: i8,
        group: &str,
        timeout: std::time::Duration,
        build: impl FnOnce(ractor::RpcReplyPort<R>) -> backwaters_actors::group::CoordinatorMsg,
    ) -> Result<R, GroupError> {
        if !self.allowed_group(operation, group) {
            return Err(GroupError::GroupAuthorizationFailed);
        }
        self.node.ask_coordinator(group, timeout, build).await
    }

    /// Why an ACL API is refused, if it is: SECURITY_DISABLED without `[authorization]` (as
    /// Kafka without an authorizer), else it needs `operation` on the cluster.
    pub fn acl_api_refusal(&self, operation: i8, api: &str) -> Option<(kafka_protocol::ResponseError, String)> {
        use kafka_protocol::ResponseError as E;
        if self.authz.is_none() {
            return Some((E::SecurityDisabled, "no [authorization] section: ACLs are not enforced on this cluster".into()));
        }
        let name = if operation == op::ALTER { "ALTER" } else { "DESCRIBE" };
        (!self.allowed_cluster(operation)).then(|| (E::ClusterAuthorizationFailed, format!("{api} needs {name} on the cluster")))
    }

    /// Creating `topic`: CREATE on the cluster or on the topic.
    pub fn may_create_topic(&self, topic: &str) -> bool {
        self.authz.is_none() || self.allowed_cluster_quiet(op::CREATE) || self.allowed_topic(op::CREATE, topic)
    }

    /// As [`KafkaCtx::allowed_cluster`], without counting a denial (a first of two checks).
    pub fn allowed_cluster_quiet(&self, operation: i8) -> bool {
        self.allowed_quiet(operation, resource::CLUSTER, acl::CLUSTER_NAME)
    }
}
