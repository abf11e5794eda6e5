//! The node's side of the controller: starting the metadata log's replica, applying its
//! committed records, and carrying out requests (here when this node is the controller,
//! forwarded otherwise). The records and placement are in [`crate::controller`].

use super::*;

/// How long a controller request waits for a controller to be elected (or to settle).
const CONTROLLER_WAIT: Duration = Duration::from_secs(5);
/// The end of the refusal of a node that is not (or no longer) the controller.
const NOT_CONTROLLER: &str = "is not the controller";

impl Node {
    // ---- the controller ----------------------------------------------------------------------

    /// Starts the metadata partition's replica and the task that applies its records.
    pub(super) async fn start_metadata(&self) -> Result<(), String> {
        let voters: Vec<i32> = self.inner.settings.members().iter().map(|m| m.id).collect();
        let config = Arc::new(RwLock::new(TopicConfig::from_overrides(&BTreeMap::from([("retention.ms".to_string(), "-1".to_string())])).expect("valid")));
        let shared = self.start_partition(METADATA_TOPIC, 0, METADATA_UID, voters, config).await?;
        let _ = self.inner.meta.set(shared.clone());
        let node = self.downgrade();
        let meta = shared.clone();
        let run: RunFn = Arc::new(move |mut stop| {
            let (node, shared) = (node.clone(), meta.clone());
            Box::pin(async move {
                let mut hw = shared.subscribe();
                loop {
                    let Some(n) = node.upgrade() else { return Ok(()) };
                    n.apply_committed(&shared).await?;
                    drop(n);
                    tokio::select! {
                        r = hw.changed() => if r.is_err() { return Ok(()) },
                        _ = stop.changed() => return Ok(()),
                    }
                }
            })
        });
        self.start_service("5-metadata", run, false).await?;
        // The catalog is what the committed metadata says: wait (bounded) until this node has
        // applied what its replica held when it started, so a restarted node answers at once.
        let target = shared.high_watermark();
        let mut rx = self.inner.applied.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|a| *a + 1 >= target)).await;
        self.inner.caught_up.store(true, Ordering::SeqCst);
        tracing::info!(topics = self.inner.topics.read().expect("lock").len(), "catalog loaded");
        Ok(())
    }

    /// Applies the metadata records committed since the last call.
    async fn apply_committed(&self, shared: &PartitionShared) -> Result<(), String> {
        loop {
            let next = *self.inner.applied.borrow() + 1;
            if next >= shared.high_watermark() {
                return Ok(());
            }
            let entries = shared.read(next.max(shared.log_start_offset()), 1 << 20).map_err(|e| e.to_string())?;
            if entries.is_empty() {
                return Ok(());
            }
            for e in entries {
                for r in backwaters_proto::kafka::batch::decode_records(&e.payload)? {
                    if r.offset < next {
                        continue;
                    }
                    match r.value.as_deref().map(serde_json::from_slice::<MetaRecord>) {
                        Some(Ok(rec)) => self.apply(rec).await,
                        Some(Err(err)) => tracing::warn!(offset = r.offset, error = %err, "metadata record not understood; skipped"),
                        None => {}
                    }
                    self.inner.applied.send_replace(r.offset);
                }
            }
        }
    }

    async fn apply(&self, rec: MetaRecord) {
        match rec {
            MetaRecord::Topic { record } => {
                let name = record.name.clone();
                let old = self.topic(&name);
                let config = match &old {
                    Some(t) => t.config.clone(),
                    None => Arc::new(RwLock::new(TopicConfig::default())),
                };
                let parsed = TopicConfig::from_overrides(&record.overrides).unwrap_or_else(|e| {
                    tracing::warn!(topic = %name, error = %e, "stored config no longer valid; using defaults");
                    TopicConfig::default()
                });
                *config.write().expect("lock") = parsed.clone();
                match self.build_topic(record, config, old.as_deref()).await {
                    Ok(topic) => {
                        for p in &topic.partitions {
                            if let Some(a) = p.actor() {
                                let _ = a.cast(PartitionMsg::SetConfig(parsed.clone()));
                            }
                        }
                        if old.is_none() {
                            tracing::info!(topic = %name, partitions = topic.partitions.len(), "topic created");
                        }
                        self.inner.topics.write().expect("lock").insert(name, Arc::new(topic));
                    }
                    Err(e) => tracing::error!(topic = %name, error = %e, "cannot start the topic's replicas"),
                }
            }
            MetaRecord::DeleteTopic { name } => {
                let Some(topic) = self.inner.topics.write().expect("lock").remove(&name) else { return };
                for (uid, p) in topic.record.partition_uids.iter().zip(&topic.partitions) {
                    if p.actor().is_some() || self.inner.groups.read().expect("lock").contains_key(uid) {
                        let _ = ractor::call!(self.inner.partitions_sup, SupervisorMsg::StopChild, self.partition_actor_name(*uid));
                        self.inner.groups.write().expect("lock").remove(uid);
                        let log = PartitionLog::handle(&self.inner.store, *uid);
                        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || log.destroy()).await {
                            tracing::error!(topic = %name, error = %e, "cannot remove a deleted partition's data");
                        }
                    }
                }
                let _ = self.flush().await;
                tracing::info!(topic = %name, "topic deleted");
            }
            MetaRecord::Leader { uid, node, term } => {
                for t in self.topics() {
                    if let Some(i) = t.record.partition_uids.iter().position(|u| *u == uid) {
                        t.partitions[i].note_leader(node, term);
                    }
                }
            }
            MetaRecord::Drain { node, drained } => {
                let mut set = self.inner.drained.write().expect("lock");
                if drained {
                    set.insert(node);
                } else {
                    set.remove(&node);
                }
                tracing::info!(node, drained, "node drain state");
            }
            MetaRecord::LogStart { uid, offset } => {
                if uid == METADATA_UID {
                    // A checkpoint's prefix: every replica of the metadata log trims it.
                    if let Some(meta) = self.inner.meta.get() {
                        meta.raise_log_start(offset);
                    }
                    return;
                }
                for t in self.topics() {
                    if let Some(i) = t.record.partition_uids.iter().position(|u| *u == uid) {
                        t.partitions[i].raise_log_start(offset);
                    }
                }
            }
            MetaRecord::TombstoneHorizon { uid, offset } => {
                for t in self.topics() {
                    if let Some(i) = t.record.partition_uids.iter().position(|u| *u == uid) {
                        t.partitions[i].raise_tombstone_horizon(offset);
                    }
                }
            }
            MetaRecord::Scram { user, mechanism, credential } => {
                let Some(mech) = backwaters_proto::sasl::Mechanism::parse(&mechanism) else {
                    tracing::warn!(%user, %mechanism, "SCRAM credential of an unknown mechanism; skipped");
                    return;
                };
                let mut scram = self.inner.scram.write().expect("lock");
                match credential {
                    Some(c) => scram.insert((user.clone(), mech), c),
                    None => scram.remove(&(user.clone(), mech)),
                };
                tracing::info!(%user, %mechanism, "SCRAM credential changed");
            }
            MetaRecord::Quota { entity, key, value } => {
                let mut quotas = self.inner.quotas.write().expect("lock");
                let mut next = (**quotas).clone();
                let values = next.entry(entity.clone()).or_default();
                match value {
                    Some(v) => values.insert(key.clone(), v),
                    None => values.remove(&key),
                };
                if values.is_empty() {
                    next.remove(&entity);
                }
                *quotas = Arc::new(next);
                tracing::info!(?entity, %key, value = ?value.map(|v| v.0), "client quota changed");
            }
            MetaRecord::Acl { binding, present } => {
                let mut acls = self.inner.acls.write().expect("lock");
                let mut next: Vec<crate::acl::AclBinding> = acls.iter().filter(|b| **b != binding).cloned().collect();
                if present {
                    let at = next.partition_point(|b| *b < binding);
                    next.insert(at, binding.clone());
                }
                *acls = Arc::new(next);
                tracing::info!(?binding, present, "ACL changed");
            }
            MetaRecord::ElectPreferred { uids } => {
                if !self.inner.caught_up.load(Ordering::SeqCst) {
                    return;
                }
                for uid in uids {
                    let Some(shared) = self.inner.groups.read().expect("lock").get(&uid).cloned() else { continue };
                    if let Some(to) = self.preferred_leader(&shared).filter(|to| shared.leader() == Some(self.inner.settings.node_id) && *to != self.inner.settings.node_id) {
                        tracing::info!(topic = %shared.topic, partition = shared.partition, to, "preferred leader election (ElectLeaders)");
                        let _ = self.transfer_leadership(&shared, to);
                    }
                }
            }
            MetaRecord::Txn { state } => self.apply_txn(state),
            MetaRecord::Liveness { node, alive } => {
                self.inner.liveness.write().expect("lock").insert(node, alive);
                tracing::info!(node, alive, "node liveness recorded");
            }
            MetaRecord::ProducerIds { node, first, count } => {
                {
                    let mut end = self.inner.producer_block_end.lock().expect("lock");
                    *end = (*end).max(first + count);
                }
                if node == self.inner.settings.node_id && self.inner.caught_up.load(Ordering::SeqCst) {
                    *self.inner.producer_ids.lock().await = (first, first + count);
                }
            }
        }
    }

    /// Carries out `req` at the controller (here, or forwarded to it) and waits until this
    /// node has applied the result. While no controller is elected, or the one asked has
    /// just lost the role (it refused before doing anything), asks again for up to
    /// [`CONTROLLER_WAIT`]: a cluster that is starting or failing over answers late rather
    /// than with an error.
    pub async fn controller(&self, req: ControllerRequest) -> Result<(), AdminError> {
        let meta = self.inner.meta.get().ok_or_else(|| AdminError::Unavailable("metadata is not loaded yet".into()))?.clone();
        let deadline = tokio::time::Instant::now() + CONTROLLER_WAIT;
        let offset = loop {
            let r = match meta.leader() {
                Some(l) if l == self.inner.settings.node_id => self.execute(req.clone()).await,
                Some(l) => self.inner.peers.forward(l, req.clone()).await,
                None => Err(AdminError::Unavailable("no controller is elected yet".into())),
            };
            match r {
                // Not while the node is stopping: a waiting request would keep it (and its
                // store) alive past its shutdown.
                Err(AdminError::Unavailable(why)) if (meta.leader().is_none() || why.ends_with(NOT_CONTROLLER)) && tokio::time::Instant::now() < deadline && self.running() => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                r => break r?,
            }
        };
        let mut rx = self.inner.applied.subscribe();
        tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|a| *a >= offset))
            .await
            .map_err(|_| AdminError::Unavailable(format!("metadata offset {offset} not applied here within 30 s")))?
            .map_err(|_| AdminError::Unavailable("node stopping".into()))?;
        Ok(())
    }

    /// The controller's side: checks `req` against the applied metadata, writes its records
    /// and returns the offset of the last one. Called here or by a peer's forwarded request.
    pub async fn execute(&self, req: ControllerRequest) -> ControllerReply {
        let meta = self.inner.meta.get().ok_or_else(|| AdminError::Unavailable("metadata is not loaded yet".into()))?.clone();
        if meta.leader() != Some(self.inner.settings.node_id) {
            return Err(AdminError::Unavailable(format!("node {} {NOT_CONTROLLER}", self.inner.settings.node_id)));
        }
        // One change at a time, each decided on everything committed before it.
        let _guard = self.inner.catalog.lock().await;
        let mut rx = self.inner.applied.subscribe();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|a| *a + 1 >= meta.high_watermark()))
            .await
            .map_err(|_| AdminError::Unavailable("the controller is still catching up".into()))?
            .map_err(|_| AdminError::Unavailable("node stopping".into()))?;
        let records = self.plan(req)?;
        if records.is_empty() {
            return Ok(*self.inner.applied.borrow());
        }
        let recs: Vec<backwaters_proto::kafka::batch::NewRecord> = records
            .iter()
            .map(|r| backwaters_proto::kafka::batch::NewRecord { value: Some(Bytes::from(serde_json::to_vec(r).expect("record serializes"))), timestamp_ms: self.now_ms(), ..Default::default() })
            .collect();
        let batch = backwaters_proto::kafka::batch::encode_batch(&recs).map_err(|e| AdminError::Storage(e.to_string()))?;
        let header = backwaters_proto::kafka::batch::parse_batch(&batch).map_err(|e| AdminError::Storage(e.to_string()))?;
        let ack = self
            .produce(&meta, vec![(header, batch)], -1, Duration::from_secs(10))
            .await
            .map_err(|e| AdminError::Unavailable(format!("writing metadata: {e}")))?;
        let last = ack.base_offset + records.len() as i64 - 1;
        let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|a| *a >= last)).await;
        Ok(last)
    }

    /// The records a request turns into, checked against the applied metadata.
    fn plan(&self, req: ControllerRequest) -> Result<Vec<MetaRecord>, AdminError> {
        let next_uid = || self.topics().iter().flat_map(|t| t.record.partition_uids.clone()).max().unwrap_or(METADATA_UID) + 1;
        let members = self.inner.settings.members();
        Ok(match req {
            ControllerRequest::CreateTopic { name, partitions, replication_factor, overrides } => {
                if self.topic(&name).is_some() {
                    return Err(AdminError::TopicExists(name));
                }
                if replication_factor < 1 || replication_factor as usize > members.len() {
                    return Err(AdminError::InvalidReplicationFactor(format!("{replication_factor}; this cluster has {} node(s)", members.len())));
                }
                let first = next_uid();
                let start = (crate::group::partition_for(&name, i32::MAX) as usize) % members.len();
                let record = TopicRecord {
                    id: uuid::Uuid::new_v4().to_string(),
                    partition_uids: (0..partitions as u64).map(|i| first + i).collect(),
                    replication_factor,
                    internal: name.starts_with("__"),
                    replicas: place(&members, 0..partitions, replication_factor as usize, start),
                    overrides,
                    name,
                };
                vec![MetaRecord::Topic { record }]
            }
            ControllerRequest::DeleteTopic { name } => {
                if self.topic(&name).is_none() {
                    return Err(AdminError::UnknownTopic(name));
                }
                vec![MetaRecord::DeleteTopic { name }]
            }
            ControllerRequest::CreatePartitions { name, total } => {
                let topic = self.topic(&name).ok_or_else(|| AdminError::UnknownTopic(name.clone()))?;
                check_growth(&topic, total)?;
                let have = topic.partitions.len() as i32;
                let mut record = topic.record.clone();
                let first = next_uid();
                let start = (crate::group::partition_for(&name, i32::MAX) as usize) % members.len();
                let rf = record.replication_factor as usize;
                while record.replicas.len() < have as usize {
                    record.replicas.push(vec![self.inner.settings.node_id]);
                }
                record.partition_uids.extend((0..(total - have) as u64).map(|i| first + i));
                record.replicas.extend(place(&members, have..total, rf.min(members.len()), start));
                vec![MetaRecord::Topic { record }]
            }
            ControllerRequest::AlterConfig { ref name, .. } => {
                let topic = self.topic(name).ok_or_else(|| AdminError::UnknownTopic(name.clone()))?;
                let mut record = topic.record.clone();
                record.overrides = altered(&record.overrides, &req)?;
                vec![MetaRecord::Topic { record }]
            }
            ControllerRequest::ProducerIds { node } => {
                let first = self.max_producer_block_end().max(1);
                vec![MetaRecord::ProducerIds { node, first, count: PRODUCER_ID_BLOCK }]
            }
            ControllerRequest::Leader { uid, node, term } => vec![MetaRecord::Leader { uid, node, term }],
            ControllerRequest::Drain { node, drained } => {
                if !self.inner.settings.members().iter().any(|m| m.id == node) {
                    return Err(AdminError::InvalidConfig(format!("node {node} is not in the cluster")));
                }
                vec![MetaRecord::Drain { node, drained }]
            }
            ControllerRequest::Liveness { node, alive } => {
                if !self.inner.settings.members().iter().any(|m| m.id == node) {
                    return Err(AdminError::InvalidConfig(format!("node {node} is not in the cluster")));
                }
                vec![MetaRecord::Liveness { node, alive }]
            }
            ControllerRequest::LogStart { uid, offset } => {
                if uid != METADATA_UID && !self.topics().iter().any(|t| t.record.partition_uids.contains(&uid)) {
                    return Err(AdminError::InvalidConfig(format!("no partition has uid {uid}")));
                }
                vec![MetaRecord::LogStart { uid, offset }]
            }
            ControllerRequest::TombstoneHorizon { uid, offset } => {
                if !self.topics().iter().any(|t| t.record.partition_uids.contains(&uid)) {
                    return Err(AdminError::InvalidConfig(format!("no partition has uid {uid}")));
                }
                vec![MetaRecord::TombstoneHorizon { uid, offset }]
            }
            ControllerRequest::Scram { user, mechanism, credential } => {
                let mech = backwaters_proto::sasl::Mechanism::parse(&mechanism)
                    .filter(|m| backwaters_proto::sasl::Mechanism::SCRAM.contains(m))
                    .ok_or_else(|| AdminError::InvalidConfig(format!("unknown SCRAM mechanism {mechanism:?}")))?;
                if credential.is_none() && self.scram_credential(&user, mech).is_none() {
                    return Err(AdminError::NotFound(format!("user {user:?} has no {mechanism} credential")));
                }
                vec![MetaRecord::Scram { user, mechanism, credential }]
            }
            ControllerRequest::Quotas { entity, ops } => {
                let parts: Vec<(String, Option<String>)> = entity.clone().into_iter().collect();
                crate::quota::validate_entity(&parts).map_err(AdminError::InvalidConfig)?;
                for (key, value) in &ops {
                    crate::quota::validate_value(key, value.map(|v| v.0)).map_err(AdminError::InvalidConfig)?;
                }
                ops.into_iter().map(|(key, value)| MetaRecord::Quota { entity: entity.clone(), key, value }).collect()
            }
            ControllerRequest::ElectPreferred { uids } => vec![MetaRecord::ElectPreferred { uids }],
            ControllerRequest::Txn { op } => self.plan_txn(op)?,
            ControllerRequest::Barrier => Vec::new(),
            ControllerRequest::Acls { create, delete } => {
                let have = self.acls();
                let mut records = Vec::new();
                for binding in create {
                    if let Some(why) = binding.invalid() {
                        return Err(AdminError::InvalidConfig(why));
                    }
                    if have.binary_search(&binding).is_err() && !records.iter().any(|r| matches!(r, MetaRecord::Acl { binding: b, .. } if *b == binding)) {
                        records.push(MetaRecord::Acl { binding, present: true });
                    }
                }
                for binding in delete {
                    if have.binary_search(&binding).is_ok() {
                        records.push(MetaRecord::Acl { binding, present: false });
                    }
                }
                records
            }
        })
    }

    fn max_producer_block_end(&self) -> i64 {
        *self.inner.producer_block_end.lock().expect("lock")
    }
}
