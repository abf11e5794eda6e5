//! `backwaters bench`: both producers (librdkafka and the native one) write what they say,
//! and `bench consume` reads all of it back, against a real node.

use backwaters_tests::{binary, output_within, TestNode};
use std::process::Command;
use std::time::Duration;

fn bench(node: &TestNode, args: &[&str]) -> String {
    let out = output_within(Command::new(binary()).args(["bench"]).args(args).args(["--bootstrap", &node.kafka, "--topic", "b", "--partitions", "3", "--record-size", "200"]), Duration::from_secs(120));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    assert!(out.status.success(), "bench {args:?} failed\nstdout: {stdout}\nstderr: {stderr}");
    stdout
}

/// The sum of the partitions' high watermarks in a `topic describe` table.
fn records_held(describe: &str) -> i64 {
    describe
        .lines()
        .skip_while(|l| !l.starts_with("PARTITION"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // Columns end with HIGH WATERMARK, LOG END, UNCOMMITTED.
        .map(|l| l.split_whitespace().rev().nth(2).and_then(|hw| hw.parse::<i64>().ok()).unwrap_or_else(|| panic!("no high watermark in {l:?}")))
        .sum()
}

#[test]
fn both_producers_write_what_they_report_and_consume_reads_it_back() {
    let node = TestNode::start();
    let native = bench(&node, &["produce", "--records", "5000", "--client", "native", "--acks", "all"]);
    assert!(native.contains("produce: 5000 records") && native.contains(" 0 errors"), "{native}");
    assert!(native.contains("latency: p50"), "{native}");
    let rdkafka = bench(&node, &["produce", "--records", "3000", "--client", "librdkafka", "--acks", "all"]);
    assert!(rdkafka.contains("produce: 3000 records") && rdkafka.contains(" 0 errors"), "{rdkafka}");
    // The native producer's batches are idempotent (one producer id, sequences from 0 per
    // partition) and every record is there once: 8000 in all, plus librdkafka's warm-up record.
    let consumed = bench(&node, &["consume", "--records", "8001"]);
    assert!(consumed.contains("consume: 8001 records"), "{consumed}");
    // And nothing more: the partitions' high watermarks add up to exactly that.
    let out = output_within(Command::new(binary()).args(["shell", "--bootstrap", &node.grpc, "-c", "topic describe b"]), Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(records_held(&text), 8001, "{text}");
}

/// The native producer follows leaders that move mid-run, as librdkafka does: every
/// partition's leadership is handed over while it writes, refused batches go again to the
/// new leaders, and the topic ends with exactly the records it reported (no batch written
/// twice: the resends keep their producer sequence numbers).
#[test]
fn native_producer_follows_moving_leaders_without_duplicates() {
    let nodes = TestNode::start_cluster(3, "");
    let bootstrap = nodes.iter().map(|n| n.kafka.clone()).collect::<Vec<_>>().join(",");
    let mut child = Command::new(binary())
        .args(["bench", "produce", "--client", "native", "--records", "16000", "--rate", "2000", "--bootstrap", &bootstrap, "--topic", "moving", "--partitions", "3", "--record-size", "200"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bench starts");
    // Its progress (stderr), read as it comes: the run starts once leadership has settled on
    // the preferred replicas ("native client: ..."), which can take a rebalance period.
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let (pipe, stderr) = (child.stderr.take().expect("stderr"), stderr.clone());
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)).map_while(Result::ok) {
                let mut s = stderr.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        })
    };
    let shell = |cmd: &str| {
        let out = output_within(Command::new(binary()).args(["shell", "--bootstrap", &nodes[0].grpc, "-c", cmd]), Duration::from_secs(30));
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !stderr.lock().unwrap().contains("native client:") {
        assert!(std::time::Instant::now() < deadline, "the bench never started: {}", stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    for p in 0..3 {
        let out = shell(&format!("topic transfer-leader moving {p}"));
        assert!(out.contains(" -> "), "transfer of partition {p}: {out}");
    }
    let out = child.wait_with_output().expect("bench ends");
    reader.join().expect("stderr reader");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), stderr.lock().unwrap().clone());
    assert!(out.status.success(), "bench failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("produce: 16000 records") && stdout.contains(" 0 errors"), "{stdout}");
    assert!(stderr.contains("resent to"), "no batch was refused by a moved leader: {stderr}");
    let text = shell("topic describe moving");
    assert_eq!(records_held(&text), 16000, "{text}");
}

/// `bench produce --transaction-size`: librdkafka's transactional producer commits every
/// transaction, and the run reports them with the commit latency.
#[test]
fn transactional_bench_commits_every_transaction() {
    let node = TestNode::start();
    let out = bench(&node, &["produce", "--records", "1000", "--transaction-size", "100"]);
    assert!(out.contains("produce: 1000 records") && out.contains(" 0 errors"), "{out}");
    assert!(out.contains("transactions: 10 of 100 records"), "{out}");
    assert!(out.contains("commit (flush + EndTxn) latency: p50"), "{out}");
    let refused = output_within(Command::new(binary()).args(["bench", "produce", "--bootstrap", &node.kafka, "--topic", "b", "--transaction-size", "10", "--client", "native"]), Duration::from_secs(60));
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--transaction-size needs"), "{refused:?}");
}
