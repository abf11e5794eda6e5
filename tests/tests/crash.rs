//! SIGKILL in the middle of an acks=all load: after a restart every acknowledged record is
//! there, and no record is there twice.

use backwaters_tests::TestNode;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOTAL: usize = 30_000;
const PARTITIONS: i32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_acks_all_load_loses_nothing_acknowledged() {
    let mut node = TestNode::start();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &node.kafka).create().unwrap();
    let r = admin.create_topics([&NewTopic::new("crash", PARTITIONS, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    assert!(r[0].is_ok());

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &node.kafka)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .create()
        .unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // Send at a steady pace so the kill lands mid-stream.
    let history: Arc<std::sync::Mutex<HashMap<usize, (i32, i64)>>> = Default::default();
    let mut failed = 0usize;
    for i in 0..TOTAL {
        let value = i.to_string();
        let key = format!("k{}", i % 11);
        let f = producer.send_result(FutureRecord::to("crash").key(&key).payload(&value)).map_err(|(e, _)| e).unwrap();
        let (acked2, history) = (acked.clone(), history.clone());
        tasks.push(tokio::spawn(async move {
            match f.await {
                Ok(Ok(d)) => {
                    acked2.fetch_add(1, Ordering::Relaxed);
                    history.lock().unwrap().insert(i, (d.partition, d.offset));
                    true
                }
                _ => false,
            }
        }));
        if i % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if i == TOTAL / 3 {
            // Kill once some records are acknowledged and many are in flight.
            let deadline = Instant::now() + Duration::from_secs(30);
            while acked.load(Ordering::Relaxed) < 2_000 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            node.kill();
            tokio::time::sleep(Duration::from_millis(300)).await;
            node.restart();
        }
    }
    for t in tasks {
        if !t.await.unwrap() {
            failed += 1;
        }
    }
    let history = history.lock().unwrap().clone();
    eprintln!("acknowledged {} of {TOTAL}, failed {failed}", history.len());
    assert!(history.len() > TOTAL / 2, "most records are acknowledged after the restart");

    // Read everything back.
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &node.kafka).set("group.id", "crash").set("enable.auto.commit", "false").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut total = 0i64;
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("crash", p, rdkafka::Offset::Beginning).unwrap();
        let (lo, hi) = c.fetch_watermarks("crash", p, Duration::from_secs(5)).unwrap();
        total += hi - lo;
    }
    c.assign(&tpl).unwrap();
    let mut seen: HashMap<usize, (i32, i64)> = HashMap::new();
    let mut duplicates = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (seen.len() + duplicates.len()) < total as usize && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(500)) {
            let m = m.unwrap();
            let i: usize = std::str::from_utf8(m.payload().unwrap()).unwrap().parse().unwrap();
            if seen.insert(i, (m.partition(), m.offset())).is_some() {
                duplicates.insert(i);
            }
        }
    }
    assert!(duplicates.is_empty(), "records stored twice: {:?}", duplicates.iter().take(10).collect::<Vec<_>>());
    let lost: Vec<_> = history.keys().filter(|i| !seen.contains_key(i)).take(10).collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
    for (i, at) in &history {
        assert_eq!(seen[i], *at, "record {i} moved from where it was acknowledged");
    }
}
