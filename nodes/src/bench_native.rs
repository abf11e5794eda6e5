//! `backwaters bench produce --client native`: a lean Kafka producer for measuring the
//! broker rather than the client.
//!
//! Why it exists: librdkafka's idempotent producer busy-polls (poll with a zero timeout, tens
//! of thousands of times a second per broker thread) whenever a partition has its five
//! requests in flight and more records are due, because it computes its wake-up time before
//! it applies the in-flight limit (`rd_kafka_toppar_producer_serve`). On a machine where
//! the client and three brokers share two cores, that spin took about half the CPU and the
//! brokers' latency fed it: a hiccup of a few ms turned into hundreds of ms. This client
//! does what librdkafka does on the wire — one connection per broker, record batches v2 of
//! up to `--batch-size` bytes or `--linger-ms`, an idempotent producer id with per-partition
//! sequence numbers, at most five requests in flight per partition, Produce v9 — and sleeps
//! when it has nothing to do. Records go to partitions in turn. Like librdkafka, it follows a
//! leader that moves: a batch refused with a retriable error (NOT_LEADER_OR_FOLLOWER, a
//! timeout, a closed connection...) is sent again, in sequence order, to the leader that the
//! metadata names next, within a 60 s delivery timeout; its latency counts the wait. Each
//! move is reported, and a non-retriable error ends the run with the broker's error.

use crate::bench::{Acks, BenchArgs, Compression};
use backwaters_proto::kafka::batch::{encode_batch_with, set_producer, NewRecord};
use bytes::{Buf, Bytes, BytesMut};
use hdrhistogram::Histogram;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};

const PRODUCE_VERSION: i16 = 9;
const METADATA_VERSION: i16 = 9;
const INIT_PRODUCER_ID_VERSION: i16 = 4;
/// Requests in flight per partition: the broker's idempotence window.
const IN_FLIGHT: usize = 5;
/// Records waiting per partition before the sender blocks (librdkafka's queue, in spirit).
const QUEUE: usize = 200_000;
/// Largest answer accepted from a broker (a produce answer is a few hundred bytes).
const MAX_ANSWER: i32 = 64 << 20;

type Answer = oneshot::Sender<Result<Bytes, String>>;

/// One request to write: the framed bytes and, unless it expects no answer, who gets it.
struct Outgoing {
    frame: BytesMut,
    correlation_id: i32,
    answer: Option<Answer>,
}

/// One connection to one broker: a writer task and a reader task. Kafka answers the requests
/// of a connection in order, so the reader matches each answer to the oldest request waiting.
#[derive(Clone)]
struct Conn {
    addr: String,
    tx: mpsc::Sender<Outgoing>,
    next_id: Arc<std::sync::atomic::AtomicI32>,
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn, String> {
        let s = TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let (mut r, mut w) = s.into_split();
        let waiting: Arc<Mutex<VecDeque<(i32, Answer)>>> = Arc::default();
        let (tx, mut rx) = mpsc::channel::<Outgoing>(1024);
        let w_waiting = waiting.clone();
        tokio::spawn(async move {
            let mut out = BytesMut::new();
            while let Some(first) = rx.recv().await {
                // Write whatever is queued in one go.
                let mut next = Some(first);
                while let Some(o) = next.take() {
                    if let Some(a) = o.answer {
                        w_waiting.lock().expect("lock").push_back((o.correlation_id, a));
                    }
                    out.extend_from_slice(&o.frame);
                    if out.len() < 1 << 20 {
                        next = rx.try_recv().ok();
                    }
                }
                if w.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
            }
        });
        let addr_r = addr.to_string();
        tokio::spawn(async move {
            let fail = |why: String| {
                for (_, a) in waiting.lock().expect("lock").drain(..) {
                    let _ = a.send(Err(why.clone()));
                }
            };
            loop {
                let mut len = [0u8; 4];
                if let Err(e) = r.read_exact(&mut len).await {
                    return fail(format!("{addr_r} closed the connection: {e}"));
                }
                let len = i32::from_be_bytes(len);
                if !(4..=MAX_ANSWER).contains(&len) {
                    return fail(format!("{addr_r} sent a frame of {len} bytes"));
                }
                let mut body = vec![0u8; len as usize];
                if let Err(e) = r.read_exact(&mut body).await {
                    return fail(format!("{addr_r} closed the connection: {e}"));
                }
                let Some((id, a)) = waiting.lock().expect("lock").pop_front() else {
                    return fail(format!("{addr_r} answered a request nobody sent"));
                };
                let got = body.get(..4).map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes")));
                if got != Some(id) {
                    let _ = a.send(Err(format!("{addr_r} answered correlation id {got:?}, expected {id}")));
                    return fail(format!("{addr_r} answered out of order"));
                }
                let _ = a.send(Ok(Bytes::from(body)));
            }
        });
        Ok(Conn { addr: addr.to_string(), tx, next_id: Arc::default() })
    }

    /// Queues a request; the receiver gets the answer (header included), or nothing is
    /// awaited when `answered` is false (acks=0 produce).
    async fn send<Q: Encodable>(&self, key: ApiKey, version: i16, body: &Q, answered: bool) -> Result<Option<oneshot::Receiver<Result<Bytes, String>>>, String> {
        let correlation_id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut frame = BytesMut::with_capacity(256);
        frame.extend_from_slice(&[0u8; 4]);
        let header = RequestHeader::default().with_request_api_key(key as i16).with_request_api_version(version).with_correlation_id(correlation_id).with_client_id(Some(StrBytes::from_static_str("backwaters-bench")));
        header.encode(&mut frame, key.request_header_version(version)).map_err(|e| e.to_string())?;
        body.encode(&mut frame, version).map_err(|e| e.to_string())?;
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        let (answer, rx) = if answered {
            let (a, rx) = oneshot::channel();
            (Some(a), Some(rx))
        } else {
            (None, None)
        };
        self.tx.send(Outgoing { frame, correlation_id, answer }).await.map_err(|_| format!("connection to {} is closed", self.addr))?;
        Ok(rx)
    }

    async fn call<Q: Encodable, R: Decodable>(&self, key: ApiKey, version: i16, body: &Q) -> Result<R, String> {
        let rx = self.send(key, version, body, true).await?.expect("answered");
        let frame = rx.await.map_err(|_| format!("connection to {} is closed", self.addr))??;
        decode_answer(key, version, frame)
    }
}

fn decode_answer<R: Decodable>(key: ApiKey, version: i16, mut frame: Bytes) -> Result<R, String> {
    ResponseHeader::decode(&mut frame, key.response_header_version(version)).map_err(|e| format!("{key:?} answer header: {e}"))?;
    let r = R::decode(&mut frame, version).map_err(|e| format!("{key:?} v{version} answer: {e}"))?;
    if frame.has_remaining() {
        return Err(format!("{key:?} v{version} answer has {} bytes left over", frame.remaining()));
    }
    Ok(r)
}

/// Each partition's leader address (None while it has none) and whether that leader is the
/// preferred replica (the first listed), sorted by partition; empty while the topic is not
/// ready.
type LeaderView = Vec<(i32, Option<String>, bool)>;

async fn metadata(conn: &Conn, topic: &str) -> Result<LeaderView, String> {
    let req = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
    let md: MetadataResponse = conn.call(ApiKey::Metadata, METADATA_VERSION, &req).await?;
    let brokers: HashMap<i32, String> = md.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port))).collect();
    let t = md.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic)).ok_or(format!("metadata has no topic {topic}"))?;
    if t.error_code != 0 {
        // Not ready yet (just created, leaders being elected): no partition has a leader.
        return Ok(Vec::new());
    }
    let mut parts: LeaderView = t.partitions.iter().map(|p| (p.partition_index, brokers.get(&p.leader_id.0).cloned(), p.replica_nodes.first() == Some(&p.leader_id))).collect();
    parts.sort();
    Ok(parts)
}

/// Leader address of every partition of `topic`. Waits (up to about 30 s) for every partition
/// to be led by its preferred replica (the first listed): the cluster moves leadership back
/// there on its own, and a run that starts while it does would measure the moves.
async fn leaders(bootstrap: &str, topic: &str) -> Result<Vec<String>, String> {
    let first = bootstrap.split(',').next().unwrap_or(bootstrap).trim();
    let conn = Conn::open(first).await?;
    let mut settled_wait_told = false;
    let mut found = None;
    for attempt in 0..150 {
        let parts = metadata(&conn, topic).await?;
        if !parts.is_empty() && parts.iter().all(|(_, l, _)| l.is_some()) {
            let preferred = parts.iter().all(|(_, _, p)| *p);
            let leaders: Vec<String> = parts.into_iter().map(|(_, l, _)| l.expect("checked")).collect();
            if preferred {
                return Ok(leaders);
            }
            if !settled_wait_told {
                eprintln!("waiting for partition leadership to move back to the preferred replicas");
                settled_wait_told = true;
            }
            found = Some(leaders);
        } else if attempt >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Leadership did not settle (a replica is down?): go on with the leaders there are.
    found.ok_or(format!("topic {topic} has partitions without a leader"))
}

/// Connections to brokers, opened once and reopened when closed; and where to ask who leads.
struct Brokers {
    bootstrap: Vec<String>,
    topic: String,
    conns: tokio::sync::Mutex<HashMap<String, Conn>>,
}

impl Brokers {
    async fn conn(&self, addr: &str) -> Result<Conn, String> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(addr).filter(|c| !c.tx.is_closed()) {
            return Ok(c.clone());
        }
        let c = Conn::open(addr).await?;
        conns.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// The current leader of `partition`, asking each known broker in turn.
    async fn leader(&self, partition: i32) -> Result<String, String> {
        let mut asked: Vec<String> = self.conns.lock().await.keys().cloned().collect();
        asked.extend(self.bootstrap.iter().cloned());
        let mut last = format!("no broker answered metadata for partition {partition}");
        for addr in asked {
            // A frozen broker answers nothing: ask the next one.
            let ask = async {
                let c = self.conn(&addr).await?;
                metadata(&c, &self.topic).await
            };
            let view = tokio::time::timeout(Duration::from_secs(2), ask).await.unwrap_or_else(|_| Err(format!("{addr} did not answer metadata within 2 s")));
            match view {
                Ok(v) => match v.into_iter().find(|(p, _, _)| *p == partition) {
                    Some((_, Some(l), _)) => return Ok(l),
                    _ => last = format!("partition {partition} has no leader (asked {addr})"),
                },
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// A record waiting to be batched: when it was handed to the client.
type Pending = Instant;

struct Shared {
    hist: Mutex<Histogram<u64>>,
    /// Slowest acknowledgement (µs) since the last progress line.
    window_max_us: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
    failure: Mutex<Option<String>>,
}

pub async fn produce(a: &BenchArgs, payload: Bytes) -> Result<(), String> {
    let leaders = leaders(&a.bootstrap, &a.topic).await?;
    let brokers = Arc::new(Brokers { bootstrap: a.bootstrap.split(',').map(|b| b.trim().to_string()).collect(), topic: a.topic.clone(), conns: Default::default() });
    for l in &leaders {
        brokers.conn(l).await?;
    }
    let acks: i16 = match a.acks {
        Acks::All => -1,
        Acks::One => 1,
        Acks::Zero => 0,
    };
    let idempotent = a.idempotence && matches!(a.acks, Acks::All);
    let (producer_id, epoch) = if idempotent {
        let conn = brokers.conn(&leaders[0]).await?;
        let r: InitProducerIdResponse = conn.call(ApiKey::InitProducerId, INIT_PRODUCER_ID_VERSION, &InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)).await?;
        if r.error_code != 0 {
            return Err(format!("InitProducerId failed with error code {}", r.error_code));
        }
        (r.producer_id.0, r.producer_epoch)
    } else {
        (-1, -1)
    };
    let compression = match a.compression {
        Compression::None => kafka_protocol::records::Compression::None,
        Compression::Gzip => kafka_protocol::records::Compression::Gzip,
        Compression::Snappy => kafka_protocol::records::Compression::Snappy,
        Compression::Lz4 => kafka_protocol::records::Compression::Lz4,
        Compression::Zstd => kafka_protocol::records::Compression::Zstd,
    };
    let shared = Arc::new(Shared { hist: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")), window_max_us: Default::default(), done: Default::default(), failure: Mutex::new(None) });
    let mut queues = Vec::new();
    for (p, leader) in leaders.iter().enumerate() {
        let (tx, rx) = mpsc::channel::<Pending>(QUEUE);
        queues.push(tx);
        let cfg = PartitionSender {
            conn: brokers.conn(leader).await?,
            brokers: brokers.clone(),
            topic: a.topic.clone(),
            partition: p as i32,
            acks,
            producer: idempotent.then_some((producer_id, epoch)),
            linger: Duration::from_millis(a.linger_ms),
            batch_bytes: a.batch_size.max(payload.len() + 100),
            payload: payload.clone(),
            compression,
            shared: shared.clone(),
        };
        tokio::spawn(cfg.run(rx));
    }
    eprintln!("native client: {} partitions on {} brokers, producer id {producer_id}", leaders.len(), brokers.conns.lock().await.len());

    let start = Instant::now();
    let mut last_report = Instant::now();
    for i in 0..a.records {
        if a.rate > 0 {
            let due = start + Duration::from_secs_f64(i as f64 / a.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        if let Some(f) = shared.failure.lock().expect("lock").clone() {
            return Err(f);
        }
        let q = &queues[(i % queues.len() as u64) as usize];
        q.send(Instant::now()).await.map_err(|_| "a partition sender stopped".to_string())?;
        if last_report.elapsed() > Duration::from_secs(2) {
            progress(&shared, start, last_report);
            last_report = Instant::now();
        }
    }
    drop(queues);
    while shared.done.load(std::sync::atomic::Ordering::Relaxed) < a.records {
        if let Some(f) = shared.failure.lock().expect("lock").clone() {
            return Err(f);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    progress(&shared, start, last_report);
    let secs = start.elapsed().as_secs_f64();
    crate::bench::print_summary(a, secs, 0, &shared.hist.lock().expect("lock"));
    Ok(())
}

/// How long a batch may take, retries included, before the run fails (librdkafka's
/// `delivery.timeout.ms` default is 120 s; a benchmark should say sooner).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an answer may take: the request's timeout (30 s) and a margin.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(35);

/// A batch sent but not yet acknowledged: enough to send it again unchanged.
struct Sent {
    /// Order within the partition (the base sequence for an idempotent producer).
    order: u64,
    encoded: Bytes,
    records: Vec<Pending>,
}

/// What an answer means for the batch.
enum Outcome {
    Done,
    /// Worth sending again, to the leader the metadata names next.
    Retry(String),
    Fatal(String),
}

/// Kafka error codes a producer retries: leadership moving, timeouts, replicas not yet back,
/// a storage error on the leader (disk full: clients retry until space is freed).
/// OUT_OF_ORDER_SEQUENCE_NUMBER is retried too when it follows a batch that failed (the
/// broker never saw the batch before it); in a resend, which goes in order, it is fatal.
fn retriable(code: i16) -> bool {
    matches!(code, 3 | 5 | 6 | 7 | 19 | 20 | 45 | 56)
}

/// The idempotent producer's sequence got ahead of the broker's.
const OUT_OF_ORDER: &str = "error code 45 (OUT_OF_ORDER_SEQUENCE_NUMBER)";

/// A progress line: records acknowledged so far, their rate, and the slowest acknowledgement
/// since the last line (where in the run the latency tail comes from).
fn progress(shared: &Shared, start: Instant, since: Instant) {
    let done = shared.done.load(std::sync::atomic::Ordering::Relaxed);
    let worst = shared.window_max_us.swap(0, std::sync::atomic::Ordering::Relaxed);
    eprintln!("  {done} acknowledged ({:.0} records/s), slowest in the last {:.1} s: {:.1} ms", done as f64 / start.elapsed().as_secs_f64(), since.elapsed().as_secs_f64(), worst as f64 / 1000.0);
}

struct PartitionSender {
    conn: Conn,
    brokers: Arc<Brokers>,
    topic: String,
    partition: i32,
    acks: i16,
    producer: Option<(i64, i16)>,
    linger: Duration,
    batch_bytes: usize,
    payload: Bytes,
    compression: kafka_protocol::records::Compression,
    shared: Arc<Shared>,
}

impl PartitionSender {
    async fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        // Batches that came back with a retriable error. Unbounded on purpose: a returned
        // batch gives its slot back, so more than IN_FLIGHT can come back before this loop
        // takes them, and a sender blocked on a full queue while holding a slot (or this
        // loop blocked on it) deadlocked the partition (seen after a leader was killed:
        // one partition stopped for good, the others finished). At most every batch formed
        // from the partition's bounded record queue is ever in it.
        let (retry_tx, mut retry_rx) = mpsc::unbounded_channel::<(Sent, String)>();
        let per_record = self.payload.len() + 40;
        let mut sequence: i32 = 0;
        let mut order: u64 = 0;
        let mut carry: Option<Pending> = None;
        loop {
            if let Ok(first) = retry_rx.try_recv() {
                if let Err(e) = self.recover(first, &slots, &mut retry_rx).await {
                    return self.fail(e);
                }
                continue;
            }
            let permit = slots.clone().acquire_owned().await.expect("never closed");
            // A batch: the oldest waiting record, then whatever arrives until the batch is
            // full or the oldest record has waited `linger`.
            let first = match carry.take() {
                Some(f) => f,
                None => tokio::select! {
                    // Returned batches first: new ones would only jump the sequence.
                    biased;
                    Some(first) = retry_rx.recv() => {
                        drop(permit);
                        if let Err(e) = self.recover(first, &slots, &mut retry_rx).await {
                            return self.fail(e);
                        }
                        continue;
                    }
                    r = rx.recv() => match r {
                        Some(f) => f,
                        None => {
                            drop(permit);
                            // Done taking records; what is in flight may still come back.
                            match retry_rx.recv().await {
                                Some(first) => {
                                    if let Err(e) = self.recover(first, &slots, &mut retry_rx).await {
                                        return self.fail(e);
                                    }
                                    continue;
                                }
                                None => return,
                            }
                        }
                    },
                },
            };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::from(first + self.linger);
            while batch.len() * per_record < self.batch_bytes {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        tokio::select! {
                            r = rx.recv() => match r {
                                Some(r) => batch.push(r),
                                None => break,
                            },
                            _ = tokio::time::sleep_until(deadline) => break,
                        }
                    }
                }
            }
            if batch.len() * per_record > self.batch_bytes && batch.len() > 1 {
                carry = batch.pop();
            }
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
            let records: Vec<NewRecord> = batch.iter().map(|_| NewRecord { key: None, value: Some(self.payload.clone()), headers: vec![], timestamp_ms: now_ms }).collect();
            let mut encoded = match encode_batch_with(&records, self.compression) {
                Ok(b) => b,
                Err(e) => return self.fail(format!("encoding a batch: {e}")),
            };
            order += 1;
            if let Some((pid, epoch)) = self.producer {
                order = sequence as u64;
                encoded = set_producer(&encoded, pid, epoch, sequence);
                sequence = sequence.wrapping_add(batch.len() as i32);
            }
            let sent = Sent { order, encoded, records: batch };
            let answer = match self.conn.send(ApiKey::Produce, PRODUCE_VERSION, &self.request(&sent.encoded), self.acks != 0).await {
                Ok(a) => a,
                // The connection is gone: the batch goes with the others that come back.
                Err(e) => {
                    let _ = retry_tx.send((sent, e));
                    drop(permit);
                    continue;
                }
            };
            let (shared, partition, retry_tx) = (self.shared.clone(), self.partition, retry_tx.clone());
            tokio::spawn(async move {
                match answer_outcome(partition, answer).await {
                    Outcome::Done => record(&shared, &sent.records),
                    Outcome::Retry(why) => {
                        let _ = retry_tx.send((sent, why));
                    }
                    Outcome::Fatal(e) => {
                        shared.failure.lock().expect("lock").get_or_insert(e);
                    }
                }
                drop(permit);
            });
        }
    }

    fn request(&self, encoded: &Bytes) -> ProduceRequest {
        ProduceRequest::default().with_acks(self.acks).with_timeout_ms(30_000).with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
            .with_partition_data(vec![PartitionProduceData::default().with_index(self.partition).with_records(Some(encoded.clone()))])])
    }

    /// A batch came back with a retriable error: waits until nothing else is in flight,
    /// then sends every returned batch again, in order, one at a time, to whichever broker
    /// leads the partition now (the idempotent producer's sequence numbers make a batch
    /// that did get written the first time a duplicate the broker answers without writing).
    async fn recover(&mut self, first: (Sent, String), slots: &Arc<Semaphore>, retry_rx: &mut mpsc::UnboundedReceiver<(Sent, String)>) -> Result<(), String> {
        let all = slots.clone().acquire_many_owned(IN_FLIGHT as u32).await.expect("never closed");
        let mut batches = vec![first.0];
        let mut why = first.1;
        while let Ok((b, _)) = retry_rx.try_recv() {
            batches.push(b);
        }
        batches.sort_by_key(|b| b.order);
        let since = Instant::now();
        let mut moved_to = None;
        for b in batches {
            loop {
                if since.elapsed() > DELIVERY_TIMEOUT {
                    return Err(format!("partition {}: batch not delivered within {DELIVERY_TIMEOUT:?}: {why}", self.partition));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                let leader = match self.brokers.leader(self.partition).await {
                    Ok(l) => l,
                    Err(e) => {
                        why = e;
                        continue;
                    }
                };
                self.conn = match self.brokers.conn(&leader).await {
                    Ok(c) => c,
                    Err(e) => {
                        why = e;
                        continue;
                    }
                };
                let answer = self.conn.send(ApiKey::Produce, PRODUCE_VERSION, &self.request(&b.encoded), self.acks != 0).await;
                let outcome = match answer {
                    Ok(a) => answer_outcome(self.partition, a).await,
                    Err(e) => Outcome::Retry(e),
                };
                match outcome {
                    Outcome::Done => {
                        record(&self.shared, &b.records);
                        moved_to = Some(leader);
                        break;
                    }
                    Outcome::Retry(e) if e == OUT_OF_ORDER => return Err(format!("partition {}: resent batch {}: {e}", self.partition, b.order)),
                    Outcome::Retry(e) => why = e,
                    Outcome::Fatal(e) => return Err(e),
                }
            }
        }
        if let Some(l) = moved_to {
            eprintln!("  partition {}: {why}; resent to {l} after {:.2} s", self.partition, since.elapsed().as_secs_f64());
        }
        drop(all);
        Ok(())
    }

    fn fail(&self, why: String) {
        self.shared.failure.lock().expect("lock").get_or_insert(why);
    }
}

fn record(shared: &Shared, records: &[Pending]) {
    let mut h = shared.hist.lock().expect("lock");
    let mut worst = 0;
    for sent in records {
        let us = (sent.elapsed().as_micros() as u64).max(1);
        worst = worst.max(us);
        let _ = h.record(us);
    }
    shared.window_max_us.fetch_max(worst, std::sync::atomic::Ordering::Relaxed);
    shared.done.fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
}

async fn answer_outcome(partition: i32, answer: Option<oneshot::Receiver<Result<Bytes, String>>>) -> Outcome {
    let Some(rx) = answer else { return Outcome::Done };
    // The broker answers within the request's 30 s timeout; a frozen one never does.
    let Ok(answer) = tokio::time::timeout(ANSWER_TIMEOUT, rx).await else {
        return Outcome::Retry(format!("no answer within {ANSWER_TIMEOUT:?}"));
    };
    match answer {
        Err(_) => Outcome::Retry("connection closed".into()),
        Ok(Err(e)) => Outcome::Retry(e),
        Ok(Ok(frame)) => match decode_answer::<ProduceResponse>(ApiKey::Produce, PRODUCE_VERSION, frame) {
            Err(e) => Outcome::Fatal(e),
            Ok(r) => match r.responses.first().and_then(|t| t.partition_responses.first()).map(|p| p.error_code).unwrap_or(-1) {
                // DUPLICATE_SEQUENCE_NUMBER: written before (a resend of a batch that was).
                0 | 46 => Outcome::Done,
                45 => Outcome::Retry(OUT_OF_ORDER.into()),
                code if retriable(code) => Outcome::Retry(format!("error code {code}")),
                code => Outcome::Fatal(format!("partition {partition}: produce failed with error code {code}")),
            },
        },
    }
}
