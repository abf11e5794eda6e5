//! Bytes off a Kafka connection: framing, request header, and every request body the
//! `kafka-protocol` crate knows. Nothing here may panic or allocate beyond the frame limit.
#![no_main]
use backwaters_proto::kafka::frame::{decode_frame, decode_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = bytes::BytesMut::from(data);
    // A small limit, so the fuzzer explores the refusal path too.
    while let Ok(Some(frame)) = decode_frame(&mut buf, 1 << 16) {
        let _ = decode_request(frame);
    }
});
