//! The group state machine driven by hand: time is a number, tokens are numbers.

use super::state::*;
use bytes::Bytes;

type Out = Vec<Output<u32>>;

fn limits() -> GroupLimits {
    GroupLimits { min_session_timeout_ms: 1_000, max_session_timeout_ms: 60_000, initial_rebalance_delay_ms: 0, max_size: 10 }
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
