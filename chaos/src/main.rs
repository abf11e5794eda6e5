//! `backwaters-chaos` (also `backwaters chaos`): a chaos run against a local cluster of real
//! node processes. Prints the checker's summary table; exits 1 when the history shows a lost,
//! duplicated or reordered record, offsets going backwards, or divergent replicas.

use backwaters_chaos::run::{run, Options};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "backwaters-chaos", version, about = "Kill, pause, cut off and wipe nodes of a local Backwaters cluster, slow their disks and move their clocks, under load; then check the history")]
struct Args {
    /// Nodes, spread over the zones east, central and west.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// How long to inject faults, e.g. 120s, 2m, 30m, 1h.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    duration: Duration,
    /// Keep injecting faults past --duration until this many SIGKILLs happened.
    #[arg(long, default_value_t = 10)]
    min_kills: usize,
    /// Seed of the fault schedule (printed; a random one when not given).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Idempotent acks=all producers.
    #[arg(long, default_value_t = 3)]
    producers: u32,
    /// Transactional producers (transactions of 8 records over every partition of
    /// `chaos-txn`, one in five aborted on purpose; read back with read_committed and checked
    /// for atomicity).
    #[arg(long, default_value_t = 1)]
    txn_producers: u32,
    /// Pause between faults (each fault lasts 2-5 s, then heals), e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    fault_every: Duration,
    /// Folder for history.jsonl, report.json, the nodes' logs and the producers' librdkafka logs.
    #[arg(long, default_value = "chaos-out")]
    out: PathBuf,
    /// TLS between the nodes and on their gRPC ports (certificates made in OUT/tls); the
    /// Kafka clients stay on plaintext.
    #[arg(long)]
    tls: bool,
    /// Only these faults, drawn evenly, comma-separated (default: all, kills most often);
    /// without a killing one, pass --min-kills 0.
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<backwaters_chaos::run::Fault>,
    /// Check a recorded history.jsonl again (no cluster is started) and print the table.
    #[arg(long, value_name = "HISTORY")]
    check: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: expected a number with s, m or h (e.g. 90s, 30m)"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    }
}

fn main() {
    let a = Args::parse();
    if let Some(path) = &a.check {
        let ops = match backwaters_chaos::history::load(path) {
            Ok(ops) => ops,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        };
        let report = backwaters_chaos::checker::check(&ops);
        print!("{}", report.table());
        for f in report.findings.iter().take(10) {
            println!("FAIL {}: {}", f.kind, f.detail);
        }
        std::process::exit(if report.ok() { 0 } else { 1 });
    }
    // The nodes run the `backwaters` binary beside this one unless told otherwise.
    if std::env::var_os("BACKWATERS_BIN").is_none() {
        if let Some(b) = std::env::current_exe().ok().map(|e| e.with_file_name("backwaters")).filter(|b| b.exists()) {
            std::env::set_var("BACKWATERS_BIN", b);
        }
    }
    let seed = a.seed.unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) % 1_000_000);
    let a_out = a.out.clone();
    let opts = Options { nodes: a.nodes, duration: a.duration, min_kills: a.min_kills, seed, partitions: a.partitions, producers: a.producers, fault_every: a.fault_every, out: a.out, tls: a.tls, txn_producers: a.txn_producers, faults: a.faults };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run(opts)) {
        Ok(o) => {
            println!("chaos run, seed {seed}: {} faults, {} kills", o.faults, o.kills);
            print!("{}", o.report.table());
            println!("  {:<26} {:>10}", "client epoch bumps", o.epoch_bumps);
            println!("  {:<26} {:>10}", "client fatal errors", o.fatal_errors);
            println!("history: {}\nreport:  {}", o.history.display(), o.report_path.display());
            if o.fatal_errors > 0 {
                println!("FAIL a producer stopped with a fatal error (see producer-*.log in {})", a_out.display());
            }
            if !o.report.ok() || o.fatal_errors > 0 {
                for f in o.report.findings.iter().take(10) {
                    println!("FAIL {}: {} (window: {} ops from t={}ms)", f.kind, f.detail, f.window.len(), f.window.first().map(|o| o.t()).unwrap_or(0));
                }
                println!("replay with --seed {seed}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
