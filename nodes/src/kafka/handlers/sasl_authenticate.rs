//! SaslAuthenticate (key 36): one SASL token each way, after SaslHandshake v1.

use super::{str, KafkaCtx};
use crate::sasl::Authenticator;
use backwaters_proto::sasl::{Server, Step};
use bytes::Bytes;
use kafka_protocol::messages::{RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };
pub const ADVERTISED: VersionRange = VERSIONS;

/// After authentication, or on a listener without SASL.
pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, _req: SaslAuthenticateRequest) -> Option<SaslAuthenticateResponse> {
    let why = if ctx.sasl.is_some() { "this connection is already authenticated" } else { "this listener does not use SASL" };
    Some(SaslAuthenticateResponse::default().with_error_code(ResponseError::IllegalSaslState.code()).with_error_message(Some(str(why))))
}

/// What one token did to the exchange.
pub enum Outcome {
    /// The exchange goes on (SCRAM's first step).
    Continue,
    /// Authenticated as this user.
    Done(String),
    /// Refused: answer, then close the connection.
    Failed(String),
}

/// Steps `server` with the client's token. Session lifetime 0: no re-authentication.
pub fn step(auth: &Authenticator, server: &mut Server, req: &SaslAuthenticateRequest) -> (SaslAuthenticateResponse, Outcome) {
    let mech = server.mechanism();
    let resp = SaslAuthenticateResponse::default();
    match server.step(&req.auth_bytes, |user| auth.credential(user, mech)) {
        Ok(Step::Continue(token)) => (resp.with_auth_bytes(Bytes::from(token)), Outcome::Continue),
        Ok(Step::Done { user, reply }) => (resp.with_auth_bytes(Bytes::from(reply)), Outcome::Done(user)),
        Err(e) => {
            let code = match e {
                backwaters_proto::sasl::SaslError::Finished(_) => ResponseError::IllegalSaslState,
                _ => ResponseError::SaslAuthenticationFailed,
            };
            let msg = e.to_string();
            (resp.with_error_code(code.code()).with_error_message(Some(str(&msg))), Outcome::Failed(msg))
        }
    }
}
