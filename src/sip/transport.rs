//! SIP transports: a UDP socket and a TCP listener on the same address.
//!
//! UDP datagrams are read by the endpoint itself. Each TCP connection gets a
//! reader task that frames the byte stream into messages (RFC 3261 §18.3:
//! Content-Length is mandatory on streams) and answers RFC 5626 CRLF
//! keep-alive pings, and a writer task fed by a bounded channel. Framed
//! messages go to the endpoint over one bounded channel.

use super::parse::{frame_stream, Frame};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl TransportKind {
    /// Reliable transports switch off retransmission timers (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        matches!(self, TransportKind::Tcp)
    }

    /// The token used in Via (`SIP/2.0/UDP`).
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        }
    }
}

/// Where a message came from or goes to: transport and remote address. For
/// TCP the endpoint keeps one connection per remote address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub kind: TransportKind,
    pub addr: SocketAddr,
}

/// What the TCP side tells the endpoint.
#[derive(Debug)]
pub enum TcpEvent {
    /// A new connection; messages to `addr` go into `writer`.
    Opened {
        addr: SocketAddr,
        writer: mpsc::Sender<Bytes>,
    },
    /// One complete framed message.
    Message {
        addr: SocketAddr,
        bytes: Bytes,
    },
    Closed {
        addr: SocketAddr,
    },
}

/// Messages queued per TCP connection before the writer applies back-pressure.
const TCP_WRITE_QUEUE: usize = 256;
/// Most simultaneous TCP connections; more are refused.
pub const MAX_TCP_CONNECTIONS: usize = 4096;

/// Accepts TCP connections until `shutdown`, one reader and one writer task each.
pub async fn serve_tcp(
    listener: TcpListener,
    events: mpsc::Sender<TcpEvent>,
    max_message: usize,
    shutdown: CancellationToken,
) {
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "tcp accept failed");
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%addr, "too many TCP connections; refusing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let events = events.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            connection(stream, addr, events, max_message, shutdown).await;
            drop(permit);
        });
    }
}

/// Opens a connection to `addr` for a request we send over TCP to a peer
/// that has none open (calls to agents registered over TCP use theirs).
pub async fn connect_tcp(
    addr: SocketAddr,
    events: mpsc::Sender<TcpEvent>,
    max_message: usize,
    shutdown: CancellationToken,
) -> std::io::Result<mpsc::Sender<Bytes>> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let (tx, rx) = mpsc::channel(TCP_WRITE_QUEUE);
    tokio::spawn(run_connection(
        stream,
        addr,
        events,
        max_message,
        shutdown,
        tx.clone(),
        rx,
        false,
    ));
    Ok(tx)
}

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    events: mpsc::Sender<TcpEvent>,
    max_message: usize,
    shutdown: CancellationToken,
) {
    let (tx, rx) = mpsc::channel(TCP_WRITE_QUEUE);
    run_connection(stream, addr, events, max_message, shutdown, tx, rx, true).await
}

#[allow(clippy::too_many_arguments)]
async fn run_connection(
    stream: TcpStream,
    addr: SocketAddr,
    events: mpsc::Sender<TcpEvent>,
    max_message: usize,
    shutdown: CancellationToken,
    tx: mpsc::Sender<Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
    announce: bool,
) {
    let (mut reader, mut writer) = stream.into_split();
    if events
        .send(TcpEvent::Opened {
            addr,
            writer: tx.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    let _ = announce;
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut buf = BytesMut::with_capacity(4096);
    'read: loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = reader.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        let _ = n;
        loop {
            match frame_stream(&buf) {
                Ok(Frame::Incomplete) => {
                    if buf.len() > max_message {
                        debug!(%addr, "tcp message larger than the limit; closing");
                        break 'read;
                    }
                    break;
                }
                Ok(Frame::KeepAlive(n)) => {
                    // RFC 5626 §3.5.1: a double-CRLF ping is answered by a CRLF pong.
                    let ping = buf.split_to(n);
                    if ping.len() >= 4 {
                        let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                    }
                }
                Ok(Frame::Message(n)) => {
                    let bytes = buf.split_to(n).freeze();
                    if events
                        .send(TcpEvent::Message { addr, bytes })
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Err(e) => {
                    // A stream that cannot be framed cannot be resynchronised:
                    // answer 400 if the request can be addressed, then close.
                    debug!(%addr, error = %e, "unframeable tcp stream; closing");
                    if let Some(resp) = super::validate::response_to_unparsable(&buf, &e) {
                        let _ = tx.try_send(resp.to_bytes());
                    }
                    break 'read;
                }
            }
        }
    }
    // The writer ends once every sender is gone (ours now, the endpoint's on
    // `Closed`), after writing what was queued — responses to the last
    // messages read included.
    drop(tx);
    let _ = events.send(TcpEvent::Closed { addr }).await;
    let _ = write_task.await;
}
