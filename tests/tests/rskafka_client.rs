//! rskafka, a pure-Rust Kafka client with its own API versions and leader detection, against
//! a three-node cluster: create a topic and produce to it at once (rskafka keeps the metadata
//! of its first look, so a topic must have leaders when CreateTopics answers), every codec,
//! reads from the start and from inside a batch, list offsets, DeleteRecords, DeleteTopics.

use backwaters_tests::TestNode;
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;
use std::collections::BTreeMap;
use std::time::Duration;

/// rskafka's chrono comes without its clock.
fn now() -> rskafka::chrono::DateTime<rskafka::chrono::Utc> {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis() as i64;
    rskafka::chrono::DateTime::from_timestamp_millis(ms).expect("in range")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rskafka_creates_produces_reads_and_deletes() {
    let nodes = TestNode::start_cluster(3, "");
    let client = ClientBuilder::new(vec![nodes[1].kafka.clone()]).build().await.expect("rskafka connects");
    let controller = client.controller_client().expect("controller client");
    controller.create_topic("rsk", 2, 3, 10_000).await.expect("CreateTopics");
    // Listing topics fills rskafka's metadata cache, which its leader detection then keeps
    // using: the partitions must have leaders already.
    assert!(client.list_topics().await.expect("Metadata").iter().any(|t| t.name == "rsk"));
    let part = tokio::time::timeout(Duration::from_secs(20), client.partition_client("rsk", 0, UnknownTopicHandling::Error)).await.expect("leader known at once").expect("partition client");
    let batch = |tag: &str| -> Vec<Record> {
        (0..10).map(|i| Record { key: Some(format!("k{i}").into_bytes()), value: Some(format!("{tag}-{i}").into_bytes()), headers: BTreeMap::new(), timestamp: now() }).collect()
    };
    let codecs = [Compression::NoCompression, Compression::Gzip, Compression::Lz4, Compression::Snappy, Compression::Zstd];
    for (n, c) in codecs.into_iter().enumerate() {
        let offsets = part.produce(batch(&format!("{c:?}")), c).await.unwrap_or_else(|e| panic!("produce {c:?}: {e}"));
        assert_eq!(offsets, ((n as i64 * 10)..(n as i64 * 10 + 10)).collect::<Vec<_>>());
    }
    let (records, hw) = part.fetch_records(0, 1..10_000_000, 5_000).await.expect("fetch");
    assert_eq!(hw, 50);
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..50).collect::<Vec<_>>());
    assert_eq!(records[25].record.value.as_deref(), Some(&b"Lz4-5"[..]));
    // Inside a batch: the broker returns the whole batch, rskafka drops what precedes.
    let (records, _) = part.fetch_records(13, 1..10_000_000, 5_000).await.expect("fetch from 13");
    assert_eq!(records.first().map(|r| r.offset), Some(13));
    assert_eq!(part.get_offset(OffsetAt::Earliest).await.unwrap(), 0);
    assert_eq!(part.get_offset(OffsetAt::Latest).await.unwrap(), 50);
    part.delete_records(20, 10_000).await.expect("DeleteRecords");
    assert_eq!(part.get_offset(OffsetAt::Earliest).await.unwrap(), 20);
    assert!(part.fetch_records(0, 1..10_000_000, 1_000).await.is_err(), "below the log start: OFFSET_OUT_OF_RANGE");
    let (records, _) = part.fetch_records(20, 1..10_000_000, 5_000).await.expect("fetch from the new start");
    assert_eq!(records.first().map(|r| r.offset), Some(20));
    controller.delete_topic("rsk", 10_000).await.expect("DeleteTopics");
    let topics = client.list_topics().await.expect("Metadata");
    assert!(!topics.iter().any(|t| t.name == "rsk"), "{topics:?}");
}
