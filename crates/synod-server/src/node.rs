//! The node runtime: one task that owns the engine. It ticks it, steps it with peer messages
//! and client requests, and carries out each output batch: sends messages, applies committed
//! entries to the key-value store, answers reads, and hands writes to the persister thread,
//! releasing the messages that wait on a write only once the write is durable.
//!
//! Client writes carry the proposing member's id and a request id inside the command. Every
//! member applies every command; the member that proposed it answers its client with the
//! result of its own apply. A follower does not propose: it forwards the encoded command to
//! the leader over the peer transport and still answers from its own apply, so a write is
//! acknowledged only once the member the client talks to has applied it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use synod_core::{Index, NodeId, Payload, ReadContext, Role, SnapshotMeta, Write};
use synod_kv::MvccStore;
use synod_kv::command::{Command, CommandEnvelope, Response};
use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::ServerEngine;
use crate::errors::ApiError;
use crate::storage::{MemberStorage, StorageError};
use crate::transport::{Frame, Inbound, Transport};

/// How long a write or read may wait before the client is told it timed out.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

/// How long a read barrier may go unanswered before its reads are given a new one (the engine
/// does not resend a ReadIndex request lost on the way to the leader).
const READ_BARRIER_RETRY: Duration = Duration::from_millis(500);

/// About how much of a snapshot is encoded per hold of the store's read lock. Applying waits
/// for the lock at most this long: some 0.1 ms at 256 KiB (issue 7: a snapshot written under
/// one hold of the lock stalled every write for 0.3-0.4 s at 140 MB).
const SNAPSHOT_LOCK_BYTES: usize = 256 << 10;

/// The state machine and how far it has applied.
#[derive(Debug)]
pub struct KvState {
    /// The store.
    pub store: MvccStore,
    /// The last applied log index.
    pub applied: Index,
}

/// The state a status API reports, refreshed by the node after every step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// This member.
    pub id: NodeId,
    /// Role.
    pub role: Option<Role>,
    /// Term (Raft) or ballot (Multi-Paxos).
    pub term: u64,
    /// The leader this member believes in.
    pub leader: Option<NodeId>,
    /// Highest committed index known here.
    pub commit: Index,
    /// Highest applied index.
    pub applied: Index,
    /// Last log index.
    pub last_index: Index,
    /// Compaction point.
    pub snapshot_index: Index,
    /// Voters.
    pub voters: Vec<NodeId>,
    /// Learners.
    pub learners: Vec<NodeId>,
}

/// A request from the client API.
#[derive(Debug)]
pub enum ClientRequest {
    /// Order a write and answer with its result once applied here.
    Write {
        /// The write.
        command: Command,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Response, ApiError>>,
    },
    /// Wait until a linearizable read may be served here.
    Read {
        /// Where the answer goes.
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
}

/// The client API's way into a node.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    requests: mpsc::Sender<ClientRequest>,
    /// The latest status.
    pub status: watch::Receiver<NodeStatus>,
    /// The state machine (read it under the read lock).
    pub kv: Arc<RwLock<KvState>>,
}

impl NodeHandle {
    /// Orders a write; returns its result once applied on this member.
    pub async fn write(&self, command: Command) -> Result<Response, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(ClientRequest::Write { command, reply })
            .await
            .map_err(|_| ApiError::Stopped)?;
        answer.await.map_err(|_| ApiError::Stopped)?
    }

    /// Returns once this member may serve a linearizable read.
    pub async fn read_barrier(&self) -> Result<(), ApiError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(ClientRequest::Read { reply })
            .await
            .map_err(|_| ApiError::Stopped)?;
        answer.await.map_err(|_| ApiError::Stopped)?
    }

    /// Reads the state machine.
    pub fn kv(&self) -> std::sync::RwLockReadGuard<'_, KvState> {
        self.kv.read().unwrap_or_else(|p| p.into_inner())
    }
}

struct PendingWrite {
    reply: oneshot::Sender<Result<Response, ApiError>>,
    deadline: Instant,
    /// The leader the write was forwarded to, if this member was not leading.
    forwarded_to: Option<NodeId>,
}

struct PendingRead {
    reply: oneshot::Sender<Result<(), ApiError>>,
    deadline: Instant,
}

/// One ReadIndex request to the engine, on behalf of every read queued before it was made.
struct ReadBarrier {
    context: ReadContext,
    asked: Instant,
    reads: Vec<PendingRead>,
}

/// Where a snapshot-taking task reports the index it saved.
type SnapshotDone = (
    mpsc::UnboundedSender<Result<Option<Index>, NodeError>>,
    mpsc::UnboundedReceiver<Result<Option<Index>, NodeError>>,
);

/// Settings of the node loop.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// One engine tick.
    pub tick: Duration,
    /// Applied entries between snapshots.
    pub snapshot_count: u64,
}

/// The node task's state.
pub struct Node<E: ServerEngine> {
    id: NodeId,
    engine: E,
    kv: Arc<RwLock<KvState>>,
    storage: Arc<MemberStorage>,
    transport: Transport<E::Message>,
    persist: std::sync::mpsc::Sender<Write<E::HardState>>,
    persisted: mpsc::UnboundedReceiver<Result<Vec<Write<E::HardState>>, StorageError>>,
    /// Writes handed to the persister and not yet back.
    in_flight_writes: usize,
    writes: HashMap<u64, PendingWrite>,
    next_request: u64,
    /// Linearizable reads waiting for the next barrier (etcd's batching: every read that
    /// arrives while a barrier is in flight shares the next one).
    queued_reads: Vec<PendingRead>,
    /// The read barrier in flight, if any.
    barrier: Option<ReadBarrier>,
    /// Reads cleared by the engine, waiting for the state machine to reach their index.
    ready_reads: Vec<(Index, PendingRead)>,
    next_read: ReadContext,
    status: watch::Sender<NodeStatus>,
    options: NodeOptions,
    snapshot_index: Index,
    /// Whether a thread is writing a snapshot from the store (a chunk at a time, each under
    /// the store's read lock).
    snapshotting: bool,
    snapshot_done: SnapshotDone,
    /// Set when the node stops, for the snapshot being written to give up at its next chunk.
    snapshot_cancel: Arc<std::sync::atomic::AtomicBool>,
    leader: Option<NodeId>,
}

/// Why a node stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage failed: the member must stop and recover from disk.
    #[error("storage failed, stopping this member: {0}")]
    Storage(#[from] StorageError),
    /// The engine broke its contract: a bug; the member stops rather than diverge.
    #[error("internal invariant violated, stopping this member: {0}")]
    Invariant(String),
}

impl<E: ServerEngine> Node<E> {
    /// Builds a node around a booted engine and its recovered state machine.
    pub fn new(
        engine: E,
        kv: KvState,
        snapshot: &SnapshotMeta,
        storage: Arc<MemberStorage>,
        transport: Transport<E::Message>,
        options: NodeOptions,
    ) -> (Node<E>, NodeHandle, mpsc::Receiver<ClientRequest>) {
        let (persisted_tx, persisted) = mpsc::unbounded_channel();
        let persist = storage.start_persister(persisted_tx);
        let (requests, requests_rx) = mpsc::channel(16 * 1024);
        let kv = Arc::new(RwLock::new(kv));
        let (status, status_rx) = watch::channel(NodeStatus::default());
        let node = Node {
            id: engine.id(),
            engine,
            kv: kv.clone(),
            storage,
            transport,
            persist,
            persisted,
            in_flight_writes: 0,
            writes: HashMap::new(),
            // Request ids start at a random point: after a restart, entries this member
            // proposed before are applied again, and must not answer new requests.
            next_request: crate::engine::random_seed() >> 1,
            queued_reads: Vec::new(),
            barrier: None,
            ready_reads: Vec::new(),
            // Read contexts, likewise, must not match a read answered before a restart.
            next_read: crate::engine::random_seed() >> 1,
            status,
            options,
            snapshot_index: snapshot.index,
            snapshotting: false,
            snapshot_done: mpsc::unbounded_channel(),
            snapshot_cancel: Arc::default(),
            leader: None,
        };
        let handle = NodeHandle {
            requests,
            status: status_rx,
            kv,
        };
        (node, handle, requests_rx)
    }

    /// Runs until `shutdown` turns true or storage fails. Returns only once a snapshot being
    /// written has stopped too, so that the member's files and its data directory's lock are
    /// free when it does.
    pub async fn run(
        mut self,
        requests: mpsc::Receiver<ClientRequest>,
        inbound: mpsc::Receiver<Inbound<E::Message>>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let result = self.run_until_stopped(requests, inbound, shutdown).await;
        if self.snapshotting {
            // Abandoned between two chunks: the temporary file goes at the next start.
            self.snapshot_cancel
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = self.snapshot_done.1.recv().await;
        }
        result
    }

    async fn run_until_stopped(
        &mut self,
        mut requests: mpsc::Receiver<ClientRequest>,
        mut inbound: mpsc::Receiver<Inbound<E::Message>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(self.options.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish_status();
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                done = self.persisted.recv() => {
                    let Some(done) = done else { break };
                    self.on_persisted(done?);
                }
                saved = self.snapshot_done.1.recv() => {
                    if let Some(saved) = saved {
                        self.on_snapshot_saved(saved)?;
                    }
                }
                _ = ticker.tick() => {
                    self.engine.tick();
                    self.expire();
                    self.issue_read_barrier();
                }
                message = inbound.recv() => {
                    let Some(message) = message else { break };
                    self.on_inbound(message);
                    // Take what else has arrived, so one batch covers it all.
                    for _ in 0..256 {
                        match inbound.try_recv() {
                            Ok(message) => self.on_inbound(message),
                            Err(_) => break,
                        }
                    }
                }
                request = requests.recv() => {
                    let Some(request) = request else { break };
                    self.on_request(request);
                    for _ in 0..256 {
                        match requests.try_recv() {
                            Ok(request) => self.on_request(request),
                            Err(_) => break,
                        }
                    }
                    self.issue_read_barrier();
                }
            }
            self.process_ready().await?;
            self.publish_status();
        }
        self.shutdown().await;
        Ok(())
    }

    /// Lets writes in flight reach the disk, then fails whatever is still waiting.
    async fn shutdown(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.in_flight_writes > 0 {
            match tokio::time::timeout_at(deadline, self.persisted.recv()).await {
                Ok(Some(Ok(done))) => self.in_flight_writes -= done.len(),
                _ => break,
            }
        }
        for (_, pending) in self.writes.drain() {
            let _ = pending.reply.send(Err(ApiError::Stopped));
        }
        let in_flight = self.barrier.take().into_iter().flat_map(|b| b.reads);
        for pending in self.queued_reads.drain(..).chain(in_flight) {
            let _ = pending.reply.send(Err(ApiError::Stopped));
        }
        for (_, pending) in self.ready_reads.drain(..) {
            let _ = pending.reply.send(Err(ApiError::Stopped));
        }
    }

    fn on_inbound(&mut self, inbound: Inbound<E::Message>) {
        match inbound {
            Inbound::Message { from, message } => self.engine.step(from, message),
            Inbound::Forward {
                from,
                request_id,
                command,
            } => {
                if self.engine.propose(command).is_err() {
                    self.transport
                        .send(from, Frame::ForwardFailed { request_id });
                }
            }
            Inbound::ForwardFailed { request_id } => {
                if let Some(pending) = self.writes.remove(&request_id) {
                    let _ = pending.reply.send(Err(ApiError::LeaderChanged));
                }
            }
            Inbound::PeerLost { peer } => {
                if self.engine.peer_unreachable(peer) {
                    // The failover test looks for this line.
                    tracing::info!(
                        member = self.id,
                        "lost the connection to the leader (member {peer}); campaigning without waiting for the election timeout"
                    );
                }
            }
        }
    }

    fn on_request(&mut self, request: ClientRequest) {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        match request {
            ClientRequest::Write { command, reply } => {
                let request_id = self.next_request;
                self.next_request = self.next_request.wrapping_add(1);
                let envelope = CommandEnvelope {
                    origin: self.id,
                    request_id,
                    command,
                };
                let bytes = Bytes::from(envelope.encode());
                let forwarded_to = match self.engine.propose(bytes.clone()) {
                    Ok(_) => None,
                    Err(synod_core::ProposeError::NotLeader {
                        leader: Some(leader),
                    }) if leader != self.id => {
                        self.transport.send(
                            leader,
                            Frame::Forward {
                                request_id,
                                command: bytes,
                            },
                        );
                        Some(leader)
                    }
                    Err(synod_core::ProposeError::NotLeader { .. }) => {
                        let _ = reply.send(Err(ApiError::NoLeader));
                        return;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(ApiError::Unavailable(e.to_string())));
                        return;
                    }
                };
                self.writes.insert(
                    request_id,
                    PendingWrite {
                        reply,
                        deadline,
                        forwarded_to,
                    },
                );
            }
            ClientRequest::Read { reply } => {
                self.queued_reads.push(PendingRead { reply, deadline });
            }
        }
    }

    /// Asks the engine for one read barrier covering every queued read, unless one is in
    /// flight: those reads arrived after it was asked for, so it cannot serve them.
    fn issue_read_barrier(&mut self) {
        if self.queued_reads.is_empty() || self.barrier.is_some() {
            return;
        }
        let context = self.next_read;
        self.next_read = self.next_read.wrapping_add(1);
        match self.engine.read_index(context) {
            Ok(()) => {
                self.barrier = Some(ReadBarrier {
                    context,
                    asked: Instant::now(),
                    reads: std::mem::take(&mut self.queued_reads),
                });
            }
            Err(synod_core::ReadError::NoLeader) => {
                for pending in self.queued_reads.drain(..) {
                    let _ = pending.reply.send(Err(ApiError::NoLeader));
                }
            }
        }
    }

    /// Fails requests past their deadline.
    fn expire(&mut self) {
        let now = Instant::now();
        for (_, pending) in self.writes.extract_if(|_, p| p.deadline <= now) {
            let _ = pending.reply.send(Err(ApiError::TimedOut));
        }
        // A barrier unanswered for too long was probably lost: its reads queue for a new one
        // (a late answer to it then matches nothing).
        if let Some(lost) = self
            .barrier
            .take_if(|b| now.duration_since(b.asked) >= READ_BARRIER_RETRY)
        {
            self.queued_reads.extend(lost.reads);
        }
        for pending in self.queued_reads.extract_if(.., |p| p.deadline <= now) {
            let _ = pending.reply.send(Err(ApiError::TimedOut));
        }
        for (_, pending) in self.ready_reads.extract_if(.., |(_, p)| p.deadline <= now) {
            let _ = pending.reply.send(Err(ApiError::TimedOut));
        }
    }

    async fn process_ready(&mut self) -> Result<(), NodeError> {
        while self.engine.has_ready() {
            let mut ready = self.engine.ready();
            if let Some(soft) = ready.soft_state {
                if soft.leader != self.leader {
                    tracing::info!(
                        member = self.id,
                        term = soft.term,
                        leader = ?soft.leader,
                        role = %soft.role,
                        "leader changed"
                    );
                    self.on_leader_change(soft.leader);
                } else {
                    tracing::debug!(
                        member = self.id,
                        term = soft.term,
                        leader = ?soft.leader,
                        role = %soft.role,
                        "role or term changed"
                    );
                }
                self.leader = soft.leader;
            }
            for envelope in ready.messages.drain(..) {
                self.transport
                    .send(envelope.to, Frame::Message(envelope.message));
            }
            self.apply(std::mem::take(&mut ready.committed))?;
            for read in ready.reads.drain(..) {
                if let Some(barrier) = self.barrier.take_if(|b| b.context == read.context) {
                    let index = read.index;
                    self.ready_reads
                        .extend(barrier.reads.into_iter().map(|pending| (index, pending)));
                }
            }
            for context in ready.failed_reads.drain(..) {
                if let Some(barrier) = self.barrier.take_if(|b| b.context == context) {
                    for pending in barrier.reads {
                        let _ = pending.reply.send(Err(ApiError::LeaderChanged));
                    }
                }
            }
            self.release_reads();
            self.issue_read_barrier();
            if let Some(write) = ready.write.take() {
                let snapshot = write.snapshot().cloned();
                self.in_flight_writes += 1;
                if self.in_flight_writes == 1 && !write.needs_sync() && snapshot.is_none() {
                    // Volatile state only (a commit index, a chosen prefix): an append to the
                    // log without a sync, a few microseconds, so it is written here rather
                    // than handed to the persister and back. That hand-off woke two threads on
                    // every member for every commit. Nothing is queued ahead of it, so the
                    // engine still learns of its writes in order.
                    self.storage.persist_round(std::slice::from_ref(&write))?;
                    self.on_persisted(vec![write]);
                    self.maybe_snapshot();
                    continue;
                }
                if self.persist.send(write).is_err() {
                    return Err(StorageError::Damaged("the persister stopped".into()).into());
                }
                if let Some(meta) = snapshot {
                    // A snapshot from the leader: nothing later may be applied until it is
                    // durable and the state machine is restored from it.
                    while self.in_flight_writes > 0 {
                        match self.persisted.recv().await {
                            Some(done) => self.on_persisted(done?),
                            None => {
                                return Err(
                                    StorageError::Damaged("the persister stopped".into()).into()
                                );
                            }
                        }
                    }
                    self.restore_from(meta).await?;
                }
            }
            self.maybe_snapshot();
        }
        Ok(())
    }

    fn on_leader_change(&mut self, leader: Option<NodeId>) {
        // Writes forwarded to a former leader may never be placed: tell their clients now
        // rather than at the deadline. (If one was placed after all, it still applies; the
        // client sees an error for a write that happened, as etcd's clients may.)
        let ids: Vec<u64> = self
            .writes
            .iter()
            .filter(|(_, w)| w.forwarded_to.is_some() && w.forwarded_to != leader)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(pending) = self.writes.remove(&id) {
                let _ = pending.reply.send(Err(ApiError::LeaderChanged));
            }
        }
    }

    fn on_persisted(&mut self, done: Vec<Write<E::HardState>>) {
        self.in_flight_writes -= done.len();
        for write in done {
            for envelope in self.engine.persisted(write) {
                self.transport
                    .send(envelope.to, Frame::Message(envelope.message));
            }
        }
    }

    async fn restore_from(&mut self, meta: SnapshotMeta) -> Result<(), NodeError> {
        // The store is about to be replaced: let a snapshot being written from it finish.
        while self.snapshotting {
            match self.snapshot_done.1.recv().await {
                Some(saved) => self.on_snapshot_saved(saved)?,
                None => break,
            }
        }
        let storage = self.storage.clone();
        let index = meta.index;
        let store = tokio::task::spawn_blocking(move || storage.read_store(index))
            .await
            .map_err(|e| StorageError::Damaged(e.to_string()))??;
        let mut kv = self.kv.write().unwrap_or_else(|p| p.into_inner());
        kv.store = store;
        kv.applied = meta.index;
        self.snapshot_index = meta.index;
        tracing::info!(
            member = self.id,
            index,
            "restored the state machine from a snapshot"
        );
        Ok(())
    }

    fn apply(&mut self, committed: Vec<synod_core::Entry>) -> Result<(), NodeError> {
        if committed.is_empty() {
            return Ok(());
        }
        let mut kv = self.kv.write().unwrap_or_else(|p| p.into_inner());
        for entry in committed {
            if entry.index <= kv.applied {
                continue;
            }
            if entry.index != kv.applied + 1 {
                return Err(NodeError::Invariant(format!(
                    "the engine handed out entry {} to apply after {}",
                    entry.index, kv.applied
                )));
            }
            let Payload::Command(bytes) = &entry.payload else {
                kv.applied = entry.index;
                continue;
            };
            let envelope = match CommandEnvelope::decode(bytes) {
                Ok(envelope) => envelope,
                Err(error) => {
                    // Every member skips it alike, so the replicas stay identical.
                    tracing::error!(index = entry.index, %error, "skipping an undecodable command");
                    kv.applied = entry.index;
                    continue;
                }
            };
            kv.applied = entry.index;
            let result = if self.snapshotting {
                // The snapshot being written still needs the history a compaction forgets:
                // it is removed once the snapshot is on disk.
                kv.store.apply_deferring_removal(&envelope.command)
            } else {
                kv.store.apply(&envelope.command)
            }
            .map_err(ApiError::Kv);
            if envelope.origin == self.id
                && let Some(pending) = self.writes.remove(&envelope.request_id)
            {
                let _ = pending.reply.send(result);
            }
        }
        Ok(())
    }

    fn release_reads(&mut self) {
        if self.ready_reads.is_empty() {
            return;
        }
        let applied = self.kv.read().unwrap_or_else(|p| p.into_inner()).applied;
        let mut i = 0;
        while i < self.ready_reads.len() {
            if self.ready_reads[i].0 <= applied {
                let (_, pending) = self.ready_reads.swap_remove(i);
                let _ = pending.reply.send(Ok(()));
            } else {
                i += 1;
            }
        }
    }

    fn maybe_snapshot(&mut self) {
        if self.snapshotting {
            return;
        }
        let cursor = {
            let kv = self.kv.read().unwrap_or_else(|p| p.into_inner());
            // Compacted history left in place by the last snapshot is removed once it is on
            // disk (`on_snapshot_saved`), before this can run again.
            debug_assert!(!kv.store.removal_pending());
            if kv.applied < self.snapshot_index + self.options.snapshot_count {
                return;
            }
            let Ok(meta) = self.engine.snapshot_meta(kv.applied) else {
                return;
            };
            (meta, kv.store.begin_snapshot(kv.applied))
        };
        // A thread streams the store to disk a chunk at a time, each under the read lock.
        // Between chunks this task goes on applying: a write only adds versions of later
        // revisions, which the snapshot leaves out. A compaction takes effect for reads at
        // once, but the versions it forgets, which the snapshot may still need, are removed
        // only once the snapshot is on disk.
        self.snapshotting = true;
        let kv = self.kv.clone();
        let storage = self.storage.clone();
        let done = self.snapshot_done.0.clone();
        let cancel = self.snapshot_cancel.clone();
        tokio::task::spawn_blocking(move || {
            let (meta, mut cursor) = cursor;
            let index = meta.index;
            // Whatever happens here must come back, or the node would never remove compacted
            // history nor snapshot again: a panic (a bug) comes back as an invariant
            // violation, which stops the member.
            let saved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let saved = storage.save_own_snapshot(meta, |out| {
                    // Encoded in memory under the lock, written to the file without it, so
                    // that a slow disk never holds the lock.
                    let mut chunk = Vec::with_capacity(2 * SNAPSHOT_LOCK_BYTES);
                    loop {
                        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                            return Err(std::io::Error::other("the member is stopping"));
                        }
                        chunk.clear();
                        let done = kv
                            .read()
                            .unwrap_or_else(|p| p.into_inner())
                            .store
                            .write_snapshot_chunk(&mut cursor, &mut chunk, SNAPSHOT_LOCK_BYTES)?;
                        out.write_all(&chunk)?;
                        if done {
                            return Ok(());
                        }
                    }
                })?;
                if saved {
                    storage.compact_log(index)?;
                }
                Ok::<_, StorageError>(saved.then_some(index))
            }));
            let saved = match saved {
                Ok(saved) => saved.map_err(NodeError::from),
                Err(panic) => Err(NodeError::Invariant(format!(
                    "the snapshot at index {index} panicked: {}",
                    panic_message(&*panic)
                ))),
            };
            // The storage (and with it the data directory's lock) is let go before the node
            // hears back, since a stopping node returns once it has.
            drop((storage, kv));
            let _ = done.send(saved);
        });
    }

    fn on_snapshot_saved(
        &mut self,
        saved: Result<Option<Index>, NodeError>,
    ) -> Result<(), NodeError> {
        self.snapshotting = false;
        {
            let mut kv = self.kv.write().unwrap_or_else(|p| p.into_inner());
            // The history compactions forgot while the snapshot was written.
            kv.store.remove_compacted();
            // The snapshot has just walked the store; give back the space that keys inserted
            // in order leave in the map's nodes (issue 7: 50 MiB of 460 at a million keys), if
            // enough keys came or went to leave any: the rebuild holds the write lock (180 ms
            // at a million keys).
            kv.store.shrink_if_reshaped();
        }
        let Some(index) = saved? else {
            // A snapshot from the leader overtook it.
            return Ok(());
        };
        if index > self.snapshot_index {
            self.snapshot_index = index;
            if let Err(error) = self.engine.compact(index) {
                tracing::debug!(%error, "compaction after a snapshot");
            }
            tracing::info!(
                member = self.id,
                index,
                "took a snapshot and compacted the log"
            );
        }
        Ok(())
    }

    fn publish_status(&mut self) {
        let status = self.engine.status();
        let applied = self.kv.read().unwrap_or_else(|p| p.into_inner()).applied;
        let next = NodeStatus {
            id: status.id,
            role: Some(status.soft_state.role),
            term: status.soft_state.term,
            leader: status.soft_state.leader,
            commit: status.commit,
            applied,
            last_index: status.last_index,
            snapshot_index: status.snapshot_index,
            voters: status.membership.all_voters().into_iter().collect(),
            learners: status
                .membership
                .members()
                .into_iter()
                .filter(|id| status.membership.is_learner_only(*id))
                .collect(),
        };
        self.status.send_if_modified(|current| {
            if *current == next {
                false
            } else {
                *current = next;
                true
            }
        });
    }
}

/// What a panic said, if it said it in a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
