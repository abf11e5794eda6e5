//! A node whose disk is nearly full (below `min_free_disk_bytes`, set above any real disk for
//! node 1 only) leads nothing and drops its leaders' appends instead of failing its writes:
//! every partition, including the one that prefers node 1, keeps taking acks=all writes from
//! a librdkafka idempotent producer with the two other replicas, the full node falls behind
//! (seen through the admin API and its metrics), and once it restarts with space it catches
//! up to identical logs and gets its leadership back.

use backwaters_proto::grpc::v1::{admin_client::AdminClient, CreateTopicRequest, PartitionInfo};
use backwaters_tests::{describe_local, metric, TestNode};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

const TOPIC: &str = "full";

async fn describe(grpc: &str) -> Vec<PartitionInfo> {
    describe_local(grpc, TOPIC).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_node_leads_nothing_falls_behind_and_catches_up_with_space() {
    let mut nodes = TestNode::start_cluster_full(3, "", "min_free_disk_bytes = 4611686018427387904");
    let mut admin = AdminClient::connect(nodes[1].grpc_url()).await.expect("connect");
    for attempt in 0.. {
        match admin.create_topic(CreateTopicRequest { name: TOPIC.into(), partitions: 3, replication_factor: 3, configs: vec![] }).await {
            Ok(_) => break,
            Err(e) if e.code() == tonic::Code::Unavailable && attempt < 100 => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("create topic: {e}"),
        }
    }
    // Leadership leaves node 1 (or never settles there), for every partition.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let parts = describe(&nodes[1].grpc).await;
        if parts.len() == 3 && parts.iter().all(|p| p.leader > 1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "node 1 still leads: {parts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let bootstrap = nodes.iter().map(|n| n.kafka.clone()).collect::<Vec<_>>().join(",");
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).set("enable.idempotence", "true").set("acks", "all").set("message.timeout.ms", "30000").create().expect("producer");
    const N: i64 = 100;
    for partition in 0..3 {
        for i in 0..N {
            let value = format!("p{partition}-{i}");
            producer.send(FutureRecord::<(), _>::to(TOPIC).partition(partition).payload(&value), Duration::from_secs(30)).await.unwrap_or_else(|(e, _)| panic!("record {i} to partition {partition}: {e}"));
        }
    }

    // Each leader committed with the two healthy replicas; node 1 holds none of it.
    for p in describe(&nodes[1].grpc).await {
        let on_leader = describe(&nodes[(p.leader - 1) as usize].grpc).await.into_iter().find(|q| q.partition == p.partition).expect("partition");
        assert_eq!(on_leader.high_watermark, N, "partition {}", p.partition);
        let full = on_leader.replica_states.iter().find(|r| r.node_id == 1).expect("node 1 is a replica");
        assert!(full.log_end_offset < N && !full.in_sync, "the full node took the appends: {full:?}");
    }
    assert!(metric(&nodes[0].metrics, "backwaters_raft_appends_refused_disk_total") > 0.0, "node 1 counts the appends it dropped");
    assert!(nodes[0].log().contains("disk nearly full"), "node 1 says why");
    assert!(nodes[0].is_running(), "a full node does not crash");

    // Space back (the override removed): node 1 catches up to the same logs and leads again.
    nodes[0].stop();
    let config = std::fs::read_to_string(&nodes[0].config).expect("config");
    std::fs::write(&nodes[0].config, config.replace("min_free_disk_bytes = 4611686018427387904", "")).expect("config");
    nodes[0].start_again();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = true;
        let theirs = describe(&nodes[1].grpc).await;
        for mine in describe(&nodes[0].grpc).await {
            let other = theirs.iter().find(|p| p.partition == mine.partition).expect("partition");
            done &= mine.high_watermark == N && mine.checksum == other.checksum;
        }
        done &= theirs.iter().any(|p| p.leader == 1);
        if done {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "node 1 did not catch up and lead again: {theirs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
