//! The transactional workload: librdkafka transactional producers write transactions of
//! [`TXN_RECORDS`] records spread over every partition of [`TXN_TOPIC`], committing most and
//! aborting one in five on purpose, while the nemesis runs. Each transaction's outcome as
//! the client saw it goes into the history (committed, aborted, or unknown when the client
//! could not tell); after the run a read_committed consumer reads the topic back, and the
//! checker asks for atomicity: every record of a committed transaction read once, none of an
//! aborted one, all or none of an unknown one.

use crate::history::{Op, Recorder};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const TXN_TOPIC: &str = "chaos-txn";
/// Records per transaction.
pub const TXN_RECORDS: u64 = 8;
/// Transactional producers are numbered from here in the history (idempotent ones from 1).
pub const TXN_PRODUCER_BASE: u32 = 100;
/// The read-back consumer of the transactional topic.
pub const TXN_READER: u32 = 1;

fn producer(bootstrap: &str, k: u32) -> Option<ThreadedProducer<DefaultProducerContext>> {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", format!("chaos-tx-{k}"))
        .set("transaction.timeout.ms", "30000")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .ok()?;
    // A new instance fences the previous one and aborts what it left open.
    for _ in 0..10 {
        match p.init_transactions(Duration::from_secs(30)) {
            Ok(()) => return Some(p),
            Err(e) => eprintln!("chaos: transactional producer {k}: init_transactions: {e}; retrying"),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    None
}

/// What ending one transaction came to, as the client saw it.
fn finish(p: &ThreadedProducer<DefaultProducerContext>, commit: bool) -> &'static str {
    if commit {
        loop {
            match p.commit_transaction(Duration::from_secs(30)) {
                Ok(()) => return "committed",
                Err(KafkaError::Transaction(e)) if e.is_retriable() => continue,
                Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => break,
                // Fatal, or timed out without an answer: the outcome is not known.
                Err(_) => return "unknown",
            }
        }
    }
    loop {
        match p.abort_transaction(Duration::from_secs(30)) {
            Ok(()) => return "aborted",
            Err(KafkaError::Transaction(e)) if e.is_retriable() => continue,
            Err(_) => return "unknown",
        }
    }
}

/// One transactional producer, until `stop`. Runs on its own thread (librdkafka's
/// transactional calls block).
pub fn transact(k: u32, bootstrap: String, partitions: i32, rec: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let id = TXN_PRODUCER_BASE + k;
    let mut seq = 0u64;
    let mut p = producer(&bootstrap, k);
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Some(prod) = p.as_ref() else {
            std::thread::sleep(Duration::from_secs(1));
            p = producer(&bootstrap, k);
            continue;
        };
        let first_seq = seq;
        let mut outcome = None;
        if let Err(e) = prod.begin_transaction() {
            eprintln!("chaos: transactional producer {k}: begin: {e}; starting a new instance");
            p = None;
            continue;
        }
        for _ in 0..TXN_RECORDS {
            let value = format!("x{id}-{seq}");
            let partition = (seq % partitions as u64) as i32;
            seq += 1;
            let mut r = BaseRecord::<(), _>::to(TXN_TOPIC).partition(partition).payload(&value);
            loop {
                match prod.send(r) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                        r = back;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        eprintln!("chaos: transactional producer {k}: send: {e}");
                        outcome = Some("aborted-send");
                        break;
                    }
                }
            }
            if outcome.is_some() {
                break;
            }
        }
        // One in five is aborted on purpose (its records reach the log first).
        let commit = outcome.is_none() && n % 5 != 4;
        if !commit {
            let _ = prod.flush(Duration::from_secs(30));
        }
        let ended = finish(prod, commit);
        rec.record(Op::Txn { t: rec.now(), producer: id, first_seq, last_seq: seq - 1, outcome: ended.to_string() });
        if ended == "unknown" {
            // The instance is unusable; the next one fences it and aborts what it left.
            p = None;
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads the transactional topic back with read_committed until the last stable offsets.
pub fn read_back_committed(bootstrap: &str, partitions: i32, rec: &Recorder) -> Result<(), String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "chaos-txn-audit")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(TXN_TOPIC, p, rdkafka::Offset::Beginning).map_err(|e| e.to_string())?;
    }
    c.assign(&tpl).map_err(|e| e.to_string())?;
    // The end: what read_committed may read (transactions still open are aborted at their
    // timeout, so this settles).
    let mut at: BTreeMap<i32, i64> = BTreeMap::new();
    let mut idle = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if crate::run::poll_into(&c, TXN_READER, rec, &mut at) {
            idle = Instant::now();
        }
        if idle.elapsed() > Duration::from_secs(5) {
            // Caught up with every partition's last stable offset?
            let done = (0..partitions).all(|p| match (c.fetch_watermarks(TXN_TOPIC, p, Duration::from_secs(5)), c.position()) {
                (Ok((_, high)), Ok(pos)) => pos.find_partition(TXN_TOPIC, p).map(|e| matches!(e.offset(), rdkafka::Offset::Offset(o) if o >= high)).unwrap_or(false) || at.get(&p).is_some_and(|o| *o >= high - 1),
                _ => false,
            });
            if done || idle.elapsed() > Duration::from_secs(40) {
                return Ok(());
            }
        }
    }
    Err(format!("transactional read-back did not settle (reached {at:?})"))
}
