//! A three-node cluster, one node per zone, as separate processes: a librdkafka idempotent
//! acks=all producer keeps writing while the leader of a partition is SIGKILLed; production
//! goes on after failover, the node comes back and catches up, every acknowledged record is
//! read back exactly once, and every replica of every partition holds the same log
//! (checksums through the admin gRPC API), and leadership returns to the preferred replicas.
//! Six nodes over three zones lose the whole East zone:
//! every partition stays writable and readable, and a consumer group resumes at its commits
//! (wherever its coordinator moved).

use backwaters_proto::grpc::v1::{admin_client::AdminClient, CreateTopicRequest, DescribeTopicRequest};
use backwaters_tests::{describe_local as describe_topic, metric, TestNode};
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
    describe_topic(grpc, TOPIC).await
}

/// Creates `topic` through the node at `grpc` (forwarded to the controller), retrying while
/// the cluster has no controller yet.
async fn create_topic(grpc: &str, topic: &str, partitions: i32) {
    let mut admin = AdminClient::connect(format!("http://{grpc}")).await.expect("connect");
    for _ in 0..100 {
        match admin.create_topic(CreateTopicRequest { name: topic.into(), partitions, replication_factor: 3, configs: vec![] }).await {
            Ok(_) => return,
            Err(e) if e.code() == tonic::Code::Unavailable => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("create topic: {e}"),
        }
    }
    panic!("topic {topic} not created within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_loses_nothing_and_replicas_converge() {
    let mut nodes = TestNode::start_cluster(3, "");
    let bootstrap = nodes.iter().map(|n| n.kafka.clone()).collect::<Vec<_>>().join(",");
    // Created through a node that may not be the controller: forwarded.
    create_topic(&nodes[1].grpc, TOPIC, PARTITIONS).await;
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
                    Ok((d.partition, Instant::now()))
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
            Ok((partition, t)) => {
                if let (Some(k), 0) = (kill_at, partition) {
                    let d = t.saturating_duration_since(k);
                    first_ack_after_kill = Some(first_ack_after_kill.map_or(d, |f: Duration| f.min(d)));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    assert!(errors.is_empty(), "{} sends failed, first: {:?}", errors.len(), errors.first());
    eprintln!("all {total} acknowledged; first ack on partition 0 after its leader's SIGKILL: {:?}", first_ack_after_kill);

    // Any node reports the whole cluster: the killed node is not alive, the others are, and
    // they agree on the controller.
    let idx = killed.expect("a node was killed");
    let status = |grpc: String| async move {
        let mut c = AdminClient::connect(format!("http://{grpc}")).await.expect("connect");
        c.cluster_status(backwaters_proto::grpc::v1::ClusterStatusRequest { local_only: false }).await.expect("status").into_inner()
    };
    let survivor = nodes[(idx + 1) % 3].grpc.clone();
    let s = status(survivor.clone()).await;
    let alive: Vec<(i32, bool)> = s.nodes.iter().map(|n| (n.node_id, n.alive)).collect();
    assert_eq!(alive.len(), 3, "{alive:?}");
    assert!(alive.iter().all(|(id, up)| *up == (*id != nodes[idx].id)), "liveness {alive:?} with node {} killed", nodes[idx].id);
    assert!(s.nodes.iter().filter(|n| n.alive).all(|n| !n.actors.is_empty()), "alive nodes list their actors");
    let other = status(nodes[(idx + 2) % 3].grpc.clone()).await;
    assert_eq!(s.controller_id, other.controller_id, "nodes disagree on the controller");
    assert!(s.controller_id > 0 && s.controller_id != nodes[idx].id, "controller {} (node {} is dead)", s.controller_id, nodes[idx].id);

    // The killed node comes back and catches up.
    nodes[idx].start_again();
    let s = status(survivor).await;
    assert!(s.nodes.iter().all(|n| n.alive), "after the restart: {:?}", s.nodes.iter().map(|n| (n.node_id, n.alive)).collect::<Vec<_>>());

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

    // Any node reports each replica as its leader sees it: all in sync, none behind.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = AdminClient::connect(format!("http://{}", nodes[idx].grpc)).await.expect("connect");
        let parts = c.describe_topic(DescribeTopicRequest { name: TOPIC.into(), local_only: false }).await.expect("describe").into_inner().partitions;
        let states: Vec<(i32, i32, i64, bool)> = parts.iter().flat_map(|p| p.replica_states.iter().map(move |r| (p.partition, r.node_id, r.lag, r.in_sync))).collect();
        if states.len() == 3 * PARTITIONS as usize && states.iter().all(|s| s.2 == 0 && s.3) {
            break;
        }
        assert!(Instant::now() < deadline, "replica states (partition, node, lag, in sync): {states:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Leadership goes back to the preferred replicas (placement spread those over the nodes),
    // including the partition the killed node led.
    let back = Instant::now();
    let deadline = back + Duration::from_secs(60);
    loop {
        let parts = describe(&nodes[0].grpc).await;
        if parts.iter().all(|p| Some(&p.leader) == p.replicas.first()) {
            eprintln!("leaders back on their preferred replicas {:?} after convergence", back.elapsed());
            break;
        }
        let now: Vec<(i32, i32, Option<&i32>)> = parts.iter().map(|p| (p.partition, p.leader, p.replicas.first())).collect();
        assert!(Instant::now() < deadline, "leaders did not return to the preferred replicas: (partition, leader, preferred) {now:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Kafka's group-to-partition hash (Java's String.hashCode, sign bit cleared).
fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(u as i32)) & 0x7fff_ffff
}

/// Sends `values` to `partition` with acks=all; every one must be acknowledged.
async fn produce_all(producer: &FutureProducer, topic: &str, partition: i32, values: Vec<String>) {
    let sends: Vec<_> = values
        .into_iter()
        .map(|v| {
            let p = producer.clone();
            let topic = topic.to_string();
            tokio::spawn(async move { p.send(FutureRecord::<(), _>::to(&topic).partition(partition).payload(&v), Duration::from_secs(60)).await.map_err(|(e, _)| format!("{v}: {e}")) })
        })
        .collect();
    for s in sends {
        s.await.unwrap().expect("acknowledged");
    }
}

/// Reads records with a group member of `group` until `want` arrived (or a deadline), commits
/// them, and returns the values.
fn read_as_group(bootstrap: &str, group: &str, topic: &str, want: usize) -> Vec<String> {
    use rdkafka::consumer::CommitMode;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    // Anything more would be read twice: wait a moment for strays.
    let quiet = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    let mut last = None;
    for _ in 0..50 {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => return got,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("group {group} could not commit after reading {} records: {last:?}", got.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_east_zone_keeps_every_partition_writable() {
    const ZONAL: &str = "zonal";
    const PARTS: i32 = 6;
    let mut nodes = TestNode::start_cluster(6, "");
    let bootstrap = nodes.iter().map(|n| n.kafka.clone()).collect::<Vec<_>>().join(",");
    create_topic(&nodes[2].grpc, ZONAL, PARTS).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .expect("producer");
    for p in 0..PARTS {
        produce_all(&producer, ZONAL, p, (0..50).map(|i| format!("before-{p}-{i}")).collect()).await;
    }
    // A group whose coordinator is in the East zone reads and commits everything so far (a
    // first group creates __consumer_offsets; the second is named to land on an East leader).
    let b = bootstrap.clone();
    tokio::task::spawn_blocking(move || read_as_group(&b, "zonal-warmup", ZONAL, 300)).await.unwrap();
    let offsets = describe_topic(&nodes[1].grpc, "__consumer_offsets").await;
    let group = (0..1000)
        .map(|k| format!("zonal-readers-{k}"))
        .find(|g| {
            let p = java_hash(g) % offsets.len() as i32;
            offsets.iter().any(|i| i.partition == p && (i.leader == 1 || i.leader == 4))
        })
        .expect("some group lands on an East coordinator");
    eprintln!("group {group} has its coordinator in the East zone");
    let (b, g) = (bootstrap.clone(), group.clone());
    let first = tokio::task::spawn_blocking(move || read_as_group(&b, &g, ZONAL, 300)).await.unwrap();
    assert_eq!(first.len(), 300, "the group read {} of 300 before the zone loss", first.len());

    // The East zone (nodes 1 and 4: zones go east, central, west, east, ...) goes away.
    let east: Vec<i32> = vec![1, 4];
    for n in nodes.iter_mut().filter(|n| east.contains(&n.id)) {
        n.kill();
    }
    let killed_at = Instant::now();
    let survivor = nodes[1].grpc.clone();
    // Every partition is writable (acks=all) and elects a leader outside the East zone.
    for p in 0..PARTS {
        produce_all(&producer, ZONAL, p, (0..50).map(|i| format!("after-{p}-{i}")).collect()).await;
    }
    eprintln!("every partition acknowledged acks=all writes {:?} after the East zone died", killed_at.elapsed());
    // Nodes without a replica learn new leaders from the metadata log, a moment later.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stale: Vec<(i32, i32)> = describe_topic(&survivor, ZONAL).await.iter().filter(|p| east.contains(&p.leader) || p.leader < 0).map(|p| (p.partition, p.leader)).collect();
        if stale.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "partitions still led by East nodes (partition, leader): {stale:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The group resumes at its commits: exactly the new records, none of the old.
    let (b, g) = (bootstrap.clone(), group.clone());
    let second = tokio::task::spawn_blocking(move || read_as_group(&b, &g, ZONAL, 300)).await;
    if second.is_err() {
        for n in nodes.iter().filter(|n| !east.contains(&n.id)) {
            let log = n.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- node {} log, last lines:\n{}", n.id, tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
    }
    let second = second.unwrap();
    let mut second_sorted = second.clone();
    second_sorted.sort();
    second_sorted.dedup();
    assert_eq!(second_sorted.len(), second.len(), "records read twice after the zone loss");
    assert!(second.iter().all(|v| v.starts_with("after-")), "the group re-read records it had committed: {:?}", second.iter().find(|v| v.starts_with("before-")));
    assert_eq!(second.len(), 300, "the group read {} of the 300 new records", second.len());
    // And everything is readable from the start.
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &bootstrap).set("group.id", "zonal-audit").create().expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTS {
        tpl.add_partition_offset(ZONAL, p, rdkafka::Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut all = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while all.len() < 600 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            all.insert(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    assert_eq!(all.len(), 600, "read back {} of 600 records with the East zone down", all.len());

    // An East node that lost its disk rejoins as an empty replica and is refilled: its
    // replicas end with the same high watermark and checksum as the others'.
    nodes[0].wipe_data();
    nodes[0].start_again();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut views: BTreeMap<i32, Vec<(i32, i64, u32)>> = BTreeMap::new();
        let mut mine = Vec::new();
        for n in nodes.iter().filter(|n| n.id != 4) {
            // The refilled node knows the topic once its metadata log is back.
            let mut c = AdminClient::connect(format!("http://{}", n.grpc)).await.expect("connect admin");
            let parts = c.describe_topic(DescribeTopicRequest { name: ZONAL.into(), local_only: true }).await.map(|r| r.into_inner().partitions).unwrap_or_default();
            for p in parts {
                if p.local {
                    views.entry(p.partition).or_default().push((n.id, p.high_watermark, p.checksum));
                }
                if n.id == 1 && p.replicas.contains(&1) {
                    mine.push(p.partition);
                }
            }
        }
        let refilled = !mine.is_empty()
            && mine.iter().all(|p| views.get(p).is_some_and(|v| v.iter().any(|x| x.0 == 1) && v.iter().all(|x| x.1 == 100 && x.2 == v[0].2)));
        if refilled {
            eprintln!("node 1 refilled from empty: {views:?}");
            break;
        }
        assert!(Instant::now() < deadline, "node 1 not refilled (partitions {mine:?}): {views:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn syslog_on_one_node_reaches_leaders_on_others() {
    use std::io::Write;
    const LOGS: &str = "logs.cluster";
    let port = backwaters_tests::free_port();
    let ingest = format!("[[nodes.ingest]]\nkind = \"syslog-tcp\"\nlisten = \"127.0.0.1:{port}\"\ntopic = \"{LOGS}\"\n");
    let nodes = TestNode::start_cluster_full(3, "", &ingest);
    let bootstrap = nodes.iter().map(|n| n.kafka.clone()).collect::<Vec<_>>().join(",");
    // Three partitions: their preferred leaders are the three nodes.
    create_topic(&nodes[0].grpc, LOGS, 3).await;
    // Wait for the preferred leaders (one per node; leadership moves back to them if an
    // early election went elsewhere).
    let mut leaders: BTreeMap<i32, i32> = BTreeMap::new();
    for _ in 0..300 {
        let parts = describe_topic(&nodes[0].grpc, LOGS).await;
        leaders = parts.iter().map(|p| (p.partition, p.leader)).collect();
        if parts.iter().all(|p| Some(&p.leader) == p.replicas.first()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("leaders {leaders:?}; the listener is on node 1");
    let total = 300;
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the syslog listener");
    for chunk in 0..20 {
        let mut lines = String::new();
        for i in 0..total / 20 {
            // Keyed by host (the listener's default): nine hosts spread over the partitions.
            let n = chunk * (total / 20) + i;
            lines += &format!("<13>1 2026-11-28T10:00:00Z host{} app - - - line {n}\n", n % 9);
        }
        sock.write_all(lines.as_bytes()).expect("send");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(sock);
    let b = bootstrap.clone();
    let got = tokio::task::spawn_blocking(move || backwaters_tests::read_topic(&b, LOGS, total, Duration::from_secs(60))).await.unwrap();
    let mut per_partition: BTreeMap<i32, usize> = BTreeMap::new();
    let mut lines = std::collections::BTreeSet::new();
    for (p, _, v) in &got {
        *per_partition.entry(*p).or_default() += 1;
        let n = v.split("line ").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_string();
        lines.insert(n);
    }
    eprintln!("records per partition {per_partition:?}");
    assert_eq!(got.len(), total, "read {} of {total} syslog lines", got.len());
    assert_eq!(lines.len(), total, "lines lost or duplicated");
    assert!(per_partition.keys().any(|p| leaders.get(p) != Some(&1)), "no line reached a partition led by another node: {per_partition:?}, leaders {leaders:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumers_read_from_a_replica_in_their_zone() {
    const TOPIC: &str = "zoned";
    let nodes = TestNode::start_cluster(3, "");
    let bootstrap = nodes.iter().map(|n| n.kafka.clone()).collect::<Vec<_>>().join(",");
    create_topic(&nodes[0].grpc, TOPIC, 1).await;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).set("acks", "all").create().expect("producer");
    let total = 200;
    produce_all(&producer, TOPIC, 0, (0..total).map(|i| format!("zoned-{i:04}-{}", "x".repeat(200))).collect()).await;
    let p = describe_topic(&nodes[0].grpc, TOPIC).await.remove(0);
    let follower = *p.replicas.iter().find(|r| **r != p.leader).expect("a follower");
    let zone = ["east", "central", "west"][(follower as usize - 1) % 3];
    let at = |id: i32| nodes.iter().find(|n| n.id == id).unwrap().metrics.clone();
    let before = (metric(&at(p.leader), "backwaters_fetch_bytes_total"), metric(&at(follower), "backwaters_fetch_bytes_total"));
    // A consumer in the follower's zone.
    let b = bootstrap.clone();
    let got = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &b).set("group.id", "zoned-reader").set("client.rack", zone).set("enable.auto.commit", "false").create().expect("consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, rdkafka::Offset::Beginning).unwrap();
        c.assign(&tpl).expect("assign");
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < total && Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                got.push((m.offset(), String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string()));
            }
        }
        got
    })
    .await
    .unwrap();
    assert_eq!(got.len(), total, "read {} of {total}", got.len());
    assert!(got.iter().enumerate().all(|(i, (o, _))| *o == i as i64), "offsets skipped or repeated");
    let values: std::collections::BTreeSet<&String> = got.iter().map(|(_, v)| v).collect();
    assert_eq!(values.len(), total, "records read twice or lost");
    let after = (metric(&at(p.leader), "backwaters_fetch_bytes_total"), metric(&at(follower), "backwaters_fetch_bytes_total"));
    let payload = (total * 200) as f64;
    eprintln!("leader {} served {} bytes, follower {follower} ({zone}) served {}", p.leader, after.0 - before.0, after.1 - before.1);
    assert!(after.1 - before.1 >= payload, "the follower in the consumer's zone served {} bytes, want >= {payload}", after.1 - before.1);
    assert!(after.0 - before.0 < payload, "the leader served the records itself ({} bytes)", after.0 - before.0);
}

/// Runs one shell command against `grpc` and returns its output.
fn shell(grpc: &str, command: &str) -> String {
    let out = backwaters_tests::output_within(std::process::Command::new(backwaters_tests::binary()).args(["shell", "--bootstrap", grpc, "-c", command]), Duration::from_secs(90));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "shell {command:?} failed: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_and_transfer_move_leadership() {
    const T: &str = "drained";
    let nodes = TestNode::start_cluster(3, "[limits]\nleader_rebalance_ms = 1000\n");
    create_topic(&nodes[0].grpc, T, 6).await;
    let leaders = |parts: &[backwaters_proto::grpc::v1::PartitionInfo]| parts.iter().map(|p| p.leader).collect::<Vec<_>>();
    // Preferred leaders first (one per node, twice).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !describe_topic(&nodes[0].grpc, T).await.iter().all(|p| Some(&p.leader) == p.replicas.first()) {
        if Instant::now() > deadline {
            for n in &nodes {
                let log = n.log();
                let lines: Vec<&str> = log.lines().filter(|l| l.contains("leader") && l.contains("drained")).collect();
                eprintln!("--- node {}:\n{}", n.id, lines.join("\n"));
            }
        }
        assert!(Instant::now() < deadline, "preferred leaders never elected: {:?}", leaders(&describe_topic(&nodes[0].grpc, T).await));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Drain node 1 through the shell (asked through node 2): it leads nothing afterwards.
    let g = nodes[1].grpc.clone();
    let out = tokio::task::spawn_blocking(move || shell(&g, "node drain 1")).await.unwrap();
    assert!(out.contains("node 1 is drained"), "{out}");
    let parts = describe_topic(&nodes[2].grpc, T).await;
    assert!(parts.iter().all(|p| p.leader != 1 && p.leader > 0), "node 1 still leads: {:?}", leaders(&parts));
    // It stays drained (the rebalancer gives it nothing back) for a few rebalance periods.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let parts = describe_topic(&nodes[2].grpc, T).await;
    assert!(parts.iter().all(|p| p.leader != 1), "leadership went back to a drained node: {:?}", leaders(&parts));
    // A transfer to the drained node is refused; to another replica it works.
    let mut admin = AdminClient::connect(format!("http://{}", nodes[2].grpc)).await.unwrap();
    let e = admin.transfer_leadership(backwaters_proto::grpc::v1::TransferLeadershipRequest { topic: T.into(), partition: 0, to_node: 1 }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
    let p0 = describe_topic(&nodes[2].grpc, T).await.remove(0);
    let other = *p0.replicas.iter().find(|r| **r != 1 && **r != p0.leader).unwrap();
    let g = nodes[2].grpc.clone();
    let out = tokio::task::spawn_blocking(move || shell(&g, &format!("topic transfer-leader {T} 0 --to {other}"))).await.unwrap();
    assert!(out.contains(&format!("-> {other}")), "{out}");
    // Undo: leadership returns to the preferred replicas, node 1 included.
    let g = nodes[0].grpc.clone();
    tokio::task::spawn_blocking(move || shell(&g, "node drain 1 --undo")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let parts = describe_topic(&nodes[0].grpc, T).await;
        if parts.iter().all(|p| Some(&p.leader) == p.replicas.first()) {
            break;
        }
        assert!(Instant::now() < deadline, "leadership did not return after the undo: {:?}", leaders(&parts));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Node id -> ("has an actor-cluster session with it", liveness recorded in the metadata
/// log), as node `grpc` reports.
async fn cluster_view(grpc: &str) -> BTreeMap<i32, (bool, String)> {
    let Ok(mut c) = AdminClient::connect(format!("http://{grpc}")).await else { return BTreeMap::new() };
    let Ok(r) = c.cluster_status(backwaters_proto::grpc::v1::ClusterStatusRequest { local_only: false }).await else { return BTreeMap::new() };
    r.into_inner().nodes.into_iter().map(|n| (n.node_id, (n.in_actor_cluster, n.recorded))).collect()
}

async fn sessions(grpc: &str) -> BTreeMap<i32, bool> {
    cluster_view(grpc).await.into_iter().map(|(id, v)| (id, v.0)).collect()
}

/// Waits until node `grpc`'s copy of the metadata log records node `id` as `want`.
async fn wait_for_recorded(grpc: &str, id: i32, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = cluster_view(grpc).await;
        if got.get(&id).is_some_and(|v| v.1 == want) {
            return;
        }
        assert!(Instant::now() < deadline, "liveness of node {id} as {grpc} has it recorded: {got:?}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for_sessions(grpc: &str, want: &[(i32, bool)], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = sessions(grpc).await;
        if want.iter().all(|(id, s)| got.get(id) == Some(s)) {
            return;
        }
        assert!(Instant::now() < deadline, "sessions as {grpc} sees them: {got:?}, wanted {want:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// This test process as a member of the actor cluster (its own ractor_cluster node server).
async fn join_actor_cluster(secret: &str, node: &str) -> ractor::ActorRef<ractor_cluster::NodeServerMessage> {
    let server = ractor_cluster::NodeServer::new(0, secret.into(), format!("test-{secret}"), "127.0.0.1".into(), None, None);
    let (server, _) = ractor::Actor::spawn(None, server, ()).await.expect("node server");
    ractor_cluster::client_connect(&server, node).await.expect("connect");
    server
}

/// The node processes form one actor cluster: sessions need the shared secret, node agents
/// meet in process groups and answer remote calls, and when a node dies the others hear it
/// from ractor_cluster (its agent leaves their groups) and see it again after a restart; the
/// controller records both in the metadata log, so every node's copy knows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_form_an_actor_cluster_and_notice_a_dead_peer() {
    use backwaters_actors::node::membership::{node_group, AgentMsg};
    let mut nodes = tokio::task::spawn_blocking(|| TestNode::start_cluster(3, "")).await.unwrap();
    let all = [(1, true), (2, true), (3, true)];
    for n in &nodes {
        wait_for_sessions(&n.grpc, &all, Duration::from_secs(30)).await;
    }
    let status = shell(&nodes[0].grpc, "cluster status");
    assert!(status.contains("SESSION") && !status.contains(" no "), "{status}");

    // A member with the wrong secret is refused: node 1's agent never shows up here.
    let _wrong = join_actor_cluster("wrong-secret", &nodes[0].actors).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(ractor::pg::get_members(&node_group(1)).is_empty(), "a session with the wrong secret was accepted");

    // With the cluster's secret, node 1's agent joins our groups and answers a remote call.
    let _right = join_actor_cluster("test-secret", &nodes[0].actors).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let agent = loop {
        if let Some(cell) = ractor::pg::get_members(&node_group(1)).into_iter().next() {
            break ractor::ActorRef::<AgentMsg>::from(cell);
        }
        assert!(Instant::now() < deadline, "node 1's agent never joined this process's groups");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let about: serde_json::Value = serde_json::from_str(&ractor::call_t!(agent, AgentMsg::Describe, 5000).expect("remote call")).unwrap();
    assert_eq!((about["node_id"].as_i64(), about["zone"].as_str()), (Some(1), Some("east")), "{about}");

    // The controller records every node up in the metadata log; each node's copy has it.
    for id in 1..=3 {
        wait_for_recorded(&nodes[1].grpc, id, "up", Duration::from_secs(20)).await;
    }

    // Node 3 dies: nodes 1 and 2 notice, and the metadata log records it down; it comes
    // back: they see it again, and the record says up.
    nodes[2].kill();
    let t = Instant::now();
    wait_for_sessions(&nodes[0].grpc, &[(3, false)], Duration::from_secs(15)).await;
    wait_for_sessions(&nodes[1].grpc, &[(3, false)], Duration::from_secs(15)).await;
    eprintln!("nodes 1 and 2 noticed node 3's death after {:?}", t.elapsed());
    wait_for_recorded(&nodes[1].grpc, 3, "down", Duration::from_secs(20)).await;
    wait_for_recorded(&nodes[0].grpc, 3, "down", Duration::from_secs(20)).await;
    eprintln!("node 3 recorded down in the metadata log after {:?}", t.elapsed());
    tokio::task::block_in_place(|| nodes[2].start_again());
    for n in &nodes {
        wait_for_sessions(&n.grpc, &all, Duration::from_secs(30)).await;
    }
    wait_for_recorded(&nodes[2].grpc, 3, "up", Duration::from_secs(20)).await;
}

/// A replica refilled from a snapshot (its leader's log start moved past everything it
/// could send) gets the idempotent producers' state with the snapshot: once it leads, the
/// same producer goes on writing. Without that state it would answer the producer's next
/// batch out of order, which librdkafka treats as fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleted_records_stay_deleted_and_a_replica_refilled_from_a_snapshot_keeps_producer_state() {
    const T: &str = "snap";
    let mut nodes = tokio::task::spawn_blocking(|| TestNode::start_cluster(3, "[limits]\nretention_check_ms = 200\n")).await.unwrap();
    create_topic(&nodes[0].grpc, T, 1).await;
    let bootstrap = nodes.iter().map(|n| n.kafka.clone()).collect::<Vec<_>>().join(",");
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).set("enable.idempotence", "true").set("acks", "all").set("linger.ms", "5").set("topic.metadata.refresh.interval.ms", "500").create().unwrap();
    produce_all(&producer, T, 0, (0..20).map(|i| format!("a-{i}")).collect()).await;

    // Everything written so far goes from the leader's log (DeleteRecords, then retention).
    let admin_k: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &bootstrap).create().unwrap();
    let mut del = rdkafka::TopicPartitionList::new();
    del.add_partition_offset(T, 0, rdkafka::Offset::Offset(20)).unwrap();
    admin_k.delete_records(&del, &rdkafka::admin::AdminOptions::new().request_timeout(Some(Duration::from_secs(10)))).await.unwrap();
    // DeleteRecords is recorded in the metadata log: every replica's log starts at 20, not
    // just the leader's (a later leader must not serve the deleted records again).
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in &nodes {
        let mut c = AdminClient::connect(format!("http://{}", n.grpc)).await.unwrap();
        loop {
            let parts = c.describe_topic(DescribeTopicRequest { name: T.into(), local_only: true }).await.unwrap().into_inner().partitions;
            let start = parts.iter().find(|p| p.local).map(|p| p.log_start_offset);
            if start == Some(20) {
                break;
            }
            assert!(Instant::now() < deadline, "node {}: log start {start:?} after DeleteRecords to 20", n.id);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // A follower loses its disk and is refilled: by a snapshot, as the entries are gone.
    let leader = describe_topic(&nodes[0].grpc, T).await[0].leader;
    let f = nodes.iter().position(|n| n.id != leader).unwrap();
    nodes[f].kill();
    nodes[f].wipe_data();
    tokio::task::block_in_place(|| nodes[f].start_again());
    let deadline = Instant::now() + Duration::from_secs(30);
    let refilled = |grpc: String| async move {
        // The wiped node learns of the topic from the metadata log first: NotFound until then.
        let Ok(mut c) = AdminClient::connect(format!("http://{grpc}")).await else { return false };
        c.describe_topic(DescribeTopicRequest { name: T.into(), local_only: true }).await.is_ok_and(|r| r.into_inner().partitions.iter().any(|p| p.local && p.high_watermark == 20))
    };
    while !refilled(nodes[f].grpc.clone()).await {
        assert!(Instant::now() < deadline, "the wiped replica was not refilled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(nodes[f].log().contains("installed a snapshot from the leader"), "the refill did not go through a snapshot");

    // It takes over, and the same producer's next batches are accepted there.
    let mut admin = AdminClient::connect(format!("http://{}", nodes[0].grpc)).await.unwrap();
    admin.transfer_leadership(backwaters_proto::grpc::v1::TransferLeadershipRequest { topic: T.into(), partition: 0, to_node: nodes[f].id }).await.unwrap();
    produce_all(&producer, T, 0, (0..20).map(|i| format!("b-{i}")).collect()).await;
    let refused = nodes[f].log().matches("idempotent batch refused").count();
    assert_eq!(refused, 0, "the new leader refused the producer's batches:\n{}", nodes[f].log());
}
