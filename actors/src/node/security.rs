//! What the Kafka edge asks about who may do what: Kafka users' SCRAM credentials, the ACLs
//! and the client quotas, all applied from the metadata log (`metadata.rs` applies the records).

use super::*;

impl Node {
    /// A Kafka user's SCRAM credential for `mech`, from the metadata log.
    pub fn scram_credential(&self, user: &str, mech: backwaters_proto::sasl::Mechanism) -> Option<backwaters_proto::sasl::ScramCredential> {
        self.inner.scram.read().expect("lock").get(&(user.to_string(), mech)).cloned()
    }

    /// Every stored SCRAM credential: user, mechanism, iterations.
    pub fn scram_users(&self) -> Vec<(String, backwaters_proto::sasl::Mechanism, u32)> {
        self.inner.scram.read().expect("lock").iter().map(|((u, m), c)| (u.clone(), *m, c.iterations)).collect()
    }

    /// The ACLs as applied here (sorted, no duplicates).
    pub fn acls(&self) -> Arc<Vec<crate::acl::AclBinding>> {
        self.inner.acls.read().expect("lock").clone()
    }

    /// The client quotas as applied here.
    pub fn quotas(&self) -> Arc<Quotas> {
        self.inner.quotas.read().expect("lock").clone()
    }
}
