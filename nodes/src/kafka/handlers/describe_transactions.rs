//! DescribeTransactions (key 65, KIP-664): a transactional id's state as the coordinator
//! records it (`kafka-transactions describe`): state, producer id and epoch, timeout, start
//! time and the partitions in the transaction. Answered by the coordinator (the controller);
//! elsewhere NOT_COORDINATOR, so the client looks it up. Needs DESCRIBE on the id.

use super::{str, topic_name, KafkaCtx};
use backwaters_actors::acl::op;
use backwaters_actors::txn::TxnStatus;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };
pub const ADVERTISED: VersionRange = VERSIONS;

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: DescribeTransactionsRequest) -> Option<DescribeTransactionsResponse> {
    let coordinator = ctx.node.txn_coordinator() == Some(ctx.broker.node_id);
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            let r = TransactionState::default().with_transactional_id(id.clone()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1).with_transaction_start_time_ms(-1);
            if !ctx.allowed_txn(op::DESCRIBE, id) {
                return r.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
            }
            if !coordinator {
                return r.with_error_code(ResponseError::NotCoordinator.code());
            }
            let Some(s) = ctx.node.txn_state(id) else { return r.with_error_code(ResponseError::TransactionalIdNotFound.code()) };
            let mut topics: Vec<TopicData> = Vec::new();
            for (t, p) in &s.partitions {
                match topics.last_mut() {
                    Some(last) if last.topic.0.as_str() == t => last.partitions.push(*p),
                    _ => topics.push(TopicData::default().with_topic(topic_name(t)).with_partitions(vec![*p])),
                }
            }
            let start = if s.status == TxnStatus::Ongoing { s.started_ms } else { -1 };
            r.with_transaction_state(str(s.status.kafka_name()))
                .with_transaction_timeout_ms(s.timeout_ms)
                .with_transaction_start_time_ms(start)
                .with_producer_id(ProducerId(s.producer_id))
                .with_producer_epoch(s.epoch)
                .with_topics(topics)
        })
        .collect();
    Some(DescribeTransactionsResponse::default().with_transaction_states(states))
}
