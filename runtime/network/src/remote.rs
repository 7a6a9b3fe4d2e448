//! The consumer side of remote channels: one TCP connection per producer worker, carrying every
//! channel this worker reads from it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use spate_api::StreamElement;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tracing::debug;

use crate::codec::ElementDecoder;
use crate::error::{NetworkError, Result};
use crate::frame::{Frame, Kind, read_frame};
use crate::gauge::BufferGauge;
use crate::registry::SubpartitionId;
use crate::server::write_frames;

/// The open channels of a connection; `None` once the connection is gone, so that a channel
/// opened after the failure learns of it instead of waiting for frames that never come.
type ChannelMap = Arc<Mutex<Option<HashMap<u64, mpsc::Sender<Result<Frame>>>>>>;

struct Connection {
    out: mpsc::UnboundedSender<Bytes>,
    channels: ChannelMap,
    next_channel: AtomicU64,
}

/// Connections outlive the tasks that open them (several tasks share one), so their sockets and
/// I/O tasks live on the worker's runtime, not on the runtime of the task thread that asked.
pub struct ConnectionManager {
    gauge: Arc<BufferGauge>,
    runtime: Handle,
    connections: tokio::sync::Mutex<HashMap<String, Arc<Connection>>>,
}

impl ConnectionManager {
    /// Must be called on the worker's runtime.
    pub fn new(gauge: Arc<BufferGauge>) -> Self {
        ConnectionManager {
            gauge,
            runtime: Handle::current(),
            connections: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Opens a logical channel on subpartition `id` at the worker whose data server is `peer`.
    pub async fn open_channel(
        &self,
        peer: &str,
        id: &SubpartitionId,
        credits: u32,
    ) -> Result<RemoteChannel> {
        let connection = self.connection(peer).await?;
        let channel = connection.next_channel.fetch_add(1, Ordering::Relaxed);
        // One slot beyond the credits, so a connection failure can always be delivered.
        let (tx, rx) = mpsc::channel(credits as usize + 1);
        let lost = || NetworkError::ConnectionLost {
            peer: peer.to_string(),
            channel: id.to_string(),
        };
        connection
            .channels
            .lock()
            .expect("channel map")
            .as_mut()
            .ok_or_else(lost)?
            .insert(channel, tx);
        connection
            .out
            .send(Frame::request(channel, credits, &id.to_string()).encode())
            .map_err(|_| lost())?;
        Ok(RemoteChannel {
            rx,
            out: connection.out.clone(),
            channel,
            decoder: ElementDecoder::default(),
            peer: peer.to_string(),
            gauge: self.gauge.clone(),
        })
    }

    async fn connection(&self, peer: &str) -> Result<Arc<Connection>> {
        let mut connections = self.connections.lock().await;
        if let Some(existing) = connections.get(peer)
            && existing.channels.lock().expect("channel map").is_some()
        {
            return Ok(existing.clone());
        }
        let connection = self
            .runtime
            .spawn(connect(peer.to_string(), self.gauge.clone()))
            .await
            .map_err(|e| NetworkError::Io {
                peer: peer.to_string(),
                source: std::io::Error::other(e),
            })??;
        connections.insert(peer.to_string(), connection.clone());
        Ok(connection)
    }
}

async fn connect(peer: String, gauge: Arc<BufferGauge>) -> Result<Arc<Connection>> {
    let io = |source| NetworkError::Io {
        peer: peer.clone(),
        source,
    };
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&peer))
        .await
        .map_err(|_| io(std::io::ErrorKind::TimedOut.into()))?
        .map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let (reader, writer) = stream.into_split();
    let (out, out_rx) = mpsc::unbounded_channel();
    let channels: ChannelMap = Arc::new(Mutex::new(Some(HashMap::new())));
    tokio::spawn(write_frames(writer, out_rx));
    tokio::spawn(read_frames(reader, peer, channels.clone(), gauge));
    Ok(Arc::new(Connection {
        out,
        channels,
        next_channel: AtomicU64::new(0),
    }))
}

async fn read_frames(
    mut reader: OwnedReadHalf,
    peer: String,
    channels: ChannelMap,
    gauge: Arc<BufferGauge>,
) {
    let failure = loop {
        let frame = match read_frame(&mut reader).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break "closed by the remote worker".to_string(),
            Err(e) => break e,
        };
        let last = matches!(frame.kind, Kind::End | Kind::Error);
        let counted = frame.kind == Kind::Batch;
        let channel = frame.channel;
        let mut guard = channels.lock().expect("channel map");
        let Some(map) = guard.as_mut() else {
            break "closed".to_string();
        };
        let Some(tx) = map.get(&channel) else {
            continue;
        };
        if counted {
            gauge.add();
        }
        if tx.try_send(Ok(frame)).is_err() {
            if counted {
                gauge.remove();
            }
            // A sender that overruns its credits breaks the protocol; the reader that dropped
            // its channel simply no longer listens.
            map.remove(&channel);
            continue;
        }
        if last {
            map.remove(&channel);
        }
    };
    debug!(%peer, %failure, "data connection ended");
    let open = channels
        .lock()
        .expect("channel map")
        .take()
        .unwrap_or_default();
    for (_, tx) in open {
        let _ = tx.try_send(Err(NetworkError::ConnectionLost {
            peer: peer.clone(),
            channel: failure.clone(),
        }));
    }
}

pub struct RemoteChannel {
    rx: mpsc::Receiver<Result<Frame>>,
    out: mpsc::UnboundedSender<Bytes>,
    channel: u64,
    decoder: ElementDecoder,
    peer: String,
    gauge: Arc<BufferGauge>,
}

impl RemoteChannel {
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<StreamElement>>> {
        let frame = match self.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if frame.kind == Kind::Batch {
            self.gauge.remove();
        }
        if frame.kind.takes_credit() {
            // The element leaves the channel's buffer: its slot is free again.
            let _ = self.out.send(Frame::credit(self.channel, 1).encode());
        }
        Poll::Ready(Some(self.decoder.decode(frame, &self.peer)))
    }
}

impl Drop for RemoteChannel {
    fn drop(&mut self) {
        self.rx.close();
        while let Ok(item) = self.rx.try_recv() {
            if matches!(&item, Ok(frame) if frame.kind == Kind::Batch) {
                self.gauge.remove();
            }
        }
    }
}
