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
            async move {
                let mut text = node.metrics().render();
                // Restart counts live with the supervisors; read them at scrape time.
                let restarts: u64 = node.supervision_tree().await.iter().map(|(_, c)| c.restarts as u64).sum();
                text.push_str(&format!("# HELP backwaters_actor_restarts_total Actors restarted by their supervisor\n# TYPE backwaters_actor_restarts_total counter\nbackwaters_actor_restarts_total {restarts}\n"));
                text.push_str("# HELP backwaters_partition_high_watermark Committed offset end of a partition\n# TYPE backwaters_partition_high_watermark gauge\n");
                for t in node.topics() {
                    for p in &t.partitions {
                        text.push_str(&format!("backwaters_partition_high_watermark{{topic=\"{}\",partition=\"{}\"}} {}\n", t.record.name, p.partition, p.high_watermark()));
                    }
                }
                crate::process_metrics::render(&mut text);
                text
            }
        }))
        .route("/healthz", get(|| async { "ok\n" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await
        .map_err(|e| format!("metrics endpoint: {e}"))
}
