//! Client quotas on this node's Kafka traffic (the rules: `backwaters_actors::quota`).
//!
//! Produce charges the record bytes it was sent, Fetch the record bytes it answers with, and
//! CreateTopics / CreatePartitions / DeleteTopics the partitions they create or delete, to
//! the bucket of the quota entity that applies to the caller (its user, from the connection's
//! principal, and the request's client id). A request that goes past the rate is answered at
//! once with `throttle_time_ms` set, and its connection reads no further request until that
//! time has passed (Kafka's KIP-219: the client also holds back on its own).

use backwaters_actors::node::Node;
use backwaters_actors::quota::{self, Bucket};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    /// The mute of the connection whose request is being handled.
    pub static MUTE: Arc<Mute>;
}

/// Until when a connection reads nothing (a quota throttle).
#[derive(Debug, Default)]
pub struct Mute(Mutex<Option<Instant>>);

impl Mute {
    /// The end of the mute, while one lasts.
    pub fn until(&self) -> Option<Instant> {
        let mut m = self.0.lock().expect("mute");
        match *m {
            Some(t) if t > Instant::now() => Some(t),
            _ => {
                *m = None;
                None
            }
        }
    }

    fn extend(&self, to: Instant) {
        let mut m = self.0.lock().expect("mute");
        *m = Some(m.map_or(to, |t| t.max(to)));
    }
}

/// Buckets kept before idle ones, then those out of debt, are dropped (a default quota makes
/// one per client id).
const MAX_BUCKETS: usize = 4096;
/// A bucket untouched this long is full again and can go.
const IDLE_MS: u64 = 60_000;

/// The quota buckets of this node, shared by its Kafka listeners.
pub struct Throttler {
    buckets: Mutex<HashMap<(&'static str, Option<String>, Option<String>), Bucket>>,
    started: std::time::Instant,
}

impl Default for Throttler {
    fn default() -> Self {
        Throttler { buckets: Mutex::new(HashMap::new()), started: std::time::Instant::now() }
    }
}

impl Throttler {
    /// Charges `amount` (bytes, or partitions for the mutation rate) of quota `key` to the
    /// caller of the request being handled: the throttle time in milliseconds (0: within its
    /// quota, or no quota applies), for which its connection is also muted.
    pub fn charge(&self, node: &Node, key: &'static str, client_id: Option<&str>, amount: u64) -> i32 {
        self.with_bucket(node, key, client_id, |b, rate, now_ms| b.take(rate, amount, now_ms))
    }

    /// KIP-599's strict check before a controller mutation (`strict`: CreateTopics v6+,
    /// CreatePartitions v3+, DeleteTopics v5+; older versions are only throttled): while the
    /// caller's mutation quota is still in debt, the throttle in milliseconds and the message
    /// the topic is refused with (THROTTLING_QUOTA_EXCEEDED). A mutation that goes ahead is then
    /// charged with [`Self::charge_mutations`].
    pub fn mutation_refused(&self, node: &Node, client_id: Option<&str>, strict: bool) -> Option<(i32, String)> {
        if !strict {
            return None;
        }
        match self.with_bucket(node, quota::CONTROLLER_MUTATION_RATE, client_id, |b, rate, now_ms| b.debt(rate, now_ms)) {
            0 => None,
            ms => Some((ms, format!("controller mutation quota exceeded; retry in {ms} ms"))),
        }
    }

    /// Charges `partitions` created or deleted to the caller's mutation quota: the throttle.
    pub fn charge_mutations(&self, node: &Node, client_id: Option<&str>, partitions: u64) -> i32 {
        self.charge(node, quota::CONTROLLER_MUTATION_RATE, client_id, partitions)
    }

    /// Runs `f` on the caller's bucket for `key` and turns the wait it gives into a throttle.
    fn with_bucket(&self, node: &Node, key: &'static str, client_id: Option<&str>, f: impl FnOnce(&mut Bucket, f64, u64) -> Duration) -> i32 {
        let quotas = node.quotas();
        if quotas.is_empty() {
            return 0;
        }
        let principal = super::authz::PRINCIPAL.try_with(|p| p.to_string()).unwrap_or_else(|_| super::authz::ANONYMOUS.to_string());
        let user = principal.strip_prefix("User:").unwrap_or(&principal);
        let Some((rate, (u, c))) = quota::resolve(&quotas, user, client_id.unwrap_or(""), key) else { return 0 };
        let now_ms = self.started.elapsed().as_millis() as u64;
        let wait = {
            let mut buckets = self.buckets.lock().expect("buckets");
            if buckets.len() >= MAX_BUCKETS {
                buckets.retain(|_, b| now_ms.saturating_sub(b.last_ms()) < IDLE_MS);
            }
            // Still full (many client ids at once): keep only the ones serving a throttle.
            if buckets.len() >= MAX_BUCKETS {
                buckets.retain(|_, b| b.in_debt());
            }
            f(buckets.entry((key, u, c)).or_insert_with(|| Bucket::new(rate, now_ms)), rate, now_ms)
        };
        if wait == Duration::ZERO {
            return 0;
        }
        let _ = MUTE.try_with(|m| m.extend(Instant::now() + wait));
        let ms = (wait.as_millis() as i32).max(1);
        node.metrics().kafka_throttled_requests.inc();
        node.metrics().kafka_throttle_ms.add(ms as u64);
        tracing::debug!(%principal, client_id = ?client_id, key, throttle_ms = ms, "client quota throttle");
        ms
    }
}
