//! Syslog over UDP (one message per datagram), TCP and TLS (RFC 6587 framing, RFC 5425).
//!
//! A stream connection is a reader and a writer joined by a small bounded queue: the reader
//! frames and parses, the writer takes everything queued and writes it in one durable
//! append. Under load each append carries what arrived during the previous one; when the
//! queue is full the reader stops reading, so TCP pushes back on the sender. UDP cannot push
//! back: what does not fit the queue is dropped and counted.
//!
//! With `[authorization]`, a sender needs WRITE on the topics its messages go to (Kafka's
//! ACLs, as a producer): a TLS sender with a client certificate (`tls_client_ca`) is the
//! certificate's subject, any other one `User:ANONYMOUS` from its address. A refused
//! message closes a stream connection; refused datagrams are dropped. Both are counted in
//! `backwaters_ingest_denied_total`.

use super::sink::{Prepared, Sink, WriteError};
use crate::access::Caller;
use backwaters_proto::syslog::framing::next_frame;
use bytes::BytesMut;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch, Semaphore};

/// Batches a connection may have queued for its writer.
pub const QUEUE_BATCHES: usize = 4;
/// Messages per queued batch.
pub const BATCH_MESSAGES: usize = 4_096;
/// Read buffer per connection.
const READ_BYTES: usize = 256 * 1024;

/// Writes, retrying what may succeed later; gives up only when the listener stops.
pub async fn write_retrying(sink: &Sink, records: Vec<Prepared>, stop: &watch::Receiver<bool>) -> Result<(), WriteError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match sink.write(records.clone()).await {
            Ok(_) => return Ok(()),
            Err(WriteError::Retriable(e)) if !*stop.borrow() => {
                tracing::warn!(listener = %sink.name, error = %e, "write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The writer half of a connection: drains the queue into durable appends. `caller`: a
/// stream's sender, checked against the ACLs once per drained batch (off the read path); what
/// it may not write is left out, and the refusal ends the connection. UDP checks each
/// datagram's sender before queueing (`None` here).
async fn writer(sink: Arc<Sink>, mut rx: mpsc::Receiver<Vec<Prepared>>, caller: Option<Caller>, stop: watch::Receiver<bool>) -> Result<(), WriteError> {
    while let Some(mut batch) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
        }
        let refused = caller.as_ref().and_then(|c| sink.authorize(c, &mut batch));
        if !batch.is_empty() {
            write_retrying(&sink, batch, &stop).await?;
        }
        if let Some(why) = refused {
            return Err(WriteError::Refused(format!("refused by the ACLs: {why}")));
        }
    }
    Ok(())
}

pub async fn serve_udp(sink: Arc<Sink>, socket: std::net::UdpSocket, mut stop: watch::Receiver<bool>) -> Result<(), String> {
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    let socket = tokio::net::UdpSocket::from_std(socket).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
    let w = tokio::spawn(writer(sink.clone(), rx, None, stop.clone()));
    let mut buf = vec![0u8; 65_536 + 1];
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => r.map_err(|e| format!("udp receive: {e}"))?,
            _ = stop.changed() => break,
        };
        let mut received = vec![(from.ip(), sink.syslog(&buf[..n], Some(from.ip()), "syslog"))];
        // Take whatever else already arrived, without waiting.
        while received.len() < BATCH_MESSAGES {
            match socket.try_recv_from(&mut buf) {
                Ok((n, from)) => received.push((from.ip(), sink.syslog(&buf[..n], Some(from.ip()), "syslog"))),
                Err(_) => break,
            }
        }
        // Datagrams carry no identity: each sender is User:ANONYMOUS from its address.
        let batch = sink.authorize_each(received);
        if batch.is_empty() {
            continue;
        }
        let len = batch.len() as u64;
        if let Err(e) = tx.try_send(batch) {
            sink.counters.dropped.add(len);
            if matches!(e, mpsc::error::TrySendError::Closed(_)) {
                break;
            }
        }
    }
    drop(tx);
    match w.await {
        Ok(Err(e)) => Err(format!("udp writer: {e}")),
        _ => Ok(()),
    }
}

pub type TlsAcceptor = tokio_rustls::TlsAcceptor;

/// Accepts connections (up to the listener's max_connections) and runs `handle` on each in
/// its own task, counting and logging them. TCP syslog, TLS syslog and RELP share it.
pub async fn accept_loop<F, Fut>(sink: Arc<Sink>, listener: std::net::TcpListener, mut stop: watch::Receiver<bool>, handle: F) -> Result<(), String>
where
    F: Fn(Arc<Sink>, tokio::net::TcpStream, SocketAddr, watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let permits = Arc::new(Semaphore::new(sink.cfg.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => r.map_err(|e| format!("accept: {e}"))?,
            _ = stop.changed() => return Ok(()),
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(listener = %sink.name, %peer, "connection refused: too many connections");
            continue;
        };
        let conn = handle(sink.clone(), stream, peer, stop.clone());
        let sink = sink.clone();
        tokio::spawn(async move {
            sink.counters.connections_opened.inc();
            match conn.await {
                Ok(()) => tracing::debug!(listener = %sink.name, %peer, "connection closed"),
                Err(e) => tracing::warn!(listener = %sink.name, %peer, error = %e, "connection closed"),
            }
            sink.counters.connections_closed.inc();
            drop(permit);
        });
    }
}

pub async fn serve_tcp(sink: Arc<Sink>, listener: std::net::TcpListener, tls: Option<TlsAcceptor>, stop: watch::Receiver<bool>) -> Result<(), String> {
    accept_loop(sink, listener, stop, move |sink, stream, peer, stop| {
        let tls = tls.clone();
        async move {
            match tls {
                None => {
                    let caller = sink.caller(None, Some(peer.ip()));
                    connection(sink, stream, peer, caller, stop).await
                }
                Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(s)) => {
                        let subject = s.get_ref().1.peer_certificates().and_then(|c| c.first().and_then(crate::tls::principal_of));
                        let caller = sink.caller(subject, Some(peer.ip()));
                        connection(sink, s, peer, caller, stop).await
                    }
                    Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
                    Err(_) => Err("TLS handshake timed out".into()),
                },
            }
        }
    })
    .await
}

/// One stream: frames in, durable appends out. A message `caller` may not write (ACLs) closes
/// the connection: the sender learns of it and keeps what it could not deliver.
async fn connection<S: AsyncRead + Unpin>(sink: Arc<Sink>, mut s: S, peer: SocketAddr, caller: Caller, stop: watch::Receiver<bool>) -> Result<(), String> {
    let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
    let w = tokio::spawn(writer(sink.clone(), rx, Some(caller), stop.clone()));
    let ip: Option<IpAddr> = Some(peer.ip());
    let max = sink.cfg.max_message_bytes;
    let mut buf = BytesMut::with_capacity(READ_BYTES);
    let mut result = Ok(());
    // One watcher for the whole connection (not one per read).
    let mut stopping = stop.clone();
    'read: loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_BYTES);
        }
        let n = tokio::select! {
            r = s.read_buf(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => { result = Err(format!("read: {e}")); break },
            },
            _ = stopping.changed() => break,
            // The writer stopped (a refusal or a failed write): close now, not at the next read.
            _ = tx.closed() => break,
        };
        let mut batch = Vec::new();
        loop {
            match next_frame(&mut buf, max) {
                Ok(Some(f)) => batch.push(sink.syslog(&f, ip, "syslog")),
                Ok(None) => break,
                Err(e) => {
                    sink.counters.dropped.inc();
                    result = Err(e.to_string());
                    let _ = tx.send(batch).await;
                    break 'read;
                }
            }
            if batch.len() >= BATCH_MESSAGES {
                if tx.send(std::mem::take(&mut batch)).await.is_err() {
                    break 'read;
                }
            }
        }
        if n == 0 {
            // The sender closed: a last line without LF still counts.
            if !buf.is_empty() && !buf[0].is_ascii_digit() {
                batch.push(sink.syslog(&buf.split(), ip, "syslog"));
            }
            let _ = tx.send(batch).await;
            break;
        }
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            break;
        }
    }
    drop(tx);
    match w.await {
        Ok(Err(e)) => Err(format!("write: {e}")),
        _ => result,
    }
}
