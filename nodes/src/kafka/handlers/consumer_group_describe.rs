//! ConsumerGroupDescribe (key 69): groups of the consumer protocol (KIP-848) with their
//! epochs, assignor and each member's current and target assignment. A classic group or an
//! unknown one is GROUP_ID_NOT_FOUND, as in Kafka: admin clients then ask DescribeGroups.

use super::{str, topic_name, KafkaCtx, AUTHORIZED_OPS_OMITTED, GROUP_CALL};
use crate::kafka::errors;
use backwaters_actors::acl::op;
use backwaters_actors::group::consumer::Assignment;
use backwaters_actors::group::CoordinatorMsg;
use kafka_protocol::messages::consumer_group_describe_response::{Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, RequestHeader};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

/// v1 adds the member type (classic or consumer).
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };
pub const ADVERTISED: VersionRange = VERSIONS;

/// Member type of a member that speaks the consumer protocol.
const CONSUMER_MEMBER: i8 = 1;

fn wire(ctx: &KafkaCtx, a: &Assignment) -> WireAssignment {
    WireAssignment::default().with_topic_partitions(
        a.iter()
            .filter(|(t, _)| ctx.visible_topic(t))
            .map(|(t, ps)| {
                let id = ctx.node.topic(t).map(|t| t.id()).unwrap_or_default();
                TopicPartitions::default().with_topic_id(id).with_topic_name(topic_name(t)).with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

pub async fn handle(ctx: &KafkaCtx, h: &RequestHeader, req: ConsumerGroupDescribeRequest) -> Option<ConsumerGroupDescribeResponse> {
    let v = h.request_api_version;
    let mut out = Vec::with_capacity(req.group_ids.len());
    for id in &req.group_ids {
        let group = id.to_string();
        let d = DescribedGroup::default().with_group_id(id.clone()).with_authorized_operations(AUTHORIZED_OPS_OMITTED);
        out.push(match ctx.ask_group(op::DESCRIBE, &group, GROUP_CALL, |port| CoordinatorMsg::DescribeConsumer(group.clone(), port)).await {
            Err(e) => d.with_error_code(errors::group_error(&e)).with_error_message(Some(str(&format!("group coordinator: {e}")))),
            Ok(None) => d.with_error_code(ResponseError::GroupIdNotFound.code()).with_error_message(Some(str(&format!("group {group} is not a consumer group (unknown, or a classic group: see DescribeGroups)")))),
            Ok(Some(c)) => {
                let members = c
                    .members
                    .values()
                    .map(|m| {
                        let target = c.target.get(&m.id).cloned().unwrap_or_default();
                        let member = Member::default()
                            .with_member_id(str(&m.id))
                            .with_instance_id(m.instance_id.as_deref().map(str))
                            .with_rack_id(m.rack_id.as_deref().map(str))
                            .with_member_epoch(m.epoch)
                            .with_client_id(str(&m.client_id))
                            .with_client_host(str(&m.client_host))
                            .with_subscribed_topic_names(m.subscribed_names.iter().map(|t| topic_name(t)).collect())
                            .with_subscribed_topic_regex(m.regex.as_deref().map(str))
                            .with_assignment(wire(ctx, &m.assigned))
                            .with_target_assignment(wire(ctx, &target));
                        if v >= 1 { member.with_member_type(CONSUMER_MEMBER) } else { member }
                    })
                    .collect();
                d.with_group_state(str(c.state_name())).with_group_epoch(c.epoch).with_assignment_epoch(c.assignment_epoch).with_assignor_name(str(&c.assignor)).with_members(members)
            }
        });
    }
    Some(ConsumerGroupDescribeResponse::default().with_groups(out))
}
