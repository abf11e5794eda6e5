//! A connection's life before SASL authentication (listeners with `[sasl]`).
//!
//! Until the client has authenticated, requests are taken one at a time, in order, and only
//! three are answered: ApiVersions (clients ask it first), SaslHandshake and
//! SaslAuthenticate. Anything else closes the connection, as Kafka does, with a log line
//! that says what the client should set. A failed exchange gets its error answer, then the
//! connection is closed.
//!
//! After a SaslHandshake v0 the tokens are not Kafka requests: each frame is a bare token,
//! answered with a bare length-prefixed token (Kafka's original SASL framing).

use super::handlers::{self, encode_response, sasl_authenticate, sasl_handshake};
use super::KafkaCtx;
use backwaters_proto::kafka::frame::decode_request_header;
use backwaters_proto::sasl::Server;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, VersionRange};

/// Where a connection stands.
#[derive(Default)]
pub struct Login {
    server: Option<Server>,
    /// Bare tokens follow (SaslHandshake v0).
    raw: bool,
    /// The authenticated user, once there is one.
    pub user: Option<String>,
}

/// What to do after a request before authentication.
pub enum After {
    /// Send this answer and read the next request.
    Answer(BytesMut),
    /// Send this answer, then close the connection for this reason.
    Close(BytesMut, String),
}

fn body<R: Decodable>(key: ApiKey, header: &RequestHeader, range: VersionRange, body: Bytes) -> Result<R, String> {
    handlers::decode_request(key, header.request_api_version, range, body).map_err(|e| e.to_string())
}

fn encode<R: kafka_protocol::protocol::Encodable>(key: ApiKey, header: &RequestHeader, resp: &R) -> Result<BytesMut, String> {
    encode_response(key, header, header.request_api_version, resp).map_err(|e| e.to_string())
}

/// Handles one request of a connection that has not authenticated yet. `Err` closes the
/// connection without an answer.
pub async fn request(ctx: &KafkaCtx, login: &mut Login, frame: Bytes) -> Result<After, String> {
    let auth = ctx.sasl.as_deref().expect("login only runs on SASL listeners");
    if login.raw {
        return raw_token(ctx, auth, login, frame);
    }
    let (key, header, rest) = decode_request_header(frame).map_err(|e| e.to_string())?;
    let metrics = ctx.node.metrics();
    match key {
        ApiKey::ApiVersions => match handlers::dispatch(ctx, key, &header, rest).await.map_err(|e| e.to_string())? {
            Some(out) => Ok(After::Answer(out)),
            None => Err("ApiVersions gave no answer".into()),
        },
        ApiKey::SaslHandshake => {
            let req = body(key, &header, sasl_handshake::VERSIONS, rest)?;
            let (resp, server) = sasl_handshake::start(auth, &req);
            let out = encode(key, &header, &resp)?;
            match server {
                Some(s) => {
                    login.server = Some(s);
                    login.raw = header.request_api_version == 0;
                    Ok(After::Answer(out))
                }
                None => {
                    metrics.kafka_login_failures.inc();
                    Ok(After::Close(out, format!("SASL mechanism {:?} is not offered (offered: {})", req.mechanism.as_str(), offered(ctx))))
                }
            }
        }
        ApiKey::SaslAuthenticate => {
            let req = body(key, &header, sasl_authenticate::VERSIONS, rest)?;
            let Some(server) = login.server.as_mut() else {
                return Err("SaslAuthenticate before SaslHandshake".into());
            };
            let (resp, outcome) = sasl_authenticate::step(auth, server, &req);
            let out = encode(key, &header, &resp)?;
            match outcome {
                sasl_authenticate::Outcome::Continue => Ok(After::Answer(out)),
                sasl_authenticate::Outcome::Done(user) => {
                    metrics.kafka_logins.inc();
                    login.server = None;
                    login.user = Some(user);
                    Ok(After::Answer(out))
                }
                sasl_authenticate::Outcome::Failed(why) => {
                    metrics.kafka_login_failures.inc();
                    Ok(After::Close(out, why))
                }
            }
        }
        other => Err(format!(
            "{other:?} request before SASL authentication: this listener requires SASL (clients: security.protocol=SASL_PLAINTEXT, or SASL_SSL with TLS; sasl.mechanism one of {})",
            offered(ctx)
        )),
    }
}

/// One bare token after a SaslHandshake v0. A refusal closes the connection unanswered.
fn raw_token(ctx: &KafkaCtx, auth: &crate::sasl::Authenticator, login: &mut Login, token: Bytes) -> Result<After, String> {
    let server = login.server.as_mut().expect("raw tokens follow a handshake");
    let mech = server.mechanism();
    match server.step(&token, |user| auth.credential(user, mech)) {
        Ok(step) => {
            let reply = match step {
                backwaters_proto::sasl::Step::Continue(t) => t,
                backwaters_proto::sasl::Step::Done { user, reply } => {
                    ctx.node.metrics().kafka_logins.inc();
                    login.user = Some(user);
                    login.server = None;
                    reply
                }
            };
            let mut out = BytesMut::with_capacity(4 + reply.len());
            out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
            out.extend_from_slice(&reply);
            Ok(After::Answer(out))
        }
        Err(e) => {
            ctx.node.metrics().kafka_login_failures.inc();
            Err(e.to_string())
        }
    }
}

fn offered(ctx: &KafkaCtx) -> String {
    ctx.sasl.as_ref().map(|a| a.offered().iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}
