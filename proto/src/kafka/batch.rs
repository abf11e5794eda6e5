//! Record batch v2 (magic 2), the unit Backwaters stores: batches are kept exactly as the
//! producer sent them, whatever their compression; only the base offset and the partition
//! leader epoch are rewritten (the CRC covers neither, so rewriting keeps the batch valid).
//!
//! Header layout (61 bytes, big-endian):
//! `base_offset:i64 batch_length:i32 leader_epoch:i32 magic:i8 crc:u32 attributes:i16
//!  last_offset_delta:i32 base_timestamp:i64 max_timestamp:i64 producer_id:i64
//!  producer_epoch:i16 base_sequence:i32 record_count:i32`, then the records.
//! The CRC32C covers everything from `attributes` to the end of the batch.

use bytes::{Bytes, BytesMut};
pub use kafka_protocol::records::Compression;
use kafka_protocol::records::{
    Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use thiserror::Error;

/// Size of the record batch v2 header.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batch_length` counts: base offset and the length field itself.
pub const LOG_OVERHEAD: usize = 12;
const CRC_START: usize = 21;

/// Why a batch was refused. Each maps to a Kafka error code at the edge.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum BatchError {
    #[error("record batch is truncated: {have} bytes, needs {need}")]
    Truncated { have: usize, need: usize },
    #[error("record batch has magic {0}; only v2 (magic 2) is accepted")]
    UnsupportedMagic(i8),
    #[error("record batch CRC mismatch: header says {expected:#010x}, data gives {actual:#010x}")]
    CorruptCrc { expected: u32, actual: u32 },
    #[error("record batch header is invalid: {0}")]
    Invalid(&'static str),
}

/// The decoded header of one record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Total size of the batch in bytes, header included.
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }
    pub fn compression_code(&self) -> i16 {
        self.attributes & 0x7
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
    pub fn log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }
    /// Whether the batch comes from an idempotent producer (sequence checks apply).
    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0
    }
    /// Last sequence number in the batch (sequences wrap at i32::MAX as Kafka's do).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
    /// The offset of the last record once the batch sits at `base_offset`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the header fields of the batch at the start of `buf`, which needs only the first
/// [`HEADER_BYTES`] of it; nothing is checked beyond the magic byte. For batches already
/// checked once ([`parse_batch`]) and stored: a walk over stored headers then reads no
/// payload.
pub fn peek_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    if buf.len() < HEADER_BYTES {
        return Err(BatchError::Truncated { have: buf.len(), need: HEADER_BYTES });
    }
    let magic = buf[16] as i8;
    if magic != 2 {
        return Err(BatchError::UnsupportedMagic(magic));
    }
    Ok(BatchHeader {
        base_offset: be_i64(buf, 0),
        batch_length: be_i32(buf, 8),
        partition_leader_epoch: be_i32(buf, 12),
        magic,
        crc: u32::from_be_bytes(buf[17..21].try_into().expect("4 bytes")),
        attributes: be_i16(buf, 21),
        last_offset_delta: be_i32(buf, 23),
        base_timestamp: be_i64(buf, 27),
        max_timestamp: be_i64(buf, 35),
        producer_id: be_i64(buf, 43),
        producer_epoch: be_i16(buf, 51),
        base_sequence: be_i32(buf, 53),
        record_count: be_i32(buf, 57),
    })
}

/// Parses and checks the header of the batch at the start of `buf` (which may hold more
/// batches after it): magic 2, a sane length, counts that agree, and the CRC32C. What a
/// producer sends: at least one record, offsets dense.
pub fn parse_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = parse_stored_batch(buf)?;
    if header.last_offset_delta != header.record_count - 1 {
        // Kafka producers always write dense batches; compacted batches may not be, but those
        // never come from a producer.
        return Err(BatchError::Invalid("last offset delta does not match the record count"));
    }
    if header.record_count == 0 {
        return Err(BatchError::Invalid("empty record batch"));
    }
    Ok(header)
}

/// As [`parse_batch`], for a batch as the log may hold it after compaction: records may be
/// missing between its first and last offset, or all of them (the batch stays for its
/// offsets and its producer's sequence).
pub fn parse_stored_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = peek_header(buf)?;
    let batch_length = header.batch_length;
    if batch_length < (HEADER_BYTES - LOG_OVERHEAD) as i32 {
        return Err(BatchError::Invalid("batch length shorter than the header"));
    }
    let total = LOG_OVERHEAD + batch_length as usize;
    if buf.len() < total {
        return Err(BatchError::Truncated { have: buf.len(), need: total });
    }
    let actual = crc32c::crc32c(&buf[CRC_START..total]);
    if actual != header.crc {
        return Err(BatchError::CorruptCrc { expected: header.crc, actual });
    }
    if header.record_count < 0 || header.last_offset_delta < 0 {
        return Err(BatchError::Invalid("negative record count or offset delta"));
    }
    if header.record_count as i64 > header.last_offset_delta as i64 + 1 {
        return Err(BatchError::Invalid("more records than offsets"));
    }
    if header.compression_code() > 4 {
        return Err(BatchError::Invalid("unknown compression codec"));
    }
    Ok(header)
}

/// Splits the `records` field of one produce partition into whole, checked batches.
pub fn split_batches(records: &Bytes) -> Result<Vec<(BatchHeader, Bytes)>, BatchError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < records.len() {
        let header = parse_batch(&records[at..])?;
        let end = at + header.total_bytes();
        out.push((header, records.slice(at..end)));
        at = end;
    }
    Ok(out)
}

/// Writes `base_offset` into a batch. The CRC does not cover it, so the batch stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    assert!(batch.len() >= HEADER_BYTES, "not a record batch");
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch (the Raft term of the entry holding the batch) into a
/// batch, as a Kafka leader stamps what it appends; consumers remember it with their position
/// and check it with OffsetForLeaderEpoch after a leader change (KIP-320). Not under the CRC.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    assert!(batch.len() >= HEADER_BYTES, "not a record batch");
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Copies `batch` with `base_offset` rewritten.
pub fn with_base_offset(batch: &[u8], base_offset: i64) -> Bytes {
    let mut b = BytesMut::from(batch);
    set_base_offset(&mut b, base_offset);
    b.freeze()
}

/// Marks a batch as written by an idempotent producer (`producer_id`, `epoch`, first
/// sequence `base_sequence`) and recomputes its CRC, which covers those fields. Used by
/// tests that play an idempotent client without a Kafka client library.
pub fn set_producer(batch: &[u8], producer_id: i64, epoch: i16, base_sequence: i32) -> Bytes {
    assert!(batch.len() >= HEADER_BYTES, "not a record batch");
    let mut b = BytesMut::from(batch);
    b[43..51].copy_from_slice(&producer_id.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// Marks a batch as part of producer `producer_id`/`epoch`'s transaction without a sequence
/// (base sequence -1), as Kafka's group coordinator writes a transaction's offset commits;
/// recomputes the CRC.
pub fn set_transactional(batch: &[u8], producer_id: i64, epoch: i16) -> Bytes {
    let b = set_producer(batch, producer_id, epoch, -1);
    let mut b = BytesMut::from(&b[..]);
    let attributes = i16::from_be_bytes([b[21], b[22]]) | 0x10;
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// One record to put in a batch built by Backwaters itself (gRPC produce path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp_ms: i64,
}

/// Encodes records as a single uncompressed v2 batch at base offset 0 (non-idempotent).
pub fn encode_batch(records: &[NewRecord]) -> Result<Bytes, String> {
    encode_batch_with(records, Compression::None)
}

/// Encodes records as a single v2 batch at base offset 0 (non-idempotent), compressed with
/// `compression` (consumers decompress it as they would a producer's batch).
pub fn encode_batch_with(records: &[NewRecord], compression: Compression) -> Result<Bytes, String> {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder groups records into one batch only while offset - sequence stays
            // constant; with sequence == offset every record lands in the same batch.
            sequence: i as i32,
            timestamp: r.timestamp_ms,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (kafka_protocol::protocol::StrBytes::from_string(k.clone()), v.clone()))
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions { version: 2, compression };
    RecordBatchEncoder::encode(&mut buf, recs.iter(), &opts).map_err(|e| e.to_string())?;
    // Mark the batch as non-idempotent: base sequence -1.
    if buf.len() >= HEADER_BYTES {
        buf[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = crc32c::crc32c(&buf[CRC_START..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(buf.freeze())
}

/// Attributes of a transaction marker: transactional (0x10) and control (0x20).
const CONTROL_ATTRIBUTES: i16 = 0x30;

/// Encodes a transaction marker as Kafka writes it: a control batch of producer
/// `producer_id`/`epoch` holding one record whose key is (version 0, type 1 = commit or
/// 0 = abort) and whose value is (version 0, `coordinator_epoch`). Base offset 0.
pub fn encode_control_batch(producer_id: i64, epoch: i16, commit: bool, coordinator_epoch: i32, timestamp_ms: i64) -> Bytes {
    // attributes, timestamp delta 0, offset delta 0, key length 4, key, value length 6, value
    let mut rec = vec![0u8, 0, 0, 0x08, 0, 0, 0, commit as u8, 0x0c, 0, 0];
    rec.extend_from_slice(&coordinator_epoch.to_be_bytes());
    rec.push(0); // no headers
    let total = HEADER_BYTES + 1 + rec.len();
    let mut b = BytesMut::with_capacity(total);
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.extend_from_slice(&[2]); // magic
    b.extend_from_slice(&[0; 4]); // crc, set below
    b.extend_from_slice(&CONTROL_ATTRIBUTES.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence: markers have none
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&[(rec.len() as u8) << 1]); // record length as a zigzag varint (< 64)
    b.extend_from_slice(&rec);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    debug_assert_eq!(b.len(), total);
    b.freeze()
}

/// Reads a zigzag varint at `*at`, moving past it.
pub(crate) fn varint(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

/// What a control batch marks: `Some(true)` a commit, `Some(false)` an abort, `None` when
/// the batch is no transaction marker (not a control batch, compressed, or another type).
pub fn control_marker(batch: &[u8]) -> Option<bool> {
    let h = peek_header(batch).ok()?;
    if !h.is_control() || h.record_count < 1 || h.compression_code() != 0 {
        return None;
    }
    let mut at = HEADER_BYTES;
    varint(batch, &mut at)?; // record length
    at += 1; // attributes
    varint(batch, &mut at)?; // timestamp delta
    varint(batch, &mut at)?; // offset delta
    let key_len = varint(batch, &mut at)?;
    if key_len < 4 {
        return None;
    }
    match i16::from_be_bytes(batch.get(at + 2..at + 4)?.try_into().ok()?) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// A record read back out of a stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Decodes every record of the batches in `buf` (decompressing as needed); control records
/// (transaction markers) are skipped, as consumers skip them.
pub fn decode_records(buf: &Bytes) -> Result<Vec<ReadRecord>, String> {
    let mut b = buf.clone();
    // Decompression goes through our bounded decoders, never the crate's unbounded ones.
    let bounded = |data: &mut Bytes, codec: Compression| -> anyhow::Result<Bytes> {
        crate::kafka::decompress::decompress(data, codec, crate::kafka::decompress::MAX_DECOMPRESSED_BYTES).map_err(anyhow::Error::msg)
    };
    let sets = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut sets = Vec::new();
        while bytes::Buf::has_remaining(&b) {
            sets.push(RecordBatchDecoder::decode_with_custom_compression(&mut b, Some(&bounded))?);
        }
        anyhow::Ok(sets)
    }))
    .map_err(|_| "record decoder panicked".to_string())?
    .map_err(|e| e.to_string())?;
    Ok(sets
        .into_iter()
        .flat_map(|s| s.records)
        .filter(|r| !r.control)
        .map(|r| ReadRecord {
            offset: r.offset,
            timestamp_ms: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r.headers.into_iter().map(|(k, v)| (k.as_str().to_string(), v)).collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<NewRecord> {
        (0..n)
            .map(|i| NewRecord {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![i as u8; i])),
                headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
                timestamp_ms: 1_700_000_000_000 + i as i64,
            })
            .collect()
    }

    #[test]
    fn stamping_offsets_and_epochs_keeps_the_crc() {
        let mut b = encode_batch_with(&sample(5), Compression::Lz4).unwrap().to_vec();
        set_base_offset(&mut b, 1234);
        set_partition_leader_epoch(&mut b, 77);
        let h = parse_batch(&b).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch, h.record_count), (1234, 77, 5));
        let recs = decode_records(&Bytes::from(b)).unwrap();
        assert_eq!(recs.iter().map(|r| r.offset).collect::<Vec<_>>(), (1234..1239).collect::<Vec<_>>());
    }

    #[test]
    fn control_batches_parse_and_say_what_they_mark() {
        for commit in [true, false] {
            let b = encode_control_batch(42, 3, commit, 7, 1_700_000_000_000);
            let h = parse_batch(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence, h.record_count), (42, 3, -1, 1));
            assert_eq!(control_marker(&b), Some(commit));
            // The crate's decoder reads it as one control record (consumers skip it).
            let mut buf = b.clone();
            let set = RecordBatchDecoder::decode(&mut buf).unwrap();
            assert!(set.records[0].control);
            assert_eq!(set.records[0].key.as_deref(), Some(&[0u8, 0, 0, commit as u8][..]));
            assert!(decode_records(&b).unwrap().is_empty());
        }
        assert_eq!(control_marker(&encode_batch(&sample(1)).unwrap()), None);
    }

    #[test]
    fn encoded_batch_parses_and_survives_offset_rewrite() {
        let b = encode_batch(&sample(5)).unwrap();
        let h = parse_batch(&b).unwrap();
        assert_eq!(h.record_count, 5);
        assert_eq!(h.total_bytes(), b.len());
        assert_eq!(h.base_sequence, -1);
        let moved = with_base_offset(&b, 42);
        let h2 = parse_batch(&moved).unwrap();
        assert_eq!(h2.base_offset, 42);
        let recs = decode_records(&moved).unwrap();
        assert_eq!(recs.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![42, 43, 44, 45, 46]);
    }

    #[test]
    fn flipped_bit_is_a_crc_error() {
        let b = encode_batch(&sample(3)).unwrap();
        let mut v = b.to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        assert!(matches!(parse_batch(&v), Err(BatchError::CorruptCrc { .. })));
    }

    #[test]
    fn sequences_wrap() {
        let mut h = parse_batch(&encode_batch(&sample(3)).unwrap()).unwrap();
        h.base_sequence = i32::MAX;
        assert_eq!(h.last_sequence(), 1);
    }
}
