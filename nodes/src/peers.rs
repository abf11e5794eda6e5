//! Node-to-node traffic over gRPC (`backwaters.v1.Internal`): Raft messages and requests
//! forwarded to the controller.
//!
//! Raft messages are queued per destination node (a bounded queue: when a peer is slow or
//! gone, what does not fit is dropped and Raft resends) and one task per peer sends whatever
//! is queued as one RPC: under load many groups' messages share each call.

use backwaters_actors::controller::{ControllerReply, ControllerRequest};
use backwaters_actors::node::{AdminError, Node, Peers};
use backwaters_actors::replica::{decode_message, encode_message, node_of, Transport};
use backwaters_proto::grpc::v1::{self as pb, internal_client::InternalClient, internal_server};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

/// Raft messages queued per peer before new ones are dropped.
const QUEUE: usize = 65_536;
/// Most messages in one RPC.
const BATCH: usize = 4_096;

pub struct GrpcPeers {
    cluster: String,
    me: i32,
    queues: HashMap<i32, mpsc::Sender<pb::RaftEnvelope>>,
    channels: HashMap<i32, Channel>,
    max_message_bytes: usize,
}

fn channel(addr: &str) -> Result<Channel, String> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("peer address {addr}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .tcp_nodelay(true)
        .connect_lazy())
}

impl GrpcPeers {
    /// `peers`: every other node's id and gRPC address.
    pub fn start(cluster: &str, me: i32, peers: &[(i32, String)], max_message_bytes: usize) -> Result<Arc<GrpcPeers>, String> {
        let mut queues = HashMap::new();
        let mut channels = HashMap::new();
        for (id, addr) in peers {
            let ch = channel(addr)?;
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(send_loop(cluster.to_string(), me, *id, ch.clone(), rx, max_message_bytes));
            queues.insert(*id, tx);
            channels.insert(*id, ch);
        }
        Ok(Arc::new(GrpcPeers { cluster: cluster.to_string(), me, queues, channels, max_message_bytes }))
    }
}

async fn send_loop(cluster: String, me: i32, to: i32, ch: Channel, mut rx: mpsc::Receiver<pb::RaftEnvelope>, max: usize) {
    let mut client = InternalClient::new(ch).max_encoding_message_size(max).max_decoding_message_size(max);
    let mut failing = false;
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
        match client.raft(pb::RaftBatch { cluster_name: cluster.clone(), from_node: me, messages }).await {
            Ok(_) => {
                if failing {
                    tracing::info!(peer = to, "peer reachable again");
                }
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(peer = to, dropped = n, error = %e.message(), "cannot reach peer; Raft will resend");
                }
                failing = true;
                // Do not spin on a dead peer: what queues meanwhile goes in the next call.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Transport for GrpcPeers {
    fn send(&self, group: u64, messages: Vec<raft::prelude::Message>) {
        for m in messages {
            let to = node_of(m.to);
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
    fn forward(&self, node: i32, req: ControllerRequest) -> Pin<Box<dyn std::future::Future<Output = ControllerReply> + Send>> {
        let ch = self.channels.get(&node).cloned();
        let (cluster, max, me) = (self.cluster.clone(), self.max_message_bytes, self.me);
        Box::pin(async move {
            let ch = ch.ok_or_else(|| AdminError::Unavailable(format!("node {node} is not in the cluster config")))?;
            let mut client = InternalClient::new(ch).max_encoding_message_size(max).max_decoding_message_size(max);
            let call = pb::ControllerCall { cluster_name: cluster, request: serde_json::to_vec(&req).expect("request serializes").into() };
            let r = client.controller(call).await.map_err(|e| AdminError::Unavailable(format!("controller node {node} (asked by {me}): {}", e.message())))?;
            serde_json::from_slice::<ControllerReply>(&r.into_inner().result).map_err(|e| AdminError::Unavailable(format!("controller answer unreadable: {e}")))?
        })
    }
}

/// The server side of `Internal`.
#[derive(Clone)]
pub struct InternalApi {
    pub node: Arc<OnceLock<Node>>,
    pub cluster: String,
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
    async fn raft(&self, req: Request<pb::RaftBatch>) -> Result<Response<pb::RaftAck>, Status> {
        let b = req.into_inner();
        let node = self.check(&b.cluster_name)?;
        for env in b.messages {
            match decode_message(&env.message) {
                Ok(m) => node.deliver_raft(env.group, m),
                Err(e) => return Err(Status::invalid_argument(format!("from node {}: {e}", b.from_node))),
            }
        }
        Ok(Response::new(pb::RaftAck {}))
    }

    async fn controller(&self, req: Request<pb::ControllerCall>) -> Result<Response<pb::ControllerResult>, Status> {
        let c = req.into_inner();
        let node = self.check(&c.cluster_name)?;
        let request: ControllerRequest = serde_json::from_slice(&c.request).map_err(|e| Status::invalid_argument(format!("controller request: {e}")))?;
        let result = node.execute(request).await;
        Ok(Response::new(pb::ControllerResult { result: serde_json::to_vec(&result).expect("result serializes").into() }))
    }
}
