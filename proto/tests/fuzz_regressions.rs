//! Replays every input kept under `proto/regressions/<target>/` (inputs that once crashed a
//! fuzz target) through the same code the fuzz targets run.

use backwaters_proto::kafka::batch::{decode_records, split_batches};
use backwaters_proto::kafka::frame::{decode_frame, decode_request};
use std::path::Path;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions").join(target);
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().extension().is_none_or(|x| x != "md") {
            out.push(std::fs::read(e.path()).unwrap());
        }
    }
    out
}

#[test]
fn request_decoder_regressions() {
    for data in inputs("request_decoder") {
        let mut buf = bytes::BytesMut::from(&data[..]);
        while let Ok(Some(frame)) = decode_frame(&mut buf, 1 << 16) {
            let _ = decode_request(frame);
        }
    }
}

#[test]
fn record_batch_regressions() {
    for data in inputs("record_batch") {
        let b = bytes::Bytes::from(data);
        if let Ok(batches) = split_batches(&b) {
            for (_, x) in batches {
                let _ = decode_records(&x);
            }
        }
        let _ = decode_records(&b);
    }
}

#[test]
fn syslog_regressions() {
    use backwaters_proto::syslog::{ecs, framing, parse, relp};
    for data in inputs("syslog") {
        let parsed = parse::parse(&data, 0, &parse::Rfc3164Rules::default());
        let _ = ecs::to_json(&data, &parsed, &ecs::Received::default());
        let mut buf = bytes::BytesMut::from(&data[..]);
        while let Ok(Some(f)) = framing::next_frame(&mut buf, 256) {
            assert!(f.len() <= 256);
        }
        let mut buf = bytes::BytesMut::from(&data[..]);
        while let Ok(Some(f)) = relp::next_frame(&mut buf, 256) {
            assert!(f.data.len() <= 256);
        }
    }
}
