//! The cluster config file (TOML). Every mistake is reported with the field it is in.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub cluster_name: String,
    /// Shared secret of the nodes' actor-cluster sessions (ractor_cluster's cookie). Nodes
    /// with another secret are refused. Defaults to the cluster name, which is no secret:
    /// set one wherever the session ports are reachable by others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_secret: Option<String>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub groups: Groups,
    /// TLS on every gRPC port and between nodes (see `tls.rs`); absent: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// SASL on the Kafka listeners (see `sasl.rs`); absent: clients need no login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<crate::sasl::SaslConfig>,
    /// Kafka requests checked against ACLs (see `kafka/authz.rs`); absent: all allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<crate::kafka::authz::AuthzConfig>,
    pub nodes: Vec<NodeConfig>,
}

/// The cluster's TLS files (PEM). Relative paths are taken from the config file's folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The cluster CA: every node's certificate must be signed by it, and nodes trust
    /// nothing else.
    pub ca: PathBuf,
    /// Certificate and key of the nodes that have no `tls_cert` / `tls_key` of their own
    /// (one certificate naming every node's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The Kafka listeners speak TLS too (clients: security.protocol=SSL, ssl.ca.location =
    /// the CA).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kafka: bool,
    /// Kafka clients must show a certificate signed by the CA (Kafka's
    /// ssl.client.auth=required). Needs `kafka = true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kafka_client_auth: bool,
    /// gRPC clients (the shell, API clients) must show a certificate signed by the CA;
    /// without it the public gRPC API only needs the CA to connect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grpc_client_auth: bool,
}

/// Consumer-group coordination (Kafka's offsets.* and group.* broker settings).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Groups {
    /// Partitions of `__consumer_offsets`; fixed once the topic exists (groups hash to them).
    pub offsets_topic_partitions: i32,
    /// How long an empty group's committed offsets are kept (Kafka: offsets.retention.minutes).
    pub offsets_retention_ms: i64,
    /// How long the first rebalance of an empty group waits for more members.
    pub initial_rebalance_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// Most members one group may have.
    pub max_size: usize,
    /// Consumer protocol (KIP-848): a member silent this long is removed.
    pub consumer_session_timeout_ms: i32,
    /// Consumer protocol: how often members heartbeat (how soon they see a new assignment).
    pub consumer_heartbeat_interval_ms: i32,
}

impl Default for Groups {
    fn default() -> Self {
        let d = backwaters_actors::group::GroupSettings::default();
        Groups {
            offsets_topic_partitions: d.offsets_topic_partitions,
            offsets_retention_ms: d.offsets_retention_ms,
            initial_rebalance_delay_ms: d.limits.initial_rebalance_delay_ms,
            min_session_timeout_ms: d.limits.min_session_timeout_ms,
            max_session_timeout_ms: d.limits.max_session_timeout_ms,
            max_size: d.limits.max_size,
            consumer_session_timeout_ms: d.limits.consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: d.limits.consumer_heartbeat_interval_ms,
        }
    }
}

impl Groups {
    pub fn settings(&self) -> backwaters_actors::group::GroupSettings {
        backwaters_actors::group::GroupSettings {
            offsets_topic_partitions: self.offsets_topic_partitions,
            offsets_retention_ms: self.offsets_retention_ms,
            limits: backwaters_actors::group::state::GroupLimits {
                min_session_timeout_ms: self.min_session_timeout_ms,
                max_session_timeout_ms: self.max_session_timeout_ms,
                initial_rebalance_delay_ms: self.initial_rebalance_delay_ms,
                max_size: self.max_size,
                consumer_session_timeout_ms: self.consumer_session_timeout_ms,
                consumer_heartbeat_interval_ms: self.consumer_heartbeat_interval_ms,
            },
        }
    }

    fn validate(&self) -> Result<(), String> {
        if !(1..=1_000).contains(&self.offsets_topic_partitions) {
            return Err(format!("groups.offsets_topic_partitions: {} must be between 1 and 1000", self.offsets_topic_partitions));
        }
        if self.offsets_retention_ms < 60_000 {
            return Err(format!("groups.offsets_retention_ms: {} must be at least 60000 (one minute)", self.offsets_retention_ms));
        }
        if !(0..=300_000).contains(&self.initial_rebalance_delay_ms) {
            return Err(format!("groups.initial_rebalance_delay_ms: {} must be between 0 and 300000", self.initial_rebalance_delay_ms));
        }
        if self.min_session_timeout_ms < 1 || self.min_session_timeout_ms > self.max_session_timeout_ms {
            return Err(format!("groups.min_session_timeout_ms: {} must be at least 1 and at most max_session_timeout_ms ({})", self.min_session_timeout_ms, self.max_session_timeout_ms));
        }
        if self.max_size == 0 {
            return Err("groups.max_size: must be at least 1".into());
        }
        if self.consumer_heartbeat_interval_ms < 100 || self.consumer_heartbeat_interval_ms >= self.consumer_session_timeout_ms {
            return Err(format!("groups.consumer_heartbeat_interval_ms: {} must be at least 100 and below consumer_session_timeout_ms ({})", self.consumer_heartbeat_interval_ms, self.consumer_session_timeout_ms));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    pub partitions: i32,
    /// Unset: 3, or the number of nodes when there are fewer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i16>,
    pub auto_create_topics: bool,
}

impl Defaults {
    /// Replication factor of topics created without one: as set, else 3 (one replica per
    /// zone), or every node of a smaller cluster.
    pub fn replication_factor(&self, nodes: usize) -> i16 {
        self.replication_factor.unwrap_or_else(|| nodes.min(3) as i16)
    }
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { partitions: 1, replication_factor: None, auto_create_topics: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest Kafka request frame, refused before it is buffered (Kafka: socket.request.max.bytes).
    pub max_frame_bytes: usize,
    pub max_connections: usize,
    /// A Kafka connection with nothing to read or answer for this long is closed, in ms
    /// (Kafka: connections.max.idle.ms); 0 keeps idle connections forever.
    pub kafka_idle_timeout_ms: u64,
    /// How often retention runs, in ms.
    pub retention_check_ms: u64,
    /// Largest gRPC message accepted.
    pub grpc_max_message_bytes: usize,
    /// Length of one Raft tick in ms: a leader heartbeats every 2 ticks, followers stand for
    /// election after 10-20 ticks without one.
    pub raft_tick_ms: u64,
    /// How long a preferred replica must have been caught up before leadership goes back to
    /// it, in ms.
    pub leader_rebalance_ms: u64,
    /// The controller checkpoints the metadata log (writes the live state again and deletes
    /// what came before) once the log holds this many records and four times the live
    /// state; 0 never does.
    pub metadata_checkpoint_records: u64,
    /// Writes are refused (KAFKA_STORAGE_ERROR, which clients retry) while the file system of
    /// a node's data folder has less free space than this, in bytes; 0 never refuses.
    pub min_free_disk_bytes: u64,
    /// Memory for each node's store page cache (sled), in bytes: the B-tree pages of
    /// recent writes and reads stay there. At least 16 MiB.
    pub store_cache_bytes: u64,
    /// A transactional id with no transaction for this long is forgotten (Kafka's
    /// `transactional.id.expiration.ms`, 7 days); its next producer starts with a new
    /// producer id. At least one second.
    pub transactional_id_expiration_ms: i64,
    /// Test clusters only: accept `Internal.InjectFault` (cut this node off from chosen
    /// peers, for chaos runs without root or iptables).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_fault_injection: bool,
}

/// Room kept free on a node's disk by default: sled needs space to finish a segment and to
/// clean; a write that fails on a full disk costs the whole store until the node restarts.
pub const DEFAULT_MIN_FREE_DISK_BYTES: u64 = 512 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits { max_frame_bytes: backwaters_proto::kafka::frame::DEFAULT_MAX_FRAME_BYTES, max_connections: 10_000, kafka_idle_timeout_ms: 600_000, retention_check_ms: 5_000, grpc_max_message_bytes: 64 * 1024 * 1024, raft_tick_ms: 100, leader_rebalance_ms: 10_000, metadata_checkpoint_records: 50_000, min_free_disk_bytes: DEFAULT_MIN_FREE_DISK_BYTES, store_cache_bytes: backwaters_storage::store::DEFAULT_CACHE_BYTES, transactional_id_expiration_ms: backwaters_actors::txn::DEFAULT_ID_EXPIRATION_MS, allow_fault_injection: false }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: i32,
    pub zone: String,
    /// Kafka listen address.
    pub kafka: String,
    /// Address clients are told to connect to (defaults to `kafka`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_kafka: Option<String>,
    pub grpc: String,
    /// Address the other nodes use for this node's gRPC (defaults to `grpc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_grpc: Option<String>,
    /// Prometheus metrics and health over HTTP (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// Actor-cluster (ractor_cluster) session address, HOST:PORT: node sessions for
    /// membership, process groups and remote monitoring. Set on every node or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actors: Option<String>,
    /// Relative paths are taken from the config file's folder.
    pub data_dir: PathBuf,
    /// Overrides `limits.min_free_disk_bytes` for this node (a node with a smaller or
    /// shared disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_free_disk_bytes: Option<u64>,
    /// Syslog, RELP and HTTP listeners of this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingest: Vec<crate::ingest::config::IngestConfig>,
    /// This node's certificate and key (PEM) when `[tls]` is set; they must name the host
    /// of its gRPC and actors addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl ClusterConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<ClusterConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let mut c: ClusterConfig = toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for n in &mut c.nodes {
            rebase(&mut n.data_dir);
            let ingest = n.ingest.iter_mut().flat_map(|l| [l.tls_cert.as_mut(), l.tls_key.as_mut(), l.tls_client_ca.as_mut()]);
            ingest.chain([n.tls_cert.as_mut(), n.tls_key.as_mut()]).flatten().for_each(rebase);
        }
        if let Some(t) = &mut c.tls {
            [Some(&mut t.ca), t.cert.as_mut(), t.key.as_mut()].into_iter().flatten().for_each(rebase);
        }
        if let Some(s) = &mut c.sasl {
            s.users.iter_mut().filter_map(|u| u.password_file.as_mut()).for_each(rebase);
        }
        c.validate().map_err(|e| format!("config {}: {e}", path.display()))?;
        Ok(c)
    }

    /// Checks the whole config, naming the first wrong field.
    pub fn validate(&self) -> Result<(), String> {
        if self.cluster_name.trim().is_empty() {
            return Err("cluster_name: must not be empty".into());
        }
        if self.nodes.is_empty() {
            return Err("nodes: at least one [[nodes]] entry is needed".into());
        }
        if self.defaults.partitions < 1 {
            return Err(format!("defaults.partitions: {} must be at least 1", self.defaults.partitions));
        }
        if let Some(rf) = self.defaults.replication_factor {
            if rf < 1 || rf as usize > self.nodes.len() {
                return Err(format!("defaults.replication_factor: {rf} must be between 1 and the number of nodes ({})", self.nodes.len()));
            }
        }
        if self.limits.max_frame_bytes < 1024 || self.limits.max_frame_bytes > i32::MAX as usize {
            return Err(format!("limits.max_frame_bytes: {} must be between 1024 and {}", self.limits.max_frame_bytes, i32::MAX));
        }
        if self.limits.max_connections == 0 {
            return Err("limits.max_connections: must be at least 1".into());
        }
        if self.limits.transactional_id_expiration_ms < 1000 {
            return Err(format!("limits.transactional_id_expiration_ms: {} is below the one-second minimum", self.limits.transactional_id_expiration_ms));
        }
        if self.limits.store_cache_bytes < 16 << 20 {
            return Err(format!("limits.store_cache_bytes: {} is below the 16 MiB minimum", self.limits.store_cache_bytes));
        }
        self.groups.validate()?;
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        let mut dirs = BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let at = format!("nodes[{i}]");
            if n.id < 0 {
                return Err(format!("{at}.id: {} must not be negative", n.id));
            }
            if !ids.insert(n.id) {
                return Err(format!("{at}.id: {} is used by two nodes", n.id));
            }
            if n.zone.trim().is_empty() {
                return Err(format!("{at}.zone: must not be empty (e.g. east, central, west)"));
            }
            for (field, addr) in [("kafka", Some(&n.kafka)), ("grpc", Some(&n.grpc)), ("metrics", n.metrics.as_ref()), ("actors", n.actors.as_ref())] {
                let Some(addr) = addr else { continue };
                let parsed: SocketAddr = addr.parse().map_err(|_| format!("{at}.{field}: {addr:?} is not HOST:PORT with an IP address (e.g. 127.0.0.1:9092)"))?;
                if !addrs.insert(parsed) {
                    return Err(format!("{at}.{field}: {addr} is used twice"));
                }
                if field == "actors" && parsed.port() == 0 {
                    return Err(format!("{at}.actors: {addr}: the other nodes dial this address, so it needs a fixed port"));
                }
            }
            if n.actors.is_some() != self.nodes[0].actors.is_some() {
                return Err(format!("{at}.actors: set it on every node or on none (nodes[0] {} one)", if self.nodes[0].actors.is_some() { "has" } else { "has no" }));
            }
            if let Some(a) = &n.advertised_kafka {
                split_host_port(a).map_err(|e| format!("{at}.advertised_kafka: {e}"))?;
            }
            let mut udp = BTreeSet::new();
            for (j, l) in n.ingest.iter().enumerate() {
                let at = format!("{at}.ingest[{j}]");
                l.validate().map_err(|e| format!("{at}.{e}"))?;
                let parsed: SocketAddr = l.listen.parse().expect("validated");
                let fresh = if l.kind == crate::ingest::config::Kind::SyslogUdp { udp.insert(parsed) } else { addrs.insert(parsed) };
                if !fresh && parsed.port() != 0 {
                    return Err(format!("{at}.listen: {} is used twice", l.listen));
                }
            }
            if !dirs.insert(n.data_dir.clone()) {
                return Err(format!("{at}.data_dir: {} is used by two nodes", n.data_dir.display()));
            }
            self.check_node_tls(&at, n)?;
        }
        if let Some(t) = &self.tls {
            if t.cert.is_some() != t.key.is_some() {
                return Err(format!("tls.{}: set cert and key together", if t.cert.is_some() { "key" } else { "cert" }));
            }
            if t.kafka_client_auth && !t.kafka {
                return Err("tls.kafka_client_auth: needs kafka = true (client certificates are asked for on TLS Kafka listeners)".into());
            }
        }
        if let Some(s) = &self.sasl {
            s.validate()?;
        }
        if let Some(a) = &self.authorization {
            a.validate()?;
            let client_certs = self.tls.as_ref().is_some_and(|t| t.kafka_client_auth);
            if self.sasl.is_none() && !client_certs {
                return Err("authorization: needs [sasl] or [tls] kafka_client_auth = true: ACLs name users (SASL users or client certificate subjects); otherwise every client is User:ANONYMOUS".into());
            }
        }
        Ok(())
    }

    fn check_node_tls(&self, at: &str, n: &NodeConfig) -> Result<(), String> {
        if n.tls_cert.is_some() != n.tls_key.is_some() {
            return Err(format!("{at}.{}: set tls_cert and tls_key together", if n.tls_cert.is_some() { "tls_key" } else { "tls_cert" }));
        }
        match &self.tls {
            None if n.tls_cert.is_some() => Err(format!("{at}.tls_cert: needs a [tls] section naming the cluster CA (ca = \"ca.pem\")")),
            Some(t) if n.tls_cert.is_none() && t.cert.is_none() => Err(format!("{at}.tls_cert: the node has no certificate: set tls_cert and tls_key, or cert and key in [tls]")),
            _ => Ok(()),
        }
    }

    /// Node `id`'s TLS files, read and checked, when the cluster has `[tls]`.
    pub fn node_tls(&self, id: i32) -> Result<Option<crate::tls::NodeTls>, String> {
        let Some(t) = &self.tls else { return Ok(None) };
        let i = self.nodes.iter().position(|n| n.id == id).ok_or_else(|| format!("no node {id}"))?;
        let n = &self.nodes[i];
        let (cert_field, key_field) = (format!("nodes[{i}].tls_cert"), format!("nodes[{i}].tls_key"));
        let (cert, key) = match (&n.tls_cert, &n.tls_key, &t.cert, &t.key) {
            (Some(c), Some(k), _, _) => ((cert_field.as_str(), c.as_path()), (key_field.as_str(), k.as_path())),
            (_, _, Some(c), Some(k)) => (("tls.cert", c.as_path()), ("tls.key", k.as_path())),
            _ => return Err(format!("{cert_field}: the node has no certificate")),
        };
        let mut tls = crate::tls::NodeTls::load(crate::tls::TlsPaths { ca: ("tls.ca", &t.ca), cert, key })?;
        tls.grpc_client_auth = t.grpc_client_auth;
        // The hosts the other nodes dial: a certificate that does not name them would only
        // show up as failed handshakes, on the other nodes.
        let mut hosts = Vec::new();
        let grpc = (if n.advertised_grpc.is_some() { "advertised_grpc" } else { "grpc" }, n.advertised_grpc.as_ref().unwrap_or(&n.grpc));
        // With TLS Kafka listeners, clients check the advertised Kafka host too.
        let kafka = t.kafka.then(|| (if n.advertised_kafka.is_some() { "advertised_kafka" } else { "kafka" }, n.advertised_kafka.as_ref().unwrap_or(&n.kafka)));
        for (field, addr) in [Some(grpc), n.actors.as_ref().map(|a| ("actors", a)), kafka].into_iter().flatten() {
            let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h).trim_matches(|c| c == '[' || c == ']');
            hosts.push((format!("nodes[{i}].{field}"), host.to_string()));
        }
        tls.check_names(cert.0, &hosts)?;
        Ok(Some(tls))
    }

    pub fn node(&self, id: i32) -> Result<&NodeConfig, String> {
        self.nodes.iter().find(|n| n.id == id).ok_or_else(|| {
            format!("--node {id}: the config has no such node; it has {}", self.nodes.iter().map(|n| n.id.to_string()).collect::<Vec<_>>().join(", "))
        })
    }
}

/// Splits "host:port".
pub fn split_host_port(s: &str) -> Result<(String, i32), String> {
    let (h, p) = s.rsplit_once(':').ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    let port: u16 = p.parse().map_err(|_| format!("{s:?}: port {p:?} is not a number from 1 to 65535"))?;
    if h.is_empty() || port == 0 {
        return Err(format!("{s:?} is not HOST:PORT"));
    }
    Ok((h.trim_matches(|c| c == '[' || c == ']').to_string(), port as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> &'static str {
        r#"
cluster_name = "t"
[[nodes]]
id = 1
zone = "east"
kafka = "127.0.0.1:9092"
grpc = "127.0.0.1:50051"
data_dir = "d1"
"#
    }

    #[test]
    fn good_config_parses() {
        let c: ClusterConfig = toml::from_str(sample()).unwrap();
        c.validate().unwrap();
        assert_eq!(c.limits.max_frame_bytes, 100 * 1024 * 1024);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = sample().replace("127.0.0.1:50051", "localhost");
        let c: ClusterConfig = toml::from_str(&bad).unwrap();
        assert!(c.validate().unwrap_err().starts_with("nodes[0].grpc"));
        let bad = sample().replace("zone = \"east\"", "zone = \"east\"\ncolour = 1");
        assert!(toml::from_str::<ClusterConfig>(&bad).unwrap_err().to_string().contains("colour"));
        let dup = format!("{}{}", sample(), sample().replace("cluster_name = \"t\"", "").replace("9092", "9093").replace("50051", "50052").replace("d1", "d2"));
        let c: ClusterConfig = toml::from_str(&dup).unwrap();
        assert!(c.validate().unwrap_err().starts_with("nodes[1].id"));
        let groups = sample().replace("[[nodes]]", "[groups]\nmin_session_timeout_ms = 9000\nmax_session_timeout_ms = 1000\n[[nodes]]");
        let c: ClusterConfig = toml::from_str(&groups).unwrap();
        assert!(c.validate().unwrap_err().starts_with("groups.min_session_timeout_ms"));
        let cache = sample().replace("[[nodes]]", "[limits]\nstore_cache_bytes = 1000\n[[nodes]]");
        let c: ClusterConfig = toml::from_str(&cache).unwrap();
        assert!(c.validate().unwrap_err().starts_with("limits.store_cache_bytes"));
        let ingest = |extra: &str| {
            let text = format!("{}[[nodes.ingest]]\n{extra}\n", sample());
            toml::from_str::<ClusterConfig>(&text).map_err(|e| e.to_string()).and_then(|c| c.validate())
        };
        assert!(ingest("kind = \"syslog-tcp\"\nlisten = \"127.0.0.1:5514\"").is_ok());
        assert!(ingest("kind = \"syslog-tcp\"\nlisten = \"nowhere\"").unwrap_err().starts_with("nodes[0].ingest[0].listen"));
        assert!(ingest("kind = \"syslog-tls\"\nlisten = \"127.0.0.1:6514\"").unwrap_err().starts_with("nodes[0].ingest[0].tls_cert"));
        assert!(ingest("kind = \"syslog-tcp\"\nlisten = \"127.0.0.1:9092\"").unwrap_err().contains("used twice"));
        assert!(ingest("kind = \"carrier-pigeon\"\nlisten = \"127.0.0.1:1\"").unwrap_err().contains("carrier-pigeon"));
        assert!(ingest("kind = \"relp\"\nlisten = \"127.0.0.1:2514\"\nrfc3164_utc_offset = \"CET\"").unwrap_err().contains("rfc3164_utc_offset"));
        let route = ingest("kind = \"syslog-udp\"\nlisten = \"127.0.0.1:5514\"\n[[nodes.ingest.routes]]\ntopic = \"a\"\nseverity_max = 9");
        assert!(route.unwrap_err().starts_with("nodes[0].ingest[0].routes[0].severity_max"));
    }

    #[test]
    fn tls_settings_are_checked() {
        let check = |tls: &str, node: &str| {
            let text = sample().replace("[[nodes]]", &format!("{tls}\n[[nodes]]")) + node;
            toml::from_str::<ClusterConfig>(&text).map_err(|e| e.to_string()).and_then(|c| c.validate())
        };
        assert!(check("[tls]\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"n.key\"", "").is_ok());
        assert!(check("[tls]\nca = \"ca.pem\"", "tls_cert = \"1.pem\"\ntls_key = \"1.key\"\n").is_ok());
        assert!(check("[tls]\nca = \"ca.pem\"", "").unwrap_err().starts_with("nodes[0].tls_cert: the node has no certificate"));
        assert!(check("[tls]\nca = \"ca.pem\"\ncert = \"n.pem\"", "").unwrap_err().starts_with("tls.key"));
        assert!(check("", "tls_cert = \"1.pem\"\ntls_key = \"1.key\"\n").unwrap_err().contains("needs a [tls] section"));
        assert!(check("[tls]\nca = \"ca.pem\"", "tls_cert = \"1.pem\"\n").unwrap_err().starts_with("nodes[0].tls_key"));
        assert!(check("[tls]\nca = \"c\"\ncert = \"n\"\nkey = \"k\"\nkafka_client_auth = true", "").unwrap_err().starts_with("tls.kafka_client_auth"));
        assert!(check("[tls]\ncert = \"n.pem\"\nkey = \"n.key\"", "").unwrap_err().contains("missing field `ca`"));
        // Files are read when the node starts: a missing one is named with its field.
        let c: ClusterConfig = toml::from_str(&(sample().replace("[[nodes]]", "[tls]\nca = \"/nonexistent/ca.pem\"\ncert = \"n.pem\"\nkey = \"n.key\"\n[[nodes]]"))).unwrap();
        assert!(c.node_tls(1).err().unwrap().starts_with("tls.ca: cannot read /nonexistent/ca.pem"));
        // The hosts the node is reached at must be in its certificate: Kafka's only with TLS
        // Kafka listeners.
        let dir = tempfile::tempdir().unwrap();
        let g = crate::tls::generate(dir.path(), &[("n".into(), vec!["127.0.0.1".into()])]).unwrap();
        let with = |kafka: bool| {
            let tls = format!("[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\nkafka = {kafka}\n[[nodes]]", g.ca.display(), g.nodes[0].1.display(), g.nodes[0].2.display());
            let text = sample().replace("[[nodes]]", &tls).replace("data_dir", "advertised_kafka = \"broker1.example:9092\"\ndata_dir");
            toml::from_str::<ClusterConfig>(&text).unwrap().node_tls(1).map(|_| ())
        };
        with(false).unwrap();
        assert!(with(true).unwrap_err().contains("does not name broker1.example (the host of nodes[0].advertised_kafka)"));
    }

    #[test]
    fn actor_cluster_addresses_are_checked() {
        let two = |a1: Option<&str>, a2: Option<&str>| {
            let node = |id: i32, port: u16, actors: Option<&str>| {
                format!("[[nodes]]\nid = {id}\nzone = \"east\"\nkafka = \"127.0.0.1:{}\"\ngrpc = \"127.0.0.1:{}\"\ndata_dir = \"d{id}\"\n{}", port, port + 1, actors.map(|a| format!("actors = \"{a}\"\n")).unwrap_or_default())
            };
            let text = format!("cluster_name = \"t\"\ncluster_secret = \"s\"\n{}{}", node(1, 9000, a1), node(2, 9100, a2));
            toml::from_str::<ClusterConfig>(&text).map_err(|e| e.to_string()).and_then(|c| c.validate())
        };
        assert!(two(Some("127.0.0.1:7101"), Some("127.0.0.1:7102")).is_ok());
        assert!(two(None, None).is_ok());
        assert!(two(Some("127.0.0.1:7101"), None).unwrap_err().starts_with("nodes[1].actors: set it on every node"));
        assert!(two(Some("127.0.0.1:0"), Some("127.0.0.1:7102")).unwrap_err().contains("fixed port"));
        assert!(two(Some("127.0.0.1:7101"), Some("127.0.0.1:9000")).unwrap_err().contains("used twice"));
        assert!(two(Some("here"), Some("127.0.0.1:7102")).unwrap_err().starts_with("nodes[0].actors"));
    }
}
