//! The "consumer" embedded protocol: what Kafka consumers put in JoinGroup metadata
//! (subscription) and SyncGroup assignments. The broker treats both as opaque bytes; these
//! readers exist for operators (describe a group, refuse deleting offsets of a subscribed
//! topic). Unreadable bytes give `None`, never a panic.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Encodable, StrBytes};

/// Newer versions only add fields at the end, so they are read as the newest known one.
const NEWEST: i16 = 3;

fn version_and_body(buf: &[u8]) -> Option<(i16, Bytes)> {
    if buf.len() < 2 {
        return None;
    }
    let v = i16::from_be_bytes([buf[0], buf[1]]);
    (v >= 0).then(|| (v.min(NEWEST), Bytes::copy_from_slice(&buf[2..])))
}

/// The topics a member subscribes to.
pub fn subscription_topics(buf: &[u8]) -> Option<Vec<String>> {
    let (v, body) = version_and_body(buf)?;
    let s: ConsumerProtocolSubscription = crate::kafka::frame::decode_body(body, v).ok()?;
    Some(s.topics.iter().map(|t| t.to_string()).collect())
}

/// The partitions assigned to a member, by topic.
pub fn assignment_partitions(buf: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if buf.is_empty() {
        return Some(vec![]);
    }
    let (v, body) = version_and_body(buf)?;
    let a: ConsumerProtocolAssignment = crate::kafka::frame::decode_body(body, v).ok()?;
    Some(a.assigned_partitions.iter().map(|tp| (tp.topic.to_string(), tp.partitions.clone())).collect())
}

/// A version-0 subscription of `topics` (how a classic member would have sent it): lets the
/// classic views (DescribeGroups, the admin API) show a consumer-protocol member.
pub fn encode_subscription(topics: &[String]) -> Bytes {
    let s = ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| StrBytes::from_string(t.clone())).collect());
    versioned(&s)
}

/// A version-0 assignment of `partitions` by topic.
pub fn encode_assignment(partitions: &[(String, Vec<i32>)]) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions.iter().map(|(t, ps)| TopicPartition::default().with_topic(kafka_protocol::messages::TopicName(StrBytes::from_string(t.clone()))).with_partitions(ps.clone())).collect(),
    );
    versioned(&a)
}

fn versioned<T: Encodable>(m: &T) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    // Version 0 of these messages has only strings, arrays and integers: it always encodes.
    m.encode(&mut b, 0).expect("consumer protocol v0 encodes");
    b.freeze()
}
