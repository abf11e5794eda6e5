//! Fetch (key 1): committed batches from each requested partition, with long-polling
//! (`max_wait_ms` / `min_bytes`) and the `max_bytes` / `partition_max_bytes` limits.
//!
//! Batches are returned whole: a fetch that starts inside a batch gets the whole batch and the
//! client skips the records before its offset. The first batch is returned even when it is
//! larger than the limits, so a consumer can always make progress (KIP-74).
//!
//! Follower fetching (KIP-392): a consumer that names its rack (`client.rack`, v11+) and asks
//! the leader of a partition with an in-sync replica in that rack (zone) is told to read from
//! it (`preferred_read_replica`). Followers serve v11+ fetches up to their own high watermark,
//! which never passes the leader's: what a follower hands out is committed. A node that holds
//! no replica answers NOT_LEADER_OR_FOLLOWER, as does a follower to a pre-v11 fetch.
//! read_committed fetches (isolation level 1) stop at the last stable offset (no open
//! transaction's records) and list the aborted transactions among the batches returned, so
//! the client drops their records.
//! From v9 a fetch names the leader epoch the consumer knows: a replica with another one
//! answers FENCED_LEADER_EPOCH (the consumer's is older) or UNKNOWN_LEADER_EPOCH (newer).
//! Fetch sessions (KIP-227) are not kept: every answer is a full one with session id 0, which
//! clients take as "no session".
//! From v13 topics are named by id (an unknown id is UNKNOWN_TOPIC_ID). From v16 (KIP-951) a
//! partition refused with NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH names the leader this
//! node knows (`current_leader`) and the answer carries its address (`node_endpoints`), so
//! the consumer moves at once instead of after a metadata refresh.

use super::{known_leader, str, topic_name, KafkaCtx};
use crate::kafka::errors;
use backwaters_actors::acl::op;
use backwaters_actors::partition::PartitionShared;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// v4 (the oldest Kafka 4 accepts) to v16 (v17 only adds a field for replicas).
pub const VERSIONS: VersionRange = VersionRange { min: 4, max: 16 };
pub const ADVERTISED: VersionRange = VERSIONS;

/// Longest long-poll we honour.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

struct Want {
    /// Empty for a topic id this node does not know (v13+).
    topic: String,
    topic_id: uuid::Uuid,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    part: Option<Arc<PartitionShared>>,
    role: Role,
}

/// How this node answers for one partition.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Leader,
    Follower,
    /// Read from this replica instead (in the consumer's rack).
    Redirect(i32),
    NotReplica,
    /// The ACLs do not let the requester READ the topic.
    Denied,
    /// The requester's `current_leader_epoch` is older or newer than this replica's: the
    /// error code (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH).
    Epoch(i16),
}

fn role(ctx: &KafkaCtx, part: Option<&Arc<PartitionShared>>, version: i16, rack: &str, current_leader_epoch: i32) -> Role {
    let Some(p) = part else { return Role::NotReplica };
    let me = ctx.broker.node_id;
    if !p.replicas.contains(&me) {
        return Role::NotReplica;
    }
    // v9+ names the leader epoch the consumer knows; a leader or follower of another epoch
    // sends it back to its metadata (KIP-320).
    if let Some(code) = errors::epoch_error(p.check_epoch(current_leader_epoch)).filter(|_| version >= 9) {
        return Role::Epoch(code);
    }
    if p.leader() != Some(me) {
        return if version >= 11 { Role::Follower } else { Role::NotReplica };
    }
    if version >= 11 && !rack.is_empty() && ctx.broker.rack.as_deref() != Some(rack) {
        let zone = |n: i32| ctx.brokers.iter().find(|b| b.node_id == n).and_then(|b| b.rack.clone());
        if let Some(n) = p.in_sync().into_iter().find(|n| *n != me && zone(*n).as_deref() == Some(rack)) {
            return Role::Redirect(n);
        }
    }
    Role::Leader
}

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: FetchRequest) -> Option<FetchResponse> {
    let (version, rack) = (h.request_api_version, req.rack_id.to_string());
    let wants: Vec<Want> = req
        .topics
        .iter()
        .flat_map(|t| {
            let rack = rack.clone();
            // v13+: by id (an unknown id keeps an empty name and is answered UNKNOWN_TOPIC_ID).
            let name = if version >= 13 { ctx.node.topic_by_id(t.topic_id).map(|t| t.record.name.clone()).unwrap_or_default() } else { t.topic.0.to_string() };
            let readable = name.is_empty() || ctx.allowed_topic(op::READ, &name);
            t.partitions.iter().map(move |p| {
                let part = if name.is_empty() { None } else { ctx.node.partition(&name, p.partition) };
                Want {
                    topic: name.clone(),
                    topic_id: t.topic_id,
                    partition: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as usize,
                    role: if readable { role(ctx, part.as_ref(), version, &rack, p.current_leader_epoch) } else { Role::Denied },
                    part,
                }
            })
        })
        .collect();
    let max_bytes = if req.max_bytes <= 0 { usize::MAX } else { req.max_bytes as usize };
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    // Subscribe before the first read so a write landing in between still wakes us.
    let mut watches: Vec<_> = wants.iter().filter_map(|w| w.part.as_ref().map(|p| p.subscribe())).collect();
    let (resp, bytes) = loop {
        let (resp, bytes, errors) = read_all(ctx, &wants, max_bytes, req.isolation_level == 1, version);
        if bytes >= min_bytes.max(1) || errors || Instant::now() >= deadline || watches.is_empty() {
            break (resp, bytes);
        }
        let changed = futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            let (resp, bytes, _) = read_all(ctx, &wants, max_bytes, req.isolation_level == 1, version);
            break (resp, bytes);
        }
    };
    // Client quotas count the record bytes handed out.
    let throttle_ms = ctx.throttler.charge(&ctx.node, backwaters_actors::quota::CONSUMER_BYTE_RATE, h.client_id.as_deref(), bytes as u64);
    Some(resp.with_throttle_time_ms(throttle_ms))
}

/// One pass over every partition: the response, the record bytes in it, and whether any
/// partition answered with an error (which ends a long-poll at once, as in Kafka).
fn read_all(ctx: &KafkaCtx, wants: &[Want], max_bytes: usize, committed: bool, version: i16) -> (FetchResponse, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut endpoints: Vec<NodeEndpoint> = Vec::new();
    for w in wants {
        let mut pd = PartitionData::default().with_partition_index(w.partition).with_aborted_transactions(Some(vec![]));
        match (&w.part, w.role) {
            (None, _) if w.topic.is_empty() => {
                any_error = true;
                pd = pd.with_error_code(ResponseError::UnknownTopicId.code()).with_high_watermark(-1).with_last_stable_offset(-1).with_log_start_offset(-1);
            }
            (_, Role::Denied) => {
                any_error = true;
                pd = pd.with_error_code(ResponseError::TopicAuthorizationFailed.code()).with_high_watermark(-1).with_last_stable_offset(-1).with_log_start_offset(-1);
            }
            (None, _) => {
                any_error = true;
                pd = pd.with_error_code(ResponseError::UnknownTopicOrPartition.code()).with_high_watermark(-1).with_last_stable_offset(-1).with_log_start_offset(-1);
            }
            (_, Role::Epoch(code)) => {
                any_error = true;
                pd = pd.with_error_code(code).with_high_watermark(-1).with_last_stable_offset(-1).with_log_start_offset(-1);
                if code == ResponseError::FencedLeaderEpoch.code() {
                    pd = with_leader_hint(ctx, version, w, pd, &mut endpoints);
                }
            }
            (Some(_), Role::NotReplica) => {
                any_error = true;
                pd = pd.with_error_code(ResponseError::NotLeaderOrFollower.code()).with_high_watermark(-1).with_last_stable_offset(-1).with_log_start_offset(-1);
                pd = with_leader_hint(ctx, version, w, pd, &mut endpoints);
            }
            (Some(p), Role::Redirect(node)) => {
                // Answered at once (as an error would be): the consumer moves to `node`.
                any_error = true;
                let hw = p.high_watermark();
                pd = pd.with_high_watermark(hw).with_last_stable_offset(p.last_stable_offset().min(hw)).with_log_start_offset(p.log_start_offset()).with_preferred_read_replica(node.into());
            }
            // A follower behind the consumer: nothing yet (its high watermark catches up).
            (Some(p), Role::Follower) if w.offset > p.high_watermark() => {
                let hw = p.high_watermark();
                pd = pd.with_high_watermark(hw).with_last_stable_offset(p.last_stable_offset().min(hw)).with_log_start_offset(p.log_start_offset());
            }
            (Some(p), Role::Leader | Role::Follower) => {
                let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
                let hw = p.high_watermark();
                pd = pd.with_high_watermark(hw).with_last_stable_offset(p.last_stable_offset().min(hw)).with_log_start_offset(p.log_start_offset());
                // Once something is in the response, a partition with no budget left is skipped.
                if budget == 0 && total > 0 {
                    push(&mut topics, w, pd);
                    continue;
                }
                let read = p.read_below(w.offset, budget.max(1), committed).and_then(|entries| {
                    let aborted = match (committed, entries.last()) {
                        (true, Some(last)) => p.aborted_between(w.offset, last.next_offset() - 1)?,
                        _ => Vec::new(),
                    };
                    Ok((entries, aborted))
                });
                match read {
                    Ok((entries, aborted)) => {
                        if committed {
                            let listed = aborted.iter().map(|a| AbortedTransaction::default().with_producer_id(ProducerId(a.producer_id)).with_first_offset(a.first_offset)).collect();
                            pd = pd.with_aborted_transactions(Some(listed));
                        }
                        let mut buf = BytesMut::with_capacity(entries.iter().map(|e| e.payload.len()).sum());
                        for e in &entries {
                            buf.extend_from_slice(&e.payload);
                        }
                        total += buf.len();
                        ctx.node.metrics().fetch_bytes.add(buf.len() as u64);
                        pd = pd.with_records(Some(Bytes::from(buf)));
                    }
                    Err(e) => {
                        any_error = true;
                        pd = pd.with_error_code(errors::partition_error(&e));
                    }
                }
            }
        }
        push(&mut topics, w, pd);
    }
    // v13+ names topics by id only (a field outside a version must stay at its default).
    for t in topics.iter_mut().filter(|_| version >= 13) {
        t.topic = Default::default();
    }
    for t in topics.iter_mut().filter(|_| version < 13) {
        t.topic_id = Default::default();
    }
    (FetchResponse::default().with_responses(topics).with_node_endpoints(endpoints), total, any_error)
}

/// KIP-951 (v16+): the leader this node knows for a partition it refused, and its address.
fn with_leader_hint(ctx: &KafkaCtx, version: i16, w: &Want, pd: PartitionData, endpoints: &mut Vec<NodeEndpoint>) -> PartitionData {
    if version < 16 {
        return pd;
    }
    let Some((leader, epoch, broker)) = known_leader(ctx, &w.topic, w.partition) else { return pd };
    if !endpoints.iter().any(|e| e.node_id.0 == leader) {
        endpoints.push(NodeEndpoint::default().with_node_id(BrokerId(leader)).with_host(str(&broker.host)).with_port(broker.port).with_rack(broker.rack.as_deref().map(str)));
    }
    pd.with_current_leader(LeaderIdAndEpoch::default().with_leader_id(BrokerId(leader)).with_leader_epoch(epoch))
}

fn push(topics: &mut Vec<FetchableTopicResponse>, w: &Want, pd: PartitionData) {
    match topics.iter_mut().find(|t| t.topic.0.as_str() == w.topic && t.topic_id == w.topic_id) {
        Some(t) => t.partitions.push(pd),
        None => topics.push(FetchableTopicResponse::default().with_topic(topic_name(&w.topic)).with_topic_id(w.topic_id).with_partitions(vec![pd])),
    }
}
