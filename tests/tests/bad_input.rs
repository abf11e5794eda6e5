//! Bad input on raw sockets: each gets the protocol's error or a closed connection, and the
//! node keeps serving every other client.

use backwaters_tests::raw::{read_frame, request, response};
use backwaters_tests::TestNode;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use backwaters_proto::kafka::batch::{encode_batch, NewRecord};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn connect(node: &TestNode) -> TcpStream {
    let s = TcpStream::connect(&node.kafka).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Frames a hand-made request: key, version, correlation id, null client id, then `rest`.
fn raw_request(key: i16, version: i16, cid: i32, rest: &[u8]) -> Vec<u8> {
    let mut raw = BytesMut::new();
    raw.put_i16(key);
    raw.put_i16(version);
    raw.put_i32(cid);
    raw.put_i16(-1);
    raw.extend_from_slice(rest);
    let mut framed = (raw.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&raw);
    framed
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn api_versions_ok(node: &TestNode) {
    let mut s = connect(node);
    s.write_all(&request(ApiKey::ApiVersions, 3, 7, &ApiVersionsRequest::default())).unwrap();
    let (cid, r): (i32, ApiVersionsResponse) = response(ApiKey::ApiVersions, 3, read_frame(&mut s).expect("answer"));
    assert_eq!((cid, r.error_code), (7, 0));
}

#[test]
fn oversized_frame_is_refused_before_buffering() {
    let node = TestNode::start_with("[limits]\nmax_frame_bytes = 65536");
    let mut s = connect(&node);
    // Announce 1 GiB and send nothing more: the broker must close without waiting for it.
    s.write_all(&(1i32 << 30).to_be_bytes()).unwrap();
    assert!(closed(&mut s));
    api_versions_ok(&node);
}

#[test]
fn garbage_and_truncated_frames_close_only_that_connection() {
    let node = TestNode::start();
    let mut keep = connect(&node);
    keep.write_all(&request(ApiKey::ApiVersions, 0, 1, &ApiVersionsRequest::default())).unwrap();
    assert!(read_frame(&mut keep).is_some());

    for garbage in [vec![0, 0, 0, 3, 1, 2, 3], vec![0xff; 64], vec![0, 0, 0, 12, 0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff], vec![0x80, 0, 0, 0]] {
        let mut s = connect(&node);
        s.write_all(&garbage).unwrap();
        assert!(closed(&mut s), "garbage {garbage:?} did not close the connection");
    }
    // A frame cut short, then EOF.
    let mut s = connect(&node);
    let full = request(ApiKey::Metadata, 9, 3, &MetadataRequest::default());
    s.write_all(&full[..full.len() - 3]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed(&mut s));

    // The first connection still works, with the next correlation id.
    keep.write_all(&request(ApiKey::ApiVersions, 0, 2, &ApiVersionsRequest::default())).unwrap();
    let (cid, _): (i32, ApiVersionsResponse) = response(ApiKey::ApiVersions, 0, read_frame(&mut keep).unwrap());
    assert_eq!(cid, 2);
}

#[test]
fn unknown_api_key_and_unsupported_versions() {
    let node = TestNode::start();
    // Unknown key 999: connection closed.
    let mut s = connect(&node);
    s.write_all(&raw_request(999, 0, 5, &[])).unwrap();
    assert!(closed(&mut s));

    // ApiVersions from the future: UNSUPPORTED_VERSION in the v0 format, with our table.
    let mut s = connect(&node);
    s.write_all(&raw_request(ApiKey::ApiVersions as i16, 77, 9, &[0])).unwrap(); // 0: no tagged fields
    let (cid, r): (i32, ApiVersionsResponse) = response(ApiKey::ApiVersions, 0, read_frame(&mut s).unwrap());
    assert_eq!(cid, 9);
    assert_eq!(r.error_code, 35);
    let produce = r.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!(produce.min_version, 0, "Produce is advertised from v0 (KAFKA-18659)");
    let fetch = r.api_keys.iter().find(|k| k.api_key == 1).unwrap();
    assert!(fetch.min_version >= 4);

    // Produce v2 (older than Kafka 4 accepts): closed.
    let mut s = connect(&node);
    // acks=1, timeout 1000 ms, no topics
    s.write_all(&raw_request(0, 2, 1, &[0, 1, 0, 0, 3, 0xe8, 0, 0, 0, 0])).unwrap();
    assert!(closed(&mut s));
    api_versions_ok(&node);
}

fn batch() -> Bytes {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    encode_batch(&[NewRecord { value: Some(Bytes::from_static(b"payload")), timestamp_ms: now, ..Default::default() }]).unwrap()
}

fn produce(s: &mut TcpStream, topic: &str, records: Bytes, cid: i32) -> i16 {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.into())))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))])]);
    s.write_all(&request(ApiKey::Produce, 9, cid, &req)).unwrap();
    let (got, r): (i32, ProduceResponse) = response(ApiKey::Produce, 9, read_frame(s).unwrap());
    assert_eq!(got, cid);
    r.responses[0].partition_responses[0].error_code
}

#[test]
fn corrupt_batches_and_unknown_topics_get_protocol_errors() {
    let node = TestNode::start_with("[defaults]\nauto_create_topics = false");
    let mut s = connect(&node);
    // Unknown topic.
    assert_eq!(produce(&mut s, "nope", batch(), 1), 3, "UNKNOWN_TOPIC_OR_PARTITION");
    // Make the topic through a metadata request? auto-create is off, so use CreateTopics.
    let ct = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![kafka_protocol::messages::create_topics_request::CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("good")))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    s.write_all(&request(ApiKey::CreateTopics, 5, 2, &ct)).unwrap();
    let (_, r): (i32, CreateTopicsResponse) = response(ApiKey::CreateTopics, 5, read_frame(&mut s).unwrap());
    assert_eq!(r.topics[0].error_code, 0);

    assert_eq!(produce(&mut s, "good", batch(), 3), 0);
    // Flip a payload bit: CRC mismatch is CORRUPT_MESSAGE.
    let mut bad = batch().to_vec();
    let last = bad.len() - 2;
    bad[last] ^= 0x40;
    assert_eq!(produce(&mut s, "good", Bytes::from(bad), 4), 2, "CORRUPT_MESSAGE");
    // Magic 1 (old message format): refused.
    let mut old = batch().to_vec();
    old[16] = 1;
    assert_eq!(produce(&mut s, "good", Bytes::from(old), 5), 43, "UNSUPPORTED_FOR_MESSAGE_FORMAT");
    // Truncated batch.
    let b = batch();
    assert_eq!(produce(&mut s, "good", b.slice(..b.len() - 5), 6), 87, "INVALID_RECORD");
    // The good record is intact and alone.
    assert_eq!(produce(&mut s, "good", batch(), 7), 0);
    let lo = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("good")))
        .with_partitions(vec![kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)])]);
    s.write_all(&request(ApiKey::ListOffsets, 5, 8, &lo)).unwrap();
    let (_, r): (i32, ListOffsetsResponse) = response(ApiKey::ListOffsets, 5, read_frame(&mut s).unwrap());
    assert_eq!(r.topics[0].partitions[0].offset, 2);
    // Invalid topic name in metadata: INVALID_TOPIC_EXCEPTION.
    let md = MetadataRequest::default().with_topics(Some(vec![kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str("bad/name"))))]));
    s.write_all(&request(ApiKey::Metadata, 9, 9, &md)).unwrap();
    let (_, r): (i32, MetadataResponse) = response(ApiKey::Metadata, 9, read_frame(&mut s).unwrap());
    assert_eq!(r.topics[0].error_code, 17);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let node = TestNode::start();
    let mut s = connect(&node);
    let mut all = Vec::new();
    for cid in 0..50 {
        if cid % 2 == 0 {
            all.extend(request(ApiKey::ApiVersions, 2, cid, &ApiVersionsRequest::default()));
        } else {
            // A long-polling fetch for a topic that does not exist answers at once; a metadata
            // request takes a different path. Order must hold across both.
            all.extend(request(ApiKey::Metadata, 9, cid, &MetadataRequest::default()));
        }
    }
    s.write_all(&all).unwrap();
    for cid in 0..50 {
        let frame = read_frame(&mut s).unwrap();
        assert_eq!(i32::from_be_bytes(frame[..4].try_into().unwrap()), cid);
    }
}

/// A SASL listener answers nothing but ApiVersions and the SASL exchange before a login,
/// refuses bad tokens with the SASL error and closes, and serves both SASL framings (tokens
/// in SaslAuthenticate after a v1 handshake, bare tokens after v0).
#[test]
fn sasl_listener_refuses_requests_and_tokens_before_a_login() {
    let node = TestNode::start_with("[sasl]\nmechanisms = [\"PLAIN\", \"SCRAM-SHA-256\"]\n[[sasl.users]]\nname = \"admin\"\npassword = \"pw\"");
    let handshake = |s: &mut TcpStream, version: i16, mech: &str| -> SaslHandshakeResponse {
        s.write_all(&request(ApiKey::SaslHandshake, version, 1, &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mech.into())))).unwrap();
        response(ApiKey::SaslHandshake, version, read_frame(s).expect("handshake answer")).1
    };
    let authenticate = |s: &mut TcpStream, token: &[u8]| -> SaslAuthenticateResponse {
        s.write_all(&request(ApiKey::SaslAuthenticate, 2, 2, &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)))).unwrap();
        response(ApiKey::SaslAuthenticate, 2, read_frame(s).expect("authenticate answer")).1
    };
    let metadata_ok = |s: &mut TcpStream| {
        s.write_all(&request(ApiKey::Metadata, 9, 3, &MetadataRequest::default())).unwrap();
        let (cid, _): (i32, MetadataResponse) = response(ApiKey::Metadata, 9, read_frame(s).expect("metadata after login"));
        assert_eq!(cid, 3);
    };
    // ApiVersions is answered; Metadata before a login closes the connection.
    let mut s = connect(&node);
    s.write_all(&request(ApiKey::ApiVersions, 3, 7, &ApiVersionsRequest::default())).unwrap();
    let (_, v): (i32, ApiVersionsResponse) = response(ApiKey::ApiVersions, 3, read_frame(&mut s).unwrap());
    assert!(v.api_keys.iter().any(|k| k.api_key == ApiKey::SaslHandshake as i16 && k.min_version == 0));
    s.write_all(&request(ApiKey::Metadata, 9, 8, &MetadataRequest::default())).unwrap();
    assert!(closed(&mut s));
    // SaslAuthenticate without a handshake.
    let mut s = connect(&node);
    s.write_all(&request(ApiKey::SaslAuthenticate, 2, 1, &SaslAuthenticateRequest::default())).unwrap();
    assert!(closed(&mut s));
    // A mechanism not offered: UNSUPPORTED_SASL_MECHANISM with the list, then closed.
    let mut s = connect(&node);
    let r = handshake(&mut s, 1, "GSSAPI");
    assert_eq!(r.error_code, 33);
    assert_eq!(r.mechanisms.iter().map(|m| m.to_string()).collect::<Vec<_>>(), ["PLAIN", "SCRAM-SHA-256"]);
    assert!(closed(&mut s));
    // Garbage and wrong passwords: SASL_AUTHENTICATION_FAILED with a message, then closed.
    for token in [&b"\xff\xfe garbage"[..], b"\0admin\0wrong", b"\0nobody\0pw"] {
        let mut s = connect(&node);
        assert_eq!(handshake(&mut s, 1, "PLAIN").error_code, 0);
        let r = authenticate(&mut s, token);
        assert_eq!(r.error_code, 58, "{token:?}");
        assert!(r.error_message.is_some());
        assert!(closed(&mut s));
    }
    let mut s = connect(&node);
    assert_eq!(handshake(&mut s, 1, "SCRAM-SHA-256").error_code, 0);
    assert_eq!(authenticate(&mut s, b"n,,n=admin").error_code, 58);
    assert!(closed(&mut s));
    // v1: a login, then a second handshake is ILLEGAL_SASL_STATE and requests are served.
    let mut s = connect(&node);
    assert_eq!(handshake(&mut s, 1, "PLAIN").error_code, 0);
    assert_eq!(authenticate(&mut s, b"\0admin\0pw").error_code, 0);
    assert_eq!(handshake(&mut s, 1, "PLAIN").error_code, 34);
    metadata_ok(&mut s);
    // v0: bare length-prefixed tokens, answered the same way.
    let mut s = connect(&node);
    assert_eq!(handshake(&mut s, 0, "PLAIN").error_code, 0);
    let token = b"\0admin\0pw";
    s.write_all(&(token.len() as u32).to_be_bytes()).unwrap();
    s.write_all(token).unwrap();
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(u32::from_be_bytes(reply), 0);
    metadata_ok(&mut s);
    let mut s = connect(&node);
    assert_eq!(handshake(&mut s, 0, "PLAIN").error_code, 0);
    s.write_all(&[0, 0, 0, 5, b'x', 0, b'y', 0, b'z']).unwrap();
    assert!(closed(&mut s));
    let metrics = node.metrics_page();
    assert!(metrics.contains("backwaters_kafka_sasl_logins_total 2"), "{metrics}");
    assert!(metrics.contains("backwaters_kafka_sasl_login_failures_total 6"), "{metrics}");
}

/// An idle connection is closed after `kafka_idle_timeout_ms` (Kafka's
/// connections.max.idle.ms); one in use is not.
#[test]
fn idle_connections_are_closed() {
    let node = TestNode::start_with("[limits]\nkafka_idle_timeout_ms = 700");
    let mut idle = connect(&node);
    let mut busy = connect(&node);
    for i in 0..6 {
        busy.write_all(&request(ApiKey::ApiVersions, 3, i, &ApiVersionsRequest::default())).unwrap();
        assert!(read_frame(&mut busy).is_some(), "a connection in use stays open");
        std::thread::sleep(Duration::from_millis(300));
    }
    let started = std::time::Instant::now();
    assert!(closed(&mut idle));
    assert!(started.elapsed() < Duration::from_secs(5));
}
