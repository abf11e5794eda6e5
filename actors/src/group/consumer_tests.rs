//! The consumer group protocol (KIP-848) state machine, driven by simulated members.

use super::consumer::*;
use super::types::GroupError;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const LIMITS: ConsumerLimits = ConsumerLimits { session_timeout_ms: 45_000, heartbeat_interval_ms: 5_000, max_size: 10 };

fn topics(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
    list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

fn join(id: &str, subscribed: &[&str]) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        member_id: id.into(),
        member_epoch: JOIN_EPOCH,
        rebalance_timeout_ms: 60_000,
        subscribed_names: Some(subscribed.iter().map(|s| s.to_string()).collect()),
        owned: Some(Assignment::new()),
        client_id: "c".into(),
        ..Default::default()
    }
}

/// A member as a client sees itself: its epoch and what it owns.
#[derive(Debug, Clone, Default)]
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
    /// An answer was lost: the next heartbeat sends every field.
    full: bool,
}

impl Client {
    /// The heartbeat the client sends now (every field after a lost answer).
    fn request(&self, g: &ConsumerGroup) -> ConsumerHeartbeat {
        let mut req = ConsumerHeartbeat { member_id: self.id.clone(), member_epoch: self.epoch, rebalance_timeout_ms: -1, owned: Some(self.owned.clone()), ..Default::default() };
        if self.full {
            req.rebalance_timeout_ms = 60_000;
            req.subscribed_names = Some(g.members.get(&self.id).map(|m| m.subscribed_names.clone()).unwrap_or_default());
        }
        req
    }

    /// A heartbeat whose answer never arrives: the group acts on it, the client learns
    /// nothing and sends every field next time.
    fn lose_answer(&mut self, g: &mut ConsumerGroup, now: i64, t: &BTreeMap<String, i32>) {
        g.heartbeat(now, self.request(g), t, LIMITS);
        self.full = true;
    }

    /// One heartbeat; the client takes any assignment it is given at once (revoking what
    /// the new one leaves out) and reports what it owns.
    fn beat(&mut self, g: &mut ConsumerGroup, now: i64, t: &BTreeMap<String, i32>) -> ConsumerHeartbeatResult {
        let req = self.request(g);
        self.full = false;
        let r = g.heartbeat(now, req, t, LIMITS);
        if r.error == Some(GroupError::FencedMemberEpoch) {
            // Fenced: the client drops what it owns and rejoins.
            self.owned.clear();
            let sub = g.members.get(&self.id).map(|m| m.subscribed_names.clone()).unwrap_or_default();
            let refs: Vec<&str> = sub.iter().map(|s| s.as_str()).collect();
            let r = g.heartbeat(now, join(&self.id, &refs), t, LIMITS);
            assert_eq!(r.error, None);
            self.epoch = r.member_epoch;
            self.owned = r.assignment.clone().unwrap_or_default();
            return r;
        }
        if r.error.is_none() {
            self.epoch = r.member_epoch;
            if let Some(a) = &r.assignment {
                self.owned = a.clone();
            }
        }
        r
    }
}

fn count(a: &Assignment) -> usize {
    a.values().map(|s| s.len()).sum()
}

/// Heartbeats every client until the group is stable.
fn settle(g: &mut ConsumerGroup, clients: &mut [Client], now: i64, t: &BTreeMap<String, i32>) {
    for _ in 0..10 {
        for c in clients.iter_mut() {
            assert_eq!(c.beat(g, now, t).error, None);
        }
        if g.state_name() == "Stable" {
            return;
        }
    }
    panic!("group did not settle: {g:#?}");
}

#[test]
fn two_members_split_then_one_takes_all_after_the_other_leaves() {
    let t = topics(&[("logs", 6)]);
    let mut g = ConsumerGroup::default();
    let r = g.heartbeat(0, join("a", &["logs"]), &t, LIMITS);
    assert_eq!((r.error, r.member_epoch), (None, 1));
    assert_eq!(count(r.assignment.as_ref().unwrap()), 6);
    let mut a = Client { id: "a".into(), epoch: 1, owned: r.assignment.unwrap(), full: false };
    assert_eq!(g.state_name(), "Stable");

    // b joins: the target splits 3/3, but b gets nothing until a revokes.
    let r = g.heartbeat(10, join("b", &["logs"]), &t, LIMITS);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment.as_ref().map(count), Some(0), "b must wait for a's partitions");
    let mut b = Client { id: "b".into(), epoch: 2, ..Default::default() };
    assert_eq!(g.state_name(), "Reconciling");
    // a is told to keep 3 (same epoch: it still has partitions to give up).
    let r = a.beat(&mut g, 20, &t);
    assert_eq!((r.member_epoch, r.assignment.as_ref().map(count)), (1, Some(3)));
    assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
    // a confirms; it moves to epoch 2; then b gets the released three.
    let r = a.beat(&mut g, 30, &t);
    assert_eq!(r.member_epoch, 2);
    let r = b.beat(&mut g, 40, &t);
    assert_eq!(r.assignment.as_ref().map(count), Some(3));
    assert_eq!(g.state_name(), "Stable");
    assert!(a.owned.values().flatten().all(|p| !b.owned["logs"].contains(p)));

    // b leaves: a gets everything back at a new epoch.
    let r = g.heartbeat(50, ConsumerHeartbeat { member_id: "b".into(), member_epoch: LEAVE_EPOCH, ..Default::default() }, &t, LIMITS);
    assert_eq!((r.error, r.member_epoch), (None, LEAVE_EPOCH));
    let r = a.beat(&mut g, 60, &t);
    assert_eq!((r.member_epoch, r.assignment.as_ref().map(count)), (3, Some(6)));
    // A commit from the old epoch is stale, one from an epoch never given is fenced.
    assert_eq!(g.validate_commit("a", 2), Err(GroupError::StaleMemberEpoch));
    assert_eq!(g.validate_commit("a", 4), Err(GroupError::FencedMemberEpoch));
    assert_eq!(g.validate_commit("a", 3), Ok(()));
    assert_eq!(g.validate_commit("b", 3), Err(GroupError::UnknownMemberId));
}

#[test]
fn bad_heartbeats_are_refused_with_the_reason() {
    let t = topics(&[("logs", 2)]);
    let mut g = ConsumerGroup::default();
    let no_subscription = ConsumerHeartbeat { subscribed_names: None, ..join("a", &[]) };
    assert_eq!(g.heartbeat(0, no_subscription, &t, LIMITS).error, Some(GroupError::InvalidRequest));
    assert_eq!(g.heartbeat(0, ConsumerHeartbeat { member_id: String::new(), ..join("a", &["logs"]) }, &t, LIMITS).error, Some(GroupError::InvalidRequest));
    let r = g.heartbeat(0, ConsumerHeartbeat { assignor: Some("sticky-ish".into()), ..join("a", &["logs"]) }, &t, LIMITS);
    assert_eq!(r.error, Some(GroupError::UnsupportedAssignor));
    assert!(r.message.unwrap().contains("uniform"));
    let r = g.heartbeat(0, ConsumerHeartbeat { regex: Some("logs(".into()), ..join("a", &[]) }, &t, LIMITS);
    assert_eq!(r.error, Some(GroupError::InvalidRegularExpression));
    // Nobody joined through any of those.
    assert!(g.members.is_empty());
    assert_eq!(g.heartbeat(0, ConsumerHeartbeat { member_epoch: 5, ..join("x", &["logs"]) }, &t, LIMITS).error, Some(GroupError::UnknownMemberId));
    g.heartbeat(0, join("a", &["logs"]), &t, LIMITS);
    let r = g.heartbeat(1, ConsumerHeartbeat { member_epoch: 7, owned: None, ..join("a", &["logs"]) }, &t, LIMITS);
    assert_eq!(r.error, Some(GroupError::FencedMemberEpoch));
    let full = ConsumerLimits { max_size: 1, ..LIMITS };
    assert_eq!(g.heartbeat(2, join("b", &["logs"]), &t, full).error, Some(GroupError::GroupMaxSizeReached));
}

#[test]
fn regex_subscriptions_follow_new_topics_and_skip_internal_ones() {
    let mut t = topics(&[("auth.ssh", 2), ("web", 2), ("__consumer_offsets", 50)]);
    let mut g = ConsumerGroup::default();
    let r = g.heartbeat(0, ConsumerHeartbeat { subscribed_names: None, regex: Some("auth\\..*|__.*".into()), ..join("a", &[]) }, &t, LIMITS);
    assert_eq!(r.assignment.unwrap().keys().cloned().collect::<Vec<_>>(), vec!["auth.ssh".to_string()]);
    let mut a = Client { id: "a".into(), epoch: r.member_epoch, owned: g.members["a"].assigned.clone(), full: false };
    t.insert("auth.sudo".into(), 3);
    let r = a.beat(&mut g, 10, &t);
    assert_eq!(count(r.assignment.as_ref().unwrap()), 5, "the new matching topic joins the assignment");
    // A whole-name match: "web" does not match "auth\..*".
    assert!(!a.owned.contains_key("web"));
    // More partitions for a subscribed topic bump the group epoch.
    let epoch = g.epoch;
    t.insert("auth.ssh".into(), 4);
    a.beat(&mut g, 20, &t);
    assert_eq!(g.epoch, epoch + 1);
    assert_eq!(count(&a.owned), 7);
}

#[test]
fn a_member_that_stops_heartbeating_or_revoking_is_removed() {
    let t = topics(&[("logs", 4)]);
    let mut g = ConsumerGroup::default();
    let mut a = Client { id: "a".into(), ..Default::default() };
    let r = g.heartbeat(0, ConsumerHeartbeat { rebalance_timeout_ms: 5_000, ..join("a", &["logs"]) }, &t, LIMITS);
    a.epoch = r.member_epoch;
    a.owned = r.assignment.unwrap();
    let r = g.heartbeat(1_000, join("b", &["logs"]), &t, LIMITS);
    let mut b = Client { id: "b".into(), epoch: r.member_epoch, ..Default::default() };
    // a is asked to revoke but never confirms (its heartbeats stop): after its rebalance
    // timeout it is removed and b gets everything.
    let r = g.heartbeat(2_000, ConsumerHeartbeat { member_id: "a".into(), member_epoch: a.epoch, rebalance_timeout_ms: -1, ..Default::default() }, &t, LIMITS);
    assert_eq!(r.assignment.as_ref().map(count), Some(2));
    g.tick(6_000, LIMITS);
    assert!(g.members.contains_key("a"), "still within its rebalance timeout");
    g.tick(7_001, LIMITS);
    assert!(!g.members.contains_key("a"));
    assert_eq!(g.expired, 1);
    let r = b.beat(&mut g, 7_100, &t);
    assert_eq!(r.assignment.as_ref().map(count), Some(4));
    // The removed member hears it is unknown and rejoins owning nothing.
    assert_eq!(a.beat(&mut g, 7_200, &t).error, Some(GroupError::UnknownMemberId));
    // Session timeout: b goes silent.
    g.tick(7_100 + LIMITS.session_timeout_ms + 1, LIMITS);
    assert!(g.members.is_empty());
    assert_eq!(g.state_name(), "Empty");
}

#[test]
fn a_static_member_that_leaves_for_a_while_gets_its_partitions_back() {
    let t = topics(&[("logs", 4)]);
    let mut g = ConsumerGroup::default();
    let mut clients = Vec::new();
    for (id, inst) in [("a1", "host-a"), ("b", "host-b")] {
        let r = g.heartbeat(0, ConsumerHeartbeat { instance_id: Some(inst.into()), ..join(id, &["logs"]) }, &t, LIMITS);
        clients.push(Client { id: id.into(), epoch: r.member_epoch, owned: r.assignment.unwrap_or_default(), full: false });
    }
    settle(&mut g, &mut clients, 10, &t);
    let before = g.members["a1"].assigned.clone();
    let epoch = g.epoch;
    let r = g.heartbeat(20, ConsumerHeartbeat { member_id: "a1".into(), member_epoch: STATIC_LEAVE_EPOCH, ..Default::default() }, &t, LIMITS);
    assert_eq!(r.member_epoch, STATIC_LEAVE_EPOCH);
    assert_eq!(g.epoch, epoch, "a static leave does not rebalance");
    // Another process with the same instance id while it is still held: refused.
    let r = g.heartbeat(30, ConsumerHeartbeat { instance_id: Some("host-b".into()), ..join("b2", &["logs"]) }, &t, LIMITS);
    assert_eq!(r.error, Some(GroupError::UnreleasedInstanceId));
    // The instance returns under a new member id: same partitions, no rebalance.
    let r = g.heartbeat(40, ConsumerHeartbeat { instance_id: Some("host-a".into()), ..join("a2", &["logs"]) }, &t, LIMITS);
    assert_eq!(r.error, None);
    assert_eq!(r.assignment, Some(before));
    assert_eq!(g.epoch, epoch);
    assert!(!g.members.contains_key("a1"));
}

#[test]
fn range_and_uniform_assignors() {
    let subs: BTreeMap<String, BTreeSet<String>> = ["a", "b", "c"].iter().map(|m| (m.to_string(), ["t".to_string()].into())).collect();
    let parts: BTreeMap<String, i32> = [("t".to_string(), 7)].into();
    let r = range(&subs, &parts);
    assert_eq!(r["a"]["t"], (0..3).collect());
    assert_eq!(r["b"]["t"], (3..5).collect());
    assert_eq!(r["c"]["t"], (5..7).collect());
    let u = uniform(&subs, &parts, &BTreeMap::new());
    let counts: Vec<usize> = u.values().map(count).collect();
    assert_eq!(counts.iter().sum::<usize>(), 7);
    assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
    // Sticky: a fourth member takes one partition from the largest, nothing else moves.
    let mut subs4 = subs.clone();
    subs4.insert("d".into(), ["t".to_string()].into());
    let u4 = uniform(&subs4, &parts, &u);
    let moved: usize = ["a", "b", "c"].iter().map(|m| count(&u[*m]) - count(&u4[*m])).sum();
    assert_eq!(moved, count(&u4["d"]));
    assert!(["a", "b", "c"].iter().all(|m| u4[*m]["t"].is_subset(&u[*m]["t"])));
}

#[derive(Debug, Clone)]
enum Op {
    Join(usize),
    Leave(usize),
    Beat(usize),
    /// A heartbeat whose answer is lost.
    LostBeat(usize),
    Grow(i32),
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..5usize).prop_map(Op::Join),
        1 => (0..5usize).prop_map(Op::Leave),
        6 => (0..5usize).prop_map(Op::Beat),
        1 => (0..5usize).prop_map(Op::LostBeat),
        1 => (1..3i32).prop_map(Op::Grow),
        1 => Just(Op::Tick),
    ]
}

proptest! {
    /// Whatever members do (join, leave, lose answers, topics grow), no partition is ever
    /// owned by two members (checked on every step inside the state machine, and here from
    /// the clients' side), and once everyone heartbeats the group settles on a balanced
    /// assignment of every partition.
    #[test]
    fn never_two_owners_and_always_settles(ops in prop::collection::vec(op(), 1..60), assignor in prop::sample::select(vec!["uniform", "range"])) {
        let mut t = topics(&[("x", 3), ("y", 2)]);
        let mut g = ConsumerGroup::default();
        let mut clients: BTreeMap<usize, Client> = BTreeMap::new();
        let mut now = 0;
        for op in ops {
            now += 100;
            match op {
                Op::Join(i) if !clients.contains_key(&i) => {
                    let r = g.heartbeat(now, ConsumerHeartbeat { assignor: Some(assignor.into()), ..join(&format!("m{i}"), &["x", "y"]) }, &t, LIMITS);
                    prop_assert_eq!(r.error, None);
                    clients.insert(i, Client { id: format!("m{i}"), epoch: r.member_epoch, owned: r.assignment.unwrap_or_default(), full: false });
                }
                Op::Leave(i) => {
                    if let Some(c) = clients.remove(&i) {
                        let r = g.heartbeat(now, ConsumerHeartbeat { member_id: c.id, member_epoch: LEAVE_EPOCH, ..Default::default() }, &t, LIMITS);
                        prop_assert_eq!(r.error, None);
                    }
                }
                Op::Beat(i) => {
                    if let Some(c) = clients.get_mut(&i) {
                        if c.beat(&mut g, now, &t).error == Some(GroupError::UnknownMemberId) {
                            clients.remove(&i);
                        }
                    }
                }
                Op::LostBeat(i) => {
                    if let Some(c) = clients.get_mut(&i) {
                        c.lose_answer(&mut g, now, &t);
                    }
                }
                Op::Grow(n) => {
                    *t.get_mut("x").unwrap() += n;
                }
                _ => g.tick(now, LIMITS),
            }
            let mut seen = BTreeSet::new();
            for c in clients.values() {
                for (topic, ps) in &c.owned {
                    for p in ps {
                        prop_assert!(seen.insert((topic.clone(), *p)), "{}-{} owned by two clients", topic, p);
                    }
                }
            }
        }
        // Everyone heartbeats (a client fenced by a lost answer rejoins).
        let mut list: Vec<Client> = clients.into_values().collect();
        for _ in 0..12 {
            for c in list.iter_mut() {
                let r = c.beat(&mut g, now, &t);
                prop_assert_eq!(r.error, None);
            }
        }
        if !list.is_empty() {
            prop_assert_eq!(g.state_name(), "Stable");
            let total: usize = list.iter().map(|c| count(&c.owned)).sum();
            prop_assert_eq!(total, t.values().sum::<i32>() as usize);
            if assignor == "uniform" {
                let counts: Vec<usize> = list.iter().map(|c| count(&c.owned)).collect();
                prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "unbalanced: {:?}", counts);
            }
        }
    }
}
