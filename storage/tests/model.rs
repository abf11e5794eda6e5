//! Model-based property test: random append / read / prefix removal / suffix truncation /
//! restart sequences against an in-memory model of the partition log.

use backwaters_proto::kafka::batch::{encode_batch, with_base_offset, NewRecord};
use backwaters_storage::log::PartitionMeta;
use backwaters_storage::{Entry, EntryKind, HardState, PartitionLog, Store};
use bytes::Bytes;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, noop: bool, big: bool },
    Read { from: i64, max_bytes: usize },
    RemovePrefix { entries: usize },
    TruncateSuffix { entries: usize },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1usize..5, prop::bool::weighted(0.15), prop::bool::weighted(0.1)).prop_map(|(records, noop, big)| Op::Append { records, noop, big }),
        3 => (0i64..60, 1usize..600).prop_map(|(from, max_bytes)| Op::Read { from, max_bytes }),
        1 => (0usize..4).prop_map(|entries| Op::RemovePrefix { entries }),
        1 => (0usize..3).prop_map(|entries| Op::TruncateSuffix { entries }),
        1 => Just(Op::Restart),
    ]
}

#[derive(Default)]
struct Model {
    entries: Vec<Entry>,
    next_index: u64,
    next_offset: i64,
    meta: PartitionMeta,
}

fn batch(records: usize, base: i64) -> Bytes {
    batch_of(records, base, 0)
}

/// A batch whose records carry `pad` extra bytes each (big batches span several chunks).
fn batch_of(records: usize, base: i64, pad: usize) -> Bytes {
    let recs: Vec<NewRecord> = (0..records)
        .map(|i| NewRecord { value: Some(Bytes::from(format!("value-{base}-{i}-{}", "p".repeat(pad)))), timestamp_ms: base, ..Default::default() })
        .collect();
    with_base_offset(&encode_batch(&recs).unwrap(), base)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let (mut log, rec) = PartitionLog::open(&store, 7).unwrap();
        prop_assert_eq!(rec.next_offset, 0);
        let mut m = Model { next_index: 1, ..Default::default() };
        for op in ops {
            match op {
                Op::Append { records, noop, big } => {
                    let e = if noop {
                        Entry { index: m.next_index, term: 1, base_offset: m.next_offset, kind: EntryKind::Noop, payload: Bytes::new() }
                    } else {
                        let payload = batch_of(records, m.next_offset, if big { 70_000 } else { 0 });
                        m.meta.bytes += payload.len() as u64;
                        Entry { index: m.next_index, term: 1, base_offset: m.next_offset, kind: EntryKind::Batch, payload }
                    };
                    m.next_offset = e.next_offset();
                    m.next_index += 1;
                    log.append(std::slice::from_ref(&e), &[], &m.meta).unwrap();
                    m.entries.push(e);
                }
                Op::Read { from, max_bytes } => {
                    let got = log.read(from, max_bytes, i64::MAX).unwrap();
                    let mut want = Vec::new();
                    let mut bytes = 0;
                    for e in m.entries.iter().filter(|e| e.kind == EntryKind::Batch && e.next_offset() > from) {
                        if !want.is_empty() && bytes + e.payload.len() > max_bytes { break; }
                        bytes += e.payload.len();
                        want.push(e.clone());
                        if bytes >= max_bytes { break; }
                    }
                    prop_assert_eq!(got, want);
                }
                Op::RemovePrefix { entries } => {
                    let n = entries.min(m.entries.len());
                    if n == 0 { continue; }
                    let removed: Vec<Entry> = m.entries.drain(..n).collect();
                    let last = removed.last().unwrap();
                    m.meta.log_start_offset = last.next_offset();
                    m.meta.bytes -= removed.iter().map(|e| e.payload.len() as u64).sum::<u64>();
                    log.remove_prefix(last.index, &m.meta).unwrap();
                }
                Op::TruncateSuffix { entries } => {
                    let n = entries.min(m.entries.len());
                    if n == 0 { continue; }
                    let keep = m.entries.len() - n;
                    let removed: Vec<Entry> = m.entries.drain(keep..).collect();
                    m.meta.bytes -= removed.iter().map(|e| e.payload.len() as u64).sum::<u64>();
                    m.next_index = removed[0].index;
                    m.next_offset = removed[0].base_offset;
                    log.truncate_suffix(removed[0].index, &m.meta, &[], &[]).unwrap();
                }
                Op::Restart => {
                    store.flush().unwrap();
                    drop(log);
                    drop(store);
                    store = Store::open(dir.path()).unwrap();
                    let (l, rec) = PartitionLog::open(&store, 7).unwrap();
                    log = l;
                    prop_assert_eq!(rec.meta, m.meta);
                    match m.entries.last() {
                        Some(e) => {
                            prop_assert_eq!(rec.last_index, e.index);
                            prop_assert_eq!(rec.next_offset, e.next_offset());
                        }
                        None => prop_assert_eq!(rec.next_offset, m.meta.log_start_offset.max(0)),
                    }
                    // After a suffix truncation the model may reuse indexes; keep them aligned.
                    m.next_index = m.entries.last().map(|e| e.index + 1).unwrap_or(m.next_index);
                    if m.entries.is_empty() { m.next_offset = rec.next_offset; }
                }
            }
        }
    }
}

#[test]
fn other_partitions_and_format_version_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, _) = PartitionLog::open(&store, 1).unwrap();
    let (b, _) = PartitionLog::open(&store, 2).unwrap();
    let e = Entry { index: 1, term: 1, base_offset: 0, kind: EntryKind::Batch, payload: batch(2, 0) };
    a.append(&[e.clone()], &[], &PartitionMeta { log_start_offset: 0, bytes: e.payload.len() as u64, ..Default::default() }).unwrap();
    assert_eq!(b.read(0, 1 << 20, i64::MAX).unwrap(), vec![]);
    assert_eq!(a.read(1, 1 << 20, i64::MAX).unwrap(), vec![e]);
    a.destroy().unwrap();
    assert_eq!(a.read(0, 1 << 20, i64::MAX).unwrap(), vec![]);
}

#[test]
fn big_batches_never_become_unsynced_blob_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (log, _) = PartitionLog::open(&store, 3).unwrap();
    let mut next = 0i64;
    let mut meta = PartitionMeta::default();
    for index in 1..=40u64 {
        // About 1 MiB per batch, as librdkafka's default batch.size produces.
        let payload = batch_of(14, next, 70_000);
        meta.bytes += payload.len() as u64;
        let e = Entry { index, term: 1, base_offset: next, kind: EntryKind::Batch, payload };
        next = e.next_offset();
        log.append(&[e], &[], &meta).unwrap();
    }
    store.flush().unwrap();
    assert_eq!(store.blob_files(dir.path()), 0, "sled wrote blob files, which its flush does not fsync");
    let got = log.read(0, usize::MAX, i64::MAX).unwrap();
    assert_eq!(got.len(), 40);
}

#[test]
fn time_index_finds_the_first_batch_at_or_after_a_time() {
    let store = Store::temporary().unwrap();
    let (log, _) = PartitionLog::open(&store, 9).unwrap();
    let mut meta = PartitionMeta::default();
    // Batch timestamps (each batch's max): 100, 300, 200, 400 — not monotonic.
    let mut next = 0i64;
    for (index, ts) in [(1u64, 100i64), (2, 300), (3, 200), (4, 400)] {
        let recs = vec![NewRecord { value: Some(Bytes::from_static(b"v")), timestamp_ms: ts, ..Default::default() }];
        let payload = with_base_offset(&encode_batch(&recs).unwrap(), next);
        let e = Entry { index, term: 1, base_offset: next, kind: EntryKind::Batch, payload };
        next = e.next_offset();
        log.append(&[e], &[], &meta).unwrap();
    }
    let at = |ts| log.first_entry_at_or_after_time(ts).unwrap().map(|e| e.index);
    assert_eq!(at(50), Some(1));
    assert_eq!(at(150), Some(2));
    assert_eq!(at(250), Some(2), "the first batch whose max reaches the time, as Kafka's index");
    assert_eq!(at(350), Some(4));
    assert_eq!(at(401), None);
    // After retention removes batch 2, the lookup falls back to scanning what is left.
    meta.log_start_offset = 2;
    log.remove_prefix(2, &meta).unwrap();
    assert_eq!(at(250), Some(4));
    assert_eq!(at(150), Some(3));
}

#[test]
fn truncation_stores_rolled_back_producers_in_the_same_batch() {
    use backwaters_storage::ProducerEntry;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (log, _) = PartitionLog::open(&store, 4).unwrap();
    let mut meta = PartitionMeta::default();
    let mut next = 0i64;
    let p = |id: i64, batches: Vec<(i32, i32, i64)>| ProducerEntry { producer_id: id, epoch: 0, batches, last_timestamp_ms: 0, txn_first_offset: None, marker_offset: None };
    for index in 1..=3u64 {
        let e = Entry { index, term: 1, base_offset: next, kind: EntryKind::Batch, payload: batch(2, next) };
        meta.bytes += e.payload.len() as u64;
        next = e.next_offset();
        let seqs: Vec<(i32, i32, i64)> = (1..=index as i64).map(|i| (2 * (i as i32 - 1), 2 * i as i32 - 1, 2 * (i - 1))).collect();
        log.append(&[e], &[p(7, seqs), p(8, vec![(0, 0, 0)])], &meta).unwrap();
    }
    // Entries 2 and 3 go; producer 7 keeps its first batch, producer 8 is forgotten.
    log.truncate_suffix(2, &meta, &[p(7, vec![(0, 1, 0)])], &[8]).unwrap();
    store.flush().unwrap();
    drop(log);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let (_, rec) = PartitionLog::open(&store, 4).unwrap();
    assert_eq!(rec.last_index, 1);
    assert_eq!(rec.producers, vec![p(7, vec![(0, 1, 0)])]);
}

#[test]
fn batch_heads_are_walked_back_without_payloads() {
    use backwaters_proto::kafka::batch::set_producer;
    let store = Store::temporary().unwrap();
    let (log, _) = PartitionLog::open(&store, 5).unwrap();
    let mut meta = PartitionMeta::default();
    let mut next = 0i64;
    for index in 1..=4u64 {
        let kind = if index == 2 { EntryKind::Noop } else { EntryKind::Batch };
        // Entry 4 spans several chunks: only its head value is read.
        let payload = if kind == EntryKind::Noop { Bytes::new() } else { set_producer(&batch_of(3, next, if index == 4 { 70_000 } else { 0 }), 9, 0, index as i32 * 10) };
        let e = Entry { index, term: 1, base_offset: next, kind, payload };
        meta.bytes += e.payload.len() as u64;
        next = e.next_offset();
        log.append(&[e], &[], &meta).unwrap();
    }
    let got: Vec<(i32, i64)> = log.batch_heads_back(1, 5).map(|(h, base)| (h.base_sequence, base)).collect();
    assert_eq!(got, vec![(40, 6), (30, 3), (10, 0)]);
    assert_eq!(log.batch_heads_back(2, 4).count(), 1, "the range is lowest..below");
}

#[test]
fn hard_state_written_with_entries_is_recovered_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let hs = HardState { term: 3, vote: 2, commit: 1 };
    {
        let store = Store::open(dir.path()).unwrap();
        let (log, _) = PartitionLog::open(&store, 4).unwrap();
        let e = Entry { index: 1, term: 3, base_offset: 0, kind: EntryKind::Batch, payload: batch(2, 0) };
        let meta = PartitionMeta { bytes: e.payload.len() as u64, ..Default::default() };
        log.append_with_hard_state(&[e], &[], &[], &meta, Some(&hs)).unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let (_, rec) = PartitionLog::open(&store, 4).unwrap();
    assert_eq!((rec.hard_state, rec.last_index, rec.last_term), (hs, 1, 3));
}

/// The aborted-transaction index: stored with the entries, found by range, and removed with
/// a truncated suffix (its markers go) or a removed prefix (its records go).
#[test]
fn aborted_transactions_follow_their_markers() {
    use backwaters_storage::AbortedTxn;
    let store = Store::temporary().unwrap();
    let (log, _) = PartitionLog::open(&store, 11).unwrap();
    let mut meta = PartitionMeta::default();
    let mut next = 0i64;
    for index in 1..=6u64 {
        let e = Entry { index, term: 1, base_offset: next, kind: EntryKind::Batch, payload: batch(2, next) };
        next = e.next_offset();
        // Entry 3's and entry 5's last records stand in for abort markers.
        let aborted: Vec<AbortedTxn> = match index {
            3 => vec![AbortedTxn { producer_id: 7, first_offset: 0, last_offset: 5 }],
            5 => vec![AbortedTxn { producer_id: 8, first_offset: 6, last_offset: 9 }],
            _ => vec![],
        };
        log.append_with_hard_state(&[e], &[], &aborted, &meta, None).unwrap();
    }
    let ids = |v: Vec<AbortedTxn>| v.iter().map(|a| a.producer_id).collect::<Vec<_>>();
    assert_eq!(ids(log.aborted_between(0, 3).unwrap()), vec![7]);
    assert_eq!(ids(log.aborted_between(4, 11).unwrap()), vec![7, 8]);
    assert_eq!(ids(log.aborted_between(6, 11).unwrap()), vec![8]);
    assert!(log.aborted_between(10, 11).unwrap().is_empty());
    // Entry 5 (offsets 8..10) and after go: 8's marker with them.
    log.truncate_suffix(5, &meta, &[], &[]).unwrap();
    assert_eq!(ids(log.aborted_between(0, 100).unwrap()), vec![7]);
    // The front up to entry 3 (offsets 0..6) goes: 7's transaction ended before the new start.
    meta.log_start_offset = 6;
    log.remove_prefix(3, &meta).unwrap();
    assert!(log.aborted_between(0, 100).unwrap().is_empty());
}

#[test]
fn compaction_rewrites_keep_each_entry_in_place() {
    let store = Store::temporary().unwrap();
    let (log, _) = PartitionLog::open(&store, 4).unwrap();
    let mut meta = PartitionMeta::default();
    let mut next = 0i64;
    let mut entries = Vec::new();
    for index in 1..=3u64 {
        // Several chunks each, so the rewrite must drop chunks it no longer needs.
        let payload = batch_of(4, next, 40_000);
        meta.bytes += payload.len() as u64;
        let e = Entry { index, term: 2, base_offset: next, kind: EntryKind::Batch, payload };
        next = e.next_offset();
        entries.push(e);
    }
    log.append(&entries, &[], &meta).unwrap();
    // Entry 2 keeps one record of four: same index, term and offsets, a shorter payload.
    let br = backwaters_proto::kafka::compact::batch_records(&entries[1].payload).unwrap();
    let small = br.rebuild(&entries[1].payload, &[false, false, true, false]).unwrap();
    let rewritten = Entry { payload: small.clone(), ..entries[1].clone() };
    meta.bytes -= (entries[1].payload.len() - small.len()) as u64;
    meta.cleaned_to = next;
    log.rewrite_entries(&[rewritten.clone()], &meta).unwrap();
    assert_eq!(log.entry(2).unwrap().unwrap(), rewritten);
    let read = log.read(0, usize::MAX, i64::MAX).unwrap();
    assert_eq!(read, vec![entries[0].clone(), rewritten, entries[2].clone()]);
    // Offsets did not move: a read from inside the compacted batch starts at it.
    assert_eq!(log.read(5, usize::MAX, i64::MAX).unwrap()[0].index, 2);
    let sums: Vec<(u64, i64, i64)> = log.summaries_from(1).map(|s| s.unwrap()).map(|s| (s.index, s.base_offset, s.next_offset())).collect();
    assert_eq!(sums, vec![(1, 0, 4), (2, 4, 8), (3, 8, 12)]);
    let rec = log.recover().unwrap();
    assert_eq!((rec.meta, rec.next_offset), (meta, 12));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// OffsetForLeaderEpoch's lookup (a binary search over entry heads) agrees with a scan of
    /// every entry, before and after retention removes a prefix.
    #[test]
    fn term_bounds_match_a_scan(steps in prop::collection::vec((0u64..3, prop::bool::weighted(0.3), 1usize..4), 1..40), removed in 0usize..10) {
        let store = Store::temporary().unwrap();
        let (log, _) = PartitionLog::open(&store, 11).unwrap();
        let (mut term, mut next, mut entries) = (1u64, 0i64, Vec::new());
        for (i, (bump, noop, records)) in steps.into_iter().enumerate() {
            term += bump;
            let e = if noop {
                Entry { index: i as u64 + 1, term, base_offset: next, kind: EntryKind::Noop, payload: Bytes::new() }
            } else {
                Entry { index: i as u64 + 1, term, base_offset: next, kind: EntryKind::Batch, payload: batch(records, next) }
            };
            next = e.next_offset();
            log.append(std::slice::from_ref(&e), &[], &PartitionMeta::default()).unwrap();
            entries.push(e);
        }
        let removed = removed.min(entries.len() - 1);
        if removed > 0 {
            let meta = PartitionMeta { log_start_offset: entries[removed - 1].next_offset(), ..Default::default() };
            log.remove_prefix(entries[removed - 1].index, &meta).unwrap();
            entries.drain(..removed);
        }
        for q in 0..=term + 1 {
            let floor = entries.iter().filter(|e| e.term <= q).map(|e| e.term).max();
            let higher = entries.iter().find(|e| e.term > q).map(|e| e.base_offset);
            prop_assert_eq!(log.term_bounds(q).unwrap(), (floor, higher), "term {}", q);
        }
        for e in &entries {
            if e.kind == EntryKind::Batch {
                prop_assert_eq!(log.term_at_offset(e.base_offset).unwrap(), Some(e.term));
            }
        }
    }
}
