//! RELP frames (the Reliable Event Logging Protocol of rsyslog's omrelp/imrelp):
//! `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. The server answers each frame with
//! `TXNR rsp LEN 200 OK` once it is done with it; a client resends what was not answered.

use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelpFrame {
    pub txnr: u64,
    pub command: String,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelpError(pub String);

impl fmt::Display for RelpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed RELP frame: {}", self.0)
    }
}

impl std::error::Error for RelpError {}

const MAX_TXNR: u64 = 999_999_999;
/// A header is at most "999999999 " + 32-byte command + " 999999999 ".
const MAX_HEADER: usize = 10 + 33 + 11;

/// Takes the next whole frame from `buf`; `Ok(None)` when more bytes are needed.
pub fn next_frame(buf: &mut BytesMut, max_data_bytes: usize) -> Result<Option<RelpFrame>, RelpError> {
    let bad = |why: &str| RelpError(why.to_string());
    // TXNR SP COMMAND SP DATALEN, then SP DATA LF or LF.
    let mut fields = [0usize; 3]; // end of each header field
    let mut n = 0;
    for (i, b) in buf.iter().enumerate().take(MAX_HEADER + 1) {
        if *b == b' ' || *b == b'\n' {
            fields[n] = i;
            n += 1;
            if n == 3 {
                break;
            }
            if *b == b'\n' {
                return Err(bad("header ends early"));
            }
        }
    }
    if n < 3 {
        return if buf.len() > MAX_HEADER { Err(bad("header too long")) } else { Ok(None) };
    }
    let txnr = parse_num(&buf[..fields[0]]).ok_or_else(|| bad("transaction number is not a number"))?;
    if txnr > MAX_TXNR {
        return Err(bad("transaction number too large"));
    }
    let command = &buf[fields[0] + 1..fields[1]];
    if command.is_empty() || command.len() > 32 || !command.iter().all(u8::is_ascii_alphabetic) {
        return Err(bad("command is not 1-32 letters"));
    }
    let len = parse_num(&buf[fields[1] + 1..fields[2]]).ok_or_else(|| bad("data length is not a number"))? as usize;
    if len > max_data_bytes {
        return Err(RelpError(format!("data of {len} bytes is over the limit of {max_data_bytes}")));
    }
    let sep = buf[fields[2]];
    let total = if len == 0 { fields[2] + 1 } else { fields[2] + 1 + len + 1 };
    if len > 0 && sep != b' ' {
        return Err(bad("no space before the data"));
    }
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    if buf[total - 1] != b'\n' {
        return Err(bad("frame does not end with LF"));
    }
    let command = String::from_utf8(command.to_vec()).expect("letters");
    let mut frame = buf.split_to(total);
    let data = if len == 0 {
        Bytes::new()
    } else {
        frame.advance(fields[2] + 1);
        frame.truncate(len);
        frame.freeze()
    };
    Ok(Some(RelpFrame { txnr, command, data }))
}

fn parse_num(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Encodes a frame.
pub fn encode(txnr: u64, command: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("{txnr} {command} {}", data.len()).into_bytes();
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsyslog_session_frames() {
        let mut wire = encode(1, "open", b"relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog");
        wire.extend_from_slice(b"2 syslog 5 <13>a\n3 close 0\n");
        for cut in 0..wire.len() {
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(part);
                while let Some(f) = next_frame(&mut buf, 1000).unwrap() {
                    out.push(f);
                }
            }
            assert_eq!(out.len(), 3, "cut at {cut}");
            assert_eq!(out[0].command, "open");
            assert_eq!((out[1].txnr, out[1].data.as_ref()), (2, &b"<13>a"[..]));
            assert_eq!((out[2].command.as_str(), out[2].data.len()), ("close", 0));
        }
        assert_eq!(encode(2, "rsp", b"200 OK"), b"2 rsp 6 200 OK\n");
    }

    #[test]
    fn malformed_frames() {
        for bad in [&b"x syslog 1 a\n"[..], b"1 sys1og 1 a\n", b"1 syslog 2 ab!", b"1 syslog 99999 x", b"1 syslog\n"] {
            let mut buf = BytesMut::from(bad);
            assert!(next_frame(&mut buf, 1000).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
