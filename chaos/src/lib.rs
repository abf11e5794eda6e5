//! Chaos runs against Backwaters clusters: a workload that records every operation, a
//! nemesis that injects faults on a seeded schedule, and a checker that decides from the
//! recorded history alone (as Jepsen and Redpanda's chaos suite do).
//!
//! # Layout
//! - [`history`]: the operations (JSON lines) and the recorder.
//! - [`checker`]: lost, duplicated, misplaced, reordered records; offsets and commits going
//!   backwards; divergent replicas.
//! - [`run`]: the runner: cluster processes, workload, nemesis, settle, check.
//! - [`txn`]: the transactional workload and its read_committed read-back.

pub mod checker;
pub mod history;
pub mod run;
pub mod txn;
