//! RFC 6587 stream framing for syslog over TCP and TLS.
//!
//! Each frame is told apart by its first byte, as rsyslog's imtcp does: a digit starts an
//! octet-counted frame (`LEN SP MSG`), anything else a frame that ends at LF (a trailing CR
//! or NUL is dropped, empty lines are skipped). Frames longer than the limit are refused
//! before they are buffered: the caller closes the connection.

use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// An octet count (or a line without LF) over the limit.
    TooLarge { size: usize, max: usize },
    /// An octet count that is not `DIGITS SP`.
    BadOctetCount,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { size, max } => write!(f, "syslog frame of {size} bytes is over the limit of {max}"),
            FrameError::BadOctetCount => write!(f, "octet-counted frame without a valid length prefix"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Longest octet-count prefix read ("1048576 " has 8 bytes).
const MAX_COUNT_DIGITS: usize = 10;

/// Takes the next whole frame from `buf`; `Ok(None)` when more bytes are needed.
pub fn next_frame(buf: &mut BytesMut, max_bytes: usize) -> Result<Option<Bytes>, FrameError> {
    loop {
        let Some(&first) = buf.first() else { return Ok(None) };
        if first.is_ascii_digit() {
            return octet_counted(buf, max_bytes);
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(end) if end > max_bytes => return Err(FrameError::TooLarge { size: end, max: max_bytes }),
            Some(end) => {
                let mut line = buf.split_to(end + 1).freeze();
                while let Some(b'\n' | b'\r' | b'\0') = line.last() {
                    line.truncate(line.len() - 1);
                }
                if line.is_empty() {
                    continue;
                }
                return Ok(Some(line));
            }
            None if buf.len() > max_bytes => return Err(FrameError::TooLarge { size: buf.len(), max: max_bytes }),
            None => return Ok(None),
        }
    }
}

fn octet_counted(buf: &mut BytesMut, max_bytes: usize) -> Result<Option<Bytes>, FrameError> {
    let digits = buf.iter().take(MAX_COUNT_DIGITS + 1).take_while(|b| b.is_ascii_digit()).count();
    if digits == buf.len() && digits <= MAX_COUNT_DIGITS {
        return Ok(None); // the count is still arriving
    }
    if digits > MAX_COUNT_DIGITS || buf[digits] != b' ' || buf[0] == b'0' {
        return Err(FrameError::BadOctetCount);
    }
    let len: usize = std::str::from_utf8(&buf[..digits]).expect("digits").parse().map_err(|_| FrameError::BadOctetCount)?;
    if len > max_bytes {
        return Err(FrameError::TooLarge { size: len, max: max_bytes });
    }
    if buf.len() < digits + 1 + len {
        buf.reserve(digits + 1 + len - buf.len());
        return Ok(None);
    }
    buf.advance(digits + 1);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Frames a message with octet counting (what a sender that may have LF in messages uses).
pub fn octet_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_framings_mixed_and_split_anywhere() {
        let wire = b"<13>a\n10 <13>b\nwith\n\r\n<13>c\r\n".to_vec();
        for cut in 0..wire.len() {
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(part);
                while let Some(f) = next_frame(&mut buf, 100).unwrap() {
                    out.push(f);
                }
            }
            assert_eq!(out, vec![Bytes::from_static(b"<13>a"), Bytes::from_static(b"<13>b\nwith"), Bytes::from_static(b"<13>c")], "cut at {cut}");
        }
    }

    #[test]
    fn limits_are_checked_before_buffering() {
        let mut buf = BytesMut::from(&b"99999999 <13>"[..]);
        assert_eq!(next_frame(&mut buf, 1000), Err(FrameError::TooLarge { size: 99_999_999, max: 1000 }));
        let mut buf = BytesMut::from(&b"12345678901234 x"[..]);
        assert_eq!(next_frame(&mut buf, 1000), Err(FrameError::BadOctetCount));
        let mut buf = BytesMut::from(&b"12x"[..]);
        assert_eq!(next_frame(&mut buf, 1000), Err(FrameError::BadOctetCount));
        let mut buf = BytesMut::from(&[b'<'; 2000][..]);
        assert!(matches!(next_frame(&mut buf, 1000), Err(FrameError::TooLarge { .. })));
        // The LF arriving in the same read as the whole too-long line (found by fuzzing).
        let mut line = vec![b'<'; 2000];
        line.push(b'\n');
        let mut buf = BytesMut::from(&line[..]);
        assert!(matches!(next_frame(&mut buf, 1000), Err(FrameError::TooLarge { .. })));
    }
}
