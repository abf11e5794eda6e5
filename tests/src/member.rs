//! A consumer-group member driven by librdkafka: polls, commits each record synchronously
//! after handing it on, and reports its assignment whenever it changes. Used in-process
//! ([`Member`]) and as a child process that a test can SIGKILL (`group_member` binary), so a
//! member can die without a LeaveGroup.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a member reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Assigned(BTreeSet<i32>),
    Record { partition: i32, offset: i64, value: String },
}

pub fn consumer_config(bootstrap: &str, group: &str, strategy: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("partition.assignment.strategy", strategy);
    c
}

/// Runs until `stop`; `on_event` sees every assignment change and every record (a record is
/// reported before its offset is committed: at-least-once).
pub fn run(config: ClientConfig, topic: &str, stop: &AtomicBool, mut on_event: impl FnMut(Event)) {
    let consumer: BaseConsumer = config.create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut assigned: Option<BTreeSet<i32>> = None;
    while !stop.load(Ordering::SeqCst) {
        let polled = consumer.poll(Duration::from_millis(100));
        let now: BTreeSet<i32> = consumer.assignment().map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect()).unwrap_or_default();
        if assigned.as_ref() != Some(&now) {
            on_event(Event::Assigned(now.clone()));
            assigned = Some(now);
        }
        match polled {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                on_event(Event::Record { partition: m.partition(), offset: m.offset(), value });
                if let Err(e) = consumer.commit_message(&m, CommitMode::Sync) {
                    eprintln!("commit failed (a rebalance took the partition): {e}");
                }
            }
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => {}
        }
    }
    // Dropping the consumer closes it: LeaveGroup, so the others rebalance at once.
}

/// A member in its own thread.
pub struct Member {
    stop: Arc<AtomicBool>,
    pub assigned: Arc<Mutex<BTreeSet<i32>>>,
    pub records: Arc<Mutex<Vec<(i32, i64, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Member {
    pub fn start(config: ClientConfig, topic: &str) -> Member {
        let stop = Arc::new(AtomicBool::new(false));
        let assigned: Arc<Mutex<BTreeSet<i32>>> = Default::default();
        let records: Arc<Mutex<Vec<(i32, i64, String)>>> = Default::default();
        let (s, a, r, t) = (stop.clone(), assigned.clone(), records.clone(), topic.to_string());
        let thread = std::thread::spawn(move || {
            run(config, &t, &s, |e| match e {
                Event::Assigned(p) => *a.lock().unwrap() = p,
                Event::Record { partition, offset, value } => r.lock().unwrap().push((partition, offset, value)),
            })
        });
        Member { stop, assigned, records, thread: Some(thread) }
    }

    pub fn assigned(&self) -> BTreeSet<i32> {
        self.assigned.lock().unwrap().clone()
    }

    pub fn values(&self) -> Vec<String> {
        self.records.lock().unwrap().iter().map(|(_, _, v)| v.clone()).collect()
    }

    /// Leaves the group (LeaveGroup) and waits for the consumer to close.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop();
    }
}
