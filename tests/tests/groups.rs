//! Consumer groups with librdkafka members: partitions shared and rebalanced when members
//! come, leave or die; commits surviving a broker restart; cooperative-sticky; join latency;
//! and bad group requests on a raw socket.

use backwaters_tests::member::{consumer_config, Member};
use backwaters_tests::raw;
use backwaters_tests::TestNode;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

async fn create_topic(node: &TestNode, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &node.kafka).create().unwrap();
    let r = admin.create_topics([&NewTopic::new(name, partitions, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
}

/// Produces `values` round-robin over `partitions` partitions (acks=all).
async fn produce(node: &TestNode, topic: &str, partitions: i32, values: impl Iterator<Item = usize>) {
    let p: FutureProducer = ClientConfig::new().set("bootstrap.servers", &node.kafka).set("acks", "all").set("linger.ms", "5").create().unwrap();
    let mut pending = Vec::new();
    for i in values {
        let v = format!("r{i}");
        pending.push(p.send_result(FutureRecord::<(), _>::to(topic).partition(i as i32 % partitions).payload(&v)).map_err(|(e, _)| e).unwrap());
    }
    for f in pending {
        f.await.unwrap().expect("acknowledged");
    }
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

/// The partitions are split among the sets with none shared and none left out.
fn partitioned(sets: &[BTreeSet<i32>], total: i32) -> bool {
    let all: Vec<i32> = sets.iter().flatten().copied().collect();
    all.len() == total as usize && all.iter().copied().collect::<BTreeSet<_>>() == (0..total).collect()
}

/// A member in a child process, so it can be SIGKILLed (no LeaveGroup).
struct ChildMember {
    child: std::process::Child,
    assigned: Arc<Mutex<BTreeSet<i32>>>,
    values: Arc<Mutex<Vec<String>>>,
}

impl ChildMember {
    fn start(bootstrap: &str, group: &str, topic: &str) -> ChildMember {
        let mut child = Command::new(env!("CARGO_BIN_EXE_group_member")).args([bootstrap, group, topic, "range"]).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let assigned: Arc<Mutex<BTreeSet<i32>>> = Default::default();
        let values: Arc<Mutex<Vec<String>>> = Default::default();
        let (a, v) = (assigned.clone(), values.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(ps) = line.strip_prefix("ASSIGNED ") {
                    *a.lock().unwrap() = ps.split(',').filter(|s| !s.is_empty()).map(|p| p.parse().unwrap()).collect();
                } else if let Some(rec) = line.strip_prefix("REC ") {
                    v.lock().unwrap().push(rec.splitn(3, ' ').nth(2).unwrap_or_default().to_string());
                }
            }
        });
        ChildMember { child, assigned, values }
    }
    fn assigned(&self) -> BTreeSet<i32> {
        self.assigned.lock().unwrap().clone()
    }
}

impl Drop for ChildMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn seen_all(n: usize, sources: &[&dyn Fn() -> Vec<String>]) -> bool {
    let seen: HashSet<String> = sources.iter().flat_map(|f| f()).collect();
    (0..n).all(|i| seen.contains(&format!("r{i}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_share_a_topic_and_rebalance_when_one_dies_or_leaves() {
    let node = TestNode::start();
    create_topic(&node, "shared", 6).await;
    produce(&node, "shared", 6, 0..600).await;

    let c = ChildMember::start(&node.kafka, "g-share", "shared");
    let mut a = Member::start(consumer_config(&node.kafka, "g-share", "range"), "shared");
    let mut b = Member::start(consumer_config(&node.kafka, "g-share", "range"), "shared");
    wait_until("three members holding two partitions each", Duration::from_secs(30), || {
        let sets = [a.assigned(), b.assigned(), c.assigned()];
        partitioned(&sets, 6) && sets.iter().all(|s| s.len() == 2)
    });
    let cv = c.values.clone();
    let (av, bv) = (a.records.clone(), b.records.clone());
    let vals = |r: &Arc<Mutex<Vec<(i32, i64, String)>>>| r.lock().unwrap().iter().map(|x| x.2.clone()).collect::<Vec<_>>();
    let sources: [&dyn Fn() -> Vec<String>; 3] = [&|| vals(&av), &|| vals(&bv), &|| cv.lock().unwrap().clone()];
    wait_until("every record consumed", Duration::from_secs(30), || seen_all(600, &sources));

    // A member dies without a word: the others take its partitions after its session
    // (6 s) and no record is skipped.
    let mut c = c;
    let _ = c.child.kill();
    let _ = c.child.wait();
    let killed = Instant::now();
    produce(&node, "shared", 6, 600..1200).await;
    wait_until("the two live members holding all six partitions", Duration::from_secs(20), || partitioned(&[a.assigned(), b.assigned()], 6));
    let took = killed.elapsed();
    eprintln!("rebalance after SIGKILL of a member took {took:?}");
    assert!(took < Duration::from_secs(12), "rebalance took {took:?} with a 6 s session timeout");
    wait_until("every record consumed after the rebalance", Duration::from_secs(30), || seen_all(1200, &sources));

    // A member that leaves (LeaveGroup) hands over at once, without a session timeout.
    b.stop();
    let left = Instant::now();
    wait_until("the last member holding all partitions", Duration::from_secs(10), || a.assigned().len() == 6);
    eprintln!("rebalance after LeaveGroup took {:?}", left.elapsed());
    assert!(left.elapsed() < Duration::from_secs(5));
    produce(&node, "shared", 6, 1200..1300).await;
    wait_until("records after the leave", Duration::from_secs(30), || seen_all(1300, &sources));
    a.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_keep_their_partitions() {
    let node = TestNode::start();
    create_topic(&node, "coop", 6).await;
    let cfg = || consumer_config(&node.kafka, "g-coop", "cooperative-sticky");
    let mut members: Vec<Member> = (0..3).map(|_| Member::start(cfg(), "coop")).collect();
    wait_until("three cooperative members holding two partitions each", Duration::from_secs(30), || {
        let sets: Vec<BTreeSet<i32>> = members.iter().map(Member::assigned).collect();
        partitioned(&sets, 6) && sets.iter().all(|s| s.len() == 2)
    });
    let before: Vec<BTreeSet<i32>> = members.iter().map(Member::assigned).collect();
    members[2].stop();
    wait_until("the two remaining members holding everything", Duration::from_secs(20), || partitioned(&[members[0].assigned(), members[1].assigned()], 6));
    for (i, m) in members.iter().take(2).enumerate() {
        assert!(m.assigned().is_superset(&before[i]), "member {i} lost partitions: had {:?}, has {:?}", before[i], m.assigned());
    }
    produce(&node, "coop", 6, 0..60).await;
    wait_until("records flow after the incremental rebalance", Duration::from_secs(20), || members[0].values().len() + members[1].values().len() >= 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_broker_restart() {
    let mut node = TestNode::start();
    create_topic(&node, "kept", 2).await;
    produce(&node, "kept", 2, 0..100).await;
    let mut m = Member::start(consumer_config(&node.kafka, "g-kept", "range"), "kept");
    wait_until("100 records consumed and committed", Duration::from_secs(30), || m.values().len() >= 100);
    m.stop();

    node.restart(); // SIGKILL, then start again on the same data
    let c: BaseConsumer = consumer_config(&node.kafka, "g-kept", "range").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("kept", 0);
    tpl.add_partition("kept", 1);
    let committed = c.committed_offsets(tpl, Duration::from_secs(20)).unwrap();
    for e in committed.elements() {
        assert_eq!(e.offset(), Offset::Offset(50), "partition {} after restart", e.partition());
    }
    drop(c);
    // A member of the same group resumes there: only new records arrive.
    produce(&node, "kept", 2, 100..110).await;
    let m = Member::start(consumer_config(&node.kafka, "g-kept", "range"), "kept");
    wait_until("the new records", Duration::from_secs(30), || m.values().len() >= 10);
    std::thread::sleep(Duration::from_millis(500));
    let mut got = m.values();
    got.sort();
    let mut want: Vec<String> = (100..110).map(|i| format!("r{i}")).collect();
    want.sort();
    assert_eq!(got, want, "nothing before the committed offsets is read again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_receives_records_within_five_seconds() {
    let node = TestNode::start();
    create_topic(&node, "fast", 1).await;
    produce(&node, "fast", 1, 0..1).await;
    let t0 = Instant::now();
    let m = Member::start(consumer_config(&node.kafka, "g-fast", "range"), "fast");
    let took = wait_until("the first record", Duration::from_secs(15), || !m.values().is_empty());
    eprintln!("librdkafka member: first record after {:?}", t0.elapsed());
    assert!(took < Duration::from_secs(5), "first record after {took:?}");
}

fn join_v5(s: &mut std::net::TcpStream, group: &str, member: &str) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_session_timeout_ms(6_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range")).with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0]))]);
    raw::call(s, ApiKey::JoinGroup, 5, &req)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_requests_get_protocol_errors_and_leave_the_group_intact() {
    let node = TestNode::start();
    create_topic(&node, "real", 1).await;
    let mut s = raw::connect(&node.kafka);
    let gid = |g: &str| GroupId(StrBytes::from_string(g.into()));
    let sb = |x: &str| StrBytes::from_string(x.into());

    let fc: FindCoordinatorResponse = raw::call(&mut s, ApiKey::FindCoordinator, 3, &FindCoordinatorRequest::default().with_key(sb("g-raw")));
    assert_eq!(fc.error_code, 0);
    assert_eq!(fc.node_id.0, 1);

    // Join: a member id first, then generation 1 with us as leader.
    let first = join_v5(&mut s, "g-raw", "");
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = first.member_id.to_string();
    let joined = join_v5(&mut s, "g-raw", &member);
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader.to_string(), member);

    // SyncGroup assigning a topic that does not exist: assignments are opaque to the broker
    // (Kafka does not read them), so it is stored and handed back unchanged.
    let bogus = bytes::Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x07nothere\x00\x00\x00\x01\x00\x00\x00\x00\xff\xff\xff\xff");
    let sync = SyncGroupRequest::default()
        .with_group_id(gid("g-raw"))
        .with_generation_id(1)
        .with_member_id(sb(&member))
        .with_assignments(vec![sync_group_request::SyncGroupRequestAssignment::default().with_member_id(sb(&member)).with_assignment(bogus.clone())]);
    let synced: SyncGroupResponse = raw::call(&mut s, ApiKey::SyncGroup, 3, &sync);
    assert_eq!((synced.error_code, synced.assignment.clone()), (0, bogus));

    // Heartbeat from an unknown member; from a stale generation; then the real one.
    let hb = |m: &str, g: i32| HeartbeatRequest::default().with_group_id(gid("g-raw")).with_member_id(sb(m)).with_generation_id(g);
    let r: HeartbeatResponse = raw::call(&mut s, ApiKey::Heartbeat, 3, &hb("stranger", 1));
    assert_eq!(r.error_code, 25, "UNKNOWN_MEMBER_ID");
    let r: HeartbeatResponse = raw::call(&mut s, ApiKey::Heartbeat, 3, &hb(&member, 0));
    assert_eq!(r.error_code, 22, "ILLEGAL_GENERATION");

    // Commits: stale generation, unknown topic, too much metadata; then a good one.
    let commit = |generation: i32, topic: &str, metadata: &str| {
        OffsetCommitRequest::default().with_group_id(gid("g-raw")).with_generation_id_or_member_epoch(generation).with_member_id(sb(&member)).with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(5).with_committed_metadata(Some(sb(metadata)))])])
    };
    let code = |r: OffsetCommitResponse| r.topics[0].partitions[0].error_code;
    assert_eq!(code(raw::call(&mut s, ApiKey::OffsetCommit, 7, &commit(0, "real", ""))), 22, "ILLEGAL_GENERATION");
    assert_eq!(code(raw::call(&mut s, ApiKey::OffsetCommit, 7, &commit(1, "nothere", ""))), 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(code(raw::call(&mut s, ApiKey::OffsetCommit, 7, &commit(1, "real", &"x".repeat(5000)))), 12, "OFFSET_METADATA_TOO_LARGE");
    assert_eq!(code(raw::call(&mut s, ApiKey::OffsetCommit, 7, &commit(1, "real", "ok"))), 0);

    // A join with a session timeout below the broker's minimum, and an empty group id.
    let mut bad = JoinGroupRequest::default().with_group_id(gid("g-raw")).with_session_timeout_ms(10).with_protocol_type(sb("consumer"));
    bad.protocols = vec![join_group_request::JoinGroupRequestProtocol::default().with_name(sb("range"))];
    let r: JoinGroupResponse = raw::call(&mut s, ApiKey::JoinGroup, 5, &bad);
    assert_eq!(r.error_code, 26, "INVALID_SESSION_TIMEOUT");
    let r: HeartbeatResponse = raw::call(&mut s, ApiKey::Heartbeat, 3, &HeartbeatRequest::default().with_group_id(gid("")).with_member_id(sb("x")));
    assert_eq!(r.error_code, 24, "INVALID_GROUP_ID");
    // Deleting a group with members is refused.
    let r: DeleteGroupsResponse = raw::call(&mut s, ApiKey::DeleteGroups, 2, &DeleteGroupsRequest::default().with_groups_names(vec![gid("g-raw"), gid("g-none")]));
    assert_eq!(r.results.iter().map(|x| x.error_code).collect::<Vec<_>>(), vec![68, 69], "NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND");

    // None of that damaged the group: still Stable, generation 1, our offset stored.
    let r: HeartbeatResponse = raw::call(&mut s, ApiKey::Heartbeat, 3, &hb(&member, 1));
    assert_eq!(r.error_code, 0);
    let d: DescribeGroupsResponse = raw::call(&mut s, ApiKey::DescribeGroups, 5, &DescribeGroupsRequest::default().with_groups(vec![gid("g-raw")]));
    assert_eq!(d.groups[0].group_state.to_string(), "Stable");
    assert_eq!(d.groups[0].members.len(), 1);
    let f: OffsetFetchResponse = raw::call(&mut s, ApiKey::OffsetFetch, 7, &OffsetFetchRequest::default().with_group_id(gid("g-raw")).with_topics(None));
    assert_eq!(f.topics.len(), 1);
    assert_eq!((f.topics[0].partitions[0].committed_offset, f.topics[0].partitions[0].metadata.as_ref().map(|m| m.to_string())), (5, Some("ok".to_string())));

    // Leave, then the empty group can be deleted along with its offsets.
    let l: LeaveGroupResponse = raw::call(&mut s, ApiKey::LeaveGroup, 3, &LeaveGroupRequest::default().with_group_id(gid("g-raw")).with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(sb(&member))]));
    assert_eq!((l.error_code, l.members[0].error_code), (0, 0));
    let lg: ListGroupsResponse = raw::call(&mut s, ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    assert!(lg.groups.iter().any(|g| g.group_id.to_string() == "g-raw" && g.group_state.to_string() == "Empty"), "{lg:?}");
    let r: DeleteGroupsResponse = raw::call(&mut s, ApiKey::DeleteGroups, 2, &DeleteGroupsRequest::default().with_groups_names(vec![gid("g-raw")]));
    assert_eq!(r.results[0].error_code, 0);
    let f: OffsetFetchResponse = raw::call(&mut s, ApiKey::OffsetFetch, 7, &OffsetFetchRequest::default().with_group_id(gid("g-raw")).with_topics(None));
    assert!(f.topics.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_and_shell_list_describe_reset_and_delete_groups() {
    use backwaters_proto::grpc::v1 as pb;
    use pb::reset_group_offsets_request::To;
    let node = TestNode::start();
    create_topic(&node, "ops", 2).await;
    produce(&node, "ops", 2, 0..40).await;
    let mut m = Member::start(consumer_config(&node.kafka, "g-ops", "range"), "ops");
    wait_until("40 records consumed", Duration::from_secs(30), || m.values().len() >= 40);
    produce(&node, "ops", 2, 40..50).await; // 5 more per partition: lag appears once read stops
    let mut admin = pb::admin_client::AdminClient::connect(node.grpc_url()).await.unwrap();

    let groups = admin.list_groups(pb::ListGroupsRequest {}).await.unwrap().into_inner().groups;
    assert!(groups.iter().any(|g| g.group_id == "g-ops" && g.state == "Stable" && g.protocol_type == "consumer"), "{groups:?}");
    let d = admin.describe_group(pb::DescribeGroupRequest { group_id: "g-ops".into() }).await.unwrap().into_inner();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].assignment, vec![pb::TopicPartitions { topic: "ops".into(), partitions: vec![0, 1] }]);
    assert_eq!(d.protocol, "range");
    assert!(d.partitions.iter().all(|p| p.member_id == d.members[0].member_id && p.high_watermark == 25), "{:?}", d.partitions);

    // Resetting a group with members is refused with a message that says what to do.
    let reset = |to: To, dry_run: bool| pb::ResetGroupOffsetsRequest { group_id: "g-ops".into(), topics: vec!["ops".into()], to: Some(to), dry_run };
    let e = admin.reset_group_offsets(reset(To::Earliest(true), false)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("stop its consumers"), "{}", e.message());
    let e = admin.delete_group(pb::DeleteGroupRequest { group_id: "g-ops".into() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);

    m.stop();
    let d = admin.describe_group(pb::DescribeGroupRequest { group_id: "g-ops".into() }).await.unwrap().into_inner();
    assert_eq!(d.state, "Empty");
    let lag: i64 = d.partitions.iter().map(|p| p.lag).sum();
    assert!(lag <= 10, "lag {lag} of {:?}", d.partitions);

    // A dry run changes nothing; then a real reset to offset 3 that a new member starts from.
    let plan = admin.reset_group_offsets(reset(To::Offset(3), true)).await.unwrap().into_inner().partitions;
    assert!(plan.iter().all(|p| p.committed_offset == 3 && p.lag == 22), "{plan:?}");
    let d2 = admin.describe_group(pb::DescribeGroupRequest { group_id: "g-ops".into() }).await.unwrap().into_inner();
    assert_eq!(d2.partitions, d.partitions, "a dry run changed offsets");
    let (ok, out, err) = shell(&node, &["-c", "group reset-offsets g-ops --topic ops --to-offset 3 --execute"]);
    assert!(ok, "{out}{err}");
    let c: BaseConsumer = consumer_config(&node.kafka, "g-ops", "range").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("ops", 0);
    tpl.add_partition("ops", 1);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    assert!(committed.elements().iter().all(|e| e.offset() == Offset::Offset(3)), "{committed:?}");
    drop(c);

    let (ok, out, _) = shell(&node, &["-c", "group describe g-ops"]);
    assert!(ok && out.contains("Empty") && out.contains("ops    0          3"), "{out}");
    let (ok, out, _) = shell(&node, &["-o", "json", "-c", "group list"]);
    assert!(ok && out.contains("\"g-ops\""), "{out}");
    let (ok, out, _) = shell(&node, &["-c", "group delete g-ops --yes"]);
    assert!(ok && out.contains("deleted group g-ops"), "{out}");
    let (ok, _, err) = shell(&node, &["-c", "group describe g-ops"]);
    assert!(!ok && err.contains("does not exist"), "{err}");
}

fn shell(node: &TestNode, args: &[&str]) -> (bool, String, String) {
    let out = backwaters_tests::output_within(Command::new(backwaters_tests::binary()).args(["shell", "--bootstrap", &node.grpc]).args(args), Duration::from_secs(60));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_that_restarts_gets_its_partitions_back_without_a_rebalance() {
    use backwaters_proto::grpc::v1 as pb;
    let node = TestNode::start();
    create_topic(&node, "static", 4).await;
    let cfg = |instance: &str| {
        let mut c = consumer_config(&node.kafka, "g-static", "range");
        c.set("group.instance.id", instance).set("session.timeout.ms", "30000");
        c
    };
    let a = Member::start(cfg("static-a"), "static");
    let mut b = Member::start(cfg("static-b"), "static");
    wait_until("two static members holding two partitions each", Duration::from_secs(30), || partitioned(&[a.assigned(), b.assigned()], 4) && a.assigned().len() == 2);
    let mut admin = pb::admin_client::AdminClient::connect(node.grpc_url()).await.unwrap();
    let before = admin.describe_group(pb::DescribeGroupRequest { group_id: "g-static".into() }).await.unwrap().into_inner();
    let b_parts = b.assigned();
    let b_was_leader = before.members.iter().any(|m| m.instance_id == "static-b" && m.member_id == before.leader);

    // A static member's close sends no LeaveGroup (KIP-345); its replacement takes over the
    // same identity.
    b.stop();
    let b2 = Member::start(cfg("static-b"), "static");
    wait_until("the restarted static member to get its partitions", Duration::from_secs(20), || b2.assigned() == b_parts);
    let after = admin.describe_group(pb::DescribeGroupRequest { group_id: "g-static".into() }).await.unwrap().into_inner();
    assert_eq!(after.members.len(), 2);
    assert!(a.assigned().len() == 2 && partitioned(&[a.assigned(), b2.assigned()], 4));
    if b_was_leader {
        // A returning leader must see the members again: one rebalance.
        assert_eq!(after.generation, before.generation + 1);
    } else {
        assert_eq!(after.generation, before.generation, "a returning follower caused a rebalance");
    }
    let old_id = before.members.iter().find(|m| m.instance_id == "static-b").unwrap().member_id.clone();
    assert!(after.members.iter().all(|m| m.member_id != old_id), "the old member id was not replaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_group_carries_on_across_a_broker_restart() {
    use backwaters_proto::grpc::v1 as pb;
    let mut node = TestNode::start();
    create_topic(&node, "carry", 2).await;
    produce(&node, "carry", 2, 0..20).await;
    let m = Member::start(consumer_config(&node.kafka, "g-carry", "range"), "carry");
    wait_until("20 records", Duration::from_secs(30), || m.values().len() >= 20);
    let mut admin = pb::admin_client::AdminClient::connect(node.grpc_url()).await.unwrap();
    let before = admin.describe_group(pb::DescribeGroupRequest { group_id: "g-carry".into() }).await.unwrap().into_inner();

    let t0 = Instant::now();
    node.restart(); // SIGKILL: the coordinator replays the group from __consumer_offsets
    eprintln!("broker restarted in {:?}", t0.elapsed());
    let mut admin = pb::admin_client::AdminClient::connect(node.grpc_url()).await.unwrap();
    let restored = admin.describe_group(pb::DescribeGroupRequest { group_id: "g-carry".into() }).await.unwrap().into_inner();
    assert_eq!((restored.state.as_str(), restored.generation, restored.members.len()), ("Stable", before.generation, 1), "the membership was restored");
    produce(&node, "carry", 2, 20..40).await;
    let took = wait_until("records after the restart", Duration::from_secs(60), || seen_all(40, &[&|| m.values()]));
    eprintln!("records flowed again {took:?} after the restarted broker took them");
    let after = admin.describe_group(pb::DescribeGroupRequest { group_id: "g-carry".into() }).await.unwrap().into_inner();
    assert_eq!(after.members[0].member_id, before.members[0].member_id, "the member kept its id: it heartbeated into the restored group");
}
