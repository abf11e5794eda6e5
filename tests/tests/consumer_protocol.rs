//! The consumer group protocol of KIP-848 (`group.protocol=consumer`) with librdkafka
//! members: the coordinator assigns, members share and hand over partitions without a
//! stop-the-world rebalance, the group survives a coordinator restart without fencing its
//! members, and the admin views (ConsumerGroupDescribe, ListGroups) show it. Raw requests
//! check the refusals.

use backwaters_tests::member::Member;
use backwaters_tests::raw;
use backwaters_tests::TestNode;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const GROUPS: &str = "[groups]\nconsumer_heartbeat_interval_ms = 300\nconsumer_session_timeout_ms = 6000\n";
const PARTITIONS: i32 = 6;

fn config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "1000");
    c
}

async fn produce(bootstrap: &str, topic: &str, values: std::ops::Range<usize>) {
    let p: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("acks", "all").set("linger.ms", "5").create().unwrap();
    let mut pending = Vec::new();
    for i in values {
        let v = format!("r{i}");
        pending.push(p.send_result(FutureRecord::<(), _>::to(topic).partition(i as i32 % PARTITIONS).payload(&v)).map_err(|(e, _)| e).unwrap());
    }
    for f in pending {
        f.await.unwrap().expect("acknowledged");
    }
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn describe(node: &TestNode, group: &str) -> consumer_group_describe_response::DescribedGroup {
    let mut s = raw::connect(&node.kafka);
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from_string(group.into()))]);
    let resp: ConsumerGroupDescribeResponse = raw::call(&mut s, ApiKey::ConsumerGroupDescribe, 1, &req);
    resp.groups.into_iter().next().unwrap()
}

fn all_values(members: &[&Member]) -> BTreeSet<String> {
    members.iter().flat_map(|m| m.values()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn librdkafka_members_share_hand_over_and_survive_a_coordinator_restart() {
    let mut node = TestNode::start_with(GROUPS);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &node.kafka).create().unwrap();
    let r = admin.create_topics([&NewTopic::new("audit", PARTITIONS, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    produce(&node.kafka, "audit", 0..300).await;

    // One member: the coordinator gives it every partition.
    let mut a = Member::start(config(&node.kafka, "siem"), "audit");
    wait_until("member a to own all six partitions", Duration::from_secs(30), || a.assigned().len() == PARTITIONS as usize);
    wait_until("member a to read the first 300 records", Duration::from_secs(30), || all_values(&[&a]).len() == 300);

    // A second member: a gives three up, b takes them once they are released.
    let b = Member::start(config(&node.kafka, "siem"), "audit");
    wait_until("a 3/3 split", Duration::from_secs(30), || a.assigned().len() == 3 && b.assigned().len() == 3);
    assert!(a.assigned().is_disjoint(&b.assigned()), "a {:?} and b {:?} share a partition", a.assigned(), b.assigned());
    let d = describe(&node, "siem");
    assert_eq!(d.error_code, 0, "{:?}", d.error_message);
    assert_eq!((d.group_state.as_str(), d.members.len(), d.assignor_name.as_str()), ("Stable", 2, "uniform"));
    assert_eq!(d.group_epoch, d.assignment_epoch);
    assert!(d.members.iter().all(|m| m.member_epoch == d.group_epoch && m.member_type == 1));
    let owned: usize = d.members.iter().flat_map(|m| m.assignment.topic_partitions.iter()).map(|tp| tp.partitions.len()).sum();
    assert_eq!(owned, PARTITIONS as usize);

    // The admin shell shows the same group (over gRPC): its type, assignor and members.
    let out = backwaters_tests::output_within(std::process::Command::new(backwaters_tests::binary()).args(["shell", "--bootstrap", &node.grpc, "-c", "group describe siem"]), Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("consumer / uniform") && text.contains("group epoch") && text.matches("audit:").count() == 2, "{text}");

    produce(&node.kafka, "audit", 300..600).await;
    wait_until("both members to read the next 300 records", Duration::from_secs(30), || all_values(&[&a, &b]).len() == 600);

    // The coordinator restarts: it reloads the group from __consumer_offsets, so the
    // members keep their epochs (no rejoin, no new group epoch).
    let epoch = d.group_epoch;
    node.restart();
    produce(&node.kafka, "audit", 600..900).await;
    wait_until("the records after the restart", Duration::from_secs(60), || all_values(&[&a, &b]).len() == 900);
    let d = describe(&node, "siem");
    assert_eq!((d.group_state.as_str(), d.group_epoch, d.members.len()), ("Stable", epoch, 2), "the restart fenced a member: {d:?}");

    // a leaves: b takes everything over, and reads on from a's commits.
    a.stop();
    wait_until("b to own all six", Duration::from_secs(30), || b.assigned().len() == PARTITIONS as usize);
    produce(&node.kafka, "audit", 900..1200).await;
    let expected: BTreeSet<String> = (0..1200).map(|i| format!("r{i}")).collect();
    wait_until("every record read", Duration::from_secs(30), || all_values(&[&a, &b]) == expected);
    // Commits carried member epochs; a restarted member resumes after them.
    let before = b.values().len();
    drop(b);
    let c = Member::start(config(&node.kafka, "siem"), "audit");
    wait_until("c to own all six", Duration::from_secs(30), || c.assigned().len() == PARTITIONS as usize);
    produce(&node.kafka, "audit", 1200..1206).await;
    wait_until("c to read the six new records", Duration::from_secs(30), || c.values().len() >= 6);
    std::thread::sleep(Duration::from_millis(500));
    let got: BTreeSet<String> = c.values().into_iter().collect();
    assert_eq!(got, (1200..1206).map(|i| format!("r{i}")).collect(), "c re-read committed records (b had read {before})");

    // ListGroups v5 tells the types apart.
    let mut s = raw::connect(&node.kafka);
    let lg: ListGroupsResponse = raw::call(&mut s, ApiKey::ListGroups, 5, &ListGroupsRequest::default().with_types_filter(vec![StrBytes::from_static_str("consumer")]));
    let listed: Vec<(String, String)> = lg.groups.iter().map(|g| (g.group_id.to_string(), g.group_type.to_string())).collect();
    assert_eq!(listed, vec![("siem".to_string(), "consumer".to_string())]);
    let lg: ListGroupsResponse = raw::call(&mut s, ApiKey::ListGroups, 5, &ListGroupsRequest::default().with_types_filter(vec![StrBytes::from_static_str("classic")]));
    assert!(lg.groups.iter().all(|g| g.group_id.as_str() != "siem"));
}

fn heartbeat(member: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("raw-group")))
        .with_member_id(StrBytes::from_string(member.into()))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("t"))]))
        .with_topic_partitions(Some(vec![]))
}

#[test]
fn bad_heartbeats_get_clear_errors_and_classic_members_cannot_join_a_consumer_group() {
    let node = TestNode::start_with(GROUPS);
    let mut s = raw::connect(&node.kafka);
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        creatable_topic_request(),
    ]);
    let _: CreateTopicsResponse = raw::call(&mut s, ApiKey::CreateTopics, 5, &create);

    // Joining without a member id (v1), with owned partitions, or an unknown assignor.
    let r: ConsumerGroupHeartbeatResponse = raw::call(&mut s, ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat("", 0));
    assert_eq!(r.error_code, kafka_protocol::ResponseError::InvalidRequest.code());
    assert!(r.error_message.unwrap().contains("MemberId"));
    let r: ConsumerGroupHeartbeatResponse = raw::call(&mut s, ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat("m1", 0).with_server_assignor(Some(StrBytes::from_static_str("magic"))));
    assert_eq!(r.error_code, kafka_protocol::ResponseError::UnsupportedAssignor.code());
    let r: ConsumerGroupHeartbeatResponse = raw::call(&mut s, ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat("m1", 0).with_subscribed_topic_names(None).with_subscribed_topic_regex(Some(StrBytes::from_static_str("t("))));
    assert_eq!(r.error_code, kafka_protocol::ResponseError::InvalidRegularExpression.code());

    // A good join: all four partitions, as topic ids Metadata can name.
    let r: ConsumerGroupHeartbeatResponse = raw::call(&mut s, ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat("m1", 0));
    assert_eq!((r.error_code, r.member_epoch, r.heartbeat_interval_ms), (0, 1, 300));
    let a = r.assignment.expect("an assignment");
    assert_eq!(a.topic_partitions.len(), 1);
    assert_eq!(a.topic_partitions[0].partitions.iter().copied().collect::<BTreeSet<i32>>(), (0..4).collect());
    let md: MetadataResponse = raw::call(&mut s, ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(None).with_topic_id(a.topic_partitions[0].topic_id),
        metadata_request::MetadataRequestTopic::default().with_name(None).with_topic_id(uuid::Uuid::from_u128(42)),
    ])));
    assert_eq!(md.topics[0].name.as_ref().map(|n| n.to_string()), Some("t".to_string()));
    assert_eq!(md.topics[1].error_code, kafka_protocol::ResponseError::UnknownTopicId.code());

    // A wrong epoch is fenced; a commit from an older epoch would be stale.
    let r: ConsumerGroupHeartbeatResponse = raw::call(&mut s, ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat("m1", 9).with_topic_partitions(None));
    assert_eq!(r.error_code, kafka_protocol::ResponseError::FencedMemberEpoch.code());
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("raw-group")))
        .with_member_id(StrBytes::from_static_str("m1"))
        .with_generation_id_or_member_epoch(0)
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(StrBytes::from_static_str("t"))).with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(1)])]);
    let r: OffsetCommitResponse = raw::call(&mut s, ApiKey::OffsetCommit, 9, &commit);
    assert_eq!(r.topics[0].partitions[0].error_code, kafka_protocol::ResponseError::StaleMemberEpoch.code());
    let r: OffsetCommitResponse = raw::call(&mut s, ApiKey::OffsetCommit, 9, &commit.with_generation_id_or_member_epoch(1));
    assert_eq!(r.topics[0].partitions[0].error_code, 0);

    // A classic member cannot join while consumer-protocol members hold the group.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("raw-group")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range")).with_metadata(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))]);
    let r: JoinGroupResponse = raw::call(&mut s, ApiKey::JoinGroup, 5, &join);
    assert_eq!(r.error_code, kafka_protocol::ResponseError::InconsistentGroupProtocol.code());
    // ConsumerGroupDescribe of a group that is not one: GROUP_ID_NOT_FOUND.
    let d = describe(&node, "no-such-group");
    assert_eq!(d.error_code, kafka_protocol::ResponseError::GroupIdNotFound.code());

    // Leaving frees the group: it is Empty, and a classic member may take it.
    let r: ConsumerGroupHeartbeatResponse = raw::call(&mut s, ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat("m1", -1));
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    assert_eq!(describe(&node, "raw-group").group_state.as_str(), "Empty");
    let r: JoinGroupResponse = raw::call(&mut s, ApiKey::JoinGroup, 5, &join.with_member_id(StrBytes::from_static_str("")));
    assert_eq!(r.error_code, kafka_protocol::ResponseError::MemberIdRequired.code());
}

fn creatable_topic_request() -> create_topics_request::CreatableTopic {
    create_topics_request::CreatableTopic::default().with_name(TopicName(StrBytes::from_static_str("t"))).with_num_partitions(4).with_replication_factor(1)
}
