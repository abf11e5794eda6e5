//! A syslog message as a JSON record with Elastic Common Schema field names, nested as ECS
//! documents are (`host.name` is `{"host":{"name":..}}`). The raw line is always kept in
//! `event.original`; a line that did not parse gets the tag `_syslogparsefailure` and
//! `error.message`, so nothing is dropped.

use super::parse::{ParseError, SyslogMessage, FACILITIES, SEVERITIES};
use serde_json::{json, Map, Value};

/// Where and when a line arrived.
#[derive(Debug, Clone, Default)]
pub struct Received<'a> {
    pub at_ms: i64,
    pub source_ip: Option<&'a str>,
    /// The listener's name and protocol (observer.ingress).
    pub listener: &'a str,
    pub protocol: &'a str,
    pub tenant: Option<&'a str>,
}

pub const PARSE_FAILURE_TAG: &str = "_syslogparsefailure";

/// The JSON record for one line.
pub fn to_json(raw: &[u8], parsed: &Result<SyslogMessage, ParseError>, r: &Received) -> Value {
    let mut doc = Map::new();
    let original = String::from_utf8_lossy(raw).into_owned();
    let mut event = json!({ "original": original, "created": rfc3339(r.at_ms) });
    match parsed {
        Ok(m) => {
            doc.insert("@timestamp".into(), rfc3339(m.timestamp_ms.unwrap_or(r.at_ms)).into());
            let mut syslog = json!({
                "facility": { "code": m.facility, "name": FACILITIES[m.facility as usize] },
                "severity": { "code": m.severity, "name": SEVERITIES[m.severity as usize] },
                "priority": m.facility as u16 * 8 + m.severity as u16,
            });
            if m.format == super::parse::Format::Rfc5424 {
                syslog["version"] = "1".into();
                if let Some(id) = &m.msg_id {
                    syslog["msgid"] = id.clone().into();
                }
                if !m.structured_data.is_empty() {
                    let sd: Map<String, Value> = m.structured_data.iter().map(|e| (e.id.clone(), Value::Object(e.params.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect()))).collect();
                    syslog["structured_data"] = Value::Object(sd);
                }
            }
            doc.insert("log".into(), json!({ "syslog": syslog }));
            if let Some(h) = &m.hostname {
                doc.insert("host".into(), json!({ "name": h }));
            }
            let mut process = Map::new();
            if let Some(a) = &m.app_name {
                process.insert("name".into(), a.clone().into());
            }
            if let Some(p) = &m.proc_id {
                match p.parse::<u64>() {
                    Ok(pid) => process.insert("pid".into(), pid.into()),
                    Err(_) => process.insert("entity_id".into(), p.clone().into()),
                };
            }
            if !process.is_empty() {
                doc.insert("process".into(), Value::Object(process));
            }
            doc.insert("message".into(), m.message.clone().into());
        }
        Err(e) => {
            doc.insert("@timestamp".into(), rfc3339(r.at_ms).into());
            doc.insert("message".into(), original.into());
            doc.insert("tags".into(), json!([PARSE_FAILURE_TAG]));
            doc.insert("error".into(), json!({ "message": e.to_string() }));
            event["kind"] = "pipeline_error".into();
        }
    }
    doc.insert("event".into(), event);
    doc.insert("observer".into(), json!({ "ingress": { "name": r.listener } }));
    doc.insert("network".into(), json!({ "protocol": r.protocol }));
    if let Some(ip) = r.source_ip {
        doc.insert("source".into(), json!({ "ip": ip }));
    }
    if let Some(t) = r.tenant {
        doc.insert("labels".into(), json!({ "tenant": t }));
    }
    Value::Object(doc)
}

/// `2026-11-28T12:00:00.000Z`.
pub fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = super::parse::civil_from_days(days);
    let (h, mi, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1_000 % 60, rem % 1_000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::super::parse::{parse, parse_rfc3339, Rfc3164Rules};
    use super::*;

    #[test]
    fn fields_and_failures() {
        let r = Received { at_ms: 1_795_867_200_000, listener: "syslog-tcp", protocol: "syslog", source_ip: Some("127.0.0.1"), tenant: Some("acme") };
        let raw = b"<38>Nov 28 11:59:00 web1 sshd[4242]: Accepted";
        let v = to_json(raw, &parse(raw, r.at_ms, &Rfc3164Rules::default()), &r);
        assert_eq!(v["@timestamp"], "2026-11-28T11:59:00.000Z");
        assert_eq!(v["host"]["name"], "web1");
        assert_eq!(v["log"]["syslog"]["facility"]["code"], 4);
        assert_eq!(v["log"]["syslog"]["severity"]["name"], "informational");
        assert_eq!((v["process"]["name"].as_str(), v["process"]["pid"].as_u64()), (Some("sshd"), Some(4242)));
        assert_eq!(v["event"]["original"], "<38>Nov 28 11:59:00 web1 sshd[4242]: Accepted");
        assert_eq!(v["labels"]["tenant"], "acme");
        let bad = b"\x00\x01 not syslog";
        let v = to_json(bad, &parse(bad, r.at_ms, &Rfc3164Rules::default()), &r);
        assert_eq!(v["tags"][0], PARSE_FAILURE_TAG);
        assert!(v["error"]["message"].as_str().unwrap().contains("PRI"));
        assert_eq!(v["@timestamp"], "2026-11-28T12:00:00.000Z");
    }

    #[test]
    fn rfc3339_round_trip() {
        for ms in [0i64, 1_065_910_455_003, 1_795_872_000_000, 4_102_444_800_999] {
            assert_eq!(parse_rfc3339(rfc3339(ms).as_bytes()).unwrap(), ms);
        }
    }
}
