//! Group coordinators on a real node with an injected clock: committed offsets survive
//! coordinator crashes and node restarts, expire by the retention rule, and the
//! `__consumer_offsets` partition is compacted without losing the latest commits.

mod common;

use backwaters_actors::group::state::GroupError;
use backwaters_actors::group::{CommitOffset, CoordinatorMsg, GroupSettings, OFFSETS_TOPIC};
use backwaters_actors::node::{Node, NodeSettings};
use backwaters_actors::Clock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

const RETENTION_MS: i64 = 3_600_000;
const T: Duration = Duration::from_secs(10);

fn settings(dir: &std::path::Path) -> NodeSettings {
    let groups = GroupSettings { offsets_topic_partitions: 3, offsets_retention_ms: RETENTION_MS, ..Default::default() };
    NodeSettings { groups, ..common::settings(dir) }
}

/// A standalone commit (generation -1), as `assign()` consumers and admin tools make.
/// Coordinators load in the background after a start, a restart or a leadership change
/// (COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR): Kafka clients retry those, and so do these.
fn retriable(e: &GroupError) -> bool {
    matches!(e, GroupError::CoordinatorLoadInProgress | GroupError::NotCoordinator | GroupError::CoordinatorNotAvailable)
}

async fn commit(node: &Node, group: &str, offset: i64) -> Result<Vec<Result<(), GroupError>>, GroupError> {
    for _ in 0..200 {
        let offsets = vec![CommitOffset { topic: "t".into(), partition: 0, offset, leader_epoch: -1, metadata: format!("m{offset}") }];
        match node.ask_coordinator(group, T, |reply| CoordinatorMsg::Commit { group: group.into(), member_id: String::new(), instance_id: None, generation: -1, offsets, reply }).await {
            Err(e) if retriable(&e) => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(Err(e)) if retriable(&e) => tokio::time::sleep(Duration::from_millis(50)).await,
            r => return r?,
        }
    }
    Err(GroupError::CoordinatorLoadInProgress)
}

async fn fetched(node: &Node, group: &str) -> Option<i64> {
    for _ in 0..200 {
        match node.ask_coordinator(group, T, |reply| CoordinatorMsg::Fetch { group: group.into(), partitions: Some(vec![("t".into(), 0)]), member: None, reply }).await {
            Err(e) if retriable(&e) => tokio::time::sleep(Duration::from_millis(50)).await,
            r => return r.unwrap().unwrap()[0].2.as_ref().map(|v| v.offset),
        }
    }
    panic!("the coordinator of {group} never finished loading");
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_survive_restarts_expire_by_retention_and_compaction_keeps_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(1_000_000)));
    let node = Node::start_with_clock(settings(dir.path()), clock.clone()).await.unwrap();
    node.create_topic("t", 1, 1, BTreeMap::new(), false).await.unwrap();

    // Many commits of one partition: the coordinator's partition grows, then is compacted.
    for i in 0..2_500 {
        assert_eq!(commit(&node, "busy", i).await.unwrap(), vec![Ok(())]);
    }
    assert_eq!(commit(&node, "quiet", 7).await.unwrap(), vec![Ok(())]);
    let busy = node.partition(OFFSETS_TOPIC, node.group_partition("busy")).unwrap();
    clock.0.fetch_add(6_000, Ordering::SeqCst); // housekeeping runs every 5 s of node time
    eventually("compaction of the busy partition", async || busy.log_start_offset() > 2_000).await;
    assert_eq!(fetched(&node, "busy").await, Some(2_499));

    // A crashed coordinator replays the compacted partition.
    let tree = node.supervision_tree().await;
    let coord = tree.iter().find(|(s, c)| s == "groups" && c.name.ends_with(&format!("/g{}", node.group_partition("busy")))).expect("coordinator in the tree").1.name.clone();
    ractor::registry::where_is(coord.clone()).unwrap().stop(Some("test crash".into()));
    eventually("the coordinator to come back", async || matches!(commit(&node, "other", 1).await, Ok(_)) && ractor::registry::where_is(coord.clone()).is_some()).await;
    assert_eq!(fetched(&node, "busy").await, Some(2_499));

    // And a whole node restart.
    node.shutdown().await;
    drop((node, busy)); // the partition handle holds the store open
    let node = Node::start_with_clock(settings(dir.path()), clock.clone()).await.unwrap();
    assert_eq!(fetched(&node, "busy").await, Some(2_499));
    assert_eq!(fetched(&node, "quiet").await, Some(7));

    // Standalone commits expire one by one after the retention time.
    clock.0.fetch_add(RETENTION_MS - 60_000, Ordering::SeqCst);
    commit(&node, "quiet", 8).await.unwrap(); // refreshed: must outlive "busy"
    clock.0.fetch_add(120_000, Ordering::SeqCst);
    eventually("busy's offsets to expire", async || fetched(&node, "busy").await.is_none()).await;
    assert_eq!(fetched(&node, "quiet").await, Some(8));
    assert!(node.list_groups().await.unwrap().iter().all(|g| g.group_id != "busy"), "an expired group with nothing left is removed");
    node.shutdown().await;
    drop(node);
    let node = Node::start_with_clock(settings(dir.path()), clock.clone()).await.unwrap();
    assert_eq!(fetched(&node, "busy").await, None, "expiry is durable");
    assert_eq!(fetched(&node, "quiet").await, Some(8));
    node.shutdown().await;
}
