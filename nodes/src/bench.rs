//! `backwaters bench`: produce / consume load through librdkafka (the `rdkafka` crate), with
//! throughput and latency percentiles from hdrhistogram. Works against any Kafka-compatible
//! broker, so the same command measures Backwaters and a reference broker alike.

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Acks {
    All,
    #[value(name = "1")]
    One,
    #[value(name = "0")]
    Zero,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Client {
    /// librdkafka through the `rdkafka` crate: what most users run.
    Librdkafka,
    /// Backwaters' own lean producer (`bench_native`): measures the broker without
    /// librdkafka's busy polling, which competes with the brokers for CPU on a small machine.
    Native,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Kafka bootstrap address(es), comma-separated.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic to use; created with --partitions if missing.
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Number of records.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    #[arg(long, value_enum, default_value = "all")]
    pub acks: Acks,
    #[arg(long, value_enum, default_value = "none")]
    pub compression: Compression,
    /// librdkafka linger.ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// librdkafka batch.size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: usize,
    /// Target send rate in records/s (0 = as fast as possible). Latency is only meaningful
    /// below saturation: at full speed it mostly measures the client's own queue.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Use the idempotent producer (only with --acks all).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub idempotence: bool,
    /// Producer used by `bench produce`.
    #[arg(long, value_enum, default_value = "librdkafka")]
    pub client: Client,
    /// Records per transaction (librdkafka's transactional producer: begin, send, commit);
    /// 0 = no transactions. Prints transactions/s and the commit latency.
    #[arg(long, default_value_t = 0)]
    pub transaction_size: u64,
}

struct Ctx {
    hist: Mutex<Histogram<u64>>,
    errors: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
}

struct BenchContext(Arc<Ctx>);
impl ClientContext for BenchContext {}
impl ProducerContext for BenchContext {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, r: &DeliveryResult<'_>, sent: Box<Instant>) {
        if r.is_err() {
            self.0.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let us = sent.elapsed().as_micros() as u64;
        let _ = self.0.hist.lock().expect("lock").record(us.max(1));
        self.0.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn mb(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

fn print_latency(label: &str, h: &Histogram<u64>) {
    println!(
        "{label} latency: p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}

async fn ensure_topic(a: &BenchArgs) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &a.bootstrap).create().map_err(|e| e.to_string())?;
    let t = NewTopic::new(&a.topic, a.partitions, TopicReplication::Fixed(-1));
    let r = admin.create_topics([&t], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))).await.map_err(|e| format!("cannot reach {}: {e}", a.bootstrap))?;
    for x in r {
        match x {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(format!("creating topic {t}: {e}")),
        }
    }
    Ok(())
}

/// Random-looking but fixed payload (compressible only as real logs are: not at all here).
fn payload(size: usize) -> Vec<u8> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    (0..size)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b'a' + (seed % 26) as u8
        })
        .collect()
}

/// Prints the throughput line and the latency line of a produce run.
pub fn print_summary(a: &BenchArgs, secs: f64, errors: u64, h: &Histogram<u64>) {
    let bytes = (a.records as usize * a.record_size) as f64;
    println!("produce: {} records, {:.0} records/s, {:.1} MB/s, {errors} errors, {secs:.2} s", a.records, a.records as f64 / secs, mb(bytes) / secs);
    print_latency("produce", h);
}

pub async fn produce(a: BenchArgs) -> Result<(), String> {
    ensure_topic(&a).await?;
    if a.transaction_size > 0 && (a.client == Client::Native || !matches!(a.acks, Acks::All)) {
        return Err("--transaction-size needs --client librdkafka and --acks all (transactions are idempotent)".into());
    }
    if a.client == Client::Native {
        eprintln!("producing {} records of {} bytes to {} with the native client (acks={:?}, idempotence={})", a.records, a.record_size, a.topic, a.acks, a.idempotence);
        return crate::bench_native::produce(&a, payload(a.record_size).into()).await;
    }
    let ctx = Arc::new(Ctx { hist: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")), errors: Default::default(), done: Default::default() });
    let acks = match a.acks {
        Acks::All => "all",
        Acks::One => "1",
        Acks::Zero => "0",
    };
    let compression = format!("{:?}", a.compression).to_lowercase();
    let mut config = ClientConfig::new();
    if a.transaction_size > 0 {
        config.set("transactional.id", format!("backwaters-bench-{}", std::process::id()));
    }
    let producer: ThreadedProducer<BenchContext> = config
        .set("bootstrap.servers", &a.bootstrap)
        .set("acks", acks)
        .set("enable.idempotence", (a.idempotence && matches!(a.acks, Acks::All)).to_string())
        .set("compression.type", &compression)
        .set("linger.ms", a.linger_ms.to_string())
        .set("batch.size", a.batch_size.to_string())
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(BenchContext(ctx.clone()))
        .map_err(|e| e.to_string())?;
    let payload = payload(a.record_size);
    eprintln!("producing {} records of {} bytes to {} (acks={acks}, compression={compression}, idempotence={})", a.records, a.record_size, a.topic, a.idempotence);
    let txn = a.transaction_size;
    if txn > 0 {
        producer.init_transactions(Duration::from_secs(30)).map_err(|e| format!("init_transactions: {e}"))?;
        producer.begin_transaction().map_err(|e| e.to_string())?;
    }
    // Warm up (connection, metadata, producer id) so start-up is not counted as latency.
    producer.send(BaseRecord::with_opaque_to(&a.topic, Box::new(Instant::now())).payload(&payload).key("warmup")).map_err(|(e, _)| format!("send failed: {e}"))?;
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(30)).map_err(|e| format!("warm-up record not acknowledged: {e}"))?;
    if txn > 0 {
        producer.commit_transaction(Duration::from_secs(30)).map_err(|e| format!("commit: {e}"))?;
    }
    let mut commits = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    ctx.hist.lock().expect("lock").reset();
    ctx.done.store(0, std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    let mut last_report = Instant::now();
    let mut i = 0u64;
    while i < a.records {
        if a.rate > 0 {
            let due = Duration::from_secs_f64(i as f64 / a.rate as f64);
            let elapsed = start.elapsed();
            if due > elapsed {
                std::thread::sleep((due - elapsed).min(Duration::from_millis(10)));
                continue;
            }
        }
        if txn > 0 && i.is_multiple_of(txn) {
            producer.begin_transaction().map_err(|e| e.to_string())?;
        }
        let key = (i % 1024).to_string();
        let rec = BaseRecord::with_opaque_to(&a.topic, Box::new(Instant::now())).payload(&payload).key(&key);
        match producer.send(rec) {
            Ok(()) => {
                i += 1;
                if txn > 0 && (i.is_multiple_of(txn) || i == a.records) {
                    // commit_transaction flushes first, but the rdkafka crate's flush waits
                    // up to 100 ms per round for events that ThreadedProducer's own polling
                    // thread takes: wait for the deliveries here, then commit.
                    let t = Instant::now();
                    while producer.in_flight_count() > 0 && t.elapsed() < Duration::from_secs(60) {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    producer.commit_transaction(Duration::from_secs(60)).map_err(|e| format!("commit: {e}"))?;
                    let _ = commits.record(t.elapsed().as_micros().max(1) as u64);
                }
            }
            Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), _)) => std::thread::sleep(Duration::from_millis(1)),
            Err((e, _)) => return Err(format!("send failed: {e}")),
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            let done = ctx.done.load(std::sync::atomic::Ordering::Relaxed);
            eprintln!("  {done} acknowledged ({:.0} records/s)", done as f64 / start.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
    }
    while ctx.done.load(std::sync::atomic::Ordering::Relaxed) < a.records {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    print_summary(&a, secs, ctx.errors.load(std::sync::atomic::Ordering::Relaxed), &ctx.hist.lock().expect("lock"));
    if txn > 0 {
        println!("transactions: {} of {txn} records, {:.1} transactions/s", commits.len(), commits.len() as f64 / secs);
        print_latency("commit (flush + EndTxn)", &commits);
    }
    Ok(())
}

pub async fn consume(a: BenchArgs) -> Result<(), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("group.id", "backwaters-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576")
        .create()
        .map_err(|e| e.to_string())?;
    let md = consumer.fetch_metadata(Some(&a.topic), Duration::from_secs(10)).map_err(|e| format!("cannot reach {}: {e}", a.bootstrap))?;
    let parts = md.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
    if parts == 0 {
        return Err(format!("topic {} does not exist or has no partitions; run `backwaters bench produce` first", a.topic));
    }
    let mut tpl = TopicPartitionList::new();
    let mut available = 0i64;
    for p in 0..parts as i32 {
        let (lo, hi) = consumer.fetch_watermarks(&a.topic, p, Duration::from_secs(10)).map_err(|e| e.to_string())?;
        available += hi - lo;
        tpl.add_partition_offset(&a.topic, p, rdkafka::Offset::Beginning).map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let target = (a.records as i64).min(available).max(0) as u64;
    eprintln!("consuming {target} records from {} ({parts} partitions)", a.topic);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let start = Instant::now();
    let mut last = Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < target {
        match consumer.poll(Duration::from_secs(5)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload_len() as u64;
                let now = Instant::now();
                let _ = hist.record((now - last).as_micros().max(1) as u64);
                last = now;
            }
            Some(Err(e)) => return Err(format!("consume failed: {e}")),
            None => return Err(format!("no record for 5 s after {n} of {target}")),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("consume: {n} records, {:.0} records/s, {:.1} MB/s, {:.2} s", n as f64 / secs, mb(bytes as f64) / secs, secs);
    print_latency("inter-record gap", &hist);
    Ok(())
}
