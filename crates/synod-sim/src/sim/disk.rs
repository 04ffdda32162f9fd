//! A member's simulated disk: exactly what the engine asked to persist and got back.

use std::collections::BTreeMap;
use std::sync::Arc;

use synod_core::{Entry, Index, SnapshotMeta, Write};

use super::kv::KvSnapshot;

/// The durable state of one simulated member.
#[derive(Clone, Debug)]
pub struct Disk<H> {
    /// The hard state last written, if any was ever written.
    pub hard_state: Option<H>,
    /// The hard state as of the last synced write: a crash falls back to it, losing a newer
    /// one that only changed volatile state (see [`Write::needs_sync`]).
    pub synced_hard_state: Option<H>,
    /// The durable snapshot's metadata (index 0 with the initial configuration for a new
    /// cluster).
    pub snapshot: SnapshotMeta,
    /// The durable snapshot's contents.
    pub snapshot_data: Arc<KvSnapshot>,
    /// Durable log entries after the snapshot, by index.
    pub entries: BTreeMap<Index, Entry>,
}

impl<H> Disk<H> {
    /// An empty disk whose snapshot is `snapshot` (with an empty state machine).
    pub fn new(snapshot: SnapshotMeta) -> Self {
        Disk {
            hard_state: None,
            synced_hard_state: None,
            snapshot,
            snapshot_data: Arc::new(KvSnapshot::default()),
            entries: BTreeMap::new(),
        }
    }

    /// Applies a write in the order [`Write`] documents. `incoming` is the snapshot that arrived
    /// with the InstallSnapshot message, if the write installs one.
    pub fn apply(&mut self, write: &Write<H>, incoming: Option<Arc<KvSnapshot>>)
    where
        H: Clone,
    {
        if let Some(meta) = write.snapshot() {
            let data = incoming.expect("snapshot contents arrive with the InstallSnapshot message");
            assert_eq!(
                data.index, meta.index,
                "snapshot contents match the metadata"
            );
            self.snapshot = meta.clone();
            self.snapshot_data = data;
            self.entries.clear();
        }
        if let Some(from) = write.truncate_from() {
            self.entries.split_off(&from);
        }
        for entry in write.entries() {
            self.entries.insert(entry.index, entry.clone());
        }
        if let Some(hard_state) = write.hard_state() {
            self.hard_state = Some(hard_state.clone());
        }
        if write.needs_sync() {
            self.synced_hard_state = self.hard_state.clone();
        }
    }

    /// A crash: what was written but never synced is lost.
    pub fn crash(&mut self)
    where
        H: Clone,
    {
        self.hard_state = self.synced_hard_state.clone();
    }

    /// Stores a snapshot the member took itself and drops the entries it covers.
    /// Storing it syncs whatever was written before.
    pub fn install_own_snapshot(&mut self, meta: SnapshotMeta, data: Arc<KvSnapshot>)
    where
        H: Clone,
    {
        self.synced_hard_state = self.hard_state.clone();
        self.entries = self.entries.split_off(&(meta.index + 1));
        self.snapshot = meta;
        self.snapshot_data = data;
    }

    /// The entries after the snapshot, in order.
    pub fn log(&self) -> Vec<Entry> {
        self.entries
            .range(self.snapshot.index + 1..)
            .map(|(_, e)| e.clone())
            .collect()
    }
}
