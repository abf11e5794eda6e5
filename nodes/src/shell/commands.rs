//! Shell commands, as `noun verb` with flags, parsed with clap (so every command has `--help`)
//! and run against the public gRPC API only.

use super::render::Out;
use backwaters_proto::grpc::v1 as pb;
use clap::{Parser, Subcommand};
use pb::admin_client::AdminClient;
use pb::consume_client::ConsumeClient;
use pb::produce_client::ProduceClient;
use tonic::transport::Channel;

#[derive(Parser, Debug)]
#[command(name = "", no_binary_name = true, disable_version_flag = true, about = "Backwaters shell commands", override_usage = "COMMAND [ARGS]  (help COMMAND for details)")]
pub struct Line {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// The cluster: nodes, zones, liveness, controller, version.
    Cluster {
        #[command(subcommand)]
        verb: ClusterVerb,
    },
    /// A node's supervision tree: actors, state, restart counts.
    Node {
        #[command(subcommand)]
        verb: NodeVerb,
    },
    /// Topics: create, list, describe, alter, add partitions, delete.
    Topic {
        #[command(subcommand)]
        verb: TopicVerb,
    },
    /// Consumer groups: list, describe (members, assignments, lag), reset offsets, delete.
    Group {
        #[command(subcommand)]
        verb: super::groups::GroupVerb,
    },
    /// Client quotas: byte and mutation rates per user / client id (list, set, remove).
    Quota {
        #[command(subcommand)]
        verb: super::quotas::QuotaVerb,
    },
    /// Write records: VALUEs as arguments, lines from --file, or lines typed at the prompt
    /// (end with a line holding a single ".").
    Produce {
        topic: String,
        /// Partition (default: by key, or round-robin without one).
        #[arg(long, default_value_t = -1)]
        partition: i32,
        /// Key for every record.
        #[arg(long)]
        key: Option<String>,
        /// Split each line at the first SEP into key and value.
        #[arg(long, value_name = "SEP")]
        key_separator: Option<String>,
        /// Header k=v (repeatable).
        #[arg(long = "header", value_name = "K=V")]
        headers: Vec<String>,
        /// Read one record per line from this file.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        values: Vec<String>,
    },
    /// Follow a topic's new records live (Ctrl-C stops), or read from an offset or a time.
    Tail {
        topic: String,
        /// Only this partition (default: all).
        #[arg(long)]
        partition: Option<i32>,
        /// Start offset: a number, "earliest" or "latest" (default).
        #[arg(long, default_value = "latest")]
        offset: String,
        /// Start at a time: ms since the epoch, or relative like -10m, -2h, -30s.
        #[arg(long, value_name = "TIME")]
        from_time: Option<String>,
        /// Only records whose key or value contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Stop after this many records (default: follow until Ctrl-C).
        #[arg(long)]
        max: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterVerb {
    /// Nodes, zones, liveness, controller and version.
    Status,
}

#[derive(Subcommand, Debug)]
pub enum NodeVerb {
    /// Supervised actors with their state and restart counts.
    Tree,
    /// Move every leadership off a node (before maintenance) and keep it leaderless until
    /// --undo; waits until it leads nothing.
    Drain {
        node: i32,
        /// The node may lead again.
        #[arg(long)]
        undo: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum TopicVerb {
    /// All topics.
    List {
        /// Include internal topics (names starting with "__").
        #[arg(long)]
        internal: bool,
    },
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// Topic config k=v (repeatable), e.g. retention.ms=86400000.
        #[arg(long = "config", value_name = "K=V")]
        configs: Vec<String>,
    },
    /// Partitions (leader, replicas, offsets) and configs of a topic.
    Describe { name: String },
    /// Move a partition's leadership to another replica (drifts back to the preferred
    /// replica after limits.leader_rebalance_ms).
    TransferLeader {
        name: String,
        partition: i32,
        /// The replica to lead (default: the first other in-sync replica).
        #[arg(long)]
        to: Option<i32>,
    },
    /// Set topic configs (k=v, repeatable; an empty value removes the override).
    Alter {
        name: String,
        #[arg(long = "config", value_name = "K=V", required = true)]
        configs: Vec<String>,
    },
    /// Grow a topic to TOTAL partitions.
    AddPartitions {
        name: String,
        #[arg(long)]
        total: i32,
    },
    /// Delete a topic and its data (asks first in the interactive shell).
    Delete {
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// The gRPC clients of one connection.
#[derive(Clone)]
pub struct Api {
    pub admin: AdminClient<Logged>,
    pub produce: ProduceClient<Logged>,
    pub consume: ConsumeClient<Logged>,
}

/// A channel whose calls carry the shell's login, if it has one.
pub type Logged = tonic::service::interceptor::InterceptedService<Channel, Login>;

/// Adds `authorization: Basic ...` to every call (`--user`); nothing without a user.
#[derive(Clone, Default)]
pub struct Login(Option<tonic::metadata::AsciiMetadataValue>);

impl Login {
    pub fn new(user: &str, password: &str) -> Result<Login, String> {
        let v = backwaters_proto::sasl::basic_header(user, password).parse().map_err(|_| "--user: the user name and password must be printable".to_string())?;
        Ok(Login(Some(v)))
    }
}

impl tonic::service::Interceptor for Login {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

impl Api {
    pub fn new(ch: Channel, login: Login) -> Api {
        Api {
            admin: AdminClient::with_interceptor(ch.clone(), login.clone()),
            produce: ProduceClient::with_interceptor(ch.clone(), login.clone()),
            consume: ConsumeClient::with_interceptor(ch, login),
        }
    }
}

/// "k=v" into a config pair.
pub fn kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.trim().to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not K=V"))
}

pub fn status_error(e: tonic::Status) -> String {
    match e.code() {
        tonic::Code::Unavailable => format!("the node is unreachable ({}); check that it runs and the --bootstrap address", e.message()),
        tonic::Code::Unauthenticated => format!("{} (log in with --user and BACKWATERS_PASSWORD or --password-file)", e.message()),
        _ => e.message().to_string(),
    }
}

pub async fn cluster_status(api: &mut Api) -> Result<Out, String> {
    let s = api.admin.cluster_status(pb::ClusterStatusRequest { local_only: false }).await.map_err(status_error)?.into_inner();
    let summary = Out::fields(&[("cluster", s.cluster_name.clone()), ("cluster id", s.cluster_id.clone()), ("controller", s.controller_id.to_string()), ("version", s.version.clone())]);
    let rows = s
        .nodes
        .iter()
        .map(|n| {
            let recorded = if n.recorded.is_empty() { "-".to_string() } else { n.recorded.clone() };
            vec![n.node_id.to_string(), n.zone.clone(), if n.alive { "alive".into() } else { "down".into() }, if n.in_actor_cluster { "yes".into() } else { "no".into() }, recorded, n.kafka_address.clone(), n.grpc_address.clone()]
        })
        .collect();
    Ok(Out::Many(vec![summary, Out::table(Some("Nodes"), &["id", "zone", "state", "session", "recorded", "kafka", "grpc"], rows)]))
}

pub async fn node_tree(api: &mut Api) -> Result<Out, String> {
    let s = api.admin.cluster_status(pb::ClusterStatusRequest { local_only: false }).await.map_err(status_error)?.into_inner();
    let rows = s
        .nodes
        .iter()
        .flat_map(|n| n.actors.iter().map(move |a| vec![n.node_id.to_string(), a.supervisor.clone(), a.name.clone(), a.state.clone(), a.restarts.to_string()]))
        .collect();
    Ok(Out::table(None, &["node", "supervisor", "actor", "state", "restarts"], rows))
}

pub async fn node_drain(api: &mut Api, node: i32, undo: bool, timeout: u32) -> Result<Out, String> {
    let r = api.admin.drain_node(pb::DrainNodeRequest { node_id: node, undo, timeout_ms: timeout.saturating_mul(1000) }).await.map_err(status_error)?.into_inner();
    let drained = format!("{:?}", r.drained_nodes);
    Ok(match (undo, r.still_leading) {
        (true, _) => Out::Done(format!("node {node} may lead again (drained nodes: {drained})")),
        (false, 0) => Out::Done(format!("node {node} is drained: it leads no partition (drained nodes: {drained})")),
        (false, n) => Out::Done(format!("node {node} is marked drained but still leads {n} partition(s) after {timeout} s (are its followers caught up?); run it again to keep waiting")),
    })
}

pub async fn topic_transfer_leader(api: &mut Api, name: String, partition: i32, to: Option<i32>) -> Result<Out, String> {
    let r = api.admin.transfer_leadership(pb::TransferLeadershipRequest { topic: name.clone(), partition, to_node: to.unwrap_or(0) }).await.map_err(status_error)?.into_inner();
    Ok(Out::Done(format!("{name}-{partition}: leader {} -> {}", r.previous_leader, r.leader)))
}

pub async fn topic_list(api: &mut Api, internal: bool) -> Result<Out, String> {
    let r = api.admin.list_topics(pb::ListTopicsRequest { include_internal: internal }).await.map_err(status_error)?.into_inner();
    let rows = r.topics.iter().map(|t| vec![t.name.clone(), t.partitions.to_string(), t.replication_factor.to_string(), t.topic_id.clone()]).collect();
    Ok(Out::table(None, &["name", "partitions", "replicas", "id"], rows))
}

pub async fn topic_create(api: &mut Api, name: String, partitions: i32, rf: i32, configs: Vec<String>) -> Result<Out, String> {
    let configs = configs.iter().map(|c| kv(c).map(|(name, value)| pb::TopicConfig { name, value })).collect::<Result<Vec<_>, _>>()?;
    let r = api.admin.create_topic(pb::CreateTopicRequest { name: name.clone(), partitions, replication_factor: rf, configs }).await.map_err(status_error)?.into_inner();
    Ok(Out::Done(format!("created topic {name} ({partitions} partitions, id {})", r.topic_id)))
}

pub async fn topic_describe(api: &mut Api, name: String) -> Result<Out, String> {
    let d = api.admin.describe_topic(pb::DescribeTopicRequest { name, local_only: false }).await.map_err(status_error)?.into_inner();
    let t = d.topic.unwrap_or_default();
    let summary = Out::fields(&[("topic", t.name.clone()), ("id", t.topic_id.clone()), ("partitions", t.partitions.to_string()), ("replicas", t.replication_factor.to_string())]);
    let parts = d
        .partitions
        .iter()
        .map(|p| {
            let lag = p.log_end_offset - p.high_watermark;
            vec![p.partition.to_string(), p.leader.to_string(), format!("{:?}", p.replicas), p.log_start_offset.to_string(), p.high_watermark.to_string(), p.log_end_offset.to_string(), lag.to_string()]
        })
        .collect();
    let replicas = d
        .partitions
        .iter()
        .flat_map(|p| {
            p.replica_states.iter().map(move |r| {
                let role = if r.node_id == p.leader { "leader" } else { "follower" };
                vec![p.partition.to_string(), r.node_id.to_string(), r.zone.clone(), role.to_string(), r.log_end_offset.to_string(), r.lag.to_string(), if r.in_sync { "yes" } else { "no" }.to_string()]
            })
        })
        .collect();
    let configs = d.configs.iter().map(|c| vec![c.name.clone(), c.value.clone()]).collect();
    Ok(Out::Many(vec![
        summary,
        Out::table(Some("Partitions"), &["partition", "leader", "replicas", "log start", "high watermark", "log end", "uncommitted"], parts),
        Out::table(Some("Replicas (as each leader sees them)"), &["partition", "node", "zone", "role", "log end", "lag", "in sync"], replicas),
        Out::table(Some("Configs"), &["name", "value"], configs),
    ]))
}

pub async fn topic_alter(api: &mut Api, name: String, configs: Vec<String>) -> Result<Out, String> {
    let set = configs.iter().map(|c| kv(c).map(|(name, value)| pb::TopicConfig { name, value })).collect::<Result<Vec<_>, _>>()?;
    api.admin.alter_topic_config(pb::AlterTopicConfigRequest { name: name.clone(), set }).await.map_err(status_error)?;
    Ok(Out::Done(format!("altered configs of {name}")))
}

pub async fn topic_add_partitions(api: &mut Api, name: String, total: i32) -> Result<Out, String> {
    api.admin.create_partitions(pb::CreatePartitionsRequest { name: name.clone(), total_count: total }).await.map_err(status_error)?;
    Ok(Out::Done(format!("{name} now has {total} partitions")))
}

pub async fn topic_delete(api: &mut Api, name: String) -> Result<Out, String> {
    api.admin.delete_topic(pb::DeleteTopicRequest { name: name.clone() }).await.map_err(status_error)?;
    Ok(Out::Done(format!("deleted topic {name}")))
}

/// Produces `lines` (one record each); returns what was written where.
pub async fn produce(api: &mut Api, topic: String, partition: i32, key: Option<String>, key_sep: Option<String>, headers: Vec<String>, lines: Vec<String>) -> Result<Out, String> {
    if lines.is_empty() {
        return Err("nothing to produce: give VALUEs, --file, or type lines".into());
    }
    let headers = headers.iter().map(|h| kv(h).map(|(key, value)| pb::Header { key, value: value.into_bytes() })).collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::new();
    for line in lines {
        let (k, v) = match (&key_sep, &key) {
            (Some(sep), _) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (key.clone(), line),
            },
            (None, k) => (k.clone(), line),
        };
        let record = pb::Record { has_key: k.is_some(), key: k.clone().unwrap_or_default().into_bytes(), value: v.into_bytes(), headers: headers.clone(), timestamp_ms: 0 };
        let r = api.produce.produce(pb::ProduceRequest { topic: topic.clone(), partition, records: vec![record], acks: pb::Acks::All as i32 }).await.map_err(status_error)?.into_inner();
        rows.push(vec![r.partition.to_string(), r.base_offset.to_string(), k.unwrap_or_default()]);
    }
    Ok(Out::table(None, &["partition", "offset", "key"], rows))
}

/// Parses a --from-time value: ms since the epoch, or -N{s,m,h,d} before `now_ms`.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    if let Some(rel) = s.strip_prefix('-') {
        let (n, unit) = rel.split_at(rel.len().saturating_sub(1));
        let n: i64 = n.parse().map_err(|_| format!("{s:?}: use ms since the epoch or -N followed by s, m, h or d"))?;
        let ms = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
        };
        return Ok(now_ms - n * ms);
    }
    s.parse().map_err(|_| format!("{s:?}: use ms since the epoch or -N followed by s, m, h or d"))
}

pub fn parse_offset(s: &str) -> Result<i64, String> {
    match s {
        "earliest" => Ok(-2),
        "latest" => Ok(-1),
        n => n.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| format!("--offset {n:?}: use a number, earliest or latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn lines_parse_as_noun_verb() {
        let l = Line::try_parse_from(["topic", "create", "logs", "--partitions", "6", "--config", "retention.ms=1"]).unwrap();
        assert!(matches!(l.cmd, Cmd::Topic { verb: TopicVerb::Create { partitions: 6, .. } }));
        assert!(Line::try_parse_from(["topci", "list"]).is_err());
        assert_eq!(parse_time("-2m", 1_000_000), Ok(880_000));
        assert!(parse_time("-2x", 0).is_err());
        assert_eq!(parse_offset("earliest"), Ok(-2));
    }
}
