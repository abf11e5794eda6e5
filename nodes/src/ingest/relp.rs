//! RELP (rsyslog's omrelp): each `syslog` frame is answered `200 OK` only after its record is
//! durable (acks=all); a write that fails closes the connection unanswered, so rsyslog
//! resends every unacknowledged message after it reconnects. With `[authorization]`, a
//! message whose topic `User:ANONYMOUS` (from the sender's address) may not WRITE is
//! answered `500` with the reason.
//!
//! A connection is a reader (frames, parses) and a writer (appends, then answers in order)
//! joined by a bounded queue; answers to `open` and `close` go through the same queue so
//! every answer leaves in frame order.

use super::sink::{Prepared, Sink};
use super::syslog::{accept_loop, write_retrying, BATCH_MESSAGES, QUEUE_BATCHES};
use backwaters_proto::syslog::relp::{encode, next_frame};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

enum Item {
    /// Records with the transaction numbers to acknowledge once they are durable.
    Records(Vec<(u64, Prepared)>),
    /// An answer that needs no write (open, unknown commands).
    Answer(Vec<u8>),
    /// Answer, then close.
    Close(u64),
}

const OFFERS: &str = "relp_version=0\nrelp_software=backwaters\ncommands=syslog";

pub async fn serve(sink: Arc<Sink>, listener: std::net::TcpListener, stop: watch::Receiver<bool>) -> Result<(), String> {
    accept_loop(sink, listener, stop, connection).await
}

async fn connection(sink: Arc<Sink>, stream: TcpStream, peer: SocketAddr, stop: watch::Receiver<bool>) -> Result<(), String> {
    // RELP has no login: the sender is User:ANONYMOUS from its address for the ACLs.
    let caller = sink.caller(None, Some(peer.ip()));
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Item>(QUEUE_BATCHES);
    let wsink = sink.clone();
    let wstop = stop.clone();
    let writer = tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            let mut items = vec![item];
            while let Ok(more) = rx.try_recv() {
                items.push(more);
            }
            // One durable append for every record queued so far, then the answers in order.
            let records: Vec<Prepared> = items.iter().flat_map(|i| if let Item::Records(r) = i { r.iter().map(|(_, p)| p.clone()).collect() } else { vec![] }).collect();
            if !records.is_empty() {
                write_retrying(&wsink, records, &wstop).await.map_err(|e| format!("write failed, closing unanswered so the sender resends: {e}"))?;
            }
            let mut out = Vec::new();
            let mut close = false;
            for item in items {
                match item {
                    Item::Records(r) => r.iter().for_each(|(txnr, _)| out.extend(encode(*txnr, "rsp", b"200 OK"))),
                    Item::Answer(a) => out.extend(a),
                    Item::Close(txnr) => {
                        out.extend(encode(txnr, "rsp", b""));
                        close = true;
                    }
                }
            }
            wr.write_all(&out).await.map_err(|e| format!("answer: {e}"))?;
            if close {
                let _ = wr.shutdown().await;
                return Ok(());
            }
        }
        Ok::<(), String>(())
    });
    let max = sink.cfg.max_message_bytes;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut opened = false;
    // One watcher for the whole connection (not one per read).
    let mut stopping = stop.clone();
    let result = 'read: loop {
        let n = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(600), rd.read_buf(&mut buf)) => match r {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => break Err(format!("read: {e}")),
                Err(_) => break Err("idle for 10 minutes".into()),
            },
            _ = stopping.changed() => break Ok(()),
        };
        if n == 0 {
            break if buf.is_empty() { Ok(()) } else { Err("connection ended inside a frame".into()) };
        }
        let mut records = Vec::new();
        loop {
            let frame = match next_frame(&mut buf, max) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    sink.counters.dropped.inc();
                    break 'read Err(e.to_string());
                }
            };
            let item = match frame.command.as_str() {
                "open" => {
                    opened = true;
                    Some(Item::Answer(encode(frame.txnr, "rsp", format!("200 OK\n{OFFERS}").as_bytes())))
                }
                _ if !opened => break 'read Err(format!("{} before open", frame.command)),
                "syslog" => {
                    let record = sink.syslog(&frame.data, Some(peer.ip()), "relp");
                    if let Some(why) = sink.refusal(&caller, &record) {
                        // Answered in frame order: what came before goes first. rsyslog keeps
                        // a refused message and retries it.
                        if !records.is_empty() && tx.send(Item::Records(std::mem::take(&mut records))).await.is_err() {
                            break 'read Err("writer stopped".into());
                        }
                        Some(Item::Answer(encode(frame.txnr, "rsp", format!("500 {why}").as_bytes())))
                    } else {
                        records.push((frame.txnr, record));
                        (records.len() >= BATCH_MESSAGES).then(|| Item::Records(std::mem::take(&mut records)))
                    }
                }
                "close" => {
                    if !records.is_empty() {
                        let _ = tx.send(Item::Records(std::mem::take(&mut records))).await;
                    }
                    let _ = tx.send(Item::Close(frame.txnr)).await;
                    break 'read Ok(());
                }
                other => Some(Item::Answer(encode(frame.txnr, "rsp", format!("500 unknown command {other}").as_bytes()))),
            };
            if let Some(item) = item {
                if tx.send(item).await.is_err() {
                    break 'read Err("writer stopped".into());
                }
            }
        }
        if !records.is_empty() && tx.send(Item::Records(records)).await.is_err() {
            break Err("writer stopped".into());
        }
    };
    drop(tx);
    match writer.await {
        Ok(Err(e)) => Err(e),
        Err(e) => Err(e.to_string()),
        Ok(Ok(())) => result,
    }
}
