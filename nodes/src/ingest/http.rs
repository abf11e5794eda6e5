//! HTTP ingest (axum): what cloud functions and log shippers already speak.
//!
//! - `POST /topics/{topic}`: the Confluent REST Proxy v2 produce request
//!   (`application/vnd.kafka.json.v2+json` or `...binary.v2+json` with base64), answered
//!   with the offsets, as the REST Proxy does.
//! - `POST /ndjson/{topic}`: one JSON document per line (`?key=FIELD` keys by a top-level
//!   field).
//! - `POST /services/collector/event` (and `/services/collector`): Splunk HEC events with
//!   `Authorization: Splunk TOKEN`.
//!
//! A 2xx answer means every record is durable (acks=all). Too many requests at once get 429,
//! a partition that is restarting or overloaded 503, both with Retry-After.
//!
//! On a cluster with ACLs (`[authorization]`) the topic endpoints check the caller as the
//! gRPC API does (`access.rs`): `Authorization: Basic` of a SASL user, else
//! `User:ANONYMOUS`, needs WRITE on the topic (and CREATE for a new one); a wrong password is
//! 401 with or without ACLs. HEC requests carry the listener's tokens instead.

use super::sink::{Prepared, Sink, WriteError};
use crate::access::{Access, Api, Refusal};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};

/// Requests handled at once; more get 429.
const MAX_CONCURRENT: usize = 256;

struct App {
    sink: Arc<Sink>,
    access: Arc<Access>,
    permits: Semaphore,
}

pub async fn serve(sink: Arc<Sink>, access: Arc<Access>, listener: std::net::TcpListener, mut stop: watch::Receiver<bool>) -> Result<(), String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let limit = sink.cfg.max_message_bytes;
    let app = Arc::new(App { sink, access, permits: Semaphore::new(MAX_CONCURRENT) });
    let router = Router::new()
        .route("/topics/{topic}", post(rest_proxy))
        .route("/ndjson/{topic}", post(ndjson))
        .route("/services/collector/event", post(hec))
        .route("/services/collector", post(hec))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app);
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await
        .map_err(|e| format!("http ingest: {e}"))
}

fn error(status: StatusCode, code: i64, message: &str) -> Response {
    let mut r = (status, Json(json!({ "error_code": code, "message": message }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    r
}

fn write_error(e: WriteError) -> Response {
    match e {
        WriteError::Retriable(m) => error(StatusCode::SERVICE_UNAVAILABLE, 50301, &m),
        WriteError::Refused(m) => error(StatusCode::BAD_REQUEST, 40002, &m),
    }
}

fn too_busy() -> Response {
    error(StatusCode::TOO_MANY_REQUESTS, 42901, "too many requests at once; retry")
}

/// The caller must be allowed to write to the topic (see the module doc); a topic named in
/// the URL must be valid, and must exist unless the node auto-creates topics (as the REST
/// Proxy answers 404 for a missing topic).
fn refused(app: &App, headers: &HeaderMap, peer: SocketAddr, topic: &str) -> Option<Response> {
    let auth = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if let Err(r) = app.access.http_caller(auth, Some(peer)).and_then(|caller| app.access.require_write(Api::Http, &caller, topic)) {
        return Some(refusal(r));
    }
    if let Err(e) = backwaters_actors::topic::validate_topic_name(topic) {
        return Some(error(StatusCode::NOT_FOUND, 40401, &e));
    }
    let node = &app.sink.node;
    (node.topic(topic).is_none() && !node.settings().auto_create_topics).then(|| error(StatusCode::NOT_FOUND, 40401, &format!("topic {topic} does not exist and auto-create is off")))
}

/// 401 (with a Basic challenge) for a caller that is not logged in or whose login failed,
/// 403 for one the ACLs do not allow (the REST Proxy's 40101 and 40301).
fn refusal(r: Refusal) -> Response {
    let (status, code, message) = match r {
        Refusal::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, 40101, m),
        Refusal::Denied { anonymous: true, message } => (StatusCode::UNAUTHORIZED, 40101, format!("{message}; log in with Authorization: Basic")),
        Refusal::Denied { message, .. } => (StatusCode::FORBIDDEN, 40301, message),
    };
    let mut r = error(status, code, &message);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"backwaters\""));
    }
    r
}

fn json_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("JSON values serialize"))
}

fn count(sink: &Sink, n: usize, bytes: usize) {
    sink.counters.received.add(n as u64);
    sink.counters.parsed.add(n as u64);
    sink.counters.bytes.add(bytes as u64);
}

/// Confluent REST Proxy v2: `{"records":[{"key":..,"value":..,"partition":n}]}`.
async fn rest_proxy(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Path(topic): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(_permit) = app.permits.try_acquire() else { return too_busy() };
    if let Some(r) = refused(&app, &headers, peer, &topic) {
        return r;
    }
    let binary = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.contains("binary"));
    let doc: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            app.sink.counters.failed.inc();
            return error(StatusCode::BAD_REQUEST, 40001, &format!("the body is not JSON: {e}"));
        }
    };
    let Some(records) = doc.get("records").and_then(Value::as_array) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "the body needs a \"records\" array");
    };
    let now = app.sink.node.now_ms();
    let mut prepared = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let field = |name: &str| -> Result<Option<Bytes>, String> {
            match r.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) if binary => {
                    let s = v.as_str().ok_or(format!("records[{i}].{name} must be a base64 string"))?;
                    base64::engine::general_purpose::STANDARD.decode(s).map(|b| Some(Bytes::from(b))).map_err(|e| format!("records[{i}].{name} is not base64: {e}"))
                }
                Some(v) => Ok(Some(json_bytes(v))),
            }
        };
        let (key, value) = match (field("key"), field("value")) {
            (Ok(k), Ok(v)) => (k, v),
            (Err(e), _) | (_, Err(e)) => return error(StatusCode::UNPROCESSABLE_ENTITY, 42202, &e),
        };
        let partition = r.get("partition").and_then(Value::as_i64).map(|p| p as i32);
        prepared.push(Prepared { topic: topic.clone(), key, value: value.unwrap_or_default(), partition, timestamp_ms: now });
    }
    count(&app.sink, prepared.len(), body.len());
    match app.sink.write(prepared).await {
        Ok(offsets) => {
            let offsets: Vec<Value> = offsets.into_iter().map(|(p, o)| json!({ "partition": p, "offset": o, "error_code": null, "error": null })).collect();
            let mut r = Json(json!({ "offsets": offsets, "key_schema_id": null, "value_schema_id": null })).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/vnd.kafka.v2+json"));
            r
        }
        Err(e) => write_error(e),
    }
}

/// NDJSON bulk: each line one JSON record.
async fn ndjson(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Path(topic): Path<String>, Query(q): Query<HashMap<String, String>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(_permit) = app.permits.try_acquire() else { return too_busy() };
    if let Some(r) = refused(&app, &headers, peer, &topic) {
        return r;
    }
    let now = app.sink.node.now_ms();
    let key_field = q.get("key");
    let mut prepared = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => {
                app.sink.counters.failed.inc();
                return error(StatusCode::BAD_REQUEST, 40001, &format!("line {} is not JSON: {e}; nothing was written", i + 1));
            }
        };
        let key = key_field.and_then(|f| v.get(f)).map(|k| match k {
            Value::String(s) => Bytes::from(s.clone()),
            other => json_bytes(other),
        });
        prepared.push(Prepared { topic: topic.clone(), key, value: Bytes::copy_from_slice(line), partition: None, timestamp_ms: now });
    }
    if prepared.is_empty() {
        return error(StatusCode::BAD_REQUEST, 40003, "no records in the body");
    }
    count(&app.sink, prepared.len(), body.len());
    let n = prepared.len();
    match app.sink.write(prepared).await {
        Ok(_) => Json(json!({ "records": n })).into_response(),
        Err(e) => write_error(e),
    }
}

fn hec_answer(status: StatusCode, text: &str, code: i64) -> Response {
    let mut r = (status, Json(json!({ "text": text, "code": code }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    r
}

/// Splunk HEC: one or more JSON events back to back, each with an "event".
async fn hec(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let tokens = &app.sink.cfg.hec_tokens;
    if tokens.is_empty() {
        return hec_answer(StatusCode::BAD_REQUEST, "HEC is disabled on this listener (no hec_tokens configured)", 1);
    }
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(token) = auth.and_then(|a| a.strip_prefix("Splunk ").or(a.strip_prefix("Bearer "))) else {
        return hec_answer(StatusCode::UNAUTHORIZED, "Token is required", 2);
    };
    if !tokens.iter().any(|t| t == token.trim()) {
        return hec_answer(StatusCode::FORBIDDEN, "Invalid token", 4);
    }
    let Ok(_permit) = app.permits.try_acquire() else { return hec_answer(StatusCode::TOO_MANY_REQUESTS, "Server is busy", 9) };
    let now = app.sink.node.now_ms();
    let mut prepared = Vec::new();
    for (i, ev) in serde_json::Deserializer::from_slice(&body).into_iter::<Value>().enumerate() {
        let ev = match ev {
            Ok(Value::Object(o)) => o,
            _ => {
                app.sink.counters.failed.inc();
                return hec_answer(StatusCode::BAD_REQUEST, "Invalid data format", 6);
            }
        };
        if ev.get("event").is_none_or(|e| e.is_null() || e.as_str() == Some("")) {
            app.sink.counters.failed.inc();
            return (StatusCode::BAD_REQUEST, Json(json!({ "text": "Event field is required", "code": 12, "invalid-event-number": i }))).into_response();
        }
        let key = ev.get("host").and_then(Value::as_str).map(|h| Bytes::from(h.to_string()));
        // HEC "time" is seconds (with a fraction) since the epoch.
        let ts = ev.get("time").and_then(|t| t.as_f64().or_else(|| t.as_str().and_then(|s| s.parse().ok()))).map(|t| (t * 1000.0) as i64).unwrap_or(now);
        prepared.push(Prepared { topic: app.sink.cfg.topic.clone(), key, value: json_bytes(&Value::Object(ev)), partition: None, timestamp_ms: ts });
    }
    if prepared.is_empty() {
        return hec_answer(StatusCode::BAD_REQUEST, "No data", 5);
    }
    count(&app.sink, prepared.len(), body.len());
    match app.sink.write(prepared).await {
        Ok(_) => hec_answer(StatusCode::OK, "Success", 0),
        Err(WriteError::Retriable(_)) => hec_answer(StatusCode::SERVICE_UNAVAILABLE, "Server is busy", 9),
        Err(WriteError::Refused(m)) => hec_answer(StatusCode::BAD_REQUEST, &m, 6),
    }
}
