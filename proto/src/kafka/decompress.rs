//! Decompression with a ceiling. A record batch of a few KiB can claim (snappy) or expand to
//! (gzip, lz4, zstd) gigabytes; the broker decompresses stored batches for gRPC consumers and
//! for ListOffsets by time, so an unbounded decoder would let any producer crash it. Every
//! codec here stops at [`MAX_DECOMPRESSED_BYTES`] and reports an error instead.

use bytes::Bytes;
use kafka_protocol::records::Compression;
use std::io::Read;

/// Most bytes one batch may decompress to (Kafka's own default batch limit is 1 MiB of
/// compressed data; 64 MiB of records leaves room for very compressible logs).
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// xerial snappy framing header (Kafka's Java client writes it).
const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;

/// Decompresses `data` written with `codec`, refusing output beyond `limit`.
pub fn decompress(data: &[u8], codec: Compression, limit: usize) -> Result<Bytes, String> {
    match codec {
        Compression::None => Ok(Bytes::copy_from_slice(data)),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(data), limit, "gzip"),
        Compression::Zstd => read_bounded(zstd::stream::read::Decoder::new(data).map_err(|e| format!("zstd: {e}"))?, limit, "zstd"),
        Compression::Lz4 => read_bounded(lz4::Decoder::new(data).map_err(|e| format!("lz4: {e}"))?, limit, "lz4"),
        Compression::Snappy => snappy(data, limit),
    }
}

fn read_bounded(r: impl Read, limit: usize, codec: &str) -> Result<Bytes, String> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1).read_to_end(&mut out).map_err(|e| format!("{codec}: {e}"))?;
    if out.len() > limit {
        return Err(format!("{codec} batch decompresses to more than {limit} bytes"));
    }
    Ok(Bytes::from(out))
}

fn snappy(data: &[u8], limit: usize) -> Result<Bytes, String> {
    let raw = |block: &[u8], room: usize| -> Result<Vec<u8>, String> {
        let len = snap::raw::decompress_len(block).map_err(|e| format!("snappy: {e}"))?;
        if len > room {
            return Err(format!("snappy batch claims more than {limit} bytes"));
        }
        snap::raw::Decoder::new().decompress_vec(block).map_err(|e| format!("snappy: {e}"))
    };
    if !data.starts_with(XERIAL_MAGIC) {
        return raw(data, limit).map(Bytes::from);
    }
    let mut rest = data.get(XERIAL_HEADER_BYTES..).ok_or("snappy: truncated xerial header")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest.get(..4).ok_or("snappy: truncated block length")?.try_into().expect("4 bytes")) as usize;
        let block = rest.get(4..4 + len).ok_or("snappy: truncated block")?;
        out.extend_from_slice(&raw(block, limit - out.len())?);
        rest = &rest[4 + len..];
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bombs_are_refused_and_normal_data_passes() {
        let zeros = vec![0u8; 2 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress(&gz, Compression::Gzip, 4 << 20).unwrap().len(), 2 << 20);
        assert!(decompress(&gz, Compression::Gzip, 1 << 20).unwrap_err().contains("more than"));
        let z = zstd::encode_all(&zeros[..], 3).unwrap();
        assert!(decompress(&z, Compression::Zstd, 1 << 20).is_err());
        let s = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        assert!(decompress(&s, Compression::Snappy, 1 << 20).is_err());
        assert_eq!(decompress(&s, Compression::Snappy, 4 << 20).unwrap().len(), 2 << 20);
        // A snappy header that claims 4 GiB is refused before anything is allocated.
        assert!(decompress(&[0xff, 0xff, 0xff, 0xff, 0x0f], Compression::Snappy, 1 << 20).is_err());
    }
}
