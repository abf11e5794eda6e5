//! The records a group coordinator keeps in `__consumer_offsets`, in Kafka's own format, so
//! the internal topic reads the same as a Kafka broker's (tools that decode it work).
//!
//! Keys carry a version that says what they are: 0 and 1 are a committed offset
//! (group, topic, partition), 2 is a group's metadata (group), 3 is the membership of a group
//! of the consumer protocol (KIP-848; Kafka's ConsumerGroupMetadataKey has the same layout).
//! The value of key 3 is Backwaters' own: value version [`CONSUMER_GROUP_VALUE_VERSION`] and
//! a JSON snapshot of the whole group (Kafka splits it over six record types; one snapshot
//! per change keeps replay trivial at the sizes groups have). Values are versioned on their
//! own; a record with no value is a tombstone (the offset or group was deleted). Written:
//! offset key v1 with value v3, group key v2 with value v3; read: every version Kafka wrote
//! before its flexible (v4) values.
//!
//! Sans-io: pure byte encoding, bounded by the input (a length is checked against what is
//! left before anything is allocated).

use bytes::{BufMut, Bytes, BytesMut};

/// What a `__consumer_offsets` key names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupRecordKey {
    Offset { group: String, topic: String, partition: i32 },
    Group { group: String },
    ConsumerGroup { group: String },
}

/// Value version of Backwaters' consumer-group snapshot (far from Kafka's own versions).
pub const CONSUMER_GROUP_VALUE_VERSION: i16 = 0x4257;

impl GroupRecordKey {
    pub fn group(&self) -> &str {
        match self {
            GroupRecordKey::Offset { group, .. } | GroupRecordKey::Group { group } | GroupRecordKey::ConsumerGroup { group } => group,
        }
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// A member as the group metadata record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's membership after a rebalance completed (or its emptiness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

pub fn encode_key(key: &GroupRecordKey) -> Bytes {
    let mut b = BytesMut::new();
    match key {
        GroupRecordKey::Offset { group, topic, partition } => {
            b.put_i16(1);
            put_str(&mut b, group);
            put_str(&mut b, topic);
            b.put_i32(*partition);
        }
        GroupRecordKey::Group { group } => {
            b.put_i16(2);
            put_str(&mut b, group);
        }
        GroupRecordKey::ConsumerGroup { group } => {
            b.put_i16(3);
            put_str(&mut b, group);
        }
    }
    b.freeze()
}

/// A consumer-group snapshot value: the version, then the snapshot bytes.
pub fn encode_consumer_group_value(snapshot: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + snapshot.len());
    b.put_i16(CONSUMER_GROUP_VALUE_VERSION);
    b.extend_from_slice(snapshot);
    b.freeze()
}

/// The snapshot bytes of a consumer-group value.
pub fn decode_consumer_group_value(buf: &[u8]) -> Result<&[u8], String> {
    match buf {
        [hi, lo, rest @ ..] if i16::from_be_bytes([*hi, *lo]) == CONSUMER_GROUP_VALUE_VERSION => Ok(rest),
        [hi, lo, ..] => Err(format!("unsupported consumer group value version {}", i16::from_be_bytes([*hi, *lo]))),
        _ => Err("consumer group value shorter than its version".into()),
    }
}

pub fn encode_offset_value(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp);
    b.freeze()
}

pub fn encode_group_value(v: &GroupValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_str(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable_str(&mut b, v.protocol.as_deref());
    put_nullable_str(&mut b, v.leader.as_deref());
    b.put_i64(v.current_state_timestamp);
    b.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.group_instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

pub fn decode_key(buf: &[u8]) -> Result<GroupRecordKey, String> {
    let mut r = Reader { buf, pos: 0 };
    let key = match r.i16()? {
        0 | 1 => GroupRecordKey::Offset { group: r.string()?, topic: r.string()?, partition: r.i32()? },
        2 => GroupRecordKey::Group { group: r.string()? },
        3 => GroupRecordKey::ConsumerGroup { group: r.string()? },
        v => return Err(format!("unknown __consumer_offsets key version {v}")),
    };
    r.end()?;
    Ok(key)
}

pub fn decode_offset_value(buf: &[u8]) -> Result<OffsetValue, String> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.i16()?;
    let v = match version {
        0 => OffsetValue { offset: r.i64()?, leader_epoch: -1, metadata: r.string()?, commit_timestamp: r.i64()? },
        1 => {
            let (offset, metadata, ts) = (r.i64()?, r.string()?, r.i64()?);
            let _expire = r.i64()?;
            OffsetValue { offset, leader_epoch: -1, metadata, commit_timestamp: ts }
        }
        2 => OffsetValue { offset: r.i64()?, leader_epoch: -1, metadata: r.string()?, commit_timestamp: r.i64()? },
        3 => OffsetValue { offset: r.i64()?, leader_epoch: r.i32()?, metadata: r.string()?, commit_timestamp: r.i64()? },
        v => return Err(format!("unsupported offset value version {v}")),
    };
    r.end()?;
    Ok(v)
}

pub fn decode_group_value(buf: &[u8]) -> Result<GroupValue, String> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(format!("unsupported group value version {version}"));
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    // Each member takes at least 24 bytes; a count the input cannot hold is refused before
    // anything is allocated.
    if count < 0 || count as usize > r.remaining() / 24 {
        return Err(format!("member count {count} does not fit the {} bytes left", r.remaining()));
    }
    let mut members = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 { r.nullable_string()? } else { None };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let rebalance_timeout_ms = if version >= 1 { rebalance_timeout_ms } else { session_timeout_ms };
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        members.push(MemberValue { member_id, group_instance_id, client_id, client_host, rebalance_timeout_ms, session_timeout_ms, subscription, assignment });
    }
    r.end()?;
    Ok(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp, members })
}

/// Strings longer than the format holds are cut at a character boundary (the coordinator
/// refuses such input first; this only keeps the encoding well-formed).
fn put_str(b: &mut BytesMut, s: &str) {
    let mut end = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let s = &s.as_bytes()[..end];
    b.put_i16(s.len() as i16);
    b.put_slice(s);
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, s: &[u8]) {
    b.put_i32(s.len() as i32);
    b.put_slice(s);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.remaining() {
            return Err(format!("record ends early: {n} bytes wanted at byte {}, {} left", self.pos, self.remaining()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn nullable_string(&mut self) -> Result<Option<String>, String> {
        let len = self.i16()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(format!("string length {len} is negative"));
        }
        let s = self.take(len as usize)?;
        String::from_utf8(s.to_vec()).map(Some).map_err(|_| "string is not UTF-8".to_string())
    }
    fn string(&mut self) -> Result<String, String> {
        self.nullable_string()?.ok_or_else(|| "null where a string is required".to_string())
    }
    fn bytes(&mut self) -> Result<Bytes, String> {
        let len = self.i32()?;
        if len < 0 {
            return Err(format!("bytes length {len} is negative"));
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
    fn end(&self) -> Result<(), String> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(format!("{n} unexpected bytes after the record")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_huge_counts_are_errors() {
        let v = GroupValue { protocol_type: "consumer".into(), generation: 3, protocol: Some("range".into()), leader: None, current_state_timestamp: 5, members: vec![] };
        let enc = encode_group_value(&v);
        for n in 0..enc.len() {
            assert!(decode_group_value(&enc[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        let mut huge = enc.to_vec();
        let at = huge.len() - 4;
        huge[at..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_group_value(&huge).unwrap_err().contains("does not fit"));
    }
}
