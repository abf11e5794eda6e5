//! Encode/decode property tests for every decoder of outside input.

use backwaters_proto::kafka::batch::{control_marker, decode_records, encode_batch, encode_control_batch, parse_batch, split_batches, with_base_offset, NewRecord};
use backwaters_proto::kafka::frame::{decode_body, decode_frame, decode_request, decode_request_header, encode_frame};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;

fn record() -> impl Strategy<Value = NewRecord> {
    (
        prop::option::of(prop::collection::vec(any::<u8>(), 0..32)),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..256)),
        prop::collection::vec(("[a-z]{1,8}", prop::option::of(prop::collection::vec(any::<u8>(), 0..16))), 0..3),
        0i64..4_000_000_000_000,
    )
        .prop_map(|(k, v, h, ts)| NewRecord {
            key: k.map(Bytes::from),
            value: v.map(Bytes::from),
            // Unique keys: the kafka-protocol record type keeps headers in a map, so repeated
            // header keys (legal in Kafka) collapse on the gRPC paths (a known limitation).
            headers: h.into_iter().enumerate().map(|(i, (k, v))| (format!("{k}{i}"), v.map(Bytes::from))).collect(),
            timestamp_ms: ts,
        })
}

fn frame_request<R: Encodable>(key: ApiKey, version: i16, cid: i32, body: &R) -> Bytes {
    let mut b = BytesMut::new();
    let h = RequestHeader::default().with_request_api_key(key as i16).with_request_api_version(version).with_correlation_id(cid).with_client_id(Some(StrBytes::from_static_str("prop")));
    h.encode(&mut b, key.request_header_version(version)).unwrap();
    body.encode(&mut b, version).unwrap();
    b.freeze()
}

proptest! {
    #[test]
    fn frames_round_trip_whatever_the_split(bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..8), cut in 0usize..2000) {
        let mut wire = BytesMut::new();
        for b in &bodies { encode_frame(&mut wire, b); }
        let wire = wire.freeze();
        let cut = cut.min(wire.len());
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut got = Vec::new();
        while let Some(f) = decode_frame(&mut buf, 1 << 20).unwrap() { got.push(f.to_vec()); }
        buf.extend_from_slice(&wire[cut..]);
        while let Some(f) = decode_frame(&mut buf, 1 << 20).unwrap() { got.push(f.to_vec()); }
        prop_assert_eq!(got, bodies);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn oversized_frames_are_refused_from_the_prefix(len in 1025i32..i32::MAX) {
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        prop_assert!(decode_frame(&mut buf, 1024).is_err());
    }

    #[test]
    fn transaction_markers_round_trip(pid in 0i64..i64::MAX, epoch in 0i16..i16::MAX, commit in any::<bool>(), coordinator_epoch in any::<i32>(), ts in 0i64..4_000_000_000_000, base in 0i64..i64::MAX / 2) {
        let b = with_base_offset(&encode_control_batch(pid, epoch, commit, coordinator_epoch, ts), base);
        let h = parse_batch(&b).unwrap();
        prop_assert!(h.is_control() && h.is_transactional());
        prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_offset, h.record_count), (pid, epoch, base, 1));
        prop_assert_eq!(control_marker(&b), Some(commit));
        // Consumers skip control records.
        prop_assert!(decode_records(&b).unwrap().is_empty());
    }

    #[test]
    fn reading_a_marker_from_any_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..200), flip in 0usize..200) {
        let _ = control_marker(&data);
        // A real marker with one byte changed: a marker, or none, never a panic.
        let mut b = encode_control_batch(7, 1, true, 0, 0).to_vec();
        let at = flip % b.len();
        b[at] ^= 0xff;
        let _ = control_marker(&b);
    }

    #[test]
    fn record_batches_round_trip(records in prop::collection::vec(record(), 1..20), base in 0i64..i64::MAX / 2) {
        let b = encode_batch(&records).unwrap();
        let moved = with_base_offset(&b, base);
        let h = parse_batch(&moved).unwrap();
        prop_assert_eq!(h.base_offset, base);
        prop_assert_eq!(h.record_count as usize, records.len());
        prop_assert_eq!(h.total_bytes(), moved.len());
        let back = decode_records(&moved).unwrap();
        prop_assert_eq!(back.len(), records.len());
        for (i, (r, want)) in back.iter().zip(&records).enumerate() {
            prop_assert_eq!(r.offset, base + i as i64);
            prop_assert_eq!(&r.key, &want.key);
            prop_assert_eq!(&r.value, &want.value);
            prop_assert_eq!(&r.headers, &want.headers);
            prop_assert_eq!(r.timestamp_ms, want.timestamp_ms);
        }
        // Several batches back to back split into the same batches.
        let mut two = BytesMut::from(&moved[..]);
        two.extend_from_slice(&b);
        let split = split_batches(&two.freeze()).unwrap();
        prop_assert_eq!(split.len(), 2);
    }

    #[test]
    fn any_flipped_bit_after_the_crc_is_caught(records in prop::collection::vec(record(), 1..5), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let b = encode_batch(&records).unwrap();
        let mut v = b.to_vec();
        let i = 21 + pos.index(v.len() - 21);
        v[i] ^= 1 << bit;
        prop_assert!(parse_batch(&v).is_err());
    }

    #[test]
    fn produce_requests_round_trip(version in 3i16..=11, acks in prop::sample::select(vec![-1i16, 0, 1]), records in prop::collection::vec(record(), 1..5), topic in "[a-zA-Z0-9._-]{1,40}", cid in any::<i32>()) {
        let batch = encode_batch(&records).unwrap();
        let req = ProduceRequest::default().with_acks(acks).with_timeout_ms(1000).with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.clone())))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch.clone()))])]);
        let frame = frame_request(ApiKey::Produce, version, cid, &req);
        let (key, header, body) = decode_request_header(frame.clone()).unwrap();
        prop_assert_eq!(key, ApiKey::Produce);
        prop_assert_eq!(header.correlation_id, cid);
        let back: ProduceRequest = decode_body(body, version).unwrap();
        prop_assert_eq!(&back, &req);
        prop_assert!(decode_request(frame).is_ok());
    }

    #[test]
    fn metadata_requests_round_trip(version in 1i16..=12, names in prop::collection::vec("[a-z]{1,20}", 0..5)) {
        let topics = names.iter().map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(n.clone()))))).collect();
        let req = MetadataRequest::default().with_topics(Some(topics));
        let frame = frame_request(ApiKey::Metadata, version, 1, &req);
        let (_, _, body) = decode_request_header(frame).unwrap();
        let back: MetadataRequest = decode_body(body, version).unwrap();
        prop_assert_eq!(back.topics.unwrap().len(), names.len());
    }

    #[test]
    fn random_bytes_never_panic_the_decoders(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(f)) = decode_frame(&mut buf, 4096) { let _ = decode_request(f); }
        let b = Bytes::from(data);
        let _ = split_batches(&b);
        let _ = decode_records(&b);
    }
}

mod group_records {
    use backwaters_proto::kafka::group_records::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = GroupRecordKey> {
        prop_oneof![
            ("\\PC{0,40}", "[a-zA-Z0-9._-]{1,40}", any::<i32>()).prop_map(|(group, topic, partition)| GroupRecordKey::Offset { group, topic, partition }),
            "\\PC{0,40}".prop_map(|group| GroupRecordKey::Group { group }),
            "\\PC{0,40}".prop_map(|group| GroupRecordKey::ConsumerGroup { group }),
        ]
    }

    fn member() -> impl Strategy<Value = MemberValue> {
        ("\\PC{0,20}", prop::option::of("\\PC{0,20}"), "\\PC{0,20}", "\\PC{0,20}", any::<i32>(), any::<i32>(), prop::collection::vec(any::<u8>(), 0..64), prop::collection::vec(any::<u8>(), 0..64)).prop_map(
            |(member_id, group_instance_id, client_id, client_host, rebalance_timeout_ms, session_timeout_ms, s, a)| MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription: Bytes::from(s),
                assignment: Bytes::from(a),
            },
        )
    }

    proptest! {
        #[test]
        fn keys_round_trip(k in key()) {
            prop_assert_eq!(decode_key(&encode_key(&k)).unwrap(), k);
        }

        #[test]
        fn offset_values_round_trip(offset in any::<i64>(), leader_epoch in any::<i32>(), metadata in "\\PC{0,100}", commit_timestamp in any::<i64>()) {
            let v = OffsetValue { offset, leader_epoch, metadata, commit_timestamp };
            prop_assert_eq!(decode_offset_value(&encode_offset_value(&v)).unwrap(), v);
        }

        #[test]
        fn group_values_round_trip(protocol_type in "\\PC{0,20}", generation in any::<i32>(), protocol in prop::option::of("\\PC{0,20}"), leader in prop::option::of("\\PC{0,20}"), ts in any::<i64>(), members in prop::collection::vec(member(), 0..5)) {
            let v = GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp: ts, members };
            prop_assert_eq!(decode_group_value(&encode_group_value(&v)).unwrap(), v);
        }

        #[test]
        fn consumer_group_values_round_trip(snapshot in prop::collection::vec(any::<u8>(), 0..200)) {
            let encoded = encode_consumer_group_value(&snapshot);
            prop_assert_eq!(decode_consumer_group_value(&encoded).unwrap(), &snapshot[..]);
        }

        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_key(&data);
            let _ = decode_consumer_group_value(&data);
            let _ = decode_offset_value(&data);
            let _ = decode_group_value(&data);
        }
    }
}

mod syslog {
    use backwaters_proto::syslog::{framing, parse, relp};
    use bytes::BytesMut;
    use proptest::prelude::*;

    proptest! {
        /// Messages framed either way, mixed, arrive whole and in order whatever the TCP split.
        #[test]
        fn framer_round_trips(msgs in prop::collection::vec(("<[0-9]{1,2}>[ -~]{0,80}", any::<bool>()), 1..12), cuts in prop::collection::vec(0usize..2000, 0..6)) {
            let mut wire = Vec::new();
            for (m, counted) in &msgs {
                if *counted { wire.extend(framing::octet_frame(m.as_bytes())); } else { wire.extend_from_slice(m.trim_end().as_bytes()); wire.push(b'\n'); }
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.sort();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut last = 0;
            for c in cuts.into_iter().chain([wire.len()]) {
                buf.extend_from_slice(&wire[last..c]);
                last = c;
                while let Some(f) = framing::next_frame(&mut buf, 4096).unwrap() { out.push(f); }
            }
            let want: Vec<String> = msgs.iter().map(|(m, counted)| if *counted { m.clone() } else { m.trim_end().to_string() }).collect();
            prop_assert_eq!(out.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect::<Vec<_>>(), want);
        }

        #[test]
        fn relp_round_trips(frames in prop::collection::vec((1u64..999_999_999, "[a-z]{1,10}", prop::collection::vec(any::<u8>(), 0..200)), 1..8), cut in 0usize..4000) {
            let wire: Vec<u8> = frames.iter().flat_map(|(t, c, d)| relp::encode(*t, c, d)).collect();
            let cut = cut % (wire.len() + 1);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut out = Vec::new();
            while let Some(f) = relp::next_frame(&mut buf, 1000).unwrap() { out.push(f); }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(f) = relp::next_frame(&mut buf, 1000).unwrap() { out.push(f); }
            prop_assert_eq!(out.len(), frames.len());
            for (f, (t, c, d)) in out.iter().zip(&frames) {
                prop_assert_eq!((f.txnr, f.command.as_str(), f.data.as_ref()), (*t, c.as_str(), d.as_slice()));
            }
        }

        /// An RFC 5424 line built from fields parses back to them.
        #[test]
        fn rfc5424_round_trips(pri in 0u16..192, ts in 0i64..4_000_000_000_000, host in "[!-~]{1,20}", app in "[!-~]{1,20}", pid in 1u32..100_000, msg in "[ -~]{0,100}", sd_val in "[ -~]{0,20}") {
            let host = if host == "-" { "h".to_string() } else { host };
            let app = if app == "-" { "a".to_string() } else { app };
            let sd = format!("[x@1 k=\"{}\"]", sd_val.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]"));
            let line = format!("<{pri}>1 {} {host} {app} {pid} ID1 {sd} {msg}", backwaters_proto::syslog::ecs::rfc3339(ts));
            let m = parse::parse(line.as_bytes(), 0, &parse::Rfc3164Rules::default()).unwrap();
            prop_assert_eq!((m.facility as u16 * 8 + m.severity as u16, m.timestamp_ms), (pri, Some(ts)));
            prop_assert_eq!((m.hostname.unwrap(), m.app_name.unwrap(), m.proc_id.unwrap()), (host, app, pid.to_string()));
            prop_assert_eq!(&m.structured_data[0].params[0].1, &sd_val);
            prop_assert_eq!(m.message, msg.trim_end_matches(['\r', '\n']).to_string());
        }

        #[test]
        fn syslog_garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..300), now in any::<i64>()) {
            let _ = parse::parse(&data, now / 4, &parse::Rfc3164Rules::default());
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = framing::next_frame(&mut buf, 100) {}
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = relp::next_frame(&mut buf, 100) {}
        }
    }
}
