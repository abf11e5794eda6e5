//! SASL authentication on the Kafka listeners (Kafka's SASL_PLAINTEXT, or SASL_SSL with
//! `[tls] kafka = true`): the `[sasl]` config section and the user lookup the Kafka
//! connections use. The exchanges themselves are sans-io in `backwaters_proto::sasl`.
//!
//! Users come from two places:
//! - the cluster config (`[[sasl.users]]`): bootstrap users, known to every node from the
//!   start, changed only by editing the config; their credentials live in memory only;
//! - the metadata log: users created, changed and deleted with Kafka's
//!   AlterUserScramCredentials (`kafka-configs --alter --entity-type users`, confluent-kafka's
//!   `alter_user_scram_credentials`), replicated by the controller like topics. Only salted
//!   keys are stored, never a password.
//!
//! What a user may do is up to the ACLs (`[authorization]`, kafka/authz.rs); without them an
//! authenticated user may do everything, as in Kafka without an authorizer. The same users
//! log in to the gRPC API with `authorization: Basic` (access.rs; the HTTP ingest's topic endpoints too).

use backwaters_actors::node::Node;
use backwaters_proto::sasl::{Mechanism, ScramCredential, Server, MIN_ITERATIONS};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[sasl]`: every Kafka listener asks clients to authenticate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// Mechanisms offered, by their Kafka names. PLAIN sends the password itself: offer it
    /// only with `[tls] kafka = true`.
    #[serde(default = "default_mechanisms")]
    pub mechanisms: Vec<String>,
    /// Bootstrap users (at least one: creating users through Kafka needs a login).
    #[serde(default)]
    pub users: Vec<SaslUser>,
}

fn default_mechanisms() -> Vec<String> {
    Mechanism::SCRAM.iter().map(|m| m.name().to_string()).collect()
}

/// One bootstrap user. The password is given inline, in an environment variable or in a file
/// (one of the three).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaslUser {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Name of an environment variable holding the password (read when the node starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A file holding the password (trailing newline ignored), relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<std::path::PathBuf>,
}

impl SaslConfig {
    /// Checks the section; errors name the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.mechanisms.is_empty() {
            return Err("sasl.mechanisms: offer at least one of SCRAM-SHA-256, SCRAM-SHA-512, PLAIN".into());
        }
        for (i, m) in self.mechanisms.iter().enumerate() {
            if Mechanism::parse(m).is_none() {
                return Err(format!("sasl.mechanisms[{i}]: {m:?} is not one of SCRAM-SHA-256, SCRAM-SHA-512, PLAIN"));
            }
        }
        if self.users.is_empty() {
            return Err("sasl.users: add at least one [[sasl.users]] (name and password or password_env); more can then be created with Kafka's AlterUserScramCredentials".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, u) in self.users.iter().enumerate() {
            if u.name.is_empty() {
                return Err(format!("sasl.users[{i}].name: empty"));
            }
            if !names.insert(&u.name) {
                return Err(format!("sasl.users[{i}].name: {:?} is listed twice", u.name));
            }
            if [u.password.is_some(), u.password_env.is_some(), u.password_file.is_some()].iter().filter(|x| **x).count() != 1 {
                return Err(format!("sasl.users[{i}]: set exactly one of password, password_env and password_file"));
            }
        }
        Ok(())
    }

    /// The offered mechanisms, parsed (after [`SaslConfig::validate`]).
    pub fn offered(&self) -> Vec<Mechanism> {
        self.mechanisms.iter().filter_map(|m| Mechanism::parse(m)).collect()
    }
}

/// What the Kafka connections ask when a client authenticates.
pub struct Authenticator {
    offered: Vec<Mechanism>,
    /// Bootstrap users' credentials, made at start with a fresh salt.
    config_users: BTreeMap<(String, Mechanism), ScramCredential>,
    node: Node,
}

impl Authenticator {
    /// Reads the bootstrap users' passwords (environment variables named by the config).
    pub fn new(cfg: &SaslConfig, node: Node) -> Result<Authenticator, String> {
        let mut config_users = BTreeMap::new();
        for (i, u) in cfg.users.iter().enumerate() {
            let password = match (&u.password, &u.password_env, &u.password_file) {
                (Some(p), _, _) => p.clone(),
                (None, Some(var), _) => std::env::var(var).map_err(|_| format!("sasl.users[{i}].password_env: environment variable {var} is not set"))?,
                (None, None, Some(f)) => {
                    let text = std::fs::read_to_string(f).map_err(|e| format!("sasl.users[{i}].password_file: cannot read {}: {e}", f.display()))?;
                    text.trim_end_matches(['\n', '\r']).to_string()
                }
                (None, None, None) => return Err(format!("sasl.users[{i}]: no password")),
            };
            if password.is_empty() {
                return Err(format!("sasl.users[{i}]: the password of {:?} is empty", u.name));
            }
            for mech in Mechanism::SCRAM {
                let salt: [u8; 16] = rand::thread_rng().gen();
                config_users.insert((u.name.clone(), mech), ScramCredential::from_password(mech, &password, &salt, MIN_ITERATIONS));
            }
        }
        Ok(Authenticator { offered: cfg.offered(), config_users, node })
    }

    pub fn offered(&self) -> &[Mechanism] {
        &self.offered
    }

    /// A server for one exchange, with a fresh nonce; `None` if `mech` is not offered.
    pub fn start(&self, mech: Mechanism) -> Option<Server> {
        let nonce: String = rand::thread_rng().sample_iter(rand::distributions::Alphanumeric).take(24).map(char::from).collect();
        self.offered.contains(&mech).then(|| Server::new(mech, nonce))
    }

    /// `user`'s credential for `mech` (PLAIN: the SCRAM-SHA-256 one). Bootstrap users win.
    pub fn credential(&self, user: &str, mech: Mechanism) -> Option<ScramCredential> {
        let mech = if mech == Mechanism::Plain { Mechanism::ScramSha256 } else { mech };
        self.config_users.get(&(user.to_string(), mech)).cloned().or_else(|| self.node.scram_credential(user, mech))
    }

    pub fn is_config_user(&self, user: &str) -> bool {
        self.config_users.keys().any(|(u, _)| u == user)
    }
}

/// Every user with its SCRAM mechanisms and iterations: the bootstrap users of `auth` (when
/// the listeners use SASL) and those in the metadata log (a bootstrap user's name wins).
pub fn users(auth: Option<&Authenticator>, node: &Node) -> BTreeMap<String, Vec<(Mechanism, u32)>> {
    let mut out: BTreeMap<String, Vec<(Mechanism, u32)>> = BTreeMap::new();
    for ((u, m), c) in auth.iter().flat_map(|a| a.config_users.iter()) {
        out.entry(u.clone()).or_default().push((*m, c.iterations));
    }
    for (u, m, it) in node.scram_users() {
        if !auth.is_some_and(|a| a.is_config_user(&u)) {
            out.entry(u).or_default().push((m, it));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<SaslConfig, String> {
        let c: SaslConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map(|_| c)
    }

    #[test]
    fn sasl_section_is_checked_with_the_field_named() {
        let ok = cfg("[[users]]\nname = \"admin\"\npassword = \"pw\"").unwrap();
        assert_eq!(ok.offered(), vec![Mechanism::ScramSha256, Mechanism::ScramSha512]);
        assert!(cfg("mechanisms = [\"PLAIN\"]\n[[users]]\nname = \"a\"\npassword_env = \"X\"").is_ok());
        assert!(cfg("").unwrap_err().starts_with("sasl.users: add at least one"));
        assert!(cfg("mechanisms = []\n[[users]]\nname = \"a\"\npassword = \"p\"").unwrap_err().starts_with("sasl.mechanisms:"));
        assert!(cfg("mechanisms = [\"GSSAPI\"]\n[[users]]\nname = \"a\"\npassword = \"p\"").unwrap_err().starts_with("sasl.mechanisms[0]: \"GSSAPI\""));
        assert!(cfg("[[users]]\nname = \"a\"").unwrap_err().starts_with("sasl.users[0]: set exactly one"));
        assert!(cfg("[[users]]\nname = \"a\"\npassword_file = \"pw\"").is_ok());
        assert!(cfg("[[users]]\nname = \"a\"\npassword_file = \"pw\"\npassword = \"p\"").unwrap_err().starts_with("sasl.users[0]: set exactly one"));
        assert!(cfg("[[users]]\nname = \"a\"\npassword = \"p\"\npassword_env = \"X\"").unwrap_err().starts_with("sasl.users[0]: set exactly one"));
        assert!(cfg("[[users]]\nname = \"\"\npassword = \"p\"").unwrap_err().starts_with("sasl.users[0].name"));
        assert!(cfg("[[users]]\nname = \"a\"\npassword = \"p\"\n[[users]]\nname = \"a\"\npassword = \"q\"").unwrap_err().starts_with("sasl.users[1].name"));
        assert!(cfg("[[users]]\nname = \"a\"\npasword = \"p\"").unwrap_err().contains("unknown field `pasword`"));
    }
}
