//! `quota` commands: list, set, remove client quotas (byte rates per user / client id; see
//! `backwaters_actors::quota`), as `kafka-configs --entity-type users/clients` does.

use super::commands::{status_error, Api};
use super::render::Out;
use backwaters_proto::grpc::v1 as pb;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum QuotaVerb {
    /// Every quota entity with its rates.
    List,
    /// Set a rate: KEY=RATE, KEY producer_byte_rate or consumer_byte_rate (bytes per second)
    /// or controller_mutation_rate (partitions created or deleted per second).
    Set {
        #[command(flatten)]
        entity: Entity,
        #[arg(value_name = "KEY=RATE")]
        rate: String,
    },
    /// Remove a rate (KEY) from an entity.
    Remove {
        #[command(flatten)]
        entity: Entity,
        key: String,
    },
}

/// Whose quota: a user, a client id, or both; each a name or the default entity.
#[derive(Args, Debug)]
#[group(required = true, multiple = true)]
pub struct Entity {
    /// A user (its SASL name or TLS subject; ANONYMOUS without a login).
    #[arg(long, conflicts_with = "default_user")]
    user: Option<String>,
    /// The default user entity: every user on its own.
    #[arg(long)]
    default_user: bool,
    /// A client id (the Kafka client's client.id).
    #[arg(long, conflicts_with = "default_client")]
    client_id: Option<String>,
    /// The default client-id entity: every client id on its own.
    #[arg(long)]
    default_client: bool,
}

impl Entity {
    fn parts(self) -> Vec<pb::QuotaEntityPart> {
        let mut parts = Vec::new();
        if self.user.is_some() || self.default_user {
            parts.push(pb::QuotaEntityPart { r#type: "user".into(), name: self.user });
        }
        if self.client_id.is_some() || self.default_client {
            parts.push(pb::QuotaEntityPart { r#type: "client-id".into(), name: self.client_id });
        }
        parts
    }
}

/// An entity as `kafka-configs` names it: user 'alice', client-id '<default>'.
fn show(entity: &[pb::QuotaEntityPart]) -> String {
    entity.iter().map(|p| format!("{} {}", p.r#type, p.name.as_deref().map_or("<default>".to_string(), |n| format!("'{n}'")))).collect::<Vec<_>>().join(", ")
}

pub async fn list(api: &mut Api) -> Result<Out, String> {
    let r = api.admin.list_quotas(pb::ListQuotasRequest {}).await.map_err(status_error)?.into_inner();
    let rows = r.quotas.iter().flat_map(|q| q.values.iter().map(|(k, v)| vec![show(&q.entity), k.clone(), format!("{v}")])).collect();
    Ok(Out::table(None, &["entity", "key", "rate"], rows))
}

pub async fn set(api: &mut Api, entity: Entity, rate: String) -> Result<Out, String> {
    let (key, value) = super::commands::kv(&rate)?;
    let value: f64 = value.trim().parse().map_err(|_| format!("{value:?} is not a number"))?;
    let entity = entity.parts();
    let shown = show(&entity);
    api.admin.alter_quota(pb::AlterQuotaRequest { entity, key: key.clone(), value: Some(value) }).await.map_err(status_error)?;
    Ok(Out::Done(format!("{shown}: {key} = {value}")))
}

pub async fn remove(api: &mut Api, entity: Entity, key: String) -> Result<Out, String> {
    let entity = entity.parts();
    let shown = show(&entity);
    api.admin.alter_quota(pb::AlterQuotaRequest { entity, key: key.clone(), value: None }).await.map_err(status_error)?;
    Ok(Out::Done(format!("{shown}: {key} removed")))
}
