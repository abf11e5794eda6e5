//! Log compaction's view of a stored batch: its records as raw slices with the fields the
//! cleaner decides on (offset, timestamp, key, tombstone), and the batch rebuilt with a subset
//! of them.
//!
//! As Kafka's cleaner does, a rebuilt batch keeps its base offset, last offset delta,
//! producer id/epoch/base sequence, attributes and timestamps: offsets never move, and a
//! producer's sequence state stays valid even when every record of its last batch is gone
//! (the batch stays, empty). Only the records section, the record count, the batch length and
//! the CRC change. Records are copied byte for byte; a compressed batch is decompressed
//! (bounded, as everywhere) and compressed again with the same codec.
//!
//! Stored batches come from producers, whose records section the broker never parsed (only
//! the header and CRC are checked on produce): every read here is bounds-checked and a batch
//! that does not parse is an error, which the cleaner answers by keeping the batch as it is.

use super::batch::{parse_stored_batch, varint, BatchHeader, Compression, HEADER_BYTES, LOG_OVERHEAD};
use super::decompress::{decompress, MAX_DECOMPRESSED_BYTES};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::Compressor;
use std::ops::Range;

/// One record of a batch, as compaction sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    /// `None`: the record has no key (a compacted topic refuses those on produce).
    pub key: Option<Bytes>,
    /// A null value: the key is deleted once the tombstone itself may go.
    pub tombstone: bool,
    /// The record's bytes (length prefix included) in the uncompressed records section.
    raw: Range<usize>,
}

/// A batch's header and records, ready to be rebuilt with fewer of them.
#[derive(Debug, Clone)]
pub struct BatchRecords {
    pub header: BatchHeader,
    /// The uncompressed records section.
    data: Bytes,
    pub records: Vec<RawRecord>,
}

fn codec(attributes: i16) -> Result<Compression, String> {
    Ok(match attributes & 0x7 {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        c => return Err(format!("unknown compression codec {c}")),
    })
}

/// Parses a stored batch (CRC checked) into its records.
pub fn batch_records(batch: &[u8]) -> Result<BatchRecords, String> {
    let header = parse_stored_batch(batch).map_err(|e| e.to_string())?;
    let body = batch.get(HEADER_BYTES..header.total_bytes()).ok_or("batch shorter than its length")?;
    let data = decompress(body, codec(header.attributes)?, MAX_DECOMPRESSED_BYTES)?;
    let count = usize::try_from(header.record_count).map_err(|_| "negative record count")?;
    // Each record this walk accepts takes at least 6 bytes (length, attributes, timestamp,
    // offset, key and value lengths): a count beyond that is a lie, not an allocation.
    if count > data.len() / 6 {
        return Err(format!("{count} records cannot fit in {} bytes", data.len()));
    }
    let mut records = Vec::with_capacity(count);
    let mut at = 0usize;
    let bad = |what: &str, n: usize| format!("record {n}: {what}");
    for n in 0..count {
        let start = at;
        let len = varint(&data, &mut at).ok_or_else(|| bad("truncated length", n))?;
        let len = usize::try_from(len).map_err(|_| bad("negative length", n))?;
        let end = at.checked_add(len).filter(|e| *e <= data.len()).ok_or_else(|| bad("longer than the batch", n))?;
        let rec = &data[..end];
        let mut p = at + 1; // attributes
        let ts_delta = varint(rec, &mut p).ok_or_else(|| bad("truncated timestamp", n))?;
        let offset_delta = varint(rec, &mut p).ok_or_else(|| bad("truncated offset delta", n))?;
        let key_len = varint(rec, &mut p).ok_or_else(|| bad("truncated key length", n))?;
        let key = if key_len < 0 {
            None
        } else {
            let k = p.checked_add(key_len as usize).filter(|k| *k <= end).ok_or_else(|| bad("key longer than the record", n))?;
            let key = data.slice(p..k);
            p = k;
            Some(key)
        };
        let value_len = varint(rec, &mut p).ok_or_else(|| bad("truncated value length", n))?;
        if value_len >= 0 && p.checked_add(value_len as usize).is_none_or(|v| v > end) {
            return Err(bad("value longer than the record", n));
        }
        let offset_delta = i32::try_from(offset_delta).map_err(|_| bad("offset delta out of range", n))?;
        if offset_delta < 0 || offset_delta > header.last_offset_delta {
            return Err(bad("offset delta outside the batch", n));
        }
        let timestamp_ms = if header.log_append_time() { header.max_timestamp } else { header.base_timestamp.saturating_add(ts_delta) };
        records.push(RawRecord { offset: header.base_offset + offset_delta as i64, timestamp_ms, key, tombstone: value_len < 0, raw: start..end });
        at = end;
    }
    if at != data.len() {
        return Err(format!("{} bytes after the last record", data.len() - at));
    }
    Ok(BatchRecords { header, data, records })
}

impl BatchRecords {
    /// The batch `original` (which these records were read from) with only the records whose
    /// `keep` is true. Header fields other than length, count and CRC are kept.
    pub fn rebuild(&self, original: &[u8], keep: &[bool]) -> Result<Bytes, String> {
        assert_eq!(keep.len(), self.records.len(), "one keep flag per record");
        let mut records = BytesMut::new();
        let mut count = 0i32;
        for (r, k) in self.records.iter().zip(keep) {
            if *k {
                records.put_slice(&self.data[r.raw.clone()]);
                count += 1;
            }
        }
        // An emptied batch is a bare header, uncompressed (Kafka's cleaner writes the same:
        // clients choke on a compressed empty section).
        let section: Bytes = match codec(self.header.attributes)? {
            _ if count == 0 => Bytes::new(),
            Compression::None => records.freeze(),
            c => compress(c, &records)?,
        };
        let total = HEADER_BYTES + section.len();
        let mut b = BytesMut::with_capacity(total);
        b.put_slice(original.get(..HEADER_BYTES).ok_or("batch shorter than its header")?);
        b.put_slice(&section);
        let length = i32::try_from(total - LOG_OVERHEAD).map_err(|_| "batch too large")?;
        b[8..12].copy_from_slice(&length.to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        if count == 0 {
            let attributes = self.header.attributes & !0x7;
            b[21..23].copy_from_slice(&attributes.to_be_bytes());
        }
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(b.freeze())
    }
}

fn compress(c: Compression, data: &[u8]) -> Result<Bytes, String> {
    use kafka_protocol::compression::{Gzip, Lz4, Snappy, Zstd};
    let mut out = BytesMut::new();
    let fill = |buf: &mut BytesMut| {
        buf.put_slice(data);
        Ok(())
    };
    match c {
        Compression::Gzip => <Gzip as Compressor<BytesMut>>::compress(&mut out, fill),
        Compression::Snappy => <Snappy as Compressor<BytesMut>>::compress(&mut out, fill),
        Compression::Lz4 => <Lz4 as Compressor<BytesMut>>::compress(&mut out, fill),
        Compression::Zstd => <Zstd as Compressor<BytesMut>>::compress(&mut out, fill),
        Compression::None => unreachable!("uncompressed sections are copied"),
    }
    .map_err(|e| format!("compressing the compacted batch: {e}"))?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::batch::{decode_records, encode_batch_with, set_producer, with_base_offset, NewRecord};
    use proptest::prelude::*;

    fn records(n: usize) -> Vec<NewRecord> {
        (0..n)
            .map(|i| NewRecord {
                key: (i % 5 != 4).then(|| Bytes::from(format!("key-{}", i % 3))),
                value: (i % 4 != 3).then(|| Bytes::from(vec![b'v'; i * 7])),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
                timestamp_ms: 1_700_000_000_000 + i as i64 * 10,
            })
            .collect()
    }

    fn codecs() -> [Compression; 5] {
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
    }

    #[test]
    fn records_are_read_with_offsets_keys_and_tombstones() {
        for c in codecs() {
            let b = with_base_offset(&encode_batch_with(&records(9), c).unwrap(), 100);
            let br = batch_records(&b).unwrap();
            assert_eq!(br.records.len(), 9);
            for (i, r) in br.records.iter().enumerate() {
                assert_eq!(r.offset, 100 + i as i64);
                assert_eq!(r.timestamp_ms, 1_700_000_000_000 + i as i64 * 10);
                assert_eq!(r.key.is_none(), i % 5 == 4);
                assert_eq!(r.tombstone, i % 4 == 3);
            }
        }
    }

    #[test]
    fn a_batch_emptied_keeps_its_offsets_and_producer() {
        let b = with_base_offset(&set_producer(&encode_batch_with(&records(4), Compression::Lz4).unwrap(), 7, 2, 40), 10);
        let br = batch_records(&b).unwrap();
        let out = br.rebuild(&b, &[false; 4]).unwrap();
        let h = parse_stored_batch(&out).unwrap();
        assert_eq!((h.base_offset, h.last_offset_delta, h.record_count), (10, 3, 0));
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (7, 2, 40));
        assert!(decode_records(&out).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        let b = encode_batch_with(&records(3), Compression::None).unwrap();
        for cut in [HEADER_BYTES, b.len() - 1] {
            let mut short = b[..cut].to_vec();
            let len = (cut - LOG_OVERHEAD) as i32;
            short[8..12].copy_from_slice(&len.to_be_bytes());
            let crc = crc32c::crc32c(&short[21..]);
            short[17..21].copy_from_slice(&crc.to_be_bytes());
            assert!(batch_records(&short).is_err(), "cut at {cut}");
        }
    }

    proptest! {
        /// Rebuilding with any subset keeps exactly those records, byte for byte, at their
        /// offsets, and every header field but length, count and CRC.
        #[test]
        fn rebuild_keeps_exactly_the_chosen_records(n in 1usize..30, mask in any::<u32>(), c in 0usize..5, base in 0i64..1_000_000) {
            let b = with_base_offset(&encode_batch_with(&records(n), codecs()[c]).unwrap(), base);
            let br = batch_records(&b).unwrap();
            let keep: Vec<bool> = (0..n).map(|i| mask >> (i % 32) & 1 == 1).collect();
            let out = br.rebuild(&b, &keep).unwrap();
            let (h0, h1) = (parse_stored_batch(&b).unwrap(), parse_stored_batch(&out).unwrap());
            prop_assert_eq!(h1.record_count as usize, keep.iter().filter(|k| **k).count());
            prop_assert_eq!((h0.base_offset, h0.last_offset_delta, h0.base_timestamp, h0.max_timestamp), (h1.base_offset, h1.last_offset_delta, h1.base_timestamp, h1.max_timestamp));
            let codec_bits = if h1.record_count == 0 { 0 } else { h0.attributes & 0x7 };
            prop_assert_eq!(h1.attributes, (h0.attributes & !0x7) | codec_bits);
            let want: Vec<_> = decode_records(&b).unwrap().into_iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| r).collect();
            prop_assert_eq!(decode_records(&out).unwrap(), want);
            // Read again, it is the same records (compaction runs again on its own output).
            let again = batch_records(&out).unwrap();
            prop_assert_eq!(again.records.iter().map(|r| (r.offset, r.key.clone(), r.tombstone)).collect::<Vec<_>>(),
                br.records.iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| (r.offset, r.key.clone(), r.tombstone)).collect::<Vec<_>>());
            if keep.iter().all(|k| *k) && c == 0 {
                prop_assert_eq!(&out[..], &b[..]);
            }
        }
    }
}
