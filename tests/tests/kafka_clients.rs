//! librdkafka (the `rdkafka` crate) against a real node process.

use backwaters_tests::TestNode;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::TopicPartitionList;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap()
}

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let r = admin(bootstrap).create_topics([&t], &opts()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "tests")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap()
}

/// Reads `expected` records from every partition of `topic` from offset 0.
pub fn read_all(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> Vec<(i32, i64, Vec<u8>)> {
    let c = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while out.len() < expected && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(500)) {
            let m = m.unwrap();
            out.push((m.partition(), m.offset(), m.payload().unwrap_or_default().to_vec()));
        }
    }
    // Nothing beyond what was expected shows up either.
    let extra = c.poll(Duration::from_millis(800));
    assert!(extra.is_none(), "more records than produced");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_100k_records_read_back_in_order() {
    let node = TestNode::start();
    create_topic(&node.kafka, "events", 6, &[]).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &node.kafka)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    const N: usize = 100_000;
    let mut pending = Vec::with_capacity(N);
    for i in 0..N {
        let key = format!("host-{}", i % 97);
        let value = i.to_string();
        let f = producer.send_result(FutureRecord::to("events").key(&key).payload(&value)).map_err(|(e, _)| e).unwrap();
        pending.push(f);
    }
    let mut acked = HashMap::new();
    for (i, f) in pending.into_iter().enumerate() {
        let d = f.await.unwrap().unwrap_or_else(|(e, _)| panic!("record {i} failed: {e}"));
        acked.insert(i, (d.partition, d.offset));
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let records = read_all(&node.kafka, "events", 6, N);
    assert_eq!(records.len(), N, "every acknowledged record is read back");
    let mut last_per_partition: HashMap<i32, (i64, usize)> = HashMap::new();
    let mut seen = vec![false; N];
    for (p, off, v) in records {
        let i: usize = String::from_utf8(v).unwrap().parse().unwrap();
        assert!(!seen[i], "record {i} read twice");
        seen[i] = true;
        assert_eq!(acked[&i], (p, off), "record {i} is where its acknowledgement said");
        if let Some((lo, li)) = last_per_partition.get(&p) {
            assert!(off > *lo && i > *li, "partition {p} out of order: {i}@{off} after {li}@{lo}");
        }
        last_per_partition.insert(p, (off, i));
    }
    assert_eq!(last_per_partition.len(), 6, "keys spread over all partitions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_describe_alter_grow_delete() {
    let node = TestNode::start();
    let a = admin(&node.kafka);
    create_topic(&node.kafka, "audit", 2, &[("retention.ms", "86400000")]).await;

    // Creating it again is TOPIC_ALREADY_EXISTS; a bad name is INVALID_TOPIC_EXCEPTION.
    let r = a.create_topics([&NewTopic::new("audit", 1, TopicReplication::Fixed(1))], &opts()).await.unwrap();
    assert_eq!(r[0].as_ref().unwrap_err().1, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists);
    let r = a.create_topics([&NewTopic::new("bad name!", 1, TopicReplication::Fixed(1))], &opts()).await.unwrap();
    assert_eq!(r[0].as_ref().unwrap_err().1, rdkafka::types::RDKafkaErrorCode::InvalidTopic);
    let r = a.create_topics([&NewTopic::new("x", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon")], &opts()).await.unwrap();
    assert_eq!(r[0].as_ref().unwrap_err().1, rdkafka::types::RDKafkaErrorCode::InvalidConfig);

    let d = a.describe_configs([&ResourceSpecifier::Topic("audit")], &opts()).await.unwrap();
    let cfg = d[0].as_ref().unwrap();
    let ret = cfg.get("retention.ms").unwrap();
    assert_eq!(ret.value.as_deref(), Some("86400000"));
    assert_eq!(ret.source, ConfigSource::DynamicTopic);
    assert_eq!(cfg.get("cleanup.policy").unwrap().source, ConfigSource::Default);

    let alter = AlterConfig::new(ResourceSpecifier::Topic("audit")).set("max.message.bytes", "2048");
    let r = a.alter_configs([&alter], &opts()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let d = a.describe_configs([&ResourceSpecifier::Topic("audit")], &opts()).await.unwrap();
    assert_eq!(d[0].as_ref().unwrap().get("max.message.bytes").unwrap().value.as_deref(), Some("2048"));

    let r = a.create_partitions([&NewPartitions::new("audit", 5)], &opts()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let c = consumer(&node.kafka);
    let md = c.fetch_metadata(Some("audit"), Duration::from_secs(5)).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);
    let r = a.create_partitions([&NewPartitions::new("audit", 3)], &opts()).await.unwrap();
    assert_eq!(r[0].as_ref().unwrap_err().1, rdkafka::types::RDKafkaErrorCode::InvalidPartitions);

    let broker = a.describe_configs([&ResourceSpecifier::Broker(1)], &opts()).await.unwrap();
    assert_eq!(broker[0].as_ref().unwrap().get("broker.rack").unwrap().value.as_deref(), Some("east"));

    let r = a.delete_topics(&["audit"], &opts()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let md = c.fetch_metadata(None, Duration::from_secs(5)).unwrap();
    assert!(md.topics().iter().all(|t| t.name() != "audit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_batch_is_message_too_large_and_others_still_work() {
    let node = TestNode::start();
    create_topic(&node.kafka, "small", 1, &[("max.message.bytes", "1000")]).await;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &node.kafka).set("message.max.bytes", "100000").set("linger.ms", "0").create().unwrap();
    let big = vec![b'x'; 5000];
    let r = producer.send(FutureRecord::<(), _>::to("small").payload(&big), Duration::from_secs(10)).await;
    let err = r.unwrap_err().0;
    assert_eq!(err.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge), "{err}");
    let ok = producer.send(FutureRecord::<(), _>::to("small").payload("fits"), Duration::from_secs(10)).await.unwrap();
    assert_eq!(ok.offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_earliest_latest_by_time_and_delete_records() {
    let node = TestNode::start();
    create_topic(&node.kafka, "ts", 1, &[]).await;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &node.kafka).set("linger.ms", "0").create().unwrap();
    // Recent timestamps: records older than retention.ms (7 days) would be removed.
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 60_000;
    for i in 0..10i64 {
        producer.send(FutureRecord::<(), _>::to("ts").payload("x").timestamp(base + i * 1000), Duration::from_secs(5)).await.unwrap();
    }
    let c = consumer(&node.kafka);
    assert_eq!(c.fetch_watermarks("ts", 0, Duration::from_secs(5)).unwrap(), (0, 10));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("ts", 0, rdkafka::Offset::Offset(base + 4_500)).unwrap();
    let found = c.offsets_for_times(tpl, Duration::from_secs(5)).unwrap();
    assert_eq!(found.elements()[0].offset(), rdkafka::Offset::Offset(5));

    let a = admin(&node.kafka);
    let mut del = TopicPartitionList::new();
    del.add_partition_offset("ts", 0, rdkafka::Offset::Offset(4)).unwrap();
    a.delete_records(&del, &opts()).await.unwrap();
    assert_eq!(c.fetch_watermarks("ts", 0, Duration::from_secs(5)).unwrap(), (4, 10));
    let records = read_all(&node.kafka, "ts", 1, 6);
    assert_eq!(records.iter().map(|r| r.1).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8, 9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips() {
    let node = TestNode::start();
    create_topic(&node.kafka, "codecs", 1, &[]).await;
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &node.kafka).set("compression.type", codec).set("linger.ms", "20").create().unwrap();
        let fs: Vec<_> = (0..50).map(|i| producer.send_result(FutureRecord::<(), _>::to("codecs").payload(&format!("{codec}-{i}"))).map_err(|(e, _)| e).unwrap()).collect();
        for f in fs {
            f.await.unwrap().unwrap();
        }
    }
    let records = read_all(&node.kafka, "codecs", 1, 250);
    let values: Vec<String> = records.into_iter().map(|r| String::from_utf8(r.2).unwrap()).collect();
    let expected: Vec<String> = codecs.iter().flat_map(|c| (0..50).map(move |i| format!("{c}-{i}"))).collect();
    assert_eq!(values, expected);
}
