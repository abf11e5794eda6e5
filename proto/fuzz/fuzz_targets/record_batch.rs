//! Record batches from producers: header checks, CRC, full decoding (decompression
//! included), reading transaction markers and compaction's record walk and rebuild (run on
//! stored producer batches) must return errors on bad input, never panic.
#![no_main]
use backwaters_proto::kafka::batch::{control_marker, decode_records, split_batches};
use backwaters_proto::kafka::compact::batch_records;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    if let Ok(batches) = split_batches(&bytes) {
        for (h, b) in batches {
            assert_eq!(h.total_bytes(), b.len());
            let _ = decode_records(&b);
            let _ = control_marker(&b);
            if let Ok(br) = batch_records(&b) {
                // Keep every other record; what comes out parses again with those records.
                let keep: Vec<bool> = (0..br.records.len()).map(|i| i % 2 == 0).collect();
                if let Ok(out) = br.rebuild(&b, &keep) {
                    let again = batch_records(&out).expect("a rebuilt batch parses");
                    assert_eq!(again.records.len(), keep.iter().filter(|k| **k).count());
                }
            }
        }
    }
    // The decoder on its own (the broker runs it on stored batches for gRPC and ListOffsets).
    let _ = decode_records(&bytes);
});
