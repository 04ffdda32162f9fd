//! The snapshot store of one member: checksummed snapshot files, written as a stream and
//! installed atomically, of which the newest `keep` are kept.
//!
//! A snapshot never has to fit in one buffer: [`SnapshotStore::begin`] returns a
//! [`SnapshotWriter`] that takes the content in chunks, and [`SnapshotStore::open_reader`]
//! returns a [`SnapshotReader`] that hands it back in chunks.
//!
//! # File format
//!
//! One file per snapshot, named `snap-<index:020>-<term:020>.snap` (zero-padded decimal, so the
//! names sort like the snapshots). Integers are little-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic, `b"SYNODSNP"` |
//! | 8 | 4 | format version, `u32`, currently 1 |
//! | 12 | 4 | `M`, the length of the encoded metadata, `u32`, at most [`MAX_META_LEN`] |
//! | 16 | `M` | the metadata, [`codec::put_snapshot_meta`]: index, term, configuration |
//! | 16 + `M` | `N` | the content, opaque bytes from the application |
//! | 16 + `M` + `N` | 8 | trailer: `N`, the content length, `u64` |
//! | 24 + `M` + `N` | 4 | trailer: CRC-32C of every byte before it (offsets 0 to 24 + `M` + `N`) |
//!
//! A snapshot file is valid when it is exactly `28 + M + N` bytes long, the magic and version
//! match, the metadata decodes with nothing left over and names the index and term of the file
//! name, and the CRC matches. The CRC sits at the end because it is only known once the last
//! chunk is written; the length in the trailer is covered by it, so a flip anywhere is caught.
//!
//! # Writing
//!
//! [`SnapshotWriter`] writes `snap-<index:020>-<term:020>.tmp`, then on
//! [`SnapshotWriter::finish`] appends the trailer, `sync_data`s the file, renames it to its final
//! name and `sync_dir`s the directory (see the durability table in [`crate::fs`]). Only then is
//! the snapshot listed, and only then does [`SnapshotStore::newest`] return it. Last, the store
//! prunes: all but the newest `keep` valid snapshots are removed and the directory is synced.
//!
//! A failed `sync_data` is returned as [`SnapshotError::Sync`] and the snapshot is not installed;
//! the fsync is never retried (see [`crate::fs`] on "fsyncgate").
//!
//! # Recovery at open
//!
//! [`SnapshotStore::open`] classifies every file of the directory:
//!
//! | on disk | cause | what open does |
//! |---|---|---|
//! | `snap-*.tmp` | a write interrupted by a crash, or a writer dropped unfinished | removes it; [`SnapshotWarning::RemovedTemporary`] |
//! | `snap-I-T.snap` that verifies | a snapshot installed by `finish` | lists it |
//! | `snap-I-T.snap` too short for a header and trailer, or whose length disagrees with its trailer | truncation, or damage to a length field | renames it to `….snap.broken`, does not use it; [`SnapshotWarning::Quarantined`] |
//! | `snap-I-T.snap` with a wrong magic, an unknown version, or metadata that does not decode | damage to the header or metadata | as above |
//! | `snap-I-T.snap` whose metadata names another index or term than its file name | damage, or a file renamed by hand | as above |
//! | `snap-I-T.snap` whose CRC does not match | damage anywhere (bit rot, a lying disk) | as above |
//! | a `snap-*.snap` name that does not parse (`I`, `T` not 20 digits each) | not written by this store | leaves it; [`SnapshotWarning::UnrecognizedName`] |
//! | `*.snap.broken` and any other file | quarantined earlier, or not ours | leaves it, silently |
//! | an I/O error while reading or listing | the disk, not the data | fails open with [`SnapshotError::Io`]; nothing is quarantined on an I/O error |
//! | more than `keep` valid snapshots | `keep` was lowered, or a crash between install and prune | removes the oldest, as after a write |
//!
//! After removing or renaming anything, open syncs the directory. [`SnapshotStore::newest`] is
//! then the newest valid snapshot, so a damaged newest snapshot makes the store fall back to the
//! next older valid one. Whether the log still reaches back to that one is for the caller to
//! check. Damaged files are renamed rather than deleted so that an operator can inspect them
//! (as etcd's snapshotter does with `.broken`), and so that the next open does not report them
//! again.
//!
//! Open reads every snapshot once, in full, to verify its CRC: with the default `keep` of 2,
//! that is twice the size of a snapshot.
//!
//! # Readers must reach the end
//!
//! A [`SnapshotReader`] verifies the CRC only when it reaches the end of the content, so a chunk
//! it returned is not known good until [`SnapshotReader::next_chunk`] has returned `Ok(None)`.
//! The caller must not act on the content (restore it, reply to the leader) before that.
//!
//! One store owns its directory; two stores on one directory would remove each other's files.

use std::io;
use std::path::{Path, PathBuf};

use synod_core::{Index, SnapshotMeta, Term};
use thiserror::Error;

use crate::codec::{self, Reader};
use crate::fs::{Fs, FsFile, join};

/// The magic bytes at the start of every snapshot file.
pub const MAGIC: [u8; 8] = *b"SYNODSNP";
/// The format version this module writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the metadata: magic, version, metadata length.
pub const HEADER_LEN: u64 = 16;
/// Bytes after the content: content length and CRC.
pub const TRAILER_LEN: u64 = 12;
/// The longest encoded metadata accepted. Far above any real configuration (it holds about two
/// million node ids); it bounds what a damaged length field can make open allocate.
pub const MAX_META_LEN: u32 = 16 << 20;
/// How many snapshots a store keeps unless told otherwise.
pub const DEFAULT_KEEP: usize = 2;

/// The chunk size open uses to verify a snapshot's CRC.
const VERIFY_CHUNK_LEN: usize = 1 << 20;

/// A snapshot being written is synced every this many bytes, so that its dirty pages never
/// queue more than this ahead of the log's own syncs on a shared disk (issue 7).
const SYNC_EVERY_BYTES: u64 = 4 << 20;

const _: () = assert!(HEADER_LEN == (MAGIC.len() + 4 + 4) as u64);
const _: () = assert!(TRAILER_LEN == 8 + 4);

/// Why a snapshot operation failed. Every variant that concerns a file names it.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// An I/O operation failed.
    #[error("snapshot I/O error on {}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An fsync (`sync_data` of a file or `sync_dir` of the directory) failed. It is not retried:
    /// what it covered may or may not be on disk. When `finish` returns this, the snapshot was
    /// not installed.
    #[error("fsync of {} failed, not retried: {source}", .path.display())]
    Sync {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A snapshot file does not verify.
    #[error("corrupt snapshot {}: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the offset where it applies.
        reason: String,
    },
    /// No valid snapshot has this index.
    #[error("no snapshot at index {0}")]
    NotFound(Index),
    /// A snapshot older than the newest one (by index, then term) was begun.
    #[error("snapshot at index {index} is older than the newest one, at index {newest}")]
    Stale {
        /// The index of the refused snapshot.
        index: Index,
        /// The index of the newest snapshot.
        newest: Index,
    },
    /// The encoded metadata is longer than [`MAX_META_LEN`].
    #[error(
        "snapshot metadata of {len} bytes exceeds the limit of {}",
        MAX_META_LEN
    )]
    MetaTooLarge {
        /// The encoded length.
        len: usize,
    },
    /// A write to the temporary file failed earlier, so the writer cannot finish.
    #[error("an earlier write to {} failed; the snapshot cannot be finished", .path.display())]
    WriteFailed {
        /// The temporary file.
        path: PathBuf,
    },
    /// Removing an old snapshot (or syncing the directory after removing it) failed. When
    /// `finish` returns this, the new snapshot is installed and listed; the old one may remain
    /// on disk until the next prune.
    #[error("pruning old snapshots failed at {}: {source}", .path.display())]
    Prune {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Something [`SnapshotStore::open`] found and dealt with; see the recovery table in the
/// [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotWarning {
    /// The temporary file of a write that never finished; removed.
    RemovedTemporary {
        /// The removed file.
        path: PathBuf,
    },
    /// A snapshot file that does not verify; renamed to `moved_to` and not used.
    Quarantined {
        /// The file as found.
        path: PathBuf,
        /// Where it was moved.
        moved_to: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file named like a snapshot whose name does not parse; left alone.
    UnrecognizedName {
        /// The file.
        path: PathBuf,
    },
}

impl SnapshotWarning {
    /// The file the warning is about, as found.
    pub fn path(&self) -> &Path {
        match self {
            SnapshotWarning::RemovedTemporary { path }
            | SnapshotWarning::Quarantined { path, .. }
            | SnapshotWarning::UnrecognizedName { path } => path,
        }
    }
}

impl std::fmt::Display for SnapshotWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotWarning::RemovedTemporary { path } => {
                write!(f, "{}: interrupted snapshot write, removed", path.display())
            }
            SnapshotWarning::Quarantined {
                path,
                moved_to,
                reason,
            } => write!(
                f,
                "{}: {reason}; not used, moved to {}",
                path.display(),
                moved_to.display()
            ),
            SnapshotWarning::UnrecognizedName { path } => {
                write!(
                    f,
                    "{}: not a snapshot name this store writes, left alone",
                    path.display()
                )
            }
        }
    }
}

/// The snapshots of one member, in one directory.
#[derive(Debug)]
pub struct SnapshotStore<F: Fs> {
    fs: F,
    dir: PathBuf,
    keep: usize,
    /// The valid, installed snapshots, oldest first.
    /// Invariant: strictly ascending by (index, term); at most `keep` long after every prune.
    snapshots: Vec<SnapshotMeta>,
    warnings: Vec<SnapshotWarning>,
}

impl<F: Fs> SnapshotStore<F> {
    /// Opens the store in `dir`, creating the directory if missing, and recovers per the table
    /// in the [module docs](self): removes temporary files, verifies every snapshot, quarantines
    /// those that do not verify, and prunes to the newest `keep` ([`DEFAULT_KEEP`] is 2).
    ///
    /// # Panics
    /// If `keep` is 0: a store that keeps nothing would delete the snapshot it just installed.
    pub fn open(fs: F, dir: PathBuf, keep: usize) -> Result<Self, SnapshotError> {
        assert!(
            keep >= 1,
            "a snapshot store must keep at least one snapshot"
        );
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Io { path, source }
        };

        let names = match fs.list(&dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs.create_dir_all(&dir).map_err(io_err(&dir))?;
                // A new directory's own entry is durable only once its parent is synced.
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs.sync_dir(parent).map_err(|source| SnapshotError::Sync {
                        path: parent.to_path_buf(),
                        source,
                    })?;
                }
                Vec::new()
            }
            Err(e) => return Err(io_err(&dir)(e)),
        };

        let mut warnings = Vec::new();
        let mut candidates = Vec::new();
        let mut changed = false;
        for name in names {
            let path = join(&dir, &name);
            if name.starts_with("snap-") && name.ends_with(".tmp") {
                fs.remove(&path).map_err(io_err(&path))?;
                changed = true;
                warnings.push(SnapshotWarning::RemovedTemporary { path });
            } else if let Some((index, term)) = parse_snapshot_name(&name) {
                candidates.push((index, term, path));
            } else if name.starts_with("snap-") && name.ends_with(".snap") {
                warnings.push(SnapshotWarning::UnrecognizedName { path });
            }
        }
        candidates.sort_by_key(|&(index, term, _)| (index, term));

        let mut snapshots = Vec::new();
        for (index, term, path) in candidates {
            match verify_file(&fs, &path, index, term) {
                Ok(meta) => snapshots.push(meta),
                Err(SnapshotError::Corrupt { path, reason }) => {
                    let mut broken = path.clone().into_os_string();
                    broken.push(".broken");
                    let moved_to = PathBuf::from(broken);
                    fs.rename(&path, &moved_to).map_err(io_err(&path))?;
                    changed = true;
                    warnings.push(SnapshotWarning::Quarantined {
                        path,
                        moved_to,
                        reason,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        if changed {
            fs.sync_dir(&dir).map_err(|source| SnapshotError::Sync {
                path: dir.clone(),
                source,
            })?;
        }

        let mut store = SnapshotStore {
            fs,
            dir,
            keep,
            snapshots,
            warnings,
        };
        store.prune()?;
        store.check_invariants();
        Ok(store)
    }

    /// The metadata of the newest valid snapshot, if any.
    pub fn newest(&self) -> Option<&SnapshotMeta> {
        self.snapshots.last()
    }

    /// The valid snapshots, oldest first.
    pub fn snapshots(&self) -> &[SnapshotMeta] {
        &self.snapshots
    }

    /// What [`SnapshotStore::open`] found and dealt with.
    pub fn warnings(&self) -> &[SnapshotWarning] {
        &self.warnings
    }

    /// The directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file system underneath.
    pub fn fs(&self) -> &F {
        &self.fs
    }

    /// The path of the installed snapshot with this index and term.
    pub fn snapshot_path(&self, index: Index, term: Term) -> PathBuf {
        snapshot_path_in(&self.dir, index, term)
    }

    /// Starts writing a snapshot. Nothing is visible until [`SnapshotWriter::finish`] returns
    /// `Ok`. A snapshot older than the newest (by index, then term) is refused with
    /// [`SnapshotError::Stale`]; one with the newest's index and term replaces it.
    ///
    /// The writer borrows the store mutably, so no reader is open while a snapshot is installed
    /// and old ones are pruned: readers read by path, and pruning a file under one would fail it.
    pub fn begin(&mut self, meta: SnapshotMeta) -> Result<SnapshotWriter<'_, F>, SnapshotError> {
        if let Some(newest) = self.newest()
            && (meta.index, meta.term) < (newest.index, newest.term)
        {
            return Err(SnapshotError::Stale {
                index: meta.index,
                newest: newest.index,
            });
        }
        let mut meta_bytes = Vec::new();
        codec::put_snapshot_meta(&mut meta_bytes, &meta);
        let meta_len = u32::try_from(meta_bytes.len())
            .ok()
            .filter(|&len| len <= MAX_META_LEN)
            .ok_or(SnapshotError::MetaTooLarge {
                len: meta_bytes.len(),
            })?;

        let tmp_path = join(&self.dir, &temporary_name(meta.index, meta.term));
        let file = match self.fs.create(&tmp_path) {
            // Left by a writer dropped unfinished: it is ours, and nothing in it is installed.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.fs
                    .remove(&tmp_path)
                    .map_err(|source| SnapshotError::Io {
                        path: tmp_path.clone(),
                        source,
                    })?;
                self.fs.create(&tmp_path)
            }
            other => other,
        }
        .map_err(|source| SnapshotError::Io {
            path: tmp_path.clone(),
            source,
        })?;

        let mut head = Vec::with_capacity(HEADER_LEN as usize + meta_bytes.len());
        head.extend_from_slice(&MAGIC);
        codec::put_u32(&mut head, VERSION);
        codec::put_u32(&mut head, meta_len);
        head.extend_from_slice(&meta_bytes);
        let mut writer = SnapshotWriter {
            store: self,
            file,
            tmp_path,
            meta,
            content_offset: head.len() as u64,
            content_len: 0,
            crc: 0,
            failed: false,
            unsynced: 0,
        };
        writer.append(&head)?;
        Ok(writer)
    }

    /// Opens the snapshot at `index` for reading in chunks. The header and trailer are checked
    /// now; the CRC when the reader reaches the end.
    pub fn open_reader(&self, index: Index) -> Result<SnapshotReader<'_, F>, SnapshotError> {
        let meta = self
            .snapshots
            .iter()
            .rev()
            .find(|m| m.index == index)
            .ok_or(SnapshotError::NotFound(index))?;
        let path = self.snapshot_path(meta.index, meta.term);
        let reader = SnapshotReader::open(&self.fs, path, meta.index, meta.term)?;
        if reader.meta() != meta {
            return Err(SnapshotError::Corrupt {
                reason: format!(
                    "metadata {:?} differs from {:?}, found at open",
                    reader.meta(),
                    meta
                ),
                path: reader.path,
            });
        }
        Ok(reader)
    }

    /// Reads the whole content of the snapshot at `index`, verified.
    pub fn read_all(&self, index: Index) -> Result<Vec<u8>, SnapshotError> {
        let mut reader = self.open_reader(index)?;
        let mut content = Vec::with_capacity(usize::try_from(reader.content_len()).unwrap_or(0));
        while let Some(chunk) = reader.next_chunk(VERIFY_CHUNK_LEN)? {
            content.extend_from_slice(&chunk);
        }
        debug_assert_eq!(content.len() as u64, reader.content_len());
        Ok(content)
    }

    /// Lists a snapshot whose file was just made durable under its final name.
    fn install(&mut self, meta: SnapshotMeta) {
        let key = (meta.index, meta.term);
        match self
            .snapshots
            .binary_search_by_key(&key, |m| (m.index, m.term))
        {
            Ok(at) => self.snapshots[at] = meta,
            Err(at) => self.snapshots.insert(at, meta),
        }
        self.check_invariants_sorted();
    }

    /// Removes all but the newest `keep` snapshots, oldest first, then syncs the directory.
    fn prune(&mut self) -> Result<(), SnapshotError> {
        if self.snapshots.len() <= self.keep {
            return Ok(());
        }
        while self.snapshots.len() > self.keep {
            let oldest = &self.snapshots[0];
            let path = self.snapshot_path(oldest.index, oldest.term);
            match self.fs.remove(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(SnapshotError::Prune { path, source }),
            }
            self.snapshots.remove(0);
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(|source| SnapshotError::Prune {
                path: self.dir.clone(),
                source,
            })?;
        self.check_invariants();
        Ok(())
    }

    fn check_invariants_sorted(&self) {
        debug_assert!(
            self.snapshots
                .windows(2)
                .all(|w| (w[0].index, w[0].term) < (w[1].index, w[1].term)),
            "snapshots out of order: {:?}",
            self.snapshots
        );
    }

    fn check_invariants(&self) {
        self.check_invariants_sorted();
        debug_assert!(self.snapshots.len() <= self.keep);
    }
}

/// Writes one snapshot, chunk by chunk, to a temporary file; [`SnapshotWriter::finish`]
/// installs it.
///
/// Dropping a writer without finishing leaves the temporary file behind, as a crash would; the
/// next [`SnapshotStore::begin`] of the same snapshot or the next [`SnapshotStore::open`] removes
/// it. Nothing of it is ever visible.
pub struct SnapshotWriter<'a, F: Fs> {
    store: &'a mut SnapshotStore<F>,
    file: F::File,
    tmp_path: PathBuf,
    meta: SnapshotMeta,
    content_offset: u64,
    content_len: u64,
    /// CRC-32C of everything written so far.
    crc: u32,
    /// Set when a write failed: the file then holds bytes of unknown extent.
    failed: bool,
    /// Content bytes written since the file was last synced.
    unsynced: u64,
}

impl<F: Fs> SnapshotWriter<'_, F> {
    /// The metadata of the snapshot being written.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Content bytes written so far.
    pub fn content_len(&self) -> u64 {
        self.content_len
    }

    /// The temporary file being written.
    pub fn temporary_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Appends a chunk of content. After an error the writer cannot finish.
    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), SnapshotError> {
        self.append(chunk)?;
        self.content_len += chunk.len() as u64;
        self.unsynced += chunk.len() as u64;
        if self.unsynced >= SYNC_EVERY_BYTES {
            self.unsynced = 0;
            if let Err(source) = self.file.sync_data() {
                // As at the end: never retried, the file is useless.
                self.failed = true;
                return Err(SnapshotError::Sync {
                    path: self.tmp_path.clone(),
                    source,
                });
            }
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        if self.failed {
            return Err(SnapshotError::WriteFailed {
                path: self.tmp_path.clone(),
            });
        }
        if let Err(source) = self.file.write_all(bytes) {
            self.failed = true;
            return Err(SnapshotError::Io {
                path: self.tmp_path.clone(),
                source,
            });
        }
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        Ok(())
    }

    /// Appends the trailer, makes the file durable, renames it to its final name and makes the
    /// rename durable; then lists the snapshot and prunes old ones. Returns the metadata.
    ///
    /// | step fails | returns | snapshot |
    /// |---|---|---|
    /// | an earlier write, or the trailer | [`SnapshotError::WriteFailed`] or [`SnapshotError::Io`] | not installed; the temporary file stays until the next open |
    /// | `sync_data` of the file | [`SnapshotError::Sync`], never retried | not installed; the temporary file is removed, best effort |
    /// | the rename | [`SnapshotError::Io`] | not installed |
    /// | `sync_dir` after the rename | [`SnapshotError::Sync`] | not listed; it may or may not survive a crash, and the next open verifies it like any other |
    /// | pruning | [`SnapshotError::Prune`] | installed and listed |
    pub fn finish(mut self) -> Result<SnapshotMeta, SnapshotError> {
        let mut trailer = Vec::with_capacity(TRAILER_LEN as usize);
        codec::put_u64(&mut trailer, self.content_len);
        self.append(&trailer)?;
        let crc = self.crc;
        // The CRC covers everything before it, so it is appended outside `append`.
        if let Err(source) = self.file.write_all(&crc.to_le_bytes()) {
            return Err(SnapshotError::Io {
                path: self.tmp_path,
                source,
            });
        }
        let expected_len = self.content_offset + self.content_len + TRAILER_LEN;
        debug_assert_eq!(
            self.file.len(),
            expected_len,
            "snapshot file {} has the wrong length",
            self.tmp_path.display()
        );

        if let Err(source) = self.file.sync_data() {
            // Never retried: the kernel may have dropped the dirty pages already. The file is
            // useless; removing it is tidiness, and open removes it if this fails.
            drop(self.file);
            let _ = self.store.fs.remove(&self.tmp_path);
            return Err(SnapshotError::Sync {
                path: self.tmp_path,
                source,
            });
        }
        drop(self.file);

        let store = self.store;
        let final_path = store.snapshot_path(self.meta.index, self.meta.term);
        store
            .fs
            .rename(&self.tmp_path, &final_path)
            .map_err(|source| SnapshotError::Io {
                path: self.tmp_path.clone(),
                source,
            })?;
        store
            .fs
            .sync_dir(&store.dir)
            .map_err(|source| SnapshotError::Sync {
                path: store.dir.clone(),
                source,
            })?;

        store.install(self.meta.clone());
        store.prune()?;
        debug_assert!(store.snapshots.contains(&self.meta));
        Ok(self.meta)
    }
}

/// Reads one snapshot's content in chunks and verifies its CRC at the end.
///
/// The content is not known good until [`SnapshotReader::next_chunk`] returned `Ok(None)`: a
/// caller must not act on it before then.
#[derive(Debug)]
pub struct SnapshotReader<'a, F: Fs> {
    fs: &'a F,
    path: PathBuf,
    meta: SnapshotMeta,
    content_offset: u64,
    content_len: u64,
    /// Content bytes returned so far. Invariant: `position <= content_len`.
    position: u64,
    stored_crc: u32,
    /// CRC-32C of the header, metadata and content returned so far.
    crc: u32,
    state: ReaderState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReaderState {
    Reading,
    Verified,
    Failed,
}

impl<'a, F: Fs> SnapshotReader<'a, F> {
    /// Opens `path`, expected to hold the snapshot at (`index`, `term`), and checks everything
    /// but the CRC. Reading this way needs no [`SnapshotStore`], so a long read (streaming a
    /// snapshot to a slow peer) does not hold up the store; if the store prunes the file
    /// meanwhile, the read fails rather than returning wrong bytes.
    pub fn open(fs: &'a F, path: PathBuf, index: Index, term: Term) -> Result<Self, SnapshotError> {
        let corrupt = |reason: String| SnapshotError::Corrupt {
            path: path.clone(),
            reason,
        };
        let io_err = |source| SnapshotError::Io {
            path: path.clone(),
            source,
        };
        let read_exact = |offset: u64, len: usize| -> Result<Vec<u8>, SnapshotError> {
            let bytes = fs.read_at(&path, offset, len).map_err(io_err)?;
            if bytes.len() != len {
                return Err(corrupt(format!(
                    "file ends at offset {}, inside {len} bytes expected at offset {offset}",
                    offset + bytes.len() as u64
                )));
            }
            Ok(bytes)
        };

        let file_len = fs.file_len(&path).map_err(io_err)?;
        if file_len < HEADER_LEN + TRAILER_LEN {
            return Err(corrupt(format!(
                "file is {file_len} bytes, shorter than a header and trailer ({})",
                HEADER_LEN + TRAILER_LEN
            )));
        }
        let header = read_exact(0, HEADER_LEN as usize)?;
        let mut fields = Reader::new(&header);
        let magic = fields.take(MAGIC.len()).expect("header length checked");
        if magic != MAGIC {
            return Err(corrupt(format!("bad magic {magic:02x?} at offset 0")));
        }
        let version = fields.u32().expect("header length checked");
        if version != VERSION {
            return Err(corrupt(format!(
                "unsupported format version {version} at offset 8"
            )));
        }
        let meta_len = fields.u32().expect("header length checked");
        if meta_len > MAX_META_LEN || HEADER_LEN + TRAILER_LEN + u64::from(meta_len) > file_len {
            return Err(corrupt(format!(
                "metadata length {meta_len} at offset 12 does not fit a file of {file_len} bytes"
            )));
        }
        let meta_bytes = read_exact(HEADER_LEN, meta_len as usize)?;
        let content_offset = HEADER_LEN + u64::from(meta_len);

        let trailer_offset = file_len - TRAILER_LEN;
        let trailer = read_exact(trailer_offset, TRAILER_LEN as usize)?;
        let mut fields = Reader::new(&trailer);
        let content_len = fields.u64().expect("trailer length checked");
        let stored_crc = fields.u32().expect("trailer length checked");
        if content_offset.checked_add(content_len) != Some(trailer_offset) {
            return Err(corrupt(format!(
                "trailer at offset {trailer_offset} gives a content length of {content_len}, \
                 but the file holds {} content bytes",
                trailer_offset - content_offset
            )));
        }

        let mut meta_reader = Reader::new(&meta_bytes);
        let meta = codec::get_snapshot_meta(&mut meta_reader)
            .and_then(|meta| meta_reader.finish().map(|()| meta))
            .map_err(|e| {
                corrupt(format!(
                    "metadata at offset {HEADER_LEN} does not decode: {e}"
                ))
            })?;
        if (meta.index, meta.term) != (index, term) {
            return Err(corrupt(format!(
                "metadata at offset {HEADER_LEN} is of index {} term {}, the name of index {index} term {term}",
                meta.index, meta.term
            )));
        }

        let crc = crc32c::crc32c_append(crc32c::crc32c(&header), &meta_bytes);
        Ok(SnapshotReader {
            fs,
            path,
            meta,
            content_offset,
            content_len,
            position: 0,
            stored_crc,
            crc,
            state: ReaderState::Reading,
        })
    }

    /// The snapshot's metadata, as stored in its file.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// The content length in bytes, as the trailer gives it.
    pub fn content_len(&self) -> u64 {
        self.content_len
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next chunk of content, at most `max` bytes, or `Ok(None)` once the whole content was
    /// returned and the CRC verified. After an error, every later call fails too.
    ///
    /// # Panics
    /// If `max` is 0.
    pub fn next_chunk(&mut self, max: usize) -> Result<Option<Vec<u8>>, SnapshotError> {
        assert!(max > 0, "a chunk must be allowed at least one byte");
        match self.state {
            ReaderState::Verified => return Ok(None),
            ReaderState::Failed => {
                return Err(SnapshotError::Corrupt {
                    path: self.path.clone(),
                    reason: "an earlier read of this snapshot failed".to_string(),
                });
            }
            ReaderState::Reading => {}
        }
        let result = self.step(max);
        self.state = match &result {
            Err(_) => ReaderState::Failed,
            Ok(None) => ReaderState::Verified,
            Ok(Some(_)) => ReaderState::Reading,
        };
        result
    }

    fn step(&mut self, max: usize) -> Result<Option<Vec<u8>>, SnapshotError> {
        debug_assert!(self.position <= self.content_len);
        let left = self.content_len - self.position;
        if left == 0 {
            return self.verify().map(|()| None);
        }
        let len = usize::try_from(left).map_or(max, |left| left.min(max));
        let offset = self.content_offset + self.position;
        let chunk =
            self.fs
                .read_at(&self.path, offset, len)
                .map_err(|source| SnapshotError::Io {
                    path: self.path.clone(),
                    source,
                })?;
        if chunk.len() != len {
            return Err(SnapshotError::Corrupt {
                path: self.path.clone(),
                reason: format!(
                    "file ends at offset {}, inside the content, which should end at offset {}",
                    offset + chunk.len() as u64,
                    self.content_offset + self.content_len
                ),
            });
        }
        self.crc = crc32c::crc32c_append(self.crc, &chunk);
        self.position += len as u64;
        Ok(Some(chunk))
    }

    fn verify(&mut self) -> Result<(), SnapshotError> {
        let crc = crc32c::crc32c_append(self.crc, &self.content_len.to_le_bytes());
        if crc != self.stored_crc {
            return Err(SnapshotError::Corrupt {
                path: self.path.clone(),
                reason: format!(
                    "CRC mismatch: stored {:08x} at offset {}, computed {crc:08x}",
                    self.stored_crc,
                    self.content_offset + self.content_len + 8
                ),
            });
        }
        Ok(())
    }
}

/// Reads a whole snapshot file and returns its metadata if it is valid for (`index`, `term`).
fn verify_file<F: Fs>(
    fs: &F,
    path: &Path,
    index: Index,
    term: Term,
) -> Result<SnapshotMeta, SnapshotError> {
    let mut reader = SnapshotReader::open(fs, path.to_path_buf(), index, term)?;
    while reader.next_chunk(VERIFY_CHUNK_LEN)?.is_some() {}
    Ok(reader.meta)
}

/// The path of the installed snapshot with this index and term in a store kept in `dir`
/// ([`SnapshotStore::snapshot_path`], for a caller that holds the directory but not the store).
pub fn snapshot_path_in(dir: &Path, index: Index, term: Term) -> PathBuf {
    join(dir, &snapshot_name(index, term))
}

/// `snap-<index:020>-<term:020>.snap`.
fn snapshot_name(index: Index, term: Term) -> String {
    format!("snap-{index:020}-{term:020}.snap")
}

/// `snap-<index:020>-<term:020>.tmp`.
fn temporary_name(index: Index, term: Term) -> String {
    format!("snap-{index:020}-{term:020}.tmp")
}

/// The index and term of a name [`snapshot_name`] made, or `None`.
fn parse_snapshot_name(name: &str) -> Option<(Index, Term)> {
    let fields = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (index, term) = fields.split_once('-')?;
    let number = |digits: &str| {
        (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u64>().ok())
            .flatten()
    };
    let parsed = (number(index)?, number(term)?);
    debug_assert_eq!(snapshot_name(parsed.0, parsed.1), name);
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_like_snapshots() {
        for (index, term) in [(0, 0), (1, 2), (u64::MAX, u64::MAX), (10, 3)] {
            assert_eq!(
                parse_snapshot_name(&snapshot_name(index, term)),
                Some((index, term))
            );
        }
        assert!(snapshot_name(9, 5) < snapshot_name(10, 1));
        assert_eq!(parse_snapshot_name("snap-1-2.snap"), None);
        assert_eq!(
            parse_snapshot_name(&format!("snap-{}-{:020}.snap", "9".repeat(20), 0)),
            None
        );
        assert_eq!(parse_snapshot_name(&temporary_name(1, 2)), None);
        assert_eq!(
            parse_snapshot_name(&format!("{}.broken", snapshot_name(1, 2))),
            None
        );
    }
}
