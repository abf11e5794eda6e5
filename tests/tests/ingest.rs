//! Ingest with real senders: `logger` over UDP and TCP, rsyslog forwarding over TCP and RELP
//! (and resending after the node is killed), openssl's TLS client, HTTP requests in the REST
//! proxy, NDJSON and HEC shapes; bad input on every listener. Records are read back through
//! librdkafka and their parsed fields checked.

use backwaters_tests::{client_available, free_port, read_topic, records_in_topic, TestNode};
use serde_json::Value;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn listener(kind: &str, port: u16, topic: &str, extra: &str) -> String {
    format!("[[nodes.ingest]]\nkind = \"{kind}\"\nlisten = \"127.0.0.1:{port}\"\ntopic = \"{topic}\"\n{extra}\n")
}

fn json(v: &str) -> Value {
    serde_json::from_str(v).unwrap_or_else(|e| panic!("not JSON ({e}): {v}"))
}

fn logger(args: &[&str], message: &str) {
    let s = Command::new("logger").args(args).arg(message).status().unwrap();
    assert!(s.success(), "logger {args:?} failed");
}

#[test]
fn logger_over_udp_and_tcp_is_parsed_routed_and_keyed() {
    if !client_available("logger", &["--version"]) {
        return;
    }
    let port = free_port();
    let routes = "[[nodes.ingest.routes]]\ntopic = \"logs.auth\"\nfacility = [4, 10]\n";
    let node = TestNode::start_full("", &format!("{}{}", listener("syslog-udp", port, "logs.syslog", &format!("tenant = \"acme\"\n{routes}")), listener("syslog-tcp", port, "logs.syslog", routes)));
    let p = port.to_string();
    logger(&["-n", "127.0.0.1", "-P", &p, "-d", "--rfc5424", "-t", "sshd", "-p", "auth.warning", "--id=4242"], "Failed password for root from 10.0.0.9");
    logger(&["-n", "127.0.0.1", "-P", &p, "-T", "--rfc3164", "-t", "cron", "-p", "user.notice"], "job done over tcp");
    logger(&["-n", "127.0.0.1", "-P", &p, "-T", "--octet-count", "--rfc5424", "-t", "app", "--sd-id", "req@32473", "--sd-param", "id=\"7\""], "octet counted");

    let auth = read_topic(&node.kafka, "logs.auth", 1, WAIT);
    assert_eq!(auth.len(), 1, "the auth route");
    let v = json(&auth[0].2);
    assert_eq!(v["log"]["syslog"]["facility"]["code"], 4);
    assert_eq!(v["log"]["syslog"]["severity"]["code"], 4);
    assert_eq!(v["process"]["name"], "sshd");
    assert_eq!(v["process"]["pid"], 4242);
    assert_eq!(v["message"], "Failed password for root from 10.0.0.9");
    assert_eq!(v["labels"]["tenant"], "acme");
    let host = v["host"]["name"].as_str().unwrap().to_string();
    assert_eq!(auth[0].1.as_deref(), Some(host.as_str()), "keyed by host");
    assert!(v["event"]["original"].as_str().unwrap().starts_with("<36>1 "));

    let rest = read_topic(&node.kafka, "logs.syslog", 2, WAIT);
    assert_eq!(rest.len(), 2);
    let by_msg = |m: &str| rest.iter().map(|r| json(&r.2)).find(|v| v["message"] == m).unwrap_or_else(|| panic!("{m} missing: {rest:?}"));
    let cron = by_msg("job done over tcp");
    assert_eq!((cron["process"]["name"].as_str(), cron["log"]["syslog"]["severity"]["name"].as_str()), (Some("cron"), Some("notice")));
    assert_eq!(cron["network"]["protocol"], "syslog");
    let oc = by_msg("octet counted");
    assert_eq!(oc["log"]["syslog"]["structured_data"]["req@32473"]["id"], "7");
    let ts = oc["@timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
}

/// rsyslogd with its own config on loopback ports; stopped on drop.
struct Rsyslog {
    child: Child,
    _dir: tempfile::TempDir,
    input: u16,
}

impl Rsyslog {
    fn start(actions: &str) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let input = free_port();
        let conf = format!(
            "global(workDirectory=\"{d}\")\nmodule(load=\"imtcp\")\nmodule(load=\"omrelp\")\ninput(type=\"imtcp\" port=\"{input}\")\n{actions}\n",
            d = dir.path().display()
        );
        let path = dir.path().join("rsyslog.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("rsyslogd").args(["-n", "-f"]).arg(&path).arg("-i").arg(dir.path().join("pid")).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", input)).is_err() {
            assert!(t0.elapsed() < WAIT, "rsyslogd did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Rsyslog { child, _dir: dir, input }
    }

    /// Sends `lines` to rsyslog's TCP input (LF framing), as a log source would.
    fn send(&self, lines: &[String]) {
        let mut s = TcpStream::connect(("127.0.0.1", self.input)).unwrap();
        for l in lines {
            s.write_all(format!("<13>Nov 28 12:00:00 src1 app: {l}\n").as_bytes()).unwrap();
        }
        s.flush().unwrap();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rsyslog_available() -> bool {
    client_available("rsyslogd", &["-v"]) && (Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so").exists() || Path::new("/usr/lib/rsyslog/omrelp.so").exists() || {
        assert!(std::env::var("BACKWATERS_REQUIRE_CLIENTS").is_err(), "rsyslog-relp is required but omrelp.so is missing");
        eprintln!("SKIPPED: rsyslog-relp is not installed");
        false
    })
}

fn messages(records: &[(i32, Option<String>, String)]) -> HashSet<String> {
    records.iter().map(|r| json(&r.2)["message"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn rsyslog_forwards_over_tcp_and_relp() {
    if !rsyslog_available() {
        return;
    }
    let (tcp, relp) = (free_port(), free_port());
    let node = TestNode::start_full("", &format!("{}{}", listener("syslog-tcp", tcp, "fwd.tcp", ""), listener("relp", relp, "fwd.relp", "")));
    let rs = Rsyslog::start(&format!(
        "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{tcp}\" protocol=\"tcp\" TCP_Framing=\"octet-counted\")\naction(type=\"omrelp\" target=\"127.0.0.1\" port=\"{relp}\")"
    ));
    let lines: Vec<String> = (0..300).map(|i| format!("line {i}")).collect();
    rs.send(&lines);
    for topic in ["fwd.tcp", "fwd.relp"] {
        let got = read_topic(&node.kafka, topic, lines.len(), WAIT);
        let msgs = messages(&got);
        assert!(lines.iter().all(|l| msgs.contains(l)), "{topic}: {} of {} lines", msgs.len(), lines.len());
        let v = json(&got[0].2);
        assert_eq!((v["host"]["name"].as_str(), v["process"]["name"].as_str()), (Some("src1"), Some("app")), "{topic}: {v}");
    }
}

#[test]
fn relp_lines_survive_a_node_kill_because_rsyslog_resends_what_was_not_acknowledged() {
    if !rsyslog_available() {
        return;
    }
    let relp = free_port();
    let mut node = TestNode::start_full("", &listener("relp", relp, "relp.kill", ""));
    let rs = Rsyslog::start(&format!(
        "action(type=\"omrelp\" target=\"127.0.0.1\" port=\"{relp}\" windowSize=\"512\" queue.type=\"LinkedList\" queue.size=\"200000\" action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\")"
    ));
    let lines: Vec<String> = (0..20_000).map(|i| format!("kill-test {i}")).collect();
    // rsyslog gets the lines in steady chunks while the node is killed and restarted.
    let rs = std::sync::Arc::new(rs);
    let sender = {
        let (rs, lines) = (rs.clone(), lines.clone());
        std::thread::spawn(move || {
            for chunk in lines.chunks(250) {
                rs.send(chunk);
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    let t0 = Instant::now();
    while read_topic(&node.kafka, "relp.kill", 2_000, Duration::from_millis(500)).len() < 2_000 {
        assert!(t0.elapsed() < WAIT, "lines did not start arriving");
    }
    node.kill();
    assert!(!sender.is_finished(), "the kill must land while lines are still being sent");
    std::thread::sleep(Duration::from_millis(500));
    node.restart();
    sender.join().unwrap();
    // Resent duplicates count toward a read's total, so read everything the topic holds (not
    // just as many records as lines: the tail would be cut off), again until every line is
    // there (rsyslog may still be resending its last window) or the time is up.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (got, missing) = loop {
        let held = records_in_topic(&node.kafka, "relp.kill").max(lines.len());
        let got = read_topic(&node.kafka, "relp.kill", held, Duration::from_secs(10));
        let msgs = messages(&got);
        let missing: Vec<String> = lines.iter().filter(|l| !msgs.contains(*l)).cloned().collect();
        if missing.is_empty() || Instant::now() > deadline {
            break (got, missing);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(missing.is_empty(), "{} of {} lines lost, e.g. {:?}", missing.len(), lines.len(), &missing[..missing.len().min(5)]);
    eprintln!("relp kill test: {} records for {} lines ({} resent duplicates)", got.len(), lines.len(), got.len() - lines.len());
}

/// A self-signed certificate for 127.0.0.1 (openssl CLI).
fn certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    let s = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=backwaters-test", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(s.success(), "openssl req failed");
    (cert, key)
}

/// Sends `input` over TLS with openssl s_client trusting `ca`; true when the handshake held.
fn tls_send(port: u16, ca: &Path, input: &str) -> bool {
    let mut c = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-verify_return_error", "-quiet", "-no_ign_eof", "-CAfile"])
        .arg(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    !err.contains("verify error") && !err.contains("alert") && out.status.success()
}

#[test]
fn tls_syslog_from_a_trusting_client_and_refusal_of_others() {
    if !client_available("openssl", &["version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "server");
    let (other, _) = certificate(dir.path(), "other");
    let port = free_port();
    let extra = format!("tls_cert = \"{}\"\ntls_key = \"{}\"\n", cert.display(), key.display());
    let node = TestNode::start_full("", &listener("syslog-tls", port, "logs.tls", &extra));
    // Plain text on the TLS port and a client that does not trust the server both fail
    // their handshake; neither disturbs the next connection.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.write_all(b"<13>Nov 28 12:00:00 h app: plaintext\n").unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = Vec::new();
    let _ = plain.read_to_end(&mut sink);
    assert!(!tls_send(port, &other, "<13>Nov 28 12:00:00 h app: untrusted\n"), "a client with the wrong CA completed a handshake");
    assert!(tls_send(port, &cert, "<13>Nov 28 12:00:00 tlshost app: over tls\n27 <13>1 - tlshost app - - - x\n"));
    let got = read_topic(&node.kafka, "logs.tls", 2, WAIT);
    let msgs = messages(&got);
    assert_eq!(msgs, HashSet::from(["over tls".to_string(), "x".to_string()]), "{got:?}");
    assert!(node.log().contains("TLS handshake failed"), "the failed handshakes are logged");
}

/// One HTTP/1.1 request: (status, body).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let (status, _, body) = backwaters_tests::http_exchange(port, method, path, headers, body);
    (status, body)
}

#[test]
fn http_rest_proxy_ndjson_and_hec_answer_only_when_durable() {
    let port = free_port();
    let node = TestNode::start_full("", &listener("http", port, "hec.events", "hec_tokens = [\"s3cret\"]\nmax_message_bytes = 65536\n"));
    let ct = ("Content-Type", "application/vnd.kafka.json.v2+json");
    let (status, body) = http(port, "POST", "/topics/lambda", &[ct], br#"{"records":[{"key":"fn-1","value":{"level":"warn","msg":"cold start"}},{"value":"plain"}]}"#);
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["offsets"].as_array().unwrap().len(), 2);
    assert!(v["offsets"].as_array().unwrap().iter().all(|o| o["offset"].as_i64().is_some() && o["error_code"].is_null()), "{body}");
    let (status, body) = http(port, "POST", "/topics/lambda", &[("Content-Type", "application/vnd.kafka.binary.v2+json")], br#"{"records":[{"value":"aGVsbG8gYmluYXJ5"}]}"#);
    assert_eq!(status, 200, "{body}");
    let got = read_topic(&node.kafka, "lambda", 3, WAIT);
    let values: HashSet<String> = got.iter().map(|r| r.2.clone()).collect();
    assert_eq!(values, HashSet::from([r#"{"level":"warn","msg":"cold start"}"#.to_string(), "\"plain\"".into(), "hello binary".into()]));
    assert!(got.iter().any(|r| r.1.as_deref() == Some("\"fn-1\"")));

    let (status, body) = http(port, "POST", "/ndjson/bulk?key=host", &[], b"{\"host\":\"a\",\"n\":1}\n\n{\"host\":\"b\",\"n\":2}\r\n");
    assert_eq!((status, json(&body)["records"].as_u64()), (200, Some(2)), "{body}");
    let (status, body) = http(port, "POST", "/ndjson/bulk", &[], b"{\"ok\":1}\nnot json\n");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("line 2"), "{body}");

    let auth = ("Authorization", "Splunk s3cret");
    let (status, body) = http(port, "POST", "/services/collector/event", &[auth], br#"{"event":"user login","host":"fn-7","time":1795867200.25,"sourcetype":"lambda"}{"event":{"a":1}}"#);
    assert_eq!((status, json(&body)["code"].as_i64()), (200, Some(0)), "{body}");
    assert_eq!(http(port, "POST", "/services/collector/event", &[], br#"{"event":"x"}"#).0, 401);
    assert_eq!(http(port, "POST", "/services/collector/event", &[("Authorization", "Splunk wrong")], br#"{"event":"x"}"#).0, 403);
    let (status, body) = http(port, "POST", "/services/collector/event", &[auth], br#"{"event":"ok"}{"broken""#);
    assert_eq!((status, json(&body)["code"].as_i64()), (400, Some(6)), "{body}");
    let hec = read_topic(&node.kafka, "hec.events", 2, WAIT);
    assert_eq!(hec.len(), 2, "refused requests wrote nothing: {hec:?}");
    assert!(hec.iter().any(|r| r.1.as_deref() == Some("fn-7") && json(&r.2)["sourcetype"] == "lambda"));

    // Not JSON, too big, unknown topic name.
    assert_eq!(http(port, "POST", "/topics/lambda", &[ct], b"{{{").0, 400);
    assert_eq!(http(port, "POST", "/topics/lambda", &[ct], &vec![b' '; 100_000]).0, 413);
    assert_eq!(http(port, "POST", "/topics/bad%20name", &[ct], br#"{"records":[]}"#).0, 404);
    assert_eq!(read_topic(&node.kafka, "lambda", 4, Duration::from_secs(2)).len(), 3, "nothing refused was written");
}

#[test]
fn bad_syslog_input_is_kept_tagged_or_closes_only_its_connection() {
    let port = free_port();
    let node = TestNode::start_full("", &format!("{}{}", listener("syslog-tcp", port, "bad.tcp", "max_message_bytes = 1024\n"), listener("syslog-udp", port, "bad.udp", "")));
    let mut good = TcpStream::connect(("127.0.0.1", port)).unwrap();
    good.write_all(b"<13>Nov 28 12:00:00 h app: before\n").unwrap();
    // Binary garbage and invalid UTF-8 are stored, tagged, never dropped.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"\x00\x01\x02garbage\xff\xfe\n<13>Nov 28 12:00:00 h app: caf\xc3\xa9 \xff\n").unwrap();
    drop(s);
    // An octet count over the limit: that connection is closed, the other keeps working.
    let mut big = TcpStream::connect(("127.0.0.1", port)).unwrap();
    big.write_all(b"99999 <13>Nov 28 12:00:00 h app: huge").unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 1];
    assert!(matches!(big.read(&mut b), Ok(0) | Err(_)), "the oversized frame's connection was not closed");
    good.write_all(b"<13>Nov 28 12:00:00 h app: after\n").unwrap();
    drop(good);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"\xde\xad\xbe\xef", ("127.0.0.1", port)).unwrap();

    let tcp = read_topic(&node.kafka, "bad.tcp", 4, WAIT);
    let docs: Vec<Value> = tcp.iter().map(|r| json(&r.2)).collect();
    let msgs: HashSet<String> = docs.iter().map(|v| v["message"].as_str().unwrap().to_string()).collect();
    assert!(msgs.contains("before") && msgs.contains("after"), "{msgs:?}");
    assert!(msgs.contains("caf\u{e9} \u{fffd}"), "invalid UTF-8 kept lossily: {msgs:?}");
    let garbage = docs.iter().find(|v| v["tags"][0] == "_syslogparsefailure").expect("garbage stored with a tag");
    assert!(garbage["event"]["original"].as_str().unwrap().contains("garbage"));
    assert!(!msgs.iter().any(|m| m.contains("huge")));
    let udp = read_topic(&node.kafka, "bad.udp", 1, WAIT);
    assert_eq!(json(&udp[0].2)["tags"][0], "_syslogparsefailure");
}
