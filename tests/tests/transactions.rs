//! Kafka transactions through librdkafka (the rdkafka crate) against node processes:
//! commits and aborts across partitions, read_committed against read_uncommitted, the
//! coordinator (the controller) SIGKILLed in the middle of a run, a second producer with the
//! same transactional.id fencing the first, and a transaction left open past its timeout
//! being aborted so that it does not hold read_committed consumers back.

use backwaters_tests::raw;
use backwaters_tests::{describe_local, TestNode};
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer, DefaultProducerContext};
use rdkafka::TopicPartitionList;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const TOPIC: &str = "tx";
const PARTITIONS: i32 = 3;

async fn create_topic(bootstrap: &str, name: &str, rf: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let r = admin.create_topics([&NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(rf))], &AdminOptions::new()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
}

fn producer(bootstrap: &str, id: &str, extra: &[(&str, &str)]) -> ThreadedProducer<DefaultProducerContext> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("transactional.id", id).set("linger.ms", "5").set("message.timeout.ms", "60000").set("reconnect.backoff.ms", "50").set("reconnect.backoff.max.ms", "500");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

/// The transaction coordinator of `id`, as FindCoordinator (key type 1) names it.
fn coordinator(kafka: &str, id: &str) -> i32 {
    let mut s = raw::connect(kafka);
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(id.to_string())).with_key_type(1);
    let resp: FindCoordinatorResponse = raw::call(&mut s, ApiKey::FindCoordinator, 3, &req);
    assert_eq!(resp.error_code, 0, "{resp:?}");
    resp.node_id.0
}

/// Every record of the topic under an isolation level: value -> (partition, offset).
fn read_all(bootstrap: &str, isolation: &str, want: usize, limit: Duration) -> BTreeMap<String, Vec<(i32, i64)>> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", format!("read-{isolation}")).set("isolation.level", isolation).set("enable.auto.commit", "false").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, rdkafka::Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    let deadline = Instant::now() + limit;
    let mut n = 0;
    while Instant::now() < deadline && n < want {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.entry(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()).or_default().push((m.partition(), m.offset()));
            n += 1;
        }
    }
    // A little longer: anything beyond `want` is a record that should not be there.
    let extra = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < extra {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.entry(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()).or_default().push((m.partition(), m.offset()));
        }
    }
    out
}

/// Runs one transaction of `records` records; true if committed, false if it was aborted
/// (asked to, or because the transaction failed in a way that requires it).
fn run_txn(p: &ThreadedProducer<DefaultProducerContext>, txn: usize, records: usize, commit: bool) -> bool {
    let t = Duration::from_secs(60);
    p.begin_transaction().expect("begin");
    for j in 0..records {
        let value = format!("t{txn}-r{j}");
        let key = format!("k{j}");
        let mut rec = BaseRecord::to(TOPIC).key(&key).payload(&value).partition((j as i32) % PARTITIONS);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("send: {e}"),
            }
        }
    }
    // Aborted ones too: their records must reach the log (an abort would drop what is
    // still queued), so read_committed has something to skip.
    if let Err(e) = p.flush(t) {
        eprintln!("transaction {txn}: flush: {e}");
    }
    if commit {
        loop {
            match p.commit_transaction(t) {
                Ok(()) => return true,
                Err(KafkaError::Transaction(e)) if e.is_retriable() => continue,
                Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                    eprintln!("transaction {txn}: {e}; aborting it");
                    break;
                }
                Err(e) => panic!("transaction {txn} commit: {e}"),
            }
        }
    }
    loop {
        match p.abort_transaction(t) {
            Ok(()) => return false,
            Err(KafkaError::Transaction(e)) if e.is_retriable() => continue,
            Err(e) => panic!("transaction {txn} abort: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_abort_survive_a_coordinator_kill_and_fence_zombies() {
    let mut nodes = TestNode::start_cluster(3, "");
    let bootstrap = nodes.iter().map(|n| n.kafka.as_str()).collect::<Vec<_>>().join(",");
    create_topic(&bootstrap, TOPIC, 3).await;
    let p = producer(&bootstrap, "app-1", &[]);
    p.init_transactions(Duration::from_secs(30)).expect("init_transactions");
    const TXNS: usize = 24;
    const RECORDS: usize = 12;
    let mut committed = BTreeSet::new();
    let mut killed = None;
    for txn in 0..TXNS {
        if txn == TXNS / 2 {
            // SIGKILL the coordinator between two transactions: the next ones go to the new
            // controller, which has the transactional id's state from the metadata log.
            let c = coordinator(&nodes[0].kafka, "app-1");
            let i = nodes.iter().position(|n| n.id == c).expect("coordinator is a node");
            eprintln!("killing the transaction coordinator, node {c}");
            nodes[i].kill();
            killed = Some(i);
        }
        let commit = txn % 3 != 1;
        if run_txn(&p, txn, RECORDS, commit) {
            committed.insert(txn);
        }
        if txn == TXNS / 2 + 2 {
            let i = killed.take().expect("killed");
            nodes[i].start_again();
        }
    }
    assert!(committed.len() >= TXNS / 2, "most transactions commit: {committed:?}");
    // A second instance with the same transactional.id fences the first.
    let zombie_check = producer(&bootstrap, "app-1", &[]);
    zombie_check.init_transactions(Duration::from_secs(30)).expect("the new instance's init_transactions");
    p.begin_transaction().expect("begin (local)");
    p.send(BaseRecord::to(TOPIC).key("z").payload("zombie").partition(0)).map_err(|(e, _)| e).unwrap();
    match p.commit_transaction(Duration::from_secs(30)) {
        Err(KafkaError::Transaction(e)) => assert!(e.is_fatal() || e.txn_requires_abort(), "the fenced producer's commit fails: {e}"),
        other => panic!("the fenced producer's commit went through: {other:?}"),
    }
    assert!(run_txn(&zombie_check, 1000, RECORDS, true), "the new instance commits");
    committed.insert(1000);

    let want = committed.len() * RECORDS;
    let read = read_all(&bootstrap, "read_committed", want, Duration::from_secs(60));
    let mut expected = BTreeSet::new();
    for txn in &committed {
        for j in 0..RECORDS {
            expected.insert(format!("t{txn}-r{j}"));
        }
    }
    let got: BTreeSet<String> = read.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(missing.is_empty(), "committed records missing under read_committed: {missing:?}");
    assert!(extra.is_empty(), "aborted or fenced records visible under read_committed: {extra:?}");
    let twice: Vec<_> = read.iter().filter(|(_, at)| at.len() > 1).collect();
    assert!(twice.is_empty(), "records read more than once: {twice:?}");
    // read_uncommitted sees the aborted transactions' records as well.
    let all = read_all(&bootstrap, "read_uncommitted", want + RECORDS, Duration::from_secs(30));
    assert!(all.len() > got.len(), "read_uncommitted shows aborted records too ({} vs {})", all.len(), got.len());
    assert!(all.keys().any(|v| v.starts_with("t1-")), "transaction 1 (aborted) is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_open_is_aborted_at_its_timeout() {
    let node = TestNode::start();
    create_topic(&node.kafka, TOPIC, 1).await;
    let stuck = producer(&node.kafka, "stuck", &[("transaction.timeout.ms", "3000"), ("message.timeout.ms", "3000"), ("socket.timeout.ms", "2000")]);
    stuck.init_transactions(Duration::from_secs(30)).expect("init");
    stuck.begin_transaction().unwrap();
    for j in 0..PARTITIONS {
        stuck.send(BaseRecord::to(TOPIC).key("s").payload(&format!("stuck-{j}")).partition(j)).map_err(|(e, _)| e).unwrap();
    }
    stuck.flush(Duration::from_secs(10)).unwrap();
    // Another producer commits after it; read_committed consumers see that once the open
    // transaction is aborted (until then the last stable offset holds them back).
    let other = producer(&node.kafka, "other", &[]);
    other.init_transactions(Duration::from_secs(30)).unwrap();
    assert!(run_txn(&other, 1, 6, true));
    let started = Instant::now();
    let read = read_all(&node.kafka, "read_committed", 6, Duration::from_secs(30));
    eprintln!("read_committed got the later transaction {:?} after the open one began", started.elapsed());
    assert_eq!(read.len(), 6, "{read:?}");
    assert!(read.keys().all(|v| v.starts_with("t1-")), "{read:?}");
    // The timed-out producer was fenced: its commit fails.
    assert!(stuck.commit_transaction(Duration::from_secs(10)).is_err(), "a timed-out transaction cannot commit");
    assert!(backwaters_tests::metric(&node.metrics, "backwaters_txn_timeouts_total") >= 1.0);
    assert!(backwaters_tests::metric(&node.metrics, "backwaters_txn_markers_total") >= 2.0, "the abort marker and the other producer's commit marker");
}

/// DescribeTransactions of one id: (error code, producer id).
fn describe_txn(kafka: &str, id: &str) -> (i16, i64) {
    use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, TransactionalId};
    let mut s = raw::connect(kafka);
    let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.to_string()))]);
    let resp: DescribeTransactionsResponse = raw::call(&mut s, ApiKey::DescribeTransactions, 0, &req);
    let t = &resp.transaction_states[0];
    (t.error_code, t.producer_id.0)
}

/// A transactional id with no transaction for `limits.transactional_id_expiration_ms` is
/// forgotten (DescribeTransactions: TRANSACTIONAL_ID_NOT_FOUND); the next producer with that
/// id starts over with a new producer id, and its transactions work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_transactional_id_expires() {
    let node = TestNode::start_with("[limits]\ntransactional_id_expiration_ms = 2000\n");
    create_topic(&node.kafka, TOPIC, 1).await;
    let first = producer(&node.kafka, "idle", &[]);
    first.init_transactions(Duration::from_secs(30)).unwrap();
    assert!(run_txn(&first, 1, 3, true));
    let (code, old_pid) = describe_txn(&node.kafka, "idle");
    assert_eq!(code, 0);
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(30);
    while describe_txn(&node.kafka, "idle").0 != 105 {
        assert!(Instant::now() < deadline, "the idle id was never forgotten");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(node.log().contains("transactional id expired"));
    let second = producer(&node.kafka, "idle", &[]);
    second.init_transactions(Duration::from_secs(30)).unwrap();
    let (code, new_pid) = describe_txn(&node.kafka, "idle");
    assert_eq!(code, 0);
    assert_ne!(new_pid, old_pid, "a forgotten id starts over with a new producer id");
    assert!(run_txn(&second, 2, 3, true));
    let read = read_all(&node.kafka, "read_committed", 6, Duration::from_secs(30));
    assert_eq!(read.len(), 6, "{read:?}");
}

/// The Python client families (confluent-kafka exactly-once with send_offsets_to_transaction
/// and fencing, kafka-python, aiokafka) and kafkajs (transactions with sendOffsets), each
/// against three nodes: every client finds the coordinator and the partition leaders its
/// own way and takes its own request versions.
#[test]
fn python_clients_and_kafkajs_run_transactions() {
    let clients = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/clients"));
    let python = backwaters_tests::client_available("python3", &["-c", "import confluent_kafka, kafka, aiokafka"]);
    let kafkajs = clients.join("node_modules/kafkajs").exists();
    if !python && !kafkajs {
        return;
    }
    let nodes = TestNode::start_cluster(3, "");
    let bootstrap = nodes.iter().map(|n| n.kafka.as_str()).collect::<Vec<_>>().join(",");
    let run = |cmd: &mut std::process::Command, pass: &str| {
        let out = backwaters_tests::output_within(cmd, Duration::from_secs(240));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("{text}");
        assert!(out.status.success() && text.contains(pass), "client failed:\n{text}");
    };
    if python {
        run(std::process::Command::new("python3").arg(clients.join("transactions.py")).arg(&bootstrap), "all transaction clients passed");
    }
    if kafkajs {
        run(std::process::Command::new("node").arg(clients.join("kafkajs_transactions.js")).arg(&bootstrap), "kafkajs transactions passed");
    }
}

/// Transactional batches the coordinator has not seen are refused (KIP-890's verification),
/// so a late batch cannot open a transaction that nothing will close; producers' own control
/// batches and producer ids without a sequence are refused too. Raw Kafka requests.
#[test]
fn unverified_and_forged_transactional_batches_are_refused() {
    use backwaters_proto::kafka::batch::{encode_batch, encode_control_batch, set_producer, set_transactional, NewRecord};
    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId, TopicName, TransactionalId};
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let node = TestNode::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&node.kafka, TOPIC, 1));
    let mut s = raw::connect(&node.kafka);
    let id = TransactionalId(StrBytes::from_static_str("raw-1"));
    let init: InitProducerIdResponse = raw::call(&mut s, ApiKey::InitProducerId, 4, &InitProducerIdRequest::default().with_transactional_id(Some(id.clone())).with_transaction_timeout_ms(60_000).with_producer_id(ProducerId(-1)).with_producer_epoch(-1));
    assert_eq!(init.error_code, 0, "{init:?}");
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let plain = encode_batch(&[NewRecord { value: Some(Bytes::from_static(b"v")), ..Default::default() }]).unwrap();
    let txn_batch = |seq: i32| set_producer(&set_transactional(&plain, pid, epoch), pid, epoch, seq);
    let mut produce = |records: Bytes, txn: bool| -> i16 {
        let req = ProduceRequest::default()
            .with_transactional_id(txn.then(|| id.clone()))
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str(TOPIC))).with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))])]);
        let r: ProduceResponse = raw::call(&mut s, ApiKey::Produce, 9, &req);
        r.responses[0].partition_responses[0].error_code
    };
    const INVALID_RECORD: i16 = 87;
    const INVALID_TXN_STATE: i16 = 48;
    // Not added to the transaction yet.
    assert_eq!(produce(txn_batch(0), true), INVALID_TXN_STATE);
    // A producer id without a sequence, and a producer's own control batch.
    assert_eq!(produce(set_transactional(&plain, pid, epoch), true), INVALID_RECORD);
    assert_eq!(produce(set_producer(&encode_control_batch(pid, epoch, true, 0, 0), pid, epoch, 0), true), INVALID_RECORD);
    let mut s2 = raw::connect(&node.kafka);
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(id.clone())
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default().with_name(TopicName(StrBytes::from_static_str(TOPIC))).with_partitions(vec![0])]);
    let r: AddPartitionsToTxnResponse = raw::call(&mut s2, ApiKey::AddPartitionsToTxn, 3, &add);
    assert_eq!(r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 0, "{r:?}");
    assert_eq!(produce(txn_batch(0), true), 0, "added: accepted");
    // Without the request's transactional id, a transactional batch is refused.
    assert_eq!(produce(txn_batch(1), false), INVALID_RECORD);
    let end: EndTxnResponse = raw::call(&mut s2, ApiKey::EndTxn, 3, &EndTxnRequest::default().with_transactional_id(id.clone()).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_committed(false));
    assert_eq!(end.error_code, 0, "{end:?}");
    // A late batch of the ended transaction cannot open a new one.
    assert_eq!(produce(txn_batch(1), true), INVALID_TXN_STATE);
    // EndTxn again with the other outcome is refused; with a stale epoch it is fenced.
    let again: EndTxnResponse = raw::call(&mut s2, ApiKey::EndTxn, 3, &EndTxnRequest::default().with_transactional_id(id.clone()).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_committed(true));
    assert_eq!(again.error_code, INVALID_TXN_STATE, "{again:?}");
    let stale: EndTxnResponse = raw::call(&mut s2, ApiKey::EndTxn, 3, &EndTxnRequest::default().with_transactional_id(id).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch - 1).with_committed(true));
    assert_eq!(stale.error_code, 90, "PRODUCER_FENCED: {stale:?}");
}

/// The metadata log stays bounded: with checkpoints every 300 records, transactions (which
/// add records to it) make the controller write the live state again and delete what came
/// before; a node that then loses its disk rebuilds topics and transactions from the
/// checkpoint, and the transactional producer carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_checkpoints_bound_the_log_and_rebuild_a_wiped_node() {
    let mut nodes = TestNode::start_cluster(3, "[limits]\nmetadata_checkpoint_records = 300\n");
    let bootstrap = nodes.iter().map(|n| n.kafka.as_str()).collect::<Vec<_>>().join(",");
    create_topic(&bootstrap, TOPIC, 3).await;
    let p = producer(&bootstrap, "ckpt", &[]);
    p.init_transactions(Duration::from_secs(30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut txn = 0;
    let checkpointed = |nodes: &[TestNode]| nodes.iter().any(|n| n.log().contains("metadata log before the checkpoint deleted"));
    while !checkpointed(&nodes) {
        assert!(Instant::now() < deadline, "no metadata checkpoint after {txn} transactions");
        assert!(run_txn(&p, txn, 3, true));
        txn += 1;
    }
    eprintln!("checkpointed after {txn} transactions");
    // Every replica trims its copy of the metadata log (the log start is itself a metadata
    // record), so whichever node leads it refills a wiped node from a snapshot point.
    // (The controller trimmed first, the others on applying the log start it recorded.)
    let trimmed = |n: &TestNode| {
        n.log().lines().any(|l| l.contains("metadata log before the checkpoint deleted") || (l.contains("log start raised to the offset the metadata log records") && l.contains("__cluster_metadata")))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nodes.iter().all(trimmed) {
        let waiting: Vec<i32> = nodes.iter().filter(|n| !trimmed(n)).map(|n| n.id).collect();
        assert!(Instant::now() < deadline, "nodes {waiting:?} did not trim their metadata log");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A node loses its disk and comes back empty: its metadata comes from the checkpoint.
    let controller = coordinator(&nodes[0].kafka, "ckpt");
    let w = nodes.iter().position(|n| n.id != controller).unwrap();
    nodes[w].kill();
    nodes[w].wipe_data();
    nodes[w].start_again();
    // Its own copy of the metadata (not librdkafka's Metadata, which may ask another node)
    // comes back from a snapshot point: the log before the checkpoint is gone everywhere.
    let refilled = |n: &TestNode| n.log().lines().any(|l| l.contains("installed a snapshot from the leader") && l.contains("__cluster_metadata"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !refilled(&nodes[w]) {
        assert!(Instant::now() < deadline, "the wiped node's metadata did not come from a snapshot point");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(describe_local(&nodes[w].grpc, TOPIC).await.len(), PARTITIONS as usize, "the wiped node knows the topic again");
    // Transactions go on, and every committed record is there once.
    for t in txn..txn + 5 {
        assert!(run_txn(&p, t, 3, true));
    }
    let want = (txn + 5) * 3;
    let read = read_all(&bootstrap, "read_committed", want, Duration::from_secs(60));
    assert_eq!(read.len(), want, "committed records under read_committed");
    assert!(read.values().all(|at| at.len() == 1));
}
