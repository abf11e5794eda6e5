//! AlterUserScramCredentials (key 51, KIP-554): create, change and delete Kafka users'
//! SCRAM credentials. The client sends the salted password; the controller stores only the
//! keys derived from it, replicated in the metadata log like topics. Users from the
//! cluster config's `[[sasl.users]]` are changed by editing the config, not here.

use super::{str, KafkaCtx};
use backwaters_actors::controller::ControllerRequest;
use backwaters_proto::sasl::{Mechanism, ScramCredential, MAX_ITERATIONS, MIN_ITERATIONS};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };
pub const ADVERTISED: VersionRange = VERSIONS;

type Refusal = (ResponseError, String);
/// One change asked for: mechanism code, and for an upsert (iterations, salt, salted password).
type Change<'a> = (i8, Option<(i32, &'a [u8], &'a [u8])>);

/// One user's changes, checked before any of them is written.
fn plan(ctx: &KafkaCtx, user: &str, ops: &[Change<'_>]) -> Result<Vec<ControllerRequest>, Refusal> {
    if !ctx.allowed_cluster(backwaters_actors::acl::op::ALTER) {
        return Err((ResponseError::ClusterAuthorizationFailed, "AlterUserScramCredentials needs ALTER on the cluster".into()));
    }
    if user.is_empty() {
        return Err((ResponseError::UnacceptableCredential, "empty user name".into()));
    }
    if ctx.sasl.as_ref().is_some_and(|a| a.is_config_user(user)) {
        return Err((ResponseError::UnacceptableCredential, format!("user {user:?} is defined in the cluster config ([[sasl.users]]); change it there")));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut reqs = Vec::new();
    for (code, upsert) in ops {
        let mech = Mechanism::from_scram_code(*code).ok_or((ResponseError::UnsupportedSaslMechanism, format!("unknown SCRAM mechanism {code} (1: SCRAM-SHA-256, 2: SCRAM-SHA-512)")))?;
        if !seen.insert(mech) {
            return Err((ResponseError::DuplicateResource, format!("more than one change to {user:?}'s {mech} credential")));
        }
        let credential = match upsert {
            None => None,
            Some((iterations, salt, salted)) => {
                if !(MIN_ITERATIONS as i32..=MAX_ITERATIONS as i32).contains(iterations) {
                    return Err((ResponseError::UnacceptableCredential, format!("iterations must be {MIN_ITERATIONS}..={MAX_ITERATIONS}, not {iterations}")));
                }
                if salt.is_empty() || salted.is_empty() {
                    return Err((ResponseError::UnacceptableCredential, "empty salt or salted password".into()));
                }
                Some(ScramCredential::from_salted_password(mech, salt, *iterations as u32, salted))
            }
        };
        reqs.push(ControllerRequest::Scram { user: user.to_string(), mechanism: mech.name().to_string(), credential });
    }
    Ok(reqs)
}

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: AlterUserScramCredentialsRequest) -> Option<AlterUserScramCredentialsResponse> {
    let mut by_user: BTreeMap<String, Vec<Change<'_>>> = BTreeMap::new();
    for d in &req.deletions {
        by_user.entry(d.name.to_string()).or_default().push((d.mechanism, None));
    }
    for u in &req.upsertions {
        by_user.entry(u.name.to_string()).or_default().push((u.mechanism, Some((u.iterations, &u.salt[..], &u.salted_password[..]))));
    }
    let mut results = Vec::new();
    for (user, ops) in &by_user {
        let outcome = match plan(ctx, user, ops) {
            Err((code, msg)) => Err((code.code(), msg)),
            Ok(reqs) => {
                let mut done = Ok(());
                for r in reqs {
                    if let Err(e) = ctx.node.controller(r).await {
                        done = Err((crate::kafka::errors::admin_error(&e), e.to_string()));
                        break;
                    }
                }
                done
            }
        };
        let result = AlterUserScramCredentialsResult::default().with_user(str(user));
        results.push(match outcome {
            Ok(()) => result,
            Err((code, msg)) => result.with_error_code(code).with_error_message(Some(str(&msg))),
        });
    }
    Some(AlterUserScramCredentialsResponse::default().with_results(results))
}
