//! Three real nodes in one process (partition actors, sled logs, the metadata log, the
//! controller) joined by an in-memory network that cuts links, isolates nodes, delays,
//! reorders and drops messages, restarts nodes and steps their wall clocks (forward or back,
//! up to an hour, as a bad NTP step would, or eight days ahead for two seconds), all on a
//! schedule drawn from one seed.
//! Idempotent writers produce acks=all through random nodes (passed on to leaders) the whole
//! time, retrying unacknowledged batches as librdkafka does. The
//! checker then heals the network and looks at every replica's log: every acknowledged record
//! is there exactly once at the offset it was acknowledged with, nothing is written twice, and
//! all replicas of a partition hold the same records at the same offsets.
//!
//! `BACKWATERS_SEED=N` replays one seed; `BACKWATERS_SEEDS=N` runs seeds 1..=N (default 2).
//! The schedule is seeded; thread timing is not, so a replay takes the same faults in the
//! same order, not the exact same interleaving.

use backwaters_actors::controller::{ControllerReply, ControllerRequest, Member};
use backwaters_actors::node::{AdminError, ForwardedProduce, Node, NodeSettings, Peers, WeakNode};
use backwaters_actors::partition::ProduceAck;
use backwaters_actors::replica::{node_of, Transport};
use backwaters_actors::PartitionError;
use backwaters_proto::kafka::batch::{decode_records, encode_batch, set_producer, NewRecord};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NODES: i32 = 3;
const EIGHT_DAYS_MS: i64 = 8 * 24 * 3600 * 1000;
const PARTITIONS: i32 = 3;
const TOPIC: &str = "sim";

/// A node's wall clock: the system clock moved by an offset the schedule changes.
#[derive(Default)]
struct SteppedClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl backwaters_actors::Clock for SteppedClock {
    fn now_ms(&self) -> i64 {
        backwaters_actors::SystemClock.now_ms() + self.offset_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The host's monotonic clock does not jump with its wall clock.
    fn monotonic_ms(&self) -> i64 {
        backwaters_actors::SystemClock.monotonic_ms()
    }
}

/// The shared in-memory network.
struct Net {
    /// Each node's wall clock (kept across restarts, as a host's clock would be).
    clocks: Mutex<HashMap<i32, Arc<SteppedClock>>>,
    rng: Mutex<StdRng>,
    nodes: Mutex<HashMap<i32, WeakNode>>,
    /// Directed links that lose everything.
    cut: Mutex<BTreeSet<(i32, i32)>>,
    /// Chance that a Raft message is lost, in percent.
    drop_pct: Mutex<u32>,
}

impl Net {
    fn blocked(&self, from: i32, to: i32) -> bool {
        self.cut.lock().unwrap().contains(&(from, to))
    }
    fn node(&self, id: i32) -> Option<Node> {
        self.nodes.lock().unwrap().get(&id).and_then(|w| w.upgrade())
    }
}

/// One node's view of the network.
struct SimPeer {
    me: i32,
    net: Arc<Net>,
}

impl Transport for SimPeer {
    fn send(&self, group: u64, messages: Vec<raft::prelude::Message>) {
        for m in messages {
            let to = node_of(m.to);
            let (lost, delay_us) = {
                let mut rng = self.net.rng.lock().unwrap();
                (rng.gen_range(0..100) < *self.net.drop_pct.lock().unwrap(), rng.gen_range(0..3000u64))
            };
            if lost || self.net.blocked(self.me, to) {
                continue;
            }
            let net = self.net.clone();
            // A random delay per message also reorders them.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(delay_us)).await;
                if let Some(n) = net.node(to) {
                    n.deliver_raft(group, m);
                }
            });
        }
    }
}

impl Peers for SimPeer {
    fn forward(&self, node: i32, req: ControllerRequest) -> Pin<Box<dyn std::future::Future<Output = ControllerReply> + Send>> {
        let (net, me) = (self.net.clone(), self.me);
        Box::pin(async move {
            if net.blocked(me, node) || net.blocked(node, me) {
                return Err(AdminError::Unavailable(format!("node {node} unreachable")));
            }
            match net.node(node) {
                Some(n) => n.execute(req).await,
                None => Err(AdminError::Unavailable(format!("node {node} is down"))),
            }
        })
    }

    fn produce(&self, node: i32, req: ForwardedProduce) -> Pin<Box<dyn std::future::Future<Output = Result<ProduceAck, PartitionError>> + Send>> {
        let (net, me) = (self.net.clone(), self.me);
        Box::pin(async move {
            if net.blocked(me, node) || net.blocked(node, me) {
                return Err(PartitionError::NotLeader { leader: None });
            }
            let n = net.node(node).ok_or(PartitionError::NotLeader { leader: None })?;
            let shared = n.partition(&req.topic, req.partition).ok_or(PartitionError::UnknownTopicOrPartition)?;
            n.produce_local(&shared, req).await
        })
    }
}

fn settings(id: i32, dir: &std::path::Path) -> NodeSettings {
    let zones = ["east", "central", "west"];
    NodeSettings {
        node_id: id,
        cluster_name: "sim".into(),
        zone: zones[(id as usize - 1) % 3].into(),
        data_dir: dir.join(format!("node-{id}")),
        auto_create_topics: false,
        default_partitions: 1,
        default_replication_factor: 3,
        retention_check_ms: 1000,
        groups: Default::default(),
        // Fast ticks: elections in 100-200 ms.
        raft_tick_ms: 10,
        members: (1..=NODES).map(|i| Member { id: i, zone: zones[(i as usize - 1) % 3].into() }).collect(),
        leader_rebalance_ms: 1_000,
        metadata_checkpoint_records: 0,
        transactional_id_expiration_ms: backwaters_actors::txn::DEFAULT_ID_EXPIRATION_MS,
        min_free_disk_bytes: 0,
        store_cache_bytes: 256 << 20,
    }
}

async fn start(net: &Arc<Net>, id: i32, dir: &std::path::Path) -> Node {
    let peer = Arc::new(SimPeer { me: id, net: net.clone() });
    let clock = net.clocks.lock().unwrap().entry(id).or_default().clone();
    let node = Node::start_with(settings(id, dir), clock, peer).await.expect("node starts");
    net.nodes.lock().unwrap().insert(id, node.downgrade());
    node
}

/// Every record of one replica: (offset, value), from its log start to its high watermark.
fn replica_records(node: &Node, partition: i32) -> Vec<(i64, String)> {
    let Some(p) = node.partition(TOPIC, partition) else { return vec![] };
    let mut out = Vec::new();
    let mut offset = p.log_start_offset();
    let hw = p.high_watermark();
    while offset < hw {
        let entries = p.read(offset, 1 << 20).expect("read");
        let Some(last) = entries.last() else { break };
        offset = last.next_offset();
        for e in &entries {
            for r in decode_records(&e.payload).expect("records decode") {
                out.push((r.offset, String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_string()));
            }
        }
    }
    out
}

async fn run(seed: u64) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(Net { clocks: Mutex::default(), rng: Mutex::new(StdRng::seed_from_u64(seed)), nodes: Mutex::default(), cut: Mutex::default(), drop_pct: Mutex::new(0) });
    let mut nodes: BTreeMap<i32, Option<Node>> = BTreeMap::new();
    for id in 1..=NODES {
        nodes.insert(id, Some(start(&net, id, dir.path()).await));
    }
    // The topic, created through node 1 (forwarded to the controller once there is one).
    let n1 = nodes[&1].clone().unwrap();
    let mut created = false;
    for _ in 0..200 {
        match n1.create_topic(TOPIC, PARTITIONS, 3, BTreeMap::new(), false).await {
            Ok(_) | Err(AdminError::TopicExists(_)) => {
                created = true;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(created, "seed {seed}: topic not created");
    drop(n1);

    let mut schedule = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut faults = Vec::new();
    // value -> (partition, acknowledged offset)
    let mut acked: BTreeMap<String, (i32, i64)> = BTreeMap::new();
    let mut attempted = 0usize;
    let mut writers: Vec<Writer> = (0..WRITERS).map(|k| Writer::new(seed, k)).collect();
    for round in 0..30 {
        let fault = schedule.gen_range(0..12);
        let a = schedule.gen_range(1..=NODES);
        let b = (a % NODES) + 1;
        let what = match fault {
            0..=2 => {
                net.cut.lock().unwrap().clear();
                *net.drop_pct.lock().unwrap() = 0;
                "heal".to_string()
            }
            3..=4 => {
                net.cut.lock().unwrap().extend([(a, b), (b, a)]);
                format!("cut {a}<->{b}")
            }
            5 => {
                let mut cut = net.cut.lock().unwrap();
                for o in 1..=NODES {
                    if o != a {
                        cut.extend([(a, o), (o, a)]);
                    }
                }
                format!("isolate {a}")
            }
            6 => {
                let pct = schedule.gen_range(5..30);
                *net.drop_pct.lock().unwrap() = pct;
                format!("drop {pct}%")
            }
            7 => {
                // A clean restart of one node (the others keep going meanwhile).
                if let Some(n) = nodes.get_mut(&a).and_then(Option::take) {
                    net.nodes.lock().unwrap().remove(&a);
                    n.shutdown().await;
                    n.wait_stopped().await;
                    drop(n);
                    nodes.insert(a, Some(start(&net, a, dir.path()).await));
                }
                format!("restart {a}")
            }
            8 if schedule.gen_bool(0.3) => {
                // A spike: the wall clock runs eight days ahead for two seconds (retention
                // checks run every second) and comes back. Retention is seven days: every
                // record would look old enough to delete by the jumped clock alone.
                let clock = net.clocks.lock().unwrap()[&a].clone();
                clock.offset_ms.fetch_add(EIGHT_DAYS_MS, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(2)).await;
                clock.offset_ms.fetch_sub(EIGHT_DAYS_MS, std::sync::atomic::Ordering::Relaxed);
                format!("clock of {a} eight days ahead for 2 s")
            }
            8 => {
                // Leases and elections run on monotonic time; what reads the wall clock
                // (producer state, timestamps, retention) must not lose or repeat records.
                let step = schedule.gen_range(-3_600_000i64..=3_600_000);
                let clocks = net.clocks.lock().unwrap();
                clocks[&a].offset_ms.fetch_add(step, std::sync::atomic::Ordering::Relaxed);
                format!("clock of {a} {step:+} ms")
            }
            _ => "none".to_string(),
        };
        faults.push(format!("round {round}: {what}"));
        // Writers: one batch each through a random node to a random partition; a batch not
        // acknowledged is sent again, unchanged, before that writer's next one there.
        let mut writes = Vec::new();
        for w in writers.iter_mut() {
            let via = schedule.gen_range(1..=NODES);
            let partition = schedule.gen_range(0..PARTITIONS);
            let Some(node) = nodes[&via].clone() else { continue };
            let (values, batch) = w.batch(partition, round, &mut attempted);
            writes.push(tokio::spawn(async move { (partition, values, send(&node, partition, batch, 1500).await) }));
        }
        for (w, h) in writers.iter_mut().zip(writes) {
            let (partition, values, r) = h.await.unwrap();
            w.outcome(partition, values, r, &mut acked).unwrap_or_else(|e| panic!("seed {seed}: {e}; faults {faults:#?}"));
        }
        tokio::time::sleep(Duration::from_millis(schedule.gen_range(0..100))).await;
    }

    // Heal, then every replica converges.
    net.cut.lock().unwrap().clear();
    *net.drop_pct.lock().unwrap() = 0;
    let live: Vec<Node> = nodes.values().flatten().cloned().collect();
    // Batches still waiting for an acknowledgement are retried until they get one: a retry
    // of a batch that was written must be answered with its first offsets, not written again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for w in writers.iter_mut() {
        while let Some((&partition, (values, batch))) = w.pending.iter().next() {
            let (values, batch) = (values.clone(), batch.clone());
            let node = &live[schedule.gen_range(0..live.len())];
            let r = send(node, partition, batch, 3000).await;
            w.outcome(partition, values, r, &mut acked).unwrap_or_else(|e| panic!("seed {seed}: {e}; faults {faults:#?}"));
            assert!(tokio::time::Instant::now() < deadline, "seed {seed}: writer {} could not get {partition} acknowledged after healing", w.id);
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let views = loop {
        let views: Vec<Vec<Vec<(i64, String)>>> = (0..PARTITIONS).map(|p| live.iter().map(|n| replica_records(n, p)).collect()).collect();
        let hws: Vec<Vec<i64>> = (0..PARTITIONS).map(|p| live.iter().map(|n| n.partition(TOPIC, p).map(|s| s.high_watermark()).unwrap_or(-1)).collect()).collect();
        let same = views.iter().all(|v| v.iter().all(|r| r == &v[0])) && hws.iter().all(|h| h.iter().all(|x| *x == h[0] && *x >= 0));
        if same {
            break views;
        }
        if tokio::time::Instant::now() >= deadline {
            for n in &live {
                for p in 0..PARTITIONS {
                    let s = n.partition(TOPIC, p).unwrap();
                    eprintln!("node {} partition {p}: {:?}", n.settings().node_id, n.partition_status(&s).await);
                }
            }
            panic!("seed {seed}: replicas did not converge; high watermarks {hws:?}; faults {faults:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Every acknowledged record exactly once, where it was acknowledged; nothing twice.
    let mut seen: HashMap<&str, Vec<(i32, i64)>> = HashMap::new();
    for (p, replicas) in views.iter().enumerate() {
        for (offset, value) in &replicas[0] {
            seen.entry(value.as_str()).or_default().push((p as i32, *offset));
        }
    }
    for (value, at) in &seen {
        assert_eq!(at.len(), 1, "seed {seed}: {value} written {} times: {at:?}; faults {faults:#?}", at.len());
    }
    for (value, (p, o)) in &acked {
        match seen.get(value.as_str()) {
            None => panic!("seed {seed}: acknowledged {value} (partition {p} offset {o}) is lost; partition {p} holds {:?}; acked {:?}; faults {faults:#?}", views[*p as usize][0].iter().take(20).collect::<Vec<_>>(), acked.iter().filter(|a| a.1 .0 == *p).take(20).collect::<Vec<_>>()),
            Some(at) => assert_eq!(at[0], (*p, *o), "seed {seed}: {value} acknowledged at {p}/{o}, found at {:?}", at[0]),
        }
    }
    eprintln!("seed {seed}: {} of {attempted} records acknowledged, {} in the logs, all replicas equal; faults: {}", acked.len(), seen.len(), faults.join(", "));
    for n in live {
        n.shutdown().await;
    }
    acked.len()
}

const WRITERS: i64 = 4;

/// An idempotent producer as librdkafka is one: per partition, sequence numbers follow the
/// records; a batch that got no acknowledgement is sent again unchanged (same sequence)
/// before anything after it.
struct Writer {
    id: i64,
    seed: u64,
    next_seq: HashMap<i32, i32>,
    pending: BTreeMap<i32, (Vec<String>, Bytes)>,
}

impl Writer {
    fn new(seed: u64, id: i64) -> Writer {
        Writer { id, seed, next_seq: HashMap::new(), pending: BTreeMap::new() }
    }

    /// The batch to send to `partition`: the unacknowledged one, or a new one.
    fn batch(&mut self, partition: i32, round: usize, attempted: &mut usize) -> (Vec<String>, Bytes) {
        if let Some(p) = self.pending.get(&partition) {
            return p.clone();
        }
        let seq = self.next_seq.entry(partition).or_insert(0);
        let values: Vec<String> = (0..3).map(|i| format!("s{}-r{round}-w{}-{i}", self.seed, self.id)).collect();
        *attempted += values.len();
        // Timestamped now: retention (7 days) must not take them.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let records: Vec<NewRecord> = values.iter().map(|v| NewRecord { key: None, value: Some(Bytes::from(v.clone())), headers: vec![], timestamp_ms: now }).collect();
        let batch = set_producer(&encode_batch(&records).unwrap(), 1000 + self.id, 0, *seq);
        *seq += values.len() as i32;
        self.pending.insert(partition, (values.clone(), batch.clone()));
        (values, batch)
    }

    /// Takes the answer to a batch. A sequence error is a broker bug here: this writer
    /// never skips a sequence, so the partition forgot what it had written.
    fn outcome(&mut self, partition: i32, values: Vec<String>, r: Result<ProduceAck, PartitionError>, acked: &mut BTreeMap<String, (i32, i64)>) -> Result<(), String> {
        match r {
            Ok(ack) => {
                self.pending.remove(&partition);
                for (i, v) in values.into_iter().enumerate() {
                    acked.insert(v, (partition, ack.base_offset + i as i64));
                }
                Ok(())
            }
            Err(e @ (PartitionError::OutOfOrderSequence { .. } | PartitionError::InvalidProducerEpoch)) => Err(format!("writer {} partition {partition}: {e} for {values:?}", self.id)),
            Err(_) => Ok(()),
        }
    }
}

async fn send(node: &Node, partition: i32, batch: Bytes, timeout_ms: u64) -> Result<ProduceAck, PartitionError> {
    let req = ForwardedProduce { topic: TOPIC.into(), partition, batches: vec![batch], acks: -1, timeout: Duration::from_millis(timeout_ms) };
    node.produce_anywhere(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_seeded_faulty_network() {
    let seeds: Vec<u64> = match std::env::var("BACKWATERS_SEED") {
        Ok(s) => vec![s.parse().expect("BACKWATERS_SEED is a number")],
        Err(_) => (1..=std::env::var("BACKWATERS_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(2)).collect(),
    };
    for seed in seeds {
        eprintln!("seed {seed} (replay with BACKWATERS_SEED={seed})");
        let acked = run(seed).await;
        assert!(acked > 0, "seed {seed}: nothing was acknowledged: the cluster never made progress");
    }
}
