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
    let total: i64 = text
        .lines()
        .skip_while(|l| !l.starts_with("PARTITION"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // Columns end with HIGH WATERMARK, LOG END, UNCOMMITTED.
        .map(|l| l.split_whitespace().rev().nth(2).and_then(|hw| hw.parse::<i64>().ok()).unwrap_or_else(|| panic!("no high watermark in {l:?}")))
        .sum();
    assert_eq!(total, 8001, "{text}");
}
