//! Writes to partitions: to the local leader (Kafka produce, flushed before it answers),
//! wherever the leader is (ingest listeners, forwarded writes), and DeleteRecords.

use super::{ForwardedProduce, Node};
use crate::controller::ControllerRequest;
use crate::partition::{PartitionMsg, PartitionShared, ProduceAck};
use crate::PartitionError;
use backwaters_proto::kafka::batch::BatchHeader;
use bytes::Bytes;
use std::time::Duration;

impl Node {
    /// Appends batches to a partition and waits until the write is durable (unless acks=0).
    pub async fn produce(&self, shared: &PartitionShared, batches: Vec<(BatchHeader, Bytes)>, acks: i16, timeout: Duration) -> Result<ProduceAck, PartitionError> {
        self.check_disk(shared, &batches)?;
        let Some(actor) = shared.actor() else {
            shared.note_refused(&batches, self.now_ms());
            return Err(PartitionError::Busy);
        };
        // Kept for noting a refusal (cheap: `Bytes` are shared).
        let sent = batches.clone();
        match actor.call(|reply| PartitionMsg::Produce { batches, acks, reply }, Some(timeout)).await {
            Ok(ractor::rpc::CallResult::Success(r)) => r,
            Ok(ractor::rpc::CallResult::Timeout) => Err(PartitionError::Timeout),
            // The actor died with the request: it restarts from disk; the client retries.
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
                shared.note_refused(&sent, self.now_ms());
                Err(PartitionError::Busy)
            }
        }
    }

    /// Writes to a partition wherever its leader is: here, or passed on to the leading node
    /// (for writers that are not Kafka clients and cannot follow leaders themselves, such as
    /// ingest listeners). Only batches this node built or checked should come here.
    pub async fn produce_anywhere(&self, req: ForwardedProduce) -> Result<ProduceAck, PartitionError> {
        // While leadership is unknown or moving (a topic just created, a failover), retry
        // within the write's time: nothing was written on these answers.
        let deadline = tokio::time::Instant::now() + req.timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            let shared = self.partition(&req.topic, req.partition).ok_or(PartitionError::UnknownTopicOrPartition)?;
            let r = match shared.leader() {
                Some(l) if l == self.inner.settings.node_id => self.produce_local(&shared, req.clone()).await,
                Some(l) => self.inner.peers.produce(l, req.clone()).await,
                None => Err(PartitionError::NotLeader { leader: None }),
            };
            match r {
                Err(PartitionError::NotLeader { .. }) if tokio::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                r => return r,
            }
        }
    }

    /// Writes a forwarded produce to the local replica (its leader, or NOT_LEADER).
    pub async fn produce_local(&self, shared: &PartitionShared, req: ForwardedProduce) -> Result<ProduceAck, PartitionError> {
        if !shared.replicas.contains(&self.inner.settings.node_id) {
            return Err(PartitionError::NotLeader { leader: shared.leader() });
        }
        let mut batches = Vec::with_capacity(req.batches.len());
        for b in req.batches {
            let header = backwaters_proto::kafka::batch::parse_batch(&b).map_err(|e| PartitionError::CorruptRecord(e.to_string()))?;
            batches.push((header, b));
        }
        self.produce(shared, batches, req.acks, req.timeout).await
    }

    pub async fn delete_records(&self, shared: &PartitionShared, offset: i64, timeout: Duration) -> Result<i64, PartitionError> {
        let actor = shared.actor().ok_or(PartitionError::Busy)?;
        match actor.call(|reply| PartitionMsg::DeleteRecords { offset, reply }, Some(timeout)).await {
            Ok(ractor::rpc::CallResult::Success(r)) => r,
            Ok(ractor::rpc::CallResult::Timeout) => Err(PartitionError::Timeout),
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(PartitionError::Busy),
        }
    }

    /// DeleteRecords as clients ask for it: the leader moves its log start (durably), then
    /// the metadata log records it, so every replica follows and a later leader never serves
    /// the deleted records again. (`delete_records` alone is leader-local: the offsets topic
    /// trims itself with it, where a new leader re-reading superseded records is harmless.)
    pub async fn delete_records_everywhere(&self, shared: &PartitionShared, offset: i64, timeout: Duration) -> Result<i64, PartitionError> {
        let low = self.delete_records(shared, offset, timeout).await?;
        if shared.recorded_log_start() >= low {
            return Ok(low);
        }
        match tokio::time::timeout(timeout, self.controller(ControllerRequest::LogStart { uid: shared.log.uid(), offset: low })).await {
            Ok(Ok(())) => Ok(low),
            Ok(Err(e)) => {
                tracing::warn!(topic = %shared.topic, partition = shared.partition, error = %e, "DeleteRecords done on the leader but not recorded in the metadata log");
                Err(PartitionError::Busy)
            }
            Err(_) => Err(PartitionError::Timeout),
        }
    }
}
