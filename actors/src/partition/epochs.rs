//! Kafka leader epochs on Raft terms (KIP-101, KIP-320).
//!
//! A Kafka leader epoch goes up with every leader election and names the leader that wrote a
//! batch; a Raft term is the same thing. So a partition's leader epoch is the term of its
//! current leader, every stored batch carries its entry's term (see
//! `replica::log_store::LogStore::to_log_entry`), and OffsetForLeaderEpoch answers from the
//! terms of the entries in the log. Consumers keep the epoch of the batch they last read; after
//! a leader change they ask the new leader where that epoch ends, and a position past that end
//! would mean the log they read from was truncated. Under Raft a consumer only ever reads
//! committed entries, which every later leader holds, so the answer is never below it.

use super::{PartitionError, PartitionShared};

/// An epoch no leader has had: Kafka's `-1` (UNDEFINED_EPOCH).
pub const NO_EPOCH: i32 = -1;

/// Where a consumer's epoch stands against this partition's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochCheck {
    /// Same epoch, or the request named none (-1).
    Current,
    /// The requester knows an older leader: FENCED_LEADER_EPOCH, it refreshes metadata.
    Fenced,
    /// The requester knows a newer leader than this replica has heard of yet:
    /// UNKNOWN_LEADER_EPOCH, it retries.
    Unknown,
}

/// A term as a Kafka epoch (an i32 on the wire).
pub fn epoch_of_term(term: u64) -> i32 {
    i32::try_from(term).unwrap_or(i32::MAX)
}

impl PartitionShared {
    /// The leader epoch of the leader this replica knows (the leader's Raft term); -1 while
    /// no leader is known.
    pub fn leader_epoch(&self) -> i32 {
        match self.leader() {
            Some(_) => epoch_of_term(self.leader_term()),
            None => NO_EPOCH,
        }
    }

    /// A request's `current_leader_epoch` against this replica's.
    pub fn check_epoch(&self, current_leader_epoch: i32) -> EpochCheck {
        let mine = self.leader_epoch();
        match current_leader_epoch {
            e if e < 0 => EpochCheck::Current,
            e if e < mine => EpochCheck::Fenced,
            e if e > mine => EpochCheck::Unknown,
            _ => EpochCheck::Current,
        }
    }

    /// OffsetForLeaderEpoch on this replica's log: the largest epoch at or below `epoch` and
    /// the offset where it ends (the start of the next epoch; for the current one the log
    /// end), as Kafka's leader-epoch cache answers:
    /// - -1: (-1, -1);
    /// - the current epoch: (epoch, log end offset);
    /// - older than every entry left (retention): (epoch, where the next epoch starts);
    /// - newer than any known: (-1, -1).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<(i32, i64), PartitionError> {
        let current = self.leader_epoch();
        if epoch < 0 || epoch > current {
            return Ok((NO_EPOCH, -1));
        }
        if epoch == current {
            return Ok((epoch, self.log_end_offset()));
        }
        let (floor, next) = self.log.term_bounds(epoch as u64).map_err(PartitionError::from)?;
        let floor = floor.map_or(epoch, epoch_of_term);
        // No entry of a later term yet (the current leader's no-op not written here): the
        // older epochs end where the log does.
        Ok((floor, next.unwrap_or_else(|| self.log_end_offset())))
    }

    /// The epoch of the batch holding `offset` (ListOffsets answers with it); the current
    /// epoch for an offset at or past the log end, or an empty log.
    pub fn epoch_at_offset(&self, offset: i64) -> Result<i32, PartitionError> {
        if offset >= self.log_end_offset() {
            return Ok(self.leader_epoch());
        }
        Ok(self.log.term_at_offset(offset).map_err(PartitionError::from)?.map_or_else(|| self.leader_epoch(), epoch_of_term))
    }
}
