//! Who a call to the gRPC API or the HTTP ingest's topic endpoints comes from, and whether
//! the ACLs let it do what it asks.
//!
//! The same principals and ACLs as on the Kafka listeners (`kafka/authz.rs`), so one
//! `CreateAcls` governs every door:
//! - a call carrying `authorization: Basic base64(user:password)` is `User:<user>` once the
//!   password matches the user's SCRAM-SHA-256 credential (a `[[sasl.users]]` entry or a user
//!   made with AlterUserScramCredentials); a wrong password is refused (UNAUTHENTICATED)
//!   whether ACLs are on or not;
//! - else a TLS client certificate makes `User:<subject in RFC 2253 form>` (gRPC);
//! - else the caller is `User:ANONYMOUS`.
//!
//! Calls between nodes (a node asking another for its replica states or passing a
//! leadership transfer on) carry the cluster token of `Internal` and are allowed everything,
//! as Kafka's inter-broker principal is a super user. Without `[authorization]` every caller
//! may do everything (Kafka without an authorizer).
//!
//! Checking a password costs a PBKDF2 derivation (4096 rounds or more): a caller that passes
//! the same user and password again within [`VERIFIED_FOR`] is matched from a small cache,
//! keyed by a digest of both and tied to the credential it matched, so a changed password
//! takes effect at once.

use crate::kafka::authz::{Authorizer, ANONYMOUS};
use backwaters_actors::acl::{self, op, resource, Requester};
use backwaters_actors::node::Node;
use backwaters_proto::sasl::Mechanism;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Status};

/// How long a checked password is taken without deriving its key again.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Cached logins at most (the cache is emptied when full).
const MAX_VERIFIED: usize = 1024;

/// Which API a check is for (each counts its denials and refused logins apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Grpc,
    Http,
    /// Syslog and RELP listeners.
    Syslog,
}

/// A refusal: the caller is not who it claims (wrong password, malformed header), or may
/// not do what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated(String),
    Denied { anonymous: bool, message: String },
}

impl From<Refusal> for Status {
    fn from(r: Refusal) -> Status {
        match r {
            Refusal::Unauthenticated(m) => Status::unauthenticated(m),
            Refusal::Denied { message, .. } => Status::permission_denied(message),
        }
    }
}

/// Authentication and authorization of API callers for one node.
pub struct Access {
    node: Node,
    authz: Option<Authorizer>,
    sasl: Option<Arc<crate::sasl::Authenticator>>,
    /// The cluster token node-to-node calls carry.
    node_token: Arc<str>,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

/// A checked login, under the digest of its user and password: the user, the stored key of
/// the credential the password matched, and when.
type Verified = (String, Vec<u8>, Instant);

/// Who a call comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Another node of this cluster.
    Node,
    User(Requester),
}

impl Access {
    pub fn new(node: Node, authz: Option<Authorizer>, sasl: Option<Arc<crate::sasl::Authenticator>>, cluster_name: &str, secret: &str) -> Access {
        let node_token = backwaters_proto::grpc::auth::token(cluster_name, secret).into();
        Access { node, authz, sasl, node_token, verified: Mutex::new(HashMap::new()) }
    }

    /// The caller of a gRPC request; UNAUTHENTICATED for credentials that do not check out.
    pub fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let md = req.metadata();
        if let Some(t) = md.get(backwaters_proto::grpc::auth::AUTH_HEADER) {
            return if backwaters_proto::grpc::auth::matches(&self.node_token, t.as_bytes()) {
                Ok(Caller::Node)
            } else {
                Err(Status::unauthenticated("wrong node credentials (x-backwaters-node-auth is for the cluster's own nodes)"))
            };
        }
        let host = req.remote_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        let principal = match md.get("authorization") {
            Some(v) => format!("User:{}", self.login(Api::Grpc, v.as_bytes())?),
            None => req.peer_certs().and_then(|c| c.first().and_then(crate::tls::principal_of)).unwrap_or_else(|| ANONYMOUS.to_string()),
        };
        Ok(Caller::User(Requester { principal, host }))
    }

    /// The caller of an HTTP request, from its `Authorization` header (if any) and address.
    pub fn http_caller(&self, authorization: Option<&[u8]>, peer: Option<std::net::SocketAddr>) -> Result<Caller, Refusal> {
        let principal = match authorization {
            Some(v) => format!("User:{}", self.login(Api::Http, v)?),
            None => ANONYMOUS.to_string(),
        };
        Ok(Caller::User(Requester { principal, host: peer.map(|a| a.ip().to_string()).unwrap_or_default() }))
    }

    /// Checks `Basic base64(user:password)`; returns the user.
    fn login(&self, api: Api, header: &[u8]) -> Result<String, Refusal> {
        let (user, password) = parse_basic(header)?;
        let Some(sasl) = &self.sasl else {
            return Err(Refusal::Unauthenticated("this cluster has no [sasl] users to log in as (call without an authorization header; gRPC callers can show a TLS client certificate)".into()));
        };
        let failed = || {
            let m = self.node.metrics();
            match api {
                Api::Grpc => m.grpc_login_failures.inc(),
                // Syslog senders never log in with a password.
                Api::Http | Api::Syslog => m.http_login_failures.inc(),
            }
            tracing::info!(user = %user, ?api, "login refused: unknown user or wrong password");
            Refusal::Unauthenticated(format!("login as {user:?} failed: unknown user or wrong password"))
        };
        let Some(cred) = sasl.credential(&user, Mechanism::ScramSha256) else { return Err(failed()) };
        let key: [u8; 32] = Sha256::new().chain_update(user.as_bytes()).chain_update([0]).chain_update(password.as_bytes()).finalize().into();
        let now = Instant::now();
        {
            let cache = self.verified.lock().expect("verified logins");
            if let Some((u, stored, at)) = cache.get(&key) {
                if *u == user && *stored == cred.stored_key && now.duration_since(*at) < VERIFIED_FOR {
                    return Ok(user);
                }
            }
        }
        if !cred.matches_password(Mechanism::ScramSha256, &password) {
            return Err(failed());
        }
        let mut cache = self.verified.lock().expect("verified logins");
        if cache.len() >= MAX_VERIFIED {
            cache.clear();
        }
        cache.insert(key, (user.clone(), cred.stored_key.clone(), now));
        Ok(user)
    }

    /// Whether ACLs are enforced at all (`[authorization]`).
    pub fn enforcing(&self) -> bool {
        self.authz.is_some()
    }

    /// Whether `caller` may do `operation` on the resource (no logging: for filtering lists).
    pub fn may(&self, caller: &Caller, operation: i8, resource_type: i8, name: &str) -> bool {
        match (caller, &self.authz) {
            (Caller::Node, _) | (_, None) => true,
            (Caller::User(who), Some(a)) => acl::authorize(&self.node.acls(), &a.super_users, a.allow_if_no_acls, who, operation, resource_type, name),
        }
    }

    /// As [`Access::may`] for a gRPC call, refusing with PERMISSION_DENIED (counted and logged).
    pub fn require(&self, caller: &Caller, operation: i8, resource_type: i8, name: &str) -> Result<(), Status> {
        self.require_for(Api::Grpc, caller, operation, resource_type, name).map_err(Status::from)
    }

    /// As [`Access::may`], refusing with a message that says who may not do what (counted
    /// per API and logged).
    pub fn require_for(&self, api: Api, caller: &Caller, operation: i8, resource_type: i8, name: &str) -> Result<(), Refusal> {
        if self.may(caller, operation, resource_type, name) {
            return Ok(());
        }
        match api {
            Api::Grpc => self.node.metrics().grpc_authorization_denied.inc(),
            Api::Http => self.node.metrics().http_authorization_denied.inc(),
            // Counted per listener by the caller (backwaters_ingest_denied_total).
            Api::Syslog => {}
        }
        let Caller::User(who) = caller else { unreachable!("nodes may do everything") };
        let what = match resource_type {
            resource::CLUSTER => "the cluster".to_string(),
            resource::GROUP => format!("group {name:?}"),
            resource::TRANSACTIONAL_ID => format!("transactional id {name:?}"),
            _ => format!("topic {name:?}"),
        };
        tracing::debug!(principal = %who.principal, host = %who.host, operation, resource_type, name, ?api, "call denied by the ACLs");
        Err(Refusal::Denied {
            anonymous: who.principal == ANONYMOUS,
            message: format!(
                "{} may not {} {what}: no ACL allows it (an operator can grant it with Kafka's CreateAcls, e.g. kafka-acls.sh or confluent-kafka's create_acls)",
                who.principal,
                op_name(operation)
            ),
        })
    }

    /// Checks the caller of `req` for one operation on one resource.
    pub fn check<T>(&self, req: &Request<T>, operation: i8, resource_type: i8, name: &str) -> Result<Caller, Status> {
        let caller = self.caller(req)?;
        self.require(&caller, operation, resource_type, name)?;
        Ok(caller)
    }

    /// Creating a topic: CREATE on the cluster or on the topic (as Kafka's CreateTopics).
    pub fn check_create_topic<T>(&self, req: &Request<T>, topic: &str) -> Result<Caller, Status> {
        let caller = self.caller(req)?;
        self.require_create(Api::Grpc, &caller, topic)?;
        Ok(caller)
    }

    /// CREATE on the cluster or on `topic`.
    pub fn require_create(&self, api: Api, caller: &Caller, topic: &str) -> Result<(), Refusal> {
        if self.may(caller, op::CREATE, resource::CLUSTER, acl::CLUSTER_NAME) {
            return Ok(());
        }
        self.require_for(api, caller, op::CREATE, resource::TOPIC, topic)
    }

    /// Writing to `topic`: WRITE on it, and CREATE too when it does not exist yet and the
    /// write would create it (auto-creation on, as in Kafka).
    pub fn require_write(&self, api: Api, caller: &Caller, topic: &str) -> Result<(), Refusal> {
        self.require_for(api, caller, op::WRITE, resource::TOPIC, topic)?;
        if self.node.topic(topic).is_none() && self.node.settings().auto_create_topics {
            self.require_create(api, caller, topic)?;
        }
        Ok(())
    }
}

fn op_name(operation: i8) -> &'static str {
    match operation {
        op::READ => "READ",
        op::WRITE => "WRITE",
        op::CREATE => "CREATE",
        op::DELETE => "DELETE",
        op::ALTER => "ALTER",
        op::DESCRIBE => "DESCRIBE",
        op::CLUSTER_ACTION => "CLUSTER_ACTION",
        op::DESCRIBE_CONFIGS => "DESCRIBE_CONFIGS",
        op::ALTER_CONFIGS => "ALTER_CONFIGS",
        op::IDEMPOTENT_WRITE => "IDEMPOTENT_WRITE",
        _ => "do that to",
    }
}

/// `Basic base64(user:password)` into its user and password (see
/// [`backwaters_proto::sasl::parse_basic`]).
fn parse_basic(header: &[u8]) -> Result<(String, String), Refusal> {
    backwaters_proto::sasl::parse_basic(header).map_err(Refusal::Unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backwaters_proto::sasl::basic_header;

    #[test]
    fn basic_credentials_round_trip_and_bad_ones_say_why() {
        let h = basic_header("alice", "p:w");
        assert_eq!(parse_basic(h.as_bytes()).unwrap(), ("alice".to_string(), "p:w".to_string()));
        assert_eq!(parse_basic(b"basic YWxpY2U6cHc=").unwrap().0, "alice");
        for (bad, why) in [("Bearer x", "not supported"), ("Basic !!!", "not base64"), ("Basic YWxpY2U=", "no ':'"), ("Basic OnB3", "empty user"), ("Basic", "no scheme")] {
            let Refusal::Unauthenticated(m) = parse_basic(bad.as_bytes()).unwrap_err() else { panic!("{bad}: not an authentication failure") };
            assert!(m.contains(why), "{bad}: {m}");
        }
    }
}
