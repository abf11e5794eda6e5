//! Internal errors to Kafka error codes, in one place.

use backwaters_actors::node::AdminError;
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
        PartitionError::TransactionsUnsupported => E::UnsupportedForMessageFormat,
        PartitionError::OffsetOutOfRange { .. } => E::OffsetOutOfRange,
        // Retriable: the client backs off and retries (idempotence dedupes the retry).
        PartitionError::Busy => E::NotLeaderOrFollower,
        PartitionError::Timeout => E::RequestTimedOut,
        PartitionError::UnknownTopicOrPartition => E::UnknownTopicOrPartition,
        PartitionError::Storage(_) => E::KafkaStorageError,
    }
    .code()
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
    }
    .code()
}

pub const NONE: i16 = 0;
