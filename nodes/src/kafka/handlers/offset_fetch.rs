//! OffsetFetch (key 9): committed positions of a group, for named partitions or (v2+, null
//! topics) all of them; v8+ asks for several groups at once. A partition without a commit
//! gets offset -1 and no error, as in Kafka. With require_stable (v7+, read_committed
//! consumers), a partition whose offset an open transaction is committing gets
//! UNSTABLE_OFFSET_COMMIT, and the client asks again. A consumer-protocol member (v9) gives its
//! member id and epoch: an unknown member or another epoch is refused as a commit would be.

use backwaters_actors::acl::op;
use super::{str, topic_name, KafkaCtx, GROUP_CALL};
use crate::kafka::errors;
use backwaters_actors::group::state::GroupError;
use backwaters_actors::group::CoordinatorMsg;
use backwaters_proto::kafka::group_records::OffsetValue;
use kafka_protocol::messages::offset_fetch_response::{OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 9 };
pub const ADVERTISED: VersionRange = VERSIONS;

/// A partition's committed offset (None: no commit), or the error that stands for it.
type Committed = Result<Option<OffsetValue>, i16>;
type Row = (String, i32, Committed);
type Fetched = Result<Vec<Row>, GroupError>;

/// Needs DESCRIBE on the group; offsets of topics the requester may not DESCRIBE are left out.
/// `member`: a consumer-protocol member and its epoch (v9), checked as a commit would be.
async fn fetch(ctx: &KafkaCtx, group: &str, partitions: Option<Vec<(String, i32)>>, member: Option<(String, i32)>, require_stable: bool) -> Fetched {
    let unstable = if require_stable {
        ctx.ask_group(op::DESCRIBE, group, GROUP_CALL, |reply| CoordinatorMsg::Unstable { group: group.to_string(), reply }).await?
    } else {
        Vec::new()
    };
    let rows = ctx.ask_group(op::DESCRIBE, group, GROUP_CALL, |reply| CoordinatorMsg::Fetch { group: group.to_string(), partitions, member, reply }).await.and_then(|r| r)?;
    Ok(rows
        .into_iter()
        .filter(|(t, _, _)| ctx.visible_topic(t))
        .map(|(t, p, v)| {
            let v = if unstable.iter().any(|(ut, up)| *ut == t && *up == p) { Err(ResponseError::UnstableOffsetCommit.code()) } else { Ok(v) };
            (t, p, v)
        })
        .collect())
}

/// Committed offsets grouped by topic, in request order where one was given.
fn by_topic(rows: Vec<Row>) -> Vec<(String, Vec<(i32, Committed)>)> {
    let mut order: Vec<String> = Vec::new();
    let mut map: BTreeMap<String, Vec<(i32, Committed)>> = BTreeMap::new();
    for (t, p, v) in rows {
        if !map.contains_key(&t) {
            order.push(t.clone());
        }
        map.entry(t).or_default().push((p, v));
    }
    order.into_iter().map(|t| {
        let ps = map.remove(&t).unwrap_or_default();
        (t, ps)
    }).collect()
}

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: OffsetFetchRequest) -> Option<OffsetFetchResponse> {
    let v = h.request_api_version;
    if v >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let asked = g.topics.as_ref().map(|ts| ts.iter().flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.to_string(), *p))).collect());
            let member = (v >= 9 && g.member_epoch >= 0).then(|| (super::opt_str(&g.member_id).unwrap_or_default(), g.member_epoch));
            groups.push(group_v8(&g.group_id, fetch(ctx, &g.group_id, asked, member, req.require_stable).await));
        }
        return Some(OffsetFetchResponse::default().with_groups(groups));
    }
    let group = req.group_id.to_string();
    let asked: Option<Vec<(String, i32)>> = req.topics.as_ref().map(|ts| ts.iter().flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.to_string(), *p))).collect());
    let r = fetch(ctx, &group, asked.clone(), None, v >= 7 && req.require_stable).await;
    let resp = OffsetFetchResponse::default();
    Some(match r {
        Ok(rows) => resp.with_topics(
            by_topic(rows)
                .into_iter()
                .map(|(t, ps)| OffsetFetchResponseTopic::default().with_name(topic_name(&t)).with_partitions(ps.into_iter().map(|(p, o)| match o {
                    Ok(o) => partition_v0(p, o, v, errors::NONE),
                    Err(code) => partition_v0(p, None, v, code),
                }).collect()))
                .collect(),
        ),
        // v2+ carries a top-level error; v1 only per partition.
        Err(e) if v >= 2 => resp.with_error_code(errors::group_error(&e)),
        Err(e) => resp.with_topics(
            by_topic(asked.unwrap_or_default().into_iter().map(|(t, p)| (t, p, Ok(None))).collect())
                .into_iter()
                .map(|(t, ps)| OffsetFetchResponseTopic::default().with_name(topic_name(&t)).with_partitions(ps.into_iter().map(|(p, _)| partition_v0(p, None, v, errors::group_error(&e))).collect()))
                .collect(),
        ),
    })
}

fn partition_v0(p: i32, o: Option<OffsetValue>, v: i16, code: i16) -> OffsetFetchResponsePartition {
    let r = OffsetFetchResponsePartition::default().with_partition_index(p).with_error_code(code);
    match o {
        Some(o) => {
            let r = r.with_committed_offset(o.offset).with_metadata(Some(str(&o.metadata)));
            if v >= 5 { r.with_committed_leader_epoch(o.leader_epoch) } else { r }
        }
        None => r.with_committed_offset(-1).with_metadata(Some(str(""))),
    }
}

fn group_v8(group: &GroupId, r: Fetched) -> OffsetFetchResponseGroup {
    let g = OffsetFetchResponseGroup::default().with_group_id(group.clone());
    match r {
        Err(e) => g.with_error_code(errors::group_error(&e)),
        Ok(rows) => g.with_topics(
            by_topic(rows)
                .into_iter()
                .map(|(t, ps)| {
                    let partitions = ps
                        .into_iter()
                        .map(|(p, o)| {
                            let r = OffsetFetchResponsePartitions::default().with_partition_index(p);
                            match o {
                                Err(code) => r.with_error_code(code).with_committed_offset(-1).with_metadata(Some(str(""))),
                                Ok(Some(o)) => r.with_committed_offset(o.offset).with_committed_leader_epoch(o.leader_epoch).with_metadata(Some(str(&o.metadata))),
                                Ok(None) => r.with_committed_offset(-1).with_metadata(Some(str(""))),
                            }
                        })
                        .collect();
                    OffsetFetchResponseTopics::default().with_name(topic_name(&t)).with_partitions(partitions)
                })
                .collect(),
        ),
    }
}
