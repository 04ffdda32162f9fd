//! Real storage under simulated members (`synod-sim --storage real`).
//!
//! Each member gets the real `synod-storage` write-ahead log and snapshot store over its own
//! fault-injecting in-memory file system. Every write the simulated disk makes durable is also
//! written and synced there; a crash is a power cut of that file system (tearing the last
//! unsynced writes when the seed says so); a restart recovers the member from it with the real
//! recovery code. What recovery returns must equal what the member had made durable, or the
//! run fails with the `storage` checker; the engine then boots from what recovery returned, so
//! anything storage lost would also surface in the protocol checkers.

use std::path::Path;
use std::sync::Arc;

use synod_core::{DurableState, Index, SnapshotMeta, Write};
use synod_storage::fault::FaultFs;
use synod_storage::member::{self, LogPolicy};
use synod_storage::snapshot::SnapshotStore;
use synod_storage::wal::{Wal, WalBatch, WalOptions};

use super::disk::Disk;
use super::kv::KvSnapshot;

const WAL_DIR: &str = "/member/wal";
const SNAPSHOT_DIR: &str = "/member/snap";
/// Small segments, so that runs roll and compact segments often.
const SEGMENT_BYTES: u64 = 16 << 10;

/// One member's real storage.
pub struct RealStorage {
    fs: FaultFs,
    wal: Wal<FaultFs>,
    snapshots: SnapshotStore<FaultFs>,
}

impl std::fmt::Debug for RealStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealStorage").finish_non_exhaustive()
    }
}

fn encode_kv(snapshot: &KvSnapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 16 * snapshot.data.len());
    out.extend_from_slice(&snapshot.index.to_le_bytes());
    for (key, value) in &snapshot.data {
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
    out
}

fn decode_kv(bytes: &[u8]) -> Option<KvSnapshot> {
    if bytes.len() < 8 || !(bytes.len() - 8).is_multiple_of(16) {
        return None;
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let data = (8..bytes.len())
        .step_by(16)
        .map(|at| (word(at), word(at + 8)))
        .collect();
    Some(KvSnapshot {
        index: word(0),
        data,
    })
}

impl RealStorage {
    /// Storage for a member starting from `disk` (a fresh member's: its initial snapshot).
    pub fn create<H: DurableState + Clone>(disk: &Disk<H>) -> Result<Self, String> {
        let fs = FaultFs::new();
        let (wal, _) = Wal::open(
            fs.clone(),
            Path::new(WAL_DIR),
            WalOptions {
                segment_bytes: SEGMENT_BYTES,
                ..WalOptions::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let snapshots =
            SnapshotStore::open(fs.clone(), SNAPSHOT_DIR.into(), 2).map_err(|e| e.to_string())?;
        let mut storage = RealStorage { fs, wal, snapshots };
        storage.store_snapshot(&disk.snapshot, &disk.snapshot_data)?;
        Ok(storage)
    }

    fn store_snapshot(&mut self, meta: &SnapshotMeta, data: &KvSnapshot) -> Result<(), String> {
        let bytes = encode_kv(data);
        let mut writer = self
            .snapshots
            .begin(meta.clone())
            .map_err(|e| e.to_string())?;
        // In chunks, as a real snapshot stream arrives.
        for chunk in bytes.chunks(4096) {
            writer.write_chunk(chunk).map_err(|e| e.to_string())?;
        }
        writer.finish().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Makes `write` durable, as the simulated disk just did. `incoming` is the snapshot that
    /// arrived with the InstallSnapshot message, if the write installs one.
    pub fn persist<H: DurableState>(
        &mut self,
        write: &Write<H>,
        incoming: Option<&KvSnapshot>,
    ) -> Result<(), String> {
        if let (Some(meta), Some(data)) = (write.snapshot(), incoming) {
            self.store_snapshot(meta, data)?;
        }
        let hard_state = write.hard_state().map(|h| {
            let mut out = Vec::new();
            h.encode(&mut out);
            out
        });
        let batch = WalBatch {
            hard_state,
            // Installing a snapshot replaces the whole log.
            truncate_from: if write.snapshot().is_some() {
                Some(0)
            } else {
                write.truncate_from()
            },
            entries: write.entries().to_vec(),
        };
        self.wal.append(&batch).map_err(|e| e.to_string())?;
        if write.needs_sync() {
            self.wal.sync().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Stores a snapshot the member took itself, then drops the log segments it covers.
    pub fn install_own_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        data: &KvSnapshot,
    ) -> Result<(), String> {
        self.store_snapshot(meta, data)?;
        // Compaction may rewrite the newest hard state and sync it; sync first so that what
        // it makes durable is exactly everything written so far (as the model assumes).
        self.wal.sync().map_err(|e| e.to_string())?;
        self.wal.compact(meta.index).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// A power cut: every write not synced is lost; with `tear`, the last unsynced bytes of
    /// each file are kept up to a point drawn from `seed`.
    pub fn crash(&self, tear: Option<u64>) {
        match tear {
            None => self.fs.crash(),
            Some(seed) => {
                let mut state = seed | 1;
                self.fs.crash_tearing(|_, unsynced| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % (unsynced as u64 + 1)) as usize
                });
            }
        }
    }

    /// Recovers the member's durable state with the real recovery code. `log_matching` is the
    /// engine's `Engine::LOG_MATCHING`: it picks the rule for log entries above the snapshot
    /// (see `synod_storage::member`).
    pub fn recover<H: DurableState + Clone>(
        &mut self,
        log_matching: bool,
    ) -> Result<Disk<H>, String> {
        let (wal, recovered) = Wal::open(
            self.fs.clone(),
            Path::new(WAL_DIR),
            WalOptions {
                segment_bytes: SEGMENT_BYTES,
                ..WalOptions::default()
            },
        )
        .map_err(|e| format!("recovering the log: {e}"))?;
        let snapshots = SnapshotStore::open(self.fs.clone(), SNAPSHOT_DIR.into(), 2)
            .map_err(|e| format!("recovering the snapshots: {e}"))?;
        let meta = snapshots
            .newest()
            .cloned()
            .ok_or("recovery found no snapshot")?;
        let bytes = snapshots
            .read_all(meta.index)
            .map_err(|e| format!("reading snapshot {}: {e}", meta.index))?;
        let data = decode_kv(&bytes).ok_or("the snapshot's contents do not decode")?;
        let boot = member::recover(recovered, &meta, LogPolicy::from_log_matching(log_matching));
        let hard_state = match boot.hard_state {
            Some(bytes) => Some(H::decode(&bytes).ok_or("the hard state does not decode")?),
            None => None,
        };
        self.wal = wal;
        self.snapshots = snapshots;
        Ok(Disk {
            synced_hard_state: hard_state.clone(),
            hard_state,
            snapshot: meta,
            snapshot_data: Arc::new(data),
            entries: boot.entries,
        })
    }
}

/// Whether two disks hold the same durable state (entries at or below the snapshot aside).
pub fn same_durable_state<H: PartialEq>(a: &Disk<H>, b: &Disk<H>) -> Result<(), String> {
    let above = |d: &Disk<H>| -> Vec<(Index, synod_core::Entry)> {
        d.entries
            .range(d.snapshot.index + 1..)
            .map(|(&i, e)| (i, e.clone()))
            .collect()
    };
    if a.hard_state != b.hard_state {
        return Err("the hard state differs".into());
    }
    if a.snapshot != b.snapshot || a.snapshot_data != b.snapshot_data {
        return Err(format!(
            "the snapshot differs: {:?} recovered, {:?} made durable",
            a.snapshot, b.snapshot
        ));
    }
    let (ea, eb) = (above(a), above(b));
    if ea != eb {
        let first = ea
            .iter()
            .zip(&eb)
            .find(|(x, y)| x != y)
            .map(|(x, _)| x.0)
            .unwrap_or(ea.len().min(eb.len()) as u64);
        return Err(format!(
            "the log differs: {} entries recovered, {} made durable, first difference near {first}",
            ea.len(),
            eb.len()
        ));
    }
    Ok(())
}
