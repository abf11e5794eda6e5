//! One file per Kafka API key. Each states the versions it serves (`VERSIONS`) and turns a
//! decoded request into a response; the table below dispatches to them and is the only
//! source of what ApiVersions advertises.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_client_quotas;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod heartbeat;
pub mod find_coordinator;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use super::KafkaCtx;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes, VersionRange};
use std::time::Duration;
use thiserror::Error;

/// Why a request was refused without an answer (the connection is closed).
#[derive(Debug, Error)]
pub enum DispatchError {
    #[error("API key {0:?} is not served by this broker")]
    UnsupportedKey(ApiKey),
    #[error("version {version} of {key:?} is not served (serves {range})")]
    UnsupportedVersion { key: ApiKey, version: i16, range: VersionRange },
    #[error("{key:?} v{version} response does not encode: {why}")]
    Encode { key: ApiKey, version: i16, why: String },
    #[error("malformed {key:?} v{version} request: {why}")]
    Malformed { key: ApiKey, version: i16, why: String },
}

/// Decodes a request body of a version this broker serves (`range`).
pub fn decode_request<R: kafka_protocol::protocol::Decodable>(key: ApiKey, version: i16, range: VersionRange, body: Bytes) -> Result<R, DispatchError> {
    if version < range.min || version > range.max {
        return Err(DispatchError::UnsupportedVersion { key, version, range });
    }
    backwaters_proto::kafka::frame::decode_body(body, version).map_err(|why| DispatchError::Malformed { key, version, why })
}

/// Builds the dispatch function and the advertised version table from one list.
macro_rules! handlers {
    ($($key:ident => $module:ident),* $(,)?) => {
        /// Every API key this broker answers, with the versions it serves.
        pub fn served_versions() -> Vec<(ApiKey, VersionRange)> {
            vec![$((ApiKey::$key, $module::ADVERTISED)),*]
        }

        pub async fn dispatch(ctx: &KafkaCtx, key: ApiKey, header: &RequestHeader, body: Bytes) -> Result<Option<BytesMut>, DispatchError> {
            let version = header.request_api_version;
            match key {
                // ApiVersions answers even versions it does not know (with UNSUPPORTED_VERSION
                // in the v0 format), so clients can find a version both sides speak.
                ApiKey::ApiVersions if version > api_versions::VERSIONS.max => {
                    let resp = api_versions::unsupported();
                    encode_response(key, header, 0, &resp).map(Some)
                }
                $(ApiKey::$key => {
                    let req = decode_request(key, version, $module::VERSIONS, body)?;
                    $module::handle(ctx, header, req).await.map(|resp| encode_response(key, header, version, &resp)).transpose()
                })*
                other => Err(DispatchError::UnsupportedKey(other)),
            }
        }
    };
}

handlers! {
    Produce => produce,
    Fetch => fetch,
    ListOffsets => list_offsets,
    OffsetCommit => offset_commit,
    OffsetFetch => offset_fetch,
    OffsetForLeaderEpoch => offset_for_leader_epoch,
    FindCoordinator => find_coordinator,
    JoinGroup => join_group,
    Heartbeat => heartbeat,
    LeaveGroup => leave_group,
    SyncGroup => sync_group,
    DescribeGroups => describe_groups,
    ListGroups => list_groups,
    Metadata => metadata,
    ApiVersions => api_versions,
    CreateTopics => create_topics,
    DeleteTopics => delete_topics,
    DeleteRecords => delete_records,
    InitProducerId => init_producer_id,
    DescribeConfigs => describe_configs,
    AlterConfigs => alter_configs,
    CreatePartitions => create_partitions,
    IncrementalAlterConfigs => incremental_alter_configs,
    DescribeCluster => describe_cluster,
    DeleteGroups => delete_groups,
    OffsetDelete => offset_delete,
    SaslHandshake => sasl_handshake,
    SaslAuthenticate => sasl_authenticate,
    DescribeUserScramCredentials => describe_user_scram_credentials,
    AlterUserScramCredentials => alter_user_scram_credentials,
    DescribeAcls => describe_acls,
    CreateAcls => create_acls,
    DeleteAcls => delete_acls,
    DescribeLogDirs => describe_log_dirs,
    DescribeQuorum => describe_quorum,
    ListPartitionReassignments => list_partition_reassignments,
    ElectLeaders => elect_leaders,
    DescribeProducers => describe_producers,
    DescribeTopicPartitions => describe_topic_partitions,
    AddPartitionsToTxn => add_partitions_to_txn,
    AddOffsetsToTxn => add_offsets_to_txn,
    EndTxn => end_txn,
    TxnOffsetCommit => txn_offset_commit,
    DescribeTransactions => describe_transactions,
    ListTransactions => list_transactions,
    WriteTxnMarkers => write_txn_markers,
    DescribeClientQuotas => describe_client_quotas,
    AlterClientQuotas => alter_client_quotas,
    ConsumerGroupHeartbeat => consumer_group_heartbeat,
    ConsumerGroupDescribe => consumer_group_describe,
}

/// Frames a response: length, response header (its version follows from key and version),
/// body.
/// A response that cannot be encoded at the requested version is a bug in its handler (a
/// field set that the version lacks); it is logged and the connection closed, never a panic.
pub fn encode_response<R: Encodable>(key: ApiKey, header: &RequestHeader, version: i16, resp: &R) -> Result<BytesMut, DispatchError> {
    let mut out = BytesMut::with_capacity(256);
    out.extend_from_slice(&[0u8; 4]);
    let rh = ResponseHeader::default().with_correlation_id(header.correlation_id);
    let encoded = rh.encode(&mut out, key.response_header_version(version)).and_then(|_| resp.encode(&mut out, version));
    if let Err(e) = encoded {
        tracing::error!(?key, version, error = %e, "response does not encode at this version (a handler bug)");
        return Err(DispatchError::Encode { key, version, why: e.to_string() });
    }
    let len = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

pub fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(str(s))
}

/// A client-given timeout, clamped to something sane.
pub fn timeout_ms(ms: i32) -> Duration {
    Duration::from_millis(ms.clamp(1, 300_000) as u64)
}

/// How long a transaction request waits for the id's previous transaction to be completed
/// before it answers CONCURRENT_TRANSACTIONS (and the client retries).
pub const TXN_WAIT: Duration = Duration::from_secs(5);

/// How long a group request may take when nothing waits for other members.
pub const GROUP_CALL: Duration = Duration::from_secs(30);

pub fn opt_str(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// KIP-951: the leader this node knows for a partition it does not lead (another node, still
/// in the actor cluster: a leader whose node left is gone, and Metadata reports none either),
/// with its epoch and listener. Produce (v10+) and Fetch (v16+) answers name it.
pub fn known_leader<'a>(ctx: &'a KafkaCtx, topic: &str, partition: i32) -> Option<(i32, i32, &'a crate::kafka::BrokerInfo)> {
    let part = ctx.node.partition(topic, partition)?;
    let leader = part.leader().filter(|l| *l != ctx.broker.node_id && !ctx.node.departed_nodes().contains(l))?;
    let broker = ctx.brokers.iter().find(|b| b.node_id == leader)?;
    Some((leader, part.leader_epoch(), broker))
}

/// Kafka's "authorized operations not requested" marker.
pub const AUTHORIZED_OPS_OMITTED: i32 = i32::MIN;
