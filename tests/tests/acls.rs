//! Authorization with Kafka ACLs (`[authorization]`): a super user from the config manages
//! users and ACLs through Kafka's own admin APIs, and another user can do exactly what the
//! ACLs give: produce, consume in a group, see topics, with denials reported with Kafka's
//! error codes. Driven by confluent-kafka (librdkafka) and Debian's kcat.

use backwaters_tests::raw::{read_frame, request, response};
use backwaters_tests::TestNode;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::io::Write;
use std::process::Command;

const CONFIG: &str = "[sasl]\nmechanisms = [\"SCRAM-SHA-256\", \"SCRAM-SHA-512\", \"PLAIN\"]\n[[sasl.users]]\nname = \"admin\"\npassword = \"admin-pw\"\n[[sasl.users]]\nname = \"bob\"\npassword = \"bob-pw\"\n[authorization]\nsuper_users = [\"admin\"]\n";

const SCRIPT: &str = r#"
import sys, time
from confluent_kafka import Consumer, Producer, KafkaException, KafkaError
from confluent_kafka.admin import (AdminClient, NewTopic, AclBinding, AclBindingFilter, ResourceType, ResourcePatternType,
    AclOperation, AclPermissionType, UserScramCredentialUpsertion, ScramCredentialInfo, ScramMechanism)
bs = sys.argv[1]
def conf(user, pw):
    return {"bootstrap.servers": bs, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user, "sasl.password": pw}
admin = AdminClient(conf("admin", "admin-pw"))
for f in admin.create_topics([NewTopic("secure.logs", 2, 3), NewTopic("public", 1, 3)]).values():
    f.result()
admin.alter_user_scram_credentials([UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"alice-pw")])["alice"].result()
alice = AdminClient(conf("alice", "alice-pw"))
time.sleep(0.5)

# No ACLs yet: alice sees no topic and cannot write.
assert alice.list_topics(timeout=10).topics == {}, alice.list_topics().topics
errors = []
p = Producer(dict(conf("alice", "alice-pw"), **{"enable.idempotence": False, "acks": "all", "message.timeout.ms": 10000}))
p.produce("secure.logs", b"nope", on_delivery=lambda e, m: errors.append(e))
p.flush(15)
assert errors and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
ANY = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY)
def alice_describes():
    # The broker answers CLUSTER_AUTHORIZATION_FAILED (checked on raw sockets); librdkafka
    # turns that top-level error into an empty result here.
    try:
        return alice.describe_acls(ANY).result()
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED, e
        return []
assert alice_describes() == []
print("denied without ACLs")

acls = [AclBinding(ResourceType.TOPIC, "secure.", ResourcePatternType.PREFIXED, "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, "secure.logs", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.GROUP, "alice-", ResourcePatternType.PREFIXED, "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW)]
for f in admin.create_acls(acls).values():
    f.result()
described = admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None, AclOperation.ANY, AclPermissionType.ANY)).result()
assert sorted(map(str, described)) == sorted(map(str, acls)), described
time.sleep(0.5)
assert alice_describes() == [], "alice may not read the ACLs"


# With them: an idempotent producer (WRITE on a topic is enough for its producer id), a group
# member in an "alice-" group, and metadata listing only what alice may describe.
p = Producer(dict(conf("alice", "alice-pw"), **{"enable.idempotence": True, "acks": "all"}))
for i in range(100):
    p.produce("secure.logs", b"s%d" % i)
assert p.flush(30) == 0
assert sorted(alice.list_topics(timeout=10).topics) == ["secure.logs"], alice.list_topics().topics
c = Consumer(dict(conf("alice", "alice-pw"), **{"group.id": "alice-readers", "auto.offset.reset": "earliest"}))
c.subscribe(["secure.logs"])
n = 0
for _ in range(60):
    n += sum(1 for m in c.consume(100, 0.5) if not m.error())
    if n >= 100:
        break
c.commit(asynchronous=False)
c.close()
assert n == 100, n
print("allowed by ACLs")

# A group alice has no ACL for.
c = Consumer(dict(conf("alice", "alice-pw"), **{"group.id": "ops", "auto.offset.reset": "earliest"}))
c.subscribe(["secure.logs"])
seen = None
for _ in range(20):
    for m in c.consume(10, 0.5):
        if m.error():
            seen = m.error()
    if seen:
        break
c.close()
assert seen is not None and seen.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, seen
print("group denied")

# A DENY wins over the prefixed ALLOW; deleting it restores the write.
deny = AclBinding(ResourceType.TOPIC, "secure.logs", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.WRITE, AclPermissionType.DENY)
admin.create_acls([deny])[deny].result()
time.sleep(0.5)
errors = []
p = Producer(dict(conf("alice", "alice-pw"), **{"enable.idempotence": False, "acks": "all", "message.timeout.ms": 10000}))
p.produce("secure.logs", b"denied", on_delivery=lambda e, m: errors.append(e))
p.flush(15)
assert errors and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
deleted = admin.delete_acls([AclBindingFilter(ResourceType.TOPIC, "secure.logs", ResourcePatternType.LITERAL, "User:alice", None, AclOperation.WRITE, AclPermissionType.DENY)])
assert [str(b) for b in list(deleted.values())[0].result()] == [str(deny)], deleted
time.sleep(0.5)
errors = []
p.produce("secure.logs", b"allowed again", on_delivery=lambda e, m: errors.append(e))
p.flush(15)
assert errors == [None], errors
print("deny and delete")
"#;

/// On a raw socket: log in with PLAIN, then ask DescribeAcls v3.
fn describe_acls_as(node: &TestNode, user: &str, password: &str) -> DescribeAclsResponse {
    let mut s = std::net::TcpStream::connect(&node.kafka).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(&request(ApiKey::SaslHandshake, 1, 1, &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")))).unwrap();
    let (_, h): (i32, SaslHandshakeResponse) = response(ApiKey::SaslHandshake, 1, read_frame(&mut s).unwrap());
    assert_eq!(h.error_code, 0);
    let token = format!("\0{user}\0{password}");
    s.write_all(&request(ApiKey::SaslAuthenticate, 2, 2, &SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(token)))).unwrap();
    let (_, a): (i32, SaslAuthenticateResponse) = response(ApiKey::SaslAuthenticate, 2, read_frame(&mut s).unwrap());
    assert_eq!(a.error_code, 0);
    let filter = DescribeAclsRequest::default().with_resource_type_filter(1).with_pattern_type_filter(1).with_operation(1).with_permission_type(1);
    s.write_all(&request(ApiKey::DescribeAcls, 3, 3, &filter)).unwrap();
    response(ApiKey::DescribeAcls, 3, read_frame(&mut s).unwrap()).1
}

#[test]
fn describe_acls_needs_describe_on_the_cluster() {
    let node = TestNode::start_with(CONFIG);
    let bob = describe_acls_as(&node, "bob", "bob-pw");
    assert_eq!(bob.error_code, 31, "CLUSTER_AUTHORIZATION_FAILED: {bob:?}");
    let admin = describe_acls_as(&node, "admin", "admin-pw");
    assert_eq!((admin.error_code, admin.resources.len()), (0, 0));
    // Without [authorization] the ACL APIs say so (SECURITY_DISABLED), as Kafka without an
    // authorizer.
    let open = TestNode::start_with(&CONFIG.replace("[authorization]\nsuper_users = [\"admin\"]\n", ""));
    assert_eq!(describe_acls_as(&open, "bob", "bob-pw").error_code, 54);
}

#[test]
fn acls_let_a_user_do_exactly_what_they_grant() {
    if !backwaters_tests::client_available("python3", &["-c", "import confluent_kafka"]) {
        return;
    }
    let nodes = TestNode::start_cluster(3, CONFIG);
    let bootstrap = nodes.iter().map(|n| n.kafka.as_str()).collect::<Vec<_>>().join(",");
    let out = Command::new("python3").args(["-c", SCRIPT, &bootstrap]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for line in ["denied without ACLs", "allowed by ACLs", "group denied", "deny and delete"] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    let denied: u64 = nodes.iter().map(|n| backwaters_tests::metric(&n.metrics, "backwaters_kafka_authorization_denied_total") as u64).sum();
    assert!(denied >= 3, "denials counted: {denied}");
    // Debian's kcat as alice: the ACLs decide what it lists.
    if backwaters_tests::client_available("kcat", &["-V"]) {
        let mut kcat = Command::new("kcat");
        kcat.env_remove("LD_LIBRARY_PATH").args(["-L", "-b", &bootstrap, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=SCRAM-SHA-512", "-X", "sasl.username=admin", "-X", "sasl.password=admin-pw"]);
        let listed = String::from_utf8_lossy(&kcat.output().unwrap().stdout).to_string();
        assert!(listed.contains("\"secure.logs\"") && listed.contains("\"public\""), "the super user sees every topic: {listed}");
    }
}

/// With TLS client certificates (`kafka_client_auth`) and no SASL, the certificate subject
/// is the principal the ACLs name (`User:CN=reader`), as Kafka's SSL listeners do.
#[test]
fn client_certificate_subjects_are_principals() {
    if !backwaters_tests::client_available("python3", &["-c", "import confluent_kafka"]) {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    backwaters_tests::make_certs(certs.path(), &["nodes=127.0.0.1", "admin=admin.local", "reader=reader.local"]).unwrap();
    let file = |name: &str| certs.path().join(name).display().to_string();
    let config = format!(
        "[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\nkafka = true\nkafka_client_auth = true\n[authorization]\nsuper_users = [\"User:CN=admin\"]\n",
        file("ca.pem"),
        file("nodes.pem"),
        file("nodes.key")
    );
    let node = TestNode::start_with(&config);
    let script = r#"
import sys
from confluent_kafka import Consumer, Producer, KafkaError
from confluent_kafka.admin import AdminClient, NewTopic, AclBinding, ResourceType, ResourcePatternType, AclOperation, AclPermissionType
bs, ca, d = sys.argv[1:4]
def conf(who):
    return {"bootstrap.servers": bs, "security.protocol": "SSL", "ssl.ca.location": ca, "ssl.certificate.location": d + "/" + who + ".pem", "ssl.key.location": d + "/" + who + ".key"}
admin = AdminClient(conf("admin"))
admin.create_topics([NewTopic("audit", 1, 1), NewTopic("hidden", 1, 1)])["audit"].result()
p = Producer(conf("admin"))
for i in range(10):
    p.produce("audit", b"a%d" % i)
assert p.flush(30) == 0
acls = [AclBinding(ResourceType.TOPIC, "audit", ResourcePatternType.LITERAL, "User:CN=reader", "*", AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.GROUP, "reader", ResourcePatternType.PREFIXED, "User:CN=reader", "*", AclOperation.READ, AclPermissionType.ALLOW)]
for f in admin.create_acls(acls).values():
    f.result()
import time; time.sleep(0.5)
reader = AdminClient(conf("reader"))
assert sorted(reader.list_topics(timeout=10).topics) == ["audit"], reader.list_topics().topics
c = Consumer(dict(conf("reader"), **{"group.id": "reader-1", "auto.offset.reset": "earliest"}))
c.subscribe(["audit"])
n = 0
for _ in range(40):
    n += sum(1 for m in c.consume(10, 0.5) if not m.error())
    if n >= 10:
        break
c.close()
assert n == 10, n
errors = []
p = Producer(dict(conf("reader"), **{"enable.idempotence": False, "message.timeout.ms": 10000}))
p.produce("audit", b"x", on_delivery=lambda e, m: errors.append(e))
p.flush(15)
assert errors and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
print("certificate principals passed")
"#;
    let out = Command::new("python3").args(["-c", script, &node.kafka, &file("ca.pem"), &certs.path().display().to_string()]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("certificate principals passed"), "{text}");
}
