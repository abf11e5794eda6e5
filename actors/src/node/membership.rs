//! The nodes' actor systems joined with ractor_cluster: membership and control, not data.
//!
//! Each node runs a ractor_cluster `NodeServer` (sessions authenticated with the cluster's
//! shared secret, Erlang's "cookie") and a node agent. A dialer connects the node to every
//! peer with a higher id that it has no session with (so two nodes never race to dial each
//! other) and does it again when a session drops: ractor_cluster does not reconnect by
//! itself. The agents join the process group [`NODES_GROUP`] and one group per node, and
//! monitor [`NODES_GROUP`]: when a session closes, ractor_cluster removes the remote agent
//! from the groups and every monitor hears it, which is how a node learns that another node's
//! actor system went away (remote monitoring). The view feeds ClusterStatus; who leads what
//! stays Raft's decision, and Raft messages and client data stay on gRPC.
//!
//! An agent answers [`AgentMsg::Describe`] over the session (a remote call through the
//! process group), which the tests use to prove the sessions carry messages. The controller
//! turns what its agent sees into `Liveness` records of the metadata log, so node liveness is
//! part of the replicated cluster metadata.

use super::Node;
use crate::supervisor::{ChildSpec, SupervisorMsg};
use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage, RactorClusterMessage};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Every node agent of the cluster.
pub const NODES_GROUP: &str = "backwaters.nodes";

/// The group only node `id`'s agent joins (how a remote agent is told apart).
pub fn node_group(id: i32) -> String {
    format!("backwaters.node.{id}")
}

/// How this node joins the actor cluster.
#[derive(Debug, Clone)]
pub struct ActorClusterSettings {
    /// Where the node server listens for sessions.
    pub listen: SocketAddr,
    /// The shared secret of node sessions.
    pub secret: String,
    /// The other nodes: id and session address.
    pub peers: Vec<(i32, String)>,
    /// Mutual TLS for the sessions (the cluster CA signs every node's certificate); none
    /// for plaintext sessions.
    pub tls: Option<SessionTls>,
}

/// Both ends of TLS node sessions: the acceptor asks every dialing node for a certificate
/// signed by the cluster CA, the connector checks the peer's against it.
#[derive(Clone)]
pub struct SessionTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for SessionTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionTls")
    }
}

/// Which nodes' agents this node sees in its process groups (itself included once joined).
pub type MemberView = Arc<RwLock<Members>>;

/// This node's view of the actor cluster.
#[derive(Default)]
pub struct Members {
    /// Node id -> whether this node has a session with it.
    pub present: BTreeMap<i32, bool>,
    /// Nodes that had a session and lost it (not those never seen yet, as at start-up).
    pub departed: std::collections::BTreeSet<i32>,
}

#[derive(RactorClusterMessage)]
pub enum AgentMsg {
    /// Who the node is: JSON with its id, zone and version.
    #[rpc]
    Describe(RpcReplyPort<String>),
}

#[derive(Clone)]
pub struct NodeAgent;

pub struct AgentArgs {
    pub node_id: i32,
    pub zone: String,
    pub members: Vec<i32>,
    pub view: MemberView,
}

pub struct AgentState {
    args: AgentArgs,
}

impl AgentState {
    /// Recomputes which node agents the process groups hold; logs what changed.
    fn refresh(&self) {
        let mut view = self.args.view.write().expect("member view");
        for id in &self.args.members {
            let present = !ractor::pg::get_members(&node_group(*id)).is_empty();
            let before = view.present.insert(*id, present);
            if present {
                view.departed.remove(id);
            } else if before == Some(true) {
                view.departed.insert(*id);
            }
            if *id != self.args.node_id && before != Some(present) {
                if present {
                    tracing::info!(node = id, "node joined the actor cluster");
                } else if before.is_some() {
                    tracing::warn!(node = id, "node left the actor cluster (its session closed)");
                }
            }
        }
    }
}

impl Actor for NodeAgent {
    type Msg = AgentMsg;
    type State = AgentState;
    type Arguments = AgentArgs;

    async fn pre_start(&self, me: ActorRef<AgentMsg>, args: AgentArgs) -> Result<AgentState, ActorProcessingErr> {
        ractor::pg::join(NODES_GROUP.to_string(), vec![me.get_cell()]);
        ractor::pg::join(node_group(args.node_id), vec![me.get_cell()]);
        ractor::pg::monitor(NODES_GROUP.to_string(), me.get_cell());
        let st = AgentState { args };
        st.refresh();
        Ok(st)
    }

    async fn post_stop(&self, me: ActorRef<AgentMsg>, st: &mut AgentState) -> Result<(), ActorProcessingErr> {
        ractor::pg::demonitor(NODES_GROUP.to_string(), me.get_id());
        *st.args.view.write().expect("member view") = Members::default();
        Ok(())
    }

    async fn handle(&self, _me: ActorRef<AgentMsg>, msg: AgentMsg, st: &mut AgentState) -> Result<(), ActorProcessingErr> {
        match msg {
            AgentMsg::Describe(reply) => {
                let about = serde_json::json!({ "node_id": st.args.node_id, "zone": st.args.zone, "version": env!("CARGO_PKG_VERSION") });
                let _ = reply.send(about.to_string());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(&self, _me: ActorRef<AgentMsg>, evt: SupervisionEvent, st: &mut AgentState) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ProcessGroupChanged(change) = evt {
            let group = match &change {
                GroupChangeMessage::Join(_, g, _) | GroupChangeMessage::Leave(_, g, _) => g.clone(),
            };
            if group == NODES_GROUP {
                st.refresh();
            }
        }
        Ok(())
    }
}

/// Logs node sessions as ractor_cluster reports them.
struct SessionLog;

impl NodeEventSubscription for SessionLog {
    fn node_session_opened(&self, s: ractor_cluster::node::NodeServerSessionInformation) {
        tracing::debug!(peer = %s.peer_addr, "node session opened");
    }
    fn node_session_disconnected(&self, s: ractor_cluster::node::NodeServerSessionInformation) {
        tracing::info!(peer = %s.peer_addr, name = ?s.peer_name.map(|n| n.name), "node session closed");
    }
    fn node_session_authenticated(&self, s: ractor_cluster::node::NodeServerSessionInformation) {
        tracing::info!(peer = %s.peer_addr, name = ?s.peer_name.map(|n| n.name), "node session authenticated");
    }
}

/// The session name of node `id` (ractor_cluster adds "@host").
fn session_name(id: i32) -> String {
    format!("backwaters-{id}")
}

impl Node {
    /// Joins the actor cluster: the node server and the agent under the root supervisor,
    /// the dialer as a service. The view is what [`Node::actor_cluster_view`] reports.
    pub async fn join_actor_cluster(&self, settings: ActorClusterSettings) -> Result<(), String> {
        let id = self.inner.settings.node_id;
        let server_name = format!("{}/actor-cluster", self.prefix());
        let (listen, secret) = (settings.listen, settings.secret.clone());
        let host = listen.ip().to_string();
        let n = server_name.clone();
        let acceptor = settings.tls.as_ref().map(|t| t.acceptor.clone());
        let server = ChildSpec {
            name: server_name.clone(),
            start: Arc::new(move |sup: ActorCell| {
                let (n, host, secret) = (n.clone(), host.clone(), secret.clone());
                let encryption = acceptor.clone().map(ractor_cluster::IncomingEncryptionMode::Tls);
                Box::pin(async move {
                    let server = NodeServer::new(listen.port(), secret, session_name(id), host, encryption, None).with_listen_addr(listen.ip());
                    Actor::spawn_linked(Some(n.clone()), server, (), sup).await.map(|(r, _)| r.get_cell()).map_err(|e| format!("starting {n}: {e}"))
                })
            }),
        };
        ractor::call!(self.inner.root, SupervisorMsg::StartChild, server).map_err(|e| e.to_string())??;

        let members: Vec<i32> = self.inner.settings.members().iter().map(|m| m.id).collect();
        let view = self.inner.member_view.clone();
        let zone = self.inner.settings.zone.clone();
        let agent = ChildSpec::new(format!("{}/node-agent", self.prefix()), NodeAgent, move || AgentArgs { node_id: id, zone: zone.clone(), members: members.clone(), view: view.clone() });
        ractor::call!(self.inner.root, SupervisorMsg::StartChild, agent).map_err(|e| e.to_string())??;

        let peers: Vec<(i32, String)> = settings.peers.into_iter().filter(|(p, _)| *p > id).collect();
        let connector = settings.tls.map(|t| t.connector);
        let run: crate::service::RunFn = Arc::new(move |stop| Box::pin(dial(id, server_name.clone(), peers.clone(), connector.clone(), stop)));
        self.start_service("actor-cluster-dialer", run, false).await?;

        let weak = self.downgrade();
        let run: crate::service::RunFn = Arc::new(move |stop| Box::pin(record_liveness(weak.clone(), stop)));
        self.start_service("liveness-recorder", run, false).await
    }

    /// Node id -> whether this node has a session with it (its agent is in the process
    /// groups here). Empty when the node is not in an actor cluster.
    pub fn actor_cluster_view(&self) -> BTreeMap<i32, bool> {
        self.inner.member_view.read().expect("member view").present.clone()
    }

    /// Nodes whose actor-cluster session closed (and has not come back): very likely dead,
    /// long before Raft's election timeout says so.
    pub fn departed_nodes(&self) -> std::collections::BTreeSet<i32> {
        self.inner.member_view.read().expect("member view").departed.clone()
    }
}

/// Checks in a row the controller's view must differ from the record before it writes.
const LIVENESS_CHECKS: u32 = 2;

/// On the controller, every second: when a node's presence in the actor cluster has differed
/// from what the metadata log records for [`LIVENESS_CHECKS`] checks, record it there, so
/// every node's replicated copy knows which nodes are up (ClusterStatus reports it).
async fn record_liveness(weak: super::WeakNode, mut stop: tokio::sync::watch::Receiver<bool>) -> Result<(), String> {
    let mut differing: BTreeMap<i32, u32> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return Ok(()),
        }
        let Some(node) = weak.upgrade() else { return Ok(()) };
        if node.controller_id() != Some(node.inner.settings.node_id) {
            differing.clear();
            continue;
        }
        let (seen, recorded) = (node.actor_cluster_view(), node.liveness());
        for (id, alive) in seen {
            if recorded.get(&id) == Some(&alive) {
                differing.remove(&id);
                continue;
            }
            let n = differing.entry(id).or_insert(0);
            *n += 1;
            if *n >= LIVENESS_CHECKS {
                match node.controller(crate::controller::ControllerRequest::Liveness { node: id, alive }).await {
                    Ok(()) => {
                        differing.remove(&id);
                    }
                    Err(e) => tracing::debug!(node = id, alive, error = %e, "liveness not recorded yet"),
                }
            }
        }
    }
}

/// Opens a session with the node at `addr` (HOST:PORT), over TLS when `tls` is set: the
/// peer's certificate must name HOST.
async fn connect(server: &ActorRef<NodeServerMessage>, addr: &str, tls: Option<&tokio_rustls::TlsConnector>) -> Result<(), String> {
    let Some(tls) = tls else {
        return ractor_cluster::client_connect(server, addr).await.map_err(|e| e.to_string());
    };
    let host = addr.rsplit_once(':').map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']')).unwrap_or(addr);
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| format!("{host} is no TLS server name: {e}"))?;
    ractor_cluster::client_connect_enc(server, addr, tls.clone(), name).await.map_err(|e| e.to_string())
}

/// How often the agent announces its groups again (in dialer rounds of a second).
const REANNOUNCE_ROUNDS: u32 = 5;

/// Every second: connect to each peer (with a higher id) that has no session. Every few
/// seconds the agent joins its groups again: ractor_cluster forwards every join to the
/// sessions, which heals a session that missed the agent in its first exchange (seen under
/// load: a session both sides had authenticated, one agent never announced).
async fn dial(me: i32, server_name: String, peers: Vec<(i32, String)>, tls: Option<tokio_rustls::TlsConnector>, mut stop: tokio::sync::watch::Receiver<bool>) -> Result<(), String> {
    let mut subscribed_to = None;
    let mut round = 0u32;
    loop {
        round = round.wrapping_add(1);
        if round % REANNOUNCE_ROUNDS == 0 {
            for agent in ractor::pg::get_local_members(&node_group(me)) {
                ractor::pg::join(NODES_GROUP.to_string(), vec![agent.clone()]);
                ractor::pg::join(node_group(me), vec![agent]);
            }
        }
        if let Some(server) = ractor::registry::where_is(server_name.clone()).map(ActorRef::<NodeServerMessage>::from) {
            if subscribed_to != Some(server.get_id()) {
                server.cast(NodeServerMessage::SubscribeToEvents { id: "backwaters-log".into(), subscription: Box::new(SessionLog) }).map_err(|e| e.to_string())?;
                subscribed_to = Some(server.get_id());
            }
            let sessions = ractor::call_t!(server, NodeServerMessage::GetSessions, 1000).unwrap_or_default();
            for (peer, addr) in &peers {
                let name = session_name(*peer);
                // Only a session that got through the handshake (it has the peer's name)
                // counts: one stuck before it (seen on a loaded machine) would otherwise
                // keep the nodes apart for good. ractor_cluster keeps one of duplicates.
                let connected = sessions.values().any(|s| s.peer_name.as_ref().is_some_and(|n| n.name.split('@').next() == Some(name.as_str())));
                if !connected {
                    if let Err(e) = connect(&server, addr, tls.as_ref()).await {
                        tracing::debug!(peer, %addr, error = %e, "no node session yet");
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
}
