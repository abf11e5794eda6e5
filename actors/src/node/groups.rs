//! Group coordination on a node: `__consumer_offsets` and one coordinator per partition this
//! node leads, started and reloaded as leadership moves.

use super::*;

impl Node {

    /// Creates `__consumer_offsets` if needed and starts one coordinator per partition (once).
    pub async fn ensure_groups(&self) -> Result<(), GroupError> {
        self.inner.groups_ready.get_or_try_init(|| self.start_groups()).await.map(|_| ())
    }

    async fn start_groups(&self) -> Result<(), GroupError> {
        let topic = match self.topic(OFFSETS_TOPIC) {
            Some(t) => t,
            None => {
                let overrides = BTreeMap::from([
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    ("retention.ms".to_string(), "-1".to_string()),
                    ("max.message.bytes".to_string(), (16 << 20).to_string()),
                ]);
                // Like Kafka's offsets.topic.replication.factor: 3 whatever the topic default.
                let rf = self.inner.settings.members().len().min(3) as i16;
                match self.create_topic(OFFSETS_TOPIC, self.inner.settings.groups.offsets_topic_partitions, rf, overrides, false).await {
                    Ok(t) => t,
                    Err(AdminError::TopicExists(_)) => self.topic(OFFSETS_TOPIC).ok_or(GroupError::CoordinatorNotAvailable)?,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC}");
                        return Err(GroupError::CoordinatorNotAvailable);
                    }
                }
            }
        };
        // Coordinators follow leadership (see `refresh_coordinator`); this covers partitions
        // whose leader was elected before the topic was known here.
        for shared in topic.partitions.iter().filter(|s| s.actor().is_some()) {
            let (node, shared) = (self.clone(), shared.clone());
            tokio::spawn(async move { node.refresh_coordinator(shared).await });
        }
        Ok(())
    }

    /// Keeps the coordinator of `__consumer_offsets` partition `shared` in step with the
    /// local replica's leadership: running while it leads, stopped otherwise. A coordinator's
    /// state is only as fresh as the log it replayed, so every new term loads afresh, and only
    /// once the log this leader inherited is committed (its first entry of the term commits
    /// everything before it): a coordinator that had run as a follower, or that loaded before
    /// the commit, would answer from offsets and generations that are not the group's.
    pub(crate) async fn refresh_coordinator(&self, shared: Arc<PartitionShared>) {
        let me = self.inner.settings.node_id;
        let leads = |s: &PartitionShared| s.leader() == Some(me) && s.actor().is_some();
        let term = shared.leader_term();
        if leads(&shared) {
            let inherited = shared.log_end_offset();
            let mut hw = shared.subscribe();
            while *hw.borrow_and_update() < inherited {
                if !leads(&shared) || shared.leader_term() != term {
                    return; // the change that ended this term refreshes again
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), hw.changed()).await;
            }
        }
        let mut running = self.inner.coordinators.lock().await;
        if shared.leader_term() != term {
            return;
        }
        let p = shared.partition;
        let leads = leads(&shared);
        if leads && running.get(&p) == Some(&term) {
            return;
        }
        if running.remove(&p).is_some() {
            let _ = ractor::call_t!(self.inner.groups_sup, SupervisorMsg::StopChild, 15_000, self.coordinator_name(p));
        }
        if !leads {
            return;
        }
        let (node, s, settings, clock, metrics) = (self.downgrade(), shared.clone(), self.inner.settings.groups, self.inner.steady.clone(), self.inner.metrics.clone());
        let spec = ChildSpec::new(self.coordinator_name(p), Coordinator, move || CoordinatorArgs {
            node: node.clone(),
            metrics: metrics.clone(),
            shared: s.clone(),
            settings,
            clock: clock.clone(),
        });
        match ractor::call!(self.inner.groups_sup, SupervisorMsg::StartChild, spec) {
            Ok(Ok(())) => {
                tracing::info!(partition = p, term, "group coordinator loaded as leader");
                running.insert(p, term);
            }
            Ok(Err(e)) => tracing::error!(partition = p, error = %e, "cannot start a group coordinator"),
            Err(e) => tracing::error!(partition = p, error = %e, "cannot start a group coordinator"),
        }
    }

    pub(super) fn coordinator_name(&self, partition: i32) -> String {
        format!("{}/g{partition}", self.prefix())
    }

    /// The node leading `group`'s `__consumer_offsets` partition (its coordinator).
    pub fn group_leader(&self, group: &str) -> Option<i32> {
        self.partition(OFFSETS_TOPIC, self.group_partition(group))?.leader()
    }

    /// The `__consumer_offsets` partition that holds `group`.
    pub fn group_partition(&self, group: &str) -> i32 {
        let n = self.topic(OFFSETS_TOPIC).map(|t| t.partitions.len() as i32).unwrap_or(self.inner.settings.groups.offsets_topic_partitions);
        crate::group::partition_for(group, n)
    }

    /// The coordinator actor of `group` (this node coordinates every group while it is the
    /// only node).
    pub async fn coordinator(&self, group: &str) -> Result<ActorRef<CoordinatorMsg>, GroupError> {
        crate::group::validate_group_id(group)?;
        self.ensure_groups().await?;
        if self.group_leader(group) != Some(self.inner.settings.node_id) {
            return Err(GroupError::NotCoordinator);
        }
        let name = self.coordinator_name(self.group_partition(group));
        // None while the actor restarts (it replays its partition first): clients retry.
        ractor::registry::where_is(name).map(ActorRef::from).ok_or(GroupError::CoordinatorLoadInProgress)
    }

    /// Asks the coordinator of `group`. A coordinator that is missing or restarting, or that
    /// does not answer within `timeout`, is a retriable error for the client.
    pub async fn ask_coordinator<R: Send + 'static>(&self, group: &str, timeout: Duration, build: impl FnOnce(ractor::RpcReplyPort<R>) -> CoordinatorMsg) -> Result<R, GroupError> {
        let actor = self.coordinator(group).await?;
        match actor.call(build, Some(timeout)).await {
            Ok(ractor::rpc::CallResult::Success(r)) => Ok(r),
            Ok(ractor::rpc::CallResult::Timeout) => Err(GroupError::RebalanceInProgress),
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(GroupError::CoordinatorNotAvailable),
        }
    }

    /// Every group this node coordinates (as in Kafka, a client lists every broker's).
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, GroupError> {
        if self.topic(OFFSETS_TOPIC).is_none() {
            return Ok(vec![]);
        }
        self.ensure_groups().await?;
        let running: Vec<i32> = self.inner.coordinators.lock().await.keys().copied().collect();
        let mut all = Vec::new();
        for p in running {
            let actor: ActorRef<CoordinatorMsg> = ractor::registry::where_is(self.coordinator_name(p)).map(ActorRef::from).ok_or(GroupError::CoordinatorLoadInProgress)?;
            all.extend(ractor::call_t!(actor, CoordinatorMsg::List, 10_000).map_err(|_| GroupError::CoordinatorNotAvailable)?);
        }
        all.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(all)
    }
}
