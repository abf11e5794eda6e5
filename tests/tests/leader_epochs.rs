//! Kafka leader epochs are Raft terms (KIP-101, KIP-320). Three nodes, one partition:
//! Metadata reports the leader's term as its epoch, every stored batch carries the term it was
//! written in, OffsetForLeaderEpoch says where each epoch ends, and Fetch / ListOffsets /
//! OffsetForLeaderEpoch fence a stale epoch and refuse a future one, and a produce refused by
//! the old leader names the new one (KIP-951). A librdkafka consumer
//! reading across a leader change validates its position with the new leader (a wrong answer
//! would send it back and repeat records), and a new member of its group resumes at the
//! commit, which carries the old epoch (with `auto.offset.reset=error`: a truncation found by
//! validation would be an error).

use backwaters_proto::grpc::v1::{admin_client::AdminClient, CreateTopicRequest, TransferLeadershipRequest};
use backwaters_proto::kafka::batch::split_batches;
use backwaters_tests::raw::{call, connect};
use backwaters_tests::TestNode;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: &str = "epochs";

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(T))
}

/// Leader and leader epoch of partition 0 as the node at `kafka` reports them (Metadata v12).
fn metadata(kafka: &str) -> (i32, i32) {
    let req = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name()))]));
    let r: MetadataResponse = call(&mut connect(kafka), ApiKey::Metadata, 12, &req);
    let p = &r.topics[0].partitions[0];
    (p.leader_id.0, p.leader_epoch)
}

/// OffsetForLeaderEpoch v4 for partition 0: (error, epoch, end offset).
fn end_of_epoch(kafka: &str, replica_id: i32, current: i32, epoch: i32) -> (i16, i32, i64) {
    let part = OffsetForLeaderPartition::default().with_partition(0).with_current_leader_epoch(current).with_leader_epoch(epoch);
    let req = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(replica_id)).with_topics(vec![OffsetForLeaderTopic::default().with_topic(name()).with_partitions(vec![part])]);
    let r: OffsetForLeaderEpochResponse = call(&mut connect(kafka), ApiKey::OffsetForLeaderEpoch, 4, &req);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

/// Fetch v12 from `offset` naming `current` as the leader epoch: (error, each batch's base
/// offset and partition leader epoch).
fn fetch(kafka: &str, offset: i64, current: i32) -> (i16, Vec<(i64, i32)>) {
    let part = FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_current_leader_epoch(current).with_partition_max_bytes(1 << 20);
    let req = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![FetchTopic::default().with_topic(name()).with_partitions(vec![part])]);
    let r: FetchResponse = call(&mut connect(kafka), ApiKey::Fetch, 12, &req);
    let p = &r.responses[0].partitions[0];
    let batches = p.records.as_ref().map(|b| split_batches(b).unwrap().into_iter().map(|(h, _)| (h.base_offset, h.partition_leader_epoch)).collect()).unwrap_or_default();
    (p.error_code, batches)
}

/// Fetch v16 by topic id (KIP-516 ids from v13, KIP-951 leader hints from v16).
fn fetch_v16(kafka: &str, topic_id: uuid::Uuid, offset: i64, current: i32) -> FetchResponse {
    let part = FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_current_leader_epoch(current).with_partition_max_bytes(1 << 20);
    let req = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![FetchTopic::default().with_topic_id(topic_id).with_partitions(vec![part])]);
    call(&mut connect(kafka), ApiKey::Fetch, 16, &req)
}

/// The topic's id (Metadata v12).
fn topic_id(kafka: &str) -> uuid::Uuid {
    let req = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name()))]));
    let r: MetadataResponse = call(&mut connect(kafka), ApiKey::Metadata, 12, &req);
    r.topics[0].topic_id
}

/// ListOffsets v7 for `timestamp` (-1 latest, -2 earliest): (error, offset, epoch).
fn list_offset(kafka: &str, timestamp: i64, current: i32) -> (i16, i64, i32) {
    let part = ListOffsetsPartition::default().with_partition_index(0).with_timestamp(timestamp).with_current_leader_epoch(current);
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default().with_name(name()).with_partitions(vec![part])]);
    let r: ListOffsetsResponse = call(&mut connect(kafka), ApiKey::ListOffsets, 7, &req);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.leader_epoch)
}

/// Keeps librdkafka's log lines (its `fetch` debug context says when a position was validated).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<String>>>);

impl ClientContext for Logs {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, line: &str) {
        self.0.lock().unwrap().push(format!("{fac} {line}"));
    }
}
impl ConsumerContext for Logs {}

/// A group member. `reset`: where to start without a commit; "error" also makes a truncation
/// found by validation an error instead of a silent jump back.
fn consumer(bootstrap: &str, logs: &Logs, reset: &str) -> BaseConsumer<Logs> {
    let c: BaseConsumer<Logs> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "epochs-group")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", reset)
        .set("topic.metadata.refresh.interval.ms", "300")
        .set("debug", "fetch")
        .set_log_level(RDKafkaLogLevel::Debug)
        .create_with_context(logs.clone())
        .unwrap();
    c.subscribe(&[T]).unwrap();
    c
}

/// Polls until `want` records arrived; every error is a failure.
fn read(c: &BaseConsumer<Logs>, want: usize) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want {
        assert!(Instant::now() < deadline, "read {} of {want}: {got:?}", got.len());
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string()),
            Some(Err(e)) => panic!("consumer error after {got:?}: {e}"),
            None => {}
        }
    }
    got
}

async fn produce(producer: &FutureProducer, prefix: &str) {
    for i in 0..10 {
        let v = format!("{prefix}-{i}");
        producer.send(FutureRecord::<(), _>::to(T).partition(0).payload(&v), Duration::from_secs(30)).await.expect("acknowledged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_epochs_are_raft_terms_and_consumers_validate_across_a_leader_change() {
    // Leadership stays where the test moves it (no drift back to the preferred replica).
    let nodes = tokio::task::spawn_blocking(|| TestNode::start_cluster(3, "[limits]\nleader_rebalance_ms = 600000\n")).await.unwrap();
    let bootstrap = nodes.iter().map(|n| n.kafka.clone()).collect::<Vec<_>>().join(",");
    let mut admin = AdminClient::connect(format!("http://{}", nodes[0].grpc)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = admin.create_topic(CreateTopicRequest { name: T.into(), partitions: 1, replication_factor: 3, configs: vec![] }).await {
        assert!(e.code() == tonic::Code::Unavailable && Instant::now() < deadline, "create topic: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).set("enable.idempotence", "true").set("acks", "all").set("linger.ms", "0").create().unwrap();
    produce(&producer, "a").await;
    let kafka = |id: i32| nodes.iter().find(|n| n.id == id).unwrap().kafka.clone();

    let (old_leader, e1) = tokio::task::block_in_place(|| metadata(&nodes[0].kafka));
    assert!(e1 >= 1, "leader epoch {e1}");
    // Old clients' Metadata (before v7) has no epoch and still encodes.
    let v4: MetadataResponse = tokio::task::block_in_place(|| call(&mut connect(&kafka(old_leader)), ApiKey::Metadata, 4, &MetadataRequest::default().with_topics(None)));
    assert_eq!(v4.topics[0].partitions[0].leader_epoch, -1);
    // Every batch was stamped with the term it was written in.
    let (code, batches) = tokio::task::block_in_place(|| fetch(&kafka(old_leader), 0, e1));
    assert_eq!(code, 0);
    assert_eq!(batches.len(), 10);
    assert!(batches.iter().all(|(_, e)| *e == e1), "{batches:?}");

    // A group member reads the first ten and commits (its commit carries epoch e1).
    let logs = Logs::default();
    let c = consumer(&bootstrap, &logs, "earliest");
    let first = tokio::task::block_in_place(|| read(&c, 10));
    assert_eq!(first, (0..10).map(|i| format!("a-{i}")).collect::<Vec<_>>());
    c.commit_consumer_state(CommitMode::Sync).unwrap();

    // Leadership moves: a new term.
    let to = nodes.iter().map(|n| n.id).find(|id| *id != old_leader).unwrap();
    admin.transfer_leadership(TransferLeadershipRequest { topic: T.into(), partition: 0, to_node: to }).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let e2 = loop {
        let (l, e) = tokio::task::block_in_place(|| metadata(&kafka(to)));
        if l == to && e > e1 {
            break e;
        }
        assert!(Instant::now() < deadline, "leadership did not move to {to}: leader {l} epoch {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    produce(&producer, "b").await;

    let new = kafka(to);
    tokio::task::block_in_place(|| {
        // Where each epoch ends, as the new leader's log says.
        assert_eq!(end_of_epoch(&new, -1, e2, e1), (0, e1, 10), "epoch {e1} ends where {e2} began");
        assert_eq!(end_of_epoch(&new, -1, e2, e2), (0, e2, 20), "the current epoch ends at the log end");
        assert_eq!(end_of_epoch(&new, -1, -1, 0), (0, 0, 0), "an epoch before every entry ends where the log starts");
        assert_eq!(end_of_epoch(&new, -1, -1, e2 + 1), (0, -1, -1), "a future epoch is unknown");
        assert_eq!(end_of_epoch(&new, -1, e1, e1).0, ResponseError::FencedLeaderEpoch.code());
        assert_eq!(end_of_epoch(&new, -1, e2 + 1, e1).0, ResponseError::UnknownLeaderEpoch.code());
        let old = kafka(old_leader);
        assert_eq!(end_of_epoch(&old, -1, e2, e1).0, ResponseError::NotLeaderOrFollower.code());
        // The debugging replica id may ask a follower, which holds the same log.
        let deadline = Instant::now() + Duration::from_secs(10);
        while end_of_epoch(&old, -2, e2, e1) != (0, e1, 10) {
            assert!(Instant::now() < deadline, "follower answers {:?}", end_of_epoch(&old, -2, e2, e1));
            std::thread::sleep(Duration::from_millis(100));
        }

        // Produce to the old leader: refused, naming the new leader and its address (KIP-951).
        let batch = backwaters_proto::kafka::batch::encode_batch(&[backwaters_proto::kafka::batch::NewRecord { value: Some("x".into()), timestamp_ms: 1, ..Default::default() }]).unwrap();
        let part = PartitionProduceData::default().with_index(0).with_records(Some(batch));
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default().with_name(name()).with_partition_data(vec![part])]);
        let r: ProduceResponse = call(&mut connect(&old), ApiKey::Produce, 11, &req);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, ResponseError::NotLeaderOrFollower.code());
        assert_eq!((p.current_leader.leader_id.0, p.current_leader.leader_epoch), (to, e2));
        let port: i32 = new.rsplit(':').next().unwrap().parse().unwrap();
        assert!(r.node_endpoints.iter().any(|e| e.node_id.0 == to && e.port == port), "{:?}", r.node_endpoints);

        // Fetch v16 by topic id: the old leader (now a follower) fences a stale epoch and names
        // the new leader with its address (KIP-951); an unknown id is UNKNOWN_TOPIC_ID; the
        // new leader serves the records under the topic's id.
        let id = topic_id(&new);
        let r = fetch_v16(&old, id, 10, e1);
        let p = &r.responses[0].partitions[0];
        assert_eq!((r.responses[0].topic_id, p.error_code), (id, ResponseError::FencedLeaderEpoch.code()));
        assert_eq!((p.current_leader.leader_id.0, p.current_leader.leader_epoch), (to, e2));
        assert!(r.node_endpoints.iter().any(|e| e.node_id.0 == to && e.port == port), "{:?}", r.node_endpoints);
        let r = fetch_v16(&new, uuid::Uuid::from_u128(7), 0, -1);
        assert_eq!(r.responses[0].partitions[0].error_code, ResponseError::UnknownTopicId.code());
        let r = fetch_v16(&new, id, 10, e2);
        let p = &r.responses[0].partitions[0];
        assert_eq!((r.responses[0].topic_id, p.error_code, p.current_leader.leader_id.0), (id, 0, -1));
        assert_eq!(split_batches(p.records.as_ref().unwrap()).unwrap().first().map(|(h, _)| h.base_offset), Some(10));

        // Fetch: a stale epoch is fenced, a future one unknown; the new batches carry e2.
        assert_eq!(fetch(&new, 10, e1).0, ResponseError::FencedLeaderEpoch.code());
        assert_eq!(fetch(&new, 10, e2 + 1).0, ResponseError::UnknownLeaderEpoch.code());
        let (code, batches) = fetch(&new, 10, e2);
        assert_eq!(code, 0);
        assert_eq!(batches.iter().map(|b| b.0).collect::<Vec<_>>(), (10..20).collect::<Vec<_>>());
        assert!(batches.iter().all(|(_, e)| *e == e2), "{batches:?}");
        assert!(fetch(&new, 0, e2).1.iter().take(10).all(|(_, e)| *e == e1), "old batches keep their epoch");

        // ListOffsets answers with the epoch of the batch at the offset, and checks the caller's.
        assert_eq!(list_offset(&new, -1, e2), (0, 20, e2));
        assert_eq!(list_offset(&new, -2, e2), (0, 0, e1));
        assert_eq!(list_offset(&new, -1, e1).0, ResponseError::FencedLeaderEpoch.code());
    });

    // The consumer goes on past the leader change, its position (epoch e1) validated by the
    // new leader (an end offset below it would send it back: the records would repeat); a
    // member that joins later resumes at the commit (also epoch e1).
    let second = tokio::task::block_in_place(|| read(&c, 10));
    assert_eq!(second, (0..10).map(|i| format!("b-{i}")).collect::<Vec<_>>());
    let validated = |logs: &Logs| logs.0.lock().unwrap().iter().any(|l| l.contains("validation succeeded") || l.contains("OFFSETVALID"));
    assert!(validated(&logs), "librdkafka never validated its position:\n{}", logs.0.lock().unwrap().join("\n"));
    drop(c);
    let logs2 = Logs::default();
    let c2 = consumer(&bootstrap, &logs2, "error");
    let resumed = tokio::task::block_in_place(|| read(&c2, 10));
    assert_eq!(resumed, second, "the new member resumes at the commit");
    let truncations = logs.0.lock().unwrap().iter().chain(logs2.0.lock().unwrap().iter()).filter(|l| l.contains("truncation")).cloned().collect::<Vec<_>>();
    assert!(truncations.is_empty(), "{truncations:?}");
}
