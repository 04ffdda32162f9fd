//! One member's durable state on disk: the data directory (locked against a second process),
//! the write-ahead log, the snapshot store, and the persister thread that makes the engine's
//! writes durable with one `fdatasync` per round.
//!
//! Layout of `--data-dir`:
//!
//! | path | what |
//! |---|---|
//! | `synod.lock` | held (advisory lock) while a process uses the directory |
//! | `member/identity` | engine, cluster id and member id, checked at every start |
//! | `member/wal/` | the write-ahead log ([`synod_storage::wal`]) |
//! | `member/snap/` | state-machine snapshots ([`synod_storage::snapshot`]) |
//! | `member/incoming/` | snapshots streamed from the leader, staged until the engine takes them |
//!
//! A snapshot from the leader is staged as it arrives and enters the snapshot store only when
//! the engine asks for it to be installed (a write carrying its metadata): the persister
//! stores it (synced, renamed, directory synced), then logs the truncation that goes with it.
//! So the store only ever holds snapshots the engine accepted, in increasing order.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use synod_core::{DurableState, Entry, Index, NodeId, SnapshotMeta, Term, Write};
use synod_storage::fs::RealFs;
use synod_storage::member::{LogPolicy, recover};
use synod_storage::snapshot::{SnapshotError, SnapshotReader, SnapshotStore, SnapshotWriter};
use synod_storage::wal::{Wal, WalBatch, WalOptions};
use thiserror::Error;
use tokio::sync::mpsc;

/// Snapshots kept on disk.
const KEEP_SNAPSHOTS: usize = 2;
/// Chunk size for writing and streaming snapshots.
pub const SNAPSHOT_CHUNK: usize = 1 << 20;

/// Why the member's storage could not be opened or written.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The directory holds no data but the member was told to rejoin an existing cluster.
    #[error(
        "--initial-cluster-state existing, but {0} holds no data; adding a member to a running cluster (MemberAdd) is not supported yet"
    )]
    NoExistingData(PathBuf),
    /// Another process holds the data directory.
    #[error(
        "data directory {0} is in use by another synod process (its lock file is held); stop that process or pick another --data-dir"
    )]
    Locked(PathBuf),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The directory belongs to another cluster, member or engine.
    #[error("data directory {path} {detail}")]
    Identity {
        /// The directory.
        path: PathBuf,
        /// The mismatch.
        detail: String,
    },
    /// The log failed.
    #[error("write-ahead log: {0}")]
    Wal(#[from] synod_storage::wal::WalError),
    /// The snapshot store failed.
    #[error("snapshot store: {0}")]
    Snapshot(#[from] synod_storage::snapshot::SnapshotError),
    /// The recovered state does not decode.
    #[error("recovered state is damaged: {0}")]
    Damaged(String),
}

/// Who a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `raft` or `multipaxos`.
    pub engine: String,
    /// The cluster id.
    pub cluster_id: u64,
    /// The member id.
    pub member_id: NodeId,
}

impl Identity {
    fn encode(&self) -> String {
        format!(
            "engine={}\ncluster_id={:x}\nmember_id={:x}\n",
            self.engine, self.cluster_id, self.member_id
        )
    }

    fn decode(text: &str) -> Option<Identity> {
        let mut engine = None;
        let mut cluster = None;
        let mut member = None;
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "engine" => engine = Some(v.to_string()),
                "cluster_id" => cluster = u64::from_str_radix(v, 16).ok(),
                "member_id" => member = u64::from_str_radix(v, 16).ok(),
                _ => return None,
            }
        }
        Some(Identity {
            engine: engine?,
            cluster_id: cluster?,
            member_id: member?,
        })
    }
}

/// What the member boots from.
#[derive(Debug)]
pub struct Recovered<H> {
    /// The newest hard state.
    pub hard_state: Option<H>,
    /// The newest snapshot (index 0 for a new member); its contents are read with
    /// [`MemberStorage::read_snapshot_with`].
    pub snapshot: SnapshotMeta,
    /// Log entries after the snapshot.
    pub entries: Vec<Entry>,
    /// Whether the directory was empty (a new member).
    pub fresh: bool,
    /// Resolves once the storage returned beside this has been dropped, its files closed and
    /// the data directory's lock released.
    pub released: tokio::sync::oneshot::Receiver<()>,
}

/// A member's storage. Shared between the node, the persister thread and the transport.
pub struct MemberStorage {
    wal: Mutex<Wal<RealFs>>,
    snapshots: Mutex<SnapshotStore<RealFs>>,
    /// Where `snapshots` keeps its files.
    snapshot_dir: PathBuf,
    dir: PathBuf,
    incoming: PathBuf,
    _lock: File,
    /// Dropped after every field above (fields drop in order), the lock file included: its
    /// receiver then learns that the data directory is free.
    _released: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for MemberStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberStorage")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { what, path, source }
}

impl MemberStorage {
    /// Opens (creating if needed) the data directory, takes its lock, checks its identity,
    /// and recovers. `initial` is the snapshot a brand-new member starts from; with
    /// `may_create` false an empty directory is refused before anything is written.
    pub fn open<H: DurableState>(
        data_dir: &Path,
        identity: &Identity,
        may_create: bool,
        initial: impl FnOnce() -> (SnapshotMeta, Vec<u8>),
        policy: LogPolicy,
    ) -> Result<(Arc<MemberStorage>, Recovered<H>), StorageError> {
        std::fs::create_dir_all(data_dir).map_err(io("creating", data_dir))?;
        let lock_path = data_dir.join("synod.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StorageError::Locked(data_dir.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("locking", &lock_path)(e)),
        }
        let member = data_dir.join("member");
        std::fs::create_dir_all(&member).map_err(io("creating", &member))?;
        let id_path = member.join("identity");
        let fresh = match std::fs::read_to_string(&id_path) {
            Ok(text) => {
                let found = Identity::decode(&text).ok_or_else(|| StorageError::Identity {
                    path: data_dir.to_path_buf(),
                    detail: format!("has an unreadable identity file {}", id_path.display()),
                })?;
                if found != *identity {
                    return Err(StorageError::Identity {
                        path: data_dir.to_path_buf(),
                        detail: format!(
                            "belongs to member {:x} of cluster {:x} running {}, not member {:x} of cluster {:x} running {}; pass the matching flags or another --data-dir",
                            found.member_id,
                            found.cluster_id,
                            found.engine,
                            identity.member_id,
                            identity.cluster_id,
                            identity.engine
                        ),
                    });
                }
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !may_create {
                    return Err(StorageError::NoExistingData(data_dir.to_path_buf()));
                }
                true
            }
            Err(e) => return Err(io("reading", &id_path)(e)),
        };
        let incoming = member.join("incoming");
        // Staged snapshots do not survive a restart: the leader sends again.
        match std::fs::remove_dir_all(&incoming) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("clearing", &incoming)(e)),
        }
        std::fs::create_dir_all(&incoming).map_err(io("creating", &incoming))?;
        let (wal, recovered) = Wal::open(RealFs, &member.join("wal"), WalOptions::default())?;
        for warning in &recovered.warnings {
            tracing::warn!(%warning, "write-ahead log recovery");
        }
        let mut snapshots = SnapshotStore::open(RealFs, member.join("snap"), KEEP_SNAPSHOTS)?;
        for warning in snapshots.warnings() {
            tracing::warn!(?warning, "snapshot recovery");
        }
        if fresh {
            if snapshots.newest().is_some() || !recovered.entries.is_empty() {
                return Err(StorageError::Identity {
                    path: data_dir.to_path_buf(),
                    detail: "holds a log or snapshots but no identity file; refusing to guess whose they are".into(),
                });
            }
            let (meta, data) = initial();
            let mut writer = snapshots.begin(meta)?;
            for chunk in data.chunks(SNAPSHOT_CHUNK) {
                writer.write_chunk(chunk)?;
            }
            writer.finish()?;
            // The identity goes last: a crash before it leaves a directory that starts afresh.
            let tmp = member.join("identity.tmp");
            std::fs::write(&tmp, identity.encode()).map_err(io("writing", &tmp))?;
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io("syncing", &tmp))?;
            std::fs::rename(&tmp, &id_path).map_err(io("renaming", &tmp))?;
            File::open(&member)
                .and_then(|f| f.sync_all())
                .map_err(io("syncing", &member))?;
        }
        let snapshot = snapshots
            .newest()
            .cloned()
            .ok_or_else(|| StorageError::Damaged("no valid snapshot found".into()))?;
        let booted = recover(recovered, &snapshot, policy);
        for warning in &booted.warnings {
            tracing::warn!(%warning, "recovery");
        }
        let hard_state =
            match booted.hard_state {
                Some(bytes) => Some(H::decode(&bytes).ok_or_else(|| {
                    StorageError::Damaged("the hard state does not decode".into())
                })?),
                None => None,
            };
        let (released_tx, released_rx) = tokio::sync::oneshot::channel();
        let storage = Arc::new(MemberStorage {
            wal: Mutex::new(wal),
            snapshot_dir: snapshots.dir().to_path_buf(),
            snapshots: Mutex::new(snapshots),
            dir: data_dir.to_path_buf(),
            incoming,
            _lock: lock,
            _released: released_tx,
        });
        Ok((
            storage,
            Recovered {
                hard_state,
                snapshot,
                entries: booted.entries.into_values().collect(),
                fresh,
                released: released_rx,
            },
        ))
    }

    /// The snapshot store (streaming out, installing from the leader).
    pub fn snapshots(&self) -> MutexGuard<'_, SnapshotStore<RealFs>> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The path of the installed snapshot with this index and term, found without the
    /// snapshot store: a snapshot being written holds the store for as long as that takes,
    /// and a peer catching up should not wait for it. The snapshot may be pruned before the
    /// file is opened; opening or reading it then fails.
    pub fn snapshot_path(&self, index: Index, term: Term) -> PathBuf {
        synod_storage::snapshot::snapshot_path_in(&self.snapshot_dir, index, term)
    }

    fn wal(&self) -> MutexGuard<'_, Wal<RealFs>> {
        self.wal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a snapshot this member took, its contents streamed by `write_data` into a
    /// buffered writer (they are never all in memory). Returns false if a newer snapshot
    /// (installed from the leader meanwhile) made it pointless. The log it covers stays until
    /// [`MemberStorage::compact_log`], which the caller runs once it no longer needs whatever
    /// `write_data` read from.
    pub fn save_own_snapshot(
        &self,
        meta: SnapshotMeta,
        write_data: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<bool, StorageError> {
        let index = meta.index;
        let mut store = self.snapshots();
        if !store.snapshots().iter().any(|s| s.index == index) {
            let writer = match store.begin(meta) {
                Ok(writer) => writer,
                Err(SnapshotError::Stale { .. }) => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            let mut sink = ChunkSink {
                writer,
                failure: None,
            };
            let written = {
                let mut buffered = std::io::BufWriter::with_capacity(SNAPSHOT_CHUNK, &mut sink);
                write_data(&mut buffered).and_then(|()| std::io::Write::flush(&mut buffered))
            };
            if let Err(error) = written {
                // The store's own error if the file failed; otherwise the contents did.
                return Err(match sink.failure.take() {
                    Some(failure) => failure.into(),
                    None => StorageError::Io {
                        what: "encoding the snapshot",
                        path: sink.writer.temporary_path().to_path_buf(),
                        source: error,
                    },
                });
            }
            sink.writer.finish()?;
        }
        Ok(true)
    }

    /// Drops the log segments that the snapshot at `index` covers.
    pub fn compact_log(&self, index: Index) -> Result<(), StorageError> {
        self.wal().compact(index)?;
        Ok(())
    }

    /// Where a snapshot streamed from the leader is staged.
    pub fn staged_path(&self, meta: &SnapshotMeta) -> PathBuf {
        self.incoming
            .join(format!("{:020}-{:020}.snap", meta.index, meta.term))
    }

    /// Starts the persister thread. Writes sent to the returned sender are made durable in
    /// order, a round at a time (every write queued during a sync shares the next one), and
    /// come back on `done` in the same order. A failure is reported once and stops the thread.
    pub fn start_persister<H: DurableState + Send + 'static>(
        self: &Arc<Self>,
        done: mpsc::UnboundedSender<Result<Vec<Write<H>>, StorageError>>,
    ) -> std::sync::mpsc::Sender<Write<H>> {
        let (tx, rx) = std::sync::mpsc::channel::<Write<H>>();
        let storage = self.clone();
        std::thread::Builder::new()
            .name("synod-persist".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut round = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        round.push(more);
                    }
                    let result = storage.persist_round(&round);
                    let failed = result.is_err();
                    if done.send(result.map(|()| round)).is_err() || failed {
                        return;
                    }
                }
            })
            .expect("spawning the persister thread");
        tx
    }

    /// Makes a round of writes durable, in order, on the calling thread: appends them to the
    /// log and syncs it once if any of them needs a sync ([`Write::needs_sync`]). The persister
    /// thread runs this; the node runs it itself for a write that needs no sync when nothing
    /// is queued ahead of it.
    pub fn persist_round<H: DurableState>(&self, round: &[Write<H>]) -> Result<(), StorageError> {
        for write in round {
            if let Some(meta) = write.snapshot() {
                self.install_staged(meta)?;
            }
        }
        let mut wal = self.wal();
        for write in round {
            if write.is_empty() {
                continue;
            }
            let hard_state = write.hard_state().map(|h| {
                let mut out = Vec::new();
                h.encode(&mut out);
                out
            });
            let batch = WalBatch {
                hard_state,
                // The snapshot itself was stored above; installing it replaces the whole log.
                truncate_from: if write.snapshot().is_some() {
                    Some(0)
                } else {
                    write.truncate_from()
                },
                entries: write.entries().to_vec(),
            };
            wal.append(&batch)?;
        }
        // A round of writes that hold only volatile state (a commit index) skips the sync; the
        // next synced round covers them.
        if round.iter().any(Write::needs_sync) {
            wal.sync()?;
        }
        Ok(())
    }

    /// The newest snapshot's metadata.
    pub fn newest_snapshot(&self) -> Option<SnapshotMeta> {
        self.snapshots().newest().cloned()
    }

    /// The key-value store saved in the snapshot at `index`, read a chunk at a time.
    pub fn read_store(&self, index: Index) -> Result<synod_kv::MvccStore, StorageError> {
        self.read_snapshot_with(index, |source, len| {
            synod_kv::MvccStore::read_snapshot(source, len)
                .map(|(store, _)| store)
                .map_err(|e| e.to_string())
        })
    }

    /// Decodes the state-machine contents of the snapshot at `index` with `decode`, which
    /// reads them from a buffered source (given their length), a chunk at a time: they are
    /// never all in memory. The file's CRC is checked once `decode` is done, so a result comes
    /// back only from contents that passed it.
    pub fn read_snapshot_with<T>(
        &self,
        index: Index,
        decode: impl FnOnce(&mut dyn std::io::Read, u64) -> Result<T, String>,
    ) -> Result<T, StorageError> {
        let (path, term) = {
            let store = self.snapshots();
            let meta = store
                .snapshots()
                .iter()
                .find(|s| s.index == index)
                .cloned()
                .ok_or(SnapshotError::NotFound(index))?;
            (store.snapshot_path(index, meta.term), meta.term)
        };
        // Read without holding the store, as the transport streams one to a peer.
        let fs = RealFs;
        let reader = SnapshotReader::open(&fs, path.clone(), index, term)?;
        let len = reader.content_len();
        let mut source = ChunkSource {
            reader,
            chunk: Vec::new(),
            at: 0,
            failure: None,
        };
        let damaged = |detail: String| StorageError::Damaged(format!("snapshot {index}: {detail}"));
        let decoded = decode(&mut source, len);
        // The read that finds the end checks the CRC.
        let end = decoded
            .as_ref()
            .ok()
            .map(|_| std::io::Read::read(&mut source, &mut [0]));
        // The store's own error (I/O, CRC) explains a failure best.
        if let Some(failure) = source.failure.take() {
            return Err(failure.into());
        }
        let value = decoded.map_err(damaged)?;
        match end {
            Some(Ok(0)) => Ok(value),
            Some(Ok(_)) => Err(damaged("bytes after the decoded contents".into())),
            Some(Err(e)) => Err(damaged(e.to_string())),
            // `end` is read whenever the contents decoded.
            None => Err(damaged("the end of the contents was not read".into())),
        }
    }

    /// Moves a staged snapshot into the store (synced), unless it is there already.
    fn install_staged(&self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        let staged = self.staged_path(meta);
        let mut store = self.snapshots();
        if store.snapshots().iter().any(|s| s.index == meta.index) {
            return Ok(());
        }
        let mut file = File::open(&staged).map_err(io("opening the staged snapshot", &staged))?;
        let mut writer = store.begin(meta.clone())?;
        let mut buffer = vec![0; SNAPSHOT_CHUNK];
        loop {
            let n = std::io::Read::read(&mut file, &mut buffer)
                .map_err(io("reading the staged snapshot", &staged))?;
            if n == 0 {
                break;
            }
            writer.write_chunk(&buffer[..n])?;
        }
        writer.finish()?;
        drop(store);
        // The store holds it now; the staged copy may go (a leftover is cleared at start).
        let _ = std::fs::remove_file(&staged);
        Ok(())
    }
}

/// A snapshot being read, as a [`std::io::Read`] (a chunk of its contents at a time).
struct ChunkSource<'a> {
    reader: SnapshotReader<'a, RealFs>,
    chunk: Vec<u8>,
    /// How much of `chunk` was read.
    at: usize,
    /// The store's error behind a failed read, which `io::Error` cannot carry whole.
    failure: Option<SnapshotError>,
}

impl std::io::Read for ChunkSource<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.reader.next_chunk(SNAPSHOT_CHUNK) {
                Ok(Some(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                // The whole content was returned and its CRC verified.
                Ok(None) => return Ok(0),
                Err(failure) => {
                    let error = std::io::Error::other(failure.to_string());
                    self.failure = Some(failure);
                    return Err(error);
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A snapshot being written, as a [`std::io::Write`] (each write a chunk of its contents).
struct ChunkSink<'a> {
    writer: SnapshotWriter<'a, RealFs>,
    /// The store's error behind the last failed write, which `io::Error` cannot carry whole.
    failure: Option<SnapshotError>,
}

impl std::io::Write for ChunkSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.writer.write_chunk(buf) {
            Ok(()) => Ok(buf.len()),
            Err(failure) => {
                let error = std::io::Error::other(failure.to_string());
                // The first failure is the cause; a later write (the buffer's flush when it is
                // dropped, say) only finds the writer already broken.
                self.failure.get_or_insert(failure);
                Err(error)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_core::Membership;
    use synod_kv::MvccStore;
    use synod_kv::PutRequest;
    use synod_kv::command::Command;

    fn open(dir: &Path) -> Arc<MemberStorage> {
        let identity = Identity {
            engine: "raft".into(),
            cluster_id: 7,
            member_id: 1,
        };
        let initial = || {
            let meta = SnapshotMeta {
                index: 0,
                term: 0,
                membership: Membership::with_voters([1]),
            };
            (meta, MvccStore::new().snapshot())
        };
        MemberStorage::open::<synod_raft::HardState>(
            dir,
            &identity,
            true,
            initial,
            LogPolicy::LogMatching,
        )
        .expect("a fresh data directory")
        .0
    }

    fn store_of(keys: usize) -> MvccStore {
        let mut store = MvccStore::new();
        for i in 0..keys {
            let put = PutRequest {
                key: format!("key/{i:05}").into_bytes().into(),
                value: vec![(i % 251) as u8; 300].into(),
                ..Default::default()
            };
            store.apply(&Command::Put(put)).expect("a put");
        }
        store
    }

    fn meta(index: Index) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term: 1,
            membership: Membership::with_voters([1]),
        }
    }

    #[test]
    fn a_snapshot_streamed_to_disk_reads_back_as_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path());
        // Larger than one chunk, so that writing and reading both cross chunk boundaries.
        let store = store_of(5_000);
        assert!(
            storage
                .save_own_snapshot(meta(10), |out| store.write_snapshot(10, out))
                .unwrap()
        );
        assert_eq!(storage.read_store(10).unwrap(), store);
        // The same index again is already there: nothing is written.
        assert!(
            storage
                .save_own_snapshot(meta(10), |_| Err(std::io::Error::other("not called")))
                .unwrap()
        );
    }

    /// A peer catching up streams the newest snapshot from its path while this member may be
    /// writing its next one, which holds the snapshot store throughout.
    #[test]
    fn a_snapshots_path_is_found_while_another_is_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path());
        let store = store_of(100);
        assert!(
            storage
                .save_own_snapshot(meta(10), |out| store.write_snapshot(10, out))
                .unwrap()
        );
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let writer = {
            let storage = storage.clone();
            let store = store.clone();
            std::thread::spawn(move || {
                storage.save_own_snapshot(meta(20), |out| {
                    started_tx.send(()).unwrap();
                    // Held until the path below was found (or the test gave up on it).
                    let _ = finish_rx.recv_timeout(std::time::Duration::from_secs(10));
                    store.write_snapshot(20, out)
                })
            })
        };
        started_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second snapshot began");
        let (found_tx, found_rx) = std::sync::mpsc::channel();
        {
            let storage = storage.clone();
            std::thread::spawn(move || found_tx.send(storage.snapshot_path(10, 1)));
        }
        let path = found_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the path is found while the other snapshot is written");
        finish_tx.send(()).unwrap();
        assert!(writer.join().unwrap().unwrap());
        // The store's own answer, now that it is free (asked for above, it would have waited).
        assert_eq!(path, storage.snapshots().snapshot_path(10, 1));
        assert!(storage.snapshot_path(20, 1).exists());
    }

    #[test]
    fn a_damaged_snapshot_or_failed_encoding_is_an_error_and_leaves_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path());
        let store = store_of(3_000);
        storage
            .save_own_snapshot(meta(20), |out| store.write_snapshot(20, out))
            .unwrap();
        // Rot one byte in the middle of the contents: the CRC catches it at the end.
        let path = storage.snapshots().snapshot_path(20, 1);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let error = storage.read_store(20).unwrap_err();
        assert!(
            matches!(error, StorageError::Snapshot(_) | StorageError::Damaged(_)),
            "{error}"
        );
        // Contents that are not a store: a decode error names the snapshot.
        storage
            .save_own_snapshot(meta(30), |out| out.write_all(b"not a store at all"))
            .unwrap();
        let error = storage.read_store(30).unwrap_err().to_string();
        assert!(error.contains("snapshot 30"), "{error}");
        // An encoder that fails stops the write; no snapshot 40 appears.
        let error = storage
            .save_own_snapshot(meta(40), |out| {
                out.write_all(&[1; 100])?;
                Err(std::io::Error::other("encoder gave up"))
            })
            .unwrap_err();
        assert!(error.to_string().contains("encoder gave up"), "{error}");
        assert!(
            storage
                .snapshots()
                .snapshots()
                .iter()
                .all(|s| s.index != 40)
        );
    }
}
