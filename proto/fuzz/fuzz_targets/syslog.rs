//! Syslog lines and streams come from any host on the network: the parser, the ECS
//! renderer, the RFC 6587 framer and the RELP framer must return errors, never panic or
//! buffer past their limits.
#![no_main]
use backwaters_proto::syslog::{ecs, framing, parse, relp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = i64::from_le_bytes(data.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8])) / 4;
    let parsed = parse::parse(data, now, &parse::Rfc3164Rules::default());
    let _ = ecs::to_json(data, &parsed, &ecs::Received::default());
    let mut buf = bytes::BytesMut::from(data);
    while let Ok(Some(f)) = framing::next_frame(&mut buf, 256) {
        assert!(f.len() <= 256);
    }
    assert!(buf.len() <= 256 + 12 || framing::next_frame(&mut buf, 256).is_err());
    let mut buf = bytes::BytesMut::from(data);
    while let Ok(Some(f)) = relp::next_frame(&mut buf, 256) {
        assert!(f.data.len() <= 256);
    }
});
