//! Helpers for end-to-end tests: build the `backwaters` binary, start real node processes on
//! free loopback ports, kill (SIGKILL) and restart them, and clean up.
//!
//! # Layout
//! - this file: [`TestNode`] and port/binary helpers.
//! - [`member`]: a librdkafka consumer-group member (in-process, or the `group_member` binary).
//! - [`raw`]: a raw Kafka protocol client for bad input.
//! - `tests/`: one file per area: Kafka clients (librdkafka), crash recovery, bad input on raw
//!   sockets, the gRPC API, consumer groups, ingest (syslog, RELP, TLS, HTTP), the shell.

pub mod member;
pub mod raw;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of the `backwaters` binary, built once per test process (a no-op when fresh).
/// The secret of every test node's cluster (named "test").
pub const CLUSTER_SECRET: &str = "test-secret";

/// A client of a test node's internal (node-to-node) service, with the test cluster's
/// credentials, as another node of the cluster would call it.
pub async fn internal_client(grpc_addr: &str) -> Result<InternalClient, tonic::transport::Error> {
    internal_client_with(grpc_addr, None).await
}

/// The internal service's client type with the cluster's credentials attached.
pub type InternalClient = backwaters_proto::grpc::v1::internal_client::InternalClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, backwaters_proto::grpc::auth::Attach>>;

/// As [`internal_client`], over TLS trusting `ca` (PEM) when given.
pub async fn internal_client_with(grpc_addr: &str, ca: Option<&[u8]>) -> Result<InternalClient, tonic::transport::Error> {
    let ch = grpc_endpoint(grpc_addr, ca)?.connect_timeout(Duration::from_secs(1)).timeout(Duration::from_secs(5)).connect().await?;
    Ok(backwaters_proto::grpc::v1::internal_client::InternalClient::with_interceptor(ch, backwaters_proto::grpc::auth::Attach::new("test", CLUSTER_SECRET)))
}

/// `backwaters certs --out DIR --node SPEC...`: a cluster CA (DIR/ca.pem) and NAME.pem /
/// NAME.key per `NAME=HOST[,HOST]` spec.
pub fn make_certs(dir: &Path, nodes: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new(binary());
    cmd.args(["certs", "--out"]).arg(dir);
    for n in nodes {
        cmd.args(["--node", n]);
    }
    let out = cmd.output().map_err(|e| format!("backwaters certs: {e}"))?;
    if !out.status.success() {
        return Err(format!("backwaters certs: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// The endpoint of a node's gRPC address: plaintext, or TLS trusting `ca` (PEM) when given.
pub fn grpc_endpoint(grpc_addr: &str, ca: Option<&[u8]>) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    match ca {
        None => tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}")),
        Some(ca) => tonic::transport::Endpoint::from_shared(format!("https://{grpc_addr}"))?.tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(ca))),
    }
}

pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("BACKWATERS_BIN") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo).args(["build", "-q", "-p", "backwaters", "--bin", "backwaters"]).current_dir(&root).status().expect("run cargo build");
        assert!(status.success(), "building the backwaters binary failed");
        let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("backwaters")
    })
    .clone()
}

/// A free TCP port on 127.0.0.1 (bound and released; collisions are retried by the caller).
///
/// A port is handed out once per test process: the kernel may offer a closed listener's port
/// again, and a test that picked one port for an ingest listener and then more for its nodes
/// once got the same port twice (the config check refused it: "is used twice").
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if given.insert(port) {
            return port;
        }
    }
}

/// A node process with its own data dir and ports.
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub kafka: String,
    pub grpc: String,
    pub metrics: String,
    /// Actor-cluster session address (nodes of a cluster; empty for a single node).
    pub actors: String,
    pub config: PathBuf,
    child: Option<Child>,
    /// "node is serving" lines in the log before the current launch.
    serving_before: usize,
    /// This node's id in the config.
    pub id: i32,
}

impl TestNode {
    /// Starts a single-node cluster; `extra` is appended to the config's top level sections.
    pub fn start() -> TestNode {
        Self::start_with("")
    }

    pub fn start_with(extra_toml: &str) -> TestNode {
        Self::start_full(extra_toml, "")
    }

    /// `node_toml` goes inside the node's entry (e.g. `[[nodes.ingest]]` tables).
    pub fn start_full(extra_toml: &str, node_toml: &str) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("cluster.toml");
        let mut n = TestNode { dir, kafka: String::new(), grpc: String::new(), metrics: String::new(), actors: String::new(), config, child: None, serving_before: 0, id: 1 };
        // A free port can be taken by another test between probing and binding: retry with
        // fresh ports when that happens.
        for _ in 0..5 {
            // Three distinct ports (the OS may hand a just-released port out again).
            let k = free_port();
            let g = std::iter::repeat_with(free_port).find(|p| *p != k).expect("a port");
            let m = std::iter::repeat_with(free_port).find(|p| *p != k && *p != g).expect("a port");
            (n.kafka, n.grpc, n.metrics) = (format!("127.0.0.1:{k}"), format!("127.0.0.1:{g}"), format!("127.0.0.1:{m}"));
            let text = format!(
                "cluster_name = \"test\"\ncluster_secret = \"{CLUSTER_SECRET}\"\n{extra_toml}\n[[nodes]]\nid = 1\nzone = \"east\"\nkafka = \"{}\"\ngrpc = \"{}\"\nmetrics = \"{}\"\ndata_dir = \"data\"\n{node_toml}\n",
                n.kafka, n.grpc, n.metrics
            );
            std::fs::write(&n.config, text).expect("write config");
            if n.try_spawn() {
                return n;
            }
        }
        panic!("no free ports after 5 tries; log:\n{}", n.log());
    }

    /// Starts a cluster of `n` node processes spread over the zones east, central and west
    /// (node ids 1..=n); `extra_toml` goes into the config's top level.
    pub fn start_cluster(n: usize, extra_toml: &str) -> Vec<TestNode> {
        Self::start_cluster_full(n, extra_toml, "")
    }

    /// As [`TestNode::start_cluster`]; `first_node_toml` goes inside node 1's entry (e.g.
    /// `[[nodes.ingest]]` tables).
    pub fn start_cluster_full(n: usize, extra_toml: &str, first_node_toml: &str) -> Vec<TestNode> {
        // A free port can be taken by another test between probing and binding: start the
        // whole cluster again on fresh ports when that happens.
        for _ in 0..5 {
            if let Some(nodes) = Self::try_start_cluster(n, extra_toml, first_node_toml) {
                return nodes;
            }
        }
        panic!("no free ports for a cluster of {n} after 5 tries");
    }

    /// None when a node could not bind one of its ports (the nodes started are stopped).
    fn try_start_cluster(n: usize, extra_toml: &str, first_node_toml: &str) -> Option<Vec<TestNode>> {
        let zones = ["east", "central", "west"];
        let mut ports = Vec::new();
        while ports.len() < 4 * n {
            let p = free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let mut nodes: Vec<TestNode> = (0..n)
            .map(|i| {
                let dir = tempfile::tempdir().expect("tempdir");
                let config = dir.path().join("cluster.toml");
                let a = |k: usize| format!("127.0.0.1:{}", ports[4 * i + k]);
                TestNode { dir, kafka: a(0), grpc: a(1), metrics: a(2), actors: a(3), config, child: None, serving_before: 0, id: i as i32 + 1 }
            })
            .collect();
        let mut text = format!("cluster_name = \"test\"\ncluster_secret = \"{CLUSTER_SECRET}\"\n{extra_toml}\n");
        for (i, node) in nodes.iter().enumerate() {
            text += &format!(
                "[[nodes]]\nid = {}\nzone = \"{}\"\nkafka = \"{}\"\ngrpc = \"{}\"\nmetrics = \"{}\"\nactors = \"{}\"\ndata_dir = \"{}\"\n",
                node.id,
                zones[i % 3],
                node.kafka,
                node.grpc,
                node.metrics,
                node.actors,
                node.dir.path().join("data").display()
            );
            if node.id == 1 {
                text += first_node_toml;
                text += "\n";
            }
        }
        for node in &mut nodes {
            std::fs::write(&node.config, &text).expect("write config");
            node.launch();
        }
        for node in &mut nodes {
            match node.wait_ready() {
                Ok(()) => {}
                Err(log) if log.contains("Address already in use") => return None,
                Err(log) => panic!("node {} exited early; log:\n{log}", node.id),
            }
        }
        Some(nodes)
    }

    /// Starts the process again after [`TestNode::kill`].
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Starts the process; false when it could not bind its ports (the caller picks others).
    fn try_spawn(&mut self) -> bool {
        self.launch();
        match self.wait_ready() {
            Ok(()) => true,
            Err(log) if log.contains("Address already in use") => {
                let _ = std::fs::remove_file(self.dir.path().join("node.log"));
                false
            }
            Err(log) => panic!("node exited early; log:\n{log}"),
        }
    }

    fn spawn(&mut self) {
        // A restart keeps its ports; one still held for a moment is retried.
        for _ in 0..20 {
            if self.try_spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("node could not bind its ports again; log:\n{}", self.log());
    }

    fn launch(&mut self) {
        self.serving_before = self.log().matches("node is serving").count();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("node.log")).expect("log file");
        let child = Command::new(binary())
            .args(["node", "--config"])
            .arg(&self.config)
            .args(["--node", &self.id.to_string()])
            .env("RUST_LOG", format!("{},backwaters::server=info", std::env::var("BACKWATERS_TEST_LOG").unwrap_or_else(|_| "info".into())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start backwaters");
        self.child = Some(child);
    }

    /// Waits until both listeners answer; `Err(log)` when the process exited first.
    /// Ready means: this process logged "node is serving" once more than before (every
    /// listener is bound) and its ports answer. The ports alone are not enough: a port taken
    /// by another test's node answers while this process is failing to bind it.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let serving = |log: &str| log.matches("node is serving").count();
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return Err(self.log());
                }
            }
            if serving(&self.log()) > self.serving_before && TcpStream::connect(&self.kafka).is_ok() && TcpStream::connect(&self.grpc).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node did not start listening within 30 s; log:\n{}", self.log());
    }

    /// The node's Prometheus page (`GET /metrics` over a plain socket).
    pub fn metrics_page(&self) -> String {
        metrics_page(&self.metrics)
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no last flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Removes the node's data dir (a lost disk); the process must not be running.
    pub fn wipe_data(&mut self) {
        assert!(self.child.is_none(), "wipe_data on a running node");
        let _ = std::fs::remove_dir_all(self.dir.path().join("data"));
    }

    /// SIGSTOP: the process stays but answers nothing (looks dead to its peers).
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args(["-STOP", &c.id().to_string()]).status();
        }
    }

    /// SIGCONT after [`TestNode::pause`].
    pub fn resume(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
        }
    }

    /// Whether the process is running (not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("node running");
        unsafe_sigterm(c.id());
        c.wait().expect("wait for node")
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- node log ({}) ---\n{}", self.dir.path().display(), self.log());
        }
    }
}

/// Whether an external client runs here. Missing ones are skipped locally; with
/// `BACKWATERS_REQUIRE_CLIENTS` set (CI) a missing client fails the test.
pub fn client_available(cmd: &str, args: &[&str]) -> bool {
    let ok = Command::new(cmd).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
    if !ok {
        assert!(std::env::var("BACKWATERS_REQUIRE_CLIENTS").is_err(), "{cmd} is required (BACKWATERS_REQUIRE_CLIENTS is set) but not usable");
        eprintln!("SKIPPED: {cmd} is not installed; .ci/run installs it");
    }
    ok
}

/// Reads `topic` (every partition, from the start) until `want` records arrived or `limit`
/// passed: (partition, key, value) in partition order.
pub fn read_topic(bootstrap: &str, topic: &str, want: usize, limit: Duration) -> Vec<(i32, Option<String>, String)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let c: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).set("enable.auto.commit", "false").set("group.id", "read-topic").create().expect("consumer");
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let partitions = loop {
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(5)).expect("metadata");
        let n = md.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
        if n > 0 || Instant::now() > deadline {
            break n as i32;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).expect("partition");
    }
    c.assign(&tpl).expect("assign");
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push((m.partition(), m.key().map(|k| String::from_utf8_lossy(k).into_owned()), String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()));
        }
    }
    out
}

/// Records the topic holds (high watermark minus log start, summed over its partitions).
pub fn records_in_topic(bootstrap: &str, topic: &str) -> usize {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("consumer");
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(5)).expect("metadata");
    let partitions = md.topics().first().map(|t| t.partitions().len()).unwrap_or(0) as i32;
    (0..partitions)
        .map(|p| {
            let (lo, hi) = c.fetch_watermarks(topic, p, Duration::from_secs(5)).expect("watermarks");
            (hi - lo).max(0) as usize
        })
        .sum()
}

/// Runs a command to completion, killing it (and failing) after `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("command did not finish within {limit:?}; stdout:\n{}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A node's own copy of a topic's partitions (admin API, `local_only`). A topic created
/// through another node reaches this node's metadata a moment later: not found is retried
/// for up to 10 s.
pub async fn describe_local(grpc: &str, topic: &str) -> Vec<backwaters_proto::grpc::v1::PartitionInfo> {
    use backwaters_proto::grpc::v1::{admin_client::AdminClient, DescribeTopicRequest};
    let mut c = AdminClient::connect(format!("http://{grpc}")).await.expect("connect admin");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match c.describe_topic(DescribeTopicRequest { name: topic.into(), local_only: true }).await {
            Err(e) if e.code() == tonic::Code::NotFound && tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            r => return r.expect("describe").into_inner().partitions,
        }
    }
}

/// A counter's or gauge's value from a node's Prometheus endpoint.
pub fn metric(addr: &str, name: &str) -> f64 {
    let body = metrics_page(addr);
    body.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or_else(|| panic!("{name} not in the metrics of {addr}"))
}

/// The Prometheus page a node serves at `addr` (`GET /metrics` over a plain socket).
pub fn metrics_page(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut http = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    http.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    http.read_to_string(&mut body).unwrap();
    body
}

/// One HTTP/1.1 request to 127.0.0.1:`port`: (status, head, body).
pub fn http_exchange(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body); // a refused body may be cut short by the server
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").map(|(h, b)| (h.to_string(), b.to_string())).unwrap_or((text.clone(), String::new()));
    (status, head, body)
}
