//! `group` commands: list, describe (members, assignments, lag), reset-offsets, delete.

use super::commands::{parse_time, status_error, Api};
use super::render::Out;
use backwaters_proto::grpc::v1 as pb;
use clap::Subcommand;
use pb::reset_group_offsets_request::To;

#[derive(Subcommand, Debug)]
pub enum GroupVerb {
    /// All consumer groups with their state.
    List,
    /// Members, their assignments, and committed offsets with lag per partition.
    Describe { group: String },
    /// Move a group's committed offsets (only while the group has no members). Shows the plan;
    /// --execute applies it.
    #[command(group(clap::ArgGroup::new("to").required(true)))]
    ResetOffsets {
        group: String,
        /// Topic to reset (repeatable; default: every topic the group committed to).
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// To the log start.
        #[arg(long, group = "to")]
        to_earliest: bool,
        /// To the high watermark (skip everything not read yet).
        #[arg(long, group = "to")]
        to_latest: bool,
        /// To the first record at or after a time: ms since the epoch, or relative like -1h.
        #[arg(long, group = "to", value_name = "TIME")]
        to_datetime: Option<String>,
        /// To this offset in every partition (clamped to the log).
        #[arg(long, group = "to")]
        to_offset: Option<i64>,
        /// Apply the plan (without it nothing changes).
        #[arg(long)]
        execute: bool,
    },
    /// Delete an empty group and its committed offsets (asks first in the interactive shell).
    Delete {
        group: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

fn lag(p: &pb::GroupPartition) -> (String, String) {
    if p.committed_offset < 0 {
        ("-".into(), "-".into())
    } else {
        (p.committed_offset.to_string(), p.lag.to_string())
    }
}

pub async fn list(api: &mut Api) -> Result<Out, String> {
    let r = api.admin.list_groups(pb::ListGroupsRequest {}).await.map_err(status_error)?.into_inner();
    let rows = r.groups.into_iter().map(|g| vec![g.group_id, g.state, g.protocol_type, g.group_type]).collect();
    Ok(Out::table(None, &["group", "state", "protocol type", "type"], rows))
}

pub async fn describe(api: &mut Api, group: String) -> Result<Out, String> {
    let d = api.admin.describe_group(pb::DescribeGroupRequest { group_id: group }).await.map_err(status_error)?.into_inner();
    let summary = Out::fields(&[
        ("group", d.group_id.clone()),
        ("state", d.state.clone()),
        ("type", d.group_type.clone()),
        ("protocol", format!("{} / {}", d.protocol_type, if d.protocol.is_empty() { "-" } else { &d.protocol })),
        (if d.group_type == "consumer" { "group epoch" } else { "generation" }, d.generation.to_string()),
        ("leader", if d.leader.is_empty() { "-".into() } else { d.leader.clone() }),
        ("coordinator", d.coordinator.to_string()),
    ]);
    let members = d
        .members
        .iter()
        .map(|m| {
            let assigned = m.assignment.iter().map(|t| format!("{}:{}", t.topic, t.partitions.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","))).collect::<Vec<_>>().join(" ");
            vec![m.member_id.clone(), if m.instance_id.is_empty() { "-".into() } else { m.instance_id.clone() }, m.client_id.clone(), m.client_host.clone(), assigned]
        })
        .collect();
    let parts = d
        .partitions
        .iter()
        .map(|p| {
            let (committed, lag) = lag(p);
            vec![p.topic.clone(), p.partition.to_string(), committed, p.high_watermark.to_string(), lag, if p.member_id.is_empty() { "-".into() } else { p.member_id.clone() }]
        })
        .collect();
    Ok(Out::Many(vec![
        summary,
        Out::table(Some("Members"), &["member", "instance", "client", "host", "assigned"], members),
        Out::table(Some("Offsets"), &["topic", "partition", "committed", "high watermark", "lag", "member"], parts),
    ]))
}

#[allow(clippy::too_many_arguments)]
pub async fn reset_offsets(api: &mut Api, group: String, topics: Vec<String>, earliest: bool, latest: bool, datetime: Option<String>, offset: Option<i64>, execute: bool, now_ms: i64) -> Result<Out, String> {
    let to = match (earliest, latest, datetime, offset) {
        (true, ..) => To::Earliest(true),
        (_, true, ..) => To::Latest(true),
        (_, _, Some(t), _) => To::TimestampMs(parse_time(&t, now_ms)?),
        (.., Some(o)) => To::Offset(o),
        _ => return Err("say where to: --to-earliest, --to-latest, --to-datetime or --to-offset".into()),
    };
    let r = api.admin.reset_group_offsets(pb::ResetGroupOffsetsRequest { group_id: group.clone(), topics, to: Some(to), dry_run: !execute }).await.map_err(status_error)?.into_inner();
    let rows = r.partitions.iter().map(|p| vec![p.topic.clone(), p.partition.to_string(), p.committed_offset.to_string(), p.high_watermark.to_string(), p.lag.to_string()]).collect();
    let note = if execute { format!("reset offsets of group {group}") } else { format!("plan only (nothing changed); add --execute to reset group {group}") };
    Ok(Out::Many(vec![Out::table(None, &["topic", "partition", "new offset", "high watermark", "lag"], rows), Out::Done(note)]))
}

pub async fn delete(api: &mut Api, group: String) -> Result<Out, String> {
    api.admin.delete_group(pb::DeleteGroupRequest { group_id: group.clone() }).await.map_err(status_error)?;
    Ok(Out::Done(format!("deleted group {group}")))
}
