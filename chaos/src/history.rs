//! The operation history: one JSON object per line, written as operations happen, so the
//! checker decides from what clients saw and nothing else.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::sync::Mutex;

/// One thing a client did or saw. `t` is milliseconds since the run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A producer handed a record to its client library.
    Send { t: u64, producer: u32, partition: i32, seq: u64, value: String },
    /// The broker acknowledged it (acks=all) at this offset.
    Ack { t: u64, producer: u32, partition: i32, seq: u64, value: String, offset: i64 },
    /// The client gave up on it: it may or may not be in the log.
    Fail { t: u64, producer: u32, partition: i32, seq: u64, value: String, error: String },
    /// A consumer read a record.
    Read { t: u64, consumer: u32, partition: i32, offset: i64, value: String },
    /// A group committed an offset for a partition (the next offset to read).
    Commit { t: u64, group: String, partition: i32, offset: i64 },
    /// The nemesis did something (for the report; the checker ignores it).
    Fault { t: u64, what: String },
    /// A replica's final state through the admin API: high watermark and checksum.
    Replica { t: u64, partition: i32, node: i32, high_watermark: i64, checksum: u32 },
    /// A transactional producer ended a transaction holding values `x{producer}-{seq}` for
    /// seq in `first_seq..=last_seq`: "committed", "aborted" (or "aborted-send"), or
    /// "unknown" (the client could not tell).
    Txn { t: u64, producer: u32, first_seq: u64, last_seq: u64, outcome: String },
}

impl Op {
    pub fn t(&self) -> u64 {
        match self {
            Op::Send { t, .. } | Op::Ack { t, .. } | Op::Fail { t, .. } | Op::Read { t, .. } | Op::Commit { t, .. } | Op::Fault { t, .. } | Op::Replica { t, .. } | Op::Txn { t, .. } => *t,
        }
    }
}

/// Appends operations to a JSON-lines file (and keeps them for the checker).
pub struct Recorder {
    file: Mutex<std::io::BufWriter<std::fs::File>>,
    ops: Mutex<Vec<Op>>,
    started: std::time::Instant,
}

impl Recorder {
    pub fn create(path: &std::path::Path) -> std::io::Result<Recorder> {
        Ok(Recorder { file: Mutex::new(std::io::BufWriter::new(std::fs::File::create(path)?)), ops: Mutex::default(), started: std::time::Instant::now() })
    }

    /// Milliseconds since the run started.
    pub fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn record(&self, op: Op) {
        let line = serde_json::to_string(&op).expect("op serializes");
        let mut f = self.file.lock().expect("lock");
        let _ = writeln!(f, "{line}");
        self.ops.lock().expect("lock").push(op);
    }

    pub fn ops(&self) -> Vec<Op> {
        let _ = self.file.lock().expect("lock").flush();
        self.ops.lock().expect("lock").clone()
    }
}

/// Reads a history file back.
pub fn load(path: &std::path::Path) -> Result<Vec<Op>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?);
    }
    Ok(out)
}
