//! Internal errors to Kafka error codes, in one place.

use backwaters_actors::group::state::GroupError;
use backwaters_actors::node::AdminError;
use backwaters_actors::partition::epochs::EpochCheck;
use backwaters_actors::PartitionError;
use backwaters_proto::kafka::batch::BatchError;
use kafka_protocol::ResponseError as E;

pub fn partition_error(e: &PartitionError) -> i16 {
    match e {
        PartitionError::MessageTooLarge { .. } => E::MessageTooLarge,
        PartitionError::InvalidRecord(_) => E::InvalidRecord,
        PartitionError::CorruptRecord(_) => E::CorruptMessage,
        PartitionError::OutOfOrderSequence { .. } => E::OutOfOrderSequenceNumber,
        PartitionError::InvalidProducerEpoch => E::InvalidProducerEpoch,
        PartitionError::OffsetOutOfRange { .. } => E::OffsetOutOfRange,
        // Retriable: the client backs off and retries (idempotence dedupes the retry).
        PartitionError::Busy | PartitionError::NotLeader { .. } => E::NotLeaderOrFollower,
        PartitionError::Timeout => E::RequestTimedOut,
        PartitionError::UnknownTopicOrPartition => E::UnknownTopicOrPartition,
        // Retriable for Kafka clients: they refresh metadata and try again until their
        // delivery timeout.
        PartitionError::Storage(_) | PartitionError::DiskFull { .. } => E::KafkaStorageError,
    }
    .code()
}

/// A request's `current_leader_epoch` against the partition's: the error, if any.
pub fn epoch_error(check: EpochCheck) -> Option<i16> {
    match check {
        EpochCheck::Current => None,
        EpochCheck::Fenced => Some(E::FencedLeaderEpoch.code()),
        EpochCheck::Unknown => Some(E::UnknownLeaderEpoch.code()),
    }
}

pub fn batch_error(e: &BatchError) -> i16 {
    match e {
        BatchError::CorruptCrc { .. } => E::CorruptMessage,
        BatchError::UnsupportedMagic(_) => E::UnsupportedForMessageFormat,
        BatchError::Truncated { .. } | BatchError::Invalid(_) => E::InvalidRecord,
    }
    .code()
}

pub fn admin_error(e: &AdminError) -> i16 {
    match e {
        AdminError::TopicExists(_) => E::TopicAlreadyExists,
        AdminError::UnknownTopic(_) => E::UnknownTopicOrPartition,
        AdminError::InvalidTopic(_) => E::InvalidTopicException,
        AdminError::InvalidPartitions(_) => E::InvalidPartitions,
        AdminError::InvalidReplicationFactor(_) => E::InvalidReplicationFactor,
        AdminError::InvalidConfig(_) => E::InvalidConfig,
        AdminError::Storage(_) => E::KafkaStorageError,
        AdminError::NotFound(_) => E::ResourceNotFound,
        AdminError::Unavailable(_) => E::NotController,
        AdminError::Txn(e) => return txn_error(e),
    }
    .code()
}

/// A transaction coordinator's answer. The controller moving or unreachable is
/// NOT_COORDINATOR: the client finds the coordinator again and retries.
pub fn txn_admin_error(e: &AdminError) -> i16 {
    match e {
        AdminError::Txn(e) => txn_error(e),
        AdminError::Unavailable(_) => E::NotCoordinator.code(),
        other => admin_error(other),
    }
}

pub fn txn_error(e: &backwaters_actors::txn::TxnError) -> i16 {
    use backwaters_actors::txn::TxnError as T;
    match e {
        T::ProducerFenced { .. } => E::ProducerFenced,
        T::InvalidProducerIdMapping => E::InvalidProducerIdMapping,
        T::ConcurrentTransactions => E::ConcurrentTransactions,
        T::InvalidTxnState(_) => E::InvalidTxnState,
        T::InvalidTimeout(_) => E::InvalidTransactionTimeout,
    }
    .code()
}

pub fn group_error(e: &GroupError) -> i16 {
    match e {
        GroupError::UnknownMemberId => E::UnknownMemberId,
        GroupError::IllegalGeneration => E::IllegalGeneration,
        GroupError::RebalanceInProgress => E::RebalanceInProgress,
        GroupError::MemberIdRequired => E::MemberIdRequired,
        GroupError::FencedInstanceId => E::FencedInstanceId,
        GroupError::InconsistentGroupProtocol => E::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => E::InvalidSessionTimeout,
        GroupError::InvalidGroupId => E::InvalidGroupId,
        GroupError::GroupMaxSizeReached => E::GroupMaxSizeReached,
        GroupError::CoordinatorNotAvailable => E::CoordinatorNotAvailable,
        GroupError::CoordinatorLoadInProgress => E::CoordinatorLoadInProgress,
        GroupError::NotCoordinator => E::NotCoordinator,
        GroupError::NonEmptyGroup => E::NonEmptyGroup,
        GroupError::GroupIdNotFound => E::GroupIdNotFound,
        GroupError::GroupSubscribedToTopic => E::GroupSubscribedToTopic,
        GroupError::OffsetMetadataTooLarge => E::OffsetMetadataTooLarge,
        GroupError::UnknownTopicOrPartition => E::UnknownTopicOrPartition,
        GroupError::GroupAuthorizationFailed => E::GroupAuthorizationFailed,
        GroupError::TopicAuthorizationFailed => E::TopicAuthorizationFailed,
        GroupError::ProducerFenced => E::ProducerFenced,
        GroupError::FencedMemberEpoch => E::FencedMemberEpoch,
        GroupError::StaleMemberEpoch => E::StaleMemberEpoch,
        GroupError::UnsupportedAssignor => E::UnsupportedAssignor,
        GroupError::UnreleasedInstanceId => E::UnreleasedInstanceId,
        GroupError::InvalidRequest => E::InvalidRequest,
        GroupError::InvalidRegularExpression => E::InvalidRegularExpression,
    }
    .code()
}

/// The code of an optional group error (None: success).
pub fn group_code(e: Option<GroupError>) -> i16 {
    e.as_ref().map(group_error).unwrap_or(NONE)
}

pub const NONE: i16 = 0;
