//! Clients security teams actually run, unmodified: Debian's kcat 1.7.1 (librdkafka 2.0.2),
//! confluent-kafka (librdkafka 2.x), kafka-python, aiokafka and kafkajs.
//!
//! `.ci/run` installs them and sets `BACKWATERS_REQUIRE_CLIENTS=1`, which turns a missing
//! client into a failure; elsewhere a missing client is reported and its test skipped.

use backwaters_tests::TestNode;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn available(cmd: &str, args: &[&str]) -> bool {
    backwaters_tests::client_available(cmd, args)
}

fn clients_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/clients"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run client");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "client failed:\n{text}");
    eprintln!("{text}");
    text
}

#[test]
fn kcat_1_7_produces_consumes_lists_and_queries() {
    if !available("kcat", &["-V"]) {
        return;
    }
    let node = TestNode::start();
    let mut p = Command::new("kcat").args(["-P", "-b", &node.kafka, "-t", "syslog", "-K", ":", "-z", "snappy"]).stdin(Stdio::piped()).spawn().unwrap();
    p.stdin.as_mut().unwrap().write_all(b"web1:Nov 28 sshd[1]: accepted\nweb2:Nov 28 sudo: root\n").unwrap();
    assert!(p.wait_with_output().unwrap().status.success());
    let out = run(Command::new("kcat").args(["-C", "-b", &node.kafka, "-t", "syslog", "-e", "-f", "%k|%s|%o\n"]));
    assert!(out.contains("web1|Nov 28 sshd[1]: accepted|0"), "{out}");
    assert!(out.contains("web2|Nov 28 sudo: root|1"), "{out}");
    let meta = run(Command::new("kcat").args(["-L", "-b", &node.kafka]));
    assert!(meta.contains("topic \"syslog\" with 1 partitions"), "{meta}");
    let q = run(Command::new("kcat").args(["-Q", "-b", &node.kafka, "-t", "syslog:0:-1"]));
    assert!(q.contains("offset 2"), "{q}");
    // Balanced consumer (librdkafka 2.0's group flow): reads everything and commits, so a
    // second run of the same group has nothing left to read.
    let group = ["-b", &node.kafka, "-G", "kcat-group", "syslog", "-e", "-f", "%s\n", "-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=100"];
    let first = run(Command::new("kcat").args(group));
    assert!(first.contains("Nov 28 sshd[1]: accepted") && first.contains("Nov 28 sudo: root"), "{first}");
    let second = run(Command::new("kcat").args(group));
    assert!(!second.contains("accepted"), "committed offsets were not used: {second}");
}

#[test]
fn python_clients_confluent_kafka_python_aiokafka() {
    if !available("python3", &["-c", "import confluent_kafka, kafka, aiokafka"]) {
        return;
    }
    let node = TestNode::start();
    let out = run(Command::new("python3").arg(clients_dir().join("python_clients.py")).arg(&node.kafka));
    assert!(out.contains("all python clients passed"), "{out}");
}

#[test]
fn kafkajs_client() {
    let module = clients_dir().join("node_modules/kafkajs");
    if !module.exists() {
        assert!(std::env::var("BACKWATERS_REQUIRE_CLIENTS").is_err(), "kafkajs is required but tests/clients/node_modules is missing (npm install there)");
        eprintln!("SKIPPED: kafkajs is not installed; run npm install in tests/clients");
        return;
    }
    let node = TestNode::start();
    let out = run(Command::new("node").arg(clients_dir().join("kafkajs_client.js")).arg(&node.kafka));
    assert!(out.contains("kafkajs passed"), "{out}");
}

/// The same clients against three nodes, bootstrapped through node 2: topics replicated three
/// ways, partition leaders and group coordinators spread over the nodes (each client family
/// finds its coordinator and leaders its own way).
#[test]
fn python_clients_and_kafkajs_against_a_three_node_cluster() {
    let python = available("python3", &["-c", "import confluent_kafka, kafka, aiokafka"]);
    let kafkajs = clients_dir().join("node_modules/kafkajs").exists();
    if !python && !kafkajs {
        return;
    }
    let nodes = TestNode::start_cluster(3, "");
    let bootstrap = &nodes[1].kafka;
    if python {
        let out = run(Command::new("python3").arg(clients_dir().join("python_clients.py")).arg(bootstrap).arg("3"));
        assert!(out.contains("all python clients passed"), "{out}");
    }
    if kafkajs {
        let out = run(Command::new("node").arg(clients_dir().join("kafkajs_client.js")).arg(bootstrap));
        assert!(out.contains("kafkajs passed"), "{out}");
    }
}
