//! Log compaction through librdkafka on a three-node cluster: a compacted topic ends with the
//! latest record of each key (deleted keys gone), whatever codec its batches used; offsets
//! never move; keyless records are refused; every replica, one of them SIGKILLed during the
//! writes and restarted, converges to the same log; other clients read the result; and
//! producing and consuming go on as before afterwards.

use backwaters_proto::grpc::v1::{admin_client::AdminClient as GrpcAdmin, DescribeTopicRequest};
use backwaters_tests::{metric, TestNode};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TOPIC: &str = "inventory";
const PARTITIONS: i32 = 2;
const KEYS: usize = 40;
const ROUNDS: usize = 10;
/// Keys deleted with a tombstone after the last round.
const DELETED: usize = 5;

/// Every record of the topic from its log start: key -> [(value or None, partition, offset)].
fn read_all(bootstrap: &str) -> BTreeMap<String, Vec<(Option<String>, i32, i64)>> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", "compaction-reader").set("enable.auto.commit", "false").set("enable.partition.eof", "true").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, rdkafka::Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out: BTreeMap<String, Vec<(Option<String>, i32, i64)>> = BTreeMap::new();
    let mut eof = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while eof.len() < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "the topic was not read to its end");
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let key = String::from_utf8_lossy(m.key().expect("every record has a key")).into_owned();
                out.entry(key).or_default().push((m.payload().map(|v| String::from_utf8_lossy(v).into_owned()), m.partition(), m.offset()));
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    out
}

/// The nodes' log lines about this topic's compaction (printed when a wait runs out).
fn print_compaction_logs(nodes: &[TestNode]) {
    for (i, n) in nodes.iter().enumerate() {
        for l in n.log().lines().filter(|l| (l.contains("compact") || l.contains("horizon")) && l.contains(TOPIC)) {
            eprintln!("node{i}: {l}");
        }
    }
}

async fn send(producer: &FutureProducer, key: &str, value: Option<&str>) -> Result<(i32, i64), KafkaError> {
    let mut r = FutureRecord::<str, str>::to(TOPIC).key(key);
    if let Some(v) = value {
        r = r.payload(v);
    }
    producer.send(r, Duration::from_secs(30)).await.map(|d| (d.partition, d.offset)).map_err(|(e, _)| e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_the_latest_record_of_each_key() {
    let mut nodes = TestNode::start_cluster(3, "[limits]\nretention_check_ms = 200\n");
    let bootstrap = nodes.iter().map(|n| n.kafka.as_str()).collect::<Vec<_>>().join(",");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &bootstrap).create().unwrap();
    let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "100")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("delete.retention.ms", "0");
    let r = admin.create_topics([&topic], &AdminOptions::new()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");

    // Every key updated ROUNDS times, each round with another codec; then some deleted.
    // The last round (whose records survive) is gzip: every Python client reads that without
    // optional libraries.
    let codecs = ["snappy", "lz4", "zstd", "none", "gzip"];
    let mut written: BTreeMap<String, (i32, i64)> = BTreeMap::new();
    for round in 0..ROUNDS {
        if round == 3 {
            // One replica is down for most of the writes: it comes back to a leader whose
            // log may already be compacted, catches up, and compacts what it holds itself.
            nodes[2].kill();
        }
        let p: FutureProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).set("compression.type", codecs[round % codecs.len()]).set("enable.idempotence", "true").set("linger.ms", "5").create().unwrap();
        let sends: Vec<_> = (0..KEYS).map(|k| {
            let p = p.clone();
            async move { (k, send(&p, &format!("k{k}"), Some(&format!("k{k}-r{round}"))).await) }
        }).collect();
        for (k, r) in futures::future::join_all(sends).await {
            written.insert(format!("k{k}"), r.expect("acknowledged"));
        }
    }
    let p: FutureProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).set("linger.ms", "5").create().unwrap();
    for k in 0..DELETED {
        send(&p, &format!("k{k}"), None).await.expect("tombstone acknowledged");
    }
    // A record without a key cannot be compacted: refused, as Kafka refuses it.
    let keyless = p.send(FutureRecord::<str, str>::to(TOPIC).partition(0).payload("no key"), Duration::from_secs(30)).await;
    match keyless {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord), _)) => {}
        other => panic!("a keyless record on a compacted topic: {:?}", other.map_err(|(e, _)| e)),
    }

    nodes[2].start_again();
    // Compaction runs on every replica; readers end up seeing one record per live key.
    let want: BTreeMap<String, String> = (DELETED..KEYS).map(|k| (format!("k{k}"), format!("k{k}-r{}", ROUNDS - 1))).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let read = read_all(&bootstrap);
        let latest: BTreeMap<String, String> = read.iter().filter_map(|(k, v)| v.last().and_then(|(val, _, _)| val.clone()).map(|val| (k.clone(), val))).collect();
        assert_eq!(latest, want, "the latest value of a key was lost");
        let compacted = read.len() == want.len() && read.values().all(|v| v.len() == 1);
        if compacted {
            // Offsets never move: each survivor sits where its producer was told it went.
            for (k, v) in &read {
                assert_eq!((v[0].1, v[0].2), written[k], "{k} moved");
            }
            break;
        }
        let versions: usize = read.values().map(Vec::len).sum();
        if Instant::now() >= deadline {
            print_compaction_logs(&nodes);
        }
        assert!(Instant::now() < deadline, "not compacted: {versions} records of {} keys still there", read.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let removed: f64 = nodes.iter().map(|n| metric(&n.metrics, "backwaters_compaction_removed_records_total")).sum();
    assert!(removed >= ((ROUNDS - 1) * KEYS) as f64, "compaction metrics: {removed} removed");

    // Each replica compacted on its own; all of them end with the same bytes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut views: BTreeMap<i32, Vec<(i64, i64, u32)>> = BTreeMap::new();
        for n in &nodes {
            let mut c = GrpcAdmin::connect(format!("http://{}", n.grpc)).await.unwrap();
            for p in c.describe_topic(DescribeTopicRequest { name: TOPIC.into(), local_only: true }).await.unwrap().into_inner().partitions {
                views.entry(p.partition).or_default().push((p.high_watermark, p.log_start_offset, p.checksum));
            }
        }
        if views.len() == PARTITIONS as usize && views.values().all(|v| v.len() == 3 && v.iter().all(|x| *x == v[0])) {
            break;
        }
        if Instant::now() >= deadline {
            print_compaction_logs(&nodes);
        }
        assert!(Instant::now() < deadline, "replicas differ after compaction: {views:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Other clients read the compacted log too: Debian's kcat 1.7.1 (librdkafka 2.0.2) and
    // three Python client families (each its own record parser).
    if backwaters_tests::client_available("kcat", &["-V"]) {
        // Not the rdkafka crate's bundled librdkafka that `cargo test` puts on LD_LIBRARY_PATH.
        let out = std::process::Command::new("kcat").env_remove("LD_LIBRARY_PATH").args(["-C", "-b", &nodes[0].kafka, "-t", TOPIC, "-e", "-q", "-f", "%k=%s\n"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "kcat: {}", String::from_utf8_lossy(&out.stderr));
        let got: BTreeMap<String, String> = text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!((got, text.lines().count()), (want.clone(), want.len()), "kcat read the compacted topic");
    }
    let clients = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/clients"));
    if backwaters_tests::client_available("python3", &["-c", "import confluent_kafka, kafka, aiokafka"]) {
        let script = clients.join("compacted.py");
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(script).arg(&bootstrap).arg(TOPIC).args(want.iter().map(|(k, v)| format!("{k}={v}")));
        let out = backwaters_tests::output_within(&mut cmd, Duration::from_secs(180));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("{text}");
        assert!(out.status.success() && text.contains("read by all clients"), "python clients on the compacted topic:\n{text}");
    }

    if clients.join("node_modules/kafkajs").exists() {
        let mut cmd = std::process::Command::new("node");
        cmd.arg(clients.join("kafkajs_compacted.js")).arg(&bootstrap).arg(TOPIC).args(want.iter().map(|(k, v)| format!("{k}={v}")));
        let out = backwaters_tests::output_within(&mut cmd, Duration::from_secs(120));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("{text}");
        assert!(out.status.success() && text.contains("one per live key"), "kafkajs on the compacted topic:\n{text}");
    }

    // The topic goes on: new values, read back after the compacted part.
    send(&p, "k7", Some("k7-again")).await.expect("acknowledged after compaction");
    let read = read_all(&bootstrap);
    assert_eq!(read["k7"].last().unwrap().0.as_deref(), Some("k7-again"));
}
