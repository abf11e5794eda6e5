//! HTTP endpoint for operators: `/metrics` (Prometheus) and `/healthz`.

use axum::routing::get;
use axum::Router;
use backwaters_actors::node::Node;
use tokio::sync::watch;

pub async fn serve(node: Node, listener: std::net::TcpListener, mut stop: watch::Receiver<bool>) -> Result<(), String> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let app = Router::new()
        .route("/metrics", get(move || {
            let node = node.clone();
            async move { node.metrics().render() }
        }))
        .route("/healthz", get(|| async { "ok\n" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await
        .map_err(|e| format!("metrics endpoint: {e}"))
}
