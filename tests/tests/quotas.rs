//! Client quotas (KIP-13 / KIP-546): set and read with AlterClientQuotas and
//! DescribeClientQuotas (raw requests, as `kafka-configs` sends them), kept in the metadata log
//! across a restart, shown and changed by the admin shell, and enforced on librdkafka clients: a producer and a consumer over their
//! byte rates are slowed to them (`throttle_time_ms`, muted connections), others are not.

use backwaters_tests::raw::{call, connect};
use backwaters_tests::{binary, metric, output_within, TestNode};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::process::Command;
use std::time::{Duration, Instant};

const RATE: f64 = 100_000.0;
const RECORDS: usize = 600;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// AlterClientQuotas for one entity: (error code, message).
fn alter(kafka: &str, entity: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)], validate_only: bool) -> (i16, Option<String>) {
    let entity = entity.iter().map(|(t, n)| EntityData::default().with_entity_type(s(t)).with_entity_name(n.map(s))).collect();
    let ops = ops.iter().map(|(k, v)| OpData::default().with_key(s(k)).with_value(v.unwrap_or(0.0)).with_remove(v.is_none())).collect();
    let req = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default().with_entity(entity).with_ops(ops)]).with_validate_only(validate_only);
    let r: AlterClientQuotasResponse = call(&mut connect(kafka), ApiKey::AlterClientQuotas, 1, &req);
    (r.entries[0].error_code, r.entries[0].error_message.as_ref().map(|m| m.to_string()))
}

/// DescribeClientQuotas: (error code, entries as (entity, values)).
type Described = Vec<(Vec<(String, Option<String>)>, Vec<(String, f64)>)>;
fn describe(kafka: &str, components: &[(&str, i8, Option<&str>)], strict: bool) -> (i16, Described) {
    let components = components.iter().map(|(t, m, n)| ComponentData::default().with_entity_type(s(t)).with_match_type(*m).with_match(n.map(s))).collect();
    let r: DescribeClientQuotasResponse = call(&mut connect(kafka), ApiKey::DescribeClientQuotas, 1, &DescribeClientQuotasRequest::default().with_components(components).with_strict(strict));
    let entries = r
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.entity.iter().map(|x| (x.entity_type.to_string(), x.entity_name.as_ref().map(|n| n.to_string()))).collect(), e.values.iter().map(|v| (v.key.to_string(), v.value)).collect()))
        .collect();
    (r.error_code, entries)
}

/// `backwaters shell -c COMMAND` against the node: (success, stdout, stderr).
fn shell(node: &TestNode, command: &str) -> (bool, String, String) {
    let out = output_within(Command::new(binary()).args(["shell", "--bootstrap", &node.grpc, "-c", command]), Duration::from_secs(60));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Sends RECORDS records of 1 KiB as `client_id`, in six rounds of 100 KiB, each
/// acknowledged before the next is sent; how long it took. A throttle holds back the request
/// after the one that went over (its answer comes at once), so one round alone would not show it.
async fn produce(kafka: &str, client_id: &str) -> Duration {
    let p: FutureProducer = ClientConfig::new().set("bootstrap.servers", kafka).set("client.id", client_id).set("linger.ms", "5").create().unwrap();
    let value = vec![b'x'; 1024];
    let started = Instant::now();
    for _ in 0..6 {
        let sends: Vec<_> = (0..RECORDS / 6).map(|_| p.send(FutureRecord::<(), _>::to("metered").partition(0).payload(&value), Duration::from_secs(60))).collect();
        for r in futures::future::join_all(sends).await {
            r.expect("acknowledged");
        }
    }
    started.elapsed()
}

/// Reads `want` records from the start as `client_id`; how long it took.
fn consume(kafka: &str, client_id: &str, want: usize) -> Duration {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", kafka).set("client.id", client_id).set("group.id", client_id).set("auto.offset.reset", "earliest").set("max.partition.fetch.bytes", "65536").create().unwrap();
    c.subscribe(&["metered"]).unwrap();
    let started = Instant::now();
    let mut got = 0;
    while got < want {
        assert!(started.elapsed() < Duration::from_secs(60), "read {got} of {want}");
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            m.expect("record");
            got += 1;
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotas_are_set_described_kept_and_enforced() {
    let mut node = tokio::task::spawn_blocking(TestNode::start).await.unwrap();
    let kafka = node.kafka.clone();
    let invalid = ResponseError::InvalidRequest.code();
    tokio::task::block_in_place(|| {
        // Refusals name what is wrong; nothing is written.
        let (code, msg) = alter(&kafka, &[("ip", None)], &[("producer_byte_rate", Some(RATE))], false);
        assert_eq!(code, invalid, "{msg:?}");
        let (code, msg) = alter(&kafka, &[("client-id", Some("slow"))], &[("request_percentage", Some(50.0))], false);
        assert!(code == invalid && msg.unwrap().contains("request_percentage"));
        assert_eq!(alter(&kafka, &[("client-id", Some("slow"))], &[("producer_byte_rate", Some(0.0))], false).0, invalid);
        assert_eq!(alter(&kafka, &[("user", None), ("user", Some("x"))], &[("producer_byte_rate", Some(RATE))], false).0, invalid);
        assert_eq!(alter(&kafka, &[("client-id", Some("slow"))], &[("producer_byte_rate", Some(RATE))], true).0, 0, "validate_only");
        assert_eq!(describe(&kafka, &[], false), (0, vec![]), "validate_only wrote nothing");

        assert_eq!(alter(&kafka, &[("client-id", Some("slow"))], &[("producer_byte_rate", Some(RATE))], false).0, 0);
        assert_eq!(alter(&kafka, &[("client-id", None)], &[("consumer_byte_rate", Some(RATE))], false).0, 0);
        assert_eq!(alter(&kafka, &[("user", Some("alice")), ("client-id", Some("etl"))], &[("producer_byte_rate", Some(1e9)), ("consumer_byte_rate", Some(1e9))], false).0, 0);
    });
    let slow = (vec![("client-id".to_string(), Some("slow".to_string()))], vec![("producer_byte_rate".to_string(), RATE)]);
    let default = (vec![("client-id".to_string(), None)], vec![("consumer_byte_rate".to_string(), RATE)]);
    tokio::task::block_in_place(|| {
        assert_eq!(describe(&kafka, &[("client-id", 0, Some("slow"))], false).1, vec![slow.clone()]);
        assert_eq!(describe(&kafka, &[("client-id", 1, None)], false).1, vec![default.clone()]);
        // Any client id: three entities; strict leaves out the one that also names a user.
        assert_eq!(describe(&kafka, &[("client-id", 2, None)], false).1.len(), 3);
        assert_eq!(describe(&kafka, &[("client-id", 2, None)], true).1.len(), 2);
        assert_eq!(describe(&kafka, &[("user", 0, Some("alice"))], false).1.len(), 1);
        assert_eq!(describe(&kafka, &[("user", 0, Some("bob"))], false).1, vec![]);
        assert_eq!(describe(&kafka, &[("group", 2, None)], false).0, invalid);
    });

    // Kept in the metadata log.
    tokio::task::block_in_place(|| node.restart());
    let kafka = node.kafka.clone();
    assert_eq!(tokio::task::block_in_place(|| describe(&kafka, &[("client-id", 0, Some("slow"))], false)).1, vec![slow]);

    // The admin shell (gRPC) shows and changes the same quotas.
    tokio::task::block_in_place(|| {
        let (ok, list, err) = shell(&node, "quota list");
        assert!(ok && list.lines().any(|l| l.contains("client-id 'slow'") && l.contains("producer_byte_rate") && l.contains("100000")), "{list}{err}");
        let (ok, out, err) = shell(&node, "quota set --user bob --default-client consumer_byte_rate=2048");
        assert!(ok, "{out}{err}");
        let bob = (vec![("client-id".to_string(), None), ("user".to_string(), Some("bob".to_string()))], vec![("consumer_byte_rate".to_string(), 2048.0)]);
        assert_eq!(describe(&kafka, &[("user", 0, Some("bob"))], false).1, vec![bob]);
        assert!(shell(&node, "quota remove --user bob --default-client consumer_byte_rate").0);
        assert_eq!(describe(&kafka, &[("user", 0, Some("bob"))], false).1, vec![]);
        let (ok, _, err) = shell(&node, "quota set --client-id x producer_byte_rate=1.5");
        assert!(!ok && err.contains("whole number"), "{err}");
        let (ok, _, err) = shell(&node, "quota set producer_byte_rate=10");
        assert!(!ok && !err.is_empty(), "an entity is required");
    });

    // 600 KiB at 100 kB/s: one second's burst, then about five seconds of throttling.
    let throttled = |n: &TestNode| metric(&n.metrics, "backwaters_kafka_throttled_requests_total");
    let took = produce(&kafka, "slow").await;
    assert!(took >= Duration::from_secs(3), "the slow producer took {took:?}");
    let after_slow = throttled(&node);
    assert!(after_slow > 0.0);
    // Another client id has no producer quota (the default entity only sets consumers').
    produce(&kafka, "fast").await;
    assert_eq!(throttled(&node), after_slow, "a producer without a quota was throttled");

    // Consumers fall under the default client-id quota, each client id on its own.
    let took = tokio::task::block_in_place(|| consume(&kafka, "reader", RECORDS));
    assert!(took >= Duration::from_secs(3), "the metered consumer took {took:?}");

    // Removed: nobody is throttled any more.
    tokio::task::block_in_place(|| {
        assert_eq!(alter(&kafka, &[("client-id", Some("slow"))], &[("producer_byte_rate", None)], false).0, 0);
        assert_eq!(alter(&kafka, &[("client-id", None)], &[("consumer_byte_rate", None)], false).0, 0);
        assert_eq!(describe(&kafka, &[("client-id", 2, None)], true).1, vec![]);
    });
    let before = throttled(&node);
    produce(&kafka, "slow").await;
    tokio::task::block_in_place(|| consume(&kafka, "reader-2", 2 * RECORDS));
    assert_eq!(throttled(&node), before, "throttled after the quotas were removed");
}

/// CreateTopics v`version` of `topics` (name, partitions) as client id "raw": each topic's
/// error code, and the answer's throttle.
fn create_topics(kafka: &str, version: i16, topics: &[(&str, i32)]) -> (Vec<i16>, i32) {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let topics = topics.iter().map(|(n, p)| CreatableTopic::default().with_name(TopicName(s(n))).with_num_partitions(*p).with_replication_factor(1)).collect();
    let r: CreateTopicsResponse = call(&mut connect(kafka), ApiKey::CreateTopics, version, &CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(10_000));
    (r.topics.iter().map(|t| t.error_code).collect(), r.throttle_time_ms)
}

/// KIP-599: partitions created or deleted count against `controller_mutation_rate`. A caller
/// in debt is refused with THROTTLING_QUOTA_EXCEEDED from CreateTopics v6 on (older versions
/// are only throttled), and is let through again once its quota has recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_mutations_are_rate_limited() {
    let node = tokio::task::spawn_blocking(TestNode::start).await.unwrap();
    let kafka = node.kafka.clone();
    let exceeded = ResponseError::ThrottlingQuotaExceeded.code();
    tokio::task::block_in_place(|| {
        // The raw client's requests carry client id "raw".
        assert_eq!(alter(&kafka, &[("client-id", Some("raw"))], &[("controller_mutation_rate", Some(2.0))], false).0, 0);
        // Three partitions at once go through (the bucket holds two) and leave a debt; the
        // topics after them in the same request are refused.
        let (codes, throttle) = create_topics(&kafka, 7, &[("m1", 3), ("m2", 1), ("m3", 1)]);
        assert_eq!(codes, vec![0, exceeded, exceeded]);
        assert!(throttle > 0, "throttle {throttle}");
        // Before v6 the caller is throttled, not refused.
        let (codes, throttle) = create_topics(&kafka, 5, &[("m4", 1)]);
        assert_eq!(codes, vec![0]);
        assert!(throttle > 0);
        // Once the debt is paid the next creation goes through.
        std::thread::sleep(Duration::from_millis(2_000));
        assert_eq!(create_topics(&kafka, 7, &[("m2", 1)]).0, vec![0]);
    });
    assert!(metric(&node.metrics, "backwaters_kafka_throttled_requests_total") >= 2.0);
}
