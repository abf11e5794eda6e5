//! `backwaters shell`: an interactive shell (history, tab completion, help for every command)
//! and a one-shot mode (`-c`), over the public gRPC API only.
//!
//! # Layout
//! - this file: connecting (several bootstrap addresses, following the controller), the REPL,
//!   confirmation of destructive commands, and `tail`.
//! - [`commands`]: the command grammar (clap) and the commands that ask and print once.
//! - [`render`]: tables and JSON.

pub mod commands;
pub mod groups;
pub mod quotas;
pub mod render;

use backwaters_proto::grpc::v1 as pb;
use clap::{Args, Parser, ValueEnum};
use commands::{Api, ClusterVerb, Cmd, Line, Login, NodeVerb, TopicVerb};
use groups::GroupVerb;
use quotas::QuotaVerb;
use render::Out;
use rustyline::completion::{Completer, Pair};
use rustyline::{Context, Helper, Highlighter, Hinter, Validator};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_stream::StreamExt;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// gRPC address(es) of the cluster, comma-separated or repeated; the first that answers
    /// is used, and the shell moves to the controller.
    #[arg(long, short, default_value = "127.0.0.1:50051", value_delimiter = ',')]
    pub bootstrap: Vec<String>,
    /// Run one command and exit (for scripts and CI).
    #[arg(long, short = 'c', value_name = "COMMAND")]
    pub command: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
    /// CA certificate (PEM) of a cluster running with TLS (`up --tls` writes DATA/tls/ca.pem):
    /// the shell then speaks TLS and trusts only that CA.
    #[arg(long, value_name = "FILE", env = "BACKWATERS_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM, signed by the cluster CA) for clusters with
    /// `grpc_client_auth = true`; needs --ca and --key.
    #[arg(long, value_name = "FILE", env = "BACKWATERS_CERT", requires_all = ["ca", "key"])]
    pub cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", env = "BACKWATERS_KEY", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
    /// Log in as this user (a [[sasl.users]] entry or a user made with Kafka's
    /// AlterUserScramCredentials); the ACLs then decide what the shell may do. The password
    /// comes from BACKWATERS_PASSWORD or --password-file. Send it only over TLS (--ca).
    #[arg(long, value_name = "NAME", env = "BACKWATERS_USER")]
    pub user: Option<String>,
    /// File holding the password of --user (one line).
    #[arg(long, value_name = "FILE", requires = "user")]
    pub password_file: Option<std::path::PathBuf>,
}

impl ShellArgs {
    /// The login of --user, read from BACKWATERS_PASSWORD or --password-file.
    fn login(&self) -> Result<Login, String> {
        let Some(user) = &self.user else { return Ok(Login::default()) };
        let password = match &self.password_file {
            Some(f) => std::fs::read_to_string(f).map_err(|e| format!("--password-file: cannot read {}: {e}", f.display()))?.trim_end_matches(['\n', '\r']).to_string(),
            None => std::env::var("BACKWATERS_PASSWORD").map_err(|_| format!("--user {user}: set BACKWATERS_PASSWORD or pass --password-file"))?,
        };
        Login::new(user, &password)
    }
}

const PROMPT: &str = "backwaters> ";

/// Connects to the first bootstrap address that answers, then to the controller.
async fn connect(bootstrap: &[String], tls: Option<&tonic::transport::ClientTlsConfig>, login: &Login) -> Result<Api, String> {
    let mut errors = Vec::new();
    for addr in bootstrap {
        let addr = addr.trim_start_matches("http://").trim_start_matches("https://");
        let endpoint = match crate::tls::endpoint(addr, tls) {
            Ok(e) => e.connect_timeout(Duration::from_secs(3)).timeout(Duration::from_secs(30)),
            Err(e) => {
                errors.push(format!("{addr}: {e}"));
                continue;
            }
        };
        match endpoint.connect().await {
            Ok(ch) => {
                let mut api = Api::new(ch, login.clone());
                match api.admin.cluster_status(pb::ClusterStatusRequest { local_only: false }).await {
                    Ok(s) => return Ok(follow_controller(api, s.into_inner(), addr, tls, login).await),
                    // A user the ACLs do not let describe the cluster stays on this node; each
                    // command is then allowed or refused on its own.
                    Err(e) if e.code() == tonic::Code::PermissionDenied => return Ok(api),
                    Err(e) => errors.push(format!("{addr}: {}", e.message())),
                }
            }
            Err(e) => errors.push(format!("{addr}: {}", error_chain(&e))),
        }
    }
    let hint = match tls {
        None => " (a cluster with TLS needs --ca)",
        Some(_) => " (a cluster with grpc_client_auth needs --cert and --key too)",
    };
    Err(format!("no node answered ({}); is the cluster running? pass its gRPC address with --bootstrap{hint}", errors.join("; ")))
}

/// An error with its causes: tonic's own message is only "transport error".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

async fn follow_controller(api: Api, status: pb::ClusterStatusResponse, used: &str, tls: Option<&tonic::transport::ClientTlsConfig>, login: &Login) -> Api {
    let Some(ctl) = status.nodes.iter().find(|n| n.node_id == status.controller_id) else { return api };
    if ctl.grpc_address.is_empty() || ctl.grpc_address == used {
        return api;
    }
    match crate::tls::endpoint(&ctl.grpc_address, tls) {
        Ok(e) => match e.connect_timeout(Duration::from_secs(3)).connect().await {
            Ok(ch) => Api::new(ch, login.clone()),
            Err(_) => api,
        },
        Err(_) => api,
    }
}

pub async fn run(args: ShellArgs) -> Result<(), String> {
    let tls = match (&args.ca, &args.cert, &args.key) {
        (Some(ca), Some(cert), Some(key)) => Some(crate::tls::client_with_identity(ca, cert, key)?),
        (ca, _, _) => ca.as_deref().map(crate::tls::client_trusting).transpose()?,
    };
    let mut api = connect(&args.bootstrap, tls.as_ref(), &args.login()?).await?;
    if let Some(cmd) = &args.command {
        let mut stdout = std::io::stdout();
        return execute(&mut api, cmd, args.output, Mode::OneShot, &mut stdout).await;
    }
    repl(api, args.output).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    OneShot,
    Interactive,
}

/// Runs one command line, printing to `out`.
async fn execute(api: &mut Api, line: &str, output: Output, mode: Mode, out: &mut dyn Write) -> Result<(), String> {
    let words = shlex::split(line).ok_or_else(|| "unbalanced quotes".to_string())?;
    let parsed = match Line::try_parse_from(&words) {
        Ok(l) => l,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) => {
            let _ = write!(out, "{e}");
            return Ok(());
        }
        Err(e) => return Err(one_line_error(&e, &words)),
    };
    let result = match parsed.cmd {
        Cmd::Cluster { verb: ClusterVerb::Status } => commands::cluster_status(api).await?,
        Cmd::Node { verb: NodeVerb::Tree } => commands::node_tree(api).await?,
        Cmd::Node { verb: NodeVerb::Drain { node, undo, timeout } } => commands::node_drain(api, node, undo, timeout).await?,
        Cmd::Topic { verb } => match verb {
            TopicVerb::List { internal } => commands::topic_list(api, internal).await?,
            TopicVerb::Create { name, partitions, replication_factor, configs } => commands::topic_create(api, name, partitions, replication_factor, configs).await?,
            TopicVerb::Describe { name } => commands::topic_describe(api, name).await?,
            TopicVerb::TransferLeader { name, partition, to } => commands::topic_transfer_leader(api, name, partition, to).await?,
            TopicVerb::Alter { name, configs } => commands::topic_alter(api, name, configs).await?,
            TopicVerb::AddPartitions { name, total } => commands::topic_add_partitions(api, name, total).await?,
            TopicVerb::Delete { name, yes } => {
                if mode == Mode::Interactive && !yes && !confirm(&format!("Delete topic {name} and all its records? [y/N] ")) {
                    Out::Done("cancelled".into())
                } else {
                    commands::topic_delete(api, name).await?
                }
            }
        },
        Cmd::Quota { verb } => match verb {
            QuotaVerb::List => quotas::list(api).await?,
            QuotaVerb::Set { entity, rate } => quotas::set(api, entity, rate).await?,
            QuotaVerb::Remove { entity, key } => quotas::remove(api, entity, key).await?,
        },
        Cmd::Group { verb } => match verb {
            GroupVerb::List => groups::list(api).await?,
            GroupVerb::Describe { group } => groups::describe(api, group).await?,
            GroupVerb::ResetOffsets { group, topics, to_earliest, to_latest, to_datetime, to_offset, execute } => groups::reset_offsets(api, group, topics, to_earliest, to_latest, to_datetime, to_offset, execute, now_ms()).await?,
            GroupVerb::Delete { group, yes } => {
                if mode == Mode::Interactive && !yes && !confirm(&format!("Delete group {group} and its committed offsets? [y/N] ")) {
                    Out::Done("cancelled".into())
                } else {
                    groups::delete(api, group).await?
                }
            }
        },
        Cmd::Produce { topic, partition, key, key_separator, headers, file, values } => {
            let lines = if let Some(f) = file {
                std::fs::read_to_string(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?.lines().map(String::from).collect()
            } else if !values.is_empty() {
                values
            } else {
                read_lines_until_dot(mode)
            };
            commands::produce(api, topic, partition, key, key_separator, headers, lines).await?
        }
        Cmd::Tail { topic, partition, offset, from_time, filter, max } => {
            let spec = TailSpec { topic, partition, offset: commands::parse_offset(&offset)?, from_time: from_time.map(|t| commands::parse_time(&t, now_ms())).transpose()?, filter, max };
            return tail(api, spec, output, out).await;
        }
    };
    let text = match output {
        Output::Table => result.text(),
        Output::Json => result.json().to_string(),
    };
    writeln!(out, "{text}").map_err(|e| e.to_string())
}

/// A clap error as one line plus a hint (the full usage is one `help` away).
fn one_line_error(e: &clap::Error, words: &[String]) -> String {
    let text = e.to_string();
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("bad command").trim_start_matches("error: ").to_string();
    // "required arguments were not provided:" names them on the next line.
    if first.ends_with(':') {
        first = format!("{first} {}", lines.next().unwrap_or_default().trim());
    }
    let hint = match words.first() {
        Some(w) if ["cluster", "node", "topic", "group", "quota", "produce", "tail"].contains(&w.as_str()) => format!("try: help {w}"),
        _ => "try: help".to_string(),
    };
    format!("{first} ({hint})")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn confirm(question: &str) -> bool {
    print!("{question}");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

fn read_lines_until_dot(mode: Mode) -> Vec<String> {
    if mode == Mode::Interactive && std::io::stdin().is_terminal() {
        println!("type records, one per line; a line with a single \".\" ends");
    }
    let mut lines = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line == "." {
            break;
        }
        lines.push(line);
    }
    lines
}

struct TailSpec {
    topic: String,
    partition: Option<i32>,
    offset: i64,
    from_time: Option<i64>,
    filter: Option<String>,
    max: Option<u64>,
}

/// Streams records from one or all partitions until `max` or Ctrl-C.
async fn tail(api: &mut Api, spec: TailSpec, output: Output, out: &mut dyn Write) -> Result<(), String> {
    let partitions: Vec<i32> = match spec.partition {
        Some(p) => vec![p],
        None => {
            let d = api.admin.describe_topic(pb::DescribeTopicRequest { name: spec.topic.clone(), local_only: false }).await.map_err(commands::status_error)?.into_inner();
            d.partitions.iter().map(|p| p.partition).collect()
        }
    };
    let mut merged = tokio_stream::StreamMap::new();
    for p in partitions {
        let req = pb::ConsumeRequest { topic: spec.topic.clone(), partition: p, offset: spec.offset, max_records: if spec.filter.is_some() { 0 } else { spec.max.unwrap_or(0) }, max_wait_ms: 1000, from_timestamp_ms: spec.from_time.unwrap_or(0) };
        let stream = api.consume.consume(req).await.map_err(commands::status_error)?.into_inner();
        merged.insert(p, stream);
    }
    let mut shown = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let next = tokio::select! {
            n = merged.next() => n,
            _ = &mut ctrl_c => break,
        };
        let Some((p, msg)) = next else { break };
        let msg = msg.map_err(commands::status_error)?;
        for r in msg.records {
            let key = r.key.as_deref().map(String::from_utf8_lossy).unwrap_or_default().to_string();
            let value = r.value.as_deref().map(String::from_utf8_lossy).unwrap_or_default().to_string();
            if spec.filter.as_ref().is_some_and(|f| !key.contains(f.as_str()) && !value.contains(f.as_str())) {
                continue;
            }
            let line = match output {
                Output::Table => format!("{}:{}  {}  {}  {}", p, r.offset, r.timestamp_ms, if key.is_empty() { "-" } else { &key }, value),
                Output::Json => serde_json::json!({"partition": p, "offset": r.offset, "timestamp_ms": r.timestamp_ms, "key": key, "value": value}).to_string(),
            };
            writeln!(out, "{line}").map_err(|e| e.to_string())?;
            let _ = out.flush();
            shown += 1;
            if spec.max.is_some_and(|m| shown >= m) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Tab completion: commands, then topic names where a topic goes.
#[derive(Helper, Hinter, Highlighter, Validator)]
struct ShellHelper {
    topics: Arc<Mutex<Vec<String>>>,
    groups: Arc<Mutex<Vec<String>>>,
}

const COMMANDS: &[&str] = &[
    "cluster status",
    "node tree",
    "node drain",
    "topic list",
    "topic create",
    "topic describe",
    "topic transfer-leader",
    "topic alter",
    "topic add-partitions",
    "topic delete",
    "group list",
    "group describe",
    "group reset-offsets",
    "group delete",
    "quota list",
    "quota set",
    "quota remove",
    "produce",
    "tail",
    "help",
    "exit",
];

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let start = head.rfind(' ').map(|i| i + 1).unwrap_or(0);
        let word = &head[start..];
        let before = head[..start].trim();
        let wants_topic = ["topic describe", "topic alter", "topic add-partitions", "topic delete", "produce", "tail"].contains(&before);
        let wants_group = ["group describe", "group reset-offsets", "group delete"].contains(&before);
        let candidates: Vec<String> = if wants_topic || before.ends_with("--topic") {
            self.topics.lock().expect("lock").clone()
        } else if wants_group {
            self.groups.lock().expect("lock").clone()
        } else {
            COMMANDS.iter().filter_map(|c| c.strip_prefix(head.trim_start()).map(|rest| format!("{word}{rest}"))).filter(|c| !c.is_empty()).collect()
        };
        let pairs = candidates.into_iter().filter(|c| c.starts_with(word)).map(|c| Pair { display: c.clone(), replacement: c }).collect();
        Ok((start, pairs))
    }
}

/// Names for Tab completion, refreshed after every command.
async fn refresh_names(api: &mut Api, helper: &ShellHelper) {
    if let Ok(r) = api.admin.list_topics(pb::ListTopicsRequest { include_internal: true }).await {
        *helper.topics.lock().expect("lock") = r.into_inner().topics.into_iter().map(|t| t.name).collect();
    }
    if let Ok(r) = api.admin.list_groups(pb::ListGroupsRequest {}).await {
        *helper.groups.lock().expect("lock") = r.into_inner().groups.into_iter().map(|g| g.group_id).collect();
    }
}

async fn repl(mut api: Api, output: Output) -> Result<(), String> {
    let names = ShellHelper { topics: Default::default(), groups: Default::default() };
    refresh_names(&mut api, &names).await;
    let mut editor: rustyline::Editor<ShellHelper, rustyline::history::DefaultHistory> = rustyline::Editor::new().map_err(|e| e.to_string())?;
    editor.set_helper(Some(ShellHelper { topics: names.topics.clone(), groups: names.groups.clone() }));
    let history = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".backwaters_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    if std::io::stdin().is_terminal() {
        println!("Backwaters shell. `help` lists commands, `help COMMAND` explains one, Tab completes, Ctrl-D leaves.");
    }
    loop {
        let line = match editor.readline(PROMPT) {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break, // Ctrl-D / end of input
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        if line == "exit" || line == "quit" {
            break;
        }
        let cmd = if line == "help" { "--help".to_string() } else if let Some(rest) = line.strip_prefix("help ") { format!("{rest} --help") } else { line.to_string() };
        let mut stdout = std::io::stdout();
        if let Err(e) = execute(&mut api, &cmd, output, Mode::Interactive, &mut stdout).await {
            println!("error: {e}");
        }
        refresh_names(&mut api, &names).await;
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

