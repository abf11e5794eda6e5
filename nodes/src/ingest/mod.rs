//! Ingest listeners: syslog (UDP, TCP, TLS), RELP and HTTP, each a supervised service actor
//! under the node's listeners supervisor (a crash restarts that listener, not the node).
//!
//! # Layout
//! - [`config`]: `[[nodes.ingest]]` entries, routes, validation.
//! - [`sink`]: parse, route, key, batch and write durably (every listener ends here).
//! - [`syslog`]: UDP, TCP and TLS listeners; [`relp`]: RELP; [`http`]: REST proxy, NDJSON, HEC.

pub mod config;
pub mod http;
pub mod relp;
pub mod sink;
pub mod syslog;

use backwaters_actors::node::Node;
use backwaters_actors::service::RunFn;
use config::{IngestConfig, Kind};
use std::sync::Arc;

/// Binds every listener of `cfgs` (errors name the listener) and starts each as a service.
/// Returns the bound address of each, in order.
pub async fn start(node: &Node, cfgs: &[IngestConfig], access: &Arc<crate::access::Access>) -> Result<Vec<String>, String> {
    let mut addrs = Vec::new();
    for cfg in cfgs {
        let name = cfg.name();
        let sink = Arc::new(sink::Sink::new(node.clone(), cfg.clone(), access.clone()).map_err(|e| format!("ingest {name}: {e}"))?);
        let bind_err = |e: std::io::Error| format!("ingest {name}: cannot listen on {}: {e}", cfg.listen);
        let run: RunFn = match cfg.kind {
            Kind::SyslogUdp => {
                let sock = Arc::new(std::net::UdpSocket::bind(&cfg.listen).map_err(bind_err)?);
                addrs.push(sock.local_addr().map_err(|e| e.to_string())?.to_string());
                Arc::new(move |stop| {
                    let (sink, sock) = (sink.clone(), sock.clone());
                    Box::pin(async move { syslog::serve_udp(sink, sock.try_clone().map_err(|e| e.to_string())?, stop).await })
                })
            }
            Kind::SyslogTcp | Kind::SyslogTls | Kind::Relp | Kind::Http => {
                let l = Arc::new(std::net::TcpListener::bind(&cfg.listen).map_err(bind_err)?);
                addrs.push(l.local_addr().map_err(|e| e.to_string())?.to_string());
                let tls = match (cfg.kind, &cfg.tls_cert, &cfg.tls_key) {
                    (Kind::SyslogTls, Some(c), Some(k)) => {
                        let client_ca = cfg.tls_client_ca.as_deref().map(|p| ("tls_client_ca", p));
                        Some(crate::tls::acceptor_from_files(("tls_cert", c), ("tls_key", k), client_ca).map_err(|e| format!("ingest {name}: {e}"))?)
                    }
                    (Kind::SyslogTls, ..) => return Err(format!("ingest {name}: syslog-tls needs tls_cert and tls_key")),
                    _ => None,
                };
                let (kind, access) = (cfg.kind, access.clone());
                Arc::new(move |stop| {
                    let (sink, l, tls, access) = (sink.clone(), l.clone(), tls.clone(), access.clone());
                    Box::pin(async move {
                        let l = l.try_clone().map_err(|e| e.to_string())?;
                        match kind {
                            Kind::Relp => relp::serve(sink, l, stop).await,
                            Kind::Http => http::serve(sink, access, l, stop).await,
                            _ => syslog::serve_tcp(sink, l, tls, stop).await,
                        }
                    })
                })
            }
        };
        node.start_service(&format!("ingest-{}", name.replace(['@', ':', '.'], "-")), run, true).await?;
        tracing::info!(listener = %name, topic = %cfg.topic, "ingest listener started");
    }
    Ok(addrs)
}
