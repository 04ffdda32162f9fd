//! The store as bytes, for state-machine snapshots (log compaction and catching up a member).
//!
//! A snapshot also records the log index of the last command applied to the store, so that a
//! member restoring it knows where in the log to resume applying.
//!
//! | field | encoding |
//! |---|---|
//! | magic | `SYNKV002` (8 bytes; version 1 had no applied index and no size) |
//! | applied index | `u64` little-endian |
//! | current revision, compacted revision | `i64` little-endian each |
//! | size | `u64`: [`MvccStore::size_bytes`], which must match the versions that follow |
//! | key count | `u64` |
//! | per key, in increasing byte order: the key | `u32` length, bytes |
//! | per key: version count | `u32` |
//! | per version: revision, kind | `i64`; a byte, 0 for a deletion, 1 for a value |
//! | per value: create revision, version, lease, value | `i64` ×3; `u32` length, bytes |
//!
//! Decoding checks every length against what is left and the store's invariants at the end
//! (the recorded size included), so damaged bytes give an error, never a panic or a store that
//! breaks its invariants. Other versions of the format are refused.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::ops::Bound;

use thiserror::Error;

use crate::history::{History, Version};
use crate::store::MvccStore;
use crate::types::Revision;

const MAGIC: &[u8; 8] = b"SYNKV002";

/// The fewest bytes a key takes: its length (4), one byte of key, its version count (4) and
/// one version (a revision and a kind: 9).
const MIN_KEY_BYTES: u64 = 4 + 1 + 4 + 9;

/// How many keys [`MvccStore::read_snapshot`] reserves room for before it has read them.
const MAX_RESERVED_KEYS: usize = 1 << 16;

/// How many versions of one key it reserves room for before it has read them.
const MAX_RESERVED_VERSIONS: usize = 1 << 10;

/// Where a snapshot being written a chunk at a time has got to (see
/// [`MvccStore::begin_snapshot`]).
#[derive(Debug)]
pub struct SnapshotCursor {
    applied_index: u64,
    /// The revision the snapshot shows; later versions are left out.
    revision: Revision,
    /// The store's compacted revision when the snapshot began.
    compacted: Revision,
    /// Up to where history was removed when the snapshot began, which must not move. Below
    /// `compacted`, the snapshot cannot be written (the format has no room for history kept
    /// past the compacted revision).
    removed: Revision,
    size_bytes: u64,
    /// The keys the snapshot holds (the header says so before they are written).
    keys: u64,
    keys_written: u64,
    /// The last key written: the next chunk starts after it. `None` before the first chunk.
    after: Option<Box<[u8]>>,
    done: bool,
}

impl SnapshotCursor {
    /// The revision the snapshot shows.
    pub fn revision(&self) -> Revision {
        self.revision
    }
}

/// Why snapshot bytes could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// The bytes are not a store snapshot, or end early, or hold an impossible store.
    #[error("not a valid key-value snapshot: {0}")]
    Invalid(String),
}

fn invalid(what: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid(what.into())
}

/// Snapshot bytes being decoded from a source that holds `left` more of them.
struct Reader<'a, R: Read + ?Sized> {
    source: &'a mut R,
    left: u64,
}

impl<R: Read + ?Sized> Reader<'_, R> {
    /// Reads exactly `out.len()` bytes, refusing to read past the snapshot's length.
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SnapshotError> {
        let n = out.len() as u64;
        if self.left < n {
            return Err(invalid(format!(
                "truncated: {n} bytes needed, {} left",
                self.left
            )));
        }
        self.source
            .read_exact(out)
            .map_err(|e| invalid(format!("reading: {e}")))?;
        self.left -= n;
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut out = [0; N];
        self.fill(&mut out)?;
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, SnapshotError> {
        self.array().map(i64::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        self.array().map(u32::from_le_bytes)
    }

    fn byte(&mut self) -> Result<u8, SnapshotError> {
        self.array::<1>().map(|[b]| b)
    }

    /// A length-prefixed byte string; its length is checked against what is left before
    /// anything is allocated for it.
    fn bytes(&mut self) -> Result<Box<[u8]>, SnapshotError> {
        let len = u64::from(self.u32()?);
        if len > self.left {
            return Err(invalid(format!(
                "truncated: {len} bytes needed, {} left",
                self.left
            )));
        }
        let mut out = vec![0; len as usize].into_boxed_slice();
        self.fill(&mut out)?;
        Ok(out)
    }
}

fn put_bytes(out: &mut (impl Write + ?Sized), bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "a key or value of 4 GiB or more",
        )
    })?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

impl MvccStore {
    /// The whole store as bytes, recording an applied index of 0.
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_with_applied_index(0)
    }

    /// The whole store as bytes, with the log index of the last command applied to it.
    pub fn snapshot_with_applied_index(&self, applied_index: u64) -> Vec<u8> {
        if self.removal_pending() {
            // Only a copy can have it removed; the bytes are those of the store with it gone.
            let mut copy = self.clone();
            copy.remove_compacted();
            return copy.snapshot_with_applied_index(applied_index);
        }
        // Sized exactly before it is written: a vector left to grow would hold up to twice the
        // store's size while it exists, and copy it on the way.
        let mut out = Vec::with_capacity(self.snapshot_len());
        self.write_snapshot(applied_index, &mut out)
            .expect("writing into memory cannot fail");
        debug_assert_eq!(out.len(), out.capacity(), "snapshot_len is exact");
        out
    }

    /// Writes [`MvccStore::snapshot_with_applied_index`]'s bytes to `out`, a piece at a time,
    /// without holding them all in memory (`out` should buffer: fields are written one by
    /// one). Fails only if `out` does.
    pub fn write_snapshot(
        &self,
        applied_index: u64,
        out: &mut (impl Write + ?Sized),
    ) -> io::Result<()> {
        if self.removal_pending() {
            let mut copy = self.clone();
            copy.remove_compacted();
            return copy.write_snapshot(applied_index, out);
        }
        let mut cursor = self.begin_snapshot(applied_index);
        while !self.write_snapshot_chunk(&mut cursor, out, usize::MAX)? {}
        Ok(())
    }

    /// Starts a snapshot of the store as it is now, to be written a chunk at a time by
    /// [`MvccStore::write_snapshot_chunk`] while the store goes on taking writes in between.
    ///
    /// The snapshot shows the store at its current revision: a later write only adds
    /// versions of later revisions (and keys that have no earlier ones), which the chunks
    /// leave out. Compacted history must not be removed until the snapshot is written (a
    /// compaction meanwhile must be [`MvccStore::compact_deferring_removal`]), nor the store
    /// replaced; and none may wait to be removed when the snapshot begins. A chunk refuses to
    /// go on if any of these happened.
    pub fn begin_snapshot(&self, applied_index: u64) -> SnapshotCursor {
        SnapshotCursor {
            applied_index,
            revision: self.current,
            compacted: self.compacted,
            removed: self.removed,
            size_bytes: self.size_bytes,
            keys: self.keys.len() as u64,
            keys_written: 0,
            after: None,
            done: false,
        }
    }

    /// Writes the next piece of the snapshot `cursor` began (the header first), stopping at
    /// the first key boundary after about `max_bytes`. Returns whether the snapshot is now
    /// complete. Fails if `out` does, or if compacted history was removed or the store
    /// replaced since the snapshot began (its bytes would then not be one store's), or if
    /// removed history waited to be removed when it began.
    pub fn write_snapshot_chunk(
        &self,
        cursor: &mut SnapshotCursor,
        out: &mut (impl Write + ?Sized),
        max_bytes: usize,
    ) -> io::Result<bool> {
        if cursor.done {
            return Ok(true);
        }
        if cursor.removed < cursor.compacted {
            return Err(io::Error::other(format!(
                "a snapshot of revision {} began while history compacted at {} waited to be \
                 removed",
                cursor.revision, cursor.compacted
            )));
        }
        if self.removed != cursor.removed || self.current < cursor.revision {
            return Err(io::Error::other(format!(
                "the store changed under a snapshot of revision {}: history removed up to {} \
                 (was {}), current revision {}",
                cursor.revision, self.removed, cursor.removed, self.current
            )));
        }
        let mut written = 0;
        let keys = match &cursor.after {
            None => {
                out.write_all(MAGIC)?;
                out.write_all(&cursor.applied_index.to_le_bytes())?;
                out.write_all(&cursor.revision.to_le_bytes())?;
                out.write_all(&cursor.compacted.to_le_bytes())?;
                out.write_all(&cursor.size_bytes.to_le_bytes())?;
                out.write_all(&cursor.keys.to_le_bytes())?;
                self.keys.range::<[u8], _>(..)
            }
            Some(after) => self
                .keys
                .range::<[u8], _>((Bound::Excluded(&**after), Bound::Unbounded)),
        };
        for (key, versions) in keys {
            // Versions are in revision order: those the snapshot shows come first. A key
            // with none was created after the snapshot began.
            let shown = versions
                .iter()
                .take_while(|v| v.revision <= cursor.revision)
                .count();
            if shown == 0 {
                continue;
            }
            put_bytes(out, key)?;
            out.write_all(&(shown as u32).to_le_bytes())?;
            written += 8 + key.len();
            for version in &versions[..shown] {
                out.write_all(&version.revision.to_le_bytes())?;
                match version.value() {
                    None => out.write_all(&[0])?,
                    Some(value) => {
                        out.write_all(&[1])?;
                        for field in [version.create_revision, version.version, version.lease] {
                            out.write_all(&field.to_le_bytes())?;
                        }
                        put_bytes(out, value)?;
                        written += 28 + value.len();
                    }
                }
                written += 9;
            }
            cursor.keys_written += 1;
            if written >= max_bytes {
                cursor.after = Some(key.clone());
                return Ok(false);
            }
        }
        cursor.done = true;
        if cursor.keys_written != cursor.keys {
            return Err(io::Error::other(format!(
                "a snapshot of {} keys wrote {}: keys were removed while it was written",
                cursor.keys, cursor.keys_written
            )));
        }
        Ok(true)
    }

    /// The length of [`MvccStore::snapshot`]'s bytes: the table in the
    /// [module documentation](self), summed.
    fn snapshot_len(&self) -> usize {
        let header = MAGIC.len() + 8 * 5;
        let keys: usize = self
            .keys
            .iter()
            .map(|(key, versions)| {
                let values: usize = versions
                    .iter()
                    .map(|v| 9 + v.value().map_or(0, |value| 8 * 3 + 4 + value.len()))
                    .sum();
                4 + key.len() + 4 + values
            })
            .sum();
        header + keys
    }

    /// A store from [`MvccStore::snapshot`]'s bytes (the applied index is dropped).
    pub fn restore(bytes: &[u8]) -> Result<MvccStore, SnapshotError> {
        MvccStore::restore_with_applied_index(bytes).map(|(store, _)| store)
    }

    /// A store and the applied index recorded with it, from
    /// [`MvccStore::snapshot_with_applied_index`]'s bytes.
    pub fn restore_with_applied_index(bytes: &[u8]) -> Result<(MvccStore, u64), SnapshotError> {
        MvccStore::read_snapshot(&mut &bytes[..], bytes.len() as u64)
    }

    /// A store and the applied index recorded with it, decoded from the next `len` bytes of
    /// `source` (one [`MvccStore::write_snapshot`] wrote) without holding them all in memory
    /// (`source` should buffer: fields are read one by one). Every length is checked against
    /// `len` before anything is allocated for it. A failed read is an error like damage.
    pub fn read_snapshot(
        source: &mut (impl Read + ?Sized),
        len: u64,
    ) -> Result<(MvccStore, u64), SnapshotError> {
        let mut reader = Reader { source, left: len };
        if reader.array::<8>()? != *MAGIC {
            return Err(invalid("bad magic"));
        }
        let applied_index = reader.u64()?;
        let mut store = MvccStore::new();
        store.current = reader.i64()?;
        store.compacted = reader.i64()?;
        store.removed = store.compacted;
        // Checked against the versions by `check` below.
        store.size_bytes = reader.u64()?;
        let keys = reader.u64()?;
        // Every key takes at least 18 bytes (its length, one byte of key, a version count and
        // one version): a count the rest cannot hold is damage.
        if keys > reader.left / MIN_KEY_BYTES {
            return Err(invalid("a key count beyond the snapshot's size"));
        }
        // The counts are not yet covered by the CRC (checked at the end), and an entry in
        // memory is several times its bytes on disk: reserve no more than a bounded amount on
        // their word; the vectors grow if the data bears them out.
        let mut entries: Vec<(Box<[u8]>, History)> =
            Vec::with_capacity((keys as usize).min(MAX_RESERVED_KEYS));
        for _ in 0..keys {
            let key = reader.bytes()?;
            let count = reader.u32()? as usize;
            // Every version takes at least 9 bytes: a count the rest cannot hold is damage.
            if count as u64 > reader.left / 9 {
                return Err(invalid("a version count beyond the snapshot's size"));
            }
            let mut versions = Vec::with_capacity(count.min(MAX_RESERVED_VERSIONS));
            for _ in 0..count {
                let revision = reader.i64()?;
                let version = match reader.byte()? {
                    0 => Version::tombstone(revision),
                    1 => {
                        let create_revision = reader.i64()?;
                        let version = reader.i64()?;
                        let lease = reader.i64()?;
                        let value = reader.bytes()?;
                        // A version of 0 would read as a tombstone: refuse it here, where the
                        // kind says otherwise.
                        if version < 1 {
                            return Err(invalid(format!("a value of version {version}")));
                        }
                        Version {
                            revision,
                            create_revision,
                            version,
                            lease,
                            value,
                        }
                    }
                    tag => return Err(invalid(format!("unknown version kind {tag}"))),
                };
                versions.push(version);
            }
            let history = match versions.len() {
                0 => return Err(invalid("a key with no history")),
                1 => History::One(versions.pop().expect("one version")),
                _ => History::Many(versions),
            };
            // The snapshot lists keys in order; that they are strictly increasing also rules
            // out a repeated key.
            if key.is_empty() || entries.last().is_some_and(|(last, _)| *last >= key) {
                return Err(invalid("an empty, repeated or misordered key"));
            }
            entries.push((key, history));
        }
        if reader.left != 0 {
            return Err(invalid(format!("{} trailing bytes", reader.left)));
        }
        // Built from sorted keys in one go, the map's nodes are full; inserted one by one in
        // key order, they would be little more than half full.
        store.keys = BTreeMap::from_iter(entries);
        store.check().map_err(invalid)?;
        Ok((store, applied_index))
    }
}
