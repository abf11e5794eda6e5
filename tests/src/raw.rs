//! A raw Kafka protocol client over a blocking socket, for requests no real client would
//! send (bad input, exact versions).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// A framed request with client id "raw".
pub fn request<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default().with_request_api_key(key as i16).with_request_api_version(version).with_correlation_id(correlation_id).with_client_id(Some(StrBytes::from_static_str("raw")));
    header.encode(&mut buf, key.request_header_version(version)).unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut framed = (buf.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&buf);
    framed
}

/// Reads one response frame; `None` when the broker closed the connection.
pub fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

pub fn response<R: Decodable>(key: ApiKey, version: i16, frame: Bytes) -> (i32, R) {
    let mut b = frame;
    let header = ResponseHeader::decode(&mut b, key.response_header_version(version)).unwrap();
    (header.correlation_id, R::decode(&mut b, version).unwrap())
}

/// Sends one request and reads its answer.
pub fn call<Q: Encodable, R: Decodable>(s: &mut TcpStream, key: ApiKey, version: i16, body: &Q) -> R {
    s.write_all(&request(key, version, 7, body)).unwrap();
    let frame = read_frame(s).expect("the broker answered");
    let (cid, r) = response(key, version, frame);
    assert_eq!(cid, 7);
    r
}
