//! Starting and stopping a member: storage, engine, node task, peer transport and the gRPC
//! services, wired together.

use std::net::SocketAddr;
use std::sync::Arc;

use synod_core::{Membership, NodeId, SnapshotMeta};
use synod_kv::MvccStore;
use synod_paxos::PaxosNode;
use synod_raft::RaftNode;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::client_io::FlatWrites;
use crate::engine::{Boot, ServerEngine};
use crate::members::Members;
use crate::node::{KvState, Node, NodeError, NodeHandle, NodeOptions};
use crate::pb::etcdserverpb as pb;
use crate::services::{ClusterService, KvService, MaintenanceService, Shared};
use crate::settings::{EngineKind, Settings, SettingsError};
use crate::storage::{Identity, MemberStorage, StorageError};
use crate::transport::{LocalIdentity, Transport, accept_loop};

/// Why a member could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The settings are invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Storage could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A listening address could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The recovered state does not make an engine.
    #[error("cannot start the {engine} engine from the recovered state: {detail}")]
    Engine {
        /// Which engine.
        engine: EngineKind,
        /// Why.
        detail: String,
    },
    /// The node stopped on a failure.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A task failed.
    #[error("a server task failed: {0}")]
    Task(String),
}

/// Stops a member.
#[derive(Clone, Debug)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    /// Asks the member to stop: it stops accepting requests, lets writes in flight reach the
    /// disk, and exits.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

/// A running member.
#[derive(Debug)]
pub struct Member {
    stop: Stopper,
    node: JoinHandle<Result<(), NodeError>>,
    servers: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
    handle: NodeHandle,
    /// Resolves when the last of the tasks and threads that share the member's storage has
    /// let go of it, and with it the data directory's lock.
    released: tokio::sync::oneshot::Receiver<()>,
    /// This member's id.
    pub id: NodeId,
    /// The client addresses it listens on (useful with port 0).
    pub client_addrs: Vec<SocketAddr>,
    /// The peer address it listens on.
    pub peer_addr: SocketAddr,
}

impl Member {
    /// A handle that stops the member.
    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    /// The node, for status and tests.
    pub fn handle(&self) -> &NodeHandle {
        &self.handle
    }

    /// Waits until the member has stopped (after [`Stopper::stop`], or a fatal error) and,
    /// unless a task of it panicked, until its data directory is free again, so that a member
    /// may be started on it anew in this process.
    pub async fn wait(self) -> Result<(), ServerError> {
        let result = self.node.await;
        // Whatever ended the node (a stop, a failure, a panic), the servers go with it.
        self.stop.stop();
        let result = result.map_err(|e| ServerError::Task(e.to_string()))?;
        for server in self.servers {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "client server stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "client server task failed"),
            }
        }
        // The peer tasks and the persister thread end on their own once the node has; the
        // data directory is free when the last of them has dropped the storage.
        if tokio::time::timeout(STORAGE_RELEASE_TIMEOUT, self.released)
            .await
            .is_err()
        {
            tracing::warn!(
                "the member's storage is still in use {STORAGE_RELEASE_TIMEOUT:?} after it \
                 stopped; its data directory stays locked until it is let go"
            );
        }
        result?;
        Ok(())
    }
}

/// How long [`Member::wait`] waits for the member's tasks and threads to let go of its
/// storage once it has stopped (they hold it for a moment at most: a peer connection's next
/// poll, the persister's last round).
const STORAGE_RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts a member with `settings` and returns once it listens.
pub async fn start(settings: Settings) -> Result<Member, ServerError> {
    settings.validate()?;
    match settings.engine {
        EngineKind::Raft => start_engine::<RaftNode>(settings).await,
        EngineKind::MultiPaxos => start_engine::<PaxosNode>(settings).await,
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

async fn start_engine<E: ServerEngine>(settings: Settings) -> Result<Member, ServerError> {
    let me = settings.me()?.clone();
    let cluster_id = settings.cluster_id();
    let identity = Identity {
        engine: E::KIND.to_string(),
        cluster_id,
        member_id: me.id,
    };
    let voters: Vec<NodeId> = settings.initial_cluster.iter().map(|p| p.id).collect();
    let data_dir = settings.data_dir.clone();
    let may_create = settings.initial_cluster_state_new;
    let (storage, recovered, store) = tokio::task::spawn_blocking(move || {
        let (storage, recovered) = MemberStorage::open::<E::HardState>(
            &data_dir,
            &identity,
            may_create,
            || {
                (
                    SnapshotMeta {
                        index: 0,
                        term: 0,
                        membership: Membership::with_voters(voters),
                    },
                    MvccStore::new().snapshot(),
                )
            },
            E::RECOVERY,
        )?;
        // Read a chunk at a time: a large store is never in memory twice.
        let store = storage.read_store(recovered.snapshot.index)?;
        Ok::<_, StorageError>((storage, recovered, store))
    })
    .await
    .map_err(|e| ServerError::Task(e.to_string()))??;
    let ticks = settings.ticks()?;
    let snapshot = recovered.snapshot.clone();
    let engine = E::build(Boot {
        id: me.id,
        heartbeat_ticks: ticks.heartbeat,
        election_ticks: ticks.election,
        unreachable_leader_stagger_ticks: crate::engine::unreachable_leader_stagger_ticks(
            ticks.tick,
        ),
        hard_state: recovered.hard_state,
        snapshot: recovered.snapshot.clone(),
        entries: recovered.entries,
        applied: recovered.snapshot.index,
    })
    .map_err(|detail| ServerError::Engine {
        engine: E::KIND,
        detail,
    })?;
    tracing::info!(
        member = me.id,
        name = %settings.name,
        engine = %E::KIND,
        snapshot = snapshot.index,
        fresh = recovered.fresh,
        "member starting"
    );

    let peer_listener = bind("--listen-peer-urls", settings.listen_peer).await?;
    let peer_addr = peer_listener
        .local_addr()
        .map_err(|source| ServerError::Bind {
            what: "--listen-peer-urls",
            addr: settings.listen_peer,
            source,
        })?;
    let mut client_listeners = Vec::new();
    for addr in &settings.listen_client {
        client_listeners.push(bind("--listen-client-urls", *addr).await?);
    }
    let client_addrs: Vec<SocketAddr> = client_listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();

    let (stop_tx, stop_rx) = watch::channel(false);
    let members = Members::from_settings(&settings);
    let local = LocalIdentity {
        token: settings.cluster_token.clone(),
        cluster_id,
        id: me.id,
        client_urls: settings.advertise_client_urls.clone(),
    };
    let transport = Transport::<E::Message>::start(
        local.clone(),
        settings
            .initial_cluster
            .iter()
            .map(|p| (p.id, p.peer_addr))
            .collect(),
        members.clone(),
        storage.clone(),
        stop_rx.clone(),
    );
    let (inbound_tx, inbound_rx) = mpsc::channel(16 * 1024);
    tokio::spawn(accept_loop::<E::Message>(
        peer_listener,
        local,
        members.clone(),
        storage.clone(),
        inbound_tx,
        stop_rx.clone(),
    ));
    let released = recovered.released;
    let (node, handle, requests) = Node::new(
        engine,
        KvState {
            store,
            applied: snapshot.index,
        },
        &snapshot,
        storage,
        transport,
        NodeOptions {
            tick: ticks.tick,
            snapshot_count: settings.snapshot_count,
        },
    );
    let node = tokio::spawn(node.run(requests, inbound_rx, stop_rx.clone()));

    let shared = Shared {
        node: handle.clone(),
        members,
        cluster_id,
        member_id: me.id,
        max_request_bytes: settings.max_request_bytes,
        quota_backend_bytes: settings.quota_backend_bytes,
    };
    let mut servers = Vec::new();
    for listener in client_listeners {
        servers.push(tokio::spawn(serve_clients(
            listener,
            shared.clone(),
            settings.max_request_bytes,
            stop_rx.clone(),
        )));
    }
    Ok(Member {
        stop: Stopper(Arc::new(stop_tx)),
        node,
        servers,
        handle,
        released,
        id: me.id,
        client_addrs,
        peer_addr,
    })
}

/// gRPC's own limit sits above `--max-request-bytes`, as etcd's does, so that a request just
/// over the limit gets etcd's "request is too large" rather than a transport error.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

async fn serve_clients(
    listener: TcpListener,
    shared: Shared,
    max_request_bytes: usize,
    mut stop: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let limit = max_request_bytes + GRPC_OVERHEAD_BYTES;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    // Nagle's algorithm would hold small responses back until the client's delayed ACK
    // (some 40 ms); tonic's own nodelay setting does not reach sockets accepted here.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |accepted| {
            accepted.map(|stream| {
                let _ = stream.set_nodelay(true);
                FlatWrites(stream)
            })
        },
    );
    tonic::transport::Server::builder()
        .add_service(
            pb::kv_server::KvServer::new(KvService(shared.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            pb::maintenance_server::MaintenanceServer::new(MaintenanceService(shared.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            pb::cluster_server::ClusterServer::new(ClusterService(shared.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(pb::watch_server::WatchServer::new(Unbuilt))
        .add_service(pb::lease_server::LeaseServer::new(Unbuilt))
        .add_service(pb::auth_server::AuthServer::new(Unbuilt))
        .add_service(health_service)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await
}

/// The services not built yet: every method answers Unimplemented.
#[derive(Clone, Copy, Debug)]
pub struct Unbuilt;

impl pb::watch_server::Watch for Unbuilt {}
impl pb::lease_server::Lease for Unbuilt {}
impl pb::auth_server::Auth for Unbuilt {}
