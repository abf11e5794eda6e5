//! A panicking partition actor is restarted from its on-disk state, and the node keeps
//! serving its other partitions meanwhile.

mod common;

use backwaters_actors::node::Node;
use backwaters_actors::partition::PartitionMsg;
use backwaters_proto::kafka::batch::{encode_batch, parse_batch, NewRecord};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;
use common::settings;

fn batch(n: usize, tag: &str) -> Vec<(backwaters_proto::kafka::batch::BatchHeader, Bytes)> {
    let recs: Vec<NewRecord> = (0..n).map(|i| NewRecord { value: Some(Bytes::from(format!("{tag}-{i}"))), timestamp_ms: now_ms(), ..Default::default() }).collect();
    let b = encode_batch(&recs).unwrap();
    vec![(parse_batch(&b).unwrap(), b)]
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_partition_restarts_from_disk_and_others_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(settings(dir.path())).await.unwrap();
    let topic = node.create_topic("t", 2, 1, BTreeMap::new(), false).await.unwrap();
    let (p0, p1) = (topic.partitions[0].clone(), topic.partitions[1].clone());
    assert_eq!(node.produce(&p0, batch(3, "a"), -1, T).await.unwrap().base_offset, 0);
    assert_eq!(node.produce(&p1, batch(2, "b"), -1, T).await.unwrap().base_offset, 0);

    let before = p0.actor().unwrap().get_id();
    p0.actor().unwrap().cast(PartitionMsg::InjectPanic).unwrap();
    // The other partition answers while p0 restarts.
    assert_eq!(node.produce(&p1, batch(1, "b"), -1, T).await.unwrap().base_offset, 2);
    let mut restarted = false;
    for _ in 0..100 {
        if p0.actor().is_some_and(|a| a.get_id() != before) {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(restarted, "partition actor was not restarted");
    // State came back from disk: the next offset follows what was stored.
    assert_eq!(node.produce(&p0, batch(2, "a"), -1, T).await.unwrap().base_offset, 3);
    assert_eq!(p0.high_watermark(), 5);
    let tree = node.supervision_tree().await;
    let p0_status = tree.iter().find(|(s, c)| s == "partitions" && c.name.ends_with(&format!("/p{}", p0.log.uid()))).unwrap();
    assert_eq!(p0_status.1.restarts, 1);
    assert!(p0_status.1.last_failure.as_deref().unwrap_or("").contains("injected panic"));
    node.shutdown().await;
    drop((node, topic, p0, p1));

    // And everything survives a full node restart.
    let node = Node::start(settings(dir.path())).await.unwrap();
    let p0 = node.partition("t", 0).unwrap();
    assert_eq!(p0.high_watermark(), 5);
    let entries = p0.read(0, 1 << 20).unwrap();
    assert_eq!(entries.len(), 2);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_budget_escalates() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(settings(dir.path())).await.unwrap();
    let topic = node.create_topic("t", 1, 1, BTreeMap::new(), false).await.unwrap();
    let p0 = topic.partitions[0].clone();
    // 11 panics in quick succession exceed the partitions supervisor's budget (10 in 10 s):
    // the failure escalates to the root, which restarts the partitions supervisor.
    for _ in 0..11 {
        let before = p0.actor().map(|a| a.get_id());
        if let Some(a) = p0.actor() {
            a.cast(PartitionMsg::InjectPanic).unwrap();
        }
        for _ in 0..100 {
            if p0.actor().map(|a| a.get_id()) != before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tree = node.supervision_tree().await;
    let root_partitions = tree.iter().find(|(s, c)| s == "root" && c.name.ends_with("1-partitions")).unwrap();
    assert!(root_partitions.1.restarts >= 1, "{tree:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_batches_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(settings(dir.path())).await.unwrap();
    let mut o = BTreeMap::new();
    o.insert("retention.bytes".to_string(), "1".to_string());
    let topic = node.create_topic("r", 1, 1, o, false).await.unwrap();
    let p = topic.partitions[0].clone();
    for _ in 0..5 {
        node.produce(&p, batch(10, "x"), -1, T).await.unwrap();
    }
    for _ in 0..100 {
        if p.log_start_offset() == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // retention.bytes keeps the newest batch (Kafka keeps the active segment).
    assert_eq!(p.log_start_offset(), 40);
    assert_eq!(p.high_watermark(), 50);
    node.shutdown().await;
}
