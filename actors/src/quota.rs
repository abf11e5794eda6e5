//! Client quotas (Kafka's KIP-13, KIP-55, KIP-546, KIP-599): byte-rate limits and the
//! controller mutation rate per user and client id.
//!
//! A quota entity names a user, a client id, or both; each part is a name or the default
//! (`None`, Kafka's `<default>`). The quotas live in the metadata log (set with
//! AlterClientQuotas, read with DescribeClientQuotas) so every node knows them; each node
//! enforces them on its own traffic, as each Kafka broker does. For a connection of user U and
//! client id C, each quota key is taken from the most specific entity that sets it, in Kafka's
//! order (see [`resolve`]).
//!
//! Enforcement ([`Bucket`]) is a token bucket per matched entity: it refills at the quota's
//! rate and holds at most one second of it; a request that takes it below zero is throttled
//! for as long as the refill needs to bring it back (`throttle_time_ms` in the answer, and the
//! connection reads nothing more for that long, as KIP-219's muting).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
/// Bytes per second a producer may send (Produce requests' record bytes).
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// Bytes per second a consumer may receive (Fetch answers' record bytes).
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// Partitions per second a client may create or delete (CreateTopics, CreatePartitions,
/// DeleteTopics; KIP-599).
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
/// The quota keys served, all enforced.
pub const KEYS: [&str; 3] = [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, CONTROLLER_MUTATION_RATE];

/// Longest throttle handed out at once (Kafka bounds it by its quota window, about 10 s).
pub const MAX_THROTTLE: Duration = Duration::from_secs(10);

/// Entity type ("user" / "client-id") to name (`None`: the default entity of that type).
pub type QuotaEntity = BTreeMap<String, Option<String>>;

/// Client quotas by entity, then quota key.
pub type Quotas = BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>;

/// A quota value (Kafka's are doubles). Equality by bit pattern, so records compare.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for QuotaValue {}

/// Why a quota change is refused (INVALID_REQUEST, with this message).
pub fn validate(entity: &[(String, Option<String>)], key: &str, value: Option<f64>) -> Result<(), String> {
    validate_entity(entity)?;
    validate_value(key, value)
}

/// Why a quota entity is refused: types other than user and client-id, a type given twice,
/// an empty name.
pub fn validate_entity(entity: &[(String, Option<String>)]) -> Result<(), String> {
    if entity.is_empty() {
        return Err("a quota entity names a user, a client id or both".into());
    }
    for (i, (kind, name)) in entity.iter().enumerate() {
        match kind.as_str() {
            USER | CLIENT_ID => {}
            "ip" => return Err("ip quotas (connection_creation_rate) are not served".into()),
            other => return Err(format!("unknown quota entity type {other:?}: use \"user\" or \"client-id\"")),
        }
        if entity[..i].iter().any(|(k, _)| k == kind) {
            return Err(format!("entity type {kind:?} given twice"));
        }
        if name.as_deref() == Some("") {
            return Err(format!("an empty {kind} name: leave the name out for the default entity"));
        }
    }
    Ok(())
}

/// Why a quota key or value (`None`: removal) is refused.
pub fn validate_value(key: &str, value: Option<f64>) -> Result<(), String> {
    if !KEYS.contains(&key) {
        return Err(format!("unknown or unsupported quota key {key:?}: served keys are {}", KEYS.join(", ")));
    }
    match value {
        Some(v) if key == CONTROLLER_MUTATION_RATE && (!v.is_finite() || v <= 0.0) => Err(format!("{key} must be a number of partitions per second above 0, not {v}")),
        Some(v) if key != CONTROLLER_MUTATION_RATE && (!v.is_finite() || v <= 0.0 || v.fract() != 0.0) => Err(format!("{key} must be a whole number of bytes per second above 0, not {v}")),
        _ => Ok(()),
    }
}

/// Kafka's precedence for a connection of `user` and `client_id`: the entities to look in,
/// most specific first (`Some(None)`: the default entity of that type).
fn precedence(user: &str, client_id: &str) -> [QuotaEntity; 8] {
    let e = |u: Option<Option<&str>>, c: Option<Option<&str>>| {
        let mut m = QuotaEntity::new();
        if let Some(u) = u {
            m.insert(USER.to_string(), u.map(str::to_string));
        }
        if let Some(c) = c {
            m.insert(CLIENT_ID.to_string(), c.map(str::to_string));
        }
        m
    };
    let (u, c) = (Some(user), Some(client_id));
    [
        e(Some(u), Some(c)),
        e(Some(u), Some(None)),
        e(Some(u), None),
        e(Some(None), Some(c)),
        e(Some(None), Some(None)),
        e(Some(None), None),
        e(None, Some(c)),
        e(None, Some(None)),
    ]
}

/// The quota `key` for a connection of `user` / `client_id`: its rate and the bucket it is
/// counted in. A default entity counts each user / client id on its own, so the bucket names
/// the connection's own user and client id wherever the matched entity has a part.
pub fn resolve(quotas: &Quotas, user: &str, client_id: &str, key: &str) -> Option<(f64, (Option<String>, Option<String>))> {
    precedence(user, client_id).into_iter().find_map(|entity| {
        let v = quotas.get(&entity)?.get(key)?;
        let bucket = (entity.contains_key(USER).then(|| user.to_string()), entity.contains_key(CLIENT_ID).then(|| client_id.to_string()));
        Some((v.0, bucket))
    })
}

/// A token bucket (bytes, or partitions for the mutation rate): refills at `rate` per second
/// up to one second's worth.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    /// Milliseconds on the caller's clock at the last update.
    at_ms: u64,
}

impl Bucket {
    pub fn new(rate: f64, now_ms: u64) -> Bucket {
        Bucket { tokens: rate, at_ms: now_ms }
    }

    /// When it was last charged (the caller's clock).
    pub fn last_ms(&self) -> u64 {
        self.at_ms
    }

    /// Whether its holder still has a throttle to serve (a bucket out of debt is no stricter
    /// than a new one, so it may be dropped).
    pub fn in_debt(&self) -> bool {
        self.tokens < 0.0
    }

    /// How long the sender must wait before the bucket is out of debt at `now_ms`, without
    /// taking anything (KIP-599's strict check before a controller mutation).
    pub fn debt(&mut self, rate: f64, now_ms: u64) -> Duration {
        self.take(rate, 0, now_ms)
    }

    /// Counts `amount` at `now_ms` against `rate` (per second); how long the sender must wait.
    pub fn take(&mut self, rate: f64, amount: u64, now_ms: u64) -> Duration {
        assert!(rate > 0.0, "quota rates are validated above zero");
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64 / 1000.0;
        self.at_ms = self.at_ms.max(now_ms);
        // A debt never outgrows one longest throttle: a client pays for one huge request once.
        self.tokens = ((self.tokens + elapsed * rate).min(rate) - amount as f64).max(-rate * MAX_THROTTLE.as_secs_f64());
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-self.tokens / rate).min(MAX_THROTTLE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        parts.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect()
    }

    #[test]
    fn the_most_specific_entity_wins_key_by_key() {
        let mut q = Quotas::new();
        let mut set = |e: QuotaEntity, k: &str, v: f64| {
            q.entry(e).or_default().insert(k.to_string(), QuotaValue(v));
        };
        set(entity(&[(CLIENT_ID, None)]), PRODUCER_BYTE_RATE, 1.0);
        set(entity(&[(CLIENT_ID, Some("etl"))]), PRODUCER_BYTE_RATE, 2.0);
        set(entity(&[(USER, Some("alice"))]), PRODUCER_BYTE_RATE, 3.0);
        set(entity(&[(USER, Some("alice")), (CLIENT_ID, Some("etl"))]), CONSUMER_BYTE_RATE, 4.0);
        set(entity(&[(USER, None)]), CONSUMER_BYTE_RATE, 5.0);
        let r = |u: &str, c: &str, k: &str| resolve(&q, u, c, k);
        // A user quota beats a client-id one; the user+client entity only sets the consumer key.
        assert_eq!(r("alice", "etl", PRODUCER_BYTE_RATE), Some((3.0, (Some("alice".into()), None))));
        assert_eq!(r("alice", "etl", CONSUMER_BYTE_RATE), Some((4.0, (Some("alice".into()), Some("etl".into())))));
        // The default user entity counts each user alone.
        assert_eq!(r("bob", "etl", CONSUMER_BYTE_RATE), Some((5.0, (Some("bob".into()), None))));
        assert_eq!(r("bob", "etl", PRODUCER_BYTE_RATE), Some((2.0, (None, Some("etl".into())))));
        assert_eq!(r("bob", "other", PRODUCER_BYTE_RATE), Some((1.0, (None, Some("other".into())))));
    }

    #[test]
    fn a_bucket_throttles_what_goes_past_its_rate() {
        let mut b = Bucket::new(1000.0, 0);
        assert_eq!(b.take(1000.0, 1000, 0), Duration::ZERO, "one second's worth at once");
        assert_eq!(b.take(1000.0, 500, 0), Duration::from_millis(500));
        // Half a second later the debt is paid.
        assert_eq!(b.take(1000.0, 0, 500), Duration::ZERO);
        assert_eq!(b.take(1000.0, 100, 600), Duration::ZERO);
        // Idle time never banks more than a second; huge requests wait at most MAX_THROTTLE.
        assert_eq!(b.take(1000.0, 1500, 100_000), Duration::from_millis(500));
        assert_eq!(b.take(1000.0, 1_000_000, 100_000), MAX_THROTTLE);
        assert_eq!(b.take(1000.0, 0, 100_000 + MAX_THROTTLE.as_millis() as u64), Duration::ZERO, "paid once");
    }

    #[test]
    fn changes_are_validated() {
        let e = |k: &str, n: Option<&str>| vec![(k.to_string(), n.map(str::to_string))];
        assert!(validate(&e(USER, Some("a")), PRODUCER_BYTE_RATE, Some(1024.0)).is_ok());
        assert!(validate(&e(CLIENT_ID, None), CONSUMER_BYTE_RATE, None).is_ok());
        assert!(validate(&e("ip", None), PRODUCER_BYTE_RATE, Some(1.0)).unwrap_err().contains("ip"));
        assert!(validate(&e(USER, Some("a")), "request_percentage", Some(1.0)).unwrap_err().contains("unsupported"));
        assert!(validate(&e(USER, Some("a")), PRODUCER_BYTE_RATE, Some(0.0)).is_err());
        assert!(validate(&e(USER, Some("a")), PRODUCER_BYTE_RATE, Some(10.5)).is_err());
        assert!(validate(&e(USER, Some("a")), CONTROLLER_MUTATION_RATE, Some(0.5)).is_ok(), "mutations per second need not be whole");
        assert!(validate(&e(USER, Some("a")), CONTROLLER_MUTATION_RATE, Some(-1.0)).is_err());
        assert!(validate(&[], PRODUCER_BYTE_RATE, Some(1.0)).is_err());
        let twice = vec![(USER.to_string(), None), (USER.to_string(), Some("b".to_string()))];
        assert!(validate(&twice, PRODUCER_BYTE_RATE, Some(1.0)).unwrap_err().contains("twice"));
    }
}
