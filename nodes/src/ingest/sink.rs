//! Where every ingest listener writes: turns messages into records (parse, ECS JSON, route,
//! key), batches them per partition and produces with acks=all. `write` returns only once
//! every record is durable, so a listener acknowledges (RELP `rsp`, HTTP 2xx) nothing that
//! could be lost, and stops reading while a write is in flight (backpressure).

use super::config::{IngestConfig, KeyBy};
use backwaters_actors::metrics::IngestCounters;
use backwaters_actors::node::{ForwardedProduce, Node};
use backwaters_actors::PartitionError;
use backwaters_proto::kafka::batch::{encode_batch_with, parse_batch, NewRecord};
use backwaters_proto::kafka::partitioner::partition_for_key;
use backwaters_proto::syslog::ecs::{self, Received};
use backwaters_proto::syslog::parse::{parse, Rfc3164Rules};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::IpAddr;
use crate::access::{Access, Api, Caller, Refusal};
use crate::kafka::authz::ANONYMOUS;
use backwaters_actors::acl::Requester;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most bytes put in one batch (below the default max.message.bytes of 1 MiB).
const BATCH_BYTES_MAX: usize = 900 * 1024;
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A record ready to be written.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub topic: String,
    pub key: Option<Bytes>,
    pub value: Bytes,
    /// A partition chosen by the sender (REST proxy), else by key.
    pub partition: Option<i32>,
    pub timestamp_ms: i64,
}

/// Why a write failed. `Retriable` maps to RELP/HTTP "try again" answers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("overloaded or restarting: {0}")]
    Retriable(String),
    #[error("{0}")]
    Refused(String),
}

pub struct Sink {
    pub node: Node,
    pub cfg: IngestConfig,
    pub name: String,
    pub counters: Arc<IngestCounters>,
    rules: Rfc3164Rules,
    round_robin: AtomicU64,
    access: Arc<Access>,
    /// When a refusal was last logged at warn level (milliseconds; UDP refusals can come in
    /// floods: one line a minute, the rest counted).
    last_denied_log_ms: AtomicI64,
}

impl Sink {
    pub fn new(node: Node, cfg: IngestConfig, access: Arc<Access>) -> Result<Sink, String> {
        let rules = cfg.rfc3164_rules()?;
        let name = cfg.name();
        let counters = node.metrics().ingest(&name);
        Ok(Sink { node, cfg, name, counters, rules, round_robin: AtomicU64::new(0), access, last_denied_log_ms: AtomicI64::new(i64::MIN) })
    }

    /// Who a syslog or RELP sender is: the subject of its TLS client certificate, else
    /// `User:ANONYMOUS` (as a Kafka client on a listener without login), from `peer`.
    pub fn caller(&self, certificate_subject: Option<String>, peer: Option<IpAddr>) -> Caller {
        Caller::User(Requester { principal: certificate_subject.unwrap_or_else(|| ANONYMOUS.to_string()), host: peer.map(|ip| ip.to_string()).unwrap_or_default() })
    }

    /// The ACL check of syslog and RELP senders: `caller` needs WRITE on each record's topic
    /// (and CREATE for one a write would create), as a Kafka producer does. Records it may
    /// not write are taken out of `batch` and counted; the first refusal is returned (a stream
    /// listener closes the connection with it, RELP answers it). Without `[authorization]`
    /// everything passes.
    pub fn authorize(&self, caller: &Caller, batch: &mut Vec<Prepared>) -> Option<String> {
        if !self.access.enforcing() {
            return None;
        }
        let mut refusal: Option<String> = None;
        let mut verdicts: BTreeMap<String, bool> = BTreeMap::new();
        batch.retain(|r| {
            let ok = *verdicts.entry(r.topic.clone()).or_insert_with(|| self.verdict(caller, &r.topic, &mut refusal));
            if !ok {
                self.counters.denied.inc();
            }
            ok
        });
        self.log_refusal(refusal.as_deref());
        refusal
    }

    /// As [`Sink::authorize`] for one record (RELP answers each message on its own).
    pub fn refusal(&self, caller: &Caller, record: &Prepared) -> Option<String> {
        if !self.access.enforcing() {
            return None;
        }
        let mut refusal = None;
        if !self.verdict(caller, &record.topic, &mut refusal) {
            self.counters.denied.inc();
            self.log_refusal(refusal.as_deref());
        }
        refusal
    }

    /// As [`Sink::authorize`] for datagrams, each from its own sender address.
    pub fn authorize_each(&self, items: Vec<(IpAddr, Prepared)>) -> Vec<Prepared> {
        if !self.access.enforcing() {
            return items.into_iter().map(|(_, p)| p).collect();
        }
        let mut refusal: Option<String> = None;
        let mut verdicts: BTreeMap<(IpAddr, String), bool> = BTreeMap::new();
        let mut out = Vec::with_capacity(items.len());
        for (ip, p) in items {
            let ok = *verdicts.entry((ip, p.topic.clone())).or_insert_with(|| self.verdict(&self.caller(None, Some(ip)), &p.topic, &mut refusal));
            if ok {
                out.push(p);
            } else {
                self.counters.denied.inc();
            }
        }
        self.log_refusal(refusal.as_deref());
        out
    }

    fn verdict(&self, caller: &Caller, topic: &str, refusal: &mut Option<String>) -> bool {
        match self.access.require_write(Api::Syslog, caller, topic) {
            Ok(()) => true,
            Err(Refusal::Denied { message, .. } | Refusal::Unauthenticated(message)) => {
                refusal.get_or_insert(message);
                false
            }
        }
    }

    fn log_refusal(&self, refusal: Option<&str>) {
        if let Some(why) = refusal {
            let now = self.node.now_ms();
            let last = self.last_denied_log_ms.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= 60_000 && self.last_denied_log_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                tracing::warn!(listener = %self.name, reason = %why, "ingest refused by the ACLs (further refusals within a minute are only counted: backwaters_ingest_denied_total)");
            }
        }
    }

    /// One syslog message as a record: parsed (or tagged as a failure), routed and keyed.
    pub fn syslog(&self, raw: &[u8], source: Option<IpAddr>, protocol: &str) -> Prepared {
        let now = self.node.now_ms();
        self.counters.received.inc();
        self.counters.bytes.add(raw.len() as u64);
        let parsed = parse(raw, now, &self.rules);
        match &parsed {
            Ok(_) => self.counters.parsed.inc(),
            Err(_) => self.counters.failed.inc(),
        }
        let ip = source.map(|s| s.to_string());
        let r = Received { at_ms: now, source_ip: ip.as_deref(), listener: &self.name, protocol, tenant: self.cfg.tenant.as_deref() };
        let value = serde_json::to_vec(&ecs::to_json(raw, &parsed, &r)).expect("JSON values serialize");
        let (topic, key) = match &parsed {
            Ok(m) => {
                let topic = self.cfg.routes.iter().find(|r| r.matches(m)).map(|r| r.topic.clone()).unwrap_or_else(|| self.cfg.topic.clone());
                let key = match self.cfg.key {
                    KeyBy::Host => m.hostname.clone().or(ip),
                    KeyBy::App => m.app_name.clone(),
                    KeyBy::None => None,
                };
                (topic, key)
            }
            // Unparsed lines stay with their sender's other lines.
            Err(_) => (self.cfg.topic.clone(), if self.cfg.key == KeyBy::None { None } else { ip }),
        };
        Prepared { topic, key: key.map(Bytes::from), value: Bytes::from(value), partition: None, timestamp_ms: now }
    }

    /// Writes `records` durably (acks=all); returns each record's (partition, offset) in
    /// input order.
    pub async fn write(&self, records: Vec<Prepared>) -> Result<Vec<(i32, i64)>, WriteError> {
        let n = records.len();
        // (topic, partition) -> indexes of its records, in order.
        let mut groups: BTreeMap<(String, i32), Vec<usize>> = BTreeMap::new();
        let unkeyed = self.round_robin.fetch_add(1, Ordering::Relaxed);
        let mut counts: BTreeMap<String, i32> = BTreeMap::new();
        let mut parts = Vec::with_capacity(n);
        for (i, r) in records.iter().enumerate() {
            let count = match counts.get(&r.topic) {
                Some(c) => *c,
                None => {
                    let t = self.topic(&r.topic).await?;
                    counts.insert(r.topic.clone(), t);
                    t
                }
            };
            let p = match (r.partition, &r.key) {
                (Some(p), _) if (0..count).contains(&p) => p,
                (Some(p), _) => return Err(WriteError::Refused(format!("partition {p} of {} does not exist", r.topic))),
                (None, Some(k)) => partition_for_key(k, count),
                // Unkeyed records of one write stay together (Kafka's sticky partitioner).
                (None, None) => (unkeyed % count as u64) as i32,
            };
            parts.push(p);
            groups.entry((r.topic.clone(), p)).or_default().push(i);
        }
        let mut jobs = Vec::new();
        for ((topic, p), idx) in groups {
            let mut batches = Vec::new();
            let mut chunk: Vec<NewRecord> = Vec::new();
            let mut bytes = 0;
            for &i in &idx {
                let r = &records[i];
                let size = r.value.len() + r.key.as_ref().map_or(0, |k| k.len()) + 32;
                if !chunk.is_empty() && bytes + size > BATCH_BYTES_MAX {
                    batches.push(batch(&std::mem::take(&mut chunk), self.cfg.compression)?);
                    bytes = 0;
                }
                bytes += size;
                chunk.push(NewRecord { key: r.key.clone(), value: Some(r.value.clone()), headers: vec![], timestamp_ms: r.timestamp_ms });
            }
            batches.push(batch(&chunk, self.cfg.compression)?);
            let node = self.node.clone();
            // Wherever the partition's leader is (this node, or passed on to it).
            let req = ForwardedProduce { topic, partition: p, batches: batches.into_iter().map(|(_, b)| b).collect(), acks: -1, timeout: WRITE_TIMEOUT };
            jobs.push(async move {
                let ack = node.produce_anywhere(req).await;
                (idx, ack)
            });
        }
        let mut out = vec![(0, 0); n];
        for (idx, ack) in futures::future::join_all(jobs).await {
            let ack = ack.map_err(|e| match e {
                PartitionError::Busy | PartitionError::NotLeader { .. } | PartitionError::Timeout | PartitionError::Storage(_) | PartitionError::DiskFull { .. } => WriteError::Retriable(e.to_string()),
                other => WriteError::Refused(other.to_string()),
            })?;
            // One append: the batches of a partition get consecutive offsets.
            for (k, i) in idx.iter().enumerate() {
                out[*i] = (parts[*i], ack.base_offset + k as i64);
            }
        }
        self.counters.written.add(n as u64);
        Ok(out)
    }

    /// The partition count of `topic`, creating it (with the node defaults) if missing.
    async fn topic(&self, name: &str) -> Result<i32, WriteError> {
        if let Some(t) = self.node.topic(name) {
            return Ok(t.partitions.len() as i32);
        }
        match self.node.create_topic(name, -1, -1, BTreeMap::new(), false).await {
            Ok(t) => Ok(t.partitions.len() as i32),
            Err(backwaters_actors::node::AdminError::TopicExists(_)) => self.node.topic(name).map(|t| t.partitions.len() as i32).ok_or_else(|| WriteError::Retriable(format!("topic {name} is being created"))),
            Err(e) => Err(WriteError::Refused(format!("cannot create topic {name}: {e}"))),
        }
    }
}

fn batch(records: &[NewRecord], codec: super::config::Codec) -> Result<(backwaters_proto::kafka::batch::BatchHeader, Bytes), WriteError> {
    let b = encode_batch_with(records, codec.kafka()).map_err(WriteError::Refused)?;
    let h = parse_batch(&b).map_err(|e| WriteError::Refused(e.to_string()))?;
    Ok((h, b))
}
