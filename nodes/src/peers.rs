//! Node-to-node traffic over gRPC (`backwaters.v1.Internal`): Raft messages, requests
//! forwarded to the controller, and writes passed on to partition leaders.
//!
//! Raft messages are queued per destination node (a bounded queue: when a peer is slow or
//! gone, what does not fit is dropped and Raft resends) and one task per peer sends whatever
//! is queued as one batch on a long-lived stream: under load many groups' messages share
//! each batch, and batches follow each other without waiting for answers.

use backwaters_actors::controller::{ControllerReply, ControllerRequest};
use backwaters_actors::node::{AdminError, ForwardedProduce, Node, Peers};
use backwaters_actors::partition::ProduceAck;
use backwaters_actors::PartitionError;
use backwaters_actors::replica::{decode_message, encode_message, node_of, Transport};
use backwaters_proto::grpc::v1::{self as pb, internal_client::InternalClient, internal_server};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use backwaters_proto::grpc::auth::Attach;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig};
use tonic::{Request, Response, Status};

/// Peers this node is cut off from (fault injection in test clusters; one node per process).
static BLOCKED: std::sync::RwLock<Vec<i32>> = std::sync::RwLock::new(Vec::new());

fn blocked(peer: i32) -> bool {
    BLOCKED.read().expect("lock").contains(&peer)
}

/// Raft messages queued per peer before new ones are dropped.
const QUEUE: usize = 65_536;
/// Most messages in one batch on the stream.
const BATCH: usize = 4_096;

/// A client of a peer's internal service; every call carries this cluster's credentials.
type Client = InternalClient<InterceptedService<Channel, Attach>>;

fn client(ch: Channel, auth: &Attach, max: usize) -> Client {
    InternalClient::with_interceptor(ch, auth.clone()).max_encoding_message_size(max).max_decoding_message_size(max)
}

pub struct GrpcPeers {
    cluster: String,
    auth: Attach,
    me: i32,
    queues: HashMap<i32, mpsc::Sender<pb::RaftEnvelope>>,
    channels: HashMap<i32, Channel>,
    max_message_bytes: usize,
}

fn channel(addr: &str, tls: Option<&ClientTlsConfig>) -> Result<Channel, String> {
    Ok(crate::tls::endpoint(addr, tls)
        .map_err(|e| format!("peer {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .tcp_nodelay(true)
        .connect_lazy())
}

impl GrpcPeers {
    /// `peers`: every other node's id and gRPC address; `secret`: the cluster secret; `tls`:
    /// this node's client side when the cluster runs TLS.
    pub fn start(cluster: &str, secret: &str, me: i32, peers: &[(i32, String)], max_message_bytes: usize, tls: Option<&ClientTlsConfig>) -> Result<Arc<GrpcPeers>, String> {
        let auth = Attach::new(cluster, secret);
        let mut queues = HashMap::new();
        let mut channels = HashMap::new();
        for (id, addr) in peers {
            let ch = channel(addr, tls)?;
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(send_loop(cluster.to_string(), me, *id, client(stream_channel(addr, tls)?, &auth, max_message_bytes), rx, max_message_bytes));
            queues.insert(*id, tx);
            channels.insert(*id, ch);
        }
        Ok(Arc::new(GrpcPeers { cluster: cluster.to_string(), auth, me, queues, channels, max_message_bytes }))
    }
}

/// Batches handed to one open Raft stream before the sender waits for the connection.
const STREAM_WINDOW: usize = 16;

/// The channel for a peer's Raft stream: no per-call timeout (the call lasts as long as the
/// connection); HTTP/2 keep-alive pings find a dead or frozen peer within a few seconds.
fn stream_channel(addr: &str, tls: Option<&ClientTlsConfig>) -> Result<Channel, String> {
    Ok(crate::tls::endpoint(addr, tls)
        .map_err(|e| format!("peer {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Sends everything queued for peer `to` over one long-lived client stream. Unlike one RPC
/// at a time, a batch never waits for the previous one's answer (under load that round trip
/// was a few milliseconds on every Raft hop); HTTP/2 keeps the batches in order, which
/// spares Raft the rejections and probes that reordered appends cause.
async fn send_loop(cluster: String, me: i32, to: i32, client: Client, mut rx: mpsc::Receiver<pb::RaftEnvelope>, max: usize) {
    let mut failing = false;
    let mut open: Option<(mpsc::Sender<pb::RaftBatch>, tokio::task::JoinHandle<Result<(), Status>>)> = None;
    while let Some(first) = rx.recv().await {
        let mut messages = vec![first];
        let mut bytes = messages[0].message.len();
        while messages.len() < BATCH && bytes < max / 2 {
            match rx.try_recv() {
                Ok(m) => {
                    bytes += m.message.len();
                    messages.push(m);
                }
                Err(_) => break,
            }
        }
        let n = messages.len();
        let batch = pb::RaftBatch { cluster_name: cluster.clone(), from_node: me, messages };
        let (tx, _) = open.get_or_insert_with(|| {
            let (tx, batches) = mpsc::channel(STREAM_WINDOW);
            let mut client = client.clone();
            let call = tokio::spawn(async move { client.raft(tokio_stream::wrappers::ReceiverStream::new(batches)).await.map(|_| ()) });
            (tx, call)
        });
        if tx.send(batch).await.is_ok() {
            if failing && tx.capacity() == STREAM_WINDOW {
                // The stream took a batch and has nothing waiting: the peer is reading.
                tracing::info!(peer = to, "peer reachable again");
                failing = false;
            }
            continue;
        }
        // The call ended (the peer went away, refused us, or the connection broke): what was
        // in flight is lost and Raft resends it. Open a new stream on the next batch.
        let (_, call) = open.take().expect("open stream");
        let error = match call.await {
            Ok(Ok(())) => "stream closed by the peer".to_string(),
            Ok(Err(e)) => e.message().to_string(),
            Err(e) => e.to_string(),
        };
        if !failing {
            tracing::warn!(peer = to, dropped = n, error = %error, "cannot reach peer; Raft will resend");
        }
        failing = true;
        // Do not spin on a dead peer: what queues meanwhile goes in the next call.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Transport for GrpcPeers {
    fn send(&self, group: u64, messages: Vec<raft::prelude::Message>) {
        for m in messages {
            let to = node_of(m.to);
            if blocked(to) {
                continue;
            }
            let Some(q) = self.queues.get(&to) else {
                tracing::warn!(to, group, "raft message for a node not in the cluster config");
                continue;
            };
            // Full queue: the peer is not keeping up; Raft resends.
            let _ = q.try_send(pb::RaftEnvelope { group, message: encode_message(&m).into() });
        }
    }
}

impl Peers for GrpcPeers {
    fn produce(&self, node: i32, req: ForwardedProduce) -> Pin<Box<dyn std::future::Future<Output = Result<ProduceAck, PartitionError>> + Send>> {
        let ch = self.channels.get(&node).cloned();
        let (cluster, max, auth) = (self.cluster.clone(), self.max_message_bytes, self.auth.clone());
        Box::pin(async move {
            if blocked(node) {
                return Err(PartitionError::NotLeader { leader: None });
            }
            let ch = ch.ok_or(PartitionError::NotLeader { leader: None })?;
            let mut client = client(ch, &auth, max);
            let call = pb::ProduceCall {
                cluster_name: cluster,
                topic: req.topic,
                partition: req.partition,
                batches: req.batches,
                acks: req.acks as i32,
                timeout_ms: req.timeout.as_millis().min(u32::MAX as u128) as u32,
            };
            // The leader answers within the timeout; a dead one is a moving leadership.
            let r = client.produce(call).await.map_err(|e| {
                tracing::debug!(node, error = %e.message(), "cannot pass a write on");
                PartitionError::NotLeader { leader: None }
            })?;
            produce_result(r.into_inner())
        })
    }

    fn forward(&self, node: i32, req: ControllerRequest) -> Pin<Box<dyn std::future::Future<Output = ControllerReply> + Send>> {
        let ch = self.channels.get(&node).cloned();
        let (cluster, max, me, auth) = (self.cluster.clone(), self.max_message_bytes, self.me, self.auth.clone());
        Box::pin(async move {
            if blocked(node) {
                return Err(AdminError::Unavailable(format!("node {node} is cut off (fault injection)")));
            }
            let ch = ch.ok_or_else(|| AdminError::Unavailable(format!("node {node} is not in the cluster config")))?;
            let mut client = client(ch, &auth, max);
            let call = pb::ControllerCall { cluster_name: cluster, request: serde_json::to_vec(&req).expect("request serializes").into() };
            let r = client.controller(call).await.map_err(|e| AdminError::Unavailable(format!("controller node {node} (asked by {me}): {}", e.message())))?;
            serde_json::from_slice::<ControllerReply>(&r.into_inner().result).map_err(|e| AdminError::Unavailable(format!("controller answer unreadable: {e}")))?
        })
    }
}

fn produce_result(r: pb::ProduceResult) -> Result<ProduceAck, PartitionError> {
    match r.error_code {
        0 => Ok(ProduceAck { base_offset: r.base_offset, log_start_offset: r.log_start_offset }),
        1 => Err(PartitionError::NotLeader { leader: (r.leader >= 0).then_some(r.leader) }),
        2 => Err(PartitionError::Busy),
        3 => Err(PartitionError::Timeout),
        4 => Err(PartitionError::UnknownTopicOrPartition),
        6 => Err(PartitionError::Storage(r.error)),
        _ => Err(PartitionError::CorruptRecord(r.error)),
    }
}

fn produce_reply(r: Result<ProduceAck, PartitionError>) -> pb::ProduceResult {
    let (error_code, leader) = match &r {
        Ok(_) => (0, -1),
        Err(PartitionError::NotLeader { leader }) => (1, leader.unwrap_or(-1)),
        // Storage trouble on the leader is worth a retry (elsewhere, once leadership moves).
        Err(PartitionError::Busy | PartitionError::Storage(_)) => (2, -1),
        Err(PartitionError::Timeout) => (3, -1),
        Err(PartitionError::UnknownTopicOrPartition) => (4, -1),
        Err(PartitionError::DiskFull { .. }) => (6, -1),
        Err(_) => (5, -1),
    };
    let (base_offset, log_start_offset) = r.as_ref().map(|a| (a.base_offset, a.log_start_offset)).unwrap_or((-1, -1));
    pb::ProduceResult { error_code, error: r.err().map(|e| e.to_string()).unwrap_or_default(), base_offset, log_start_offset, leader }
}

/// The server side of `Internal`.
#[derive(Clone)]
pub struct InternalApi {
    pub node: Arc<OnceLock<Node>>,
    pub cluster: String,
    pub allow_fault_injection: bool,
}

impl InternalApi {
    fn check(&self, cluster: &str) -> Result<Node, Status> {
        if cluster != self.cluster {
            return Err(Status::permission_denied(format!("this node belongs to cluster {:?}, not {cluster:?}", self.cluster)));
        }
        self.node.get().cloned().ok_or_else(|| Status::unavailable("node starting"))
    }
}

#[tonic::async_trait]
impl internal_server::Internal for InternalApi {
    async fn raft(&self, req: Request<tonic::Streaming<pb::RaftBatch>>) -> Result<Response<pb::RaftAck>, Status> {
        let mut batches = req.into_inner();
        while let Some(b) = batches.message().await? {
            let node = self.check(&b.cluster_name)?;
            if blocked(b.from_node) {
                return Err(Status::unavailable("cut off (fault injection)"));
            }
            for env in b.messages {
                match decode_message(&env.message) {
                    Ok(m) => node.deliver_raft(env.group, m),
                    Err(e) => return Err(Status::invalid_argument(format!("from node {}: {e}", b.from_node))),
                }
            }
        }
        Ok(Response::new(pb::RaftAck {}))
    }

    async fn inject_fault(&self, req: Request<pb::FaultRequest>) -> Result<Response<pb::FaultReply>, Status> {
        let f = req.into_inner();
        let node = self.check(&f.cluster_name)?;
        if !self.allow_fault_injection {
            return Err(Status::permission_denied("fault injection is off; set limits.allow_fault_injection = true (test clusters only)"));
        }
        if f.flush_delay_ms.is_some() || f.clock_offset_ms.is_some() {
            if let Some(ms) = f.flush_delay_ms {
                node.inject_flush_delay(Duration::from_millis(ms as u64));
            }
            if let Some(ms) = f.clock_offset_ms {
                node.inject_clock_offset(ms);
            }
            return Ok(Response::new(pb::FaultReply {}));
        }
        tracing::warn!(peers = ?f.blocked_peers, "fault injection: cut off from these peers");
        *BLOCKED.write().expect("lock") = f.blocked_peers;
        Ok(Response::new(pb::FaultReply {}))
    }

    async fn controller(&self, req: Request<pb::ControllerCall>) -> Result<Response<pb::ControllerResult>, Status> {
        let c = req.into_inner();
        let node = self.check(&c.cluster_name)?;
        let request: ControllerRequest = serde_json::from_slice(&c.request).map_err(|e| Status::invalid_argument(format!("controller request: {e}")))?;
        let result = node.execute(request).await;
        Ok(Response::new(pb::ControllerResult { result: serde_json::to_vec(&result).expect("result serializes").into() }))
    }

    async fn produce(&self, req: Request<pb::ProduceCall>) -> Result<Response<pb::ProduceResult>, Status> {
        let c = req.into_inner();
        let node = self.check(&c.cluster_name)?;
        let acks = i16::try_from(c.acks).map_err(|_| Status::invalid_argument(format!("acks {}", c.acks)))?;
        let req = ForwardedProduce { topic: c.topic, partition: c.partition, batches: c.batches, acks, timeout: Duration::from_millis(c.timeout_ms.clamp(1, 300_000) as u64) };
        // Only the leader writes: a node that lost leadership since says so, never passes on again.
        let r = match node.partition(&req.topic, req.partition) {
            None => Err(PartitionError::UnknownTopicOrPartition),
            Some(shared) => node.produce_local(&shared, req).await,
        };
        Ok(Response::new(produce_reply(r)))
    }
}
