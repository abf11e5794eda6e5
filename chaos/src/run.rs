//! The runner: starts a cluster of real node processes over the three zones, runs producers
//! (librdkafka, idempotent, acks=all), transactional producers and consumer groups (classic
//! and KIP-848) against it, injects faults on a schedule drawn from the seed, heals, lets the
//! cluster settle, reads everything back and hands the history to the checker.

use crate::checker::{check, Report};
use crate::history::{Op, Recorder};
use backwaters_proto::grpc::v1::{admin_client::AdminClient, ClusterStatusRequest, CreateTopicRequest, DescribeTopicRequest};
use backwaters_tests::TestNode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOPIC: &str = "chaos";
const GROUP: &str = "chaos-readers";
/// Two members of the consumer group protocol (KIP-848): the coordinator assigns and moves
/// partitions between them while nodes die.
const GROUP_848: &str = "chaos-readers-848";
const ZONES: [&str; 3] = ["east", "central", "west"];

#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: usize,
    pub duration: Duration,
    /// Keep injecting faults past `duration` until this many SIGKILLs happened.
    pub min_kills: usize,
    pub seed: u64,
    pub partitions: i32,
    pub producers: u32,
    /// Pause between faults (each fault then lasts 2-5 s before it heals).
    pub fault_every: Duration,
    /// Where the history and the report go.
    pub out: PathBuf,
    /// TLS between the nodes and on their gRPC ports (`[tls]`, certificates from
    /// `backwaters certs` in OUT/tls); the Kafka clients stay on plaintext listeners.
    pub tls: bool,
    /// Transactional producers (see [`crate::txn`]); 0 for none.
    pub txn_producers: u32,
    /// Only these faults, drawn evenly (empty: all of them, kills most often).
    pub faults: Vec<Fault>,
}

/// The cluster CA when the run uses TLS: every gRPC call of the run trusts it.
static CA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Certificates for the run's nodes and the `[tls]` section that uses them.
fn tls_section(out: &std::path::Path) -> Result<String, String> {
    let dir = out.join("tls");
    backwaters_tests::make_certs(&dir, &["nodes=127.0.0.1,localhost"])?;
    let ca = dir.join("ca.pem");
    let _ = CA.set(std::fs::read(&ca).map_err(|e| format!("{}: {e}", ca.display()))?);
    Ok(format!("[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n", ca.display(), dir.join("nodes.pem").display(), dir.join("nodes.key").display()))
}

/// The fault kinds (each one at a time; the cluster heals before the next).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    KillRandom,
    KillLeader,
    KillController,
    ZoneLoss,
    Pause,
    DiskLoss,
    /// The network between one node and the others is cut (both ways), then healed.
    Partition,
    /// One node's disk turns slow: every flush first waits 0.2-1.5 s.
    SlowDisk,
    /// One node's wall clock jumps (an hour back to a day ahead), then back.
    ClockJump,
}

impl Fault {
    fn kills(self) -> bool {
        matches!(self, Fault::KillRandom | Fault::KillLeader | Fault::KillController | Fault::ZoneLoss | Fault::DiskLoss)
    }

    fn draw(rng: &mut StdRng, only: &[Fault]) -> Fault {
        if !only.is_empty() {
            return only[rng.gen_range(0..only.len())];
        }
        // Weighted: kills of leaders and the controller most, the others sometimes.
        match rng.gen_range(0..13) {
            0 | 1 => Fault::KillRandom,
            2..=4 => Fault::KillLeader,
            5 | 6 => Fault::KillController,
            7 => Fault::ZoneLoss,
            8 => Fault::Pause,
            9 => Fault::DiskLoss,
            10 => Fault::SlowDisk,
            11 => Fault::ClockJump,
            _ => Fault::Partition,
        }
    }
}

pub struct Outcome {
    /// Times a producer's librdkafka bumped its epoch (renumbering what it had not seen
    /// acknowledged): not a failure by itself, but the moment duplicates can appear.
    pub epoch_bumps: usize,
    /// Fatal errors of the producers' librdkafka (an idempotent producer stops for good: the
    /// broker answered something it cannot reconcile). Any is a failure of the run.
    pub fatal_errors: usize,
    pub report: Report,
    pub kills: usize,
    pub faults: usize,
    pub history: PathBuf,
    pub report_path: PathBuf,
}

fn zone_of(id: i32) -> &'static str {
    ZONES[(id as usize - 1) % 3]
}

async fn admin(grpc: &str) -> Option<AdminClient<tonic::transport::Channel>> {
    let ch = backwaters_tests::grpc_endpoint(grpc, CA.get().map(Vec::as_slice)).ok()?.connect_timeout(Duration::from_secs(1)).timeout(Duration::from_secs(5)).connect().await.ok()?;
    Some(AdminClient::new(ch))
}

/// The leader of `partition` as a running node reports it.
async fn leader_of(nodes: &[TestNode], partition: i32) -> Option<i32> {
    for n in nodes.iter().filter(|n| n.is_running()) {
        if let Some(mut c) = admin(&n.grpc).await {
            if let Ok(r) = c.describe_topic(DescribeTopicRequest { name: TOPIC.into(), local_only: false }).await {
                if let Some(p) = r.into_inner().partitions.iter().find(|p| p.partition == partition && p.leader > 0) {
                    return Some(p.leader);
                }
            }
        }
    }
    None
}

/// Sets a slow disk or a clock offset on one node (see `FaultRequest`).
async fn inject(node: &TestNode, flush_delay_ms: Option<u32>, clock_offset_ms: Option<i64>) {
    use backwaters_proto::grpc::v1::FaultRequest;
    let request = FaultRequest { cluster_name: "test".into(), blocked_peers: vec![], flush_delay_ms, clock_offset_ms };
    match backwaters_tests::internal_client_with(&node.grpc, CA.get().map(Vec::as_slice)).await {
        Ok(mut c) => {
            if let Err(e) = c.inject_fault(request).await {
                eprintln!("chaos: fault injection on node {}: {}", node.id, e.message());
            }
        }
        Err(e) => eprintln!("chaos: fault injection on node {}: {e}", node.id),
    }
}

/// Cuts `node` off from every other node (both directions), or heals everything when `None`.
async fn partition(nodes: &[TestNode], node: Option<i32>) {
    use backwaters_proto::grpc::v1::FaultRequest;
    for n in nodes.iter().filter(|n| n.is_running()) {
        let blocked_peers = match node {
            None => vec![],
            Some(x) if x == n.id => nodes.iter().map(|o| o.id).filter(|id| *id != x).collect(),
            Some(x) => vec![x],
        };
        if let Ok(mut c) = backwaters_tests::internal_client_with(&n.grpc, CA.get().map(Vec::as_slice)).await {
            if let Err(e) = c.inject_fault(FaultRequest { cluster_name: "test".into(), blocked_peers, ..Default::default() }).await {
                eprintln!("chaos: fault injection on node {}: {}", n.id, e.message());
            }
        }
    }
}

async fn controller(nodes: &[TestNode]) -> Option<i32> {
    for n in nodes.iter().filter(|n| n.is_running()) {
        if let Some(mut c) = admin(&n.grpc).await {
            if let Ok(r) = c.cluster_status(ClusterStatusRequest { local_only: true }).await {
                let id = r.into_inner().controller_id;
                if id > 0 {
                    return Some(id);
                }
            }
        }
    }
    None
}

/// librdkafka's own log of a client (its idempotence decisions: `debug=eos`), kept in a
/// file of the run's folder so a finding can be traced into the client.
struct ClientLog(Mutex<std::io::BufWriter<std::fs::File>>);

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, line: &str) {
        use std::io::Write;
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut f = self.0.lock().expect("client log");
        let _ = writeln!(f, "{}.{:03} {level:?} {fac} {line}", t.as_secs(), t.subsec_millis());
        let _ = f.flush();
    }
}

/// One producer: unique values `p{k}-{seq}`, seq-th record to partition seq % partitions,
/// at most 64 in flight.
async fn produce(k: u32, bootstrap: String, partitions: i32, rec: Arc<Recorder>, stop: Arc<AtomicBool>, out: PathBuf) {
    let log_path = out.join(format!("producer-{k}.log"));
    let log = ClientLog(Mutex::new(std::io::BufWriter::new(std::fs::File::create(&log_path).expect("producer log"))));
    let producer: FutureProducer<ClientLog> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "45000")
        .set("linger.ms", "5")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("debug", "eos")
        .set_log_level(RDKafkaLogLevel::Debug)
        .create_with_context(log)
        .expect("producer");
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut seq = 0u64;
    let mut tasks = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let partition = (seq % partitions as u64) as i32;
        let value = format!("p{k}-{seq}");
        rec.record(Op::Send { t: rec.now(), producer: k, partition, seq, value: value.clone() });
        // Enqueued here, in sequence order (the idempotent producer keeps that order per
        // partition); only the wait for the acknowledgement runs apart.
        let delivery = loop {
            match producer.send_result(FutureRecord::<(), _>::to(TOPIC).partition(partition).payload(&value)) {
                Ok(d) => break d,
                // The client's queue is full: wait for acknowledgements.
                Err((_, _)) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let rec = rec.clone();
        tasks.push(tokio::spawn(async move {
            match delivery.await {
                Ok(Ok(d)) => rec.record(Op::Ack { t: rec.now(), producer: k, partition, seq, value, offset: d.offset }),
                Ok(Err((e, _))) => rec.record(Op::Fail { t: rec.now(), producer: k, partition, seq, value, error: e.to_string() }),
                Err(_) => rec.record(Op::Fail { t: rec.now(), producer: k, partition, seq, value, error: "delivery canceled".into() }),
            }
            drop(permit);
        }));
        seq += 1;
        if seq % 20 == 0 {
            // About 20 records per 10 ms per producer at most: load, not a flood on 2 cores.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tasks.retain(|t| !t.is_finished());
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// A group member that reads and commits every second, recording its commits (committed
/// offsets of a group must never go backwards). `group` is [`GROUP`] (classic protocol) or
/// [`GROUP_848`] (consumer protocol).
fn consume_group(bootstrap: String, group: &'static str, rec: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &bootstrap).set("group.id", group).set("enable.auto.commit", "false").set("auto.offset.reset", "earliest");
    if group == GROUP_848 {
        config.set("group.protocol", "consumer");
    } else {
        config.set("session.timeout.ms", "10000");
    }
    let c: BaseConsumer = config.create().expect("consumer");
    c.subscribe(&[TOPIC]).expect("subscribe");
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let _ = c.poll(Duration::from_millis(100));
        if last_commit.elapsed() >= Duration::from_secs(1) {
            last_commit = Instant::now();
            if let Ok(pos) = c.position() {
                let pos = {
                    // Only partitions with a position (read at least once) are committed.
                    let mut p = rdkafka::TopicPartitionList::new();
                    for e in pos.elements().iter().filter(|e| matches!(e.offset(), rdkafka::Offset::Offset(_))) {
                        let _ = p.add_partition_offset(e.topic(), e.partition(), e.offset());
                    }
                    p
                };
                if pos.count() == 0 {
                    continue;
                }
                if c.commit(&pos, CommitMode::Sync).is_ok() {
                    for e in pos.elements() {
                        if let rdkafka::Offset::Offset(o) = e.offset() {
                            rec.record(Op::Commit { t: rec.now(), group: group.into(), partition: e.partition(), offset: o });
                        }
                    }
                }
            }
        }
    }
}

/// One poll of a read-back consumer: a record read is recorded as consumer `consumer`'s and
/// moves its partition's position in `at`. True when a record came.
pub(crate) fn poll_into(c: &BaseConsumer, consumer: u32, rec: &Recorder, at: &mut BTreeMap<i32, i64>) -> bool {
    match c.poll(Duration::from_millis(200)) {
        Some(Ok(m)) => {
            at.insert(m.partition(), m.offset() + 1);
            rec.record(Op::Read { t: rec.now(), consumer, partition: m.partition(), offset: m.offset(), value: String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string() });
            true
        }
        Some(Err(e)) => {
            eprintln!("chaos: read-back (consumer {consumer}): {e}");
            false
        }
        None => false,
    }
}

/// Reads every partition from the start with a fresh consumer until it has reached the high
/// watermarks (and nothing new came for a while).
fn read_back(bootstrap: &str, partitions: i32, rec: &Recorder) -> Result<(), String> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", "chaos-audit").set("enable.auto.commit", "false").create().map_err(|e| e.to_string())?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        tpl.add_partition_offset(TOPIC, p, rdkafka::Offset::Beginning).map_err(|e| e.to_string())?;
        // A node that just came back may not know the topic yet: retry.
        let mut last = String::new();
        for _ in 0..60 {
            match c.fetch_watermarks(TOPIC, p, Duration::from_secs(5)) {
                Ok((_, high)) => {
                    ends.insert(p, high);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        if !ends.contains_key(&p) {
            return Err(format!("watermarks of partition {p}: {last}"));
        }
    }
    c.assign(&tpl).map_err(|e| e.to_string())?;
    let mut at: BTreeMap<i32, i64> = BTreeMap::new();
    let mut idle = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if poll_into(&c, 0, rec, &mut at) {
            idle = Instant::now();
        }
        let done = ends.iter().all(|(p, end)| at.get(p).copied().unwrap_or(0) >= *end);
        if done && idle.elapsed() > Duration::from_secs(2) {
            return Ok(());
        }
    }
    Err(format!("read-back did not reach the high watermarks {ends:?} (reached {at:?})"))
}

/// Waits until every replica of every partition reports the same high watermark and checksum,
/// then records them.
async fn settle_replicas(nodes: &[TestNode], partitions: i32, rec: &Recorder) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut views: BTreeMap<i32, Vec<(i32, i64, u32)>> = BTreeMap::new();
        for n in nodes {
            let Some(mut c) = admin(&n.grpc).await else { continue };
            let Ok(r) = c.describe_topic(DescribeTopicRequest { name: TOPIC.into(), local_only: true }).await else { continue };
            for p in r.into_inner().partitions.into_iter().filter(|p| p.local) {
                views.entry(p.partition).or_default().push((n.id, p.high_watermark, p.checksum));
            }
        }
        let rf = nodes.len().min(3);
        let same = views.len() == partitions as usize && views.values().all(|v| v.len() == rf && v.iter().all(|x| (x.1, x.2) == (v[0].1, v[0].2)));
        if !same && Instant::now() > deadline {
            eprintln!("chaos: replicas did not converge within 120 s: {views:?}");
            for n in nodes {
                let log = n.log();
                let tail: Vec<&str> = log.lines().filter(|l| l.contains("ERROR") || l.contains("panicked") || l.contains("assert")).rev().take(8).collect();
                eprintln!("--- node {} warnings, newest first:\n{}", n.id, tail.join("\n"));
            }
        }
        if same || Instant::now() > deadline {
            for (p, v) in views {
                for (node, hw, checksum) in v {
                    rec.record(Op::Replica { t: rec.now(), partition: p, node, high_watermark: hw, checksum });
                }
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run(opts: Options) -> Result<Outcome, String> {
    if !opts.faults.is_empty() && opts.min_kills > 0 && !opts.faults.iter().any(|f| f.kills()) {
        return Err(format!("min_kills is {} but none of the faults {:?} kills a node: set it to 0", opts.min_kills, opts.faults));
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let history = opts.out.join("history.jsonl");
    let rec = Arc::new(Recorder::create(&history).map_err(|e| format!("{}: {e}", history.display()))?);
    eprintln!("chaos: seed {} (replay with --seed {}), {} nodes, {:?}, history in {}", opts.seed, opts.seed, opts.nodes, opts.duration, history.display());
    let n = opts.nodes;
    let tls = if opts.tls { tls_section(&opts.out)? } else { String::new() };
    let mut nodes = tokio::task::spawn_blocking(move || TestNode::start_cluster(n, &format!("[limits]\nallow_fault_injection = true\n{tls}"))).await.map_err(|e| e.to_string())?;
    let bootstrap = nodes.iter().map(|n| n.kafka.clone()).collect::<Vec<_>>().join(",");
    for topic in [TOPIC, crate::txn::TXN_TOPIC] {
        let mut created = false;
        for _ in 0..100 {
            if let Some(mut c) = admin(&nodes[0].grpc).await {
                match c.create_topic(CreateTopicRequest { name: topic.into(), partitions: opts.partitions, replication_factor: opts.nodes.min(3) as i32, configs: vec![] }).await {
                    Ok(_) => {
                        created = true;
                        break;
                    }
                    Err(e) if e.code() == tonic::Code::AlreadyExists => {
                        created = true;
                        break;
                    }
                    Err(_) => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !created {
            return Err(format!("could not create the topic {topic}"));
        }
    }

    // Workload.
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (1..=opts.producers).map(|k| tokio::spawn(produce(k, bootstrap.clone(), opts.partitions, rec.clone(), stop.clone(), opts.out.clone()))).collect();
    let transactional: Vec<_> = (1..=opts.txn_producers)
        .map(|k| {
            let (b, r, s, parts) = (bootstrap.clone(), rec.clone(), stop.clone(), opts.partitions);
            std::thread::spawn(move || crate::txn::transact(k, b, parts, r, s))
        })
        .collect();
    let group_stop = Arc::new(AtomicBool::new(false));
    let group: Vec<_> = [GROUP, GROUP_848, GROUP_848]
        .into_iter()
        .map(|g| {
            let (b, r, s) = (bootstrap.clone(), rec.clone(), group_stop.clone());
            std::thread::spawn(move || consume_group(b, g, r, s))
        })
        .collect();

    // Nemesis.
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let started = Instant::now();
    let (mut kills, mut faults) = (0usize, 0usize);
    let paused: Arc<Mutex<Vec<usize>>> = Arc::default();
    while started.elapsed() < opts.duration || kills < opts.min_kills {
        tokio::time::sleep(opts.fault_every).await;
        let fault = Fault::draw(&mut rng, &opts.faults);
        let down = Duration::from_millis(rng.gen_range(2000..5000));
        let mut victims: Vec<usize> = match fault {
            Fault::KillRandom | Fault::Pause | Fault::DiskLoss | Fault::Partition | Fault::SlowDisk | Fault::ClockJump => vec![rng.gen_range(0..nodes.len())],
            Fault::KillLeader => {
                let p = rng.gen_range(0..opts.partitions);
                match leader_of(&nodes, p).await.and_then(|l| nodes.iter().position(|n| n.id == l)) {
                    Some(i) => vec![i],
                    None => vec![rng.gen_range(0..nodes.len())],
                }
            }
            Fault::KillController => match controller(&nodes).await.and_then(|c| nodes.iter().position(|n| n.id == c)) {
                Some(i) => vec![i],
                None => vec![rng.gen_range(0..nodes.len())],
            },
            Fault::ZoneLoss => {
                let zone = ZONES[rng.gen_range(0..3)];
                nodes.iter().enumerate().filter(|(_, n)| zone_of(n.id) == zone).map(|(i, _)| i).collect()
            }
        };
        victims.sort();
        victims.dedup();
        let names: Vec<i32> = victims.iter().map(|i| nodes[*i].id).collect();
        let (delay_ms, offset_ms) = (rng.gen_range(200..1500u32), rng.gen_range(-3_600_000..86_400_000i64));
        let how = match fault {
            Fault::SlowDisk => format!(" (flushes wait {delay_ms} ms)"),
            Fault::ClockJump => format!(" (clock off by {:+.1} h)", offset_ms as f64 / 3_600_000.0),
            _ => String::new(),
        };
        let what = format!("{fault:?} nodes {names:?} for {down:?}{how}");
        eprintln!("chaos: t={:.1}s {what}", started.elapsed().as_secs_f64());
        rec.record(Op::Fault { t: rec.now(), what });
        faults += 1;
        for i in &victims {
            match fault {
                Fault::Partition => partition(&nodes, Some(nodes[*i].id)).await,
                Fault::SlowDisk => inject(&nodes[*i], Some(delay_ms), None).await,
                Fault::ClockJump => inject(&nodes[*i], None, Some(offset_ms)).await,
                Fault::Pause => {
                    nodes[*i].pause();
                    paused.lock().unwrap().push(*i);
                }
                _ => {
                    nodes[*i].kill();
                    kills += 1;
                }
            }
        }
        tokio::time::sleep(down).await;
        for i in victims {
            match fault {
                Fault::Partition => partition(&nodes, None).await,
                Fault::SlowDisk => inject(&nodes[i], Some(0), None).await,
                Fault::ClockJump => inject(&nodes[i], None, Some(0)).await,
                Fault::Pause => {
                    nodes[i].resume();
                    paused.lock().unwrap().retain(|x| *x != i);
                }
                Fault::DiskLoss => {
                    nodes[i].wipe_data();
                    nodes[i].start_again();
                }
                _ => nodes[i].start_again(),
            }
        }
        rec.record(Op::Fault { t: rec.now(), what: "healed".into() });
    }
    eprintln!("chaos: {faults} faults ({kills} kills) in {:.0}s; settling", started.elapsed().as_secs_f64());

    // Settle: let the last writes finish, stop the workload, read everything back. Every
    // step has a deadline and says how long it took: a run never hangs here.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settling = Instant::now();
    stop.store(true, Ordering::SeqCst);
    // A producer's last deliveries end within message.timeout.ms (45 s); a record still
    // unanswered after that stays a send without an outcome, which the checker allows.
    let producers_done = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(producers)).await.is_ok();
    eprintln!("chaos: producers stopped in {:.1}s{}", settling.elapsed().as_secs_f64(), if producers_done { "" } else { " (gave up waiting for their last deliveries)" });
    // A transactional producer ends its transaction (commit or abort: at most 2 x 30 s).
    let txn_done = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        while transactional.iter().any(|h| !h.is_finished()) && t.elapsed() < Duration::from_secs(75) {
            std::thread::sleep(Duration::from_millis(50));
        }
        transactional.iter().all(|h| h.is_finished())
    })
    .await
    .unwrap_or(false);
    if !txn_done {
        eprintln!("chaos: a transactional producer did not stop; its last transaction has no outcome (checked as unknown only if recorded)");
    }
    group_stop.store(true, Ordering::SeqCst);
    // The member may sit in a synchronous commit while its coordinator moves: wait a while,
    // then leave the thread behind (it holds nothing the check needs).
    let group_done = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        while !group.iter().all(|g| g.is_finished()) && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
        group.iter().all(|g| g.is_finished())
    })
    .await
    .unwrap_or(false);
    eprintln!("chaos: group members stopped{}", if group_done { "" } else { " (no: a thread is left running)" });
    let t = Instant::now();
    settle_replicas(&nodes, opts.partitions, &rec).await;
    eprintln!("chaos: replicas compared after {:.1}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let (b, r, parts) = (bootstrap.clone(), rec.clone(), opts.partitions);
    tokio::task::spawn_blocking(move || read_back(&b, parts, &r)).await.map_err(|e| e.to_string())??;
    eprintln!("chaos: read back in {:.1}s", t.elapsed().as_secs_f64());
    if opts.txn_producers > 0 {
        let t = Instant::now();
        let (b, r, parts) = (bootstrap.clone(), rec.clone(), opts.partitions);
        tokio::task::spawn_blocking(move || crate::txn::read_back_committed(&b, parts, &r)).await.map_err(|e| e.to_string())??;
        eprintln!("chaos: transactional topic read back (read_committed) in {:.1}s", t.elapsed().as_secs_f64());
    }

    // The nodes' logs go with the history (their folders go when the nodes do).
    for n in &nodes {
        let path = opts.out.join(format!("node-{}.log", n.id));
        std::fs::write(&path, n.log()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let report = check(&rec.ops());
    let report_path = opts.out.join("report.json");
    let json = serde_json::json!({ "seed": opts.seed, "nodes": opts.nodes, "kills": kills, "faults": faults, "report": report });
    std::fs::write(&report_path, serde_json::to_string_pretty(&json).expect("json")).map_err(|e| format!("{}: {e}", report_path.display()))?;
    let client_logs: Vec<String> = (1..=opts.producers).map(|k| std::fs::read_to_string(opts.out.join(format!("producer-{k}.log"))).unwrap_or_default()).collect();
    let epoch_bumps = client_logs.iter().map(|l| l.matches("bumped epoch").count()).sum();
    let fatal_errors = client_logs.iter().map(|l| l.matches("Fatal error").count()).sum();
    Ok(Outcome { epoch_bumps, fatal_errors, report, kills, faults, history, report_path })
}
