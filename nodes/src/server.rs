//! Runs one node: binds its listeners (a taken port is a clear error before anything starts),
//! starts the node's supervision tree, puts the listeners under it, and waits for Ctrl-C.

use crate::config::{split_host_port, ClusterConfig, NodeConfig};
use crate::kafka::{BrokerInfo, KafkaCtx};
use backwaters_actors::controller::Member;
use backwaters_actors::node::{Node, NodeSettings};
use backwaters_actors::service::RunFn;
use std::net::TcpListener;
use std::sync::Arc;

fn bind(what: &str, addr: &str) -> Result<TcpListener, String> {
    let l = TcpListener::bind(addr).map_err(|e| format!("cannot listen for {what} on {addr}: {e} (is another node running? pick another port in the config)"))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(l)
}

/// A running node with its listeners.
pub struct Running {
    pub node: Node,
    pub kafka_addr: String,
    pub grpc_addr: String,
    pub metrics_addr: Option<String>,
    /// Ingest listeners: (kind, bound address, topic).
    pub ingest: Vec<(String, String, String)>,
}

/// Starts node `id` of `cluster`.
pub async fn start(cluster: &ClusterConfig, id: i32) -> Result<Running, String> {
    let nc: &NodeConfig = cluster.node(id)?;
    let kafka_l = bind("Kafka", &nc.kafka)?;
    let grpc_l = bind("gRPC", &nc.grpc)?;
    let metrics_l = nc.metrics.as_deref().map(|a| bind("metrics", a)).transpose()?;
    let kafka_addr = kafka_l.local_addr().map_err(|e| e.to_string())?.to_string();
    let grpc_addr = grpc_l.local_addr().map_err(|e| e.to_string())?.to_string();
    let metrics_addr = metrics_l.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.to_string());
    let advertised = nc.advertised_kafka.clone().unwrap_or_else(|| kafka_addr.clone());
    let (host, port) = split_host_port(&advertised)?;
    let settings = NodeSettings {
        node_id: nc.id,
        cluster_name: cluster.cluster_name.clone(),
        zone: nc.zone.clone(),
        data_dir: nc.data_dir.clone(),
        auto_create_topics: cluster.defaults.auto_create_topics,
        default_partitions: cluster.defaults.partitions,
        default_replication_factor: cluster.defaults.replication_factor(cluster.nodes.len()),
        retention_check_ms: cluster.limits.retention_check_ms,
        groups: cluster.groups.settings(),
        raft_tick_ms: cluster.limits.raft_tick_ms,
        leader_rebalance_ms: cluster.limits.leader_rebalance_ms,
        metadata_checkpoint_records: cluster.limits.metadata_checkpoint_records,
        min_free_disk_bytes: nc.min_free_disk_bytes.unwrap_or(cluster.limits.min_free_disk_bytes),
        store_cache_bytes: cluster.limits.store_cache_bytes,
        transactional_id_expiration_ms: cluster.limits.transactional_id_expiration_ms,
        members: cluster.nodes.iter().map(|n| Member { id: n.id, zone: n.zone.clone() }).collect(),
    };
    // Authenticates node-to-node gRPC calls and actor-cluster sessions.
    let secret = cluster.cluster_secret.clone().unwrap_or_else(|| {
        if cluster.nodes.len() > 1 {
            tracing::warn!("cluster_secret is not set: nodes authenticate each other with the cluster name, which is no secret");
        }
        cluster.cluster_name.clone()
    });
    // TLS files are read and checked before anything starts.
    let tls = cluster.node_tls(nc.id)?;
    let others: Vec<(i32, String)> = cluster.nodes.iter().filter(|n| n.id != nc.id).map(|n| (n.id, n.advertised_grpc.clone().unwrap_or_else(|| n.grpc.clone()))).collect();
    let peers = crate::peers::GrpcPeers::start(&cluster.cluster_name, &secret, nc.id, &others, cluster.limits.grpc_max_message_bytes, tls.as_ref().map(|t| t.grpc_client()).as_ref())?;
    let node = Node::start_with(settings, Arc::new(backwaters_actors::SystemClock), peers).await?;
    let sasl = cluster.sasl.as_ref().map(|c| crate::sasl::Authenticator::new(c, node.clone()).map(Arc::new)).transpose()?;
    let access = Arc::new(crate::access::Access::new(node.clone(), cluster.authorization.as_ref().map(Into::into), sasl.clone(), &cluster.cluster_name, &secret));
    // Ingest first: once the Kafka port answers, every listener of the node is up.
    let ingest_addrs = crate::ingest::start(&node, &nc.ingest, &access).await?;
    let ingest = nc.ingest.iter().zip(ingest_addrs).map(|(c, a)| (c.kind.name().to_string(), a, c.topic.clone())).collect();

    let mut brokers = Vec::new();
    for n in &cluster.nodes {
        let (host, port) = split_host_port(n.advertised_kafka.as_deref().unwrap_or(&n.kafka))?;
        brokers.push(BrokerInfo { node_id: n.id, host, port, rack: Some(n.zone.clone()) });
    }
    let me = BrokerInfo { node_id: nc.id, host, port, rack: Some(nc.zone.clone()) };
    // This node as it is bound (a port of 0 in the config is only known now).
    if let Some(b) = brokers.iter_mut().find(|b| b.node_id == nc.id) {
        *b = me.clone();
    }
    let ctx = Arc::new(KafkaCtx { node: node.clone(), broker: me, brokers, max_frame_bytes: cluster.limits.max_frame_bytes, idle_timeout: (cluster.limits.kafka_idle_timeout_ms > 0).then(|| std::time::Duration::from_millis(cluster.limits.kafka_idle_timeout_ms)), sasl, authz: cluster.authorization.as_ref().map(Into::into), throttler: Default::default() });
    let max_conn = cluster.limits.max_connections;
    let kafka_l = Arc::new(kafka_l);
    let kafka_tls = match (&tls, &cluster.tls) {
        (Some(t), Some(c)) if c.kafka => Some(t.kafka(c.kafka_client_auth)?),
        _ => None,
    };
    let run: RunFn = Arc::new(move |stop| {
        let (ctx, l, tls) = (ctx.clone(), kafka_l.clone(), kafka_tls.clone());
        Box::pin(async move { crate::kafka::serve(ctx, l.try_clone().map_err(|e| e.to_string())?, max_conn, tls, stop).await })
    });
    node.start_service("kafka", run, true).await?;

    let grpc_l = Arc::new(grpc_l);
    let (n, max_msg) = (node.clone(), cluster.limits.grpc_max_message_bytes);
    let addrs = (advertised.clone(), grpc_addr.clone());
    let (cluster_name, grpc_secret) = (cluster.cluster_name.clone(), secret.clone());
    let others: Arc<Vec<backwaters_proto::grpc::v1::NodeStatus>> = Arc::new(
        cluster
            .nodes
            .iter()
            .filter(|n| n.id != nc.id)
            .map(|n| backwaters_proto::grpc::v1::NodeStatus {
                node_id: n.id,
                zone: n.zone.clone(),
                kafka_address: n.advertised_kafka.clone().unwrap_or_else(|| n.kafka.clone()),
                grpc_address: n.advertised_grpc.clone().unwrap_or_else(|| n.grpc.clone()),
                alive: false,
                actors: vec![],
                in_actor_cluster: false,
                recorded: String::new(),
            })
            .collect(),
    );
    let faults = cluster.limits.allow_fault_injection;
    let grpc_tls = tls.clone();
    let run: RunFn = Arc::new(move |stop| {
        let (n, l, addrs, others, cluster_name, secret, tls, auth) = (n.clone(), grpc_l.clone(), addrs.clone(), others.clone(), cluster_name.clone(), grpc_secret.clone(), grpc_tls.clone(), access.clone());
        Box::pin(async move { crate::grpc::serve(n, l.try_clone().map_err(|e| e.to_string())?, max_msg, addrs, others, cluster_name, secret, faults, tls, auth, stop).await })
    });
    node.start_service("grpc", run, true).await?;

    if let Some(a) = &nc.actors {
        let listen: std::net::SocketAddr = a.parse().map_err(|_| format!("actors: {a:?} is not HOST:PORT"))?;
        // ractor_cluster binds in its own actor; find out now if the port is taken.
        drop(bind("actor-cluster", a)?);
        let peers = cluster.nodes.iter().filter(|n| n.id != nc.id).filter_map(|n| n.actors.clone().map(|a| (n.id, a))).collect();
        let tls = tls.as_ref().map(|t| t.sessions()).transpose()?;
        node.join_actor_cluster(backwaters_actors::node::membership::ActorClusterSettings { listen, secret, peers, tls }).await?;
    }

    if let Some(l) = metrics_l {
        let l = Arc::new(l);
        let n = node.clone();
        let run: RunFn = Arc::new(move |stop| {
            let (n, l) = (n.clone(), l.clone());
            Box::pin(async move { crate::http::serve(n, l.try_clone().map_err(|e| e.to_string())?, stop).await })
        });
        node.start_service("http", run, true).await?;
    }
    tracing::info!(node = nc.id, zone = %nc.zone, kafka = %kafka_addr, grpc = %grpc_addr, metrics = ?metrics_addr, tls = cluster.tls.is_some(), "node is serving");
    Ok(Running { node, kafka_addr, grpc_addr, metrics_addr, ingest })
}

/// Waits for Ctrl-C / SIGTERM (or the node failing), then stops cleanly.
pub async fn run_until_stopped(r: Running) -> Result<(), String> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
    let failed = tokio::select! {
        _ = tokio::signal::ctrl_c() => false,
        _ = term.recv() => false,
        _ = r.node.wait_stopped() => true,
    };
    if failed {
        return Err("the node's root supervisor stopped after repeated failures; see the log above".into());
    }
    eprintln!("stopping...");
    r.node.shutdown().await;
    Ok(())
}
