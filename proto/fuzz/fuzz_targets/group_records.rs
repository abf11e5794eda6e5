//! `__consumer_offsets` records are read back by every new coordinator; a damaged or foreign
//! record must be an error, never a panic or a huge allocation.
#![no_main]
use backwaters_proto::kafka::group_records::{decode_consumer_group_value, decode_group_value, decode_key, decode_offset_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_key(data);
    let _ = decode_offset_value(data);
    let _ = decode_group_value(data);
    let _ = decode_consumer_group_value(data);
    // Consumer-protocol subscriptions and assignments come from clients.
    let _ = backwaters_proto::kafka::consumer_protocol::subscription_topics(data);
    let _ = backwaters_proto::kafka::consumer_protocol::assignment_partitions(data);
});
