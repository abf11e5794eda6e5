//! `backwaters bench syslog`: syslog lines over TCP into a durable topic, counted as
//! committed (the topic's high watermarks), plus the parser's own speed measured apart.

use backwaters_proto::syslog::ecs::{self, Received};
use backwaters_proto::syslog::parse::{parse, Rfc3164Rules};
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct SyslogBenchArgs {
    /// The node's syslog TCP listener.
    #[arg(long, default_value = "127.0.0.1:5514")]
    pub target: String,
    /// Kafka bootstrap, to count committed records.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// The listener's topic.
    #[arg(long, default_value = "logs.syslog")]
    pub topic: String,
    #[arg(long, default_value_t = 2_000_000)]
    pub lines: u64,
    /// Bytes per line (an RFC 3164 line padded to this size).
    #[arg(long, default_value_t = 300)]
    pub line_size: usize,
    /// Parallel TCP connections.
    #[arg(long, default_value_t = 4)]
    pub connections: u64,
    /// Distinct sending hosts (the record key: spreads lines over partitions).
    #[arg(long, default_value_t = 64)]
    pub hosts: u64,
}

fn line(i: u64, hosts: u64, size: usize) -> Vec<u8> {
    let head = format!("<38>Nov 28 12:00:00 web{:03} sshd[{}]: Accepted publickey for user{} from 10.0.{}.{} port 22 ssh2 ", i % hosts, 1000 + i % 5000, i % 977, i % 250, i % 200);
    let mut l = head.into_bytes();
    // Pseudo-random letters: compress about as badly as text can, so the number is a floor.
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while l.len() + 1 < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        l.push(b'a' + (x % 26) as u8);
    }
    l.push(b'\n');
    l
}

fn committed(c: &BaseConsumer, topic: &str) -> Result<i64, String> {
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let n = md.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
    let mut sum = 0;
    for p in 0..n as i32 {
        sum += c.fetch_watermarks(topic, p, Duration::from_secs(5)).map_err(|e| e.to_string())?.1;
    }
    Ok(sum)
}

pub async fn run(a: SyslogBenchArgs) -> Result<(), String> {
    let sample: Vec<Vec<u8>> = (0..10_000).map(|i| line(i, a.hosts, a.line_size)).collect();
    // 1. The parser alone (one thread): parse + ECS JSON.
    let n = 200_000usize;
    let t0 = Instant::now();
    let mut bytes = 0usize;
    for i in 0..n {
        let raw = &sample[i % sample.len()];
        let parsed = parse(raw, 1_795_867_200_000, &Rfc3164Rules::default());
        let r = Received { at_ms: 1_795_867_200_000, listener: "bench", protocol: "syslog", ..Default::default() };
        bytes += serde_json::to_vec(&ecs::to_json(raw, &parsed, &r)).map_err(|e| e.to_string())?.len();
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("parser (one core, parse + ECS JSON): {:.0} lines/s, {:.1} MB/s in, {} bytes of JSON per line", n as f64 / secs, (n * a.line_size) as f64 / secs / 1e6, bytes / n);

    // 2. Through the node: TCP in, committed records out.
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &a.bootstrap).create().map_err(|e| e.to_string())?;
    let before = committed(&consumer, &a.topic).unwrap_or(0);
    let per_conn = a.lines / a.connections;
    let total = per_conn * a.connections;
    let t0 = Instant::now();
    let mut senders = Vec::new();
    for c in 0..a.connections {
        let (target, hosts, size) = (a.target.clone(), a.hosts, a.line_size);
        senders.push(std::thread::spawn(move || -> Result<(), String> {
            let mut s = std::net::TcpStream::connect(&target).map_err(|e| format!("cannot connect to {target}: {e}"))?;
            let mut buf = Vec::with_capacity(1 << 20);
            for i in 0..per_conn {
                buf.extend_from_slice(&line(c * per_conn + i, hosts, size));
                if buf.len() >= 1 << 20 {
                    s.write_all(&buf).map_err(|e| e.to_string())?;
                    buf.clear();
                }
            }
            s.write_all(&buf).map_err(|e| e.to_string())
        }));
    }
    let mut last = Instant::now();
    loop {
        let now = committed(&consumer, &a.topic).unwrap_or(before) - before;
        if last.elapsed() >= Duration::from_secs(1) {
            eprintln!("  {now} of {total} lines committed ({:.0} lines/s so far)", now as f64 / t0.elapsed().as_secs_f64());
            last = Instant::now();
        }
        if now >= total as i64 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(600) {
            return Err(format!("only {now} of {total} lines were committed in 10 minutes"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = t0.elapsed().as_secs_f64();
    for s in senders {
        s.join().map_err(|_| "sender panicked".to_string())??;
    }
    println!(
        "syslog TCP -> durable topic: {total} lines of {} bytes over {} connections in {secs:.2} s: {:.0} lines/s, {:.1} MB/s",
        a.line_size,
        a.connections,
        total as f64 / secs,
        (total as usize * a.line_size) as f64 / secs / 1e6
    );
    Ok(())
}
