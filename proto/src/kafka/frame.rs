//! Kafka framing: every request and response is a big-endian `i32` length and that many bytes.
//!
//! The size limit is checked from the 4-byte prefix alone, so an oversized frame is refused
//! before a single byte of its body is buffered.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use thiserror::Error;

/// Default maximum request frame (100 MiB), as Kafka's `socket.request.max.bytes`.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// A framing or header error: the connection that produced it is closed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {size} bytes is larger than the limit of {max} bytes")]
    TooLarge { size: i64, max: usize },
    #[error("frame has a negative length {0}")]
    NegativeLength(i32),
    #[error("request is shorter than a request header ({0} bytes)")]
    TooShort(usize),
    #[error("unknown API key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("malformed request header: {0}")]
    BadHeader(String),
}

/// Reads the frame length from the first 4 bytes of `prefix` and checks it against `max_bytes`.
/// Returns `Ok(None)` while fewer than 4 bytes are available.
pub fn frame_len(prefix: &[u8], max_bytes: usize) -> Result<Option<usize>, FrameError> {
    if prefix.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if size < 0 {
        return Err(FrameError::NegativeLength(size));
    }
    if size as usize > max_bytes {
        return Err(FrameError::TooLarge { size: size as i64, max: max_bytes });
    }
    Ok(Some(size as usize))
}

/// Splits one whole frame off the front of `buf`: `Ok(None)` means "need more bytes".
pub fn decode_frame(buf: &mut bytes::BytesMut, max_bytes: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(len) = frame_len(buf, max_bytes)? else { return Ok(None) };
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Appends `body` to `out` as one frame.
pub fn encode_frame(out: &mut bytes::BytesMut, body: &[u8]) {
    let len = i32::try_from(body.len()).expect("frame larger than 2 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

/// The fixed start of every request: key, version and correlation id, readable even when the
/// rest of the header is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads key, version and correlation id without decoding the rest.
pub fn request_prefix(frame: &[u8]) -> Result<RequestPrefix, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    Ok(RequestPrefix {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Decodes the request header of a frame; the returned bytes are the request body.
///
/// The header version follows from key and version (flexible versions carry tagged fields).
/// The version itself is not checked here: whether a version is served is the dispatcher's
/// business, because ApiVersions must answer even versions it does not know.
pub fn decode_request_header(frame: Bytes) -> Result<(ApiKey, RequestHeader, Bytes), FrameError> {
    let prefix = request_prefix(&frame)?;
    let api_key = ApiKey::try_from(prefix.api_key).map_err(|_| FrameError::UnknownApiKey {
        api_key: prefix.api_key,
        correlation_id: prefix.correlation_id,
    })?;
    let header_version = api_key.request_header_version(prefix.api_version);
    let mut body = frame;
    let header = guard(|| RequestHeader::decode(&mut body, header_version)).map_err(FrameError::BadHeader)?;
    Ok((api_key, header, body))
}

/// Decodes a request body of type `R` at `version`; missing bytes are an error. Bytes left
/// over after the body are ignored, as Kafka's own parsers do (librdkafka 2.16 sends a few
/// trailing bytes with Metadata v12).
pub fn decode_body<R: Decodable>(mut body: Bytes, version: i16) -> Result<R, String> {
    guard(|| R::decode(&mut body, version))
}

/// Decodes a whole request frame of any API key the `kafka-protocol` crate knows, at any
/// version it knows (used by the fuzz target and by tools; the broker decodes typed bodies).
pub fn decode_request(frame: Bytes) -> Result<(RequestHeader, kafka_protocol::messages::RequestKind), FrameError> {
    let (api_key, header, mut body) = decode_request_header(frame)?;
    let version = header.request_api_version;
    let range = api_key.valid_versions();
    if version < range.min || version > range.max {
        return Err(FrameError::BadHeader(format!("{api_key:?} v{version} is outside {range}")));
    }
    let kind = guard(|| kafka_protocol::messages::RequestKind::decode(api_key, &mut body, version)).map_err(FrameError::BadHeader)?;
    Ok((header, kind))
}

/// Runs a generated decoder and turns a panic inside it into an error: a decoder of outside
/// input must never take the connection task (or the node) down.
fn guard<T>(f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("decoder panicked on malformed input".to_string()),
    }
}
