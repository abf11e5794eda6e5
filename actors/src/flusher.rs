//! Group commit: one flusher per node makes writes durable for every partition at once.
//!
//! A partition applies its write to sled (not yet durable) and registers the write sequence
//! here. While one flush runs, registrations pile up; when it ends, every registration it
//! covers is told, and one more flush starts for the rest. Under load that is many batches,
//! many partitions, one fsync.

use backwaters_storage::Store;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::time::Instant;

/// Called once the write is durable (`Ok`) or the flush failed (`Err`).
pub type OnDurable = Box<dyn FnOnce(Result<(), String>) + Send>;

pub enum FlusherMsg {
    /// The write with sequence `seq` must be flushed; call `done` when it is.
    Register { seq: u64, done: OnDurable },
    /// A flush finished (sent by the flush task to the flusher itself).
    FlushDone(Result<u64, String>),
}

// Local only (ractor's `cluster` feature wants every message type to say so).
impl ractor::Message for FlusherMsg {}

#[derive(Clone)]
pub struct Flusher;

pub struct FlusherState {
    store: Store,
    waiting: Vec<(u64, OnDurable)>,
    in_flight: bool,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    started: Option<Instant>,
}

pub struct FlusherArgs {
    pub store: Store,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl Actor for Flusher {
    type Msg = FlusherMsg;
    type State = FlusherState;
    type Arguments = FlusherArgs;

    async fn pre_start(&self, _me: ActorRef<FlusherMsg>, args: FlusherArgs) -> Result<FlusherState, ActorProcessingErr> {
        Ok(FlusherState { store: args.store, waiting: Vec::new(), in_flight: false, metrics: args.metrics, started: None })
    }

    async fn handle(&self, me: ActorRef<FlusherMsg>, msg: FlusherMsg, st: &mut FlusherState) -> Result<(), ActorProcessingErr> {
        match msg {
            FlusherMsg::Register { seq, done } => {
                if seq <= st.store.flushed_seq() {
                    done(Ok(()));
                } else {
                    st.waiting.push((seq, done));
                    start_flush(&me, st);
                }
            }
            FlusherMsg::FlushDone(result) => {
                st.in_flight = false;
                if let Some(t) = st.started.take() {
                    st.metrics.flush_latency_us.record(t.elapsed().as_micros() as u64);
                }
                match result {
                    Ok(covered) => {
                        let (ready, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut st.waiting).into_iter().partition(|(s, _)| *s <= covered);
                        st.waiting = rest;
                        st.metrics.flushes.inc();
                        for (_, done) in ready {
                            done(Ok(()));
                        }
                        if !st.waiting.is_empty() {
                            start_flush(&me, st);
                        }
                    }
                    Err(e) => {
                        // A failed fsync means we cannot promise durability: fail every waiter
                        // and fail the actor so the supervisor decides (restart or escalate).
                        for (_, done) in std::mem::take(&mut st.waiting) {
                            done(Err(e.clone()));
                        }
                        return Err(format!("flush failed: {e}").into());
                    }
                }
            }
        }
        Ok(())
    }
}

fn start_flush(me: &ActorRef<FlusherMsg>, st: &mut FlusherState) {
    if st.in_flight {
        return;
    }
    st.in_flight = true;
    st.started = Some(Instant::now());
    let store = st.store.clone();
    let me = me.clone();
    tokio::task::spawn_blocking(move || {
        let r = store.flush().map_err(|e| e.to_string());
        let _ = me.cast(FlusherMsg::FlushDone(r));
    });
}
