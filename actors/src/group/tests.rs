//! The group state machine driven by hand: time is a number, tokens are numbers.

use super::state::*;
use bytes::Bytes;

type Out = Vec<Output<u32>>;

fn limits() -> GroupLimits {
    GroupLimits { min_session_timeout_ms: 1_000, max_session_timeout_ms: 60_000, initial_rebalance_delay_ms: 0, max_size: 10, ..GroupLimits::default() }
}

fn join_req(member: &str, fresh: &str) -> JoinRequest {
    JoinRequest {
        member_id: member.into(),
        fresh_member_id: fresh.into(),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta")), ("roundrobin".into(), Bytes::new())],
        require_known_member: true,
        instance_id: None,
    }
}

fn joins(out: &mut Out) -> Vec<(u32, JoinResult)> {
    let mut v = Vec::new();
    out.retain(|o| match o {
        Output::Join(t, r) => {
            v.push((*t, r.clone()));
            false
        }
        _ => true,
    });
    v.sort_by_key(|(t, _)| *t);
    v
}

fn syncs(out: &mut Out) -> Vec<(u32, SyncResult)> {
    let mut v = Vec::new();
    out.retain(|o| match o {
        Output::Sync(t, r) => {
            v.push((*t, r.clone()));
            false
        }
        _ => true,
    });
    v.sort_by_key(|(t, _)| *t);
    v
}

/// Two members join (with MEMBER_ID_REQUIRED first) and sync; returns (leader, follower).
fn stable_pair(g: &mut Group<u32>) -> (String, String) {
    let mut out = Vec::new();
    g.join(0, join_req("", "a"), 1, &mut out);
    let j = joins(&mut out);
    assert_eq!(j[0].1.error, Some(GroupError::MemberIdRequired));
    assert_eq!(j[0].1.member_id, "a");
    g.join(0, join_req("a", "x"), 2, &mut out);
    // With no initial delay, one member completes the join alone.
    let j = joins(&mut out);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].1.generation, 1);
    g.sync(0, SyncRequest { member_id: "a".into(), generation: 1, assignments: vec![("a".into(), Bytes::from_static(b"A"))], ..Default::default() }, 3, &mut out);
    assert_eq!(syncs(&mut out)[0].1.assignment, Bytes::from_static(b"A"));
    assert_eq!(g.phase, Phase::Stable);
    // b arrives: a must rejoin (its heartbeat says so).
    g.join(10, join_req("", "b"), 4, &mut out);
    assert_eq!(joins(&mut out)[0].1.error, Some(GroupError::MemberIdRequired));
    g.join(10, join_req("b", "x"), 5, &mut out);
    assert_eq!(g.phase, Phase::PreparingRebalance);
    assert_eq!(g.heartbeat(11, "a", None, 1), Err(GroupError::RebalanceInProgress));
    g.join(12, join_req("a", "x"), 6, &mut out);
    let j = joins(&mut out);
    assert_eq!(j.len(), 2);
    let leader = j.iter().find(|(_, r)| r.leader == r.member_id).expect("a leader");
    assert_eq!(leader.1.members.len(), 2, "the leader sees every member");
    assert_eq!(leader.1.protocol.as_deref(), Some("range"));
    assert!(j.iter().all(|(_, r)| r.generation == 2));
    let (l, f) = (leader.1.member_id.clone(), j.iter().find(|(_, r)| r.leader != r.member_id).unwrap().1.member_id.clone());
    g.sync(13, SyncRequest { member_id: f.clone(), generation: 2, ..Default::default() }, 7, &mut out);
    assert!(syncs(&mut out).is_empty(), "a follower waits for the leader");
    g.sync(13, SyncRequest { member_id: l.clone(), generation: 2, assignments: vec![(l.clone(), Bytes::from_static(b"L")), (f.clone(), Bytes::from_static(b"F")), ("ghost".into(), Bytes::from_static(b"G"))], ..Default::default() }, 8, &mut out);
    let s = syncs(&mut out);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].1.assignment, Bytes::from_static(b"F"));
    assert_eq!(s[1].1.assignment, Bytes::from_static(b"L"));
    assert!(g.dirty);
    (l, f)
}

#[test]
fn join_sync_and_generations() {
    let mut g = Group::new("g", limits(), 0);
    let (l, f) = stable_pair(&mut g);
    assert_eq!(g.heartbeat(14, &l, None, 2), Ok(()));
    assert_eq!(g.heartbeat(14, &f, None, 1), Err(GroupError::IllegalGeneration));
    assert_eq!(g.heartbeat(14, "nobody", None, 2), Err(GroupError::UnknownMemberId));
    assert_eq!(g.validate_commit(14, &f, None, 1), Err(GroupError::IllegalGeneration));
    assert_eq!(g.validate_commit(14, &f, None, 2), Ok(()));
    assert_eq!(g.validate_commit(14, "", None, -1), Err(GroupError::UnknownMemberId), "standalone commits only while empty");
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_and_the_rest_rebalance() {
    let mut g = Group::new("g", limits(), 0);
    let (l, f) = stable_pair(&mut g);
    let mut out = Vec::new();
    // The leader keeps heartbeating, the follower dies.
    for t in (1_000..=10_000).step_by(1_000) {
        assert_eq!(g.heartbeat(t, &l, None, 2), Ok(()));
        g.tick(t, &mut out);
    }
    assert!(g.members.contains_key(&f));
    g.tick(10_014, &mut out);
    assert!(!g.members.contains_key(&f), "session expired");
    assert_eq!(g.phase, Phase::PreparingRebalance);
    assert_eq!(g.heartbeat(10_020, &l, None, 2), Err(GroupError::RebalanceInProgress));
    g.join(10_030, join_req(&l, "x"), 9, &mut out);
    let j = joins(&mut out);
    assert_eq!(j[0].1.generation, 3);
    assert_eq!(j[0].1.members.len(), 1);
}

#[test]
fn leaving_empties_the_group_and_offsets_stay() {
    let mut g = Group::new("g", limits(), 0);
    let (l, f) = stable_pair(&mut g);
    let mut out = Vec::new();
    let r = g.leave(20, &[(f.clone(), None), ("nobody".into(), None)], &mut out);
    assert_eq!(r, vec![Ok(()), Err(GroupError::UnknownMemberId)]);
    assert_eq!(g.phase, Phase::PreparingRebalance);
    g.leave(21, &[(l.clone(), None)], &mut out);
    assert_eq!(g.phase, Phase::Empty);
    assert_eq!(g.generation, 3);
    assert_eq!(g.validate_commit(22, "", None, -1), Ok(()), "an empty group takes admin commits");
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut g = Group::new("g", limits(), 0);
    let (l, f) = stable_pair(&mut g);
    let mut out = Vec::new();
    // The follower changes its subscription and rejoins; the leader never does.
    let mut r = join_req(&f, "x");
    r.protocols = vec![("range".into(), Bytes::from_static(b"new"))];
    g.join(100, r, 10, &mut out);
    assert!(joins(&mut out).is_empty());
    // The leader keeps heartbeating (and ignores REBALANCE_IN_PROGRESS), so only the
    // rebalance timeout can end the join phase.
    for t in (5_000..30_000).step_by(5_000) {
        assert_eq!(g.heartbeat(t, &l, None, 2), Err(GroupError::RebalanceInProgress));
        g.tick(t, &mut out);
    }
    g.tick(30_099, &mut out);
    assert!(joins(&mut out).is_empty());
    g.tick(30_100, &mut out);
    let j = joins(&mut out);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].1.leader, f, "the follower leads now");
    assert!(!g.members.contains_key(&l));
}

#[test]
fn static_member_rejoining_takes_over_and_fences_the_old_id() {
    let mut g = Group::new("g", limits(), 0);
    let mut out = Vec::new();
    let mut r = join_req("", "s1");
    r.instance_id = Some("inst".into());
    g.join(0, r.clone(), 1, &mut out);
    let j = joins(&mut out);
    assert_eq!(j[0].1.error, None, "static members get no MEMBER_ID_REQUIRED");
    g.sync(0, SyncRequest { member_id: "s1".into(), instance_id: Some("inst".into()), generation: 1, assignments: vec![("s1".into(), Bytes::from_static(b"A"))], ..Default::default() }, 2, &mut out);
    syncs(&mut out);
    // Add a dynamic leader-to-be? No: the static member is the leader; a restart of it rebalances.
    let mut again = r.clone();
    again.fresh_member_id = "s2".into();
    g.join(5, again, 3, &mut out);
    let j = joins(&mut out);
    assert_eq!(j[0].1.member_id, "s2");
    assert_eq!(g.heartbeat(6, "s1", Some("inst"), j[0].1.generation), Err(GroupError::FencedInstanceId));
    assert_eq!(g.members.len(), 1);
    assert!(g.validate_commit(6, "s1", Some("inst"), j[0].1.generation).is_err());
}

#[test]
fn bad_joins_are_refused_without_touching_the_group() {
    let mut g = Group::new("g", limits(), 0);
    let (l, _f) = stable_pair(&mut g);
    let gen = g.generation;
    let mut out = Vec::new();
    let mut r = join_req("", "z");
    r.session_timeout_ms = 10;
    g.join(50, r, 20, &mut out);
    assert_eq!(joins(&mut out)[0].1.error, Some(GroupError::InvalidSessionTimeout));
    let mut r = join_req("", "z");
    r.protocol_type = "connect".into();
    g.join(50, r, 21, &mut out);
    assert_eq!(joins(&mut out)[0].1.error, Some(GroupError::InconsistentGroupProtocol));
    let mut r = join_req("", "z");
    r.protocols = vec![("sticky-only".into(), Bytes::new())];
    g.join(50, r, 22, &mut out);
    assert_eq!(joins(&mut out)[0].1.error, Some(GroupError::InconsistentGroupProtocol));
    g.join(50, join_req("unknown-member", "z"), 23, &mut out);
    assert_eq!(joins(&mut out)[0].1.error, Some(GroupError::UnknownMemberId));
    g.sync(50, SyncRequest { member_id: l.clone(), generation: gen - 1, ..Default::default() }, 24, &mut out);
    assert_eq!(syncs(&mut out)[0].1.error, Some(GroupError::IllegalGeneration));
    assert_eq!(g.phase, Phase::Stable);
    assert_eq!(g.generation, gen);
    assert_eq!(g.heartbeat(51, &l, None, gen), Ok(()));
}

#[test]
fn initial_delay_gathers_members_that_start_together() {
    let mut g = Group::new("g", GroupLimits { initial_rebalance_delay_ms: 1_000, ..limits() }, 0);
    let mut out = Vec::new();
    let mut r = join_req("", "a");
    r.require_known_member = false;
    g.join(0, r.clone(), 1, &mut out);
    g.tick(500, &mut out);
    assert!(joins(&mut out).is_empty());
    r.fresh_member_id = "b".into();
    g.join(600, r, 2, &mut out);
    g.tick(1_200, &mut out);
    assert!(joins(&mut out).is_empty(), "the delay was extended by the second member");
    g.tick(1_600, &mut out);
    let j = joins(&mut out);
    assert_eq!(j.len(), 2);
    assert_eq!(j[0].1.generation, 1);
}

#[test]
fn persisted_membership_restores_a_stable_group() {
    let mut g = Group::new("g", limits(), 0);
    let (l, f) = stable_pair(&mut g);
    let v = g.to_value();
    let mut h: Group<u32> = Group::new("g", limits(), 0);
    h.restore(v, 100);
    assert_eq!(h.phase, Phase::Stable);
    assert_eq!(h.generation, g.generation);
    assert_eq!(h.heartbeat(200, &l, None, g.generation), Ok(()));
    assert_eq!(h.members[&f].assignment, Bytes::from_static(b"F"));
}

#[test]
fn group_partition_matches_kafka() {
    // Java: "my-group".hashCode() == -1906497762; Utils.abs masks the sign bit; % 50 == 36.
    assert_eq!(super::partition_for("my-group", 50), 36);
}

mod model {
    //! Random interleavings of four clients' requests and the passage of time: the state
    //! machine's invariants hold after every step (they are asserted inside it), every waiting
    //! request is answered at most once and with the group's current generation, and once the
    //! clients behave, the group always becomes Stable with every member in one generation.
    use super::super::state::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[derive(Debug, Clone)]
    enum Op {
        Join(usize),
        Sync(usize),
        Heartbeat(usize),
        Leave(usize),
        Wait(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..4).prop_map(Op::Join),
            (0usize..4).prop_map(Op::Sync),
            (0usize..4).prop_map(Op::Heartbeat),
            (0usize..4).prop_map(Op::Leave),
            (0i64..4_000).prop_map(Op::Wait),
        ]
    }

    #[derive(Default, Clone)]
    struct Client {
        member_id: String,
        generation: i32,
        members_seen: Vec<String>,
    }

    struct World {
        g: Group<u32>,
        now: i64,
        next_token: u32,
        clients: Vec<Client>,
        pending: BTreeMap<u32, usize>,
        answered: BTreeSet<u32>,
        fresh: u32,
    }

    impl World {
        fn new() -> World {
            let limits = GroupLimits { min_session_timeout_ms: 1_000, max_session_timeout_ms: 60_000, initial_rebalance_delay_ms: 500, max_size: 10, ..GroupLimits::default() };
            World { g: Group::new("g", limits, 0), now: 0, next_token: 0, clients: vec![Client::default(); 4], pending: BTreeMap::new(), answered: BTreeSet::new(), fresh: 0 }
        }

        fn token(&mut self, client: usize) -> u32 {
            self.next_token += 1;
            self.pending.insert(self.next_token, client);
            self.next_token
        }

        fn deliver(&mut self, out: Vec<Output<u32>>) -> Result<(), TestCaseError> {
            for o in out {
                let (t, gen, err) = match &o {
                    Output::Join(t, r) => (*t, r.generation, r.error),
                    Output::Sync(t, r) => (*t, self.g.generation, r.error),
                };
                prop_assert!(self.answered.insert(t), "token {} answered twice", t);
                let c = self.pending.remove(&t).expect("answer to an asked request");
                if let Output::Join(_, r) = o {
                    if r.error.is_none() {
                        prop_assert_eq!(gen, self.g.generation, "a join answered with an old generation");
                        self.clients[c] = Client { member_id: r.member_id.clone(), generation: r.generation, members_seen: r.members.iter().map(|m| m.0.clone()).collect() };
                    } else if r.error == Some(GroupError::MemberIdRequired) {
                        self.clients[c].member_id = r.member_id.clone();
                    } else if r.error == Some(GroupError::UnknownMemberId) {
                        self.clients[c] = Client::default();
                    }
                }
                let _ = err;
            }
            Ok(())
        }

        fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
            let mut out = Vec::new();
            match *op {
                Op::Join(c) => {
                    self.fresh += 1;
                    let req = JoinRequest {
                        member_id: self.clients[c].member_id.clone(),
                        fresh_member_id: format!("m{}", self.fresh),
                        client_id: format!("c{c}"),
                        session_timeout_ms: 5_000,
                        rebalance_timeout_ms: 8_000,
                        protocol_type: "consumer".into(),
                        protocols: vec![("range".into(), Bytes::from(format!("sub{c}")))],
                        require_known_member: true,
                        ..Default::default()
                    };
                    let t = self.token(c);
                    self.g.join(self.now, req, t, &mut out);
                }
                Op::Sync(c) => {
                    let cl = self.clients[c].clone();
                    let assignments = cl.members_seen.iter().map(|m| (m.clone(), Bytes::from(format!("for-{m}")))).collect();
                    let t = self.token(c);
                    self.g.sync(self.now, SyncRequest { member_id: cl.member_id, generation: cl.generation, assignments, ..Default::default() }, t, &mut out);
                }
                Op::Heartbeat(c) => {
                    let cl = &self.clients[c];
                    let _ = self.g.heartbeat(self.now, &cl.member_id, None, cl.generation);
                }
                Op::Leave(c) => {
                    let id = self.clients[c].member_id.clone();
                    let _ = self.g.leave(self.now, &[(id, None)], &mut out);
                    self.clients[c] = Client::default();
                }
                Op::Wait(ms) => {
                    self.now += ms;
                    self.g.tick(self.now, &mut out);
                }
            }
            self.deliver(out)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        #[test]
        fn random_clients_never_break_the_group(ops in prop::collection::vec(op(), 1..80)) {
            let mut w = World::new();
            for op in &ops {
                w.apply(op)?;
            }
            // Now every client behaves: all join (twice for a member id), wait out the delay,
            // the leader syncs, and everyone syncs.
            for round in 0..6 {
                for c in 0..4 {
                    if w.pending.values().all(|p| *p != c) {
                        w.apply(&Op::Join(c))?;
                    }
                }
                w.apply(&Op::Wait(600 + round))?;
            }
            for _ in 0..4 {
                for c in 0..4 {
                    if w.pending.values().all(|p| *p != c) && !w.clients[c].member_id.is_empty() && w.clients[c].generation == w.g.generation {
                        w.apply(&Op::Sync(c))?;
                    }
                }
                w.apply(&Op::Wait(100))?;
            }
            prop_assert_eq!(w.g.phase, Phase::Stable, "not Stable after the clients behaved; ops {:?}", ops);
            prop_assert!(w.g.members.len() == 4, "{} members", w.g.members.len());
            prop_assert!(w.g.members.values().all(|m| !m.assignment.is_empty()), "a member without its assignment");
        }
    }
}
