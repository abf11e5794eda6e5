//! DescribeUserScramCredentials (key 50, KIP-554): which users have which SCRAM mechanisms
//! (and iterations); never salts or keys.

use backwaters_actors::acl::op;
use super::{str, KafkaCtx};
use kafka_protocol::messages::describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult};
use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: DescribeUserScramCredentialsRequest) -> Option<DescribeUserScramCredentialsResponse> {
    if !ctx.allowed_cluster(op::DESCRIBE) {
        return Some(DescribeUserScramCredentialsResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code()).with_error_message(Some(str("needs DESCRIBE on the cluster"))));
    }
    let users = crate::sasl::users(ctx.sasl.as_deref(), &ctx.node);
    let describe = |user: &str, creds: &[(backwaters_proto::sasl::Mechanism, u32)]| {
        let infos = creds.iter().map(|(m, it)| CredentialInfo::default().with_mechanism(m.scram_code()).with_iterations(*it as i32)).collect();
        DescribeUserScramCredentialsResult::default().with_user(str(user)).with_credential_infos(infos)
    };
    let results = match req.users.as_deref() {
        // Null or empty: every user.
        None | Some([]) => users.iter().map(|(u, c)| describe(u, c)).collect(),
        Some(asked) => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            asked.iter().for_each(|u| *counts.entry(u.name.as_str()).or_default() += 1);
            counts
                .into_iter()
                .map(|(name, n)| match users.get(name) {
                    _ if n > 1 => DescribeUserScramCredentialsResult::default().with_user(str(name)).with_error_code(ResponseError::DuplicateResource.code()).with_error_message(Some(str("user asked for more than once"))),
                    Some(c) => describe(name, c),
                    None => DescribeUserScramCredentialsResult::default().with_user(str(name)).with_error_code(ResponseError::ResourceNotFound.code()).with_error_message(Some(str(&format!("attempt to describe a user credential that does not exist: {name}")))),
                })
                .collect()
        }
    };
    Some(DescribeUserScramCredentialsResponse::default().with_results(results))
}
