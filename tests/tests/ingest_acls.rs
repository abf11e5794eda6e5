//! Syslog and RELP senders under the ACLs (`[authorization]`): a TLS sender with a client
//! certificate is the certificate's subject, any other sender `User:ANONYMOUS`; each needs
//! WRITE on its messages' topic, granted with Kafka's CreateAcls (confluent-kafka here).
//! Refused streams are closed, refused datagrams dropped, refused RELP messages answered
//! 500; all counted. Senders: openssl s_client with and without a certificate, `logger`
//! over TCP and UDP, and a raw RELP session.

use backwaters_tests::{client_available, free_port, TestNode};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AUTH: &str = "[sasl]\nmechanisms = [\"SCRAM-SHA-256\"]\n[[sasl.users]]\nname = \"admin\"\npassword = \"admin-pw\"\n[authorization]\nsuper_users = [\"admin\"]\n";

/// Creates ALLOW ACLs on topics as the super user: `PRINCIPAL|OPERATION|PATTERN|TOPIC`.
const GRANT: &str = r#"
import sys
from confluent_kafka.admin import AdminClient, AclBinding, ResourceType, ResourcePatternType, AclOperation, AclPermissionType
admin = AdminClient({"bootstrap.servers": sys.argv[1], "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "admin", "sasl.password": "admin-pw"})
acls = []
for spec in sys.argv[2:]:
    principal, op, pattern, name = spec.split("|")
    acls.append(AclBinding(ResourceType.TOPIC, name, ResourcePatternType[pattern], principal, "*", AclOperation[op], AclPermissionType.ALLOW))
for f in admin.create_acls(acls).values():
    f.result()
"#;

/// Reads a topic from the start as the super user (the listener takes SASL logins only) until
/// `want` records came or `limit` seconds passed: one line per record value.
const READ: &str = r#"
import sys, time
from confluent_kafka import Consumer, TopicPartition
bs, topic, want, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
c = Consumer({"bootstrap.servers": bs, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "admin", "sasl.password": "admin-pw", "group.id": "reader", "enable.auto.commit": False})
md = c.list_topics(topic, timeout=10).topics.get(topic)
parts = list(md.partitions) if md is not None and md.error is None else []
c.assign([TopicPartition(topic, p, 0) for p in parts])
got, t0 = [], time.time()
while parts and len(got) < want and time.time() - t0 < limit:
    m = c.poll(0.2)
    if m is not None and m.error() is None:
        got.append(m.value().decode())
for v in got:
    print(v.replace("\n", " "))
"#;

fn read_within(node: &TestNode, topic: &str, want: usize, limit_s: u32) -> Vec<String> {
    let out = Command::new("python3").args(["-c", READ, &node.kafka, topic, &want.to_string(), &limit_s.to_string()]).output().unwrap();
    assert!(out.status.success(), "read {topic}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn read(node: &TestNode, topic: &str, want: usize) -> Vec<String> {
    read_within(node, topic, want, 20)
}

fn grant(node: &TestNode, specs: &[&str]) {
    let out = Command::new("python3").args(["-c", GRANT, &node.kafka]).args(specs).output().unwrap();
    assert!(out.status.success(), "create_acls: {}", String::from_utf8_lossy(&out.stderr));
}

/// Sends `input` over TLS trusting `ca`, showing `identity` (certificate, key) if given;
/// true when the handshake held.
fn tls_send(port: u16, ca: &Path, identity: Option<(&Path, &Path)>, input: &str) -> bool {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-verify_return_error", "-quiet", "-no_ign_eof", "-CAfile"]).arg(ca);
    if let Some((cert, key)) = identity {
        cmd.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    let mut c = cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    !err.contains("alert") && !err.contains("verify error") && out.status.success()
}

fn logger(port: u16, transport: &str, message: &str) {
    let s = Command::new("logger").args(["-n", "127.0.0.1", "-P", &port.to_string(), transport, "--rfc5424", "-t", "sshd"]).arg(message).status().unwrap();
    assert!(s.success());
}

/// One RELP session: open, then each message; the answers' text after the transaction
/// number and "rsp", in order.
fn relp(port: u16, messages: &[&str]) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let offers = "relp_version=0\nrelp_software=test\ncommands=syslog";
    let mut out = format!("1 open {} {offers}\n", offers.len());
    for (i, m) in messages.iter().enumerate() {
        out.push_str(&format!("{} syslog {} {m}\n", i + 2, m.len()));
    }
    s.write_all(out.as_bytes()).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let t0 = Instant::now();
    while got.matches("rsp").count() < messages.len() + 1 && t0.elapsed() < Duration::from_secs(15) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    // Frames: "TXNR rsp LEN DATA\n"; the open answer (1) is left out.
    let mut answers: Vec<String> = Vec::new();
    for txnr in 2..messages.len() + 2 {
        let tag = format!("{txnr} rsp ");
        let at = got.find(&tag).unwrap_or_else(|| panic!("no answer to {txnr}: {got}"));
        let rest = &got[at + tag.len()..];
        let (len, data) = rest.split_once(' ').unwrap();
        let len: usize = len.parse().unwrap();
        answers.push(data[..len].to_string());
    }
    answers
}

fn denied(node: &TestNode, kind: &str, port: u16) -> f64 {
    let page = node.metrics_page();
    let name = format!("backwaters_ingest_denied_total{{listener=\"{kind}@127.0.0.1:{port}\"}}");
    page.lines().find_map(|l| l.strip_prefix(&name)).map(|v| v.trim().parse().unwrap()).unwrap_or(0.0)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn syslog_and_relp_senders_need_write_on_their_topic() {
    if !client_available("openssl", &["version"]) || !client_available("logger", &["--version"]) || !client_available("python3", &["-c", "import confluent_kafka"]) {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    backwaters_tests::make_certs(certs.path(), &["server=127.0.0.1", "host-a=127.0.0.1", "host-b=127.0.0.1"]).unwrap();
    let file = |n: &str| certs.path().join(n);
    let (tls_port, tcp_port, relp_port) = (free_port(), free_port(), free_port());
    let listeners = format!(
        "[[nodes.ingest]]\nkind = \"syslog-tls\"\nlisten = \"127.0.0.1:{tls_port}\"\ntopic = \"logs.tls\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\n\
         [[nodes.ingest]]\nkind = \"syslog-tcp\"\nlisten = \"127.0.0.1:{tcp_port}\"\ntopic = \"logs.plain\"\n\
         [[nodes.ingest]]\nkind = \"syslog-udp\"\nlisten = \"127.0.0.1:{tcp_port}\"\ntopic = \"logs.plain\"\n\
         [[nodes.ingest]]\nkind = \"relp\"\nlisten = \"127.0.0.1:{relp_port}\"\ntopic = \"logs.relp\"\n",
        file("server.pem").display(),
        file("server.key").display(),
        file("ca.pem").display()
    );
    let node = TestNode::start_full(AUTH, &listeners);
    // Nobody may write yet (the test reads back as the super user).
    let (a, b) = ((file("host-a.pem"), file("host-a.key")), (file("host-b.pem"), file("host-b.key")));

    // Without a certificate the TLS listener refuses the handshake. (Under TLS 1.3 the
    // client may finish before the server's alert arrives, so the node's log is what tells;
    // that nothing was written is checked below: logs.tls ends up with host-a's line only.)
    tls_send(tls_port, &file("ca.pem"), None, "<13>1 - h app - - - no certificate\n");
    wait_for("the refused handshake", || node.log().contains("TLS handshake failed"));
    // With one but no ACL: nothing is written, and the refusals are counted.
    tls_send(tls_port, &file("ca.pem"), Some((&a.0, &a.1)), "<13>1 - host-a app - - - before the grant\n");
    logger(tcp_port, "-T", "tcp before the grant");
    logger(tcp_port, "-d", "udp before the grant");
    let refused = relp(relp_port, &["<13>1 - h app - - - relp refused"]);
    assert!(refused[0].starts_with("500 User:ANONYMOUS may not WRITE topic \"logs.relp\""), "{refused:?}");
    wait_for("the refusals to be counted", || denied(&node, "syslog-tls", tls_port) >= 1.0 && denied(&node, "syslog-tcp", tcp_port) >= 1.0 && denied(&node, "syslog-udp", tcp_port) >= 1.0 && denied(&node, "relp", relp_port) >= 1.0);
    assert!(node.log().contains("refused by the ACLs"), "a closed connection names the reason");

    // host-a (the certificate's subject) may write logs.tls; anonymous senders logs.plain.
    // (CREATE too: the first message creates its topic, as a Kafka producer's would.)
    grant(&node, &["User:CN=host-a|WRITE|LITERAL|logs.tls", "User:CN=host-a|CREATE|LITERAL|logs.tls", "User:ANONYMOUS|WRITE|LITERAL|logs.plain", "User:ANONYMOUS|CREATE|LITERAL|logs.plain"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(tls_send(tls_port, &file("ca.pem"), Some((&a.0, &a.1)), "<13>1 - host-a app - - - from host-a\n"));
    tls_send(tls_port, &file("ca.pem"), Some((&b.0, &b.1)), "<13>1 - host-b app - - - from host-b\n");
    logger(tcp_port, "-T", "tcp after the grant");
    logger(tcp_port, "-d", "udp after the grant");
    let tls = read(&node, "logs.tls", 1);
    assert!(tls.len() == 1 && tls[0].contains("from host-a"), "{tls:?}");
    let plain = read(&node, "logs.plain", 2);
    assert!(plain.len() == 2 && plain.iter().any(|t| t.contains("tcp after")) && plain.iter().any(|t| t.contains("udp after")), "{plain:?}");
    wait_for("host-b's refusal", || denied(&node, "syslog-tls", tls_port) >= 2.0);
    assert_eq!(read_within(&node, "logs.tls", 2, 3).len(), 1, "host-b's message was written");
    // RELP still refused (no grant for logs.relp), and answered in order with a good one
    // once granted.
    grant(&node, &["User:ANONYMOUS|WRITE|LITERAL|logs.relp", "User:ANONYMOUS|CREATE|LITERAL|logs.relp"]);
    std::thread::sleep(Duration::from_millis(500));
    let answers = relp(relp_port, &["<13>1 - h app - - - relp one", "<13>1 - h app - - - relp two"]);
    assert_eq!(answers, vec!["200 OK", "200 OK"]);
    assert_eq!(read(&node, "logs.relp", 2).len(), 2);
}
