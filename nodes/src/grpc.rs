//! The public gRPC API (`backwaters.v1`): Produce, Consume, Admin, plus the standard health
//! service and server reflection (grpcurl works without the .proto files).

use crate::access::{self, Access};
use backwaters_actors::acl::{self, op, resource};
use backwaters_actors::node::{AdminError, ConfigOp, Node};
use backwaters_actors::PartitionError;
use backwaters_proto::grpc::v1::{self as pb, admin_client, admin_server, consume_server, produce_server};
use backwaters_proto::kafka::batch::{decode_records, encode_batch, parse_batch, NewRecord};
use backwaters_proto::kafka::partitioner::partition_for_key;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Messages buffered per Consume stream before the reader waits for the client.
const CONSUME_BUFFER: usize = 8;
/// Bytes read per Consume step.
const CONSUME_READ_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub struct Api {
    node: Node,
    round_robin: std::sync::Arc<AtomicU64>,
    /// Advertised addresses, reported by ClusterStatus.
    kafka_addr: String,
    grpc_addr: String,
    /// The cluster's other nodes as configured (ClusterStatus asks each).
    others: Arc<Vec<pb::NodeStatus>>,
    /// This node's client side of TLS, for calls to the other nodes.
    tls: Option<tonic::transport::ClientTlsConfig>,
    /// Who calls, and what the ACLs let them do (`access.rs`).
    auth: Arc<Access>,
    /// The cluster token, for this node's own calls to the other nodes' Admin service.
    attach: backwaters_proto::grpc::auth::Attach,
}

fn admin_status(e: AdminError) -> Status {
    let msg = e.to_string();
    match e {
        AdminError::TopicExists(_) => Status::already_exists(msg),
        AdminError::UnknownTopic(_) => Status::not_found(msg),
        AdminError::InvalidTopic(_) | AdminError::InvalidPartitions(_) | AdminError::InvalidReplicationFactor(_) | AdminError::InvalidConfig(_) => Status::invalid_argument(msg),
        AdminError::Storage(_) => Status::internal(msg),
        AdminError::NotFound(_) => Status::not_found(msg),
        AdminError::Unavailable(_) => Status::unavailable(msg),
        AdminError::Txn(_) => Status::failed_precondition(msg),
    }
}

fn partition_status(e: PartitionError) -> Status {
    let msg = e.to_string();
    match e {
        PartitionError::MessageTooLarge { .. } | PartitionError::InvalidRecord(_) | PartitionError::CorruptRecord(_) => Status::invalid_argument(msg),
        PartitionError::OffsetOutOfRange { .. } => Status::out_of_range(msg),
        PartitionError::Busy | PartitionError::NotLeader { .. } => Status::unavailable(msg),
        PartitionError::Timeout => Status::deadline_exceeded(msg),
        PartitionError::UnknownTopicOrPartition => Status::not_found(msg),
        PartitionError::DiskFull { .. } => Status::resource_exhausted(msg),
        _ => Status::failed_precondition(msg),
    }
}

#[tonic::async_trait]
impl produce_server::Produce for Api {
    async fn produce(&self, req: Request<pb::ProduceRequest>) -> Result<Response<pb::ProduceResponse>, Status> {
        let caller = self.auth.caller(&req)?;
        self.auth.require_write(access::Api::Grpc, &caller, &req.get_ref().topic)?;
        let req = req.into_inner();
        if req.records.is_empty() {
            return Err(Status::invalid_argument("records: at least one record is needed"));
        }
        let topic = self.node.topic_or_auto_create(&req.topic).await.ok_or_else(|| Status::not_found(format!("topic {:?} does not exist", req.topic)))?;
        if topic.record.name == backwaters_actors::group::OFFSETS_TOPIC {
            return Err(Status::permission_denied(format!("{} is written by the group coordinators only", topic.record.name)));
        }
        let n = topic.partitions.len() as i32;
        let partition = match req.partition {
            -1 => match req.records.first().filter(|r| r.has_key || !r.key.is_empty()) {
                Some(r) => partition_for_key(&r.key, n),
                None => (self.round_robin.fetch_add(1, Ordering::Relaxed) % n as u64) as i32,
            },
            p if (0..n).contains(&p) => p,
            p => return Err(Status::not_found(format!("partition {p} of {:?} does not exist (it has {n})", req.topic))),
        };
        let now = self.node.now_ms();
        let records: Vec<NewRecord> = req
            .records
            .into_iter()
            .map(|r| NewRecord {
                key: (r.has_key || !r.key.is_empty()).then(|| Bytes::from(r.key)),
                value: Some(Bytes::from(r.value)),
                headers: r.headers.into_iter().map(|h| (h.key, Some(Bytes::from(h.value)))).collect(),
                timestamp_ms: if r.timestamp_ms > 0 { r.timestamp_ms } else { now },
            })
            .collect();
        let count = records.len() as i64;
        let batch = encode_batch(&records).map_err(Status::internal)?;
        let header = parse_batch(&batch).map_err(|e| Status::internal(e.to_string()))?;
        let acks = match pb::Acks::try_from(req.acks).unwrap_or(pb::Acks::All) {
            pb::Acks::All => -1,
            pb::Acks::Leader => 1,
            pb::Acks::None => 0,
        };
        let part = &topic.partitions[partition as usize];
        let ack = self.node.produce(part, vec![(header, batch)], acks, Duration::from_secs(30)).await.map_err(partition_status)?;
        Ok(Response::new(pb::ProduceResponse { partition, base_offset: ack.base_offset, last_offset: ack.base_offset + count - 1 }))
    }
}

type ConsumeStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::ConsumeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl consume_server::Consume for Api {
    type ConsumeStream = ConsumeStream;

    async fn consume(&self, req: Request<pb::ConsumeRequest>) -> Result<Response<ConsumeStream>, Status> {
        self.auth.check(&req, op::READ, resource::TOPIC, &req.get_ref().topic)?;
        let req = req.into_inner();
        let part = self.node.partition(&req.topic, req.partition).ok_or_else(|| Status::not_found(format!("partition {}-{} does not exist", req.topic, req.partition)))?;
        let mut offset = if req.from_timestamp_ms > 0 {
            part.offset_for_time(req.from_timestamp_ms).map_err(partition_status)?.map(|(o, _)| o).unwrap_or_else(|| part.high_watermark())
        } else {
            match req.offset {
            -2 => part.log_start_offset(),
            -1 => part.high_watermark(),
            o if o >= 0 => o,
            o => return Err(Status::invalid_argument(format!("offset {o}: use -2 (earliest), -1 (latest) or an offset"))),
            }
        };
        let wait = Duration::from_millis(if req.max_wait_ms == 0 { 1000 } else { req.max_wait_ms.min(30_000) as u64 });
        let limit = if req.max_records == 0 { u64::MAX } else { req.max_records };
        let (tx, rx) = mpsc::channel(CONSUME_BUFFER);
        tokio::spawn(async move {
            let mut hw_rx = part.subscribe();
            let mut sent = 0u64;
            while sent < limit {
                let entries = match part.read(offset, CONSUME_READ_BYTES) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = tx.send(Err(partition_status(e))).await;
                        return;
                    }
                };
                let mut out = Vec::new();
                let from = offset;
                for e in &entries {
                    offset = e.next_offset();
                    let recs = match decode_records(&e.payload) {
                        Ok(r) => r,
                        Err(err) => {
                            let _ = tx.send(Err(Status::data_loss(format!("batch at offset {}: {err}", e.base_offset)))).await;
                            return;
                        }
                    };
                    for r in recs.into_iter().filter(|r| r.offset >= from) {
                        if sent + out.len() as u64 >= limit {
                            break;
                        }
                        out.push(pb::ConsumedRecord {
                            offset: r.offset,
                            timestamp_ms: r.timestamp_ms,
                            key: r.key.map(|k| k.to_vec()),
                            value: r.value.map(|v| v.to_vec()),
                            headers: r.headers.into_iter().map(|(k, v)| pb::Header { key: k, value: v.map(|v| v.to_vec()).unwrap_or_default() }).collect(),
                        });
                    }
                }
                let empty = out.is_empty();
                sent += out.len() as u64;
                let msg = pb::ConsumeResponse { records: out, high_watermark: part.high_watermark(), log_start_offset: part.log_start_offset() };
                if empty {
                    // Long-poll: wait for new records, then send a heartbeat if none came.
                    if tokio::time::timeout(wait, hw_rx.changed()).await.is_ok() {
                        continue;
                    }
                }
                if tx.send(Ok(msg)).await.is_err() {
                    return; // client went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[tonic::async_trait]
impl admin_server::Admin for Api {
    async fn create_topic(&self, req: Request<pb::CreateTopicRequest>) -> Result<Response<pb::CreateTopicResponse>, Status> {
        self.auth.check_create_topic(&req, &req.get_ref().name)?;
        let r = req.into_inner();
        let configs: BTreeMap<String, String> = r.configs.into_iter().map(|c| (c.name, c.value)).collect();
        let partitions = if r.partitions == 0 { -1 } else { r.partitions };
        let rf = if r.replication_factor == 0 { -1 } else { r.replication_factor as i16 };
        let t = self.node.create_topic(&r.name, partitions, rf, configs, false).await.map_err(admin_status)?;
        Ok(Response::new(pb::CreateTopicResponse { name: r.name, topic_id: t.record.id.clone() }))
    }

    async fn delete_topic(&self, req: Request<pb::DeleteTopicRequest>) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        self.auth.check(&req, op::DELETE, resource::TOPIC, &req.get_ref().name)?;
        self.node.delete_topic(&req.into_inner().name).await.map_err(admin_status)?;
        Ok(Response::new(pb::DeleteTopicResponse {}))
    }

    async fn list_topics(&self, req: Request<pb::ListTopicsRequest>) -> Result<Response<pb::ListTopicsResponse>, Status> {
        // Topics the caller may not describe are left out, as in Kafka's Metadata.
        let caller = self.auth.caller(&req)?;
        let all = req.into_inner().include_internal;
        let topics = self
            .node
            .topics()
            .iter()
            .filter(|t| (all || !t.record.internal) && self.auth.may(&caller, op::DESCRIBE, resource::TOPIC, &t.record.name))
            .map(|t| summary(t))
            .collect();
        Ok(Response::new(pb::ListTopicsResponse { topics }))
    }

    async fn describe_topic(&self, req: Request<pb::DescribeTopicRequest>) -> Result<Response<pb::DescribeTopicResponse>, Status> {
        self.auth.check(&req, op::DESCRIBE, resource::TOPIC, &req.get_ref().name)?;
        let req = req.into_inner();
        let name = req.name;
        let t = self.node.topic(&name).ok_or_else(|| admin_status(AdminError::UnknownTopic(name.clone())))?;
        let members = self.node.settings().members();
        let zone = |n: i32| members.iter().find(|m| m.id == n).map(|m| m.zone.clone()).unwrap_or_default();
        let me = self.node.settings().node_id;
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let local = p.actor().is_some();
            let checksum = if local { replica_checksum(p).map_err(partition_status)? } else { 0 };
            let mut replica_states = Vec::new();
            if local && p.leader() == Some(me) {
                if let Some(st) = self.node.partition_status(p).await {
                    let isr = p.in_sync();
                    replica_states = st
                        .replica_ends
                        .iter()
                        .map(|(n, end)| pb::ReplicaState { node_id: *n, zone: zone(*n), log_end_offset: *end, lag: (st.log_end_offset - end).max(0), in_sync: isr.contains(n) })
                        .collect();
                }
            }
            partitions.push(pb::PartitionInfo {
                partition: p.partition,
                leader: p.leader().unwrap_or(-1),
                replicas: p.replicas.clone(),
                log_start_offset: p.log_start_offset(),
                high_watermark: p.high_watermark(),
                log_end_offset: p.log_end_offset(),
                local,
                checksum,
                replica_zones: p.replicas.iter().map(|r| zone(*r)).collect(),
                replica_states,
            });
        }
        if !req.local_only {
            // Replica states of partitions led elsewhere come from their leaders (one call
            // per leader node; a leader that does not answer leaves them empty).
            let leaders: std::collections::BTreeSet<i32> = partitions.iter().filter(|p| p.leader >= 0 && p.leader != me).map(|p| p.leader).collect();
            for l in leaders {
                let Some(addr) = self.others.iter().find(|n| n.node_id == l).map(|n| n.grpc_address.clone()) else { continue };
                let ask = async {
                    peer_admin(&addr, Duration::from_secs(1), self.tls.as_ref(), &self.attach).await.ok()?.describe_topic(pb::DescribeTopicRequest { name: name.clone(), local_only: true }).await.ok()
                };
                if let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(2), ask).await {
                    for theirs in r.into_inner().partitions {
                        if let Some(p) = partitions.iter_mut().find(|p| p.partition == theirs.partition && p.leader == l) {
                            p.replica_states = theirs.replica_states;
                        }
                    }
                }
            }
        }
        let configs = t.config().entries(&t.record.overrides).into_iter().map(|e| pb::TopicConfig { name: e.name.to_string(), value: e.value }).collect();
        Ok(Response::new(pb::DescribeTopicResponse { topic: Some(summary(&t)), partitions, configs }))
    }

    async fn alter_topic_config(&self, req: Request<pb::AlterTopicConfigRequest>) -> Result<Response<pb::AlterTopicConfigResponse>, Status> {
        self.auth.check(&req, op::ALTER_CONFIGS, resource::TOPIC, &req.get_ref().name)?;
        let r = req.into_inner();
        let ops = r.set.into_iter().map(|c| if c.value.is_empty() { ConfigOp::Delete(c.name) } else { ConfigOp::Set(c.name, c.value) }).collect();
        self.node.alter_config(&r.name, ops, false, false).await.map_err(admin_status)?;
        Ok(Response::new(pb::AlterTopicConfigResponse {}))
    }

    async fn create_partitions(&self, req: Request<pb::CreatePartitionsRequest>) -> Result<Response<pb::CreatePartitionsResponse>, Status> {
        self.auth.check(&req, op::ALTER, resource::TOPIC, &req.get_ref().name)?;
        let r = req.into_inner();
        self.node.create_partitions(&r.name, r.total_count, false).await.map_err(admin_status)?;
        Ok(Response::new(pb::CreatePartitionsResponse {}))
    }

    async fn cluster_status(&self, req: Request<pb::ClusterStatusRequest>) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        self.auth.check(&req, op::DESCRIBE, resource::CLUSTER, acl::CLUSTER_NAME)?;
        let s = self.node.settings();
        let actors = self
            .node
            .supervision_tree()
            .await
            .into_iter()
            .map(|(sup, c)| pb::ActorStatus { name: c.name, supervisor: sup, state: if c.running { "running".into() } else { "restarting".into() }, restarts: c.restarts })
            .collect();
        let me = pb::NodeStatus { node_id: s.node_id, zone: s.zone.clone(), kafka_address: self.kafka_addr.clone(), grpc_address: self.grpc_addr.clone(), alive: true, actors, in_actor_cluster: false, recorded: String::new() };
        let mut nodes = vec![me];
        if !req.into_inner().local_only {
            // Each other node reports itself; one that does not answer within a second is
            // reported as not alive.
            let (tls, attach) = (self.tls.as_ref(), &self.attach);
            let asks = self.others.iter().cloned().map(|mut n| async move {
                let ask = async {
                    peer_admin(&n.grpc_address, Duration::from_secs(1), tls, attach).await.ok()?.cluster_status(pb::ClusterStatusRequest { local_only: true }).await.ok()
                };
                match tokio::time::timeout(Duration::from_secs(2), ask).await {
                    Ok(Some(r)) => r.into_inner().nodes.into_iter().find(|x| x.node_id == n.node_id).unwrap_or(n),
                    _ => {
                        n.alive = false;
                        n
                    }
                }
            });
            nodes.extend(futures::future::join_all(asks).await);
            nodes.sort_by_key(|n| n.node_id);
        }
        // Sessions as this node sees them (each node reports its own view of itself).
        let (sessions, recorded) = (self.node.actor_cluster_view(), self.node.liveness());
        for n in &mut nodes {
            n.in_actor_cluster = sessions.get(&n.node_id).copied().unwrap_or(false);
            n.recorded = match recorded.get(&n.node_id) {
                Some(true) => "up".into(),
                Some(false) => "down".into(),
                None => String::new(),
            };
        }
        Ok(Response::new(pb::ClusterStatusResponse {
            cluster_name: s.cluster_name.clone(),
            cluster_id: self.node.cluster_id().to_string(),
            controller_id: self.node.controller_id().unwrap_or(-1),
            version: env!("CARGO_PKG_VERSION").to_string(),
            nodes,
        }))
    }

    async fn transfer_leadership(&self, req: Request<pb::TransferLeadershipRequest>) -> Result<Response<pb::TransferLeadershipResponse>, Status> {
        self.auth.check(&req, op::ALTER, resource::CLUSTER, acl::CLUSTER_NAME)?;
        let r = req.into_inner();
        let t = self.node.topic(&r.topic).ok_or_else(|| admin_status(AdminError::UnknownTopic(r.topic.clone())))?;
        let p = t.partitions.get(r.partition.max(0) as usize).filter(|_| r.partition >= 0).cloned().ok_or_else(|| Status::invalid_argument(format!("{} has no partition {}", r.topic, r.partition)))?;
        let me = self.node.settings().node_id;
        let leader = p.leader().ok_or_else(|| Status::unavailable(format!("{}-{} has no leader right now; retry", r.topic, r.partition)))?;
        if leader != me {
            // Only the leader can hand over: pass the request on.
            let addr = self.others.iter().find(|n| n.node_id == leader).map(|n| n.grpc_address.clone()).ok_or_else(|| Status::unavailable(format!("leader {leader} is not in the cluster config")))?;
            return peer_admin(&addr, Duration::from_secs(2), self.tls.as_ref(), &self.attach).await?.transfer_leadership(r).await;
        }
        let to = if r.to_node == 0 {
            p.in_sync().into_iter().find(|n| *n != me && !self.node.drained().contains(n)).ok_or_else(|| Status::failed_precondition("no other replica is in sync (and not drained) to take over"))?
        } else {
            r.to_node
        };
        if to == me {
            return Ok(Response::new(pb::TransferLeadershipResponse { previous_leader: me, leader: me }));
        }
        if !p.replicas.contains(&to) {
            return Err(Status::invalid_argument(format!("node {to} holds no replica of {}-{} (replicas {:?})", r.topic, r.partition, p.replicas)));
        }
        if self.node.drained().contains(&to) {
            return Err(Status::failed_precondition(format!("node {to} is drained; undo the drain first")));
        }
        self.node.transfer_leadership(&p, to).map_err(partition_status)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match p.leader() {
                Some(l) if l != me => return Ok(Response::new(pb::TransferLeadershipResponse { previous_leader: me, leader: l })),
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(Status::deadline_exceeded(format!("node {to} did not take over {}-{} within 10 s (is it caught up and reachable?)", r.topic, r.partition)));
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn drain_node(&self, req: Request<pb::DrainNodeRequest>) -> Result<Response<pb::DrainNodeResponse>, Status> {
        self.auth.check(&req, op::ALTER, resource::CLUSTER, acl::CLUSTER_NAME)?;
        let r = req.into_inner();
        self.node.set_drained(r.node_id, !r.undo).await.map_err(admin_status)?;
        let leading = |node: &Node| -> i32 {
            node.topics().iter().filter(|t| t.record.name != backwaters_actors::controller::METADATA_TOPIC).flat_map(|t| t.partitions.iter()).filter(|p| p.leader() == Some(r.node_id)).count() as i32
        };
        let timeout = Duration::from_millis(if r.timeout_ms == 0 { 60_000 } else { r.timeout_ms as u64 });
        let deadline = tokio::time::Instant::now() + timeout;
        while !r.undo && leading(&self.node) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Response::new(pb::DrainNodeResponse { still_leading: leading(&self.node), drained_nodes: self.node.drained() }))
    }

    async fn list_quotas(&self, req: Request<pb::ListQuotasRequest>) -> Result<Response<pb::ListQuotasResponse>, Status> {
        self.auth.check(&req, op::DESCRIBE_CONFIGS, resource::CLUSTER, acl::CLUSTER_NAME)?;
        let quotas = self
            .node
            .quotas()
            .iter()
            .map(|(entity, values)| pb::Quota {
                entity: entity.iter().map(|(t, n)| pb::QuotaEntityPart { r#type: t.clone(), name: n.clone() }).collect(),
                values: values.iter().map(|(k, v)| (k.clone(), v.0)).collect(),
            })
            .collect();
        Ok(Response::new(pb::ListQuotasResponse { quotas }))
    }

    async fn alter_quota(&self, req: Request<pb::AlterQuotaRequest>) -> Result<Response<pb::AlterQuotaResponse>, Status> {
        self.auth.check(&req, op::ALTER_CONFIGS, resource::CLUSTER, acl::CLUSTER_NAME)?;
        let r = req.into_inner();
        let parts: Vec<(String, Option<String>)> = r.entity.into_iter().map(|p| (p.r#type, p.name)).collect();
        backwaters_actors::quota::validate(&parts, &r.key, r.value).map_err(Status::invalid_argument)?;
        let change = backwaters_actors::controller::ControllerRequest::Quotas { entity: parts.into_iter().collect(), ops: vec![(r.key, r.value.map(backwaters_actors::quota::QuotaValue))] };
        self.node.controller(change).await.map_err(admin_status)?;
        Ok(Response::new(pb::AlterQuotaResponse {}))
    }

    async fn list_groups(&self, req: Request<pb::ListGroupsRequest>) -> Result<Response<pb::ListGroupsResponse>, Status> {
        // As Kafka's ListGroups: every group with DESCRIBE on the cluster, else those the
        // caller may describe.
        let caller = self.auth.caller(&req)?;
        let mut r = crate::grpc_groups::list(&self.node).await?;
        if !self.auth.may(&caller, op::DESCRIBE, resource::CLUSTER, acl::CLUSTER_NAME) {
            r.groups.retain(|g| self.auth.may(&caller, op::DESCRIBE, resource::GROUP, &g.group_id));
        }
        Ok(Response::new(r))
    }

    async fn describe_group(&self, req: Request<pb::DescribeGroupRequest>) -> Result<Response<pb::DescribeGroupResponse>, Status> {
        self.auth.check(&req, op::DESCRIBE, resource::GROUP, &req.get_ref().group_id)?;
        crate::grpc_groups::describe(&self.node, &req.into_inner().group_id).await.map(Response::new)
    }

    async fn reset_group_offsets(&self, req: Request<pb::ResetGroupOffsetsRequest>) -> Result<Response<pb::ResetGroupOffsetsResponse>, Status> {
        // As Kafka's offset commits: READ on the group and on every topic reset.
        let caller = self.auth.check(&req, op::READ, resource::GROUP, &req.get_ref().group_id)?;
        let may_read = |topic: &str| self.auth.require(&caller, op::READ, resource::TOPIC, topic);
        crate::grpc_groups::reset(&self.node, req.into_inner(), may_read).await.map(Response::new)
    }

    async fn delete_group(&self, req: Request<pb::DeleteGroupRequest>) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        self.auth.check(&req, op::DELETE, resource::GROUP, &req.get_ref().group_id)?;
        crate::grpc_groups::delete(&self.node, &req.into_inner().group_id).await.map(Response::new)
    }
}

/// The Admin service of another node (for answers only that node has).
async fn peer_admin(addr: &str, connect_timeout: Duration, tls: Option<&tonic::transport::ClientTlsConfig>, attach: &backwaters_proto::grpc::auth::Attach) -> Result<PeerAdmin, Status> {
    let ch = crate::tls::endpoint(addr, tls)
        .map_err(|e| Status::internal(format!("peer {e}")))?
        .connect_timeout(connect_timeout)
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("node at {addr}: {e}")))?;
    Ok(admin_client::AdminClient::with_interceptor(ch, attach.clone()))
}

/// Another node's Admin service, called with the cluster token (a node may do everything).
type PeerAdmin = admin_client::AdminClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, backwaters_proto::grpc::auth::Attach>>;

/// CRC32C over a local replica's committed batches (see `PartitionInfo.checksum`).
fn replica_checksum(p: &backwaters_actors::partition::PartitionShared) -> Result<u32, PartitionError> {
    let hw = p.high_watermark();
    let mut offset = p.log_start_offset();
    let mut crc = 0u32;
    while offset < hw {
        let entries = p.read(offset, 4 << 20)?;
        let Some(last) = entries.last() else { break };
        offset = last.next_offset();
        for e in &entries {
            crc = crc32c::crc32c_append(crc, &e.payload);
        }
    }
    Ok(crc)
}

fn summary(t: &backwaters_actors::node::Topic) -> pb::TopicSummary {
    pb::TopicSummary { name: t.record.name.clone(), topic_id: t.record.id.clone(), partitions: t.partitions.len() as i32, replication_factor: t.record.replication_factor as i32 }
}

/// Serves the gRPC API on `listener` until `stop` turns true.
/// With `tls`, the port speaks only TLS (see `tls.rs`).
#[allow(clippy::too_many_arguments)]
pub async fn serve(node: Node, listener: std::net::TcpListener, max_message_bytes: usize, addrs: (String, String), others: Arc<Vec<pb::NodeStatus>>, cluster: String, secret: String, allow_fault_injection: bool, tls: Option<crate::tls::NodeTls>, auth: Arc<Access>, mut stop: watch::Receiver<bool>) -> Result<(), String> {
    let require = backwaters_proto::grpc::auth::Require::new(&cluster, &secret);
    let attach = backwaters_proto::grpc::auth::Attach::new(&cluster, &secret);
    let internal = crate::peers::InternalApi { node: Arc::new(std::sync::OnceLock::from(node.clone())), cluster, allow_fault_injection };
    let listener = tokio::net::TcpListener::from_std(listener.try_clone().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let api = Api { node, round_robin: Default::default(), kafka_addr: addrs.0, grpc_addr: addrs.1, others, tls: tls.as_ref().map(|t| t.grpc_client()), auth, attach };
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<produce_server::ProduceServer<Api>>().await;
    health_reporter.set_serving::<consume_server::ConsumeServer<Api>>().await;
    health_reporter.set_serving::<admin_server::AdminServer<Api>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(backwaters_proto::grpc::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| e.to_string())?;
    let mut server = tonic::transport::Server::builder();
    if let Some(t) = &tls {
        server = server.tls_config(t.grpc_server()).map_err(|e| format!("gRPC TLS: {e}"))?;
    }
    server
        .add_service(health)
        .add_service(reflection)
        .add_service(produce_server::ProduceServer::new(api.clone()).max_decoding_message_size(max_message_bytes))
        .add_service(consume_server::ConsumeServer::new(api.clone()).max_decoding_message_size(max_message_bytes))
        .add_service(admin_server::AdminServer::new(api).max_decoding_message_size(max_message_bytes))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            backwaters_proto::grpc::v1::internal_server::InternalServer::new(internal).max_decoding_message_size(max_message_bytes).max_encoding_message_size(max_message_bytes),
            require,
        ))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async move {
            let _ = stop.changed().await;
        })
        .await
        .map_err(|e| format!("gRPC server: {e}"))
}
