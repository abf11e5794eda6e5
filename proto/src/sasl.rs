//! SASL for the Kafka listener, server side and sans-io: PLAIN (RFC 4616) and
//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), as Kafka's SASL_PLAINTEXT and SASL_SSL
//! listeners speak them.
//!
//! The tokens come from unauthenticated clients: every parser here returns an error for
//! anything it does not expect, never panics, and bounds what it keeps. The server never
//! stores passwords, only SCRAM credentials (salt, iterations, StoredKey, ServerKey), so a
//! copy of the metadata log does not give away a password; PLAIN is checked against the
//! same credentials. Randomness (the server nonce) is passed in, so a whole exchange is
//! reproducible in tests.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;
use thiserror::Error;

/// Longest SASL token accepted from a client (the frame limit still applies before this).
pub const MAX_TOKEN: usize = 8 * 1024;
/// Iterations Kafka accepts for a SCRAM credential (`AlterUserScramCredentials`).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;

/// A SASL mechanism this broker can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [Mechanism::ScramSha256, Mechanism::ScramSha512, Mechanism::Plain];
    /// The SCRAM mechanisms, the ones credentials are stored for.
    pub const SCRAM: [Mechanism; 2] = [Mechanism::ScramSha256, Mechanism::ScramSha512];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// Parses a mechanism name as clients send it (case-sensitive, as Kafka).
    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's ScramMechanism code (AlterUserScramCredentials / DescribeUserScramCredentials).
    pub fn scram_code(self) -> i8 {
        match self {
            Mechanism::Plain => 0,
            Mechanism::ScramSha256 => 1,
            Mechanism::ScramSha512 => 2,
        }
    }

    pub fn from_scram_code(code: i8) -> Option<Mechanism> {
        Mechanism::SCRAM.into_iter().find(|m| m.scram_code() == code)
    }

    fn algorithms(self) -> (hmac::Algorithm, &'static digest::Algorithm, pbkdf2::Algorithm) {
        match self {
            Mechanism::ScramSha512 => (hmac::HMAC_SHA512, &digest::SHA512, pbkdf2::PBKDF2_HMAC_SHA512),
            // PLAIN has no hash of its own; it is checked against SCRAM-SHA-256 credentials.
            Mechanism::ScramSha256 | Mechanism::Plain => (hmac::HMAC_SHA256, &digest::SHA256, pbkdf2::PBKDF2_HMAC_SHA256),
        }
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the server keeps of a SCRAM password (RFC 5802 section 3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// From `SaltedPassword` (what Kafka's AlterUserScramCredentials carries).
    pub fn from_salted_password(mech: Mechanism, salt: &[u8], iterations: u32, salted: &[u8]) -> ScramCredential {
        let (mac, hash, _) = mech.algorithms();
        let key = hmac::Key::new(mac, salted);
        let client_key = hmac::sign(&key, b"Client Key");
        let server_key = hmac::sign(&key, b"Server Key");
        ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: digest::digest(hash, client_key.as_ref()).as_ref().to_vec(),
            server_key: server_key.as_ref().to_vec(),
        }
    }

    /// From a password (the cluster config's bootstrap users).
    pub fn from_password(mech: Mechanism, password: &str, salt: &[u8], iterations: u32) -> ScramCredential {
        ScramCredential::from_salted_password(mech, salt, iterations, &salted_password(mech, password, salt, iterations))
    }

    /// Whether `password` is the one this credential was made from (for PLAIN).
    pub fn matches_password(&self, mech: Mechanism, password: &str) -> bool {
        let other = ScramCredential::from_password(mech, password, &self.salt, self.iterations);
        constant_time_eq(&other.stored_key, &self.stored_key)
    }
}

/// `Hi(Normalize(password), salt, i)`: PBKDF2 with the mechanism's HMAC. Passwords are used
/// as given (no SASLprep), as Kafka's Java clients and librdkafka do.
pub fn salted_password(mech: Mechanism, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let (_, hash, kdf) = mech.algorithms();
    let mut out = vec![0u8; hash.output_len()];
    pbkdf2::derive(kdf, NonZeroU32::new(iterations.max(1)).expect("max(1)"), salt, password.as_bytes(), &mut out);
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an exchange failed. `Malformed` and `Failed` end the connection after the error answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SaslError {
    #[error("malformed {mech} message: {why}")]
    Malformed { mech: Mechanism, why: &'static str },
    /// Unknown user or wrong password; the message does not say which.
    #[error("authentication failed: invalid credentials with SASL mechanism {0}")]
    Failed(Mechanism),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("the {0} exchange is already over")]
    Finished(Mechanism),
}

/// PLAIN's one message: `[authzid] NUL authcid NUL passwd`.
pub fn parse_plain(token: &[u8]) -> Result<(String, String, String), SaslError> {
    let bad = |why| SaslError::Malformed { mech: Mechanism::Plain, why };
    if token.len() > MAX_TOKEN {
        return Err(bad("token too long"));
    }
    let text = std::str::from_utf8(token).map_err(|_| bad("not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authz), Some(user), Some(pass), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("expected authzid NUL user NUL password"));
    };
    if user.is_empty() {
        return Err(bad("empty user name"));
    }
    if !authz.is_empty() && authz != user {
        return Err(SaslError::Unsupported("PLAIN: authorization identity must be empty or the user itself"));
    }
    Ok((authz.to_string(), user.to_string(), pass.to_string()))
}

/// HTTP Basic credentials (RFC 7617, `Basic base64(user:password)`): how callers of the gRPC
/// API and the HTTP ingest log in as a SASL user. The error says what is wrong.
pub fn parse_basic(header: &[u8]) -> Result<(String, String), String> {
    let bad = |why: &str| format!("authorization header: {why} (send \"Basic \" and base64 of user:password)");
    if header.len() > MAX_TOKEN {
        return Err(bad("too long"));
    }
    let text = std::str::from_utf8(header).map_err(|_| bad("not ASCII"))?;
    let (scheme, b64) = text.split_once(' ').ok_or_else(|| bad("no scheme"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad(&format!("scheme {scheme:?} is not supported")));
    }
    let raw = B64.decode(b64.trim()).map_err(|_| bad("not base64"))?;
    let raw = String::from_utf8(raw).map_err(|_| bad("user:password is not UTF-8"))?;
    let (user, password) = raw.split_once(':').ok_or_else(|| bad("no ':' between user and password"))?;
    if user.is_empty() {
        return Err(bad("empty user name"));
    }
    Ok((user.to_string(), password.to_string()))
}

/// The header value a client sends for [`parse_basic`].
pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", B64.encode(format!("{user}:{password}")))
}

/// A SCRAM client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// `n,,` (or `n,a=...,`): repeated, base64, in the client-final's channel binding.
    pub gs2_header: String,
    pub user: String,
    pub nonce: String,
    /// The message without its GS2 header, part of AuthMessage.
    pub bare: String,
}

/// A SCRAM client-final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal {
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    pub proof: Vec<u8>,
    /// The message up to (not including) `,p=`, part of AuthMessage.
    pub without_proof: String,
}

fn scram_text(mech: Mechanism, token: &[u8]) -> Result<&str, SaslError> {
    if token.len() > MAX_TOKEN {
        return Err(SaslError::Malformed { mech, why: "token too long" });
    }
    std::str::from_utf8(token).map_err(|_| SaslError::Malformed { mech, why: "not UTF-8" })
}

/// A printable nonce: RFC 5802 allows any printable ASCII but ','.
fn valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `saslname`: `=2C` is ',' and `=3D` is '='; any other '=' is an error.
fn decode_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3)?;
        out.push(match esc {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

/// Encodes a user name as `saslname` (the inverse of the decoding above).
pub fn encode_saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

pub fn parse_client_first(mech: Mechanism, token: &[u8]) -> Result<ClientFirst, SaslError> {
    let bad = |why| SaslError::Malformed { mech, why };
    let text = scram_text(mech, token)?;
    // gs2-header: cbind-flag "," [authzid] ","
    let (flag, rest) = text.split_once(',').ok_or(bad("no GS2 header"))?;
    match flag {
        "n" | "y" => {}
        _ if flag.starts_with("p=") => return Err(SaslError::Unsupported("SCRAM channel binding (-PLUS) is not offered")),
        _ => return Err(bad("unknown channel-binding flag")),
    }
    let (authz, bare) = rest.split_once(',').ok_or(bad("no GS2 header"))?;
    let mut fields = bare.split(',');
    let user = fields.next().and_then(|f| f.strip_prefix("n=")).ok_or(bad("expected n=<user>"))?;
    let user = decode_saslname(user).ok_or(bad("bad user name encoding"))?;
    if !authz.is_empty() {
        let a = authz.strip_prefix("a=").and_then(decode_saslname).ok_or(bad("bad authzid"))?;
        if a != user {
            return Err(SaslError::Unsupported("SCRAM: authorization identity must be empty or the user itself"));
        }
    }
    let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(bad("expected r=<nonce>"))?;
    if !valid_nonce(nonce) {
        return Err(bad("bad nonce"));
    }
    for ext in fields {
        // Kafka's extensions (KIP-84): `tokenauth=true` asks for delegation tokens.
        if ext == "tokenauth=true" {
            return Err(SaslError::Unsupported("delegation tokens are not supported"));
        }
        if !ext.contains('=') {
            return Err(bad("bad extension"));
        }
    }
    Ok(ClientFirst { gs2_header: format!("{flag},{authz},"), user, nonce: nonce.to_string(), bare: bare.to_string() })
}

pub fn parse_client_final(mech: Mechanism, token: &[u8]) -> Result<ClientFinal, SaslError> {
    let bad = |why| SaslError::Malformed { mech, why };
    let text = scram_text(mech, token)?;
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or(bad("expected p=<proof>"))?;
    let mut fields = without_proof.split(',');
    let cb = fields.next().and_then(|f| f.strip_prefix("c=")).ok_or(bad("expected c=<channel binding>"))?;
    let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(bad("expected r=<nonce>"))?;
    if fields.any(|f| !f.contains('=')) {
        return Err(bad("bad extension"));
    }
    Ok(ClientFinal {
        channel_binding: B64.decode(cb).map_err(|_| bad("channel binding is not base64"))?,
        nonce: nonce.to_string(),
        proof: B64.decode(proof).map_err(|_| bad("proof is not base64"))?,
        without_proof: without_proof.to_string(),
    })
}

/// The server's answer to a SASL token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this token; the exchange goes on.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send `reply` (empty for PLAIN).
    Done { user: String, reply: Vec<u8> },
}

/// What SCRAM's second step needs of the first.
#[derive(Debug)]
struct SentFirst {
    first: ClientFirst,
    server_first: String,
    nonce: String,
    cred: Option<ScramCredential>,
}

#[derive(Debug)]
enum State {
    Start,
    SentFirst(Box<SentFirst>),
    Over,
}

/// One connection's server side of an exchange. `lookup` finds a user's credential for the
/// mechanism (for PLAIN: the SCRAM-SHA-256 one).
#[derive(Debug)]
pub struct Server {
    mech: Mechanism,
    server_nonce: String,
    state: State,
}

impl Server {
    /// `server_nonce`: fresh random printable characters (at least 16) for this exchange.
    pub fn new(mech: Mechanism, server_nonce: String) -> Server {
        assert!(valid_nonce(&server_nonce) && server_nonce.len() >= 16, "server nonce must be 16+ printable characters");
        Server { mech, server_nonce, state: State::Start }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    pub fn step(&mut self, token: &[u8], lookup: impl FnOnce(&str) -> Option<ScramCredential>) -> Result<Step, SaslError> {
        let mech = self.mech;
        match std::mem::replace(&mut self.state, State::Over) {
            State::Over => Err(SaslError::Finished(mech)),
            State::Start if mech == Mechanism::Plain => {
                let (_, user, password) = parse_plain(token)?;
                match lookup(&user) {
                    Some(cred) if cred.matches_password(Mechanism::ScramSha256, &password) => Ok(Step::Done { user, reply: Vec::new() }),
                    _ => Err(SaslError::Failed(mech)),
                }
            }
            State::Start => {
                let first = parse_client_first(mech, token)?;
                let cred = lookup(&first.user);
                // An unknown user gets a made-up salt and fails at the proof, so the exchange
                // does not tell which user names exist (RFC 5802 section 5.1).
                let (salt, iterations) = match &cred {
                    Some(c) => (c.salt.clone(), c.iterations),
                    None => (digest::digest(&digest::SHA256, first.user.as_bytes()).as_ref()[..16].to_vec(), MIN_ITERATIONS),
                };
                let nonce = format!("{}{}", first.nonce, self.server_nonce);
                let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
                let reply = server_first.clone().into_bytes();
                self.state = State::SentFirst(Box::new(SentFirst { first, server_first, nonce, cred }));
                Ok(Step::Continue(reply))
            }
            State::SentFirst(sent) => {
                let SentFirst { first, server_first, nonce, cred } = *sent;
                let fin = parse_client_final(mech, token)?;
                if fin.channel_binding != first.gs2_header.as_bytes() {
                    return Err(SaslError::Malformed { mech, why: "channel binding does not match the GS2 header" });
                }
                // Kafka checks that the nonce ends with the server-first one (`endsWith`):
                // librdkafka sends its own nonce once more in front of it. The proof covers
                // the message as sent, so the server's nonce is still bound.
                if !fin.nonce.ends_with(&nonce) {
                    return Err(SaslError::Malformed { mech, why: "nonce does not match" });
                }
                let cred = cred.ok_or(SaslError::Failed(mech))?;
                let auth_message = format!("{},{},{}", first.bare, server_first, fin.without_proof);
                let (mac, hash, _) = mech.algorithms();
                let signature = hmac::sign(&hmac::Key::new(mac, &cred.stored_key), auth_message.as_bytes());
                if fin.proof.len() != signature.as_ref().len() {
                    return Err(SaslError::Failed(mech));
                }
                let client_key: Vec<u8> = fin.proof.iter().zip(signature.as_ref()).map(|(p, s)| p ^ s).collect();
                if !constant_time_eq(digest::digest(hash, &client_key).as_ref(), &cred.stored_key) {
                    return Err(SaslError::Failed(mech));
                }
                let server_signature = hmac::sign(&hmac::Key::new(mac, &cred.server_key), auth_message.as_bytes());
                Ok(Step::Done { user: first.user, reply: format!("v={}", B64.encode(server_signature.as_ref())).into_bytes() })
            }
        }
    }
}

#[cfg(test)]
mod tests;
