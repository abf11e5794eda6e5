//! One consumer group as a pure state machine: Kafka's classic group protocol.
//!
//! No clock, no I/O: time arrives as `now_ms` arguments, new member ids arrive with the
//! request (`fresh_member_id`), and answers that wait for other members (JoinGroup during a
//! rebalance, SyncGroup until the leader's assignment) leave as [`Output`]s carrying the
//! caller's token `T` (the actor uses a reply port, tests a number). The `dirty` flag says the
//! membership must be written to `__consumer_offsets` before the outputs are delivered.
//!
//! Phases, as Kafka names them:
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!   ▲                 ▲        │                                   │ leader's SyncGroup
//!   └── no members ───┘        └──────── member change ◀── Stable ◀┘
//! ```

pub use super::types::*;
use super::consumer::ConsumerGroup;
use backwaters_proto::kafka::group_records::{GroupValue, MemberValue, OffsetValue};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug)]
pub struct Member<T> {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join_waiter: Option<T>,
    sync_waiter: Option<T>,
    last_seen_ms: i64,
}

impl<T> Member<T> {
    /// The member's metadata for `protocol` (its subscription, for consumers).
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// One group: membership and committed offsets.
#[derive(Debug)]
pub struct Group<T> {
    pub id: String,
    pub phase: Phase,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member<T>>,
    /// group.instance.id → member id of static members.
    statics: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with when they lapse.
    pending: HashMap<String, i64>,
    rebalance_deadline_ms: i64,
    /// The initial rebalance delay of a group that was empty.
    delay_until_ms: Option<i64>,
    sync_deadline_ms: i64,
    pub phase_since_ms: i64,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Membership under the consumer group protocol (KIP-848). A group has members under one
    /// protocol at a time: which one decides its type ("consumer" or "classic").
    pub consumer: ConsumerGroup,
    /// The membership changed in a way a new coordinator must know.
    pub dirty: bool,
    /// Rebalances completed and sessions expired since the owner last took them (metrics).
    pub rebalances: u64,
    pub expired: u64,
    limits: GroupLimits,
}

impl<T> Group<T> {
    pub fn new(id: &str, limits: GroupLimits, now_ms: i64) -> Group<T> {
        Group {
            id: id.to_string(),
            phase: Phase::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            statics: HashMap::new(),
            pending: HashMap::new(),
            rebalance_deadline_ms: 0,
            delay_until_ms: None,
            sync_deadline_ms: 0,
            phase_since_ms: now_ms,
            offsets: BTreeMap::new(),
            consumer: ConsumerGroup::default(),
            dirty: false,
            rebalances: 0,
            expired: 0,
            limits,
        }
    }

    // ---- JoinGroup -------------------------------------------------------------------

    pub fn join(&mut self, now_ms: i64, req: JoinRequest, token: T, out: &mut Vec<Output<T>>) {
        if let Err(e) = self.validate_join(&req) {
            out.push(Output::Join(token, JoinResult::error(e, &req.member_id)));
            return;
        }
        if req.member_id.is_empty() {
            self.join_new(now_ms, req, token, out);
        } else {
            self.join_known(now_ms, req, token, out);
        }
        self.try_complete_join(now_ms, out);
        self.check_invariants();
    }

    fn validate_join(&self, req: &JoinRequest) -> Result<(), GroupError> {
        if self.phase == Phase::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if req.session_timeout_ms < self.limits.min_session_timeout_ms || req.session_timeout_ms > self.limits.max_session_timeout_ms {
            return Err(GroupError::InvalidSessionTimeout);
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        // Members of the consumer protocol hold the group (no online migration here).
        if !self.consumer.members.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let others: Vec<&Member<T>> = self.members.values().filter(|m| m.id != req.member_id).collect();
        if others.is_empty() {
            return Ok(());
        }
        if self.protocol_type.as_deref() != Some(req.protocol_type.as_str()) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let common = |name: &str| others.iter().all(|m| m.protocols.iter().any(|(n, _)| n == name));
        if !req.protocols.iter().any(|(n, _)| common(n)) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    fn join_new(&mut self, now_ms: i64, req: JoinRequest, token: T, out: &mut Vec<Output<T>>) {
        let Some(instance) = req.instance_id.clone() else {
            if req.require_known_member {
                let id = req.fresh_member_id.clone();
                self.pending.insert(id.clone(), now_ms + req.session_timeout_ms as i64);
                out.push(Output::Join(token, JoinResult::error(GroupError::MemberIdRequired, &id)));
            } else {
                self.add_member(now_ms, req, token, out);
            }
            return;
        };
        let Some(old_id) = self.statics.get(&instance).cloned() else {
            self.add_member(now_ms, req, token, out);
            return;
        };
        // A static member came back with a new process: it takes over the old identity and
        // the old one is fenced.
        let new_id = req.fresh_member_id.clone();
        let mut m = self.members.remove(&old_id).expect("static member is a member");
        if let Some(t) = m.join_waiter.take() {
            out.push(Output::Join(t, JoinResult::error(GroupError::FencedInstanceId, &old_id)));
        }
        if let Some(t) = m.sync_waiter.take() {
            out.push(Output::Sync(t, SyncResult::error(GroupError::FencedInstanceId)));
        }
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        let unchanged = m.same_protocols(&req.protocols);
        m.id = new_id.clone();
        self.update_member(&mut m, &req, now_ms);
        self.statics.insert(instance, new_id.clone());
        self.dirty = true;
        if self.phase == Phase::Stable && unchanged && !was_leader {
            // Nothing about the group changed: answer with the current generation, no rebalance.
            self.members.insert(new_id.clone(), m);
            out.push(Output::Join(token, self.join_result(&new_id)));
        } else {
            m.join_waiter = Some(token);
            self.members.insert(new_id, m);
            self.prepare_rebalance(now_ms, out);
        }
    }

    fn join_known(&mut self, now_ms: i64, req: JoinRequest, token: T, out: &mut Vec<Output<T>>) {
        let id = req.member_id.clone();
        if self.pending.remove(&id).is_some() {
            self.add_member(now_ms, req, token, out);
            return;
        }
        if let Err(e) = self.validate_member(&id, req.instance_id.as_deref()) {
            out.push(Output::Join(token, JoinResult::error(e, &id)));
            return;
        }
        let phase = self.phase;
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        let mut m = self.members.remove(&id).expect("validated");
        let unchanged = m.same_protocols(&req.protocols);
        self.update_member(&mut m, &req, now_ms);
        match phase {
            Phase::PreparingRebalance => {
                if let Some(old) = m.join_waiter.replace(token) {
                    out.push(Output::Join(old, JoinResult::error(GroupError::RebalanceInProgress, &id)));
                }
                self.members.insert(id, m);
            }
            // The member lost the answer to its previous join: give it again.
            Phase::CompletingRebalance | Phase::Stable if unchanged && !(phase == Phase::Stable && is_leader) => {
                self.members.insert(id.clone(), m);
                out.push(Output::Join(token, self.join_result(&id)));
            }
            Phase::CompletingRebalance | Phase::Stable => {
                m.join_waiter = Some(token);
                self.members.insert(id, m);
                self.prepare_rebalance(now_ms, out);
            }
            Phase::Empty | Phase::Dead => {
                self.members.insert(id.clone(), m);
                out.push(Output::Join(token, JoinResult::error(GroupError::UnknownMemberId, &id)));
            }
        }
    }

    fn add_member(&mut self, now_ms: i64, req: JoinRequest, token: T, out: &mut Vec<Output<T>>) {
        if self.members.len() >= self.limits.max_size {
            out.push(Output::Join(token, JoinResult::error(GroupError::GroupMaxSizeReached, &req.member_id)));
            return;
        }
        let id = if req.member_id.is_empty() { req.fresh_member_id.clone() } else { req.member_id.clone() };
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let mut m = Member {
            id: id.clone(),
            instance_id: req.instance_id.clone(),
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms: 0,
            rebalance_timeout_ms: 0,
            protocols: vec![],
            assignment: Bytes::new(),
            join_waiter: Some(token),
            sync_waiter: None,
            last_seen_ms: now_ms,
        };
        self.update_member(&mut m, &req, now_ms);
        if let Some(i) = &req.instance_id {
            self.statics.insert(i.clone(), id.clone());
        }
        self.members.insert(id, m);
        if self.phase == Phase::PreparingRebalance {
            // A member that joins during the initial delay extends it (up to the rebalance timeout).
            if let Some(d) = self.delay_until_ms.as_mut() {
                *d = (now_ms + self.limits.initial_rebalance_delay_ms).min(self.rebalance_deadline_ms);
            }
        }
        self.prepare_rebalance(now_ms, out);
    }

    fn update_member(&self, m: &mut Member<T>, req: &JoinRequest, now_ms: i64) {
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = if req.rebalance_timeout_ms > 0 { req.rebalance_timeout_ms } else { req.session_timeout_ms };
        m.protocols = req.protocols.clone();
        m.last_seen_ms = now_ms;
    }

    fn join_result(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            let p = self.protocol.as_deref().unwrap_or_default();
            self.members.values().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata_for(p))).collect()
        } else {
            vec![]
        };
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    /// Starts a rebalance (if one is not running): pending SyncGroups learn of it.
    pub fn prepare_rebalance(&mut self, now_ms: i64, out: &mut Vec<Output<T>>) {
        if self.phase == Phase::PreparingRebalance {
            return;
        }
        if self.phase == Phase::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(t) = m.sync_waiter.take() {
                    out.push(Output::Sync(t, SyncResult::error(GroupError::RebalanceInProgress)));
                }
            }
        }
        let was_empty = self.phase == Phase::Empty;
        self.phase = Phase::PreparingRebalance;
        self.phase_since_ms = now_ms;
        let timeout = self.members.values().map(|m| m.rebalance_timeout_ms as i64).max().unwrap_or(0);
        self.rebalance_deadline_ms = now_ms + timeout;
        self.delay_until_ms = was_empty.then(|| (now_ms + self.limits.initial_rebalance_delay_ms).min(self.rebalance_deadline_ms));
    }

    /// Ends the join phase once every member rejoined (after the initial delay) or the
    /// rebalance timeout passed (members that did not rejoin are removed).
    fn try_complete_join(&mut self, now_ms: i64, out: &mut Vec<Output<T>>) {
        if self.phase != Phase::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some()) && self.pending.is_empty();
        let delay_over = self.delay_until_ms.is_none_or(|d| now_ms >= d);
        if !(all_joined && delay_over) && now_ms < self.rebalance_deadline_ms {
            return;
        }
        let late: Vec<String> = self.members.values().filter(|m| m.join_waiter.is_none()).map(|m| m.id.clone()).collect();
        for id in late {
            self.remove_member(&id, out);
        }
        self.pending.clear();
        self.complete_join(now_ms, out);
    }

    fn complete_join(&mut self, now_ms: i64, out: &mut Vec<Output<T>>) {
        self.generation += 1;
        self.rebalances += 1;
        self.delay_until_ms = None;
        self.phase_since_ms = now_ms;
        self.dirty = true;
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = Some(self.select_protocol());
        if !self.leader.as_ref().is_some_and(|l| self.members.contains_key(l)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.phase = Phase::CompletingRebalance;
        let timeout = self.members.values().map(|m| m.rebalance_timeout_ms as i64).max().unwrap_or(0);
        self.sync_deadline_ms = now_ms + timeout;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result(&id);
            let m = self.members.get_mut(&id).expect("member");
            m.assignment = Bytes::new();
            m.last_seen_ms = now_ms;
            if let Some(t) = m.join_waiter.take() {
                out.push(Output::Join(t, result));
            }
        }
    }

    /// The protocol every member supports that most members list first among those.
    fn select_protocol(&self) -> String {
        let first = self.members.values().next().expect("members");
        let candidates: Vec<&String> = first.protocols.iter().map(|(n, _)| n).filter(|n| self.members.values().all(|m| m.protocols.iter().any(|(x, _)| x == *n))).collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        // Ties go to the first member's preference order.
        candidates.into_iter().find(|c| votes.get(c).copied() == Some(best)).cloned().unwrap_or_default()
    }

    fn remove_member(&mut self, id: &str, out: &mut Vec<Output<T>>) {
        let Some(mut m) = self.members.remove(id) else { return };
        if let Some(t) = m.join_waiter.take() {
            out.push(Output::Join(t, JoinResult::error(GroupError::UnknownMemberId, id)));
        }
        if let Some(t) = m.sync_waiter.take() {
            out.push(Output::Sync(t, SyncResult::error(GroupError::UnknownMemberId)));
        }
        if let Some(i) = &m.instance_id {
            if self.statics.get(i).map(String::as_str) == Some(id) {
                self.statics.remove(i);
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        self.dirty = true;
    }

    /// A member left or died: the others must rebalance.
    fn after_removal(&mut self, now_ms: i64, out: &mut Vec<Output<T>>) {
        match self.phase {
            Phase::Stable | Phase::CompletingRebalance => {
                self.prepare_rebalance(now_ms, out);
                self.try_complete_join(now_ms, out);
            }
            Phase::PreparingRebalance => self.try_complete_join(now_ms, out),
            Phase::Empty | Phase::Dead => {}
        }
    }

    /// UNKNOWN_MEMBER_ID, or FENCED_INSTANCE_ID when a static member's id was taken over.
    fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        if let Some(i) = instance_id {
            // As Kafka: an instance id the group does not know is an unknown member; one
            // that now belongs to another member id is fenced.
            match self.statics.get(i) {
                None => return Err(GroupError::UnknownMemberId),
                Some(current) if current != member_id => return Err(GroupError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(GroupError::UnknownMemberId)
        }
    }

    // ---- SyncGroup, Heartbeat, LeaveGroup ---------------------------------------------

    pub fn sync(&mut self, now_ms: i64, req: SyncRequest, token: T, out: &mut Vec<Output<T>>) {
        if let Err(e) = self.validate_sync(&req) {
            out.push(Output::Sync(token, SyncResult::error(e)));
            return;
        }
        let id = req.member_id.clone();
        match self.phase {
            Phase::Empty | Phase::Dead => out.push(Output::Sync(token, SyncResult::error(GroupError::UnknownMemberId))),
            Phase::PreparingRebalance => out.push(Output::Sync(token, SyncResult::error(GroupError::RebalanceInProgress))),
            Phase::Stable => {
                let m = self.members.get_mut(&id).expect("validated");
                m.last_seen_ms = now_ms;
                let a = m.assignment.clone();
                out.push(Output::Sync(token, self.sync_result(a)));
            }
            Phase::CompletingRebalance => {
                let m = self.members.get_mut(&id).expect("validated");
                m.last_seen_ms = now_ms;
                if let Some(old) = m.sync_waiter.replace(token) {
                    out.push(Output::Sync(old, SyncResult::error(GroupError::RebalanceInProgress)));
                }
                if self.leader.as_deref() == Some(id.as_str()) {
                    // Assignments for members not in the group are ignored, as Kafka does.
                    for (member, assignment) in req.assignments {
                        if let Some(m) = self.members.get_mut(&member) {
                            m.assignment = assignment;
                        }
                    }
                    self.phase = Phase::Stable;
                    self.phase_since_ms = now_ms;
                    self.dirty = true;
                    let answers: Vec<(T, Bytes)> = self.members.values_mut().filter_map(|m| m.sync_waiter.take().map(|t| (t, m.assignment.clone()))).collect();
                    for (t, a) in answers {
                        out.push(Output::Sync(t, self.sync_result(a)));
                    }
                }
            }
        }
        self.check_invariants();
    }

    fn validate_sync(&self, req: &SyncRequest) -> Result<(), GroupError> {
        if self.phase == Phase::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(&req.member_id, req.instance_id.as_deref())?;
        if req.generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let mismatch = |given: &Option<String>, ours: &Option<String>| given.is_some() && given != ours;
        if mismatch(&req.protocol_type, &self.protocol_type) || mismatch(&req.protocol, &self.protocol) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult { error: None, protocol_type: self.protocol_type.clone(), protocol: self.protocol.clone(), assignment }
    }

    pub fn heartbeat(&mut self, now_ms: i64, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), GroupError> {
        if self.phase == Phase::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let m = self.members.get_mut(member_id).expect("validated");
        m.last_seen_ms = now_ms;
        match self.phase {
            Phase::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            Phase::CompletingRebalance | Phase::Stable => Ok(()),
            Phase::Empty | Phase::Dead => Err(GroupError::UnknownMemberId),
        }
    }

    /// Removes the members named by (member id, instance id); one result per member.
    pub fn leave(&mut self, now_ms: i64, members: &[(String, Option<String>)], out: &mut Vec<Output<T>>) -> Vec<Result<(), GroupError>> {
        let mut results = Vec::with_capacity(members.len());
        let mut removed = false;
        for (member_id, instance_id) in members {
            let target = match instance_id {
                Some(i) => match self.statics.get(i) {
                    None => Err(GroupError::UnknownMemberId),
                    Some(current) if !member_id.is_empty() && current != member_id => Err(GroupError::FencedInstanceId),
                    Some(current) => Ok(current.clone()),
                },
                None if self.pending.remove(member_id).is_some() => {
                    results.push(Ok(()));
                    continue;
                }
                None if self.members.contains_key(member_id) => Ok(member_id.clone()),
                None => Err(GroupError::UnknownMemberId),
            };
            if let Ok(id) = &target {
                self.remove_member(id, out);
                removed = true;
            }
            results.push(target.map(|_| ()));
        }
        if removed {
            self.after_removal(now_ms, out);
        }
        self.check_invariants();
        results
    }

    /// Expires members whose session lapsed, ends join and sync phases that timed out.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Output<T>>) {
        self.pending.retain(|_, deadline| *deadline > now_ms);
        // Members waiting in a join are kept alive by it (the rebalance timeout bounds them).
        let expired: Vec<String> = self.members.values().filter(|m| m.join_waiter.is_none() && now_ms > m.last_seen_ms + m.session_timeout_ms as i64).map(|m| m.id.clone()).collect();
        let mut removed = !expired.is_empty();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.expired += 1;
            self.remove_member(&id, out);
        }
        if self.phase == Phase::CompletingRebalance && now_ms >= self.sync_deadline_ms {
            // The leader never sent the assignment: drop those that did not sync and start over.
            let unsynced: Vec<String> = self.members.values().filter(|m| m.sync_waiter.is_none()).map(|m| m.id.clone()).collect();
            for id in unsynced {
                self.remove_member(&id, out);
            }
            removed = true;
        }
        if removed {
            self.after_removal(now_ms, out);
        } else {
            self.try_complete_join(now_ms, out);
        }
        self.check_invariants();
    }

    // ---- offsets ---------------------------------------------------------------------

    /// Whether this commit may be written. Commits without member and generation are admin
    /// or `assign()` commits, allowed only while the group has no members.
    pub fn validate_commit(&mut self, now_ms: i64, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), GroupError> {
        if self.phase == Phase::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation < 0 && member_id.is_empty() && instance_id.is_none() {
            return if self.phase == Phase::Empty && self.consumer.members.is_empty() { Ok(()) } else { Err(GroupError::UnknownMemberId) };
        }
        if !self.consumer.members.is_empty() {
            return self.consumer.validate_commit(member_id, generation);
        }
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if self.phase == Phase::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen_ms = now_ms;
        }
        Ok(())
    }

    /// Topics the members subscribe to, when the protocol is "consumer" and readable; None
    /// when it cannot be known (then every topic counts as subscribed).
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if !self.consumer.members.is_empty() {
            return Some(self.consumer.subscribed_topics());
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let p = self.protocol.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(backwaters_proto::kafka::consumer_protocol::subscription_topics(&m.metadata_for(p))?);
        }
        Some(topics)
    }

    /// "consumer" while members of the consumer protocol hold the group (or it was last used
    /// by them), else "classic".
    pub fn group_type(&self) -> &'static str {
        if !self.consumer.members.is_empty() || (self.protocol_type.is_none() && self.consumer.epoch > 0) {
            "consumer"
        } else {
            "classic"
        }
    }

    /// The state Kafka reports for the group's type.
    pub fn state_name(&self) -> &'static str {
        if self.group_type() == "consumer" {
            self.consumer.state_name()
        } else {
            self.phase.name()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty() && self.consumer.members.is_empty()
    }

    // ---- persistence -----------------------------------------------------------------

    /// The membership as Kafka's group metadata record holds it.
    pub fn to_value(&self) -> GroupValue {
        let p = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.phase_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&p),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restores a group from its record (a new coordinator after failover or restart).
    /// Members get a fresh session: they keep heartbeating to the new coordinator.
    pub fn restore(&mut self, v: GroupValue, now_ms: i64) {
        self.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        self.generation = v.generation;
        self.protocol = v.protocol;
        self.leader = v.leader;
        self.phase_since_ms = if v.current_state_timestamp > 0 { v.current_state_timestamp } else { now_ms };
        self.members.clear();
        self.statics.clear();
        let p = self.protocol.clone().unwrap_or_default();
        for m in v.members {
            if let Some(i) = &m.group_instance_id {
                self.statics.insert(i.clone(), m.member_id.clone());
            }
            self.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: vec![(p.clone(), m.subscription)],
                    assignment: m.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    last_seen_ms: now_ms,
                },
            );
        }
        self.phase = if self.members.is_empty() { Phase::Empty } else { Phase::Stable };
        self.dirty = false;
    }

    fn check_invariants(&self) {
        debug_assert!(self.leader.as_ref().is_none_or(|l| self.members.contains_key(l)) || self.phase == Phase::PreparingRebalance, "leader {:?} is not a member", self.leader);
        debug_assert!(self.statics.values().all(|id| self.members.contains_key(id)), "static mapping to a missing member");
        debug_assert!(self.phase != Phase::Empty || self.members.is_empty(), "an empty group has members");
        debug_assert!(self.phase == Phase::PreparingRebalance || self.members.values().all(|m| m.join_waiter.is_none()), "join waiter outside a rebalance");
        debug_assert!(self.phase == Phase::CompletingRebalance || self.members.values().all(|m| m.sync_waiter.is_none()), "sync waiter outside CompletingRebalance");
    }
}
