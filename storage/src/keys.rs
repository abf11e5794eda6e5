//! Key and value layout.
//!
//! Tree `log`, one key space per partition, prefixed by a region byte and the partition's
//! node-unique id:
//! - `[1][uid:8][0][index:8]`  -> entry: `[fmt:1][term:8][base_offset:8][kind:1][crc32c:4]
//!   [payload_len:4][first chunk of the payload]`
//! - `[1][uid:8][4][index:8][n:4]` -> chunk n (n >= 1) of that entry's payload
//! - `[0][uid:8][5][timestamp:8]` -> index where the running max timestamp reached it
//! - `[0][uid:8][1][base_offset:8]` -> index of the entry holding that batch
//! - `[0][uid:8][2][producer_id:8]` -> idempotent producer state (JSON)
//! - `[0][uid:8][3]` -> partition state (JSON): log start offset, bytes held, snapshot point
//! - `[0][uid:8][6]` -> Raft hard state (JSON); `[0][uid:8][7]` -> Raft voters (JSON)
//! - `[0][uid:8][8][marker offset:8]` -> an aborted transaction (JSON)
//!
//! Why two regions: sled rewrites a whole B-tree leaf every few updates of any key in it
//! (page consolidation) and copies it on every insert. The small keys above change with
//! every Raft ready (hard state, partition state, producers); in the format-2 layout they
//! shared leaves with the neighbouring partition's payloads, so each hard-state update
//! dragged up to a megabyte of records through the log again: at 10k records/s in small
//! batches each replica wrote 56 bytes to disk per byte of payload. Payload keys (region 1)
//! now only ever sit with other payload keys, which are appended and removed in order.
//!
//! Payloads are cut into chunks of at most [`CHUNK_BYTES`]: sled 0.34 moves values larger than
//! about 128 KiB into separate blob files, which its flush does not fsync. Kept under the
//! threshold, every byte goes through sled's log, which `flush` does fsync.
//!
//! Big-endian integers keep sled's byte order equal to numeric order. Offsets are never
//! negative once stored, so the sign bit is never set.

/// Version of this layout, kept under `meta/format_version`.
pub const FORMAT_VERSION: u32 = 3;

pub const ENTRY: u8 = 0;
pub const OFFSET: u8 = 1;
pub const PRODUCER: u8 = 2;
pub const STATE: u8 = 3;
pub const CHUNK: u8 = 4;
/// Time index: `[uid:8][5][max timestamp so far:8]` -> index of the entry where the running
/// maximum timestamp first reached that value (Kafka's time index, one key per new maximum).
pub const TIME: u8 = 5;
/// Aborted transactions: `[uid:8][8][offset of the abort marker:8]` -> JSON
/// [`crate::AbortedTxn`] (Kafka's transaction index, for read_committed fetches).
pub const ABORTED: u8 = 8;
/// Raft hard state of the partition's group (JSON: term, vote, commit).
pub const HARD_STATE: u8 = 6;
/// Voters of the partition's Raft group (JSON list of node ids).
pub const VOTERS: u8 = 7;

/// Largest piece of a payload stored under one key (well under sled's blob threshold).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Region of the small, often rewritten keys.
const SMALL: u8 = 0;
/// Region of the payload keys (entries and their chunks).
const PAYLOAD: u8 = 1;

fn region(kind: u8) -> u8 {
    if kind == ENTRY || kind == CHUNK {
        PAYLOAD
    } else {
        SMALL
    }
}

/// Key of chunk `n` of entry `index`.
pub fn chunk_key(uid: u64, index: u64, n: u32) -> [u8; 22] {
    let mut k = [0u8; 22];
    k[..18].copy_from_slice(&key(uid, CHUNK, index));
    k[18..].copy_from_slice(&n.to_be_bytes());
    k
}

pub fn prefix(uid: u64, kind: u8) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = region(kind);
    k[1..9].copy_from_slice(&uid.to_be_bytes());
    k[9] = kind;
    k
}

pub fn key(uid: u64, kind: u8, n: u64) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[..10].copy_from_slice(&prefix(uid, kind));
    k[10..].copy_from_slice(&n.to_be_bytes());
    k
}

pub fn key_suffix(k: &[u8]) -> u64 {
    u64::from_be_bytes(k[10..18].try_into().expect("18-byte key"))
}

/// Every key of partition `uid` starts with one of these.
pub fn partition_prefixes(uid: u64) -> [[u8; 9]; 2] {
    [SMALL, PAYLOAD].map(|r| {
        let mut k = [0u8; 9];
        k[0] = r;
        k[1..].copy_from_slice(&uid.to_be_bytes());
        k
    })
}

/// Entry header length before the payload.
pub const ENTRY_HEADER: usize = 1 + 8 + 8 + 1 + 4 + 4;
pub const ENTRY_FMT: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every small key of every partition sorts before every payload key, so no sled leaf
    /// ever holds both (what format 3 is for).
    #[test]
    fn small_keys_never_sit_between_payload_keys() {
        let uids = [0u64, 1, 7, u64::MAX / 2, u64::MAX];
        let highest_small = uids.iter().flat_map(|u| [OFFSET, PRODUCER, STATE, TIME, HARD_STATE, VOTERS, ABORTED].map(|k| key(*u, k, u64::MAX).to_vec())).max().unwrap();
        let lowest_payload = uids.iter().flat_map(|u| [key(*u, ENTRY, 0).to_vec(), chunk_key(*u, 0, 0).to_vec()]).min().unwrap();
        assert!(highest_small < lowest_payload);
        for u in uids {
            assert_eq!(key_suffix(&key(u, ENTRY, 42)), 42);
            let [small, payload] = partition_prefixes(u);
            assert!(key(u, STATE, 0).starts_with(&small) && chunk_key(u, 3, 1).starts_with(&payload));
        }
    }
}
