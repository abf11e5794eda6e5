//! Record batches from producers: header checks, CRC, full decoding (decompression
//! included) and reading transaction markers must return errors on bad input, never panic.
#![no_main]
use backwaters_proto::kafka::batch::{control_marker, decode_records, split_batches};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    if let Ok(batches) = split_batches(&bytes) {
        for (h, b) in batches {
            assert_eq!(h.total_bytes(), b.len());
            let _ = decode_records(&b);
            let _ = control_marker(&b);
        }
    }
    // The decoder on its own (the broker runs it on stored batches for gRPC and ListOffsets).
    let _ = decode_records(&bytes);
});
