//! Topics: name rules, per-topic configs with Kafka's names and defaults, the catalog record.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_MAX: usize = 249;

/// Checks a topic name the way Kafka does (`Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be \"{name}\""));
    }
    if name.len() > TOPIC_NAME_MAX {
        return Err(format!("topic name is {} characters, the limit is {TOPIC_NAME_MAX}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_' || *c == '-')) {
        return Err(format!("topic name {name:?} has the character {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"));
    }
    Ok(())
}

/// The effective configuration of a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub cleanup_policy: String,
    pub max_message_bytes: i32,
    pub segment_bytes: i64,
    pub segment_ms: i64,
    pub min_insync_replicas: i32,
    pub compression_type: String,
    pub message_timestamp_type: String,
    /// Compaction runs once this share of the cleanable log is dirty (not compacted yet).
    pub min_cleanable_dirty_ratio: f64,
    /// Records younger than this are never compacted away.
    pub min_compaction_lag_ms: i64,
    /// A dirty part whose oldest record is this old is compacted whatever its size.
    pub max_compaction_lag_ms: i64,
    /// How long a tombstone stays after it became the latest record of its key.
    pub delete_retention_ms: i64,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_policy: "delete".into(),
            max_message_bytes: 1_048_588,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            min_insync_replicas: 1,
            compression_type: "producer".into(),
            message_timestamp_type: "CreateTime".into(),
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 24 * 3600 * 1000,
        }
    }
}

/// One config entry as Kafka's DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub is_default: bool,
    pub doc: &'static str,
}

/// Config names a topic accepts, with what each means here.
pub const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("retention.ms", "Remove batches whose newest record is older than this (ms); -1 keeps forever"),
    ("retention.bytes", "Remove the oldest batches while a partition holds more than this; -1 = no limit"),
    ("cleanup.policy", "delete (retention applies), compact (only the latest record of each key is kept) or compact,delete"),
    ("max.message.bytes", "Largest record batch accepted, in bytes"),
    ("segment.bytes", "Compaction leaves the newest records alone until this many bytes follow the compacted part (the active segment)"),
    ("segment.ms", "... or until the oldest of them is this old (ms)"),
    ("min.insync.replicas", "Replicas that must have a batch before acks=all answers"),
    ("compression.type", "producer: batches are stored as the producer compressed them"),
    ("message.timestamp.type", "CreateTime: timestamps are the producer's"),
    ("min.cleanable.dirty.ratio", "Compaction runs once this share of the compactable log is not compacted yet"),
    ("min.compaction.lag.ms", "Records younger than this (ms) are never compacted away"),
    ("max.compaction.lag.ms", "Records not compacted for this long (ms) are compacted whatever the dirty ratio and segment settings"),
    ("delete.retention.ms", "A tombstone (null value) stays this long (ms) before compaction removes it"),
];

impl TopicConfig {
    /// Applies `overrides` on the defaults, refusing unknown names and bad values.
    pub fn from_overrides(overrides: &BTreeMap<String, String>) -> Result<TopicConfig, String> {
        let mut c = TopicConfig::default();
        for (k, v) in overrides {
            c.set(k, v)?;
        }
        Ok(c)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let long = |v: &str| v.trim().parse::<i64>().map_err(|_| format!("{name}={v:?} is not a number"));
        match name {
            "retention.ms" => self.retention_ms = at_least(name, long(value)?, -1)?,
            "retention.bytes" => self.retention_bytes = at_least(name, long(value)?, -1)?,
            "cleanup.policy" => {
                let v = value.trim().to_ascii_lowercase();
                let parts: Vec<&str> = v.split(',').map(str::trim).collect();
                if parts.is_empty() || parts.iter().any(|p| *p != "delete" && *p != "compact") {
                    return Err(format!("cleanup.policy={value:?}: use delete, compact or compact,delete"));
                }
                self.cleanup_policy = parts.join(",");
            }
            "max.message.bytes" => self.max_message_bytes = i32::try_from(at_least(name, long(value)?, 0)?).map_err(|_| format!("{name} is too large"))?,
            "segment.bytes" => self.segment_bytes = at_least(name, long(value)?, 14)?,
            "segment.ms" => self.segment_ms = at_least(name, long(value)?, 1)?,
            "min.insync.replicas" => self.min_insync_replicas = i32::try_from(at_least(name, long(value)?, 1)?).map_err(|_| format!("{name} is too large"))?,
            "compression.type" => {
                let v = value.trim().to_ascii_lowercase();
                if !["producer", "uncompressed", "none", "gzip", "snappy", "lz4", "zstd"].contains(&v.as_str()) {
                    return Err(format!("compression.type={value:?} is not a compression type"));
                }
                if v != "producer" {
                    return Err(format!("compression.type={value:?}: only 'producer' is supported (batches are kept as sent)"));
                }
                self.compression_type = v;
            }
            "message.timestamp.type" => {
                if value != "CreateTime" {
                    return Err(format!("message.timestamp.type={value:?}: only CreateTime is supported"));
                }
            }
            "min.cleanable.dirty.ratio" => {
                let r: f64 = value.trim().parse().map_err(|_| format!("{name}={value:?} is not a number"))?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(format!("{name}={value:?} must be between 0 and 1"));
                }
                self.min_cleanable_dirty_ratio = r;
            }
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = at_least(name, long(value)?, 0)?,
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = at_least(name, long(value)?, 1)?,
            "delete.retention.ms" => self.delete_retention_ms = at_least(name, long(value)?, 0)?,
            _ => return Err(format!("unknown topic config {name:?}; known: {}", TOPIC_CONFIGS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))),
        }
        Ok(())
    }

    /// Whether retention deletes old batches.
    pub fn cleanup_policy_delete(&self) -> bool {
        self.cleanup_policy.split(',').any(|p| p == "delete")
    }

    /// Whether compaction keeps only the latest record of each key.
    pub fn cleanup_policy_compact(&self) -> bool {
        self.cleanup_policy.split(',').any(|p| p == "compact")
    }

    /// Every config, for DescribeConfigs.
    pub fn entries(&self, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        let values = [
            self.retention_ms.to_string(),
            self.retention_bytes.to_string(),
            self.cleanup_policy.clone(),
            self.max_message_bytes.to_string(),
            self.segment_bytes.to_string(),
            self.segment_ms.to_string(),
            self.min_insync_replicas.to_string(),
            self.compression_type.clone(),
            self.message_timestamp_type.clone(),
            self.min_cleanable_dirty_ratio.to_string(),
            self.min_compaction_lag_ms.to_string(),
            self.max_compaction_lag_ms.to_string(),
            self.delete_retention_ms.to_string(),
        ];
        TOPIC_CONFIGS
            .iter()
            .zip(values)
            .map(|((name, doc), value)| ConfigEntry { name, value, is_default: !overrides.contains_key(*name), doc })
            .collect()
    }
}

fn at_least(name: &str, v: i64, min: i64) -> Result<i64, String> {
    if v < min {
        Err(format!("{name}={v} is below the minimum {min}"))
    } else {
        Ok(v)
    }
}

/// A topic as the catalog stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    /// Kafka topic id (UUID, as text).
    pub id: String,
    /// Cluster-wide id of each partition (its storage key prefix and Raft group id).
    pub partition_uids: Vec<u64>,
    pub replication_factor: i16,
    pub overrides: BTreeMap<String, String>,
    pub internal: bool,
    /// Node ids of each partition's replicas, the preferred leader first.
    #[serde(default)]
    pub replicas: Vec<Vec<i32>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_topic_name("logs.syslog-1_a").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }
    #[test]
    fn configs_validate() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        assert_eq!(TopicConfig::from_overrides(&o).unwrap().retention_ms, 1000);
        o.insert("retention.ms".to_string(), "soon".to_string());
        assert!(TopicConfig::from_overrides(&o).is_err());
        let mut o = BTreeMap::new();
        o.insert("no.such.config".to_string(), "1".to_string());
        assert!(TopicConfig::from_overrides(&o).unwrap_err().contains("unknown topic config"));
        let one = |k: &str, v: &str| TopicConfig::from_overrides(&BTreeMap::from([(k.to_string(), v.to_string())]));
        assert_eq!(one("min.cleanable.dirty.ratio", "0.1").unwrap().min_cleanable_dirty_ratio, 0.1);
        assert!(one("min.cleanable.dirty.ratio", "1.5").unwrap_err().contains("between 0 and 1"));
        assert!(one("max.compaction.lag.ms", "0").is_err());
        assert!(one("cleanup.policy", "compact,delete").unwrap().cleanup_policy_compact());
        assert!(!TopicConfig::default().cleanup_policy_compact());
    }
}
