//! A follower answers an append only once the entries are flushed, even when a later ready
//! that writes nothing (a heartbeat answer) completes first: raft-rs reads
//! `on_persist_ready(n)` as "every ready up to n is on disk". Found in review: a ready
//! without writes used to complete every earlier ready with it, flush or not.

use backwaters_actors::flusher::{FlusherMsg, OnDurable};
use backwaters_actors::partition::{PartitionActor, PartitionArgs, PartitionMsg, PartitionShared};
use backwaters_actors::replica::{raft_id, Timing, Transport};
use backwaters_storage::Store;
use raft::prelude::{Entry, Message, MessageType};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// A flusher that holds every registration until the test lets it go.
struct HeldFlusher;

type Held = Arc<Mutex<Vec<OnDurable>>>;

impl Actor for HeldFlusher {
    type Msg = FlusherMsg;
    type State = Held;
    type Arguments = Held;
    async fn pre_start(&self, _me: ActorRef<FlusherMsg>, held: Held) -> Result<Held, ActorProcessingErr> {
        Ok(held)
    }
    async fn handle(&self, _me: ActorRef<FlusherMsg>, msg: FlusherMsg, held: &mut Held) -> Result<(), ActorProcessingErr> {
        if let FlusherMsg::Register { done, .. } = msg {
            held.lock().unwrap().push(done);
        }
        Ok(())
    }
}

#[derive(Default)]
struct Sent(Mutex<Vec<Message>>);

impl Transport for Sent {
    fn send(&self, _group: u64, messages: Vec<Message>) {
        self.0.lock().unwrap().extend(messages);
    }
}

impl Sent {
    fn of(&self, t: MessageType) -> Vec<Message> {
        self.0.lock().unwrap().iter().filter(|m| m.get_msg_type() == t).cloned().collect()
    }
}

fn from_leader(t: MessageType) -> Message {
    let mut m = Message::default();
    m.set_msg_type(t);
    m.from = raft_id(2);
    m.to = raft_id(1);
    m.term = 1;
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_is_answered_only_after_its_flush() {
    let store = Store::temporary().unwrap();
    // Replicas [2, 1]: node 1 (this one) is not the preferred leader, so it does not campaign.
    let shared = PartitionShared::new("t".into(), 0, &store, 7, vec![2, 1]);
    let held: Held = Arc::default();
    let (flusher, _) = Actor::spawn(None, HeldFlusher, held.clone()).await.unwrap();
    let sent = Arc::new(Sent::default());
    let args = PartitionArgs {
        shared,
        config: Arc::new(RwLock::new(Default::default())),
        flusher: Arc::new(move || Some(flusher.clone())),
        clock: Arc::new(backwaters_actors::SystemClock),
        metrics: Arc::new(Default::default()),
        node_id: 1,
        group: 7,
        transport: sent.clone(),
        timing: Timing::Fixed(10),
        on_leader: Arc::new(|_, _| {}),
        drained: Arc::default(),
        disk: Arc::new(backwaters_actors::node::DiskGuard::new(0)),
        rebalance_ms: 60_000,
        tick_ms: 100,
    };
    let (partition, _) = Actor::spawn(None, PartitionActor, args).await.unwrap();

    // The leader (node 2) appends its first entry (an empty one, as after an election).
    let mut append = from_leader(MessageType::MsgAppend);
    append.entries = vec![Entry { term: 1, index: 1, ..Default::default() }].into();
    partition.cast(PartitionMsg::Raft(Box::new(append))).unwrap();
    // Its ready is handed to the flusher (and held there)...
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while held.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the append was never handed to the flusher");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...then a heartbeat arrives, whose answer needs nothing written: a ready of its own.
    partition.cast(PartitionMsg::Raft(Box::new(from_leader(MessageType::MsgHeartbeat)))).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sent.of(MessageType::MsgAppendResponse).is_empty(), "an append was acknowledged before its flush: {:?}", sent.of(MessageType::MsgAppendResponse));

    // The flush completes: now both answers go out, the append's first.
    for done in held.lock().unwrap().drain(..) {
        done(Ok(()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acks = sent.of(MessageType::MsgAppendResponse);
    assert_eq!(acks.len(), 1, "one answer to the append");
    assert_eq!(acks[0].index, 1);
    assert!(!acks[0].reject);
    assert_eq!(sent.of(MessageType::MsgHeartbeatResponse).len(), 1);
    partition.stop(None);
}
