//! SaslHandshake (key 17): the client names its SASL mechanism. After v1 the tokens come in
//! SaslAuthenticate requests; after v0 as bare length-prefixed tokens (see `login.rs`).
//! librdkafka (even 2.16) refuses SCRAM and PLAIN unless the broker advertises v0.

use super::{str, KafkaCtx};
use crate::sasl::Authenticator;
use backwaters_proto::sasl::{Mechanism, Server};
use kafka_protocol::messages::{RequestHeader, SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
pub const ADVERTISED: VersionRange = VERSIONS;

fn offered(auth: Option<&Authenticator>) -> Vec<kafka_protocol::protocol::StrBytes> {
    auth.map(|a| a.offered().iter().map(|m| str(m.name())).collect()).unwrap_or_default()
}

/// A handshake after authentication, or on a listener without SASL: Kafka's
/// ILLEGAL_SASL_STATE (no re-authentication: SaslAuthenticate reports no session lifetime).
pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, _req: SaslHandshakeRequest) -> Option<SaslHandshakeResponse> {
    Some(SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code()).with_mechanisms(offered(ctx.sasl.as_deref())))
}

/// Before authentication: the server for the named mechanism, or UNSUPPORTED_SASL_MECHANISM
/// with the offered list (the connection is then closed, as Kafka does).
pub fn start(auth: &Authenticator, req: &SaslHandshakeRequest) -> (SaslHandshakeResponse, Option<Server>) {
    let resp = SaslHandshakeResponse::default().with_mechanisms(offered(Some(auth)));
    match Mechanism::parse(&req.mechanism).and_then(|m| auth.start(m)) {
        Some(server) => (resp, Some(server)),
        None => (resp.with_error_code(ResponseError::UnsupportedSaslMechanism.code()), None),
    }
}
