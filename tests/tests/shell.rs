//! `backwaters shell`: one-shot mode and the REPL driven through stdin, against a node.

use backwaters_tests::{binary, output_within, TestNode};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn shell(node: &TestNode, args: &[&str]) -> (bool, String, String) {
    let out = output_within(Command::new(binary()).args(["shell", "--bootstrap", &node.grpc]).args(args), Duration::from_secs(60));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ok(node: &TestNode, cmd: &str) -> String {
    let (success, out, err) = shell(node, &["-c", cmd]);
    assert!(success, "{cmd}: {err}");
    out
}

#[test]
fn one_shot_commands_print_tables_and_json() {
    let node = TestNode::start();
    assert!(ok(&node, "topic create audit --partitions 3 --config retention.ms=3600000").contains("created topic audit"));
    let list = ok(&node, "topic list");
    assert!(list.lines().next().unwrap().starts_with("NAME"), "{list}");
    assert!(list.lines().any(|l| l.starts_with("audit") && l.contains(" 3 ")), "{list}");

    let (success, json, _) = shell(&node, &["-o", "json", "-c", "topic describe audit"]);
    assert!(success);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["summary"]["partitions"], "3");
    assert_eq!(v["partitions"].as_array().unwrap().len(), 3);
    assert!(v["configs"].as_array().unwrap().iter().any(|c| c["name"] == "retention.ms" && c["value"] == "3600000"));

    let produced = ok(&node, "produce audit --key-separator : --header src=shell host-a:one host-a:two");
    assert_eq!(produced.lines().count(), 3, "{produced}");
    ok(&node, "topic alter audit --config retention.ms=60000");
    assert!(ok(&node, "topic describe audit").contains("60000"));
    ok(&node, "topic add-partitions audit --total 4");
    let tail = ok(&node, "tail audit --offset earliest --max 1 --filter two");
    assert!(tail.contains("host-a") && tail.contains("two") && !tail.contains("one"), "{tail}");
    let tree = ok(&node, "node tree");
    assert!(tree.contains("partitions") && tree.contains("RESTARTS"), "{tree}");
    let (success, status, _) = shell(&node, &["-o", "json", "-c", "cluster status"]);
    assert!(success);
    let v: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(v["nodes"][0]["zone"], "east");

    // Bad input: one line with a hint, non-zero exit.
    let (success, out, err) = shell(&node, &["-c", "topci list"]);
    assert!(!success && out.is_empty());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("try: help"), "{err}");
    let (success, _, err) = shell(&node, &["-c", "topic create bad/name"]);
    assert!(!success && err.contains("invalid topic name"), "{err}");
}

#[test]
fn unreachable_node_gets_a_clear_message() {
    let port = backwaters_tests::free_port();
    let out = Command::new(binary()).args(["shell", "--bootstrap", &format!("127.0.0.1:{port}"), "-c", "topic list"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no node answered") && err.contains("--bootstrap"), "{err}");
}

#[test]
fn repl_through_stdin_confirms_before_deleting() {
    let node = TestNode::start();
    ok(&node, "topic create keep");
    let mut child = Command::new(binary()).args(["shell", "--bootstrap", &node.grpc]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.as_mut().unwrap().write_all(b"topic list\nhelp topic\ntopic delete keep\nn\nnot-a-command\ntopic list\nexit\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("add-partitions"), "help lists the verbs: {text}");
    assert!(text.contains("Delete topic keep") && text.contains("cancelled"), "{text}");
    assert!(text.contains("error: unrecognized subcommand 'not-a-command'"), "the shell stays usable after an error: {text}");
    let listed = text.lines().filter(|l| l.starts_with("keep ")).count();
    assert_eq!(listed, 2, "the topic is listed before and after the cancelled delete: {text}");
    assert!(ok(&node, "topic list").contains("keep"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follows_a_record_produced_by_a_kafka_client() {
    let node = TestNode::start();
    ok(&node, "topic create live --partitions 2");
    let mut tail = Command::new(binary()).args(["shell", "--bootstrap", &node.grpc, "-c", "tail live --max 1"]).stdout(Stdio::piped()).spawn().unwrap();
    // Let the tail subscribe at "latest" before producing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &node.kafka).create().unwrap();
    producer.send(FutureRecord::to("live").key("fw-1").payload("DENY tcp 10.0.0.1:22"), Duration::from_secs(5)).await.unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
        let _ = tail.kill();
        panic!("tail printed nothing within 30 s");
    });
    assert!(line.contains("fw-1") && line.contains("DENY tcp 10.0.0.1:22"), "{line}");
    assert!(tail.wait().unwrap().success());
}
