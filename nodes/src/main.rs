//! The `backwaters` command: run a node, start a local cluster, benchmark.
//!
//! # Layout
//! - [`config`]: the TOML cluster config and its checks.
//! - [`server`]: runs one node: listeners bound up front, then the node's supervision tree.
//! - [`kafka`]: the Kafka listener and one handler file per API key.
//! - [`grpc`]: the `backwaters.v1` gRPC API, health and reflection.
//! - [`http`]: Prometheus metrics and health over HTTP.
//! - [`shell`]: the admin shell (REPL and one-shot) over the gRPC API.
//! - [`bench`]: produce / consume benchmarks through librdkafka.
//! - [`tls`]: TLS between nodes and on gRPC ports; `certs` makes the certificates.

/// mimalloc keeps freed large buffers for reuse; with glibc's malloc every fetch and produce
/// buffer above the mmap threshold was fresh memory, and page faults took a third of the
/// broker's CPU in the consume benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (mimalloc.h); the Rust bindings
/// have no constant for it. Its default is 1000 (ms), which `keep_freed_memory` checks before
/// it sets anything, so a renumbered enum in a future version is not misapplied (and the unit
/// test below fails).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_PURGE_DELAY_DEFAULT_MS: std::os::raw::c_long = 1000;

/// Tells mimalloc never to hand freed memory back to the OS (a broker's heap, like a JVM's,
/// stays at its peak). sled allocates a fresh copy of a B-tree node (up to about 1 MiB here)
/// for every key it inserts and an 8 MiB buffer per log segment; with mimalloc's default
/// 1 s purge delay that memory was still decommitted between uses and faulted in again, and
/// zeroing the faulted pages took 13-27% of the nodes' CPU in the produce benchmark (1.4%
/// with purging off).
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: plain option calls; no allocation of ours is in flight in them.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MI_PURGE_DELAY_DEFAULT_MS {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
}

/// Turns transparent huge pages off for this process (and the node processes `up` starts).
/// sled seals its 8 MiB log buffer at every flush and allocates the next one; where the
/// kernel backs that memory with 2 MiB huge pages (THP `always`, or mimalloc's madvise), each
/// first touch zeroes a whole huge page. Measured on the 2-core VM (3 nodes, RF 3, acks=all,
/// 1 KiB records): 40% of all CPU in `clear_page_erms` under huge-page faults, saturation
/// 37.6 MB/s; with THP off 0.7% and 71.8 MB/s. `BACKWATERS_THP=1` keeps the system's setting.
fn no_transparent_huge_pages() {
    if std::env::var_os("BACKWATERS_THP").is_some_and(|v| v == "1") {
        return;
    }
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r != 0 {
        eprintln!("note: cannot turn transparent huge pages off ({}); throughput may suffer", std::io::Error::last_os_error());
    }
}

mod access;
mod bench;
mod bench_native;
mod bench_syslog;
mod config;
mod grpc;
mod grpc_groups;
mod http;
mod ingest;
mod kafka;
mod peers;
mod process_metrics;
mod server;
mod sasl;
mod shell;
mod tls;

use clap::{Parser, Subcommand};
use config::{ClusterConfig, Defaults, Limits, NodeConfig};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "backwaters", version, about = "Backwaters: a Kafka-compatible security streaming platform", long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node of a cluster described by a TOML config file.
    Node {
        /// Cluster config file (see README for the format).
        #[arg(long)]
        config: PathBuf,
        /// Which node of the config this process is.
        #[arg(long)]
        node: i32,
    },
    /// Start a local cluster with defaults and print how to connect.
    Up {
        /// Number of nodes, spread over the zones east, central and west (3: one per zone;
        /// each a separate process, Kafka and gRPC ports counting up from --kafka and --grpc).
        /// 1 runs a single node in this process.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Folder for the nodes' data (one subfolder per node); running `up` again on it
        /// brings the same cluster back.
        #[arg(long, default_value = "backwaters-data")]
        data_dir: PathBuf,
        /// Kafka listen address (of the first node).
        #[arg(long, default_value = "127.0.0.1:9092")]
        kafka: String,
        /// gRPC listen address (of the first node).
        #[arg(long, default_value = "127.0.0.1:50051")]
        grpc: String,
        /// Prometheus metrics address.
        #[arg(long, default_value = "127.0.0.1:9644")]
        metrics: String,
        /// Actor-cluster session address (of the first node; several nodes only).
        #[arg(long, default_value = "127.0.0.1:7101")]
        actors: String,
        /// Write the cluster config used to this file (to run it later with `node`).
        #[arg(long)]
        write_config: Option<PathBuf>,
        /// Partitions of auto-created topics.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Syslog over UDP and TCP (RFC 5424/3164, into the topic logs.syslog; on the first
        /// node, writes reach each partition's leader wherever it is); "off" disables.
        #[arg(long, default_value = "127.0.0.1:5514")]
        syslog: String,
        /// RELP (rsyslog's omrelp; each line acknowledged once durable); "off" disables.
        #[arg(long, default_value = "127.0.0.1:2514")]
        relp: String,
        /// HTTP ingest: REST proxy v2, NDJSON and Splunk HEC; "off" disables.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        /// Token accepted by the HEC endpoint.
        #[arg(long, default_value = "backwaters")]
        hec_token: String,
        /// TLS on the Kafka and gRPC ports and between nodes: makes a cluster CA and a
        /// certificate per node in DATA/tls (kept for the next `up` on the same folder);
        /// clients trust DATA/tls/ca.pem (Kafka: security.protocol=ssl,
        /// ssl.ca.location=...; `backwaters shell --ca`).
        #[arg(long)]
        tls: bool,
        /// SASL logins on the Kafka listeners (SCRAM-SHA-256/512): user "admin", whose
        /// password is made on the first run and kept in DATA/sasl/admin.password. Create
        /// more users with Kafka's AlterUserScramCredentials (e.g. confluent-kafka's
        /// alter_user_scram_credentials). With --tls the listeners are SASL_SSL.
        #[arg(long)]
        sasl: bool,
    },
    /// Make a cluster CA and node certificates for the config's [tls] section (PEM files).
    /// A CA already in the folder signs the new certificates; existing files are kept.
    Certs {
        /// Folder for ca.pem, ca.key and NAME.pem / NAME.key.
        #[arg(long, default_value = "backwaters-tls")]
        out: PathBuf,
        /// One node's certificate, NAME=HOST[,HOST...]: the IP addresses or DNS names the
        /// node is reached at (its gRPC and actors hosts). Repeat for every node.
        #[arg(long = "node", value_name = "NAME=HOSTS", required = true)]
        nodes: Vec<String>,
    },
    /// Attach an interactive shell to a cluster (or run one command with -c).
    Shell(shell::ShellArgs),
    /// Chaos run against a local cluster: kills, pauses, zone and disk loss under load, then
    /// a history check (runs the `backwaters-chaos` binary built beside this one; see
    /// `backwaters chaos --help`).
    #[command(disable_help_flag = true)]
    Chaos {
        /// Arguments for backwaters-chaos (e.g. --duration 30m --nodes 6 --seed 42).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmark a Kafka-compatible broker through librdkafka.
    Bench {
        #[command(subcommand)]
        kind: BenchKind,
    },
}

#[derive(Subcommand)]
enum BenchKind {
    /// Produce records and report throughput and acknowledgement latency.
    Produce(bench::BenchArgs),
    /// Read a topic from the start and report throughput.
    Consume(bench::BenchArgs),
    /// Send syslog lines over TCP and report lines/s committed (and the parser's own speed).
    Syslog(bench_syslog::SyslogBenchArgs),
}

/// The listeners `up` starts: syslog UDP+TCP, RELP, HTTP (each can be turned "off").
fn default_ingest(syslog: &str, relp: &str, http: &str, hec_token: &str) -> Vec<ingest::config::IngestConfig> {
    use ingest::config::{IngestConfig, Kind};
    let mut out = Vec::new();
    if syslog != "off" {
        out.push(IngestConfig::new(Kind::SyslogUdp, syslog));
        out.push(IngestConfig::new(Kind::SyslogTcp, syslog));
    }
    if relp != "off" {
        out.push(IngestConfig::new(Kind::Relp, relp));
    }
    if http != "off" {
        let mut h = IngestConfig::new(Kind::Http, http);
        h.topic = "logs.http".into();
        h.hec_tokens = vec![hec_token.to_string()];
        out.push(h);
    }
    out
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: `up` sends each node's log to a file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

fn main() {
    keep_freed_memory();
    no_transparent_huge_pages();
    // Two rustls crypto providers are linked (ring, ours and tonic's; aws-lc-rs, through
    // ractor_cluster's tokio-rustls): without a process default, rustls panics at the first
    // config built without an explicit provider (tonic's TLS server does that).
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = rt.block_on(run(cli));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// `up --nodes N` (N > 1): writes the cluster config into the data dir, starts one
/// `backwaters node` process per node, prints the bootstrap list, and stops them all on Ctrl-C.
#[allow(clippy::too_many_arguments)]
async fn up_many(n: usize, data_dir: &std::path::Path, kafka: &str, grpc: &str, metrics: &str, actors: &str, write_config: Option<PathBuf>, partitions: i32, ingest: Vec<ingest::config::IngestConfig>, tls: bool, sasl: bool) -> Result<(), String> {
    let (khost, kport) = config::split_host_port(kafka)?;
    let (ghost, gport) = config::split_host_port(grpc)?;
    let (mhost, mport) = config::split_host_port(metrics)?;
    let (ahost, aport) = config::split_host_port(actors)?;
    let zones = ["east", "central", "west"];
    let nodes: Vec<NodeConfig> = (0..n)
        .map(|i| {
            let name = format!("{}-{}", zones[i % 3], i / 3 + 1);
            NodeConfig {
                id: i as i32 + 1,
                zone: zones[i % 3].into(),
                kafka: format!("{khost}:{}", kport + i as i32),
                advertised_kafka: None,
                grpc: format!("{ghost}:{}", gport + i as i32),
                advertised_grpc: None,
                metrics: Some(format!("{mhost}:{}", mport + i as i32)),
                actors: Some(format!("{ahost}:{}", aport + i as i32)),
                data_dir: data_dir.join(name),
                min_free_disk_bytes: None,
                // Ingest listeners on the first node (east-1).
                ingest: if i == 0 { ingest.clone() } else { vec![] },
                tls_cert: None,
                tls_key: None,
            }
        })
        .collect();
    let mut cluster = ClusterConfig {
        cluster_name: "backwaters-local".into(),
        // A fresh secret per `up`: every node reads it from the config written below.
        cluster_secret: Some(uuid::Uuid::new_v4().to_string()),
        defaults: Defaults { partitions, replication_factor: Some(n.min(3) as i16), ..Defaults::default() },
        limits: Limits::default(),
        groups: Default::default(),
        tls: None,
        sasl: None,
                authorization: None,
        nodes,
    };
    if tls {
        local_certs(&mut cluster, data_dir)?;
    }
    if sasl {
        local_sasl(&mut cluster, data_dir)?;
    }
    cluster.validate()?;
    std::fs::create_dir_all(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let path = write_config.unwrap_or_else(|| data_dir.join("cluster.toml"));
    std::fs::write(&path, toml::to_string_pretty(&cluster).map_err(|e| e.to_string())?).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for node in &cluster.nodes {
        let log = std::fs::File::create(data_dir.join(format!("node-{}.log", node.id))).map_err(|e| e.to_string())?;
        let child = tokio::process::Command::new(&exe)
            .args(["node", "--config"])
            .arg(&path)
            .args(["--node", &node.id.to_string()])
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start node {}: {e}", node.id))?;
        children.push((node.id, child));
    }
    wait_serving(data_dir, &mut children).await?;
    let bootstrap: Vec<String> = cluster.nodes.iter().map(|n| n.kafka.clone()).collect();
    println!("Backwaters is up: {n} nodes over {} zones, data and logs in {}", n.min(3), data_dir.display());
    for node in &cluster.nodes {
        println!("  node {} ({}): Kafka {}  gRPC {}  metrics http://{}/metrics", node.id, node.zone, node.kafka, node.grpc, node.metrics.as_deref().unwrap_or(""));
    }
    println!("  Kafka bootstrap: {}", bootstrap.join(","));
    for i in &cluster.nodes[0].ingest {
        println!("  {:<16} {} -> {} (on node 1)", format!("{}:", i.kind.name()), i.listen, i.topic);
    }
    println!("  cluster config:  {}", path.display());
    let ca = cluster.tls.as_ref().map(|t| format!(" --ca {}", t.ca.display())).unwrap_or_default();
    if !ca.is_empty() {
        println!("  TLS:             Kafka, gRPC and node-to-node; clients trust{ca}");
    }
    print_sasl(&cluster);
    println!("Try:");
    println!("  backwaters shell --bootstrap {}{ca} -c 'cluster status'", cluster.nodes[0].grpc);
    println!("  echo hello | kcat -P -b {}{} -t logs", bootstrap.join(","), kcat_tls(&cluster));
    println!("Ctrl-C stops every node.");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut reported = std::collections::BTreeSet::new();
    let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            // A node that dies (killed by hand, say) is reported; the others keep running.
            _ = check.tick() => for (id, c) in children.iter_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    if reported.insert(*id) {
                        eprintln!("node {id} exited ({status}); its log: {}", data_dir.join(format!("node-{id}.log")).display());
                    }
                }
            },
        }
    }
    eprintln!("stopping {n} nodes...");
    for (_, c) in &children {
        if let Some(pid) = c.id() {
            // SIGTERM: each node stops cleanly (flushes) on its own.
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }
    for (id, mut c) in children {
        match tokio::time::timeout(std::time::Duration::from_secs(30), c.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("node {id} did not stop in 30 s; killing it");
                let _ = c.kill().await;
            }
        }
    }
    Ok(())
}

/// `up --tls`: a CA and one certificate per node in DATA/tls (each naming the hosts of the
/// node's addresses, and localhost), made once and reused by later runs on the same folder.
fn local_certs(cluster: &mut ClusterConfig, data_dir: &std::path::Path) -> Result<(), String> {
    let mut wanted = Vec::new();
    for n in &cluster.nodes {
        let mut hosts = vec!["localhost".to_string()];
        for a in [Some(&n.grpc), n.actors.as_ref(), Some(&n.kafka)].into_iter().flatten() {
            let (h, _) = config::split_host_port(a)?;
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        wanted.push((n.data_dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| format!("node-{}", n.id)), hosts));
    }
    let made = tls::generate(&data_dir.join("tls"), &wanted)?;
    for (n, (_, cert, key)) in cluster.nodes.iter_mut().zip(made.nodes) {
        n.tls_cert = Some(cert);
        n.tls_key = Some(key);
    }
    cluster.tls = Some(config::TlsConfig { ca: made.ca, cert: None, key: None, kafka: true, kafka_client_auth: false, grpc_client_auth: false });
    Ok(())
}

/// Waits until every node started by `up` logs that it serves. A node that exits first
/// ends `up` with the end of its log (a port in use, a data dir of another cluster...).
async fn wait_serving(data_dir: &std::path::Path, children: &mut [(i32, tokio::process::Child)]) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    for (id, child) in children.iter_mut() {
        let log = data_dir.join(format!("node-{id}.log"));
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("node is serving") {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Read again: the node may have written its last lines since.
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!("node {id} exited ({status}) before serving; the end of {}:\n{}", log.display(), tail.join("\n")));
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("node {id} is not serving after 120 s; see {}", log.display()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// `up --sasl`: the bootstrap user "admin" with a password made once and kept in
/// DATA/sasl/admin.password (readable by its owner only).
fn local_sasl(cluster: &mut ClusterConfig, data_dir: &std::path::Path) -> Result<(), String> {
    use rand::Rng;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = data_dir.join("sasl");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file = dir.join("admin.password");
    if !file.exists() {
        let password: String = rand::thread_rng().sample_iter(rand::distributions::Alphanumeric).take(24).map(char::from).collect();
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&file).map_err(|e| format!("cannot create {}: {e}", file.display()))?;
        std::io::Write::write_all(&mut f, format!("{password}\n").as_bytes()).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    let admin = sasl::SaslUser { name: "admin".into(), password: None, password_env: None, password_file: Some(file) };
    cluster.sasl = Some(sasl::SaslConfig { mechanisms: vec!["SCRAM-SHA-256".into(), "SCRAM-SHA-512".into()], users: vec![admin] });
    Ok(())
}

fn print_sasl(cluster: &ClusterConfig) {
    if let Some(f) = cluster.sasl.as_ref().and_then(|s| s.users.first()).and_then(|u| u.password_file.as_ref()) {
        println!("  SASL:            Kafka clients log in (SCRAM-SHA-256/512) as admin, password in {}", f.display());
    }
}

/// The kcat options for the cluster's Kafka listeners ("" for plaintext without SASL).
fn kcat_tls(cluster: &ClusterConfig) -> String {
    let tls = cluster.tls.as_ref().filter(|t| t.kafka);
    let mut out = match (tls.is_some(), cluster.sasl.is_some()) {
        (false, false) => return String::new(),
        (true, false) => " -X security.protocol=ssl".to_string(),
        (false, true) => " -X security.protocol=sasl_plaintext".to_string(),
        (true, true) => " -X security.protocol=sasl_ssl".to_string(),
    };
    if let Some(t) = tls {
        out += &format!(" -X ssl.ca.location={}", t.ca.display());
    }
    if let Some(u) = cluster.sasl.as_ref().and_then(|s| s.users.first()) {
        let password = match (&u.password_file, &u.password_env) {
            (Some(f), _) => format!("\"$(cat {})\"", f.display()),
            (None, Some(var)) => format!("\"${var}\""),
            _ => "PASSWORD".into(),
        };
        out += &format!(" -X sasl.mechanism=SCRAM-SHA-256 -X sasl.username={} -X sasl.password={password}", u.name);
    }
    out
}

/// `certs`: parses NAME=HOST[,HOST...] and writes the files.
fn certs(out: &std::path::Path, nodes: &[String]) -> Result<(), String> {
    let mut wanted = Vec::new();
    for spec in nodes {
        let (name, hosts) = spec.split_once('=').ok_or_else(|| format!("--node {spec:?}: expected NAME=HOST[,HOST...], e.g. east-1=10.0.1.5,east-1.internal"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') || name == "ca" {
            return Err(format!("--node {spec:?}: the name becomes a file name: use letters, digits, '-', '_' or '.' (not \"ca\")"));
        }
        let hosts: Vec<String> = hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(String::from).collect();
        if hosts.is_empty() {
            return Err(format!("--node {spec:?}: name at least one host (IP address or DNS name)"));
        }
        wanted.push((name.to_string(), hosts));
    }
    let made = tls::generate(out, &wanted)?;
    println!("cluster CA: {} (key beside it: keep ca.key private, it signs new nodes)", made.ca.display());
    for (name, cert, key) in &made.nodes {
        println!("node {name}: {} {}", cert.display(), key.display());
    }
    println!("In the cluster config:\n  [tls]\n  ca = \"{}\"\nand on each [[nodes]] entry tls_cert / tls_key as above.", made.ca.display());
    Ok(())
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Node { config, node } => {
            init_logging();
            let cluster = ClusterConfig::load(&config)?;
            let running = server::start(&cluster, node).await?;
            server::run_until_stopped(running).await
        }
        Cmd::Certs { out, nodes } => certs(&out, &nodes),
        Cmd::Up { nodes, data_dir, kafka, grpc, metrics, actors, write_config, partitions, syslog, relp, http, hec_token, tls, sasl } => {
            init_logging();
            let data_dir = std::path::absolute(&data_dir).map_err(|e| e.to_string())?;
            if nodes == 0 || nodes > 99 {
                return Err(format!("--nodes {nodes}: use 1 to 99"));
            }
            if nodes > 1 {
                let ingest = default_ingest(&syslog, &relp, &http, &hec_token);
                return up_many(nodes, &data_dir, &kafka, &grpc, &metrics, &actors, write_config, partitions, ingest, tls, sasl).await;
            }
            let mut cluster = ClusterConfig {
                cluster_secret: None,
                cluster_name: "backwaters-local".into(),
                defaults: Defaults { partitions, ..Defaults::default() },
                limits: Limits::default(),
                groups: Default::default(),
                tls: None,
                sasl: None,
                authorization: None,
                nodes: vec![NodeConfig {
                    id: 1,
                    zone: "east".into(),
                    kafka,
                    advertised_kafka: None,
                    grpc,
                    advertised_grpc: None,
                    metrics: Some(metrics),
                    actors: None,
                    data_dir: data_dir.join("east-1"),
                    min_free_disk_bytes: None,
                    ingest: default_ingest(&syslog, &relp, &http, &hec_token),
                    tls_cert: None,
                    tls_key: None,
                }],
            };
            if tls {
                local_certs(&mut cluster, &data_dir)?;
            }
            if sasl {
                local_sasl(&mut cluster, &data_dir)?;
            }
            cluster.validate()?;
            if let Some(path) = write_config {
                std::fs::write(&path, toml::to_string_pretty(&cluster).map_err(|e| e.to_string())?).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                eprintln!("wrote the cluster config to {}", path.display());
            }
            let running = server::start(&cluster, 1).await?;
            println!("Backwaters is up: 1 node (east-1), data in {}", data_dir.display());
            println!("  Kafka bootstrap: {}", running.kafka_addr);
            println!("  gRPC:            {}", running.grpc_addr);
            if let Some(m) = &running.metrics_addr {
                println!("  metrics:         http://{m}/metrics");
            }
            for (kind, addr, topic) in &running.ingest {
                println!("  {:<16} {addr} -> {topic}", format!("{kind}:"));
            }
            print_sasl(&cluster);
            println!("Try:");
            println!("  echo hello | kcat -P -b {}{} -t logs", running.kafka_addr, kcat_tls(&cluster));
            println!("  kcat -C -b {}{} -t logs -e", running.kafka_addr, kcat_tls(&cluster));
            match &cluster.tls {
                Some(t) => println!("  grpcurl -cacert {} {} list", t.ca.display(), running.grpc_addr),
                None => println!("  grpcurl -plaintext {} list", running.grpc_addr),
            }
            if let Some((_, addr, _)) = running.ingest.iter().find(|(k, _, _)| k == "syslog-udp") {
                let (host, port) = addr.rsplit_once(':').unwrap_or((addr.as_str(), "514"));
                println!("  logger -n {host} -P {port} --rfc5424 'hello from syslog'");
            }
            println!("Ctrl-C stops it.");
            server::run_until_stopped(running).await
        }
        Cmd::Shell(args) => shell::run(args).await,
        Cmd::Chaos { args } => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let chaos = exe.with_file_name("backwaters-chaos");
            if !chaos.exists() {
                return Err(format!("{} not found: build it with `cargo build -p backwaters-chaos` (same profile as this binary)", chaos.display()));
            }
            let status = tokio::process::Command::new(&chaos).args(&args).env("BACKWATERS_BIN", &exe).status().await.map_err(|e| format!("{}: {e}", chaos.display()))?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Cmd::Bench { kind } => match kind {
            BenchKind::Produce(a) => bench::produce(a).await,
            BenchKind::Consume(a) => bench::consume(a).await,
            BenchKind::Syslog(a) => bench_syslog::run(a).await,
        },
    }
}

#[cfg(test)]
mod allocator_tests {
    /// The option number is right for the mimalloc we link: its default is what
    /// `keep_freed_memory` expects, so the call takes effect.
    #[test]
    fn freed_memory_is_kept() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        super::keep_freed_memory();
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) }, -1);
    }
}
