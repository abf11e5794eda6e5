//! The Kafka listener: accepts connections, reads frames, answers requests in order.
//!
//! # Layout
//! - this file: the accept loop and one task per connection. A connection reads frames
//!   (the size limit is checked from the length prefix, before the body is buffered), runs up
//!   to [`MAX_IN_FLIGHT`] requests at once (pipelining), and writes the answers in request
//!   order. A client over its quota is muted: nothing more is read for its throttle time
//!   ([`quotas`]). Only this file writes to a socket.
//! - [`handlers`]: one file per API key; the dispatch table there is also what ApiVersions
//!   advertises, so the two never disagree.
//! - [`errors`]: the one place where internal errors become Kafka error codes.

pub mod authz;
pub mod errors;
pub mod handlers;
mod login;
pub mod quotas;

use backwaters_actors::node::Node;
use backwaters_proto::kafka::frame::{decode_frame, decode_request_header, request_prefix, FrameError};
use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Semaphore};

tokio::task_local! {
    /// The client's address while its request is handled (group members report it).
    pub static PEER: SocketAddr;
}

/// The client host as Kafka reports it in group descriptions ("/127.0.0.1").
pub fn client_host() -> String {
    PEER.try_with(|p| format!("/{}", p.ip())).unwrap_or_default()
}

/// Requests one connection may have in progress; more are not read until one is answered.
pub const MAX_IN_FLIGHT: usize = 64;

/// What the Kafka edge knows about this broker.
#[derive(Debug, Clone)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// Everything a handler may use.
pub struct KafkaCtx {
    pub node: Node,
    /// This broker.
    pub broker: BrokerInfo,
    /// Every broker of the cluster (this one included).
    pub brokers: Vec<BrokerInfo>,
    pub max_frame_bytes: usize,
    /// Close a connection idle (nothing read, nothing in progress) this long.
    pub idle_timeout: Option<std::time::Duration>,
    /// Set when clients must authenticate (`[sasl]`).
    pub sasl: Option<Arc<crate::sasl::Authenticator>>,
    /// Set when requests are checked against the ACLs (`[authorization]`).
    pub authz: Option<authz::Authorizer>,
    /// Client quota buckets (see [`quotas`]).
    pub throttler: quotas::Throttler,
}

/// Longest a client may take to log in on a SASL listener.
const LOGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Longest a client may take over its TLS handshake before the connection is dropped.
const TLS_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts connections until `stop` turns true; with `tls`, every connection is TLS
/// (Kafka's SSL listener).
pub async fn serve(ctx: Arc<KafkaCtx>, listener: std::net::TcpListener, max_connections: usize, tls: Option<tokio_rustls::TlsAcceptor>, mut stop: watch::Receiver<bool>) -> Result<(), String> {
    let listener = tokio::net::TcpListener::from_std(listener.try_clone().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => r.map_err(|e| format!("accept: {e}"))?,
            _ = stop.changed() => return Ok(()),
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "connection refused: too many connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        let stop = stop.clone();
        ctx.node.metrics().kafka_connections.inc();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => connection(ctx.clone(), stream, peer, stop, None).await,
                Some(tls) => match tokio::time::timeout(TLS_HANDSHAKE, tls.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        // A client certificate names the principal (a SASL login overrides it).
                        let principal = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(crate::tls::principal_of);
                        connection(ctx.clone(), stream, peer, stop, principal).await
                    }
                    Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
                    Err(_) => Err(format!("no TLS handshake within {TLS_HANDSHAKE:?}")),
                },
            };
            match served {
                Ok(()) => tracing::debug!(%peer, "connection closed"),
                Err(e) => tracing::info!(%peer, error = %e, "connection closed by the broker"),
            }
            ctx.node.metrics().kafka_connections_closed.inc();
            drop(permit);
        });
    }
}

type Answer = Result<Option<BytesMut>, String>;

async fn connection<S: AsyncRead + AsyncWrite + Send + 'static>(ctx: Arc<KafkaCtx>, stream: S, peer: SocketAddr, mut stop: watch::Receiver<bool>, cert_principal: Option<String>) -> Result<(), String> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut in_flight: FuturesOrdered<std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>> = FuturesOrdered::new();
    let mut eof = false;
    // On SASL listeners: the login until the client has authenticated (then `None`).
    let mut login = ctx.sasl.as_ref().map(|_| login::Login::default());
    let mut principal: Arc<str> = Arc::from(cert_principal.as_deref().unwrap_or(authz::ANONYMOUS));
    // A connection that has not logged in by then is closed (it holds a connection slot).
    let login_deadline = tokio::time::sleep(LOGIN_TIMEOUT);
    tokio::pin!(login_deadline);
    let idle_for = ctx.idle_timeout.unwrap_or(std::time::Duration::from_secs(86_400 * 365));
    let idle = tokio::time::sleep(idle_for);
    tokio::pin!(idle);
    // Set by a handler that throttles this client (a quota): nothing more is read until then.
    let mute = Arc::new(quotas::Mute::default());
    loop {
        let muted = mute.until();
        // Start every whole request already buffered (up to the in-flight cap).
        while in_flight.len() < MAX_IN_FLIGHT && muted.is_none() {
            match decode_frame(&mut buf, ctx.max_frame_bytes) {
                // Before authentication requests are answered one at a time (nothing is in
                // flight then), so answers stay in order.
                Ok(Some(frame)) if login.is_some() => {
                    ctx.node.metrics().kafka_requests.inc();
                    let state = login.as_mut().expect("checked");
                    match login::request(&ctx, state, frame).await {
                        Ok(login::After::Answer(out)) => wr.write_all(&out).await.map_err(|e| e.to_string())?,
                        Ok(login::After::Close(out, why)) => {
                            let _ = wr.write_all(&out).await;
                            let _ = wr.flush().await;
                            tracing::warn!(%peer, reason = %why, "SASL authentication failed; closing");
                            return Err(why);
                        }
                        Err(e) => {
                            ctx.node.metrics().kafka_request_errors.inc();
                            tracing::warn!(%peer, error = %e, "refused request before authentication; closing");
                            return Err(e);
                        }
                    }
                    if let Some(user) = state.user.take() {
                        tracing::info!(%peer, %user, "Kafka client authenticated");
                        principal = Arc::from(format!("User:{user}"));
                        login = None;
                    }
                }
                Ok(Some(frame)) => in_flight.push_back(Box::pin(quotas::MUTE.scope(mute.clone(), authz::PRINCIPAL.scope(principal.clone(), answer(ctx.clone(), frame, peer))))),
                Ok(None) => break,
                Err(e) => return Err(refuse(&ctx, e)),
            }
        }
        if eof && in_flight.is_empty() {
            return Ok(());
        }
        tokio::select! {
            n = rd.read_buf(&mut buf), if !eof && in_flight.len() < MAX_IN_FLIGHT && muted.is_none() => {
                let n = n.map_err(|e| e.to_string())?;
                idle.as_mut().reset(tokio::time::Instant::now() + idle_for);
                if n == 0 {
                    if !buf.is_empty() {
                        return Err(format!("connection ended inside a frame ({} bytes buffered)", buf.len()));
                    }
                    eof = true;
                }
                // Make room for the whole announced frame at once (already checked against the limit).
                if let Ok(Some(len)) = backwaters_proto::kafka::frame::frame_len(&buf, ctx.max_frame_bytes) {
                    buf.reserve((4 + len).saturating_sub(buf.len()));
                }
            }
            Some(ans) = in_flight.next(), if !in_flight.is_empty() => {
                idle.as_mut().reset(tokio::time::Instant::now() + idle_for);
                if let Some(out) = ans? {
                    wr.write_all(&out).await.map_err(|e| e.to_string())?;
                }
            }
            // A throttle's end: read again.
            _ = tokio::time::sleep_until(muted.unwrap_or_else(tokio::time::Instant::now)), if muted.is_some() => {}
            // Idle: nothing read for a while and nothing being answered (a long-poll Fetch is
            // in flight, so it never counts as idle).
            _ = &mut idle, if in_flight.is_empty() => return Err(format!("idle for {idle_for:?}")),
            _ = &mut login_deadline, if login.is_some() => return Err(format!("no SASL login within {LOGIN_TIMEOUT:?}")),
            _ = stop.changed() => return Ok(()),
        }
    }
}

fn refuse(ctx: &KafkaCtx, e: FrameError) -> String {
    ctx.node.metrics().kafka_request_errors.inc();
    e.to_string()
}

/// Decodes one request, runs its handler and encodes the framed answer (`None`: no answer,
/// as for acks=0 produce). An `Err` closes the connection, as Kafka does for requests it
/// cannot parse or versions it does not serve.
async fn answer(ctx: Arc<KafkaCtx>, frame: Bytes, peer: SocketAddr) -> Answer {
    ctx.node.metrics().kafka_requests.inc();
    let prefix = request_prefix(&frame).map_err(|e| refuse(&ctx, e))?;
    let (api_key, header, body) = match decode_request_header(frame) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(%peer, api_key = prefix.api_key, api_version = prefix.api_version, error = %e, "unparseable request header; closing");
            return Err(refuse(&ctx, e));
        }
    };
    match PEER.scope(peer, handlers::dispatch(&ctx, api_key, &header, body)).await {
        Ok(out) => Ok(out),
        Err(e) => {
            ctx.node.metrics().kafka_request_errors.inc();
            tracing::warn!(%peer, ?api_key, version = header.request_api_version, client = ?header.client_id, error = %e, "refused request; closing");
            Err(e.to_string())
        }
    }
}
