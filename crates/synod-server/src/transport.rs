//! The peer transport: one persistent TCP connection from each member to each other member,
//! carrying length-prefixed frames.
//!
//! A connection opens with a [`Frame::Hello`]; the receiver checks the cluster token, the
//! cluster id and both member ids, and answers [`Frame::Welcome`] or [`Frame::Refused`] (and
//! closes). After that the dialling side sends and the accepting side only receives, so each
//! pair of members holds two connections, one per direction.
//!
//! Sending never blocks the node: each peer has a bounded queue and a message that does not
//! fit is dropped (the protocols retransmit), which is the back-pressure. A writer batches
//! whatever is queued into one socket write. A lost connection (a write fails, or the peer
//! closes it) is redialled at once, then with exponential backoff up to 200 ms. A snapshot
//! travels as [`Frame::SnapshotBegin`], chunks, [`Frame::SnapshotEnd`] and then the message
//! that refers to it; the receiver stages the chunks in a file and delivers the message only
//! once the snapshot arrived whole. It enters the snapshot store only if the engine takes it
//! (see [`crate::storage`]).
//!
//! When a connection accepted from a peer ends (closed or reset), the transport tells the node
//! with [`Inbound::PeerLost`]. After `kill -9` the kernel closes the dead process's sockets at
//! once, so a follower learns that its leader died well before an election timeout would tell
//! it, and the engine may campaign early (`synod_core::Engine::peer_unreachable`). Only the
//! accepting side reports: the leader always holds a connection to each follower (it
//! heartbeats), and the report then follows every message the leader sent on it, in order. A
//! report from the dialling side could overtake the dead leader's last messages, which would
//! make the follower follow it again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use synod_core::{NodeId, SnapshotMeta, WireMessage};
use synod_storage::snapshot::SnapshotReader;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::members::Members;
use crate::storage::{MemberStorage, SNAPSHOT_CHUNK};

/// The largest frame accepted.
const MAX_FRAME_BYTES: usize = 128 << 20;
/// Messages queued per peer before new ones are dropped.
const QUEUE: usize = 4096;
/// The longest wait between two dials of an unreachable peer. Short, because frames queued for
/// a peer wait for the connection: after a peer restarts, the first vote request another member
/// sends it should not sit out a long backoff. A refused dial on a local network costs little.
const REDIAL_BACKOFF_MAX: Duration = Duration::from_millis(200);
/// How long a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// One frame on a peer connection.
#[derive(Debug, Serialize, Deserialize)]
pub enum Frame<M> {
    /// Opens a connection.
    Hello {
        /// The cluster token of the sender.
        token: String,
        /// The cluster id of the sender.
        cluster_id: u64,
        /// The sender.
        from: NodeId,
        /// The member the sender means to reach.
        to: NodeId,
        /// The sender's client URLs.
        client_urls: Vec<String>,
    },
    /// Accepts a connection.
    Welcome {
        /// The receiver's client URLs.
        client_urls: Vec<String>,
    },
    /// Refuses a connection.
    Refused {
        /// Why.
        reason: String,
    },
    /// A protocol message.
    Message(M),
    /// A snapshot follows.
    SnapshotBegin(SnapshotMeta),
    /// Part of a snapshot's contents.
    SnapshotChunk(Bytes),
    /// The snapshot is complete.
    SnapshotEnd,
    /// A client write a follower passes to the leader: an encoded command envelope.
    Forward {
        /// The follower's request id.
        request_id: u64,
        /// The command, ready to propose.
        command: Bytes,
    },
    /// The leader could not take a forwarded write.
    ForwardFailed {
        /// The follower's request id.
        request_id: u64,
    },
}

/// What the transport hands to the node.
#[derive(Debug)]
pub enum Inbound<M> {
    /// A protocol message (any snapshot it refers to is stored).
    Message {
        /// The sender.
        from: NodeId,
        /// The message.
        message: M,
    },
    /// A write forwarded by a follower.
    Forward {
        /// The follower.
        from: NodeId,
        /// Its request id.
        request_id: u64,
        /// The encoded command envelope.
        command: Bytes,
    },
    /// The leader refused a write this member forwarded.
    ForwardFailed {
        /// The request id.
        request_id: u64,
    },
    /// A connection accepted from `peer` ended, after every message that came on it: the
    /// peer may have crashed. (Not sent when this member shuts down.)
    PeerLost {
        /// The peer.
        peer: NodeId,
    },
}

/// What identifies this member to its peers.
#[derive(Clone, Debug)]
pub struct LocalIdentity {
    /// The cluster token.
    pub token: String,
    /// The cluster id.
    pub cluster_id: u64,
    /// This member.
    pub id: NodeId,
    /// Its client URLs.
    pub client_urls: Vec<String>,
}

/// Sends frames to peers.
#[derive(Clone, Debug)]
pub struct Transport<M> {
    queues: Arc<HashMap<NodeId, mpsc::Sender<Frame<M>>>>,
}

impl<M> Transport<M>
where
    M: WireMessage + Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static,
{
    /// Starts a dialler for every peer in `peers` (id and address).
    pub fn start(
        local: LocalIdentity,
        peers: Vec<(NodeId, SocketAddr)>,
        members: Members,
        storage: Arc<MemberStorage>,
        shutdown: watch::Receiver<bool>,
    ) -> Transport<M> {
        let mut queues = HashMap::new();
        for (id, addr) in peers {
            if id == local.id {
                continue;
            }
            let (tx, rx) = mpsc::channel(QUEUE);
            queues.insert(id, tx);
            tokio::spawn(dial_loop(
                local.clone(),
                id,
                addr,
                rx,
                members.clone(),
                storage.clone(),
                shutdown.clone(),
            ));
        }
        Transport {
            queues: Arc::new(queues),
        }
    }

    /// Queues a frame for `to`; drops it if the queue is full or `to` is unknown.
    pub fn send(&self, to: NodeId, frame: Frame<M>) {
        if let Some(queue) = self.queues.get(&to)
            && let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(frame)
        {
            tracing::debug!(peer = to, "peer queue full; dropping a frame");
        }
    }
}

fn framed(stream: TcpStream) -> Framed<TcpStream, LengthDelimitedCodec> {
    let _ = stream.set_nodelay(true);
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec();
    Framed::new(stream, codec)
}

fn encode<M: Serialize>(frame: &Frame<M>) -> Bytes {
    Bytes::from(synod_core::wire::encode(frame))
}

async fn dial_loop<M>(
    local: LocalIdentity,
    peer: NodeId,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<Frame<M>>,
    members: Members,
    storage: Arc<MemberStorage>,
    mut shutdown: watch::Receiver<bool>,
) where
    M: WireMessage + Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static,
{
    let mut backoff = Duration::from_millis(20);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let attempt = async {
            let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let mut conn = framed(stream);
            let hello: Frame<M> = Frame::Hello {
                token: local.token.clone(),
                cluster_id: local.cluster_id,
                from: local.id,
                to: peer,
                client_urls: local.client_urls.clone(),
            };
            conn.send(encode(&hello)).await.map_err(|e| e.to_string())?;
            let reply = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.next())
                .await
                .map_err(|_| "handshake timed out".to_string())?
                .ok_or("connection closed during the handshake")?
                .map_err(|e| e.to_string())?;
            match synod_core::wire::decode::<Frame<M>>(&reply) {
                Ok(Frame::Welcome { client_urls }) => {
                    members.set_client_urls(peer, client_urls);
                    Ok(conn)
                }
                Ok(Frame::Refused { reason }) => Err(format!("refused: {reason}")),
                _ => Err("unexpected handshake reply".to_string()),
            }
        };
        let mut conn = tokio::select! {
            result = attempt => match result {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::debug!(peer, %addr, %error, "cannot reach peer");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(REDIAL_BACKOFF_MAX);
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        tracing::info!(peer, %addr, "connected to peer");
        backoff = Duration::from_millis(20);
        // Frames queued while disconnected are sent now: protocol messages that went stale
        // are ignored by the peer, and a write forwarded to the leader must not be lost.
        loop {
            let first = tokio::select! {
                frame = queue.recv() => match frame {
                    Some(frame) => frame,
                    None => return,
                },
                // The peer sends nothing after its Welcome, so the stream ending (or anything
                // arriving) means the connection is gone. Redial at once: otherwise the next
                // frame would be written into a dead socket and lost (only the write after it
                // fails), and a member that has nothing to say to a peer for a while (a
                // follower to another follower) would lose its first vote request after the
                // peer restarts. Not reported to the node: see the module documentation.
                _ = conn.next() => {
                    tracing::info!(peer, %addr, "connection to peer closed; redialling");
                    break;
                }
                _ = shutdown.changed() => return,
            };
            if send_batch(&mut conn, first, &mut queue, &storage)
                .await
                .is_err()
            {
                tracing::info!(peer, %addr, "lost connection to peer; redialling");
                break;
            }
        }
    }
}

/// Writes `first` and whatever else is queued, then flushes once.
async fn send_batch<M>(
    conn: &mut Framed<TcpStream, LengthDelimitedCodec>,
    first: Frame<M>,
    queue: &mut mpsc::Receiver<Frame<M>>,
    storage: &Arc<MemberStorage>,
) -> Result<(), String>
where
    M: WireMessage + Serialize + Send + 'static,
{
    let mut next = Some(first);
    let mut batched = 0;
    while let Some(frame) = next.take() {
        if let Frame::Message(message) = &frame
            && let Some(meta) = message.snapshot()
        {
            stream_snapshot::<M>(conn, meta.clone(), storage).await?;
        }
        conn.feed(encode(&frame)).await.map_err(|e| e.to_string())?;
        batched += 1;
        if batched < 1024 {
            next = queue.try_recv().ok();
        }
    }
    SinkExt::<Bytes>::flush(conn)
        .await
        .map_err(|e: std::io::Error| e.to_string())
}

/// What the snapshot reader thread hands the connection.
enum Chunk {
    Data(Bytes),
    Done,
    Failed(String),
}

/// Sends the snapshot at `meta.index` from the store, chunk by chunk. The file is read
/// without holding the store, so a slow peer holds up nothing else.
async fn stream_snapshot<M: Serialize>(
    conn: &mut Framed<TcpStream, LengthDelimitedCodec>,
    meta: SnapshotMeta,
    storage: &Arc<MemberStorage>,
) -> Result<(), String> {
    let (tx, mut rx) = mpsc::channel::<Chunk>(4);
    let (index, term) = (meta.index, meta.term);
    let storage = storage.clone();
    tokio::task::spawn_blocking(move || {
        // Without the snapshot store's lock, which a snapshot being written holds.
        let path = storage.snapshot_path(index, term);
        drop(storage);
        let fs = synod_storage::fs::RealFs;
        let mut reader = match SnapshotReader::open(&fs, path, index, term) {
            Ok(reader) => reader,
            Err(e) => {
                let _ = tx.blocking_send(Chunk::Failed(e.to_string()));
                return;
            }
        };
        loop {
            let chunk = match reader.next_chunk(SNAPSHOT_CHUNK) {
                Ok(Some(chunk)) => Chunk::Data(Bytes::from(chunk)),
                Ok(None) => Chunk::Done,
                Err(e) => Chunk::Failed(e.to_string()),
            };
            let last = !matches!(chunk, Chunk::Data(_));
            if tx.blocking_send(chunk).is_err() || last {
                return;
            }
        }
    });
    conn.feed(encode::<M>(&Frame::SnapshotBegin(meta)))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match rx.recv().await {
            Some(Chunk::Data(chunk)) => conn
                .send(encode::<M>(&Frame::SnapshotChunk(chunk)))
                .await
                .map_err(|e| e.to_string())?,
            Some(Chunk::Done) => break,
            Some(Chunk::Failed(e)) => return Err(format!("reading snapshot {index}: {e}")),
            None => return Err(format!("reading snapshot {index}: the reader stopped")),
        }
    }
    conn.feed(encode::<M>(&Frame::SnapshotEnd))
        .await
        .map_err(|e| e.to_string())
}

/// A snapshot being received: where it is staged, and how much has arrived.
struct Receiving {
    meta: SnapshotMeta,
    file: tokio::fs::File,
    part: std::path::PathBuf,
}

/// Accepts peer connections and hands what arrives to `inbound`.
pub async fn accept_loop<M>(
    listener: TcpListener,
    local: LocalIdentity,
    members: Members,
    storage: Arc<MemberStorage>,
    inbound: mpsc::Sender<Inbound<M>>,
    mut shutdown: watch::Receiver<bool>,
) where
    M: WireMessage + Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static,
{
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accepting a peer connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let local = local.clone();
        let members = members.clone();
        let storage = storage.clone();
        let inbound = inbound.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(reason) =
                serve_peer::<M>(stream, local, members, storage, inbound, shutdown).await
            {
                tracing::debug!(%addr, %reason, "peer connection closed");
            }
        });
    }
}

async fn serve_peer<M>(
    stream: TcpStream,
    local: LocalIdentity,
    members: Members,
    storage: Arc<MemberStorage>,
    inbound: mpsc::Sender<Inbound<M>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String>
where
    M: WireMessage + Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static,
{
    let mut conn = framed(stream);
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.next())
        .await
        .map_err(|_| "handshake timed out")?
        .ok_or("closed before the handshake")?
        .map_err(|e| e.to_string())?;
    let from = match synod_core::wire::decode::<Frame<M>>(&first) {
        Ok(Frame::Hello {
            token,
            cluster_id,
            from,
            to,
            client_urls,
        }) => {
            let refusal = if token != local.token {
                Some(format!(
                    "cluster token mismatch: this member belongs to {:?}, the peer to {token:?}",
                    local.token
                ))
            } else if cluster_id != local.cluster_id {
                Some(format!(
                    "cluster id mismatch: this member's is {:x}, the peer's {cluster_id:x} (different --initial-cluster)",
                    local.cluster_id
                ))
            } else if to != local.id {
                Some(format!("this is member {:x}, not member {to:x}", local.id))
            } else if members.get(from).is_none() || from == local.id {
                Some(format!("member {from:x} is not a member of this cluster"))
            } else {
                None
            };
            if let Some(reason) = refusal {
                tracing::warn!(peer = from, %reason, "refusing a peer");
                let _ = conn
                    .send(encode::<M>(&Frame::Refused {
                        reason: reason.clone(),
                    }))
                    .await;
                return Err(reason);
            }
            members.set_client_urls(from, client_urls);
            from
        }
        _ => return Err("the first frame was not a hello".into()),
    };
    conn.send(encode::<M>(&Frame::Welcome {
        client_urls: local.client_urls.clone(),
    }))
    .await
    .map_err(|e| e.to_string())?;
    let received = receive_from_peer(&mut conn, from, &storage, &inbound, &mut shutdown).await;
    if !*shutdown.borrow() {
        tracing::info!(peer = from, "connection from peer closed");
        let _ = inbound.send(Inbound::PeerLost { peer: from }).await;
    }
    received
}

/// Hands what arrives on an accepted connection from `from` to `inbound`, until the connection
/// ends, the node stops, or this member shuts down.
async fn receive_from_peer<M>(
    conn: &mut Framed<TcpStream, LengthDelimitedCodec>,
    from: NodeId,
    storage: &Arc<MemberStorage>,
    inbound: &mpsc::Sender<Inbound<M>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String>
where
    M: WireMessage + Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static,
{
    let mut snapshot: Option<Receiving> = None;
    let mut snapshot_ok = false;
    loop {
        let bytes = tokio::select! {
            next = conn.next() => match next {
                Some(Ok(bytes)) => bytes,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Ok(()),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let frame = synod_core::wire::decode::<Frame<M>>(&bytes)
            .map_err(|e| format!("undecodable frame from {from:x}: {e}"))?;
        let delivery = match frame {
            Frame::Message(message) => {
                if message.snapshot().is_some() && !std::mem::take(&mut snapshot_ok) {
                    tracing::warn!(
                        peer = from,
                        "dropping a snapshot message whose snapshot did not arrive"
                    );
                    continue;
                }
                Inbound::Message { from, message }
            }
            Frame::Forward {
                request_id,
                command,
            } => Inbound::Forward {
                from,
                request_id,
                command,
            },
            Frame::ForwardFailed { request_id } => Inbound::ForwardFailed { request_id },
            Frame::SnapshotBegin(meta) => {
                snapshot_ok = false;
                let part = storage.staged_path(&meta).with_extension("part");
                let file = tokio::fs::File::create(&part)
                    .await
                    .map_err(|e| format!("staging snapshot {}: {e}", meta.index))?;
                snapshot = Some(Receiving { meta, file, part });
                continue;
            }
            Frame::SnapshotChunk(chunk) => {
                let receiving = snapshot.as_mut().ok_or("a snapshot chunk out of place")?;
                receiving
                    .file
                    .write_all(&chunk)
                    .await
                    .map_err(|e| format!("staging a snapshot: {e}"))?;
                continue;
            }
            Frame::SnapshotEnd => {
                let mut receiving = snapshot.take().ok_or("a snapshot end out of place")?;
                receiving
                    .file
                    .flush()
                    .await
                    .map_err(|e| format!("staging a snapshot: {e}"))?;
                drop(receiving.file);
                tokio::fs::rename(&receiving.part, storage.staged_path(&receiving.meta))
                    .await
                    .map_err(|e| format!("staging a snapshot: {e}"))?;
                snapshot_ok = true;
                continue;
            }
            Frame::Hello { .. } | Frame::Welcome { .. } | Frame::Refused { .. } => {
                return Err("an unexpected handshake frame".into());
            }
        };
        if inbound.send(delivery).await.is_err() {
            return Ok(());
        }
    }
}
