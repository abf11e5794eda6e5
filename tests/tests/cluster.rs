//! A three-node cluster, one node per zone, as separate processes: a librdkafka idempotent
//! acks=all producer keeps writing while the leader of a partition is SIGKILLed; production
//! goes on after failover, the node comes back and catches up, every acknowledged record is
//! read back exactly once, and every replica of every partition holds the same log
//! (checksums through the admin gRPC API).

use backwaters_proto::grpc::v1::{admin_client::AdminClient, CreateTopicRequest, DescribeTopicRequest};
use backwaters_tests::TestNode;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOPIC: &str = "events";
const PARTITIONS: i32 = 3;

async fn describe(grpc: &str) -> Vec<backwaters_proto::grpc::v1::PartitionInfo> {
    let mut c = AdminClient::connect(format!("http://{grpc}")).await.expect("connect admin");
    c.describe_topic(DescribeTopicRequest { name: TOPIC.into() }).await.expect("describe").into_inner().partitions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_loses_nothing_and_replicas_converge() {
    let mut nodes = TestNode::start_cluster(3, "");
    let bootstrap = nodes.iter().map(|n| n.kafka.clone()).collect::<Vec<_>>().join(",");
    let mut admin = AdminClient::connect(format!("http://{}", nodes[1].grpc)).await.expect("connect");
    // Created through a node that may not be the controller: forwarded.
    let mut created = false;
    for _ in 0..100 {
        match admin.create_topic(CreateTopicRequest { name: TOPIC.into(), partitions: PARTITIONS, replication_factor: 3, configs: vec![] }).await {
            Ok(_) => {
                created = true;
                break;
            }
            Err(e) if e.code() == tonic::Code::Unavailable => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("create topic: {e}"),
        }
    }
    assert!(created, "topic not created within 20 s");
    // Replicas of each partition sit in three zones.
    for p in describe(&nodes[0].grpc).await {
        let mut zones = p.replica_zones.clone();
        zones.sort();
        zones.dedup();
        assert_eq!(zones.len(), 3, "partition {} replicas {:?} in zones {:?}", p.partition, p.replicas, p.replica_zones);
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .expect("producer");
    let acked: Arc<Mutex<Vec<(i32, i64, String)>>> = Arc::default();
    let total = 3000usize;
    let mut sends = Vec::new();
    let started = Instant::now();
    let mut killed: Option<usize> = None;
    let mut first_ack_after_kill: Option<Duration> = None;
    let mut kill_at = None;
    for i in 0..total {
        let value = format!("record-{i:06}");
        let key = format!("k{}", i % 17);
        let p = producer.clone();
        let acked = acked.clone();
        sends.push(tokio::spawn(async move {
            let r = p.send(FutureRecord::to(TOPIC).key(&key).payload(&value), Duration::from_secs(60)).await;
            match r {
                Ok(d) => {
                    acked.lock().unwrap().push((d.partition, d.offset, value));
                    Ok(Instant::now())
                }
                Err((e, _)) => Err(format!("{value}: {e}")),
            }
        }));
        if i == total / 3 {
            // Wait for the first third, then SIGKILL the leader of partition 0.
            for s in sends.drain(..) {
                s.await.unwrap().expect("acknowledged before the kill");
            }
            let leader = describe(&nodes[0].grpc).await.iter().find(|p| p.partition == 0).unwrap().leader;
            let idx = nodes.iter().position(|n| n.id == leader).expect("leader is a node");
            nodes[idx].kill();
            killed = Some(idx);
            kill_at = Some(Instant::now());
            eprintln!("killed node {leader} (leader of partition 0) after {:?}", started.elapsed());
        }
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut errors = Vec::new();
    for s in sends {
        match s.await.unwrap() {
            Ok(t) => {
                if let Some(k) = kill_at {
                    let d = t.saturating_duration_since(k);
                    first_ack_after_kill = Some(first_ack_after_kill.map_or(d, |f: Duration| f.min(d)));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    assert!(errors.is_empty(), "{} sends failed, first: {:?}", errors.len(), errors.first());
    eprintln!("all {total} acknowledged; first ack after the kill {:?}", first_ack_after_kill);

    // The killed node comes back and catches up.
    let idx = killed.expect("a node was killed");
    nodes[idx].start_again();

    // Every acknowledged record is read back exactly once, at the offset it was acked with.
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), total);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "cluster-check")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, rdkafka::Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut seen: HashMap<String, Vec<(i32, i64)>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut read = 0usize;
    while read < total && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            seen.entry(v).or_default().push((m.partition(), m.offset()));
            read += 1;
        }
    }
    let mut lost = 0;
    for (p, o, v) in &acked {
        match seen.get(v) {
            None => lost += 1,
            Some(at) => {
                assert_eq!(at.len(), 1, "{v} read {} times: {at:?}", at.len());
                assert_eq!(at[0], (*p, *o), "{v} acked at {p}/{o}, read at {:?}", at[0]);
            }
        }
    }
    assert_eq!(lost, 0, "{lost} acknowledged records never read");
    assert_eq!(seen.len(), total, "records read that were never acknowledged");

    // Every replica converges to the same log: equal high watermarks and checksums.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut views: BTreeMap<i32, Vec<(i32, i64, u32)>> = BTreeMap::new();
        for n in &nodes {
            for p in describe(&n.grpc).await {
                if p.local {
                    views.entry(p.partition).or_default().push((n.id, p.high_watermark, p.checksum));
                }
            }
        }
        let converged = views.len() == PARTITIONS as usize
            && views.values().all(|v| v.len() == 3 && v.iter().all(|x| x.1 == v[0].1 && x.2 == v[0].2));
        if converged {
            eprintln!("replicas converged: {views:?}");
            break;
        }
        assert!(Instant::now() < deadline, "replicas did not converge: {views:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
