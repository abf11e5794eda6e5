//! Node metrics, exported in the Prometheus text format by the node's HTTP endpoint.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A Prometheus histogram over fixed microsecond buckets.
pub struct Histogram {
    bounds_us: &'static [u64],
    buckets: Vec<AtomicU64>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

const LATENCY_BOUNDS_US: &[u64] = &[100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000];

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            bounds_us: LATENCY_BOUNDS_US,
            buckets: LATENCY_BOUNDS_US.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, us: u64) {
        if let Some(i) = self.bounds_us.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (b, n) in self.bounds_us.iter().zip(&self.buckets) {
            cum += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cum}", *b as f64 / 1e6);
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Counters of one ingest listener (labelled by listener name).
#[derive(Default)]
pub struct IngestCounters {
    pub received: Counter,
    pub parsed: Counter,
    pub failed: Counter,
    pub dropped: Counter,
    pub bytes: Counter,
    pub written: Counter,
    pub connections_opened: Counter,
    pub connections_closed: Counter,
    /// Messages refused by the ACLs (the sender may not WRITE their topic).
    pub denied: Counter,
}

/// Every metric of a node.
#[derive(Default)]
pub struct Metrics {
    /// Ingest listeners by name.
    pub ingest: std::sync::Mutex<Vec<(String, std::sync::Arc<IngestCounters>)>>,
    pub kafka_connections: Counter,
    pub kafka_connections_closed: Counter,
    pub kafka_requests: Counter,
    pub kafka_request_errors: Counter,
    pub kafka_logins: Counter,
    pub kafka_login_failures: Counter,
    pub kafka_authorization_denied: Counter,
    /// Kafka requests whose answer carried a quota throttle, and the throttle they got.
    pub kafka_throttled_requests: Counter,
    pub kafka_throttle_ms: Counter,
    pub grpc_login_failures: Counter,
    pub grpc_authorization_denied: Counter,
    pub http_login_failures: Counter,
    pub http_authorization_denied: Counter,
    pub produce_batches: Counter,
    pub produce_bytes: Counter,
    pub produce_duplicates: Counter,
    pub fetch_bytes: Counter,
    pub flushes: Counter,
    pub flush_latency_us: Histogram,
    /// Time to write a Raft ready's entries into the store (not yet flushed), spent on the
    /// partition actor's thread: a slow write holds up everything else on that worker.
    pub log_write_us: Histogram,
    /// Free bytes on the data folder's file system (last reading).
    pub disk_free_bytes: AtomicU64,
    /// Leaders' appends a follower dropped because its disk was nearly full.
    pub raft_appends_refused_disk: Counter,
    pub produce_latency_us: Histogram,
    pub retention_removed_batches: Counter,
    /// Compaction passes finished, and the records they removed.
    pub compaction_passes: Counter,
    pub compaction_removed_records: Counter,
    pub group_rebalances: Counter,
    pub group_offset_commits: Counter,
    pub group_members_expired: Counter,
    /// Transaction markers this node wrote as a partition leader.
    pub txn_markers: Counter,
    /// Transactions this node, as the coordinator, recorded committed / aborted, and those
    /// it aborted at their timeout.
    pub txn_committed: Counter,
    pub txn_aborted: Counter,
    pub txn_timeouts: Counter,
}

impl Metrics {
    /// The counters of the ingest listener `name` (created on first use; kept across restarts
    /// of the listener).
    pub fn ingest(&self, name: &str) -> std::sync::Arc<IngestCounters> {
        let mut all = self.ingest.lock().expect("lock");
        if let Some((_, c)) = all.iter().find(|(n, _)| n == name) {
            return c.clone();
        }
        let c = std::sync::Arc::new(IngestCounters::default());
        all.push((name.to_string(), c.clone()));
        c
    }

    fn render_ingest(&self, s: &mut String) {
        let all = self.ingest.lock().expect("lock");
        if all.is_empty() {
            return;
        }
        type Row = (&'static str, &'static str, fn(&IngestCounters) -> u64);
        let rows: [Row; 8] = [
            ("backwaters_ingest_received_total", "Messages received by an ingest listener", |c| c.received.get()),
            ("backwaters_ingest_parsed_total", "Messages parsed as syslog (or valid JSON for HTTP)", |c| c.parsed.get()),
            ("backwaters_ingest_failed_total", "Messages that did not parse (stored with a parse-failure tag)", |c| c.failed.get()),
            ("backwaters_ingest_dropped_total", "Messages dropped (UDP overload, refused frames)", |c| c.dropped.get()),
            ("backwaters_ingest_bytes_total", "Message bytes received", |c| c.bytes.get()),
            ("backwaters_ingest_written_total", "Records committed to topics", |c| c.written.get()),
            ("backwaters_ingest_denied_total", "Messages refused by the ACLs (no WRITE on their topic)", |c| c.denied.get()),
            ("backwaters_ingest_connections", "Open connections", |c| c.connections_opened.get().saturating_sub(c.connections_closed.get())),
        ];
        for (name, help, get) in rows {
            let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (listener, c) in all.iter() {
                let _ = writeln!(s, "{name}{{listener=\"{listener}\"}} {}", get(c));
            }
        }
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let counters: [(&str, &str, &Counter); 29] = [
            ("backwaters_kafka_connections_total", "Kafka connections accepted", &self.kafka_connections),
            ("backwaters_kafka_connections_closed_total", "Kafka connections closed", &self.kafka_connections_closed),
            ("backwaters_kafka_requests_total", "Kafka requests handled", &self.kafka_requests),
            ("backwaters_kafka_request_errors_total", "Kafka requests refused or failed", &self.kafka_request_errors),
            ("backwaters_kafka_sasl_logins_total", "Kafka SASL authentications that succeeded", &self.kafka_logins),
            ("backwaters_kafka_authorization_denied_total", "Kafka operations denied by the ACLs", &self.kafka_authorization_denied),
            ("backwaters_kafka_throttled_requests_total", "Kafka requests throttled by a client quota", &self.kafka_throttled_requests),
            ("backwaters_kafka_throttle_milliseconds_total", "Throttle time handed out by client quotas", &self.kafka_throttle_ms),
            ("backwaters_grpc_login_failures_total", "gRPC calls refused for a wrong user or password", &self.grpc_login_failures),
            ("backwaters_grpc_authorization_denied_total", "gRPC calls denied by the ACLs", &self.grpc_authorization_denied),
            ("backwaters_http_login_failures_total", "HTTP ingest requests refused for a wrong user or password", &self.http_login_failures),
            ("backwaters_http_authorization_denied_total", "HTTP ingest requests denied by the ACLs", &self.http_authorization_denied),
            ("backwaters_kafka_sasl_login_failures_total", "Kafka SASL authentications refused (wrong credentials, malformed tokens, unsupported mechanisms)", &self.kafka_login_failures),
            ("backwaters_produce_batches_total", "Record batches appended", &self.produce_batches),
            ("backwaters_produce_bytes_total", "Record batch bytes appended", &self.produce_bytes),
            ("backwaters_produce_duplicates_total", "Idempotent retries answered without a write", &self.produce_duplicates),
            ("backwaters_fetch_bytes_total", "Record batch bytes served to fetches", &self.fetch_bytes),
            ("backwaters_flushes_total", "Group-commit flushes of the node's store", &self.flushes),
            ("backwaters_retention_removed_batches_total", "Batches removed by retention or DeleteRecords", &self.retention_removed_batches),
            ("backwaters_compaction_passes_total", "Log compaction passes finished (compacted topics)", &self.compaction_passes),
            ("backwaters_compaction_removed_records_total", "Records log compaction removed (superseded, aborted or expired tombstones)", &self.compaction_removed_records),
            ("backwaters_group_rebalances_total", "Consumer-group rebalances completed (new generations)", &self.group_rebalances),
            ("backwaters_group_offset_commits_total", "Committed offsets written to __consumer_offsets", &self.group_offset_commits),
            ("backwaters_group_members_expired_total", "Group members removed because their session lapsed", &self.group_members_expired),
            ("backwaters_txn_markers_total", "Transaction markers written by this node as a partition leader", &self.txn_markers),
            ("backwaters_txn_committed_total", "Transactions committed (counted by the coordinator that completed them)", &self.txn_committed),
            ("backwaters_txn_aborted_total", "Transactions aborted (counted by the coordinator that completed them)", &self.txn_aborted),
            ("backwaters_txn_timeouts_total", "Transactions the coordinator aborted at their timeout", &self.txn_timeouts),
            ("backwaters_raft_appends_refused_disk_total", "Leaders' appends a follower dropped because its disk was nearly full", &self.raft_appends_refused_disk),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", c.get());
        }
        self.render_ingest(&mut s);
        let _ = writeln!(s, "# HELP backwaters_disk_free_bytes Free bytes on the data folder's file system\n# TYPE backwaters_disk_free_bytes gauge\nbackwaters_disk_free_bytes {}", self.disk_free_bytes.load(Ordering::Relaxed));
        self.flush_latency_us.render(&mut s, "backwaters_flush_seconds", "Time of one store flush");
        self.log_write_us.render(&mut s, "backwaters_log_write_seconds", "Time to write one Raft ready's entries into the store (before its flush)");
        self.produce_latency_us.render(&mut s, "backwaters_produce_seconds", "Produce request time until durable");
        s
    }
}
