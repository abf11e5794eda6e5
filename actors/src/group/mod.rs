//! Group coordinators: one supervised actor per `__consumer_offsets` partition, owning the
//! groups that hash to it (Kafka's rule: `abs(java hashCode(group)) % partitions`).
//!
//! The actor is a shell around pure [`state::Group`]s. Everything a new coordinator must know
//! is written to its partition of `__consumer_offsets` first (Kafka's record format, see
//! `backwaters_proto::kafka::group_records`) and only then answered, so offsets and
//! memberships are replicated and kept exactly like any other record. On (re)start the actor
//! replays its partition. The partition is compacted by checkpoint: when it holds many more
//! records than live state, the coordinator writes the live state again and deletes the
//! records before it.

pub mod consumer;
#[cfg(test)]
mod consumer_tests;
pub mod state;
mod txn;
pub mod types;
#[cfg(test)]
mod tests;

use crate::metrics::Metrics;
use crate::node::WeakNode;
use crate::partition::PartitionShared;
use crate::Clock;
use backwaters_proto::kafka::batch::{control_marker, decode_records, encode_batch, parse_batch, NewRecord};
use backwaters_proto::kafka::group_records::{self as rec, GroupRecordKey, OffsetValue};
use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use consumer::{ConsumerGroup, ConsumerHeartbeat, ConsumerHeartbeatResult};
use state::{Group, GroupError, GroupLimits, JoinRequest, JoinResult, Output, Phase, SyncRequest, SyncResult};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The internal topic that holds committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Longest committed-offset metadata string accepted (Kafka's offset.metadata.max.bytes).
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// Longest group id accepted (it is a key in the log).
pub const GROUP_ID_MAX_BYTES: usize = 1024;
/// Records per batch written to `__consumer_offsets`.
const RECORDS_PER_BATCH: usize = 500;
/// How often groups are checked for expired sessions and finished delays.
const TICK: Duration = Duration::from_millis(100);
/// How often offsets retention and compaction run.
const HOUSEKEEPING_MS: i64 = 5_000;

/// Group coordination settings of a node (Kafka's offsets.* and group.* settings).
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings {
    pub offsets_topic_partitions: i32,
    pub offsets_retention_ms: i64,
    pub limits: GroupLimits,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings { offsets_topic_partitions: 50, offsets_retention_ms: 7 * 24 * 3600 * 1000, limits: GroupLimits::default() }
    }
}

/// The `__consumer_offsets` partition a group belongs to (Java's `String.hashCode`).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    (h & 0x7fff_ffff) % partitions.max(1)
}

/// Checks a client-given group id.
pub fn validate_group_id(group: &str) -> Result<(), GroupError> {
    if group.is_empty() || group.len() > GROUP_ID_MAX_BYTES {
        Err(GroupError::InvalidGroupId)
    } else {
        Ok(())
    }
}

/// One offset to commit.
#[derive(Debug, Clone)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups and the admin API show it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub generation: i32,
    pub leader: String,
    pub members: Vec<MemberDescription>,
    pub offsets: Vec<(String, i32, OffsetValue)>,
}

type PartitionResults = Result<Vec<Result<(), GroupError>>, GroupError>;
/// Committed offsets by (topic, partition); None where nothing was committed.
pub type FetchedOffsets = Result<Vec<(String, i32, Option<OffsetValue>)>, GroupError>;

pub enum CoordinatorMsg {
    Join(String, JoinRequest, RpcReplyPort<JoinResult>),
    Sync(String, SyncRequest, RpcReplyPort<SyncResult>),
    Heartbeat { group: String, member_id: String, instance_id: Option<String>, generation: i32, reply: RpcReplyPort<Result<(), GroupError>> },
    Leave { group: String, members: Vec<(String, Option<String>)>, reply: RpcReplyPort<PartitionResults> },
    Commit { group: String, member_id: String, instance_id: Option<String>, generation: i32, offsets: Vec<CommitOffset>, reply: RpcReplyPort<PartitionResults> },
    /// `None` partitions: every committed offset of the group. `member`: a consumer-protocol
    /// member fetching (OffsetFetch v9) with its epoch, checked like a commit.
    Fetch { group: String, partitions: Option<Vec<(String, i32)>>, member: Option<(String, i32)>, reply: RpcReplyPort<FetchedOffsets> },
    List(RpcReplyPort<Vec<GroupListing>>),
    Describe(String, RpcReplyPort<Option<GroupDescription>>),
    /// ConsumerGroupHeartbeat (KIP-848). `topics`: every topic the member may see, with its
    /// partition count.
    ConsumerHeartbeat { group: String, req: ConsumerHeartbeat, topics: BTreeMap<String, i32>, reply: RpcReplyPort<ConsumerHeartbeatResult> },
    /// A group of the consumer protocol (None: unknown, or a classic group).
    DescribeConsumer(String, RpcReplyPort<Option<ConsumerGroup>>),
    Delete(String, RpcReplyPort<Result<(), GroupError>>),
    DeleteOffsets { group: String, partitions: Vec<(String, i32)>, reply: RpcReplyPort<PartitionResults> },
    /// TxnOffsetCommit: offsets committed in producer `producer_id`'s transaction.
    TxnCommit { group: String, producer_id: i64, epoch: i16, member_id: String, instance_id: Option<String>, generation: i32, offsets: Vec<CommitOffset>, reply: RpcReplyPort<PartitionResults> },
    /// The marker of `producer_id`'s transaction is written (and committed) on this
    /// coordinator's partition.
    TxnEnded { producer_id: i64, commit: bool },
    /// Partitions of a group with offsets in an open transaction.
    Unstable { group: String, reply: RpcReplyPort<Vec<(String, i32)>> },
    Tick,
}

// Local only (ractor's `cluster` feature wants every message type to say so).
impl ractor::Message for CoordinatorMsg {}

/// What a waiting member is answered through.
pub enum Waiter {
    Join(RpcReplyPort<JoinResult>),
    Sync(RpcReplyPort<SyncResult>),
}

#[derive(Clone)]
pub struct Coordinator;

pub struct CoordinatorArgs {
    pub node: WeakNode,
    pub metrics: Arc<Metrics>,
    pub shared: Arc<PartitionShared>,
    pub settings: GroupSettings,
    pub clock: Arc<dyn Clock>,
}

pub struct CoordinatorState {
    node: WeakNode,
    metrics: Arc<Metrics>,
    shared: Arc<PartitionShared>,
    settings: GroupSettings,
    clock: Arc<dyn Clock>,
    groups: HashMap<String, Group<Waiter>>,
    /// Offsets of open transactions, by producer id ([`txn`]).
    pending: HashMap<i64, txn::Pending>,
    last_housekeeping_ms: i64,
}

impl Actor for Coordinator {
    type Msg = CoordinatorMsg;
    type State = CoordinatorState;
    type Arguments = CoordinatorArgs;

    async fn pre_start(&self, myself: ActorRef<CoordinatorMsg>, args: CoordinatorArgs) -> Result<CoordinatorState, ActorProcessingErr> {
        let now = args.clock.now_ms();
        let mut st = CoordinatorState { node: args.node, metrics: args.metrics, shared: args.shared, settings: args.settings, clock: args.clock, groups: HashMap::new(), pending: HashMap::new(), last_housekeeping_ms: now };
        let records = st.load()?;
        tracing::debug!(partition = st.shared.partition, groups = st.groups.len(), records, "group coordinator loaded");
        myself.send_interval(TICK, || CoordinatorMsg::Tick);
        Ok(st)
    }

    async fn handle(&self, _myself: ActorRef<CoordinatorMsg>, msg: CoordinatorMsg, st: &mut CoordinatorState) -> Result<(), ActorProcessingErr> {
        let now = st.clock.now_ms();
        let mut out = Vec::new();
        match msg {
            CoordinatorMsg::Join(group, req, reply) => {
                let limits = st.settings.limits;
                let g = st.groups.entry(group.clone()).or_insert_with(|| Group::new(&group, limits, now));
                g.join(now, req, Waiter::Join(reply), &mut out);
                st.settle(&group, now, out).await;
            }
            CoordinatorMsg::Sync(group, req, reply) => match st.groups.get_mut(&group) {
                Some(g) => {
                    g.sync(now, req, Waiter::Sync(reply), &mut out);
                    st.settle(&group, now, out).await;
                }
                None => {
                    let _ = reply.send(SyncResult { error: Some(GroupError::UnknownMemberId), ..Default::default() });
                }
            },
            CoordinatorMsg::Heartbeat { group, member_id, instance_id, generation, reply } => {
                let r = match st.groups.get_mut(&group) {
                    Some(g) => g.heartbeat(now, &member_id, instance_id.as_deref(), generation),
                    None => Err(GroupError::UnknownMemberId),
                };
                let _ = reply.send(r);
            }
            CoordinatorMsg::Leave { group, members, reply } => match st.groups.get_mut(&group) {
                Some(g) => {
                    let r = g.leave(now, &members, &mut out);
                    st.settle(&group, now, out).await;
                    let _ = reply.send(Ok(r));
                }
                None => {
                    let _ = reply.send(Ok(members.iter().map(|_| Err(GroupError::UnknownMemberId)).collect()));
                }
            },
            CoordinatorMsg::Commit { group, member_id, instance_id, generation, offsets, reply } => {
                let r = st.commit(now, &group, &member_id, instance_id.as_deref(), generation, offsets).await;
                let _ = reply.send(r);
            }
            CoordinatorMsg::Fetch { group, partitions, member, reply } => {
                let checked = match (&member, st.groups.get(&group)) {
                    (Some((id, epoch)), Some(g)) if g.group_type() == "consumer" => g.consumer.validate_commit(id, *epoch),
                    (Some(_), None) => Err(GroupError::UnknownMemberId),
                    _ => Ok(()),
                };
                let _ = reply.send(checked.map(|_| st.fetch(&group, partitions)));
            }
            CoordinatorMsg::ConsumerHeartbeat { group, req, topics, reply } => {
                let r = st.consumer_heartbeat(now, &group, req, &topics).await;
                let _ = reply.send(r);
            }
            CoordinatorMsg::DescribeConsumer(group, reply) => {
                let _ = reply.send(st.groups.get(&group).filter(|g| g.group_type() == "consumer").map(|g| g.consumer.clone()));
            }
            CoordinatorMsg::List(reply) => {
                let mut list: Vec<GroupListing> = st
                    .groups
                    .values()
                    .map(|g| GroupListing { group_id: g.id.clone(), protocol_type: g.protocol_type.clone().unwrap_or_else(|| if g.group_type() == "consumer" { "consumer".into() } else { String::new() }), state: g.state_name(), group_type: g.group_type() })
                    .collect();
                list.sort_by(|a, b| a.group_id.cmp(&b.group_id));
                let _ = reply.send(list);
            }
            CoordinatorMsg::Describe(group, reply) => {
                let _ = reply.send(st.groups.get(&group).map(describe));
            }
            CoordinatorMsg::Delete(group, reply) => {
                let r = st.delete_group(&group).await;
                let _ = reply.send(r);
            }
            CoordinatorMsg::DeleteOffsets { group, partitions, reply } => {
                let r = st.delete_offsets(&group, partitions).await;
                let _ = reply.send(r);
            }
            CoordinatorMsg::TxnCommit { group, producer_id, epoch, member_id, instance_id, generation, offsets, reply } => {
                let r = st.txn_commit(now, &group, producer_id, epoch, &member_id, instance_id.as_deref(), generation, offsets).await;
                let _ = reply.send(r);
            }
            CoordinatorMsg::TxnEnded { producer_id, commit } => st.txn_ended(producer_id, commit, now),
            CoordinatorMsg::Unstable { group, reply } => {
                let _ = reply.send(st.unstable(&group));
            }
            CoordinatorMsg::Tick => {
                let ids: Vec<String> = st.groups.keys().cloned().collect();
                let consumer_limits = st.settings.limits.consumer();
                for id in ids {
                    let mut out = Vec::new();
                    let g = st.groups.get_mut(&id).expect("listed");
                    g.tick(now, &mut out);
                    if !g.consumer.members.is_empty() {
                        g.consumer.tick(now, consumer_limits);
                    }
                    st.settle(&id, now, out).await;
                    let _ = st.persist_consumer(&id).await;
                }
                if now - st.last_housekeeping_ms >= HOUSEKEEPING_MS {
                    st.last_housekeeping_ms = now;
                    st.housekeeping(now).await;
                }
            }
        }
        Ok(())
    }
}

fn describe(g: &Group<Waiter>) -> GroupDescription {
    if g.group_type() == "consumer" {
        return describe_consumer(g);
    }
    let p = g.protocol.clone().unwrap_or_default();
    GroupDescription {
        group_id: g.id.clone(),
        state: g.phase.name(),
        group_type: "classic",
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        protocol: p.clone(),
        generation: g.generation,
        leader: g.leader.clone().unwrap_or_default(),
        members: g
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(&p),
                assignment: m.assignment.clone(),
            })
            .collect(),
        offsets: committed(g),
    }
}

/// The group's committed offsets, as descriptions list them.
fn committed(g: &Group<Waiter>) -> Vec<(String, i32, OffsetValue)> {
    g.offsets.iter().map(|((t, p), v)| (t.clone(), *p, v.clone())).collect()
}

/// A consumer-protocol group in the classic shape: subscriptions and assignments encoded as
/// the classic consumer protocol would carry them, the group epoch as the generation.
fn describe_consumer(g: &Group<Waiter>) -> GroupDescription {
    use backwaters_proto::kafka::consumer_protocol::{encode_assignment, encode_subscription};
    let c = &g.consumer;
    GroupDescription {
        group_id: g.id.clone(),
        state: c.state_name(),
        group_type: "consumer",
        protocol_type: "consumer".into(),
        protocol: c.assignor.clone(),
        generation: c.epoch,
        leader: String::new(),
        members: c
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: encode_subscription(&m.topics.iter().cloned().collect::<Vec<_>>()),
                assignment: encode_assignment(&m.assigned.iter().map(|(t, ps)| (t.clone(), ps.iter().copied().collect())).collect::<Vec<_>>()),
            })
            .collect(),
        offsets: committed(g),
    }
}

impl CoordinatorState {
    /// ConsumerGroupHeartbeat: the group answers, and what changed is durable before the
    /// member hears of it.
    async fn consumer_heartbeat(&mut self, now: i64, group: &str, req: ConsumerHeartbeat, topics: &BTreeMap<String, i32>) -> ConsumerHeartbeatResult {
        let limits = self.settings.limits;
        let member_id = req.member_id.clone();
        let g = self.groups.entry(group.to_string()).or_insert_with(|| Group::new(group, limits, now));
        if !g.members.is_empty() {
            return ConsumerHeartbeatResult { error: Some(GroupError::GroupIdNotFound), message: Some(format!("group {group} is a classic group with members (JoinGroup); it takes consumer-protocol members once it is empty")), member_id, member_epoch: -1, ..Default::default() };
        }
        // An empty classic group becomes a consumer group (its offsets stay).
        g.protocol_type = None;
        g.protocol = None;
        let r = g.consumer.heartbeat(now, req, topics, limits.consumer());
        if let Err(e) = self.persist_consumer(group).await {
            return ConsumerHeartbeatResult { error: Some(e), message: Some("the group could not be written to __consumer_offsets; retry".into()), member_id, member_epoch: -1, ..Default::default() };
        }
        r
    }

    /// Writes a consumer-protocol group that changed (a whole snapshot: groups are small).
    async fn persist_consumer(&mut self, group: &str) -> Result<(), GroupError> {
        let Some(g) = self.groups.get_mut(group) else { return Ok(()) };
        self.metrics.group_members_expired.add(std::mem::take(&mut g.consumer.expired));
        if !g.consumer.dirty {
            return Ok(());
        }
        g.consumer.dirty = false;
        let snapshot = serde_json::to_vec(&g.consumer).expect("a consumer group serializes");
        let r = self.write(vec![(GroupRecordKey::ConsumerGroup { group: group.to_string() }, Some(rec::encode_consumer_group_value(&snapshot)))]).await;
        if r.is_err() {
            // Tried again at the next change or tick.
            if let Some(g) = self.groups.get_mut(group) {
                g.consumer.dirty = true;
            }
        }
        r
    }

    /// Replays this coordinator's partition of `__consumer_offsets`.
    fn load(&mut self) -> Result<usize, String> {
        let now = self.clock.now_ms();
        let limits = self.settings.limits;
        let mut offset = self.shared.log_start_offset();
        let hw = self.shared.high_watermark();
        let mut n = 0;
        while offset < hw {
            let entries = self.shared.read(offset, 4 << 20).map_err(|e| format!("reading {OFFSETS_TOPIC}-{}: {e}", self.shared.partition))?;
            let Some(last) = entries.last() else { break };
            offset = last.batch_header().and_then(Result::ok).map(|h| h.last_offset() + 1).unwrap_or(offset + 1).max(offset + 1);
            for e in &entries {
                let header = e.batch_header().and_then(Result::ok);
                if let Some(h) = header.filter(|h| h.is_control()) {
                    if let Some(commit) = control_marker(&e.payload) {
                        self.txn_ended(h.producer_id, commit, now);
                    }
                    continue;
                }
                let in_txn = header.filter(|h| h.is_transactional()).map(|h| h.producer_id);
                for r in decode_records(&e.payload)? {
                    n += 1;
                    let replayed = match in_txn {
                        Some(pid) => self.replay_pending(pid, r.key.as_deref(), r.value.as_deref()),
                        None => self.replay(r.key.as_deref(), r.value.as_deref(), limits, now),
                    };
                    if let Err(why) = replayed {
                        // A record this build cannot read (damaged, or written by a newer one) is
                        // skipped rather than making the whole partition's groups unavailable.
                        tracing::warn!(partition = self.shared.partition, offset = r.offset, error = %why, "skipping unreadable {OFFSETS_TOPIC} record");
                    }
                }
            }
        }
        self.groups.retain(|_, g| !(g.members.is_empty() && g.offsets.is_empty() && g.protocol_type.is_none() && g.consumer.members.is_empty()));
        Ok(n)
    }

    fn replay(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, limits: GroupLimits, now: i64) -> Result<(), String> {
        let key = rec::decode_key(key.ok_or("record without a key")?)?;
        let id = key.group().to_string();
        match (key, value) {
            (GroupRecordKey::Offset { topic, partition, .. }, Some(v)) => {
                let v = rec::decode_offset_value(v)?;
                self.groups.entry(id.clone()).or_insert_with(|| Group::new(&id, limits, now)).offsets.insert((topic, partition), v);
            }
            (GroupRecordKey::Offset { topic, partition, .. }, None) => {
                if let Some(g) = self.groups.get_mut(&id) {
                    g.offsets.remove(&(topic, partition));
                }
            }
            (GroupRecordKey::Group { .. }, Some(v)) => {
                let v = rec::decode_group_value(v)?;
                self.groups.entry(id.clone()).or_insert_with(|| Group::new(&id, limits, now)).restore(v, now);
            }
            (GroupRecordKey::Group { .. }, None) => {
                self.groups.remove(&id);
            }
            (GroupRecordKey::ConsumerGroup { .. }, Some(v)) => {
                let mut c: ConsumerGroup = serde_json::from_slice(rec::decode_consumer_group_value(v)?).map_err(|e| format!("consumer group snapshot: {e}"))?;
                c.restored(now);
                self.groups.entry(id.clone()).or_insert_with(|| Group::new(&id, limits, now)).consumer = c;
            }
            (GroupRecordKey::ConsumerGroup { .. }, None) => {
                if let Some(g) = self.groups.get_mut(&id) {
                    g.consumer = ConsumerGroup::default();
                }
            }
        }
        Ok(())
    }

    /// Writes records to this coordinator's partition and waits until they are durable.
    async fn write(&self, records: Vec<(GroupRecordKey, Option<Bytes>)>) -> Result<(), GroupError> {
        if records.is_empty() {
            return Ok(());
        }
        let node = self.node.upgrade().ok_or(GroupError::CoordinatorNotAvailable)?;
        let now = self.clock.now_ms();
        let mut batches = Vec::new();
        for chunk in records.chunks(RECORDS_PER_BATCH) {
            let recs: Vec<NewRecord> = chunk.iter().map(|(k, v)| NewRecord { key: Some(rec::encode_key(k)), value: v.clone(), headers: vec![], timestamp_ms: now }).collect();
            let b = encode_batch(&recs).map_err(|e| {
                tracing::error!(error = %e, "encoding a {OFFSETS_TOPIC} batch");
                GroupError::CoordinatorNotAvailable
            })?;
            let h = parse_batch(&b).map_err(|_| GroupError::CoordinatorNotAvailable)?;
            batches.push((h, b));
        }
        node.produce(&self.shared, batches, -1, Duration::from_secs(15)).await.map_err(|e| {
            tracing::warn!(partition = self.shared.partition, error = %e, "writing to {OFFSETS_TOPIC} failed");
            GroupError::CoordinatorNotAvailable
        })?;
        Ok(())
    }

    /// Persists a group whose membership changed, then delivers its waiting answers. If the
    /// write fails, nobody is told an assignment the next coordinator would not know.
    async fn settle(&mut self, group: &str, now: i64, mut out: Vec<Output<Waiter>>) {
        if let Some(g) = self.groups.get_mut(group) {
            self.metrics.group_rebalances.add(std::mem::take(&mut g.rebalances));
            self.metrics.group_members_expired.add(std::mem::take(&mut g.expired));
        }
        let dirty = self.groups.get(group).is_some_and(|g| g.dirty);
        if dirty {
            let g = self.groups.get_mut(group).expect("dirty group exists");
            g.dirty = false;
            let value = rec::encode_group_value(&g.to_value());
            if let Err(e) = self.write(vec![(GroupRecordKey::Group { group: group.to_string() }, Some(value))]).await {
                let g = self.groups.get_mut(group).expect("group exists");
                for o in out.iter_mut() {
                    if let Output::Sync(_, r) = o {
                        if r.error.is_none() {
                            *r = SyncResult { error: Some(e), ..Default::default() };
                        }
                    }
                }
                if g.phase == Phase::Stable {
                    g.prepare_rebalance(now, &mut out);
                }
            }
        }
        for o in out {
            match o {
                Output::Join(Waiter::Join(port), r) => {
                    let _ = port.send(r);
                }
                Output::Sync(Waiter::Sync(port), r) => {
                    let _ = port.send(r);
                }
                _ => tracing::error!(group, "a group answer went to the wrong kind of waiter (a bug)"),
            }
        }
    }

    async fn commit(&mut self, now: i64, group: &str, member_id: &str, instance_id: Option<&str>, generation: i32, offsets: Vec<CommitOffset>) -> PartitionResults {
        let (results, records, accepted) = self.plan_commit(now, group, member_id, instance_id, generation, offsets)?;
        if let Err(e) = self.write(records).await {
            return Ok(results.into_iter().map(|r| r.and(Err(e))).collect());
        }
        self.metrics.group_offset_commits.add(accepted.len() as u64);
        let g = self.groups.get_mut(group).expect("created by plan_commit");
        g.offsets.extend(accepted);
        Ok(results)
    }

    /// Checks a commit (OffsetCommit or TxnOffsetCommit) against the group and each offset:
    /// the per-offset results, the records to write, and the offsets they set.
    #[allow(clippy::type_complexity)]
    fn plan_commit(&mut self, now: i64, group: &str, member_id: &str, instance_id: Option<&str>, generation: i32, offsets: Vec<CommitOffset>) -> Result<(Vec<Result<(), GroupError>>, Vec<(GroupRecordKey, Option<Bytes>)>, Vec<((String, i32), OffsetValue)>), GroupError> {
        let limits = self.settings.limits;
        let g = self.groups.entry(group.to_string()).or_insert_with(|| Group::new(group, limits, now));
        g.validate_commit(now, member_id, instance_id, generation)?;
        let node = self.node.upgrade().ok_or(GroupError::CoordinatorNotAvailable)?;
        let mut results = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for o in offsets {
            let r = if o.metadata.len() > OFFSET_METADATA_MAX_BYTES {
                Err(GroupError::OffsetMetadataTooLarge)
            } else if node.partition(&o.topic, o.partition).is_none() {
                Err(GroupError::UnknownTopicOrPartition)
            } else {
                let v = OffsetValue { offset: o.offset, leader_epoch: o.leader_epoch, metadata: o.metadata, commit_timestamp: now };
                records.push((GroupRecordKey::Offset { group: group.to_string(), topic: o.topic.clone(), partition: o.partition }, Some(rec::encode_offset_value(&v))));
                accepted.push(((o.topic, o.partition), v));
                Ok(())
            };
            results.push(r);
        }
        Ok((results, records, accepted))
    }

    fn fetch(&self, group: &str, partitions: Option<Vec<(String, i32)>>) -> Vec<(String, i32, Option<OffsetValue>)> {
        let g = self.groups.get(group);
        match partitions {
            Some(ps) => ps.into_iter().map(|(t, p)| {
                let v = g.and_then(|g| g.offsets.get(&(t.clone(), p)).cloned());
                (t, p, v)
            }).collect(),
            None => g.map(|g| g.offsets.iter().map(|((t, p), v)| (t.clone(), *p, Some(v.clone()))).collect()).unwrap_or_default(),
        }
    }

    async fn delete_group(&mut self, group: &str) -> Result<(), GroupError> {
        let g = self.groups.get(group).ok_or(GroupError::GroupIdNotFound)?;
        if !g.is_empty() {
            return Err(GroupError::NonEmptyGroup);
        }
        let mut records: Vec<(GroupRecordKey, Option<Bytes>)> = g.offsets.keys().map(|(t, p)| (GroupRecordKey::Offset { group: group.to_string(), topic: t.clone(), partition: *p }, None)).collect();
        records.push((GroupRecordKey::Group { group: group.to_string() }, None));
        self.write(records).await?;
        self.groups.remove(group);
        tracing::info!(group, "group deleted");
        Ok(())
    }

    async fn delete_offsets(&mut self, group: &str, partitions: Vec<(String, i32)>) -> PartitionResults {
        let g = self.groups.get(group).ok_or(GroupError::GroupIdNotFound)?;
        let subscribed = g.subscribed_topics();
        let mut results = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        for (t, p) in &partitions {
            if subscribed.as_ref().is_none_or(|s| s.contains(t)) && !g.members.is_empty() {
                results.push(Err(GroupError::GroupSubscribedToTopic));
            } else {
                if g.offsets.contains_key(&(t.clone(), *p)) {
                    records.push((GroupRecordKey::Offset { group: group.to_string(), topic: t.clone(), partition: *p }, None));
                }
                results.push(Ok(()));
            }
        }
        self.write(records).await?;
        let g = self.groups.get_mut(group).expect("checked");
        for ((t, p), r) in partitions.into_iter().zip(&results) {
            if r.is_ok() {
                g.offsets.remove(&(t, p));
            }
        }
        Ok(results)
    }

    /// Offsets retention (Kafka's rule: a group's offsets expire once it has been empty for
    /// the retention time; offsets committed without a group expire one by one), removal of
    /// groups with nothing left, and compaction of the partition.
    async fn housekeeping(&mut self, now: i64) {
        let retention = self.settings.offsets_retention_ms;
        let mut records = Vec::new();
        let mut gone = Vec::new();
        for g in self.groups.values() {
            if g.phase != Phase::Empty || !g.consumer.members.is_empty() {
                continue;
            }
            let expired: Vec<&(String, i32)> = if g.protocol_type.is_some() {
                if now - g.phase_since_ms >= retention { g.offsets.keys().collect() } else { vec![] }
            } else {
                g.offsets.iter().filter(|(_, v)| now - v.commit_timestamp >= retention).map(|(k, _)| k).collect()
            };
            let all = expired.len() == g.offsets.len();
            records.extend(expired.into_iter().map(|(t, p)| (GroupRecordKey::Offset { group: g.id.clone(), topic: t.clone(), partition: *p }, None)));
            if all {
                records.push((GroupRecordKey::Group { group: g.id.clone() }, None));
                gone.push(g.id.clone());
            }
        }
        if !records.is_empty() {
            if self.write(records.clone()).await.is_err() {
                return;
            }
            for (k, _) in records {
                if let GroupRecordKey::Offset { group, topic, partition } = k {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            }
            for id in gone {
                tracing::info!(group = %id, "group expired (empty, no offsets left)");
                self.groups.remove(&id);
            }
        }
        self.compact().await;
    }

    /// Rewrites the live state and deletes everything before it, once the partition holds
    /// several times more records than live state.
    async fn compact(&mut self) {
        let live: usize = self.groups.values().map(|g| g.offsets.len() + 1).sum();
        let held = (self.shared.high_watermark() - self.shared.log_start_offset()).max(0) as usize;
        // Open transactions' offsets live only in their batches: never delete those.
        if held < 1_000 || held < 4 * live + 1_000 || !self.pending.is_empty() {
            return;
        }
        let start = self.shared.log_end_offset();
        let mut records = Vec::with_capacity(live);
        for g in self.groups.values() {
            if g.protocol_type.is_some() {
                records.push((GroupRecordKey::Group { group: g.id.clone() }, Some(rec::encode_group_value(&g.to_value()))));
            }
            if g.consumer.epoch > 0 {
                let snapshot = serde_json::to_vec(&g.consumer).expect("a consumer group serializes");
                records.push((GroupRecordKey::ConsumerGroup { group: g.id.clone() }, Some(rec::encode_consumer_group_value(&snapshot))));
            }
            for ((t, p), v) in &g.offsets {
                records.push((GroupRecordKey::Offset { group: g.id.clone(), topic: t.clone(), partition: *p }, Some(rec::encode_offset_value(v))));
            }
        }
        if self.write(records).await.is_err() {
            return;
        }
        let Some(node) = self.node.upgrade() else { return };
        match node.delete_records(&self.shared, start, Duration::from_secs(15)).await {
            Ok(_) => tracing::info!(partition = self.shared.partition, before = held, live, "compacted {OFFSETS_TOPIC} partition"),
            Err(e) => tracing::warn!(partition = self.shared.partition, error = %e, "compaction could not delete old records"),
        }
    }
}
