//! The node's sled database.

use crate::keys::FORMAT_VERSION;
use crate::{Result, StorageError};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// sled segment size: see [`Store::open`] and `keys` for why it is this large.
pub const SEGMENT_BYTES: usize = 8 * 1024 * 1024;

/// sled's page cache when the config does not say (`limits.store_cache_bytes`).
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// One sled `Db` per node, shared by every partition of the node.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// Where the store lives on disk (None for a temporary store).
    dir: Option<std::path::PathBuf>,
    log: sled::Tree,
    meta: sled::Tree,
    /// Bumped after every write; a flush that starts after a write's bump covers it.
    write_seq: AtomicU64,
    flushed_seq: AtomicU64,
    /// Fault injection (a slow disk): every flush first waits this long.
    flush_delay_ms: AtomicU64,
}

impl Store {
    /// Opens (or creates) the store under `dir`, checking the format version.
    pub fn open(dir: &Path) -> Result<Store> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// As [`Store::open`], with a page cache of `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Store> {
        std::fs::create_dir_all(dir)?;
        // sled's background threads release the file lock a moment after a `Db` is dropped
        // (a store reopened in the same process); another process holding it is an error.
        let mut tries = 0;
        loop {
            match Self::open_once(dir, cache_bytes) {
                Err(StorageError::Sled(sled::Error::Io(e))) if e.to_string().contains("could not acquire lock") => {
                    tries += 1;
                    if tries > 40 {
                        return Err(StorageError::Io(std::io::Error::other(format!("{} is in use by another process (sled lock held)", dir.display()))));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn open_once(dir: &Path, cache_bytes: u64) -> Result<Store> {
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(cache_bytes)
            // sled stores any log item above segment_size / 4 in a separate blob file that its
            // flush never fsyncs. A leaf node holds up to 16 items; with 64 KiB chunks a whole
            // node stays near 1 MiB, so 8 MiB segments (2 MiB threshold) keep every byte in the
            // fsynced log. Fixed when the store is created.
            .segment_size(SEGMENT_BYTES)
            // Append-mostly logs: favour write throughput over sled's space-saving rewrites.
            .mode(sled::Mode::HighThroughput)
            // We flush before acknowledging; sled's own timer flush only adds latency noise.
            .flush_every_ms(None)
            .open()?;
        Self::from_db(db, Some(dir.to_path_buf()))
    }

    /// A throwaway store in memory, for tests.
    pub fn temporary() -> Result<Store> {
        Self::from_db(sled::Config::new().temporary(true).open()?, None)
    }

    fn from_db(db: sled::Db, dir: Option<std::path::PathBuf>) -> Result<Store> {
        let log = db.open_tree("log")?;
        let meta = db.open_tree("meta")?;
        match meta.get("format_version")? {
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().map_err(|_| StorageError::Corrupt {
                    what: "meta/format_version".into(),
                    why: "not 4 bytes".into(),
                })?);
                if found != FORMAT_VERSION {
                    return Err(StorageError::FormatVersion { found, expected: FORMAT_VERSION });
                }
            }
            None => {
                meta.insert("format_version", &FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
            }
        }
        Ok(Store {
            inner: Arc::new(Inner { db, dir, log, meta, write_seq: AtomicU64::new(0), flushed_seq: AtomicU64::new(0), flush_delay_ms: AtomicU64::new(0) }),
        })
    }

    /// Bytes free for this process on the store's file system (None for a temporary store).
    pub fn available_bytes(&self) -> std::io::Result<Option<u64>> {
        self.inner.dir.as_deref().map(fs2::available_space).transpose()
    }

    pub(crate) fn log_tree(&self) -> &sled::Tree {
        &self.inner.log
    }

    /// Marks that a write has been applied; returns the sequence a flush must reach to cover it.
    pub(crate) fn note_write(&self) -> u64 {
        self.inner.write_seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The sequence of the latest applied write.
    pub fn written_seq(&self) -> u64 {
        self.inner.write_seq.load(Ordering::SeqCst)
    }

    /// The highest sequence known durable.
    pub fn flushed_seq(&self) -> u64 {
        self.inner.flushed_seq.load(Ordering::SeqCst)
    }

    /// Flushes everything written so far to disk (blocking: call it off the async threads).
    /// Returns the write sequence the flush covers.
    /// Fault injection for test clusters: from now on every flush first waits `delay` (a slow
    /// disk; zero ends it).
    pub fn set_flush_delay(&self, delay: std::time::Duration) {
        self.inner.flush_delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn flush(&self) -> Result<u64> {
        let covers = self.written_seq();
        let delay = self.inner.flush_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        self.inner.db.flush()?;
        self.inner.flushed_seq.fetch_max(covers, Ordering::SeqCst);
        Ok(covers)
    }

    /// Reads a metadata value.
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.meta.get(key)?.map(|v| v.to_vec()))
    }

    /// Writes a metadata value (not flushed: call [`Store::flush`] before relying on it).
    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<u64> {
        self.inner.meta.insert(key, value)?;
        Ok(self.note_write())
    }

    pub fn meta_remove(&self, key: &str) -> Result<u64> {
        self.inner.meta.remove(key)?;
        Ok(self.note_write())
    }

    /// Every metadata pair whose key starts with `prefix`, in key order.
    pub fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for kv in self.inner.meta.scan_prefix(prefix) {
            let (k, v) = kv?;
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    /// Number of sled blob files (values stored outside the fsynced log); kept at zero by
    /// the chunk and segment sizes. Exposed so tests can check it.
    pub fn blob_files(&self, dir: &Path) -> usize {
        std::fs::read_dir(dir.join("sled").join("blobs")).map(|d| d.count()).unwrap_or(0)
    }

    /// Bytes sled uses on disk (for metrics and reports).
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}
