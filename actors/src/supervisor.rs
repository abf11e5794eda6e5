//! A one-for-one supervisor with an explicit restart policy.
//!
//! ractor ships no restart strategies (its default stops the parent when a child dies), so
//! this is ours: each child is started from a [`ChildSpec`] (a factory that can be called
//! again), a child that fails or stops unasked is started again, and a child that needs more
//! than `max_restarts` restarts within `window` makes the supervisor fail, which escalates the
//! failure to its own supervisor.

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Restart up to `max_restarts` times within `window`, then escalate.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    pub max_restarts: usize,
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy { max_restarts: 5, window: Duration::from_secs(10) }
    }
}

type SpawnFuture = Pin<Box<dyn Future<Output = Result<ActorCell, String>> + Send>>;

/// How to (re)start one child: the factory is handed the supervisor to link to.
#[derive(Clone)]
pub struct ChildSpec {
    pub name: String,
    pub start: Arc<dyn Fn(ActorCell) -> SpawnFuture + Send + Sync>,
}

impl ChildSpec {
    /// A child spec for actor `actor` started with `args()` under `name`.
    pub fn new<A, F>(name: impl Into<String>, actor: A, args: F) -> ChildSpec
    where
        A: Actor + Clone + Sync,
        F: Fn() -> A::Arguments + Send + Sync + 'static,
    {
        let name = name.into();
        let n = name.clone();
        ChildSpec {
            name,
            start: Arc::new(move |sup: ActorCell| {
                let actor = actor.clone();
                let args = args();
                let n = n.clone();
                Box::pin(async move {
                    Actor::spawn_linked(Some(n.clone()), actor, args, sup)
                        .await
                        .map(|(r, _)| r.get_cell())
                        .map_err(|e| format!("starting {n}: {e}"))
                })
            }),
        }
    }
}

/// What a supervisor reports about a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildStatus {
    pub name: String,
    pub running: bool,
    pub restarts: u32,
    pub last_failure: Option<String>,
}

pub enum SupervisorMsg {
    StartChild(ChildSpec, RpcReplyPort<Result<(), String>>),
    StopChild(String, RpcReplyPort<bool>),
    Status(RpcReplyPort<Vec<ChildStatus>>),
    /// Stop each child and wait for it (clean shutdown); the caller then stops the supervisor.
    Shutdown(RpcReplyPort<()>),
}

// Local only (ractor's `cluster` feature wants every message type to say so).
impl ractor::Message for SupervisorMsg {}

struct Child {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    restarts: u32,
    recent: VecDeque<Instant>,
    last_failure: Option<String>,
}

pub struct SupervisorState {
    policy: RestartPolicy,
    children: BTreeMap<String, Child>,
    stopping: bool,
}

#[derive(Clone, Default)]
pub struct Supervisor;

pub struct SupervisorArgs {
    pub policy: RestartPolicy,
    pub children: Vec<ChildSpec>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, args: SupervisorArgs) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState { policy: args.policy, children: BTreeMap::new(), stopping: false };
        for spec in args.children {
            start_child(&myself, &mut state, spec).await?;
        }
        Ok(state)
    }

    async fn handle(&self, myself: ActorRef<Self::Msg>, msg: SupervisorMsg, state: &mut SupervisorState) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::StartChild(spec, reply) => {
                let r = if state.children.get(&spec.name).is_some_and(|c| c.cell.is_some()) {
                    Err(format!("child {} is already running", spec.name))
                } else {
                    start_child(&myself, state, spec).await.map_err(|e| e.to_string())
                };
                let _ = reply.send(r);
            }
            SupervisorMsg::StopChild(name, reply) => {
                let found = match state.children.remove(&name) {
                    Some(Child { cell: Some(cell), .. }) => {
                        let _ = cell.stop_and_wait(Some("stopped by supervisor".into()), Some(Duration::from_secs(10))).await;
                        true
                    }
                    Some(_) => true,
                    None => false,
                };
                let _ = reply.send(found);
            }
            SupervisorMsg::Status(reply) => {
                let s = state
                    .children
                    .values()
                    .map(|c| ChildStatus { name: c.spec.name.clone(), running: c.cell.is_some(), restarts: c.restarts, last_failure: c.last_failure.clone() })
                    .collect();
                let _ = reply.send(s);
            }
            SupervisorMsg::Shutdown(reply) => {
                state.stopping = true;
                // Stop in reverse start order (names sort the same way they were declared
                // when callers prefix them with a number).
                let cells: Vec<ActorCell> = state.children.values_mut().rev().filter_map(|c| c.cell.take()).collect();
                for cell in cells {
                    let _ = cell.stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10))).await;
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(&self, myself: ActorRef<Self::Msg>, evt: SupervisionEvent, state: &mut SupervisorState) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, format!("stopped: {}", reason.unwrap_or_default())),
            _ => return Ok(()),
        };
        let Some(name) = state.children.iter().find(|(_, c)| c.cell.as_ref().is_some_and(|x| x.get_id() == cell.get_id())).map(|(n, _)| n.clone()) else {
            return Ok(()); // a child we already stopped on purpose
        };
        if state.stopping {
            return Ok(());
        }
        let policy = state.policy;
        let child = state.children.get_mut(&name).expect("child found above");
        child.cell = None;
        tracing::warn!(supervisor = ?myself.get_name(), child = %name, %why, "child exited; restarting");
        let now = Instant::now();
        child.recent.push_back(now);
        while child.recent.front().is_some_and(|t| now.duration_since(*t) > policy.window) {
            child.recent.pop_front();
        }
        child.last_failure = Some(why.clone());
        if child.recent.len() > policy.max_restarts {
            tracing::error!(child = %name, restarts = child.recent.len(), window_ms = policy.window.as_millis() as u64, "restart budget spent; escalating");
            return Err(format!("child {name} exceeded {} restarts in {:?}: {why}", policy.max_restarts, policy.window).into());
        }
        child.restarts += 1;
        let spec = child.spec.clone();
        start_child(&myself, state, spec).await
    }
}

async fn start_child(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, spec: ChildSpec) -> Result<(), ActorProcessingErr> {
    let cell = (spec.start)(myself.get_cell()).await?;
    let name = spec.name.clone();
    let prev = state.children.remove(&name);
    state.children.insert(
        name,
        Child {
            spec,
            cell: Some(cell),
            // A restart keeps the child's history: its count, recent restarts and last failure.
            restarts: prev.as_ref().map(|p| p.restarts).unwrap_or(0),
            last_failure: prev.as_ref().and_then(|p| p.last_failure.clone()),
            recent: prev.map(|p| p.recent).unwrap_or_default(),
        },
    );
    Ok(())
}
