//! ListTransactions (key 66, KIP-664): the transactional ids a coordinator knows, filtered by
//! state, producer id and (v1+) how long they have been open (`kafka-transactions list`).
//! Admin clients ask every broker and merge the answers, so only the coordinator (the
//! controller) lists; the other brokers answer with none. Ids the requester may not DESCRIBE
//! are left out. v2 (KIP-1152) filters by a regular expression the whole id must match, as
//! Java's `Matcher.matches` does (the `regex` crate's syntax, which shares Java's common
//! core); a pattern that does not compile is INVALID_REGULAR_EXPRESSION.

use super::{str, KafkaCtx};
use backwaters_actors::acl::op;
use backwaters_actors::txn::TxnStatus;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, RequestHeader, TransactionalId};
use kafka_protocol::protocol::VersionRange;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };
/// Compiled size a pattern may reach (a pattern is client input).
const PATTERN_BYTES: usize = 1 << 20;
pub const ADVERTISED: VersionRange = VERSIONS;

const STATES: [&str; 6] = ["Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort"];

pub async fn handle(ctx: &KafkaCtx, _h: &RequestHeader, req: ListTransactionsRequest) -> Option<ListTransactionsResponse> {
    let unknown: Vec<_> = req.state_filters.iter().filter(|f| !STATES.contains(&f.as_str())).cloned().collect();
    let resp = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
    let pattern = match req.transactional_id_pattern.as_ref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => match regex::RegexBuilder::new(&format!("^(?:{})$", p.as_str())).size_limit(PATTERN_BYTES).build() {
            Ok(r) => Some(r),
            Err(_) => return Some(resp.with_error_code(kafka_protocol::ResponseError::InvalidRegularExpression.code())),
        },
    };
    if ctx.node.txn_coordinator() != Some(ctx.broker.node_id) {
        return Some(resp);
    }
    // Transactions' start times are on the coordinators' steady clocks (txn.rs).
    let now = ctx.node.steady_ms();
    let states = ctx
        .node
        .txn_states()
        .into_iter()
        .filter(|s| req.state_filters.is_empty() || req.state_filters.iter().any(|f| f.as_str() == s.status.kafka_name()))
        .filter(|s| req.producer_id_filters.is_empty() || req.producer_id_filters.iter().any(|p| p.0 == s.producer_id))
        .filter(|s| req.duration_filter < 0 || (s.status == TxnStatus::Ongoing && now - s.started_ms >= req.duration_filter))
        .filter(|s| pattern.as_ref().is_none_or(|r| r.is_match(&s.transactional_id)))
        .filter(|s| ctx.allowed_quiet(op::DESCRIBE, backwaters_actors::acl::resource::TRANSACTIONAL_ID, &s.transactional_id))
        .map(|s| TransactionState::default().with_transactional_id(TransactionalId(str(&s.transactional_id))).with_producer_id(ProducerId(s.producer_id)).with_transaction_state(str(s.status.kafka_name())))
        .collect();
    Some(resp.with_transaction_states(states))
}
