//! The gRPC API through a tonic client, and its interplay with Kafka clients.

use backwaters_proto::grpc::v1 as pb;
use backwaters_tests::TestNode;
use pb::admin_client::AdminClient;
use pb::consume_client::ConsumeClient;
use pb::produce_client::ProduceClient;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;
use std::time::Duration;
use tokio_stream::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_kafka_see_the_same_records() {
    let node = TestNode::start();
    let mut admin = AdminClient::connect(node.grpc_url()).await.unwrap();
    admin.create_topic(pb::CreateTopicRequest { name: "mixed".into(), partitions: 2, replication_factor: 1, configs: vec![] }).await.unwrap();
    let err = admin.create_topic(pb::CreateTopicRequest { name: "mixed".into(), partitions: 2, replication_factor: 1, configs: vec![] }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);

    // gRPC produce -> Kafka consume.
    let mut prod = ProduceClient::connect(node.grpc_url()).await.unwrap();
    let records = (0..5)
        .map(|i| pb::Record { key: b"host-a".to_vec(), has_key: true, value: format!("grpc-{i}").into_bytes(), headers: vec![pb::Header { key: "src".into(), value: b"grpc".to_vec() }], timestamp_ms: 0 })
        .collect();
    let r = prod.produce(pb::ProduceRequest { topic: "mixed".into(), partition: -1, records, acks: pb::Acks::All as i32 }).await.unwrap().into_inner();
    assert_eq!((r.base_offset, r.last_offset), (0, 4));
    // The key picks the same partition Kafka's murmur2 partitioner would.
    assert_eq!(r.partition, backwaters_proto::kafka::partitioner::partition_for_key(b"host-a", 2));
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &node.kafka).set("group.id", "g").set("enable.auto.commit", "false").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("mixed", r.partition, rdkafka::Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    for i in 0..5 {
        let m = c.poll(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(m.payload().unwrap(), format!("grpc-{i}").as_bytes());
        assert_eq!(m.key().unwrap(), b"host-a");
        assert_eq!(m.headers().unwrap().get(0).value.unwrap(), b"grpc");
    }

    // Kafka produce -> gRPC consume (server streaming, long-poll).
    let mut cons = ConsumeClient::connect(node.grpc_url()).await.unwrap();
    let mut stream = cons.consume(pb::ConsumeRequest { topic: "mixed".into(), partition: 1 - r.partition, offset: -2, max_records: 3, max_wait_ms: 5000, from_timestamp_ms: 0 }).await.unwrap().into_inner();
    // One batch per codec: the gRPC path decompresses what Kafka clients compressed.
    for (i, codec) in ["gzip", "snappy", "lz4"].iter().enumerate() {
        let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &node.kafka).set("compression.type", *codec).create().unwrap();
        let v = format!("kafka-{i}");
        producer.send(FutureRecord::<(), _>::to("mixed").partition(1 - r.partition).payload(&v), Duration::from_secs(5)).await.unwrap();
    }
    let mut got = Vec::new();
    while let Some(msg) = stream.next().await {
        got.extend(msg.unwrap().records.into_iter().map(|r| (r.offset, String::from_utf8(r.value.unwrap()).unwrap())));
    }
    assert_eq!(got, vec![(0, "kafka-0".to_string()), (1, "kafka-1".to_string()), (2, "kafka-2".to_string())]);

    let d = admin.describe_topic(pb::DescribeTopicRequest { name: "mixed".into(), local_only: false }).await.unwrap().into_inner();
    let hws: Vec<i64> = d.partitions.iter().map(|p| p.high_watermark).collect();
    assert_eq!(hws.iter().sum::<i64>(), 8);
    let status = admin.cluster_status(pb::ClusterStatusRequest { local_only: false }).await.unwrap().into_inner();
    assert_eq!(status.nodes[0].zone, "east");
    assert!(status.nodes[0].actors.iter().any(|a| a.supervisor == "partitions"));
    // Prometheus metrics over HTTP.
    let body = node.metrics_page();
    assert!(body.contains("backwaters_produce_batches_total 4"), "{body}");
    assert!(body.contains("backwaters_partition_high_watermark{topic=\"mixed\""), "{body}");
    // The standard process metrics of the node process, and its disk traffic.
    let value = |name: &str| backwaters_tests::metric(&node.metrics, name);
    assert!(value("process_resident_memory_bytes") > 1e6, "{body}");
    assert!(value("process_cpu_seconds_total") > 0.0, "{body}");
    assert!(value("process_open_fds") >= 3.0, "{body}");
    value("backwaters_process_disk_write_bytes_total");
    let missing = admin.describe_topic(pb::DescribeTopicRequest { name: "nope".into(), local_only: false }).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

}

async fn channel(node: &TestNode) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(node.grpc_url()).unwrap().connect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    let node = TestNode::start();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&node).await);
    let r = health.check(tonic_health::pb::HealthCheckRequest { service: "backwaters.v1.Produce".into() }).await.unwrap().into_inner();
    assert_eq!(r.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::{server_reflection_request::MessageRequest, server_reflection_response::MessageResponse, ServerReflectionRequest};
    let mut refl = ServerReflectionClient::new(channel(&node).await);
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut resp = refl.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let msg = resp.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else { panic!("unexpected reflection answer") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["backwaters.v1.Produce", "backwaters.v1.Consume", "backwaters.v1.Admin", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_shutdown_keeps_data_for_the_next_start() {
    let mut node = TestNode::start();
    let mut prod = ProduceClient::connect(node.grpc_url()).await.unwrap();
    let rec = pb::Record { value: b"persist".to_vec(), ..Default::default() };
    prod.produce(pb::ProduceRequest { topic: "keep".into(), partition: 0, records: vec![rec], acks: 0 }).await.unwrap();
    assert!(node.stop().success(), "SIGTERM ends the node cleanly");
    node.restart();
    let mut cons = ConsumeClient::connect(node.grpc_url()).await.unwrap();
    let mut s = cons.consume(pb::ConsumeRequest { topic: "keep".into(), partition: 0, offset: 0, max_records: 1, max_wait_ms: 1000, from_timestamp_ms: 0 }).await.unwrap().into_inner();
    let got = s.next().await.unwrap().unwrap();
    assert_eq!(got.records[0].value.as_deref(), Some(&b"persist"[..]));
}

/// The internal (node-to-node) service refuses callers without this cluster's credentials
/// (cluster name + secret), refuses fault injection unless the config allows it (test
/// clusters), and refuses a caller that names another cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_calls_need_the_clusters_credentials_and_fault_injection_is_off() {
    let node = TestNode::start();
    let request = || pb::FaultRequest { cluster_name: "test".into(), blocked_peers: vec![2], ..Default::default() };
    // No credentials, and credentials of a cluster with another secret.
    let mut bare = pb::internal_client::InternalClient::connect(node.grpc_url()).await.unwrap();
    let e = bare.inject_fault(request()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    assert!(e.message().contains("cluster_secret"), "the error says what to check: {e}");
    let ch = tonic::transport::Endpoint::from_shared(node.grpc_url()).unwrap().connect().await.unwrap();
    let mut wrong = pb::internal_client::InternalClient::with_interceptor(ch, backwaters_proto::grpc::auth::Attach::new("test", "not-the-secret"));
    let e = wrong.inject_fault(request()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    // A Raft stream without credentials is refused before any message reaches a partition.
    let batch = pb::RaftBatch { cluster_name: "test".into(), from_node: 2, messages: vec![pb::RaftEnvelope { group: 1, message: vec![0xff].into() }] };
    let e = bare.raft(tokio_stream::iter(vec![batch])).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");

    let mut c = backwaters_tests::internal_client(&node.grpc).await.unwrap();
    let e = c.inject_fault(request()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    assert!(e.message().contains("allow_fault_injection"), "{e}");
    let e = c.inject_fault(pb::FaultRequest { cluster_name: "other".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
}

/// A node whose disk has less free space than `limits.min_free_disk_bytes` refuses writes
/// with an error that says so (gRPC RESOURCE_EXHAUSTED, Kafka KAFKA_STORAGE_ERROR, which
/// clients retry), writes nothing, and keeps serving reads and admin requests. The floor is
/// set above any real disk so the refusal is certain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_disk_refuses_writes_with_a_clear_error() {
    let node = TestNode::start_with("[limits]\nmin_free_disk_bytes = 1152921504606846976");
    let mut admin = AdminClient::connect(node.grpc_url()).await.unwrap();
    admin.create_topic(pb::CreateTopicRequest { name: "full".into(), partitions: 1, replication_factor: 1, configs: vec![] }).await.unwrap();

    // The free space is read once before the node serves anything.
    let mut prod = ProduceClient::connect(node.grpc_url()).await.unwrap();
    let rec = pb::Record { value: b"x".to_vec(), ..Default::default() };
    let err = prod.produce(pb::ProduceRequest { topic: "full".into(), partition: 0, records: vec![rec], acks: pb::Acks::All as i32 }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("min_free_disk_bytes"), "{err}");

    // A Kafka client: retried until its delivery timeout, then failed; nothing was written.
    let p: FutureProducer = ClientConfig::new().set("bootstrap.servers", &node.kafka).set("message.timeout.ms", "3000").create().unwrap();
    let r = p.send(FutureRecord::<(), _>::to("full").partition(0).payload("k"), Duration::from_secs(10)).await;
    assert!(r.is_err(), "the Kafka write was acknowledged: {r:?}");
    assert_eq!(backwaters_tests::records_in_topic(&node.kafka, "full"), 0);

    let metrics = node.metrics_page();
    assert!(metrics.lines().any(|l| l.starts_with("backwaters_disk_free_bytes ") && !l.ends_with(" 0")), "{metrics}");
    assert!(node.log().contains("disk nearly full"), "the node says why it refuses writes");
    // The metadata log stays writable: a topic can still be deleted to free space.
    admin.delete_topic(pb::DeleteTopicRequest { name: "full".into() }).await.unwrap();
}

/// `[tls]`: certificates made by `backwaters certs`; three nodes replicate over TLS gRPC and
/// hold mutual-TLS actor sessions; a tonic client and the shell that trust the CA get in,
/// a plaintext client does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_tls_replicates_and_only_tls_clients_get_in() {
    let certs = tempfile::tempdir().unwrap();
    backwaters_tests::make_certs(certs.path(), &["test-nodes=127.0.0.1,localhost"]).unwrap();
    let (ca, cert, key) = (certs.path().join("ca.pem"), certs.path().join("test-nodes.pem"), certs.path().join("test-nodes.key"));
    let tls = format!("[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n", ca.display(), cert.display(), key.display());
    let nodes = TestNode::start_cluster(3, &tls);

    // Kafka clients are unaffected; the three replicas of every write meet over TLS gRPC.
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &nodes[0].kafka).set("enable.idempotence", "true").set("acks", "all").create().unwrap();
    for i in 0..200 {
        producer.send(FutureRecord::to("tls-topic").key("k").payload(&format!("r{i}")), Duration::from_secs(30)).await.expect("acknowledged over a TLS cluster");
    }
    let read = backwaters_tests::read_topic(&nodes[2].kafka, "tls-topic", 200, Duration::from_secs(30));
    assert_eq!(read.len(), 200);

    let ca_pem = std::fs::read(&ca).unwrap();
    let ch = backwaters_tests::grpc_endpoint(&nodes[1].grpc, Some(&ca_pem)).unwrap().connect().await.expect("TLS client trusting the cluster CA");
    let mut admin = AdminClient::new(ch);
    let topic = admin.describe_topic(pb::DescribeTopicRequest { name: "tls-topic".into(), local_only: false }).await.unwrap().into_inner();
    for p in &topic.partitions {
        assert_eq!(p.replica_states.len(), 3, "{p:?}");
        assert!(p.replica_states.iter().all(|r| r.log_end_offset == p.high_watermark), "every replica caught up over TLS: {p:?}");
    }
    // Actor sessions are mutual TLS: every node ends up in every other node's view.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = admin.cluster_status(pb::ClusterStatusRequest { local_only: false }).await.unwrap().into_inner();
        if s.nodes.len() == 3 && s.nodes.iter().all(|n| n.alive && n.in_actor_cluster) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "actor sessions over TLS did not form: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let plain = tonic::transport::Endpoint::from_shared(nodes[1].grpc_url()).unwrap().connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(3)).connect().await;
    if let Ok(ch) = plain {
        assert!(AdminClient::new(ch).cluster_status(pb::ClusterStatusRequest { local_only: true }).await.is_err(), "a plaintext client was answered");
    }

    let shell = |with_ca: bool| {
        let mut c = std::process::Command::new(backwaters_tests::binary());
        c.args(["shell", "--bootstrap", &nodes[0].grpc, "-c", "cluster status"]).env_remove("BACKWATERS_CA");
        if with_ca {
            c.arg("--ca").arg(&ca);
        }
        backwaters_tests::output_within(&mut c, Duration::from_secs(30))
    };
    let ok = shell(true);
    assert!(ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("central"), "shell --ca: {}", String::from_utf8_lossy(&ok.stderr));
    let refused = shell(false);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--ca"), "shell without --ca: {}", String::from_utf8_lossy(&refused.stderr));
}

/// `[tls] grpc_client_auth = true`: the gRPC port takes only clients with a certificate from
/// the cluster CA. The nodes (which dial each other with theirs) still replicate; a client
/// that only trusts the CA is refused; the shell gets in with --cert and --key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_client_auth_takes_only_clients_with_a_certificate() {
    let certs = tempfile::tempdir().unwrap();
    backwaters_tests::make_certs(certs.path(), &["test-nodes=127.0.0.1,localhost", "ops=ops.local"]).unwrap();
    let file = |n: &str| certs.path().join(n);
    let tls = format!("[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\ngrpc_client_auth = true\n", file("ca.pem").display(), file("test-nodes.pem").display(), file("test-nodes.key").display());
    let nodes = TestNode::start_cluster(3, &tls);
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &nodes[0].kafka).set("acks", "all").create().unwrap();
    for i in 0..50 {
        producer.send(FutureRecord::<(), _>::to("mtls-topic").payload(&format!("r{i}")), Duration::from_secs(30)).await.expect("replicated between nodes that show certificates");
    }
    let ca_pem = std::fs::read(file("ca.pem")).unwrap();
    let ca_only = backwaters_tests::grpc_endpoint(&nodes[1].grpc, Some(&ca_pem)).unwrap().connect_timeout(Duration::from_secs(3)).timeout(Duration::from_secs(5));
    if let Ok(ch) = ca_only.connect().await {
        assert!(AdminClient::new(ch).cluster_status(pb::ClusterStatusRequest { local_only: true }).await.is_err(), "a client without a certificate was answered");
    }
    let identity = tonic::transport::Identity::from_pem(std::fs::read(file("ops.pem")).unwrap(), std::fs::read(file("ops.key")).unwrap());
    let with_cert = tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(&ca_pem)).identity(identity);
    let ch = tonic::transport::Endpoint::from_shared(format!("https://{}", nodes[1].grpc)).unwrap().tls_config(with_cert).unwrap().connect().await.expect("client with a certificate");
    let status = AdminClient::new(ch).cluster_status(pb::ClusterStatusRequest { local_only: false }).await.unwrap().into_inner();
    assert_eq!(status.nodes.len(), 3);
    let shell = |cert: bool| {
        let mut c = std::process::Command::new(backwaters_tests::binary());
        c.args(["shell", "--bootstrap", &nodes[0].grpc, "-c", "cluster status", "--ca"]).arg(file("ca.pem"));
        if cert {
            c.arg("--cert").arg(file("ops.pem")).arg("--key").arg(file("ops.key"));
        }
        backwaters_tests::output_within(c.env_remove("BACKWATERS_CA"), Duration::from_secs(30))
    };
    let ok = shell(true);
    assert!(ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("central"), "shell --cert: {}", String::from_utf8_lossy(&ok.stderr));
    let refused = shell(false);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--cert"), "shell without --cert: {}", String::from_utf8_lossy(&refused.stderr));
}

/// A node whose wall clock jumps two days ahead (fault injection) neither deletes records by
/// age (retention.ms is one hour: every record would look two days old) nor expires its
/// consumers' sessions: partitions delete by a clock a forward jump cannot advance, and group
/// sessions run on a steady clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_jump_neither_deletes_records_nor_expires_consumers() {
    let node = TestNode::start_with("[limits]\nallow_fault_injection = true\nretention_check_ms = 200\n");
    let mut admin = AdminClient::connect(node.grpc_url()).await.unwrap();
    let config = vec![pb::TopicConfig { name: "retention.ms".into(), value: "3600000".into() }];
    admin.create_topic(pb::CreateTopicRequest { name: "jump".into(), partitions: 1, replication_factor: 1, configs: config }).await.unwrap();
    let mut produce = ProduceClient::connect(node.grpc_url()).await.unwrap();
    let records = (0..5).map(|i| pb::Record { value: format!("r{i}").into_bytes(), ..Default::default() }).collect();
    produce.produce(pb::ProduceRequest { topic: "jump".into(), partition: 0, records, acks: 0 }).await.unwrap();

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &node.kafka)
        .set("group.id", "jumpers")
        .set("session.timeout.ms", "6000")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["jump"]).unwrap();
    let mut read = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while read < 5 && std::time::Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(200)) {
            read += 1;
        }
    }
    assert_eq!(read, 5);
    let before = admin.describe_group(pb::DescribeGroupRequest { group_id: "jumpers".into() }).await.unwrap().into_inner();
    assert_eq!((before.state.as_str(), before.members.len()), ("Stable", 1), "{before:?}");

    let mut internal = backwaters_tests::internal_client_with(&node.grpc, None).await.unwrap();
    let jump = pb::FaultRequest { cluster_name: "test".into(), clock_offset_ms: Some(2 * 86_400_000), ..Default::default() };
    internal.inject_fault(jump).await.unwrap();
    // Many retention checks and session timeouts by the jumped clock, the consumer polling.
    let until = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < until {
        assert!(consumer.poll(Duration::from_millis(200)).is_none_or(|m| m.is_ok()));
    }
    let topic = admin.describe_topic(pb::DescribeTopicRequest { name: "jump".into(), local_only: false }).await.unwrap().into_inner();
    assert_eq!((topic.partitions[0].log_start_offset, topic.partitions[0].high_watermark), (0, 5), "no record deleted");
    let after = admin.describe_group(pb::DescribeGroupRequest { group_id: "jumpers".into() }).await.unwrap().into_inner();
    assert_eq!((after.state.as_str(), after.generation, after.members.len()), ("Stable", before.generation, 1), "no session expired: {after:?}");
    let log = node.log();
    assert!(!log.contains("member session expired"), "{log}");
}
