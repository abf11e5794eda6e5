//! Decides from a history alone whether the cluster kept its promises:
//! - lost: acknowledged, never read;
//! - duplicated: one value read at two different offsets (idempotence failed);
//! - wrong offset: read at another offset than the one it was acknowledged with;
//! - reordered: one producer's records to a partition in the log out of sequence order;
//! - offsets backwards: a consumer's reads of a partition going back, or a group's commits;
//! - divergent replicas: replicas of a partition ending with different logs;
//! - transactions not atomic: a committed transaction's record not read (once) under
//!   read_committed, an aborted transaction's record read, or an unknown outcome read in
//!   part.
//!
//! Each finding names the smallest window of history that shows it (the operations involved,
//! with their times).

use crate::history::Op;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: &'static str,
    pub detail: String,
    /// The operations that show it.
    pub window: Vec<Op>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub sent: usize,
    pub acknowledged: usize,
    pub failed: usize,
    pub read: usize,
    pub distinct_read: usize,
    pub commits: usize,
    pub faults: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub wrong_offset: usize,
    pub reordered: usize,
    pub offsets_backwards: usize,
    pub divergent_partitions: usize,
    pub txn_committed: usize,
    pub txn_aborted: usize,
    pub txn_unknown: usize,
    /// Transactions whose records were not all-or-nothing as their outcome requires.
    pub txn_not_atomic: usize,
    /// Longest time, per partition, between two acknowledgements while writes were pending
    /// (how long the partition could not take writes), in milliseconds.
    pub max_unavailable_ms: BTreeMap<i32, u64>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// A summary table for people.
    pub fn table(&self) -> String {
        let rows = [
            ("records sent", self.sent.to_string()),
            ("acknowledged", self.acknowledged.to_string()),
            ("failed (outcome unknown)", self.failed.to_string()),
            ("reads", self.read.to_string()),
            ("distinct records read", self.distinct_read.to_string()),
            ("group commits", self.commits.to_string()),
            ("faults injected", self.faults.to_string()),
            ("lost", self.lost.to_string()),
            ("duplicated", self.duplicated.to_string()),
            ("read at another offset", self.wrong_offset.to_string()),
            ("reordered", self.reordered.to_string()),
            ("offsets backwards", self.offsets_backwards.to_string()),
            ("divergent partitions", self.divergent_partitions.to_string()),
            ("transactions committed", self.txn_committed.to_string()),
            ("transactions aborted", self.txn_aborted.to_string()),
            ("transactions unknown", self.txn_unknown.to_string()),
            ("transactions not atomic", self.txn_not_atomic.to_string()),
            ("max unavailability (ms)", self.max_unavailable_ms.values().max().copied().unwrap_or(0).to_string()),
        ];
        let mut out = String::new();
        for (k, v) in rows {
            out += &format!("  {k:<26} {v:>10}\n");
        }
        out
    }
}

pub fn check(ops: &[Op]) -> Report {
    let mut r = Report::default();
    // value -> its Ack
    let mut acks: HashMap<&str, &Op> = HashMap::new();
    // value -> every Read of it
    let mut reads: HashMap<&str, Vec<&Op>> = HashMap::new();
    // (consumer, partition) -> last Read
    let mut last_read: HashMap<(u32, i32), &Op> = HashMap::new();
    // (group, partition) -> last Commit
    let mut last_commit: HashMap<(&str, i32), &Op> = HashMap::new();
    // partition -> node -> (hw, checksum, op)
    let mut replicas: BTreeMap<i32, Vec<&Op>> = BTreeMap::new();
    // partition -> (time of the last ack, sends pending since)
    let mut pending: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    let mut last_ack_t: BTreeMap<i32, u64> = BTreeMap::new();
    let mut first_send_t: BTreeMap<i32, u64> = BTreeMap::new();

    for op in ops {
        match op {
            Op::Send { t, partition, .. } => {
                r.sent += 1;
                pending.entry(*partition).or_default().push(*t);
                first_send_t.entry(*partition).or_insert(*t);
            }
            Op::Ack { t, partition, value, .. } => {
                r.acknowledged += 1;
                acks.insert(value.as_str(), op);
                let since = last_ack_t.get(partition).copied().or(first_send_t.get(partition).copied()).unwrap_or(*t);
                let gap = t.saturating_sub(since);
                let m = r.max_unavailable_ms.entry(*partition).or_default();
                *m = (*m).max(gap);
                last_ack_t.insert(*partition, *t);
            }
            Op::Fail { .. } => r.failed += 1,
            Op::Read { consumer, partition, offset, value, .. } => {
                r.read += 1;
                reads.entry(value.as_str()).or_default().push(op);
                if let Some(prev @ Op::Read { offset: p, .. }) = last_read.get(&(*consumer, *partition)) {
                    if offset <= p {
                        r.offsets_backwards += 1;
                        r.findings.push(Finding { kind: "offsets backwards", detail: format!("consumer {consumer} read partition {partition} at {offset} after {p}"), window: vec![(*prev).clone(), op.clone()] });
                    }
                }
                last_read.insert((*consumer, *partition), op);
            }
            Op::Commit { group, partition, offset, .. } => {
                r.commits += 1;
                if let Some(prev @ Op::Commit { offset: p, .. }) = last_commit.get(&(group.as_str(), *partition)) {
                    if offset < p {
                        r.offsets_backwards += 1;
                        r.findings.push(Finding { kind: "commit backwards", detail: format!("group {group} committed partition {partition} at {offset} after {p}"), window: vec![(*prev).clone(), op.clone()] });
                    }
                }
                last_commit.insert((group.as_str(), *partition), op);
            }
            // A fault and its "healed" mark count once.
            Op::Fault { what, .. } if what != "healed" => r.faults += 1,
            Op::Fault { .. } => {}
            Op::Replica { partition, .. } => replicas.entry(*partition).or_default().push(op),
            Op::Txn { .. } => {}
        }
    }
    check_transactions(ops, &reads, &mut r);
    let _ = pending;
    r.distinct_read = reads.len();

    // Lost and read at another offset.
    let mut acked: Vec<&&Op> = acks.values().collect();
    acked.sort_by_key(|o| o.t());
    for ack in acked {
        let Op::Ack { value, partition, offset, .. } = ack else { continue };
        match reads.get(value.as_str()) {
            None => {
                r.lost += 1;
                r.findings.push(Finding { kind: "lost", detail: format!("{value} acknowledged at {partition}/{offset}, never read"), window: vec![(*ack).clone()] });
            }
            Some(rs) => {
                // An acknowledgement without an offset (librdkafka's "implicit ack": an
                // earlier request's answer was lost but a later one of the same producer
                // succeeded, so it was written) only has to be read, once, in its partition.
                let unknown_offset = *offset < 0;
                if let Some(bad) = rs.iter().find(|x| !matches!(x, Op::Read { partition: p, offset: o, .. } if p == partition && (o == offset || unknown_offset))) {
                    r.wrong_offset += 1;
                    r.findings.push(Finding { kind: "read at another offset", detail: format!("{value} acknowledged at {partition}/{offset}"), window: vec![(*ack).clone(), (*bad).clone()] });
                }
            }
        }
    }
    // Duplicated: one value at two positions.
    let mut dup: Vec<(&&str, &Vec<&Op>)> = reads.iter().collect();
    dup.sort_by_key(|(v, _)| **v);
    for (value, rs) in dup {
        let mut at: Vec<(i32, i64)> = rs.iter().filter_map(|o| if let Op::Read { partition, offset, .. } = o { Some((*partition, *offset)) } else { None }).collect();
        at.sort();
        at.dedup();
        if at.len() > 1 {
            r.duplicated += 1;
            r.findings.push(Finding { kind: "duplicated", detail: format!("{value} is in the log at {at:?}"), window: rs.iter().map(|o| (*o).clone()).collect() });
        }
    }
    // Reordered: per (producer, partition), log order must follow sequence order.
    let mut by_producer: BTreeMap<(u32, i32), Vec<(i64, u64, &Op)>> = BTreeMap::new();
    for (value, rs) in &reads {
        let Some(Op::Read { partition, offset, .. }) = rs.first() else { continue };
        // Values are "p{producer}-{seq}" (see the workload); others are not ours to order.
        let Some((producer, seq)) = parse_value(value) else { continue };
        by_producer.entry((producer, *partition)).or_default().push((*offset, seq, rs[0]));
    }
    for ((producer, partition), mut v) in by_producer {
        v.sort_by_key(|x| x.0);
        for w in v.windows(2) {
            if w[1].1 < w[0].1 {
                r.reordered += 1;
                r.findings.push(Finding {
                    kind: "reordered",
                    detail: format!("producer {producer} partition {partition}: seq {} at offset {} after seq {} at offset {}", w[1].1, w[1].0, w[0].1, w[0].0),
                    window: vec![w[0].2.clone(), w[1].2.clone()],
                });
            }
        }
    }
    // Divergent replicas.
    for (partition, rs) in replicas {
        let states: Vec<(i64, u32)> = rs.iter().filter_map(|o| if let Op::Replica { high_watermark, checksum, .. } = o { Some((*high_watermark, *checksum)) } else { None }).collect();
        if states.windows(2).any(|w| w[0] != w[1]) {
            r.divergent_partitions += 1;
            r.findings.push(Finding { kind: "divergent replicas", detail: format!("partition {partition}: (high watermark, checksum) per replica {states:?}"), window: rs.iter().map(|o| (*o).clone()).collect() });
        }
    }
    r
}

/// Atomicity of the transactions the history ended: every record of a committed one read
/// exactly once (read_committed), none of an aborted one, all or none of an unknown one.
fn check_transactions(ops: &[Op], reads: &HashMap<&str, Vec<&Op>>, r: &mut Report) {
    for op in ops {
        let Op::Txn { producer, first_seq, last_seq, outcome, .. } = op else { continue };
        let values: Vec<String> = (*first_seq..=*last_seq).map(|s| format!("x{producer}-{s}")).collect();
        let seen: Vec<usize> = values.iter().map(|v| reads.get(v.as_str()).map(|rs| rs.len()).unwrap_or(0)).collect();
        let read = seen.iter().filter(|n| **n > 0).count();
        let bad = match outcome.as_str() {
            "committed" => {
                r.txn_committed += 1;
                (read != values.len() || seen.iter().any(|n| *n > 1)).then(|| format!("committed, but its records were read {seen:?} times"))
            }
            "unknown" => {
                r.txn_unknown += 1;
                (read != 0 && read != values.len()).then(|| format!("outcome unknown, and only part of it was read: {seen:?}"))
            }
            _ => {
                r.txn_aborted += 1;
                (read > 0).then(|| format!("{outcome}, yet {read} of its records were read under read_committed"))
            }
        };
        if let Some(detail) = bad {
            r.txn_not_atomic += 1;
            let mut window = vec![op.clone()];
            window.extend(values.iter().filter_map(|v| reads.get(v.as_str())).flatten().map(|o| (*o).clone()));
            r.findings.push(Finding { kind: "transaction not atomic", detail: format!("producer {producer} seq {first_seq}..={last_seq}: {detail}"), window });
        }
    }
}

/// The workload's values: `p{producer}-{seq}`.
pub fn parse_value(v: &str) -> Option<(u32, u64)> {
    let (p, s) = v.strip_prefix('p')?.split_once('-')?;
    Some((p.parse().ok()?, s.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(t: u64, seq: u64, partition: i32) -> Op {
        Op::Send { t, producer: 1, partition, seq, value: format!("p1-{seq}") }
    }
    fn ack(t: u64, seq: u64, partition: i32, offset: i64) -> Op {
        Op::Ack { t, producer: 1, partition, seq, value: format!("p1-{seq}"), offset }
    }
    fn read(t: u64, seq: u64, partition: i32, offset: i64) -> Op {
        Op::Read { t, consumer: 1, partition, offset, value: format!("p1-{seq}") }
    }

    #[test]
    fn a_clean_history_passes() {
        let h = vec![send(0, 0, 0), send(1, 1, 0), ack(5, 0, 0, 0), ack(6, 1, 0, 1), read(10, 0, 0, 0), read(11, 1, 0, 1)];
        let r = check(&h);
        assert!(r.ok(), "{:?}", r.findings);
        assert_eq!((r.acknowledged, r.distinct_read), (2, 2));
    }

    #[test]
    fn an_acknowledgement_without_offset_only_needs_the_record_read() {
        // librdkafka reports implicitly acknowledged records with offset -1001.
        let h = vec![send(0, 0, 0), send(1, 1, 0), ack(5, 0, 0, -1001), ack(6, 1, 0, 1), read(10, 0, 0, 0), read(11, 1, 0, 1)];
        assert!(check(&h).ok(), "{:?}", check(&h).findings);
        let lost = vec![send(0, 0, 0), ack(5, 0, 0, -1001)];
        assert_eq!(check(&lost).lost, 1);
        let elsewhere = vec![send(0, 0, 0), ack(5, 0, 0, -1001), read(10, 0, 1, 0)];
        assert_eq!(check(&elsewhere).wrong_offset, 1, "read in another partition");
    }

    #[test]
    fn a_lost_write_is_reported() {
        let h = vec![send(0, 0, 0), send(1, 1, 0), ack(5, 0, 0, 0), ack(6, 1, 0, 1), read(10, 0, 0, 0)];
        let r = check(&h);
        assert_eq!(r.lost, 1);
        assert_eq!(r.findings[0].kind, "lost");
        assert!(r.findings[0].detail.contains("p1-1"), "{:?}", r.findings);
    }

    #[test]
    fn a_duplicate_is_reported() {
        let h = vec![send(0, 0, 0), ack(5, 0, 0, 0), read(10, 0, 0, 0), read(11, 0, 0, 1)];
        let r = check(&h);
        assert_eq!(r.duplicated, 1, "{:?}", r.findings);
        assert!(r.findings.iter().any(|f| f.kind == "duplicated" && f.window.len() == 2));
    }

    #[test]
    fn a_reorder_is_reported() {
        // seq 1 landed before seq 0.
        let h = vec![send(0, 0, 0), send(1, 1, 0), ack(5, 1, 0, 0), ack(6, 0, 0, 1), read(10, 1, 0, 0), read(11, 0, 0, 1)];
        let r = check(&h);
        assert_eq!(r.reordered, 1, "{:?}", r.findings);
    }

    #[test]
    fn reads_and_commits_going_backwards_are_reported() {
        let h = vec![
            read(1, 0, 0, 5),
            read(2, 1, 0, 4),
            Op::Commit { t: 3, group: "g".into(), partition: 0, offset: 10 },
            Op::Commit { t: 4, group: "g".into(), partition: 0, offset: 7 },
        ];
        let r = check(&h);
        assert_eq!(r.offsets_backwards, 2, "{:?}", r.findings);
    }

    #[test]
    fn divergent_replicas_are_reported() {
        let h = vec![
            Op::Replica { t: 1, partition: 0, node: 1, high_watermark: 10, checksum: 7 },
            Op::Replica { t: 1, partition: 0, node: 2, high_watermark: 10, checksum: 8 },
        ];
        assert_eq!(check(&h).divergent_partitions, 1);
    }

    #[test]
    fn transactions_must_be_all_or_nothing() {
        let txn = |p: u32, first: u64, last: u64, outcome: &str| Op::Txn { t: 1, producer: p, first_seq: first, last_seq: last, outcome: outcome.into() };
        let read = |p: u32, s: u64, offset: i64| Op::Read { t: 2, consumer: 1, partition: 0, offset, value: format!("x{p}-{s}") };
        // Committed and read once, aborted and unread, unknown and unread: clean.
        let ok = vec![txn(101, 0, 1, "committed"), txn(101, 2, 3, "aborted"), txn(101, 4, 5, "unknown"), read(101, 0, 0), read(101, 1, 1)];
        let r = check(&ok);
        assert!(r.ok(), "{:?}", r.findings);
        assert_eq!((r.txn_committed, r.txn_aborted, r.txn_unknown), (1, 1, 1));
        // A committed record missing, an aborted one visible, an unknown one half there.
        let bad = vec![txn(101, 0, 1, "committed"), txn(101, 2, 3, "aborted"), txn(101, 4, 5, "unknown"), read(101, 0, 0), read(101, 2, 2), read(101, 4, 3)];
        let r = check(&bad);
        assert_eq!(r.txn_not_atomic, 3, "{:?}", r.findings);
    }

    #[test]
    fn histories_round_trip_through_json_lines() {
        let dir = std::env::temp_dir().join(format!("chaos-history-{}", std::process::id()));
        let rec = crate::history::Recorder::create(&dir).unwrap();
        let ops = vec![send(0, 0, 0), ack(5, 0, 0, 0), read(10, 0, 0, 0), Op::Fault { t: 3, what: "kill node 1".into() }];
        for o in &ops {
            rec.record(o.clone());
        }
        let _ = rec.ops();
        assert_eq!(crate::history::load(&dir).unwrap(), ops);
        let _ = std::fs::remove_file(dir);
    }
}
