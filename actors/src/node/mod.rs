//! The node root: store, supervision tree, topic catalog, and the operations the edges call.

use crate::flusher::{Flusher, FlusherArgs, FlusherMsg};
use crate::group::state::GroupError;
use crate::group::{Coordinator, CoordinatorArgs, CoordinatorMsg, GroupListing, GroupSettings, OFFSETS_TOPIC};
use crate::metrics::Metrics;
use crate::partition::{PartitionActor, PartitionArgs, PartitionMsg, PartitionShared, PartitionStatus, ProduceAck};
use crate::controller::{place, ControllerReply, ControllerRequest, Member, MetaRecord, METADATA_TOPIC, METADATA_UID, PRODUCER_ID_BLOCK};
use crate::replica::{NoPeers, Timing, Transport};
use crate::service::{RunFn, ServiceActor};
use crate::supervisor::{ChildSpec, ChildStatus, RestartPolicy, Supervisor, SupervisorArgs, SupervisorMsg};
use crate::topic::{validate_topic_name, TopicConfig, TopicRecord};
use crate::{Clock, PartitionError, SystemClock};
use backwaters_storage::{PartitionLog, Store};
use bytes::Bytes;
use ractor::{Actor, ActorRef};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use thiserror::Error;

mod checkpoint;
mod compaction;
mod disk;
mod faults;
mod identity;
mod security;
mod txn;
mod writes;
pub use disk::DiskGuard;
mod groups;
pub mod membership;
mod metadata;

/// Most partitions one topic may have.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

pub use crate::quota::Quotas;

/// What a node needs to know to start.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub node_id: i32,
    pub cluster_name: String,
    pub zone: String,
    pub data_dir: PathBuf,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub default_replication_factor: i16,
    pub retention_check_ms: u64,
    pub groups: GroupSettings,
    /// Length of one Raft tick (election after 10-20 ticks without a leader, heartbeats every 2).
    pub raft_tick_ms: u64,
    /// Every node of the cluster with its zone (empty: this node alone).
    pub members: Vec<Member>,
    /// How long a preferred replica must have been caught up before leadership goes back to
    /// it (Kafka's leader.imbalance.check.interval, much shorter).
    pub leader_rebalance_ms: u64,
    /// The controller checkpoints the metadata log once it holds this many records (and
    /// four times the live state); 0 never ([`checkpoint`]).
    pub metadata_checkpoint_records: u64,
    /// Writes are refused while the data folder's file system has less free space than this
    /// (0: never).
    pub min_free_disk_bytes: u64,
    /// sled's page cache, in bytes.
    pub store_cache_bytes: u64,
    /// Transactional ids idle this long are forgotten ([`crate::txn::idle_past`]).
    pub transactional_id_expiration_ms: i64,
}

impl NodeSettings {
    /// The cluster's nodes, sorted by id (this node alone when none are configured).
    pub fn members(&self) -> Vec<Member> {
        let mut m = if self.members.is_empty() { vec![Member { id: self.node_id, zone: self.zone.clone() }] } else { self.members.clone() };
        m.sort_by_key(|m| m.id);
        m
    }
}

/// A write passed on to a partition's leader: topic, partition, whole record batches, acks.
#[derive(Debug, Clone)]
pub struct ForwardedProduce {
    pub topic: String,
    pub partition: i32,
    pub batches: Vec<Bytes>,
    pub acks: i16,
    pub timeout: Duration,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// How a node reaches the others: Raft messages, requests forwarded to the controller, and
/// writes passed on to partition leaders.
pub trait Peers: Transport {
    fn forward(&self, node: i32, req: ControllerRequest) -> BoxFuture<ControllerReply>;
    fn produce(&self, node: i32, req: ForwardedProduce) -> BoxFuture<Result<ProduceAck, PartitionError>>;
}

/// A node alone.
impl Peers for NoPeers {
    fn forward(&self, node: i32, _req: ControllerRequest) -> BoxFuture<ControllerReply> {
        Box::pin(async move { Err(AdminError::Unavailable(format!("node {node} is not reachable: this node has no peers"))) })
    }
    fn produce(&self, _node: i32, _req: ForwardedProduce) -> BoxFuture<Result<ProduceAck, PartitionError>> {
        Box::pin(async move { Err(PartitionError::NotLeader { leader: None }) })
    }
}

/// Failures of topic administration; the edges map each to their protocol's error.
#[derive(Debug, Error, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AdminError {
    #[error("the controller is not reachable or moving; retry: {0}")]
    Unavailable(String),
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name: {0}")]
    InvalidTopic(String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Txn(#[from] crate::txn::TxnError),
}

impl From<backwaters_storage::StorageError> for AdminError {
    fn from(e: backwaters_storage::StorageError) -> Self {
        AdminError::Storage(e.to_string())
    }
}

/// A topic with its live partitions.
pub struct Topic {
    pub record: TopicRecord,
    pub config: Arc<RwLock<TopicConfig>>,
    pub partitions: Vec<Arc<PartitionShared>>,
    /// `record.id` parsed once (Fetch v13+ and KIP-848 look topics up by id on every request).
    uuid: uuid::Uuid,
}

impl Topic {
    fn new(record: TopicRecord, config: Arc<RwLock<TopicConfig>>, partitions: Vec<Arc<PartitionShared>>) -> Topic {
        let uuid = uuid::Uuid::parse_str(&record.id).unwrap_or_default();
        Topic { record, config, partitions, uuid }
    }
    pub fn id(&self) -> uuid::Uuid {
        self.uuid
    }
    pub fn config(&self) -> TopicConfig {
        self.config.read().expect("lock").clone()
    }
}

/// A change to one config of a topic (IncrementalAlterConfigs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
}

static NODE_INSTANCES: AtomicU64 = AtomicU64::new(0);

struct Inner {
    settings: NodeSettings,
    store: Store,
    cluster_id: String,
    instance: u64,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Partition replicas by Raft group id, for routing peers' Raft messages.
    groups: RwLock<std::collections::HashMap<u64, Arc<PartitionShared>>>,
    peers: Arc<dyn Peers>,
    /// The metadata partition's local replica.
    meta: tokio::sync::OnceCell<Arc<PartitionShared>>,
    /// Metadata offset applied so far.
    applied: tokio::sync::watch::Sender<i64>,
    /// This node's producer ids: next, end (exclusive).
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// End of the highest producer-id block granted to any node.
    producer_block_end: std::sync::Mutex<i64>,
    /// Set once the metadata this node held at start is applied: blocks granted before
    /// that may be partly used already and are never handed out again.
    caught_up: std::sync::atomic::AtomicBool,
    disk: Arc<disk::DiskGuard>,
    /// Serializes catalog changes (create/delete/alter) so each is one consistent step.
    catalog: tokio::sync::Mutex<()>,
    root: ActorRef<SupervisorMsg>,
    partitions_sup: ActorRef<SupervisorMsg>,
    listeners_sup: ActorRef<SupervisorMsg>,
    groups_sup: ActorRef<SupervisorMsg>,
    /// Set once `__consumer_offsets` exists.
    groups_ready: tokio::sync::OnceCell<()>,
    /// `__consumer_offsets` partitions whose coordinator runs here, with the leader term it
    /// loaded at.
    coordinators: tokio::sync::Mutex<BTreeMap<i32, u64>>,
    /// Nodes drained by an operator (from the metadata log): they lead nothing.
    drained: Arc<RwLock<std::collections::BTreeSet<i32>>>,
    /// Node liveness as the controller recorded it in the metadata log.
    liveness: RwLock<BTreeMap<i32, bool>>,
    /// Kafka users' SCRAM credentials from the metadata log, by (user, mechanism).
    scram: RwLock<BTreeMap<(String, backwaters_proto::sasl::Mechanism), backwaters_proto::sasl::ScramCredential>>,
    /// Kafka ACLs from the metadata log (shared with every request that checks them).
    acls: RwLock<Arc<Vec<crate::acl::AclBinding>>>,
    /// Client quotas as the metadata log sets them (see [`crate::quota`]).
    quotas: RwLock<Arc<Quotas>>,
    /// Transactions as the metadata log records them ([`txn`]).
    txns: txn::TxnBook,
    metrics: Arc<Metrics>,
    /// The wall clock (fault injection may set it off), and the clocks derived from it.
    clock: Arc<crate::SkewedClock>,
    steady: Arc<crate::SteadyClock>,
    deletion: Arc<crate::DeletionClock>,
    flusher_name: String,
    /// Which nodes this node has actor-cluster sessions with ([`membership`]).
    member_view: membership::MemberView,
}

/// Longest CreateTopics / CreatePartitions wait for the new partitions' first leaders.
const CREATE_WAITS_FOR_LEADERS: Duration = Duration::from_secs(10);

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl Node {
    /// Opens the data dir and starts the supervision tree and every stored partition.
    pub async fn start(settings: NodeSettings) -> Result<Node, String> {
        Self::start_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(settings: NodeSettings, clock: Arc<dyn Clock>) -> Result<Node, String> {
        Self::start_with(settings, clock, Arc::new(NoPeers)).await
    }

    /// Starts a node that reaches its peers through `peers`.
    pub async fn start_with(settings: NodeSettings, clock: Arc<dyn Clock>, peers: Arc<dyn Peers>) -> Result<Node, String> {
        let (dir, cache_bytes) = (settings.data_dir.clone(), settings.store_cache_bytes);
        let store = tokio::task::spawn_blocking(move || Store::open_with_cache(&dir, cache_bytes))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot open the data dir {}: {e}", settings.data_dir.display()))?;
        let cluster_id = identity::check_identity(&store, &settings)?;
        let instance = NODE_INSTANCES.fetch_add(1, Ordering::SeqCst);
        let metrics = Arc::new(Metrics::default());
        let prefix = format!("n{}.{instance}", settings.node_id);
        let flusher_name = format!("{prefix}/0-flusher");
        let flusher_spec = {
            let (store, metrics) = (store.clone(), metrics.clone());
            ChildSpec::new(flusher_name.clone(), Flusher, move || FlusherArgs { store: store.clone(), metrics: metrics.clone() })
        };
        let partitions_spec = ChildSpec::new(format!("{prefix}/1-partitions"), Supervisor, || SupervisorArgs {
            policy: RestartPolicy { max_restarts: 10, window: Duration::from_secs(10) },
            children: vec![],
        });
        let listeners_spec = ChildSpec::new(format!("{prefix}/3-listeners"), Supervisor, || SupervisorArgs { policy: RestartPolicy::default(), children: vec![] });
        let groups_spec = ChildSpec::new(format!("{prefix}/4-groups"), Supervisor, || SupervisorArgs {
            policy: RestartPolicy { max_restarts: 10, window: Duration::from_secs(10) },
            children: vec![],
        });
        let (root, _) = Actor::spawn(
            Some(format!("{prefix}/root")),
            Supervisor,
            SupervisorArgs { policy: RestartPolicy::default(), children: vec![flusher_spec, partitions_spec, listeners_spec, groups_spec] },
        )
        .await
        .map_err(|e| format!("starting the node's supervision tree: {e}"))?;
        let lookup = |n: &str| ractor::registry::where_is(n.to_string()).map(ActorRef::<SupervisorMsg>::from).ok_or(format!("{n} did not start"));
        let partitions_sup = lookup(&format!("{prefix}/1-partitions"))?;
        let listeners_sup = lookup(&format!("{prefix}/3-listeners"))?;
        let groups_sup = lookup(&format!("{prefix}/4-groups"))?;
        let disk = Arc::new(disk::DiskGuard::new(settings.min_free_disk_bytes));
        let clock = Arc::new(crate::SkewedClock::new(clock));
        let steady = Arc::new(crate::SteadyClock::anchored(clock.clone()));
        let deletion = Arc::new(crate::DeletionClock { wall: clock.clone(), steady: steady.clone() });
        let node = Node {
            inner: Arc::new(Inner {
                settings,
                store,
                cluster_id,
                instance,
                topics: RwLock::new(BTreeMap::new()),
                groups: RwLock::new(Default::default()),
                peers,
                meta: tokio::sync::OnceCell::new(),
                applied: tokio::sync::watch::channel(-1).0,
                producer_ids: tokio::sync::Mutex::new((0, 0)),
                producer_block_end: std::sync::Mutex::new(0),
                caught_up: std::sync::atomic::AtomicBool::new(false),
                disk,
                catalog: tokio::sync::Mutex::new(()),
                root,
                partitions_sup,
                listeners_sup,
                groups_sup,
                groups_ready: tokio::sync::OnceCell::new(),
                coordinators: tokio::sync::Mutex::new(BTreeMap::new()),
                drained: Arc::default(),
                liveness: Default::default(),
                scram: Default::default(),
                acls: Default::default(),
                quotas: Default::default(),
                txns: Default::default(),
                metrics,
                clock,
                steady,
                deletion,
                flusher_name,
                member_view: Default::default(),
            }),
        };
        node.start_ticker().await?;
        node.start_metadata().await?;
        node.start_retention().await?;
        node.start_disk_watch().await?;
        node.start_txn_markers().await?;
        node.start_checkpoints().await?;
        node.start_tombstone_horizons().await?;
        if node.topic(OFFSETS_TOPIC).is_some() {
            node.ensure_groups().await.map_err(|e| format!("starting group coordinators: {e}"))?;
        }
        Ok(node)
    }

    /// A handle that does not keep the node alive (for actors the node owns).
    pub fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    pub fn settings(&self) -> &NodeSettings {
        &self.inner.settings
    }
    pub fn cluster_id(&self) -> &str {
        &self.inner.cluster_id
    }
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Time for timeouts: a jump of the wall clock does not move it (see [`crate::SteadyClock`]).
    pub fn steady_ms(&self) -> i64 {
        self.inner.steady.now_ms()
    }

    fn prefix(&self) -> String {
        format!("n{}.{}", self.inner.settings.node_id, self.inner.instance)
    }

    /// Starts the actors of a topic's partitions that have a replica here.
    async fn build_topic(&self, record: TopicRecord, config: Arc<RwLock<TopicConfig>>, old: Option<&Topic>) -> Result<Topic, String> {
        let mut partitions = Vec::with_capacity(record.partition_uids.len());
        for (i, uid) in record.partition_uids.iter().enumerate() {
            if let Some(p) = old.and_then(|t| t.partitions.get(i)) {
                partitions.push(p.clone());
                continue;
            }
            let replicas = record.replicas.get(i).cloned().unwrap_or_else(|| vec![self.inner.settings.node_id]);
            partitions.push(self.start_partition(&record.name, i as i32, *uid, replicas, config.clone()).await?);
        }
        Ok(Topic::new(record, config, partitions))
    }

    /// Starts the replica of partition `uid` if this node is one of `replicas`; otherwise
    /// only notes where the partition is.
    async fn start_partition(&self, topic: &str, partition: i32, uid: u64, replicas: Vec<i32>, config: Arc<RwLock<TopicConfig>>) -> Result<Arc<PartitionShared>, String> {
        let node_id = self.inner.settings.node_id;
        let local = replicas.contains(&node_id);
        let shared = PartitionShared::new(topic.to_string(), partition, &self.inner.store, uid, replicas);
        if !local {
            return Ok(shared);
        }
        self.inner.groups.write().expect("lock").insert(uid, shared.clone());
        let transport: Arc<dyn Transport> = self.inner.peers.clone();
        let on_leader: Arc<dyn Fn(bool, u64) + Send + Sync> = if uid == METADATA_UID {
            Arc::new(|_, _| {})
        } else {
            let node = self.downgrade();
            let offsets = (topic == OFFSETS_TOPIC).then(|| shared.clone());
            Arc::new(move |leads, term| {
                if let Some(shared) = offsets.clone() {
                    let node = node.clone();
                    tokio::spawn(async move {
                        if let Some(n) = node.upgrade() {
                            n.refresh_coordinator(shared).await;
                        }
                    });
                }
                if !leads {
                    return;
                }
                let node = node.clone();
                tokio::spawn(async move {
                    // Tell the cluster (Metadata answers from the metadata log). Retried while
                    // the controller moves; a newer term makes it moot.
                    for _ in 0..20 {
                        let Some(n) = node.upgrade() else { return };
                        match n.controller(ControllerRequest::Leader { uid, node: node_id, term }).await {
                            Ok(()) => return,
                            Err(e) => tracing::debug!(uid, term, error = %e, "leader record not written yet"),
                        }
                        drop(n);
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                });
            })
        };
        let flusher_name = self.inner.flusher_name.clone();
        let flusher: Arc<dyn Fn() -> Option<ActorRef<FlusherMsg>> + Send + Sync> = Arc::new(move || ractor::registry::where_is(flusher_name.clone()).map(ActorRef::from));
        let (s, clock, metrics) = (shared.clone(), self.inner.deletion.clone(), self.inner.metrics.clone());
        let (drained, rebalance_ms, tick_ms, disk) = (self.inner.drained.clone(), self.inner.settings.leader_rebalance_ms, self.inner.settings.raft_tick_ms, self.inner.disk.clone());
        let spec = ChildSpec::new(self.partition_actor_name(uid), PartitionActor, move || PartitionArgs {
            shared: s.clone(),
            config: config.clone(),
            flusher: flusher.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            node_id,
            group: uid,
            transport: transport.clone(),
            timing: Timing::Randomized,
            on_leader: on_leader.clone(),
            drained: drained.clone(),
            disk: disk.clone(),
            rebalance_ms,
            tick_ms,
        });
        ractor::call!(self.inner.partitions_sup, SupervisorMsg::StartChild, spec)
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("partition {topic}-{partition}: {e}"))?;
        Ok(shared)
    }

    fn partition_actor_name(&self, uid: u64) -> String {
        format!("{}/p{uid}", self.prefix())
    }

    async fn start_retention(&self) -> Result<(), String> {
        let node = Arc::downgrade(&self.inner);
        let period = Duration::from_millis(self.inner.settings.retention_check_ms.max(10));
        let run: RunFn = Arc::new(move |mut stop| {
            let node = node.clone();
            Box::pin(async move {
                let mut tick = tokio::time::interval(period);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => return Ok(()),
                    }
                    let Some(inner) = node.upgrade() else { return Ok(()) };
                    let topics: Vec<Arc<Topic>> = inner.topics.read().expect("lock").values().cloned().collect();
                    for p in topics.iter().flat_map(|t| t.partitions.iter()) {
                        if let Some(a) = p.actor() {
                            let _ = a.cast(PartitionMsg::Retention);
                        }
                    }
                }
            })
        });
        self.start_service("2-retention", run, false).await
    }

    /// One ticker drives the Raft clocks of every partition (a timer per group would be a
    /// task per group).
    async fn start_ticker(&self) -> Result<(), String> {
        let node = Arc::downgrade(&self.inner);
        let period = Duration::from_millis(self.inner.settings.raft_tick_ms.max(1));
        let run: RunFn = Arc::new(move |mut stop| {
            let node = node.clone();
            Box::pin(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => return Ok(()),
                    }
                    let Some(inner) = node.upgrade() else { return Ok(()) };
                    let groups: Vec<Arc<PartitionShared>> = inner.groups.read().expect("lock").values().cloned().collect();
                    for p in groups {
                        if let Some(a) = p.actor() {
                            let _ = a.cast(PartitionMsg::Tick);
                        }
                    }
                }
            })
        });
        self.start_service("2-raft-ticker", run, false).await
    }

    /// A Raft message from a peer node for group `group`.
    pub fn deliver_raft(&self, group: u64, m: raft::prelude::Message) {
        let target = self.inner.groups.read().expect("lock").get(&group).cloned();
        if target.as_ref().is_some_and(|p| !self.admits_raft(p, &m)) {
            return;
        }
        match target.and_then(|p| p.actor()) {
            Some(a) => {
                let _ = a.cast(PartitionMsg::Raft(Box::new(m)));
            }
            None => tracing::debug!(group, "raft message for a replica that is not running"),
        }
    }

    /// Starts a long-running service (a listener) under the node's supervision.
    pub async fn start_service(&self, name: &str, run: RunFn, listener: bool) -> Result<(), String> {
        let spec = ChildSpec::new(format!("{}/{name}", self.prefix()), ServiceActor, move || run.clone());
        let sup = if listener { &self.inner.listeners_sup } else { &self.inner.root };
        ractor::call!(sup, SupervisorMsg::StartChild, spec).map_err(|e| e.to_string())?
    }

    /// Every topic, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.inner.topics.read().expect("lock").values().cloned().collect()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.inner.topics.read().expect("lock").get(name).cloned()
    }

    /// The topic with Kafka topic id `id` (a scan: ids are asked for a few at a time).
    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<Arc<Topic>> {
        if id.is_nil() {
            return None;
        }
        self.inner.topics.read().expect("lock").values().find(|t| t.id() == id).cloned()
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<PartitionShared>> {
        let t = self.topic(topic)?;
        usize::try_from(partition).ok().and_then(|p| t.partitions.get(p).cloned())
    }

    /// The topic, created with the defaults if it is missing and auto-create is on.
    pub async fn topic_or_auto_create(&self, name: &str) -> Option<Arc<Topic>> {
        if let Some(t) = self.topic(name) {
            return Some(t);
        }
        if !self.inner.settings.auto_create_topics || validate_topic_name(name).is_err() {
            return None;
        }
        match self.create_topic(name, -1, -1, BTreeMap::new(), false).await {
            Ok(t) => Some(t),
            Err(AdminError::TopicExists(_)) => self.topic(name),
            Err(e) => {
                tracing::warn!(topic = name, error = %e, "auto-create failed");
                None
            }
        }
    }

    /// Creates a topic; `partitions`/`replication_factor` of -1 take the node defaults.
    pub async fn create_topic(&self, name: &str, partitions: i32, replication_factor: i16, overrides: BTreeMap<String, String>, validate_only: bool) -> Result<Arc<Topic>, AdminError> {
        validate_topic_name(name).map_err(AdminError::InvalidTopic)?;
        let partitions = if partitions == -1 { self.inner.settings.default_partitions } else { partitions };
        let nodes = self.inner.settings.members().len();
        let rf = if replication_factor == -1 { self.inner.settings.default_replication_factor.min(nodes as i16) } else { replication_factor };
        if partitions < 1 || partitions > MAX_PARTITIONS_PER_TOPIC {
            return Err(AdminError::InvalidPartitions(format!("{partitions}; use 1 to {MAX_PARTITIONS_PER_TOPIC}")));
        }
        if rf < 1 || rf as usize > nodes {
            return Err(AdminError::InvalidReplicationFactor(format!("{rf}; this cluster has {nodes} node(s), so use 1 to {nodes}")));
        }
        let config = TopicConfig::from_overrides(&overrides).map_err(AdminError::InvalidConfig)?;
        if self.topic(name).is_some() {
            return Err(AdminError::TopicExists(name.to_string()));
        }
        if validate_only {
            let record = TopicRecord { name: name.to_string(), id: String::new(), partition_uids: vec![], replication_factor: rf, overrides, internal: name.starts_with("__"), replicas: vec![] };
            return Ok(Arc::new(Topic::new(record, Arc::new(RwLock::new(config)), vec![])));
        }
        self.controller(ControllerRequest::CreateTopic { name: name.to_string(), partitions, replication_factor: rf, overrides }).await?;
        let topic = self.topic(name).ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
        self.wait_for_leaders(&topic, CREATE_WAITS_FOR_LEADERS).await;
        Ok(topic)
    }

    /// Waits (bounded) until every partition of `topic` has a leader this node knows of. As
    /// in Kafka, where the controller names leaders when it creates a topic, a client that
    /// created a topic can produce to it at once; clients that cache the metadata of their
    /// first look (rskafka) would otherwise keep seeing LEADER_NOT_AVAILABLE.
    pub async fn wait_for_leaders(&self, topic: &Topic, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if topic.partitions.iter().all(|p| p.leader().is_some()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Flushes the store (admin changes answer only once durable).
    pub async fn flush(&self) -> Result<(), AdminError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.flush()).await.map_err(|e| AdminError::Storage(e.to_string()))??;
        Ok(())
    }

    pub async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        refuse_internal(name)?;
        self.controller(ControllerRequest::DeleteTopic { name: name.to_string() }).await
    }

    /// Grows a topic to `total` partitions.
    pub async fn create_partitions(&self, name: &str, total: i32, validate_only: bool) -> Result<(), AdminError> {
        refuse_internal(name)?;
        let topic = self.topic(name).ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
        check_growth(&topic, total)?;
        if validate_only {
            return Ok(());
        }
        self.controller(ControllerRequest::CreatePartitions { name: name.to_string(), total }).await?;
        if let Some(topic) = self.topic(name) {
            self.wait_for_leaders(&topic, CREATE_WAITS_FOR_LEADERS).await;
        }
        Ok(())
    }

    /// Replaces a topic's config overrides (AlterConfigs) or applies changes to them
    /// (IncrementalAlterConfigs).
    pub async fn alter_config(&self, name: &str, ops: Vec<ConfigOp>, replace: bool, validate_only: bool) -> Result<(), AdminError> {
        let topic = self.topic(name).ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
        altered(&topic.record.overrides, &ControllerRequest::alter(name, &ops, replace))?;
        if validate_only {
            return Ok(());
        }
        self.controller(ControllerRequest::alter(name, &ops, replace)).await
    }

    /// The idempotent producers a local replica remembers.
    pub async fn partition_producers(&self, shared: &PartitionShared) -> Option<Vec<backwaters_storage::ProducerEntry>> {
        let actor = shared.actor()?;
        ractor::call_t!(actor, PartitionMsg::Producers, 5_000).ok()
    }

    pub async fn partition_status(&self, shared: &PartitionShared) -> Option<PartitionStatus> {
        let actor = shared.actor()?;
        ractor::call_t!(actor, PartitionMsg::Status, 5_000).ok()
    }

    /// A new idempotent producer id, from a block the controller gave this node (ids are
    /// never reused: blocks are recorded in the metadata log before they are used; a block
    /// left half-used by a restart is skipped).
    pub async fn init_producer_id(&self) -> Result<(i64, i16), AdminError> {
        for _ in 0..2 {
            {
                let mut ids = self.inner.producer_ids.lock().await;
                if ids.0 < ids.1 {
                    let id = ids.0;
                    ids.0 += 1;
                    return Ok((id, 0));
                }
            }
            self.controller(ControllerRequest::ProducerIds { node: self.inner.settings.node_id }).await?;
        }
        Err(AdminError::Unavailable("no producer id block was granted".into()))
    }

    /// Marks `node` drained (or not) in the metadata log.
    pub async fn set_drained(&self, node: i32, drained: bool) -> Result<(), AdminError> {
        self.controller(ControllerRequest::Drain { node, drained }).await
    }

    /// Asks the local replica (the leader) of `shared` to hand leadership to `to`.
    pub fn transfer_leadership(&self, shared: &PartitionShared, to: i32) -> Result<(), PartitionError> {
        if shared.leader() != Some(self.inner.settings.node_id) {
            return Err(PartitionError::NotLeader { leader: shared.leader() });
        }
        let actor = shared.actor().ok_or(PartitionError::Busy)?;
        actor.cast(PartitionMsg::TransferLeader { node: to }).map_err(|_| PartitionError::Busy)
    }

    /// Where a partition's leadership belongs: its first replica that is not drained.
    pub fn preferred_leader(&self, shared: &PartitionShared) -> Option<i32> {
        let drained = self.inner.drained.read().expect("lock");
        shared.replicas.iter().copied().find(|r| !drained.contains(r))
    }

    /// Asks the leaders of `uids` (through the metadata log) to hand leadership to their
    /// preferred replicas now.
    pub async fn elect_preferred(&self, uids: Vec<u64>) -> Result<(), AdminError> {
        self.controller(ControllerRequest::ElectPreferred { uids }).await
    }

    /// Nodes drained by an operator.
    pub fn drained(&self) -> Vec<i32> {
        self.inner.drained.read().expect("lock").iter().copied().collect()
    }

    /// Node liveness as recorded in the metadata log (nodes never recorded are missing).
    pub fn liveness(&self) -> BTreeMap<i32, bool> {
        self.inner.liveness.read().expect("lock").clone()
    }

    /// The node leading the metadata log (the controller), if one is known.
    /// The local replica of the metadata log (`__cluster_metadata`-0), once started.
    pub fn metadata_partition(&self) -> Option<Arc<PartitionShared>> {
        self.inner.meta.get().cloned()
    }

    pub fn controller_id(&self) -> Option<i32> {
        self.inner.meta.get().and_then(|m| m.leader())
    }

    /// Every supervisor's children with their restart counts.
    pub async fn supervision_tree(&self) -> Vec<(String, ChildStatus)> {
        let mut out = Vec::new();
        for (sup_name, sup) in [("root", &self.inner.root), ("partitions", &self.inner.partitions_sup), ("listeners", &self.inner.listeners_sup), ("groups", &self.inner.groups_sup)] {
            if let Ok(children) = ractor::call_t!(sup, SupervisorMsg::Status, 5_000) {
                out.extend(children.into_iter().map(|c| (sup_name.to_string(), c)));
            }
        }
        out
    }

    /// Stops listeners, partitions and the flusher in that order, then flushes once more.
    pub async fn shutdown(&self) {
        let _ = ractor::call_t!(self.inner.listeners_sup, SupervisorMsg::Shutdown, 15_000);
        let _ = ractor::call_t!(self.inner.groups_sup, SupervisorMsg::Shutdown, 15_000);
        let _ = ractor::call_t!(self.inner.partitions_sup, SupervisorMsg::Shutdown, 30_000);
        let _ = ractor::call_t!(self.inner.root, SupervisorMsg::Shutdown, 30_000);
        let _ = self.inner.root.stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10))).await;
        let _ = self.flush().await;
        tracing::info!("node stopped");
    }

    /// False once the node is shutting down (its root supervisor no longer runs).
    pub fn running(&self) -> bool {
        self.inner.root.get_status() == ractor::ActorStatus::Running
    }

    /// Waits until the root supervisor stops (it stops when a failure escalates to it).
    pub async fn wait_stopped(&self) {
        while self.inner.root.get_status() != ractor::ActorStatus::Stopped {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A node handle that does not keep it alive.
#[derive(Clone)]
pub struct WeakNode(Weak<Inner>);

impl WeakNode {
    pub fn upgrade(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}

/// Checks that `total` grows `topic`.
fn check_growth(topic: &Topic, total: i32) -> Result<(), AdminError> {
    let have = topic.partitions.len() as i32;
    if total <= have {
        return Err(AdminError::InvalidPartitions(format!("topic {} has {have} partitions; the new count {total} must be larger", topic.record.name)));
    }
    if total > MAX_PARTITIONS_PER_TOPIC {
        return Err(AdminError::InvalidPartitions(format!("{total} is above the limit {MAX_PARTITIONS_PER_TOPIC}")));
    }
    Ok(())
}

/// The overrides after an AlterConfig request, checked.
fn altered(overrides: &BTreeMap<String, String>, req: &ControllerRequest) -> Result<BTreeMap<String, String>, AdminError> {
    let ControllerRequest::AlterConfig { ops, replace, .. } = req else { return Ok(overrides.clone()) };
    let mut out = if *replace { BTreeMap::new() } else { overrides.clone() };
    for (k, v) in ops {
        match v {
            Some(v) => {
                out.insert(k.clone(), v.clone());
            }
            None => {
                out.remove(k);
            }
        }
    }
    TopicConfig::from_overrides(&out).map_err(AdminError::InvalidConfig)?;
    Ok(out)
}

/// `__consumer_offsets` belongs to the group coordinators: its partition count decides where
/// groups live, and its records are their state.
fn refuse_internal(name: &str) -> Result<(), AdminError> {
    if name == OFFSETS_TOPIC {
        return Err(AdminError::InvalidTopic(format!("{OFFSETS_TOPIC} is managed by the group coordinators and cannot be deleted or grown; delete groups instead")));
    }
    Ok(())
}
