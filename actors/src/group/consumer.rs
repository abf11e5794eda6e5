//! One group of Kafka's consumer group protocol (KIP-848, group type "consumer") as a pure
//! state machine: members send ConsumerGroupHeartbeat, the coordinator computes the
//! assignment itself and hands it out partition by partition.
//!
//! No clock and no I/O: time arrives as `now_ms`, the topics a member may see arrive with its
//! heartbeat, and `dirty` says the group must be written to `__consumer_offsets` before the
//! answer goes out (so a new coordinator knows every epoch and assignment a member was told).
//!
//! Epochs, as KIP-848 defines them:
//! - the **group epoch** goes up whenever what the assignment depends on changes: a member
//!   joins, leaves or changes its subscription, or a subscribed topic gains partitions;
//! - the **assignment epoch** is the group epoch the target assignment was computed for (here
//!   at once, so it only ever lags inside one heartbeat);
//! - each **member epoch** is the assignment epoch the member has reconciled to.
//!
//! Reconciliation keeps one rule: a partition is never owned by two members. A member first
//! gives up (revokes) what the target takes from it and says so in a later heartbeat (its
//! owned partitions); only then does it move to the new epoch, and it gets a partition only
//! once no other member owns it (assigned or still revoking). A member that does not revoke
//! within its rebalance timeout, or stops heartbeating for the session timeout, is removed.

use super::types::GroupError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Partitions by topic name.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

/// Server-side assignors (ConsumerGroupHeartbeat's `server_assignor`); the first is the default.
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// Member epoch of a joining member, of one leaving, and of a static member leaving for a while.
pub const JOIN_EPOCH: i32 = 0;
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// Owns exactly its target assignment at the assignment epoch.
    Stable,
    /// Must give partitions up before it can move on.
    UnrevokedPartitions,
    /// At the assignment epoch, waiting for partitions other members still own.
    UnreleasedPartitions,
}

impl MemberState {
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_names: Vec<String>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// What the subscription resolved to at the member's last heartbeat (existing topics it
    /// names, and those its regex matches).
    pub topics: BTreeSet<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// Partitions the member was told it owns.
    pub assigned: Assignment,
    /// Partitions the member was told to give up and has not yet confirmed.
    pub revoking: Assignment,
    #[serde(skip)]
    last_seen_ms: i64,
    #[serde(skip)]
    revoke_deadline_ms: i64,
    /// The member has not been told its current assignment (a restored member is told again).
    #[serde(skip, default = "yes")]
    unsent: bool,
}

impl ConsumerMember {
    fn owns(&self, topic: &str, p: i32) -> bool {
        self.assigned.get(topic).is_some_and(|s| s.contains(&p)) || self.revoking.get(topic).is_some_and(|s| s.contains(&p))
    }
    /// A static member that left with epoch -2: its assignment waits for its instance id.
    pub fn left(&self) -> bool {
        self.epoch == STATIC_LEAVE_EPOCH
    }
}

/// A ConsumerGroupHeartbeat, with topic ids already turned into names. `None` fields are
/// "unchanged since the last heartbeat".
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_names: Option<Vec<String>>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    /// The partitions the member owns now.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerHeartbeatResult {
    pub error: Option<GroupError>,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    /// The member's assignment, when it changed since the member was last told.
    pub assignment: Option<Assignment>,
    pub heartbeat_interval_ms: i32,
}

/// Coordinator settings of consumer groups (Kafka's group.consumer.* settings).
#[derive(Debug, Clone, Copy)]
pub struct ConsumerLimits {
    pub session_timeout_ms: i64,
    pub heartbeat_interval_ms: i32,
    pub max_size: usize,
}

type Refusal = (GroupError, String);

fn refuse<T>(e: GroupError, why: impl Into<String>) -> Result<T, Refusal> {
    Err((e, why.into()))
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment of each member, computed for `assignment_epoch`.
    pub target: BTreeMap<String, Assignment>,
    /// Partition counts of the subscribed topics, as the target saw them.
    pub partitions: BTreeMap<String, i32>,
    /// The assignor the target was computed with.
    pub assignor: String,
    /// Changed in a way that must be written before the answer.
    #[serde(skip)]
    pub dirty: bool,
    /// Members removed for a lapsed session or revocation since the owner last took them.
    #[serde(skip)]
    pub expired: u64,
}

impl ConsumerGroup {
    /// Kafka's group states: Empty, Assigning, Reconciling, Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.epoch > self.assignment_epoch {
            "Assigning"
        } else if self.members.values().any(|m| !m.left() && (m.epoch != self.assignment_epoch || m.state != MemberState::Stable)) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Every topic some member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members.values().flat_map(|m| m.topics.iter().cloned()).collect()
    }

    /// Answers one heartbeat. `topics`: every topic the member may see, with its partition count.
    pub fn heartbeat(&mut self, now_ms: i64, req: ConsumerHeartbeat, topics: &BTreeMap<String, i32>, limits: ConsumerLimits) -> ConsumerHeartbeatResult {
        let member_id = req.member_id.clone();
        let r = match self.heartbeat_inner(now_ms, req, topics, limits) {
            Ok(r) => r,
            Err((e, why)) => ConsumerHeartbeatResult { error: Some(e), message: Some(why), member_id, member_epoch: -1, assignment: None, heartbeat_interval_ms: 0 },
        };
        let r = ConsumerHeartbeatResult { heartbeat_interval_ms: limits.heartbeat_interval_ms, ..r };
        self.check_invariants();
        r
    }

    fn heartbeat_inner(&mut self, now_ms: i64, req: ConsumerHeartbeat, topics: &BTreeMap<String, i32>, limits: ConsumerLimits) -> Result<ConsumerHeartbeatResult, Refusal> {
        validate(&req)?;
        let id = req.member_id.clone();
        let mut joined = false;
        // A client sends every field after an error or a timeout (an answer may have been
        // lost): such a "full" request is always told the member's assignment (Kafka's rule).
        let full = req.member_epoch == JOIN_EPOCH || (req.rebalance_timeout_ms != -1 && (req.subscribed_names.is_some() || req.regex.is_some()) && req.owned.is_some());
        match req.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => return self.leave(now_ms, &req),
            JOIN_EPOCH => joined = self.join(now_ms, &req, limits)?,
            epoch => {
                let Some(m) = self.members.get(&id) else {
                    return refuse(GroupError::UnknownMemberId, format!("member {id} is not in the group (its session may have lapsed): rejoin with epoch 0"));
                };
                let lost_answer = epoch == m.previous_epoch && req.owned.as_ref().is_some_and(|o| subset(o, &m.assigned));
                if epoch != m.epoch && !lost_answer {
                    return refuse(GroupError::FencedMemberEpoch, format!("member epoch {epoch} is not the member's epoch {}", m.epoch));
                }
            }
        }
        let bump = self.update_member(now_ms, &req, topics)?;
        let topology = self.topology_changed(topics);
        if bump || topology || joined {
            self.epoch += 1;
            self.dirty = true;
        }
        if self.epoch > self.assignment_epoch {
            self.compute_target();
        }
        let (member_epoch, assignment) = self.reconcile(&id, req.owned.as_ref(), now_ms, full);
        Ok(ConsumerHeartbeatResult { error: None, message: None, member_id: id, member_epoch, assignment, heartbeat_interval_ms: 0 })
    }

    /// Joins (or rejoins) a member; true when it is new to the group.
    fn join(&mut self, now_ms: i64, req: &ConsumerHeartbeat, limits: ConsumerLimits) -> Result<bool, Refusal> {
        let id = &req.member_id;
        if let Some(instance) = &req.instance_id {
            let holder = self.members.values().find(|m| m.instance_id.as_ref() == Some(instance) && &m.id != id).map(|m| (m.id.clone(), m.left()));
            match holder {
                // A static member comes back under a new member id: it takes over the
                // assignment its instance left (the old id owns nothing any more).
                Some((old, true)) => {
                    let mut m = self.members.remove(&old).expect("found");
                    if let Some(t) = self.target.remove(&old) {
                        self.target.insert(id.clone(), t);
                    }
                    m.id = id.clone();
                    m.epoch = self.assignment_epoch;
                    m.previous_epoch = self.assignment_epoch;
                    m.unsent = true;
                    m.last_seen_ms = now_ms;
                    self.members.insert(id.clone(), m);
                    self.dirty = true;
                    return Ok(false);
                }
                Some((old, false)) => return refuse(GroupError::UnreleasedInstanceId, format!("instance id {instance} is used by member {old}, which must leave first")),
                None => {}
            }
        }
        match self.members.get_mut(id) {
            // A member that rejoins owns nothing (it was fenced or restarted).
            Some(m) => {
                m.assigned.clear();
                m.revoking.clear();
                m.previous_epoch = m.epoch;
                m.epoch = JOIN_EPOCH;
                m.state = MemberState::Stable;
                m.unsent = true;
                self.dirty = true;
            }
            None => {
                if self.members.len() >= limits.max_size {
                    return refuse(GroupError::GroupMaxSizeReached, format!("the group has its maximum of {} members", limits.max_size));
                }
                self.members.insert(
                    id.clone(),
                    ConsumerMember {
                        id: id.clone(),
                        instance_id: req.instance_id.clone(),
                        rack_id: None,
                        client_id: String::new(),
                        client_host: String::new(),
                        subscribed_names: vec![],
                        regex: None,
                        assignor: None,
                        rebalance_timeout_ms: req.rebalance_timeout_ms,
                        topics: BTreeSet::new(),
                        epoch: JOIN_EPOCH,
                        previous_epoch: JOIN_EPOCH,
                        state: MemberState::Stable,
                        assigned: Assignment::new(),
                        revoking: Assignment::new(),
                        last_seen_ms: now_ms,
                        revoke_deadline_ms: 0,
                        unsent: true,
                    },
                );
                // A new member always changes the assignment (the caller bumps the epoch).
                self.dirty = true;
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn leave(&mut self, now_ms: i64, req: &ConsumerHeartbeat) -> Result<ConsumerHeartbeatResult, Refusal> {
        let id = &req.member_id;
        let Some(m) = self.members.get_mut(id) else {
            return refuse(GroupError::UnknownMemberId, format!("member {id} is not in the group"));
        };
        if req.member_epoch == STATIC_LEAVE_EPOCH && m.instance_id.is_some() {
            // Kept (with its partitions) until its session lapses or its instance returns.
            m.epoch = STATIC_LEAVE_EPOCH;
            m.last_seen_ms = now_ms;
            self.dirty = true;
        } else {
            self.remove(id);
        }
        Ok(ConsumerHeartbeatResult { error: None, message: None, member_id: id.clone(), member_epoch: req.member_epoch, assignment: None, heartbeat_interval_ms: 0 })
    }

    /// Removes a member: what it owned is free, and the target changes.
    fn remove(&mut self, id: &str) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.epoch += 1;
            self.dirty = true;
            self.compute_target();
        }
    }

    /// Takes what the heartbeat changes; true when the assignment depends on the change.
    fn update_member(&mut self, now_ms: i64, req: &ConsumerHeartbeat, topics: &BTreeMap<String, i32>) -> Result<bool, Refusal> {
        let m = self.members.get_mut(&req.member_id).expect("joined or checked");
        m.last_seen_ms = now_ms;
        let before = (m.topics.clone(), m.rack_id.clone(), m.assignor.clone(), m.subscribed_names.clone(), m.regex.clone(), m.instance_id.clone(), m.rebalance_timeout_ms);
        if !req.client_id.is_empty() {
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
        }
        if req.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(r) = &req.rack_id {
            m.rack_id = (!r.is_empty()).then(|| r.clone());
        }
        if let Some(a) = &req.assignor {
            m.assignor = (!a.is_empty()).then(|| a.clone());
        }
        if let Some(names) = &req.subscribed_names {
            m.subscribed_names = names.clone();
        }
        if let Some(r) = &req.regex {
            m.regex = (!r.is_empty()).then(|| r.clone());
        }
        // The regex was checked when it came; one stored earlier compiles too.
        let pattern = match &m.regex {
            Some(r) => Some(compile(r)?),
            None => None,
        };
        m.topics = topics
            .keys()
            .filter(|t| m.subscribed_names.iter().any(|n| n == *t) || pattern.as_ref().is_some_and(|p| !t.starts_with("__") && p.is_match(t)))
            .cloned()
            .collect();
        let after = (m.topics.clone(), m.rack_id.clone(), m.assignor.clone(), m.subscribed_names.clone(), m.regex.clone(), m.instance_id.clone(), m.rebalance_timeout_ms);
        if before != after {
            self.dirty = true;
        }
        Ok(before.0 != after.0 || before.2 != after.2)
    }

    /// Whether a subscribed topic's partition count differs from what the target used (counts
    /// come from this member's view; topics it cannot see are left as they are).
    fn topology_changed(&mut self, topics: &BTreeMap<String, i32>) -> bool {
        let subscribed = self.subscribed_topics();
        let mut changed = false;
        self.partitions.retain(|t, _| {
            let keep = subscribed.contains(t);
            changed |= !keep;
            keep
        });
        for t in subscribed {
            if let Some(&n) = topics.get(&t) {
                if self.partitions.insert(t, n) != Some(n) {
                    changed = true;
                }
            }
        }
        changed
    }

    /// Computes the target assignment for the current group epoch.
    fn compute_target(&mut self) {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        // The assignor most members ask for; the default when none asks.
        let assignor = votes.iter().max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name))).map(|(a, _)| a.to_string()).unwrap_or_else(|| ASSIGNORS[0].to_string());
        let subscriptions: BTreeMap<String, BTreeSet<String>> = self.members.values().map(|m| (m.id.clone(), m.topics.clone())).collect();
        self.target = if assignor == "range" { range(&subscriptions, &self.partitions) } else { uniform(&subscriptions, &self.partitions, &self.target) };
        self.assignor = assignor;
        self.assignment_epoch = self.epoch;
        self.dirty = true;
    }

    /// Moves member `id` as far towards its target as the no-two-owners rule allows; returns
    /// its epoch and, if it changed, the assignment to tell it.
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now_ms: i64, full: bool) -> (i32, Option<Assignment>) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let others: Vec<&ConsumerMember> = self.members.values().filter(|m| m.id != id).collect();
        let taken = |t: &str, p: i32| others.iter().any(|o| o.owns(t, p));
        let free: Assignment = target.iter().map(|(t, ps)| (t.clone(), ps.iter().copied().filter(|p| !taken(t, *p)).collect())).collect();
        let assignment_epoch = self.assignment_epoch;
        let m = self.members.get_mut(id).expect("member");
        let before = (m.epoch, m.assigned.clone(), m.revoking.clone(), m.state);
        // The member confirms a revocation by no longer listing those partitions.
        if !m.revoking.is_empty() && owned.is_some_and(|o| !intersects(o, &m.revoking)) {
            m.revoking.clear();
        }
        if m.revoking.is_empty() {
            let to_revoke = minus(&m.assigned, &target);
            if is_empty(&to_revoke) {
                if m.epoch != assignment_epoch {
                    m.previous_epoch = m.epoch;
                    m.epoch = assignment_epoch;
                }
                m.assigned = union(&m.assigned, &free);
                m.state = if is_empty(&minus(&target, &m.assigned)) { MemberState::Stable } else { MemberState::UnreleasedPartitions };
            } else {
                m.assigned = intersect(&m.assigned, &target);
                m.revoking = to_revoke;
                m.state = MemberState::UnrevokedPartitions;
                m.revoke_deadline_ms = now_ms + m.rebalance_timeout_ms.max(0) as i64;
            }
        }
        m.assigned.retain(|_, ps| !ps.is_empty());
        m.revoking.retain(|_, ps| !ps.is_empty());
        let after = (m.epoch, m.assigned.clone(), m.revoking.clone(), m.state);
        if before != after {
            self.dirty = true;
        }
        if before.1 != after.1 {
            m.unsent = true;
        }
        let tell = (std::mem::take(&mut m.unsent) || full).then(|| m.assigned.clone());
        (m.epoch, tell)
    }

    /// Removes members whose session lapsed (or that did not revoke within their rebalance
    /// timeout).
    pub fn tick(&mut self, now_ms: i64, limits: ConsumerLimits) {
        let gone: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if now_ms > m.last_seen_ms + limits.session_timeout_ms {
                    Some((m.id.clone(), "session timed out"))
                } else if !m.revoking.is_empty() && now_ms > m.revoke_deadline_ms {
                    Some((m.id.clone(), "did not revoke partitions within its rebalance timeout"))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in gone {
            tracing::info!(member = %id, why, "consumer group member removed");
            self.expired += 1;
            self.remove(&id);
        }
        if self.epoch > self.assignment_epoch {
            self.compute_target();
        }
        self.check_invariants();
    }

    /// Checks an offset commit: `epoch` is the committer's member epoch.
    pub fn validate_commit(&self, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        let m = self.members.get(member_id).ok_or(GroupError::UnknownMemberId)?;
        if epoch > m.epoch {
            Err(GroupError::FencedMemberEpoch)
        } else if epoch < m.epoch {
            Err(GroupError::StaleMemberEpoch)
        } else {
            Ok(())
        }
    }

    /// After a restore: sessions start again now.
    pub fn restored(&mut self, now_ms: i64) {
        for m in self.members.values_mut() {
            m.last_seen_ms = now_ms;
            m.revoke_deadline_ms = now_ms + m.rebalance_timeout_ms.max(0) as i64;
            m.unsent = true;
        }
    }

    fn check_invariants(&self) {
        if cfg!(debug_assertions) {
            let mut owner: BTreeMap<(&str, i32), &str> = BTreeMap::new();
            for m in self.members.values() {
                for (t, ps) in m.assigned.iter().chain(m.revoking.iter()) {
                    for p in ps {
                        let prev = owner.insert((t.as_str(), *p), m.id.as_str());
                        assert!(prev.is_none(), "partition {t}-{p} owned by {} and {}", prev.unwrap_or_default(), m.id);
                    }
                }
            }
            assert!(self.assignment_epoch <= self.epoch, "assignment epoch {} ahead of group epoch {}", self.assignment_epoch, self.epoch);
            assert!(self.members.values().all(|m| m.epoch <= self.assignment_epoch), "a member epoch is ahead of the assignment epoch");
        }
    }
}

fn validate(req: &ConsumerHeartbeat) -> Result<(), Refusal> {
    if req.member_id.is_empty() {
        return refuse(GroupError::InvalidRequest, "MemberId can't be empty (the client chooses it, ConsumerGroupHeartbeat v1)");
    }
    if req.instance_id.as_ref().is_some_and(|i| i.is_empty()) {
        return refuse(GroupError::InvalidRequest, "InstanceId can't be empty");
    }
    match req.member_epoch {
        JOIN_EPOCH => {
            if req.subscribed_names.is_none() && req.regex.is_none() {
                return refuse(GroupError::InvalidRequest, "SubscribedTopicNames or SubscribedTopicRegex must be set in the first request");
            }
            if req.rebalance_timeout_ms <= 0 {
                return refuse(GroupError::InvalidRequest, "RebalanceTimeoutMs must be provided in the first request");
            }
            if req.owned.as_ref().is_none_or(|o| o.values().any(|ps| !ps.is_empty())) {
                return refuse(GroupError::InvalidRequest, "TopicPartitions must be empty when (re-)joining");
            }
        }
        LEAVE_EPOCH | STATIC_LEAVE_EPOCH => {}
        e if e > 0 => {}
        e => return refuse(GroupError::InvalidRequest, format!("MemberEpoch {e} is invalid")),
    }
    if let Some(a) = req.assignor.as_deref().filter(|a| !a.is_empty()) {
        if !ASSIGNORS.contains(&a) {
            return refuse(GroupError::UnsupportedAssignor, format!("assignor {a} is not supported (supported: {})", ASSIGNORS.join(", ")));
        }
    }
    if let Some(r) = req.regex.as_deref().filter(|r| !r.is_empty()) {
        compile(r)?;
    }
    Ok(())
}

/// A subscription regex matches whole topic names (as Kafka's RE2J `matches`).
fn compile(r: &str) -> Result<regex::Regex, Refusal> {
    regex::RegexBuilder::new(&format!("^(?:{r})$")).size_limit(1 << 20).build().map_err(|e| (GroupError::InvalidRegularExpression, format!("SubscribedTopicRegex {r:?} does not compile: {e}")))
}

fn is_empty(a: &Assignment) -> bool {
    a.values().all(|ps| ps.is_empty())
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter().map(|(t, ps)| (t.clone(), ps.iter().copied().filter(|p| !b.get(t).is_some_and(|s| s.contains(p))).collect::<BTreeSet<i32>>())).filter(|(_, ps)| !ps.is_empty()).collect()
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter().map(|(t, ps)| (t.clone(), ps.iter().copied().filter(|p| b.get(t).is_some_and(|s| s.contains(p))).collect::<BTreeSet<i32>>())).filter(|(_, ps)| !ps.is_empty()).collect()
}

fn union(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = a.clone();
    for (t, ps) in b {
        out.entry(t.clone()).or_default().extend(ps.iter().copied());
    }
    out.retain(|_, ps| !ps.is_empty());
    out
}

fn subset(a: &Assignment, b: &Assignment) -> bool {
    is_empty(&minus(a, b))
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    !is_empty(&intersect(a, b))
}

/// Range assignor: per topic, contiguous ranges over its subscribers in member-id order.
pub fn range(subscriptions: &BTreeMap<String, BTreeSet<String>>, partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = subscriptions.keys().map(|m| (m.clone(), Assignment::new())).collect();
    for (topic, &n) in partitions {
        let subs: Vec<&String> = subscriptions.iter().filter(|(_, ts)| ts.contains(topic)).map(|(m, _)| m).collect();
        if subs.is_empty() {
            continue;
        }
        let (each, extra) = (n as usize / subs.len(), n as usize % subs.len());
        let mut next = 0;
        for (i, m) in subs.iter().enumerate() {
            let count = each + usize::from(i < extra);
            if count > 0 {
                out.get_mut(*m).expect("member").insert(topic.clone(), (next as i32..(next + count) as i32).collect());
            }
            next += count;
        }
    }
    out
}

/// Uniform assignor: balanced counts (no member more than one partition above another that
/// could take it), keeping each partition where the previous target had it when balance
/// allows, so a rebalance moves as little as it can.
pub fn uniform(subscriptions: &BTreeMap<String, BTreeSet<String>>, partitions: &BTreeMap<String, i32>, previous: &BTreeMap<String, Assignment>) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut count: BTreeMap<&str, usize> = subscriptions.keys().map(|m| (m.as_str(), 0)).collect();
    let eligible = |m: &str, t: &str| subscriptions.get(m).is_some_and(|ts| ts.contains(t));
    let all: Vec<(String, i32)> = partitions.iter().flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p))).filter(|(t, _)| subscriptions.values().any(|ts| ts.contains(t))).collect();
    let cap = if subscriptions.is_empty() { 0 } else { all.len().div_ceil(subscriptions.len()) };
    // Sticky: keep previous owners, up to an even share each.
    for (m, a) in previous {
        for (t, ps) in a {
            for p in ps {
                if eligible(m, t) && *p < partitions.get(t).copied().unwrap_or(0) && count.get(m.as_str()).is_some_and(|c| *c < cap) {
                    owner.insert((t.clone(), *p), m.clone());
                    *count.get_mut(m.as_str()).expect("member") += 1;
                }
            }
        }
    }
    // The rest: each to the eligible member with the fewest.
    for (t, p) in &all {
        if owner.contains_key(&(t.clone(), *p)) {
            continue;
        }
        if let Some(m) = subscriptions.keys().filter(|m| eligible(m, t)).min_by_key(|m| (count[m.as_str()], (*m).clone())) {
            owner.insert((t.clone(), *p), m.clone());
            *count.get_mut(m.as_str()).expect("member") += 1;
        }
    }
    // Balance: move a partition from a member to one with two fewer that may take it.
    for _ in 0..all.len() * 2 {
        let mv = owner.iter().find_map(|((t, p), m)| {
            let c = count[m.as_str()];
            subscriptions.keys().filter(|o| eligible(o, t) && count[o.as_str()] + 1 < c).min_by_key(|o| count[o.as_str()]).map(|o| ((t.clone(), *p), m.clone(), o.clone()))
        });
        let Some((tp, from, to)) = mv else { break };
        *count.get_mut(from.as_str()).expect("member") -= 1;
        *count.get_mut(to.as_str()).expect("member") += 1;
        owner.insert(tp, to);
    }
    let mut out: BTreeMap<String, Assignment> = subscriptions.keys().map(|m| (m.clone(), Assignment::new())).collect();
    for ((t, p), m) in owner {
        out.get_mut(&m).expect("member").entry(t).or_default().insert(p);
    }
    out
}
