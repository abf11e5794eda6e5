//! The partition actor: a shell that drives [`core::PartitionCore`] and performs its I/O.
//!
//! Writes go through the actor (one writer per partition, so offsets are assigned in order);
//! reads go straight to storage through [`PartitionShared`], bounded by the high watermark the
//! actor publishes, so a slow consumer never holds up producers. A restarted actor rebuilds
//! everything from disk in `pre_start`; `PartitionShared` outlives restarts.

pub mod core;

use crate::flusher::FlusherMsg;
use crate::metrics::Metrics;
use crate::topic::TopicConfig;
use crate::{Clock, PartitionError};
use backwaters_proto::kafka::batch::BatchHeader;
use backwaters_storage::{Entry, PartitionLog, Store};
use bytes::Bytes;
use core::{AppendPlan, PartitionCore};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::sync::watch;

/// Outstanding produce requests a partition holds before it answers new ones with a
/// retriable error (each connection also caps its own in-flight requests).
pub const MAX_PENDING_PRODUCES: usize = 10_000;

/// Entries removed per retention pass, so a big backlog does not stall the partition.
const RETENTION_BATCH_MAX: usize = 1_000;

/// Where a partition is and what it knows, shared by the actor (writer) and readers.
pub struct PartitionShared {
    pub topic: String,
    pub partition: i32,
    pub log: PartitionLog,
    actor: RwLock<Option<ActorRef<PartitionMsg>>>,
    hw_tx: watch::Sender<i64>,
    log_start: AtomicI64,
    log_end: AtomicI64,
}

impl PartitionShared {
    pub fn new(topic: String, partition: i32, store: &Store, uid: u64) -> Arc<PartitionShared> {
        let log = PartitionLog::handle(store, uid);
        let (hw_tx, _) = watch::channel(0);
        Arc::new(PartitionShared { topic, partition, log, actor: RwLock::new(None), hw_tx, log_start: AtomicI64::new(0), log_end: AtomicI64::new(0) })
    }

    /// The running actor, if any (None while it restarts).
    pub fn actor(&self) -> Option<ActorRef<PartitionMsg>> {
        self.actor.read().expect("lock").clone()
    }

    pub fn high_watermark(&self) -> i64 {
        *self.hw_tx.borrow()
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::SeqCst)
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::SeqCst)
    }
    /// Wakes on every high-watermark change (long-polling fetches wait on it).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.hw_tx.subscribe()
    }

    /// Reads committed batches from `offset`, up to about `max_bytes`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Entry>, PartitionError> {
        let hw = self.high_watermark();
        let start = self.log_start_offset();
        // Past the log end is out of range; between the high watermark and the log end the
        // data exists but is not committed yet: nothing to return, not an error (as Kafka).
        let end = self.log_end_offset().max(hw);
        if offset < start || offset > end {
            return Err(PartitionError::OffsetOutOfRange { offset, start, end });
        }
        if offset >= hw {
            return Ok(Vec::new());
        }
        let entries = self.log.read(offset, max_bytes, hw).map_err(|e| PartitionError::Storage(e.to_string()))?;
        for e in &entries {
            // Checked again after the read: storage's CRC covered the bytes, this covers the batch.
            if let Some(Err(err)) = e.batch_header() {
                return Err(PartitionError::Storage(format!("stored batch at offset {} is corrupt: {err}", e.base_offset)));
            }
        }
        Ok(entries)
    }

    /// The offset of the first record with timestamp >= `ts` (ListOffsets by time).
    pub fn offset_for_time(&self, ts: i64) -> Result<Option<(i64, i64)>, PartitionError> {
        let Some(e) = self.log.first_entry_at_or_after_time(ts).map_err(|e| PartitionError::Storage(e.to_string()))? else { return Ok(None) };
        if e.base_offset >= self.high_watermark() {
            return Ok(None);
        }
        let recs = backwaters_proto::kafka::batch::decode_records(&e.payload).map_err(PartitionError::Storage)?;
        let start = self.log_start_offset();
        Ok(recs.into_iter().find(|r| r.timestamp_ms >= ts && r.offset >= start).map(|r| (r.offset, r.timestamp_ms)))
    }

    fn publish(&self, core: &PartitionCore) {
        self.log_start.store(core.log_start_offset(), Ordering::SeqCst);
        self.log_end.store(core.next_offset(), Ordering::SeqCst);
        self.hw_tx.send_if_modified(|hw| {
            let changed = *hw != core.high_watermark();
            *hw = core.high_watermark();
            changed
        });
    }
}

/// Acknowledgement of a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAck {
    pub base_offset: i64,
    pub log_start_offset: i64,
}

/// A point-in-time view of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub bytes: u64,
    pub producers: usize,
}

pub enum PartitionMsg {
    Produce { batches: Vec<(BatchHeader, Bytes)>, acks: i16, reply: RpcReplyPort<Result<ProduceAck, PartitionError>> },
    /// Sent by the flusher: everything before `next_offset` is on disk.
    Durable { next_offset: i64 },
    FlushFailed(String),
    DeleteRecords { offset: i64, reply: RpcReplyPort<Result<i64, PartitionError>> },
    Retention,
    SetConfig(TopicConfig),
    Status(RpcReplyPort<PartitionStatus>),
    /// Fault injection for tests and chaos runs: the actor panics.
    InjectPanic,
}

#[derive(Clone)]
pub struct PartitionActor;

pub struct PartitionArgs {
    pub shared: Arc<PartitionShared>,
    pub config: Arc<RwLock<TopicConfig>>,
    pub flusher: Arc<dyn Fn() -> Option<ActorRef<FlusherMsg>> + Send + Sync>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

pub struct PartitionState {
    core: PartitionCore,
    shared: Arc<PartitionShared>,
    /// Produce replies waiting until the high watermark reaches the first field.
    pending: Vec<(i64, Instant, RpcReplyPort<Result<ProduceAck, PartitionError>>, ProduceAck)>,
    flusher: Arc<dyn Fn() -> Option<ActorRef<FlusherMsg>> + Send + Sync>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl Actor for PartitionActor {
    type Msg = PartitionMsg;
    type State = PartitionState;
    type Arguments = PartitionArgs;

    async fn pre_start(&self, me: ActorRef<PartitionMsg>, args: PartitionArgs) -> Result<PartitionState, ActorProcessingErr> {
        // A restart after a failure may find writes that were applied but not yet flushed:
        // flush before counting them committed, so the high watermark only covers disk.
        let log = args.shared.log.clone();
        tokio::task::spawn_blocking(move || log.sync()).await??;
        let rec = args.shared.log.recover()?;
        let config = args.config.read().expect("lock").clone();
        let core = PartitionCore::recover(rec, config);
        args.shared.publish(&core);
        *args.shared.actor.write().expect("lock") = Some(me);
        tracing::debug!(topic = %args.shared.topic, partition = args.shared.partition, hw = core.high_watermark(), "partition started");
        Ok(PartitionState { core, shared: args.shared, pending: Vec::new(), flusher: args.flusher, clock: args.clock, metrics: args.metrics })
    }

    async fn post_stop(&self, _me: ActorRef<PartitionMsg>, st: &mut PartitionState) -> Result<(), ActorProcessingErr> {
        *st.shared.actor.write().expect("lock") = None;
        Ok(())
    }

    async fn handle(&self, me: ActorRef<PartitionMsg>, msg: PartitionMsg, st: &mut PartitionState) -> Result<(), ActorProcessingErr> {
        match msg {
            PartitionMsg::Produce { batches, acks, reply } => st.produce(&me, batches, acks, reply)?,
            PartitionMsg::Durable { next_offset } => {
                if st.core.on_durable(next_offset) {
                    st.shared.publish(&st.core);
                }
                st.release();
            }
            PartitionMsg::FlushFailed(e) => return Err(format!("flush failed: {e}").into()),
            PartitionMsg::DeleteRecords { offset, reply } => {
                let r = st.core.set_log_start(offset);
                if r.is_ok() {
                    let seq = st.shared.log.set_meta(&st.core.meta())?;
                    st.shared.publish(&st.core);
                    st.remove_expired()?;
                    // Answer once the new log start is durable.
                    if let Some(f) = (st.flusher)() {
                        f.cast(FlusherMsg::Register { seq, done: Box::new(move |res| { let _ = reply.send(res.map_err(PartitionError::Storage).and(r)); }) })?;
                        return Ok(());
                    }
                }
                let _ = reply.send(r);
            }
            PartitionMsg::Retention => st.remove_expired()?,
            PartitionMsg::SetConfig(c) => st.core.config = c,
            PartitionMsg::Status(reply) => {
                let _ = reply.send(PartitionStatus {
                    log_start_offset: st.core.log_start_offset(),
                    high_watermark: st.core.high_watermark(),
                    log_end_offset: st.core.next_offset(),
                    bytes: st.core.bytes(),
                    producers: st.core.producer_count(),
                });
            }
            PartitionMsg::InjectPanic => panic!("injected panic in partition {}-{}", st.shared.topic, st.shared.partition),
        }
        Ok(())
    }
}

impl PartitionState {
    fn produce(&mut self, me: &ActorRef<PartitionMsg>, batches: Vec<(BatchHeader, Bytes)>, acks: i16, reply: RpcReplyPort<Result<ProduceAck, PartitionError>>) -> Result<(), ActorProcessingErr> {
        if self.pending.len() >= MAX_PENDING_PRODUCES {
            let _ = reply.send(Err(PartitionError::Busy));
            return Ok(());
        }
        let started = Instant::now();
        let plan = match self.core.prepare_append(&batches, self.clock.now_ms()) {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Err(e));
                return Ok(());
            }
        };
        let (base_offset, next_offset) = match plan {
            AppendPlan::Duplicate { base_offset, next_offset } => {
                self.metrics.produce_duplicates.inc();
                (base_offset, next_offset)
            }
            AppendPlan::Write { entries, producers, meta, base_offset, next_offset } => {
                // A failed write leaves the core ahead of the disk: fail the actor so it
                // restarts from what is really stored.
                let seq = self.shared.log.append(&entries, &producers, &meta)?;
                self.metrics.produce_batches.add(entries.len() as u64);
                self.metrics.produce_bytes.add(entries.iter().map(|e| e.payload.len() as u64).sum());
                self.shared.log_end.store(next_offset, Ordering::SeqCst);
                let flusher = (self.flusher)().ok_or("flusher is not running")?;
                let me = me.clone();
                flusher.cast(FlusherMsg::Register {
                    seq,
                    done: Box::new(move |r| {
                        let _ = match r {
                            Ok(()) => me.cast(PartitionMsg::Durable { next_offset }),
                            Err(e) => me.cast(PartitionMsg::FlushFailed(e)),
                        };
                    }),
                })?;
                (base_offset, next_offset)
            }
        };
        let ack = ProduceAck { base_offset, log_start_offset: self.core.log_start_offset() };
        if acks == 0 || next_offset <= self.core.high_watermark() {
            let _ = reply.send(Ok(ack));
        } else {
            self.pending.push((next_offset, started, reply, ack));
        }
        Ok(())
    }

    fn release(&mut self) {
        let hw = self.core.high_watermark();
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].0 <= hw {
                let (_, started, reply, ack) = self.pending.swap_remove(i);
                self.metrics.produce_latency_us.record(started.elapsed().as_micros() as u64);
                let _ = reply.send(Ok(ack));
            } else {
                i += 1;
            }
        }
    }

    /// Removes batches from the front that retention (or DeleteRecords) no longer keeps, and
    /// forgets idle producers.
    fn remove_expired(&mut self) -> Result<(), ActorProcessingErr> {
        let now = self.clock.now_ms();
        let gone = self.core.expire_producers(now);
        if !gone.is_empty() {
            self.shared.log.remove_producers(&gone)?;
        }
        let mut last: Option<(u64, i64)> = None;
        let mut bytes = 0u64;
        let mut n = 0;
        let mut index = self.core.first_index();
        while n < RETENTION_BATCH_MAX {
            let Some(e) = self.shared.log.entry(index)? else { break };
            let size = e.payload.len() as u64;
            let held = self.core.bytes().saturating_sub(bytes);
            if !self.core.retention_due(held, size, e.max_timestamp(), e.next_offset(), now) {
                break;
            }
            bytes += size;
            last = Some((e.index, e.next_offset()));
            index += 1;
            n += 1;
        }
        if let Some((up_to, next)) = last {
            let meta = self.core.on_prefix_removed(up_to, bytes, next);
            self.shared.log.remove_prefix(up_to, &meta)?;
            self.metrics.retention_removed_batches.add(n as u64);
            self.shared.publish(&self.core);
            tracing::debug!(topic = %self.shared.topic, partition = self.shared.partition, removed = n, log_start = meta.log_start_offset, "retention removed batches");
        }
        Ok(())
    }
}
