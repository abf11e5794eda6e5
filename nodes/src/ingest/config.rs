//! Ingest listeners as the node config declares them (`[[nodes.ingest]]`).

use backwaters_proto::syslog::parse::{Rfc3164Rules, SyslogMessage};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    SyslogUdp,
    SyslogTcp,
    SyslogTls,
    Relp,
    Http,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::SyslogUdp => "syslog-udp",
            Kind::SyslogTcp => "syslog-tcp",
            Kind::SyslogTls => "syslog-tls",
            Kind::Relp => "relp",
            Kind::Http => "http",
        }
    }
}

/// Which field of a message becomes the record key (one host's lines stay in order).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KeyBy {
    #[default]
    Host,
    App,
    None,
}

/// Sends matching messages to another topic; the first route that matches wins.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub topic: String,
    /// Facility codes (e.g. [4, 10] for auth and authpriv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<Vec<u8>>,
    /// Severity at most this (0 emergency .. 7 debug): 3 means error and worse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_max: Option<u8>,
    /// App name (process.name), exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Host name, exact or a prefix ending in '*'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Text the message contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
}

impl Route {
    pub fn matches(&self, m: &SyslogMessage) -> bool {
        self.facility.as_ref().is_none_or(|f| f.contains(&m.facility))
            && self.severity_max.is_none_or(|s| m.severity <= s)
            && self.app.as_ref().is_none_or(|a| m.app_name.as_deref() == Some(a.as_str()))
            && self.host.as_ref().is_none_or(|h| match (h.strip_suffix('*'), m.hostname.as_deref()) {
                (Some(prefix), Some(name)) => name.starts_with(prefix),
                (None, Some(name)) => name == h,
                (_, None) => false,
            })
            && self.contains.as_ref().is_none_or(|c| m.message.contains(c.as_str()))
    }
}

/// How record batches written by a listener are compressed (consumers decompress them as any
/// producer's batch). ECS JSON of log lines compresses about tenfold with zstd.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Codec {
    None,
    Snappy,
    Lz4,
    #[default]
    Zstd,
}

impl Codec {
    pub fn kafka(self) -> backwaters_proto::kafka::batch::Compression {
        use backwaters_proto::kafka::batch::Compression as C;
        match self {
            Codec::None => C::None,
            Codec::Snappy => C::Snappy,
            Codec::Lz4 => C::Lz4,
            Codec::Zstd => C::Zstd,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub kind: Kind,
    /// HOST:PORT to listen on.
    pub listen: String,
    /// Topic written to (created if missing); routes may pick others.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// A tenant label added to every record (labels.tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default)]
    pub key: KeyBy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// PEM certificate chain and private key (syslog-tls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates (syslog-tls): senders must show a certificate one of them signed
    /// (RFC 5425 mutual authentication); its subject is the sender's principal for the ACLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_ca: Option<PathBuf>,
    /// Accepted Splunk HEC tokens (http); empty: the HEC endpoint is off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hec_tokens: Vec<String>,
    /// Largest syslog message / RELP frame / HTTP body.
    #[serde(default = "default_max_bytes")]
    pub max_message_bytes: usize,
    /// RFC 3164 dates: a fixed year (default: the receiver's, with New Year rollover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc3164_year: Option<i32>,
    /// RFC 3164 dates: the senders' UTC offset, "+HH:MM" or "-HH:MM" (default "+00:00").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc3164_utc_offset: Option<String>,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default)]
    pub compression: Codec,
}

fn default_topic() -> String {
    "logs.syslog".into()
}
fn default_max_bytes() -> usize {
    64 * 1024
}
fn default_max_connections() -> usize {
    1_000
}

impl IngestConfig {
    pub fn new(kind: Kind, listen: &str) -> IngestConfig {
        IngestConfig {
            kind,
            listen: listen.into(),
            topic: default_topic(),
            tenant: None,
            key: KeyBy::Host,
            routes: vec![],
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            hec_tokens: vec![],
            max_message_bytes: if kind == Kind::Http { 10 << 20 } else { default_max_bytes() },
            rfc3164_year: None,
            rfc3164_utc_offset: None,
            max_connections: default_max_connections(),
            compression: Codec::default(),
        }
    }

    /// The listener's name in logs and metrics.
    pub fn name(&self) -> String {
        format!("{}@{}", self.kind.name(), self.listen)
    }

    pub fn rfc3164_rules(&self) -> Result<Rfc3164Rules, String> {
        let utc_offset_minutes = match &self.rfc3164_utc_offset {
            None => 0,
            Some(s) => parse_offset(s).ok_or_else(|| format!("rfc3164_utc_offset: {s:?} is not +HH:MM or -HH:MM"))?,
        };
        Ok(Rfc3164Rules { year: self.rfc3164_year, utc_offset_minutes })
    }

    /// Checks one listener; errors name the field (the caller prefixes where it is).
    pub fn validate(&self) -> Result<(), String> {
        self.listen.parse::<std::net::SocketAddr>().map_err(|_| format!("listen: {:?} is not HOST:PORT with an IP address", self.listen))?;
        backwaters_actors::topic::validate_topic_name(&self.topic).map_err(|e| format!("topic: {e}"))?;
        for (i, r) in self.routes.iter().enumerate() {
            backwaters_actors::topic::validate_topic_name(&r.topic).map_err(|e| format!("routes[{i}].topic: {e}"))?;
            if r.severity_max.is_some_and(|s| s > 7) {
                return Err(format!("routes[{i}].severity_max: must be 0 (emergency) to 7 (debug)"));
            }
            if r.facility.as_ref().is_some_and(|f| f.iter().any(|c| *c > 23)) {
                return Err(format!("routes[{i}].facility: codes are 0 to 23"));
            }
        }
        if self.kind == Kind::SyslogTls {
            for (field, v) in [("tls_cert", &self.tls_cert), ("tls_key", &self.tls_key)] {
                let p = v.as_ref().ok_or_else(|| format!("{field}: syslog-tls needs a PEM file"))?;
                if !p.is_file() {
                    return Err(format!("{field}: {} is not a readable file", p.display()));
                }
            }
        }
        match &self.tls_client_ca {
            Some(_) if self.kind != Kind::SyslogTls => return Err(format!("tls_client_ca: only a syslog-tls listener checks client certificates (this one is {})", self.kind.name())),
            Some(p) if !p.is_file() => return Err(format!("tls_client_ca: {} is not a readable file", p.display())),
            _ => {}
        }
        if !(256..=(256 << 20)).contains(&self.max_message_bytes) {
            return Err(format!("max_message_bytes: {} must be between 256 and {}", self.max_message_bytes, 256 << 20));
        }
        if self.max_connections == 0 {
            return Err("max_connections: must be at least 1".into());
        }
        if self.kind == Kind::Http && self.hec_tokens.iter().any(|t| t.trim().is_empty()) {
            return Err("hec_tokens: a token must not be empty".into());
        }
        self.rfc3164_rules()?;
        Ok(())
    }
}

fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 23 && m <= 59 && rest.len() == 5).then_some(sign * (h * 60 + m))
}
