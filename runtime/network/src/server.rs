//! The producer side of remote channels: serves this worker's subpartitions to other workers,
//! sending on each channel only against the credit its receiver granted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use spate_api::StreamElement;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::codec::ElementEncoder;
use crate::frame::{Frame, Kind, read_frame};
use crate::registry::{PartitionRegistry, SubpartitionId};

/// How long a channel request waits for its producer to be deployed on this worker.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);

pub struct DataServer {
    local_addr: SocketAddr,
}

impl DataServer {
    /// Binds and starts serving in the background.
    pub async fn start(bind: &str, registry: Arc<PartitionRegistry>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let local_addr = listener.local_addr()?;
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(serve_connection(stream, peer.to_string(), registry.clone()));
                    }
                    Err(e) => warn!(error = %e, "data server accept failed"),
                }
            }
        });
        Ok(DataServer { local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

async fn serve_connection(stream: TcpStream, peer: String, registry: Arc<PartitionRegistry>) {
    let (mut reader, writer) = stream.into_split();
    let (out, out_rx) = mpsc::unbounded_channel::<Bytes>();
    let writing = tokio::spawn(write_frames(writer, out_rx));
    let mut credits: HashMap<u64, Arc<Semaphore>> = HashMap::new();
    // Dropping the set aborts the senders: a lost consumer releases its subpartitions.
    let mut senders = JoinSet::new();
    loop {
        let frame = match read_frame(&mut reader).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                debug!(%peer, error = %e, "data connection closed");
                break;
            }
        };
        match frame.kind {
            Kind::Request => {
                let initial = frame.u32_payload().unwrap_or(0) as usize;
                let credit = Arc::new(Semaphore::new(initial));
                credits.insert(frame.channel, credit.clone());
                let id = frame.text_payload(4);
                senders.spawn(send_channel(
                    frame.channel,
                    id,
                    credit,
                    out.clone(),
                    registry.clone(),
                ));
            }
            Kind::Credit => {
                if let Some(credit) = credits.get(&frame.channel) {
                    credit.add_permits(frame.u32_payload().unwrap_or(0) as usize);
                }
            }
            other => {
                warn!(%peer, kind = ?other, "unexpected frame from a consumer; closing");
                break;
            }
        }
        while senders.try_join_next().is_some() {}
    }
    drop(senders);
    writing.abort();
}

async fn send_channel(
    channel: u64,
    id: String,
    credit: Arc<Semaphore>,
    out: mpsc::UnboundedSender<Bytes>,
    registry: Arc<PartitionRegistry>,
) {
    let fail = |reason: String| {
        let _ = out.send(Frame::new(Kind::Error, channel, reason.into_bytes()).encode());
    };
    let Some(parsed) = SubpartitionId::parse(&id) else {
        return fail(format!("malformed subpartition id '{id}'"));
    };
    let mut queue = match registry.take(&parsed, REGISTRATION_TIMEOUT).await {
        Ok(queue) => queue,
        Err(e) => return fail(e.to_string()),
    };
    let mut encoder = ElementEncoder::default();
    loop {
        let Some(element) = queue.recv().await else {
            return fail(format!("producer of {id} failed or was canceled"));
        };
        // Every data frame spends one credit: the receiver has room for exactly what it granted.
        match credit.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return,
        }
        let end = matches!(element, StreamElement::End);
        let frame = match encoder.encode(channel, &element) {
            Ok(frame) => frame,
            Err(e) => return fail(format!("encoding a batch of {id}: {e}")),
        };
        if out.send(frame.encode()).is_err() || end {
            return;
        }
    }
}

/// Writes queued frames, flushing only when the queue is empty so that small frames coalesce.
pub(crate) async fn write_frames(
    writer: OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Bytes>,
) {
    let mut writer = BufWriter::with_capacity(256 << 10, writer);
    while let Some(frame) = frames.recv().await {
        if writer.write_all(&frame).await.is_err() {
            return;
        }
        while let Ok(frame) = frames.try_recv() {
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}
