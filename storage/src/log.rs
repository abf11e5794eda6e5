//! A partition log: entries keyed by index, each holding one whole record batch.

use crate::keys::{self, ABORTED, CHUNK, CHUNK_BYTES, ENTRY, ENTRY_FMT, ENTRY_HEADER, OFFSET, PRODUCER, STATE, TIME};
use crate::{Result, StorageError, Store};
use backwaters_proto::kafka::batch::{parse_stored_batch, BatchHeader};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// One record batch exactly as stored (base offset already assigned).
    Batch = 0,
    /// No records: a leader's first entry of a term (Raft) or a placeholder.
    Noop = 1,
    /// An opaque command (the controller's log): no Kafka offsets.
    Command = 2,
}

/// One entry of a partition log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    /// Kafka offset of the first record; for a no-op, the next offset at that point.
    pub base_offset: i64,
    pub kind: EntryKind,
    pub payload: Bytes,
}

impl Entry {
    /// The parsed batch header (CRC-checked). `None` for no-ops.
    pub fn batch_header(&self) -> Option<std::result::Result<BatchHeader, backwaters_proto::kafka::batch::BatchError>> {
        (self.kind == EntryKind::Batch).then(|| parse_stored_batch(&self.payload))
    }

    /// Offset one past the last record of this entry.
    pub fn next_offset(&self) -> i64 {
        match self.kind {
            EntryKind::Noop | EntryKind::Command => self.base_offset,
            EntryKind::Batch => {
                let delta = i32::from_be_bytes(self.payload[23..27].try_into().expect("batch header"));
                self.base_offset + delta as i64 + 1
            }
        }
    }

    /// Max timestamp of the records in the batch (-1 for no-ops).
    pub fn max_timestamp(&self) -> i64 {
        match self.kind {
            EntryKind::Noop | EntryKind::Command => -1,
            EntryKind::Batch => i64::from_be_bytes(self.payload[35..43].try_into().expect("batch header")),
        }
    }

    /// Adds the entry's keys to `batch`: the head with the first chunk, then the other chunks.
    fn encode_into(&self, uid: u64, batch: &mut sled::Batch) {
        let first = self.payload.len().min(CHUNK_BYTES);
        let mut v = Vec::with_capacity(ENTRY_HEADER + first);
        v.push(ENTRY_FMT);
        v.extend_from_slice(&self.term.to_be_bytes());
        v.extend_from_slice(&self.base_offset.to_be_bytes());
        v.push(self.kind as u8);
        v.extend_from_slice(&crc32c::crc32c(&self.payload).to_be_bytes());
        v.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        v.extend_from_slice(&self.payload[..first]);
        batch.insert(&keys::key(uid, ENTRY, self.index), v);
        for (n, chunk) in self.payload[first..].chunks(CHUNK_BYTES).enumerate() {
            batch.insert(&keys::chunk_key(uid, self.index, n as u32 + 1), chunk);
        }
    }
}

/// What an entry's head value tells without its payload chunks.
#[derive(Debug, Clone)]
pub struct EntrySummary {
    pub index: u64,
    pub base_offset: i64,
    pub payload_len: usize,
    /// The batch header (`None` for entries that hold no batch).
    pub header: Option<BatchHeader>,
}

impl EntrySummary {
    /// Offset one past the entry's last record.
    pub fn next_offset(&self) -> i64 {
        self.header.as_ref().map_or(self.base_offset, |h| self.base_offset + h.last_offset_delta as i64 + 1)
    }
}

/// The fixed part of a stored entry, readable without its chunks.
struct Head {
    term: u64,
    base_offset: i64,
    kind: EntryKind,
    crc: u32,
    payload_len: usize,
}

impl Head {
    fn parse(index: u64, v: &[u8]) -> Result<Head> {
        let corrupt = |why: &str| StorageError::Corrupt { what: format!("entry {index}"), why: why.to_string() };
        if v.len() < ENTRY_HEADER || v[0] != ENTRY_FMT {
            return Err(corrupt("short entry or unknown entry format"));
        }
        let kind = match v[17] {
            0 => EntryKind::Batch,
            1 => EntryKind::Noop,
            2 => EntryKind::Command,
            _ => return Err(corrupt("unknown entry kind")),
        };
        Ok(Head {
            term: u64::from_be_bytes(v[1..9].try_into().expect("8")),
            base_offset: i64::from_be_bytes(v[9..17].try_into().expect("8")),
            kind,
            crc: u32::from_be_bytes(v[18..22].try_into().expect("4")),
            payload_len: u32::from_be_bytes(v[22..26].try_into().expect("4")) as usize,
        })
    }
}

/// Idempotent-producer state of one producer on one partition: its epoch and the last
/// (up to five) batches it wrote, so a retry of any of them is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// (first sequence, last sequence, base offset) of recent batches, oldest first.
    pub batches: Vec<(i32, i32, i64)>,
    /// Append time of the last batch, for expiring idle producers.
    pub last_timestamp_ms: i64,
    /// Offset of the first batch of the producer's open transaction on this partition (its
    /// records are not stable until a marker closes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_first_offset: Option<i64>,
    /// Offset of the last transaction marker of this producer here (a truncation that removes
    /// it reopens the transaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker_offset: Option<i64>,
}

/// A transaction aborted on this partition: its records are `first_offset ..= last_offset`
/// (the abort marker) of `producer_id`; read_committed consumers skip them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// Small per-partition state stored beside the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub log_start_offset: i64,
    /// Bytes of record batches held (payload bytes), for retention.bytes.
    pub bytes: u64,
    /// Index and term of the last entry removed from the front (retention or an installed
    /// snapshot): Raft must still know that entry's term to match logs. 0 when none.
    #[serde(default)]
    pub snap_index: u64,
    #[serde(default)]
    pub snap_term: u64,
    /// Compaction has cleaned the log below this offset (0: never compacted).
    #[serde(default)]
    pub cleaned_to: i64,
}

/// Raft's hard state of the group this log belongs to, stored beside the entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

/// What a partition log held when it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Index of the last entry (0 when empty).
    pub last_index: u64,
    pub last_term: u64,
    /// Index of the first entry still held (last_index + 1 when empty).
    pub first_index: u64,
    /// Kafka offset the next batch gets.
    pub next_offset: i64,
    pub meta: PartitionMeta,
    pub producers: Vec<ProducerEntry>,
    pub hard_state: HardState,
    /// Voters of the Raft group, as last stored (empty: never set).
    pub voters: Vec<u64>,
}

/// Handle on one partition's keys in the node's store. Cheap to clone.
#[derive(Clone)]
pub struct PartitionLog {
    store: Store,
    uid: u64,
}

impl PartitionLog {
    /// Opens partition `uid` and recovers its state from disk.
    pub fn open(store: &Store, uid: u64) -> Result<(PartitionLog, Recovered)> {
        let log = PartitionLog { store: store.clone(), uid };
        let rec = log.recover()?;
        Ok((log, rec))
    }

    /// A handle without recovery (the owner calls [`PartitionLog::recover`] when it starts).
    pub fn handle(store: &Store, uid: u64) -> PartitionLog {
        PartitionLog { store: store.clone(), uid }
    }

    /// Stores new partition meta alone (DeleteRecords moving the log start).
    pub fn set_meta(&self, meta: &PartitionMeta) -> Result<u64> {
        self.tree().insert(keys::prefix(self.uid, STATE), serde_json::to_vec(meta).expect("meta serializes"))?;
        Ok(self.store.note_write())
    }

    /// Flushes the node's store: everything this partition wrote so far is on disk after it.
    pub fn sync(&self) -> Result<u64> {
        self.store.flush()
    }

    /// The node-wide write sequence so far (a flush that starts now covers it).
    pub fn written_seq(&self) -> u64 {
        self.store.written_seq()
    }

    pub fn uid(&self) -> u64 {
        self.uid
    }

    fn tree(&self) -> &sled::Tree {
        self.store.log_tree()
    }

    /// The stored idempotent-producer states (as of the log's last entry).
    pub fn producers(&self) -> Result<Vec<ProducerEntry>> {
        let mut producers = Vec::new();
        for kv in self.tree().scan_prefix(keys::prefix(self.uid, PRODUCER)) {
            let (_, v) = kv?;
            producers.push(serde_json::from_slice(&v).map_err(|e| StorageError::Corrupt {
                what: format!("partition {} producer state", self.uid),
                why: e.to_string(),
            })?);
        }
        Ok(producers)
    }

    /// Reads back what the partition holds: last entry, next offset, meta, producers.
    pub fn recover(&self) -> Result<Recovered> {
        let meta: PartitionMeta = match self.tree().get(keys::prefix(self.uid, STATE))? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| StorageError::Corrupt {
                what: format!("partition {} state", self.uid),
                why: e.to_string(),
            })?,
            None => PartitionMeta::default(),
        };
        let producers = self.producers()?;
        let last = self.last_entry()?;
        let first = self.first_entry()?;
        let (last_index, last_term, next_offset) = match &last {
            Some(e) => (e.index, e.term, e.next_offset()),
            None => (0, 0, meta.log_start_offset),
        };
        let (last_index, last_term) = if last.is_none() && meta.snap_index > 0 { (meta.snap_index, meta.snap_term) } else { (last_index, last_term) };
        let first_index = first.map(|e| e.index).unwrap_or(last_index + 1);
        let hard_state = match self.tree().get(keys::prefix(self.uid, keys::HARD_STATE))? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| StorageError::Corrupt { what: format!("partition {} hard state", self.uid), why: e.to_string() })?,
            None => HardState::default(),
        };
        let voters = match self.tree().get(keys::prefix(self.uid, keys::VOTERS))? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| StorageError::Corrupt { what: format!("partition {} voters", self.uid), why: e.to_string() })?,
            None => Vec::new(),
        };
        Ok(Recovered { last_index, last_term, first_index, next_offset, meta, producers, hard_state, voters })
    }

    fn decode_kv(&self, kv: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Entry> {
        let (k, v) = kv?;
        self.load_current(keys::key_suffix(&k), v)
    }

    /// As [`PartitionLog::load`], reading the head again when the entry does not add up:
    /// compaction may have rewritten it between reading its head and its chunks (each key
    /// is read whole, but not the entry's keys together).
    fn load_current(&self, index: u64, mut v: sled::IVec) -> Result<Entry> {
        let mut rereads = 0;
        loop {
            match self.load(index, &v) {
                Err(e @ StorageError::Corrupt { .. }) if rereads < 3 => match self.tree().get(keys::key(self.uid, ENTRY, index))? {
                    Some(now) if now != v => {
                        v = now;
                        rereads += 1;
                    }
                    _ => return Err(e),
                },
                r => return r,
            }
        }
    }

    /// Builds a whole entry from its head value and its chunks, checking the CRC.
    fn load(&self, index: u64, v: &[u8]) -> Result<Entry> {
        let head = Head::parse(index, v)?;
        let corrupt = |why: String| StorageError::Corrupt { what: format!("partition {} entry {index}", self.uid), why };
        let first = &v[ENTRY_HEADER..];
        let payload = if first.len() == head.payload_len {
            Bytes::copy_from_slice(first)
        } else {
            let mut buf = Vec::with_capacity(head.payload_len);
            buf.extend_from_slice(first);
            for kv in self.tree().scan_prefix(keys::key(self.uid, CHUNK, index)) {
                let (_, chunk) = kv?;
                buf.extend_from_slice(&chunk);
            }
            if buf.len() != head.payload_len {
                return Err(corrupt(format!("payload is {} bytes, its head says {}", buf.len(), head.payload_len)));
            }
            Bytes::from(buf)
        };
        if crc32c::crc32c(&payload) != head.crc {
            return Err(corrupt("CRC mismatch after read".into()));
        }
        if head.kind == EntryKind::Batch && payload.len() < backwaters_proto::kafka::batch::HEADER_BYTES {
            return Err(corrupt("batch shorter than its header".into()));
        }
        Ok(Entry { index, term: head.term, base_offset: head.base_offset, kind: head.kind, payload })
    }

    /// The term of entry `index` without reading its payload (None if not held).
    pub fn term_of(&self, index: u64) -> Result<Option<u64>> {
        match self.tree().get(keys::key(self.uid, ENTRY, index))? {
            Some(v) => Ok(Some(Head::parse(index, &v)?.term)),
            None => Ok(None),
        }
    }

    /// Headers and base offsets of the batch entries with index in `lowest..below`, newest
    /// first, read from the entries' head values only (no payload chunks): for walking back
    /// over a producer's recent batches. Stops at the first unreadable entry.
    pub fn batch_heads_back(&self, lowest: u64, below: u64) -> impl Iterator<Item = (BatchHeader, i64)> + '_ {
        let range = keys::key(self.uid, ENTRY, lowest)..keys::key(self.uid, ENTRY, below);
        self.tree().range(range).rev().map_while(move |kv| {
            let (k, v) = kv.ok()?;
            let head = Head::parse(keys::key_suffix(&k), &v).ok()?;
            Some((head, v))
        })
        .filter(|(head, _)| head.kind == EntryKind::Batch)
        .filter_map(|(head, v)| backwaters_proto::kafka::batch::peek_header(&v[ENTRY_HEADER..]).ok().map(|h| (h, head.base_offset)))
    }

    /// Summaries of the entries from index `from` on, in order, read from the entries' head
    /// values only (no payload chunks): for walking a long log cheaply (compaction's plan).
    pub fn summaries_from(&self, from: u64) -> impl Iterator<Item = Result<EntrySummary>> + '_ {
        let range = keys::key(self.uid, ENTRY, from)..=keys::key(self.uid, ENTRY, u64::MAX);
        self.tree().range(range).map(move |kv| {
            let (k, v) = kv?;
            let index = keys::key_suffix(&k);
            let head = Head::parse(index, &v)?;
            let header = match head.kind {
                EntryKind::Batch => Some(backwaters_proto::kafka::batch::peek_header(&v[ENTRY_HEADER..]).map_err(|e| StorageError::Corrupt { what: format!("partition {} entry {index}", self.uid), why: e.to_string() })?),
                _ => None,
            };
            Ok(EntrySummary { index, base_offset: head.base_offset, payload_len: head.payload_len, header })
        })
    }

    /// Stores Raft's hard state (not flushed).
    pub fn set_hard_state(&self, hs: &HardState) -> Result<u64> {
        let (k, v) = self.hard_state_kv(hs);
        self.tree().insert(k, v)?;
        Ok(self.store.note_write())
    }

    fn hard_state_kv(&self, hs: &HardState) -> ([u8; 10], Vec<u8>) {
        (keys::prefix(self.uid, keys::HARD_STATE), serde_json::to_vec(hs).expect("hard state serializes"))
    }

    /// Stores the voters of the Raft group (not flushed).
    pub fn set_voters(&self, voters: &[u64]) -> Result<u64> {
        self.tree().insert(keys::prefix(self.uid, keys::VOTERS), serde_json::to_vec(voters).expect("voters serialize"))?;
        Ok(self.store.note_write())
    }

    /// Replaces the whole log by a snapshot point: every entry goes, `meta` (with the
    /// snapshot's index, term and log start) and `producers` stay. One atomic batch.
    pub fn install_snapshot(&self, meta: &PartitionMeta, producers: &[ProducerEntry]) -> Result<u64> {
        let mut b = sled::Batch::default();
        for kind in [ENTRY, OFFSET, PRODUCER, CHUNK, TIME, ABORTED] {
            for kv in self.tree().scan_prefix(keys::prefix(self.uid, kind)) {
                b.remove(kv?.0);
            }
        }
        for p in producers {
            b.insert(&keys::key(self.uid, PRODUCER, p.producer_id as u64), serde_json::to_vec(p).expect("producer state serializes"));
        }
        b.insert(&keys::prefix(self.uid, STATE), serde_json::to_vec(meta).expect("meta serializes"));
        self.tree().apply_batch(b)?;
        Ok(self.store.note_write())
    }

    pub fn last_entry(&self) -> Result<Option<Entry>> {
        self.tree().scan_prefix(keys::prefix(self.uid, ENTRY)).next_back().map(|kv| self.decode_kv(kv)).transpose()
    }

    pub fn first_entry(&self) -> Result<Option<Entry>> {
        self.tree().scan_prefix(keys::prefix(self.uid, ENTRY)).next().map(|kv| self.decode_kv(kv)).transpose()
    }

    pub fn entry(&self, index: u64) -> Result<Option<Entry>> {
        match self.tree().get(keys::key(self.uid, ENTRY, index))? {
            Some(v) => Ok(Some(self.load_current(index, v)?)),
            None => Ok(None),
        }
    }

    /// Appends entries (indexes must follow the last one) together with the producer states
    /// and partition meta they change, as one atomic sled batch. Not flushed: returns the
    /// write sequence a flush must cover before anything is acknowledged.
    pub fn append(&self, entries: &[Entry], producers: &[ProducerEntry], meta: &PartitionMeta) -> Result<u64> {
        self.append_with_hard_state(entries, producers, &[], meta, None)
    }

    /// As [`PartitionLog::append`], with Raft's hard state in the same atomic batch (one
    /// sled write per Raft ready instead of two; a recovered store still never has a commit
    /// index beyond its own log, since both land together).
    /// `aborted` are the transactions the entries' abort markers close.
    pub fn append_with_hard_state(&self, entries: &[Entry], producers: &[ProducerEntry], aborted: &[AbortedTxn], meta: &PartitionMeta, hs: Option<&HardState>) -> Result<u64> {
        let mut b = sled::Batch::default();
        if let Some(hs) = hs {
            let (k, v) = self.hard_state_kv(hs);
            b.insert(&k, v);
        }
        let mut running_max = self.time_index_max()?;
        for e in entries {
            e.encode_into(self.uid, &mut b);
            let ts = e.max_timestamp();
            if e.kind == EntryKind::Batch && ts > running_max {
                b.insert(&keys::key(self.uid, TIME, ts as u64), &e.index.to_be_bytes());
                running_max = ts;
            }
            if e.kind == EntryKind::Batch {
                assert!(e.base_offset >= 0, "stored offsets are never negative");
                b.insert(&keys::key(self.uid, OFFSET, e.base_offset as u64), &e.index.to_be_bytes());
            }
        }
        for p in producers {
            let v = serde_json::to_vec(p).expect("producer state serializes");
            b.insert(&keys::key(self.uid, PRODUCER, p.producer_id as u64), v);
        }
        for a in aborted {
            assert!(a.first_offset <= a.last_offset && a.first_offset >= 0, "aborted transaction {a:?}");
            b.insert(&keys::key(self.uid, ABORTED, a.last_offset as u64), serde_json::to_vec(a).expect("aborted txn serializes"));
        }
        b.insert(&keys::prefix(self.uid, STATE), serde_json::to_vec(meta).expect("meta serializes"));
        self.tree().apply_batch(b)?;
        Ok(self.store.note_write())
    }

    /// Replaces the payloads of entries already in the log (compaction: same index, term,
    /// kind and offsets, fewer records) and stores `meta`, in one atomic batch.
    pub fn rewrite_entries(&self, entries: &[Entry], meta: &PartitionMeta) -> Result<u64> {
        let mut b = sled::Batch::default();
        for e in entries {
            let Some(v) = self.tree().get(keys::key(self.uid, ENTRY, e.index))? else {
                return Err(StorageError::Corrupt { what: format!("partition {} entry {}", self.uid, e.index), why: "rewritten entry is not in the log".into() });
            };
            let head = Head::parse(e.index, &v)?;
            assert!(head.term == e.term && head.base_offset == e.base_offset && head.kind == e.kind, "a rewrite keeps the entry's place");
            for kv in self.tree().scan_prefix(keys::key(self.uid, CHUNK, e.index)) {
                b.remove(kv?.0);
            }
            // Inserted after the removals: a chunk written again wins over its removal.
            e.encode_into(self.uid, &mut b);
        }
        b.insert(&keys::prefix(self.uid, STATE), serde_json::to_vec(meta).expect("meta serializes"));
        self.tree().apply_batch(b)?;
        Ok(self.store.note_write())
    }

    /// The aborted transactions with records in `from_offset ..= to_offset`, by marker
    /// offset (what a read_committed Fetch of that range reports).
    pub fn aborted_between(&self, from_offset: i64, to_offset: i64) -> Result<Vec<AbortedTxn>> {
        let lo = keys::key(self.uid, ABORTED, from_offset.max(0) as u64);
        let hi = keys::key(self.uid, ABORTED, u64::MAX >> 1);
        let mut out = Vec::new();
        for kv in self.tree().range(lo..=hi) {
            let (_, v) = kv?;
            let a: AbortedTxn = serde_json::from_slice(&v).map_err(|e| StorageError::Corrupt { what: format!("partition {} aborted transaction", self.uid), why: e.to_string() })?;
            if a.first_offset <= to_offset {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Adds to `b` the removal of aborted-transaction keys with marker offsets in `range`.
    fn remove_aborted(&self, b: &mut sled::Batch, range: std::ops::Range<i64>) -> Result<()> {
        let (lo, hi) = (range.start.max(0) as u64, range.end.max(0) as u64);
        for kv in self.tree().range(keys::key(self.uid, ABORTED, lo)..keys::key(self.uid, ABORTED, hi)) {
            b.remove(kv?.0);
        }
        Ok(())
    }

    /// Entries holding offsets from `from_offset` on, up to about `max_bytes` of payload (the
    /// first entry is returned whatever its size, as Kafka does, so a consumer can always make
    /// progress), and never an entry that starts at or past `below_offset`.
    pub fn read(&self, from_offset: i64, max_bytes: usize, below_offset: i64) -> Result<Vec<Entry>> {
        let Some(start_index) = self.index_for_offset(from_offset)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let range = keys::key(self.uid, ENTRY, start_index)..=keys::key(self.uid, ENTRY, u64::MAX);
        for kv in self.tree().range(range) {
            let e = self.decode_kv(kv)?;
            if e.kind != EntryKind::Batch {
                continue;
            }
            if e.base_offset >= below_offset {
                break;
            }
            if e.next_offset() <= from_offset {
                continue;
            }
            if !out.is_empty() && bytes + e.payload.len() > max_bytes {
                break;
            }
            bytes += e.payload.len();
            out.push(e);
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// Index of the entry holding `offset` (the last batch starting at or before it).
    pub fn index_for_offset(&self, offset: i64) -> Result<Option<u64>> {
        let lo = keys::key(self.uid, OFFSET, 0);
        let hi = keys::key(self.uid, OFFSET, offset.max(0) as u64);
        if let Some(kv) = self.tree().range(lo..=hi).next_back() {
            let (_, v) = kv?;
            return Ok(Some(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StorageError::Corrupt {
                what: "offset index".into(),
                why: "not 8 bytes".into(),
            })?)));
        }
        // Offset before the first batch: start from the first entry.
        Ok(self.first_entry()?.map(|e| e.index))
    }

    /// Kafka's OffsetForLeaderEpoch over this log, with Raft terms as leader epochs: the
    /// highest term at or below `term` that an entry holds (None: no entry has one) and the
    /// base offset of the first entry with a higher term (None: no entry has one). A term's
    /// first entry is its leader's no-op, so that offset is where the older terms' records
    /// end. Terms never decrease along a Raft log: a binary search over entry heads.
    pub fn term_bounds(&self, term: u64) -> Result<(Option<u64>, Option<i64>)> {
        let Some((mut lo, _)) = self.head_at_or_after(0)? else { return Ok((None, None)) };
        let Some((last, _)) = self.head_before(u64::MAX)? else { return Ok((None, None)) };
        let mut hi = last + 1;
        // The first entry found so far with a higher term.
        let mut higher: Option<(u64, i64)> = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.head_at_or_after(mid)? {
                Some((i, head)) if i < hi && head.term > term => {
                    higher = Some((i, head.base_offset));
                    hi = mid;
                }
                Some((i, _)) if i < hi => lo = i + 1,
                _ => hi = mid,
            }
        }
        let floor = self.head_before(higher.map_or(u64::MAX, |(i, _)| i))?.map(|(_, head)| head.term);
        debug_assert!(floor.is_none_or(|f| f <= term), "terms decrease along partition {}", self.uid);
        Ok((floor, higher.map(|(_, offset)| offset)))
    }

    /// The term of the entry holding `offset` (the first entry when the offset is before it;
    /// None for an empty log).
    pub fn term_at_offset(&self, offset: i64) -> Result<Option<u64>> {
        let lo = keys::key(self.uid, OFFSET, 0);
        let hi = keys::key(self.uid, OFFSET, offset.max(0) as u64);
        let index = match self.tree().range(lo..=hi).next_back() {
            Some(kv) => {
                let (_, v) = kv?;
                u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StorageError::Corrupt { what: "offset index".into(), why: "not 8 bytes".into() })?)
            }
            None => 0,
        };
        Ok(self.head_at_or_after(index)?.map(|(_, head)| head.term))
    }

    /// The first entry at or after `index`: its index and head.
    fn head_at_or_after(&self, index: u64) -> Result<Option<(u64, Head)>> {
        let range = keys::key(self.uid, ENTRY, index)..=keys::key(self.uid, ENTRY, u64::MAX);
        self.tree().range(range).next().map(|kv| -> Result<(u64, Head)> {
            let (k, v) = kv?;
            let i = keys::key_suffix(&k);
            Ok((i, Head::parse(i, &v)?))
        }).transpose()
    }

    /// The last entry before `index`: its index and head.
    fn head_before(&self, index: u64) -> Result<Option<(u64, Head)>> {
        let range = keys::key(self.uid, ENTRY, 0)..keys::key(self.uid, ENTRY, index);
        self.tree().range(range).next_back().map(|kv| -> Result<(u64, Head)> {
            let (k, v) = kv?;
            let i = keys::key_suffix(&k);
            Ok((i, Head::parse(i, &v)?))
        }).transpose()
    }

    /// The largest timestamp in the time index (-1 when empty).
    fn time_index_max(&self) -> Result<i64> {
        Ok(match self.tree().scan_prefix(keys::prefix(self.uid, TIME)).next_back() {
            Some(kv) => keys::key_suffix(&kv?.0) as i64,
            None => -1,
        })
    }

    /// First batch whose max timestamp is >= `ts`, found through the time index.
    pub fn first_entry_at_or_after_time(&self, ts: i64) -> Result<Option<Entry>> {
        let lo = keys::key(self.uid, TIME, ts.max(0) as u64);
        let hi = keys::key(self.uid, TIME, u64::MAX);
        let Some(kv) = self.tree().range(lo..=hi).next() else { return Ok(None) };
        let index = u64::from_be_bytes(kv?.1.as_ref().try_into().map_err(|_| StorageError::Corrupt { what: "time index".into(), why: "not 8 bytes".into() })?);
        match self.entry(index)? {
            Some(e) => Ok(Some(e)),
            // Should not happen (removal re-indexes); scanning is the safe answer.
            None => self.scan_for_time(ts),
        }
    }

    fn scan_for_time(&self, ts: i64) -> Result<Option<Entry>> {
        for kv in self.tree().scan_prefix(keys::prefix(self.uid, ENTRY)) {
            let e = self.decode_kv(kv)?;
            if e.kind == EntryKind::Batch && e.max_timestamp() >= ts {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Removes entries with index <= `up_to_index` (retention, DeleteRecords, snapshots) and
    /// stores the new meta, in one batch.
    pub fn remove_prefix(&self, up_to_index: u64, meta: &PartitionMeta) -> Result<u64> {
        // Aborted transactions that ended before the new log start concern no record left.
        let mut b = sled::Batch::default();
        self.remove_aborted(&mut b, 0..meta.log_start_offset)?;
        self.remove_range_in(b, 0, up_to_index, meta, true)
    }

    /// Removes entries with index >= `from_index` (a Raft follower's conflicting suffix) and,
    /// in the same atomic batch, stores the producer states rolled back to what the kept log
    /// holds (`put`) and removes those it holds nothing of (`remove`): a crash never leaves
    /// producer states that remember removed batches.
    pub fn truncate_suffix(&self, from_index: u64, meta: &PartitionMeta, put: &[ProducerEntry], remove: &[i64]) -> Result<u64> {
        let mut b = sled::Batch::default();
        for p in put {
            b.insert(&keys::key(self.uid, PRODUCER, p.producer_id as u64), serde_json::to_vec(p).expect("producer state serializes"));
        }
        for id in remove {
            b.remove(&keys::key(self.uid, PRODUCER, *id as u64));
        }
        // Abort markers in the removed suffix go with it.
        if let Some(v) = self.tree().get(keys::key(self.uid, ENTRY, from_index))? {
            self.remove_aborted(&mut b, Head::parse(from_index, &v)?.base_offset..i64::MAX)?;
        }
        self.remove_range_in(b, from_index, u64::MAX, meta, false)
    }

    /// Adds to batch `b` (which may hold other changes) the removal of the entries with index
    /// in `first..=last` and their offset keys, and `meta`; applies it as one atomic batch.
    /// With `reindex`, time-index keys are rebuilt for the entries the removed keys shadowed.
    fn remove_range_in(&self, mut b: sled::Batch, first: u64, last: u64, meta: &PartitionMeta, reindex: bool) -> Result<u64> {
        let range = keys::key(self.uid, ENTRY, first)..=keys::key(self.uid, ENTRY, last);
        for kv in self.tree().range(range) {
            let (k, v) = kv?;
            let head = Head::parse(keys::key_suffix(&k), &v)?;
            b.remove(k);
            if head.kind == EntryKind::Batch {
                b.remove(&keys::key(self.uid, OFFSET, head.base_offset as u64));
            }
        }
        let chunks = keys::chunk_key(self.uid, first, 0)..=keys::chunk_key(self.uid, last, u32::MAX);
        for kv in self.tree().range(chunks) {
            b.remove(kv?.0);
        }
        // Time-index keys pointing into the removed range (indexes grow with the timestamps).
        let mut next_kept_key = None;
        for kv in self.tree().scan_prefix(keys::prefix(self.uid, TIME)) {
            let (k, v) = kv?;
            let index = u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]));
            if (first..=last).contains(&index) {
                b.remove(k);
            } else if index > last {
                next_kept_key = Some(index);
                break;
            }
        }
        if reindex {
            // Entries after the removed prefix that a removed maximum shadowed get keys of their
            // own; all of them sit below the next kept key, so the index stays ordered.
            let mut running = -1i64;
            let upto = next_kept_key.unwrap_or(u64::MAX);
            let range = keys::key(self.uid, ENTRY, last.saturating_add(1))..keys::key(self.uid, ENTRY, upto);
            for kv in self.tree().range(range) {
                let e = self.decode_kv(kv)?;
                if e.kind == EntryKind::Batch && e.max_timestamp() > running {
                    running = e.max_timestamp();
                    b.insert(&keys::key(self.uid, TIME, running as u64), &e.index.to_be_bytes());
                }
            }
        }
        b.insert(&keys::prefix(self.uid, STATE), serde_json::to_vec(meta).expect("meta serializes"));
        self.tree().apply_batch(b)?;
        Ok(self.store.note_write())
    }

    /// Removes producer states (expired producers).
    pub fn remove_producers(&self, ids: &[i64]) -> Result<u64> {
        let mut b = sled::Batch::default();
        for id in ids {
            b.remove(&keys::key(self.uid, PRODUCER, *id as u64));
        }
        self.tree().apply_batch(b)?;
        Ok(self.store.note_write())
    }

    /// Deletes every key of this partition (topic deletion).
    pub fn destroy(&self) -> Result<u64> {
        let mut b = sled::Batch::default();
        for p in keys::partition_prefixes(self.uid) {
            for kv in self.tree().scan_prefix(p) {
                let (k, _) = kv?;
                b.remove(k);
            }
        }
        self.tree().apply_batch(b)?;
        Ok(self.store.note_write())
    }
}
