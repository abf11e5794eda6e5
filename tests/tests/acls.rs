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
    // The gRPC API takes the same certificate subjects as principals.
    use backwaters_proto::grpc::v1::{admin_client::AdminClient, ListTopicsRequest};
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let list_as = |who: Option<&str>| {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(file("ca.pem")).unwrap()));
        if let Some(w) = who {
            tls = tls.identity(Identity::from_pem(std::fs::read(file(&format!("{w}.pem"))).unwrap(), std::fs::read(file(&format!("{w}.key"))).unwrap()));
        }
        rt.block_on(async {
            let ch = Endpoint::from_shared(format!("https://{}", node.grpc)).unwrap().tls_config(tls).unwrap().connect().await.unwrap();
            AdminClient::new(ch).list_topics(ListTopicsRequest::default()).await.map(|r| r.into_inner().topics.into_iter().map(|t| t.name).collect::<Vec<_>>())
        })
    };
    assert_eq!(list_as(Some("reader")).unwrap(), ["audit"]);
    let mut all = list_as(Some("admin")).unwrap();
    all.sort();
    assert_eq!(all, ["audit", "hidden"]);
    assert_eq!(list_as(None).unwrap(), Vec::<String>::new(), "no certificate: User:ANONYMOUS sees nothing");
}

/// Logs in with PLAIN on a raw socket and creates one ACL with CreateAcls v3.
fn create_acl_as(node: &TestNode, (user, password): (&str, &str), resource_type: i8, name: &str, principal: &str, operation: i8) {
    let mut s = std::net::TcpStream::connect(&node.kafka).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(&request(ApiKey::SaslHandshake, 1, 1, &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")))).unwrap();
    let _: (i32, SaslHandshakeResponse) = response(ApiKey::SaslHandshake, 1, read_frame(&mut s).unwrap());
    let token = format!("\0{user}\0{password}");
    s.write_all(&request(ApiKey::SaslAuthenticate, 2, 2, &SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(token)))).unwrap();
    let (_, a): (i32, SaslAuthenticateResponse) = response(ApiKey::SaslAuthenticate, 2, read_frame(&mut s).unwrap());
    assert_eq!(a.error_code, 0);
    let creation = create_acls_request::AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_string(principal.to_string()))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(operation)
        .with_permission_type(3);
    s.write_all(&request(ApiKey::CreateAcls, 3, 3, &CreateAclsRequest::default().with_creations(vec![creation]))).unwrap();
    let (_, r): (i32, CreateAclsResponse) = response(ApiKey::CreateAcls, 3, read_frame(&mut s).unwrap());
    assert_eq!(r.results[0].error_code, 0, "{r:?}");
}

/// The gRPC API obeys the same users and ACLs as the Kafka listeners: a caller logs in with
/// `authorization: Basic` (or is `User:ANONYMOUS`), a wrong password is UNAUTHENTICATED, and
/// what the ACLs do not allow is PERMISSION_DENIED, on every service; lists leave out what
/// a caller may not describe. Driven by a tonic client and by `backwaters shell --user`.
#[test]
fn grpc_calls_obey_the_same_users_and_acls() {
    use base64::Engine;
    use backwaters_proto::grpc::v1::{self as pb, admin_client::AdminClient, consume_client::ConsumeClient, produce_client::ProduceClient};
    let node = TestNode::start_with(CONFIG);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ch = rt.block_on(backwaters_tests::grpc_endpoint(&node.grpc, None).unwrap().connect()).unwrap();
    let as_user = |user: Option<(&str, &str)>| {
        let login: Option<tonic::metadata::AsciiMetadataValue> = user.map(|(u, p)| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))).parse().unwrap());
        move |mut req: tonic::Request<()>| {
            if let Some(v) = &login {
                req.metadata_mut().insert("authorization", v.clone());
            }
            Ok(req)
        }
    };
    let admin_login = as_user(Some(("admin", "admin-pw")));
    let bob_login = as_user(Some(("bob", "bob-pw")));
    let mut anon = AdminClient::with_interceptor(ch.clone(), as_user(None));
    let mut wrong = AdminClient::with_interceptor(ch.clone(), as_user(Some(("admin", "nope"))));
    let mut admin = AdminClient::with_interceptor(ch.clone(), admin_login.clone());
    let mut bob = AdminClient::with_interceptor(ch.clone(), bob_login.clone());
    let create = |name: &str| pb::CreateTopicRequest { name: name.into(), partitions: 1, replication_factor: 1, configs: vec![] };
    rt.block_on(async {
        let e = anon.create_topic(create("grpc.logs")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        assert!(e.message().contains("User:ANONYMOUS may not CREATE"), "{}", e.message());
        let e = wrong.list_topics(pb::ListTopicsRequest::default()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
        admin.create_topic(create("grpc.logs")).await.unwrap();
        admin.create_topic(create("grpc.other")).await.unwrap();
        let mut produce_admin = ProduceClient::with_interceptor(ch.clone(), admin_login.clone());
        let rec = |v: &str| pb::Record { value: v.as_bytes().to_vec(), ..Default::default() };
        let p = produce_admin.produce(pb::ProduceRequest { topic: "grpc.logs".into(), partition: 0, records: vec![rec("one"), rec("two")], acks: 0 }).await.unwrap().into_inner();
        assert_eq!((p.base_offset, p.last_offset), (0, 1));

        // bob has no ACL yet: he sees nothing and may do nothing.
        assert!(bob.list_topics(pb::ListTopicsRequest::default()).await.unwrap().into_inner().topics.is_empty());
        let mut produce_bob = ProduceClient::with_interceptor(ch.clone(), bob_login.clone());
        let e = produce_bob.produce(pb::ProduceRequest { topic: "grpc.logs".into(), partition: 0, records: vec![rec("x")], acks: 0 }).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        assert!(e.message().contains("User:bob may not WRITE topic \"grpc.logs\""), "{}", e.message());
        let mut consume_bob = ConsumeClient::with_interceptor(ch.clone(), bob_login.clone());
        let read = pb::ConsumeRequest { topic: "grpc.logs".into(), partition: 0, offset: -2, max_records: 2, max_wait_ms: 1000, ..Default::default() };
        assert_eq!(consume_bob.consume(read.clone()).await.unwrap_err().code(), tonic::Code::PermissionDenied);
        assert_eq!(bob.delete_topic(pb::DeleteTopicRequest { name: "grpc.other".into() }).await.unwrap_err().code(), tonic::Code::PermissionDenied);
        assert_eq!(bob.cluster_status(pb::ClusterStatusRequest { local_only: true }).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    });

    // An ACL made through Kafka's CreateAcls lets bob read grpc.logs over gRPC.
    create_acl_as(&node, ("admin", "admin-pw"), 2, "grpc.logs", "User:bob", 3);
    std::thread::sleep(std::time::Duration::from_millis(500));
    rt.block_on(async {
        let topics: Vec<String> = bob.list_topics(pb::ListTopicsRequest::default()).await.unwrap().into_inner().topics.into_iter().map(|t| t.name).collect();
        assert_eq!(topics, ["grpc.logs"]);
        let mut consume_bob = ConsumeClient::with_interceptor(ch.clone(), bob_login.clone());
        let read = pb::ConsumeRequest { topic: "grpc.logs".into(), partition: 0, offset: -2, max_records: 2, max_wait_ms: 1000, ..Default::default() };
        let mut stream = consume_bob.consume(read).await.unwrap().into_inner();
        let mut values = Vec::new();
        while let Some(m) = tokio_stream::StreamExt::next(&mut stream).await {
            values.extend(m.unwrap().records.into_iter().map(|r| String::from_utf8(r.value.unwrap_or_default()).unwrap()));
        }
        assert_eq!(values, ["one", "two"]);
        assert_eq!(bob.describe_topic(pb::DescribeTopicRequest { name: "grpc.other".into(), local_only: false }).await.unwrap_err().code(), tonic::Code::PermissionDenied);
        let mut produce_bob = ProduceClient::with_interceptor(ch.clone(), bob_login.clone());
        let rec = pb::Record { value: b"x".to_vec(), ..Default::default() };
        assert_eq!(produce_bob.produce(pb::ProduceRequest { topic: "grpc.logs".into(), partition: 0, records: vec![rec], acks: 0 }).await.unwrap_err().code(), tonic::Code::PermissionDenied, "READ is not WRITE");
    });
    assert!(backwaters_tests::metric(&node.metrics, "backwaters_grpc_authorization_denied_total") >= 6.0);
    assert!(backwaters_tests::metric(&node.metrics, "backwaters_grpc_login_failures_total") >= 1.0);

    // The shell logs in with --user and the password from the environment.
    let shell = |user: Option<&str>, password: &str, command: &str| {
        let mut c = Command::new(backwaters_tests::binary());
        c.args(["shell", "--bootstrap", &node.grpc, "-c", command]).env("BACKWATERS_PASSWORD", password).env_remove("BACKWATERS_USER");
        if let Some(u) = user {
            c.args(["--user", u]);
        }
        let out = c.output().unwrap();
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let (ok, text) = shell(Some("admin"), "admin-pw", "topic list");
    assert!(ok && text.contains("grpc.logs") && text.contains("grpc.other"), "{text}");
    let (ok, text) = shell(Some("admin"), "wrong", "topic list");
    assert!(!ok && text.contains("login as \"admin\" failed"), "{text}");
    // bob may not describe the cluster, yet his shell connects and lists what he may see.
    let (ok, text) = shell(Some("bob"), "bob-pw", "topic list");
    assert!(ok && text.contains("grpc.logs") && !text.contains("grpc.other"), "{text}");
    let (ok, text) = shell(None, "", "cluster status");
    assert!(!ok && text.contains("User:ANONYMOUS may not DESCRIBE the cluster"), "{text}");
}

/// The HTTP ingest's topic endpoints (REST Proxy, NDJSON) check the caller as the gRPC API
/// does: no login or a wrong password is 401 with a Basic challenge, a user the ACLs do not
/// allow is 403, an ACL made with Kafka's CreateAcls lets the user write. HEC keeps its tokens.
#[test]
fn http_topic_endpoints_obey_the_acls() {
    use base64::Engine;
    let port = backwaters_tests::free_port();
    let node = TestNode::start_full(CONFIG, &format!("[[nodes.ingest]]\nkind = \"http\"\nlisten = \"127.0.0.1:{port}\"\ntopic = \"hec.events\"\nhec_tokens = [\"s3cret\"]\n"));
    let login = |user: &str, password: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
    let (admin, bob, wrong) = (login("admin", "admin-pw"), login("bob", "bob-pw"), login("bob", "nope"));
    let ct = ("Content-Type", "application/vnd.kafka.json.v2+json");
    let body = br#"{"records":[{"value":{"msg":"one"}}]}"#;
    let post = |auth: Option<&str>, path: &str, body: &[u8]| {
        let mut headers = vec![ct];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        backwaters_tests::http_exchange(port, "POST", path, &headers, body)
    };
    let (status, head, text) = post(None, "/topics/feed", body);
    assert_eq!(status, 401, "{head}\n{text}");
    assert!(head.to_ascii_lowercase().contains("www-authenticate: basic"), "{head}");
    assert!(text.contains("User:ANONYMOUS may not WRITE topic \\\"feed\\\""), "{text}");
    let (status, _, text) = post(Some(&wrong), "/topics/feed", body);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("login as \\\"bob\\\" failed"), "{text}");
    let (status, _, text) = post(Some(&bob), "/topics/feed", body);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("User:bob may not WRITE topic"), "{text}");
    let (status, _, text) = post(Some(&admin), "/topics/feed", body);
    assert_eq!(status, 200, "the super user writes (creating the topic): {text}");

    create_acl_as(&node, ("admin", "admin-pw"), 2, "feed", "User:bob", 4);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (status, _, text) = post(Some(&bob), "/topics/feed", body);
    assert_eq!(status, 200, "{text}");
    let (status, _, text) = post(Some(&bob), "/ndjson/feed", b"{\"n\":1}\n{\"n\":2}\n");
    assert_eq!(status, 200, "{text}");
    let (status, _, text) = post(Some(&bob), "/ndjson/other", b"{\"n\":1}\n");
    assert_eq!(status, 403, "WRITE on feed is not WRITE on other: {text}");
    let (status, _, text) = backwaters_tests::http_exchange(port, "POST", "/services/collector/event", &[("Authorization", "Splunk s3cret")], br#"{"event":"login"}"#);
    assert_eq!(status, 200, "HEC authenticates with its tokens: {text}");
    assert!(backwaters_tests::metric(&node.metrics, "backwaters_http_authorization_denied_total") >= 3.0);
    assert!(backwaters_tests::metric(&node.metrics, "backwaters_http_login_failures_total") >= 1.0);
}
