//! An actor that owns a long-running task (an accept loop, a server). When the task ends
//! with an error the actor fails, and its supervisor starts it again, which calls `run` anew.

use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

pub type ServiceFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Starts the service; it must return when `stop` turns true.
pub type RunFn = Arc<dyn Fn(watch::Receiver<bool>) -> ServiceFuture + Send + Sync>;

#[derive(Clone)]
pub struct ServiceActor;

pub enum ServiceMsg {
    Exited(Result<(), String>),
}

// Local only (ractor's `cluster` feature wants every message type to say so).
impl ractor::Message for ServiceMsg {}

pub struct ServiceState {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Actor for ServiceActor {
    type Msg = ServiceMsg;
    type State = ServiceState;
    type Arguments = RunFn;

    async fn pre_start(&self, me: ActorRef<ServiceMsg>, run: RunFn) -> Result<ServiceState, ActorProcessingErr> {
        let (stop, stop_rx) = watch::channel(false);
        let fut = run(stop_rx);
        let task = tokio::spawn(async move {
            // A panic in the service must fail the actor too (so it is restarted), not end
            // the task silently with the port left unserved.
            let r = match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(fut)).await {
                Ok(r) => r,
                Err(panic) => Err(format!("service panicked: {}", panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("(no message)"))),
            };
            let _ = me.cast(ServiceMsg::Exited(r));
        });
        Ok(ServiceState { stop, task })
    }

    async fn post_stop(&self, _me: ActorRef<ServiceMsg>, st: &mut ServiceState) -> Result<(), ActorProcessingErr> {
        let _ = st.stop.send(true);
        // Give the service a moment to drain, then make sure it is gone.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut st.task).await;
        st.task.abort();
        Ok(())
    }

    async fn handle(&self, me: ActorRef<ServiceMsg>, msg: ServiceMsg, _st: &mut ServiceState) -> Result<(), ActorProcessingErr> {
        match msg {
            ServiceMsg::Exited(Ok(())) => {
                me.stop(Some("service finished".into()));
                Ok(())
            }
            ServiceMsg::Exited(Err(e)) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::Actor;

    /// A service whose task panics fails its actor (so a supervisor restarts it) instead of
    /// leaving a live actor with nothing behind it.
    #[tokio::test]
    async fn a_panicking_service_fails_its_actor() {
        let run: RunFn = Arc::new(|_stop| Box::pin(async { panic!("boom") }));
        let (_actor, handle) = Actor::spawn(None, ServiceActor, run).await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), handle).await.expect("the actor stopped").unwrap();
    }
}
