//! [`FaultFs`]: a deterministic in-memory [`Fs`] that tests put under the real storage code to
//! crash it, tear its writes, rot its bits, fail its fsyncs and fill its disk.
//!
//! # The model
//!
//! Files are inodes with two copies of their contents: the *durable* one (what the disk holds)
//! and the *visible* one (what the page cache holds, and what every read returns). The visible
//! copy is the durable one with the file's *pending* writes replayed on it: the writes (appends
//! by [`FsFile::write_all`], positioned writes by [`FsFile::write_at`]) and [`FsFile::set_len`]
//! calls since the file's last successful [`FsFile::sync_data`].
//!
//! Directories map names to inodes, also twice: the *durable* entries (as of the directory's
//! last [`Fs::sync_dir`]) and the *visible* entries (after every create, rename and removal
//! since). Open [`FaultFile`]s point at an inode, not at a name, so a handle follows its file
//! across a rename and keeps working after a removal, as a POSIX file descriptor does.
//!
//! This is the durability table of [`crate::fs`], rule by rule:
//!
//! | operation | until it is durable | made durable by |
//! |---|---|---|
//! | `write_all`, `write_at`, `set_len` | a pending write of the inode | `sync_data` on a handle of that inode |
//! | `create` | a visible entry with no durable one | `sync_dir` of its directory |
//! | `rename` | the visible entries of both directories differ from the durable ones | `sync_dir` of each directory, separately |
//! | `remove` | the durable entry still names the inode | `sync_dir` of its directory |
//! | `create_dir_all` | durable at once (a simplification: synod creates its directories once, at startup) | — |
//!
//! # What a crash keeps
//!
//! [`FaultFs::crash`] simulates a power loss. Afterwards:
//!
//! - every directory holds exactly its durable entries: an unsynced creation is gone, an
//!   unsynced rename is reverted, an unsynced removal is reverted;
//! - every file holds exactly its durable contents: all pending writes and `set_len` calls are
//!   lost ([`FaultFs::crash_tearing`] instead keeps a prefix of the pending writes, in the order
//!   they were made; an overwrite in place that is not kept leaves the old bytes;
//!   [`FaultFs::crash_scrambling`] keeps any subset of the sectors they touched, as the next
//!   section describes);
//! - files that no durable entry names are gone, with their contents;
//! - directories created by `create_dir_all` are all kept;
//! - every [`FaultFile`] opened before the crash fails from then on (each handle carries the
//!   generation it was opened in, and a crash starts a new one);
//! - the counters ([`FaultFs::sync_count`], [`FaultFs::op_count`]), the capacity, the
//!   short-write setting and an armed [`FaultFs::fail_next_sync`], [`FaultFs::fail_next_write`]
//!   or [`FaultFs::fail_next_sync_dir`] are kept: they describe the test, not the disk.
//!
//! A cross-directory rename that only one of the two directories synced comes back from a crash
//! with the file under both names, or under neither; synod only renames within a directory.
//!
//! ## Scrambled sectors
//!
//! A disk writes dirty data back sector by sector, in any order, so a power cut can leave any
//! subset of the written sectors on it. [`FaultFs::crash_scrambling`] asks, for each file that
//! survives with pending writes, and each 512-byte sector ([`SECTOR_BYTES`]) they touched,
//! whether that sector reached the disk. For such a file, of durable length `D` and visible
//! length `V`:
//!
//! | after the crash | holds |
//! |---|---|
//! | a kept sector | its visible contents (every pending write replayed), as far as the file reaches |
//! | a sector that is not kept | its durable contents, or zeros where the file has no durable bytes |
//! | the length, if no `set_len` is pending and no pending write grew the file | `D` |
//! | the length, otherwise | decided by the *end sector*, the one holding byte `V - 1` (sector 0 if `V = 0`), which is asked about whether a write touched it or not. Kept: `V`, and every pending `set_len` with it, so the bytes of sectors not kept read as zeros past `D` and past the shortest pending `set_len`, as the unwritten part of a grown file does on ext4 or XFS. Not kept: `D`, so a pending truncation is undone and kept sectors past `D` are lost |
//!
//! The length follows the end sector as a new size follows the data on ext4 with
//! `data=ordered`: a grown length is durable only once the data up to it is. Keeping every
//! sector keeps everything pending, as a sync would; keeping none is a [`FaultFs::crash`].
//!
//! # Faults
//!
//! | fault | what it does |
//! |---|---|
//! | [`FaultFs::crash`] | the power loss above |
//! | [`FaultFs::crash_tearing`] | a power loss in the middle of writeback: a prefix of each file's pending writes (appends and overwrites in place) reached the disk |
//! | [`FaultFs::crash_scrambling`] | a power loss in the middle of writeback by a disk that writes sectors in any order: each 512-byte sector the pending writes touched reached the disk or not, independently ([above](#scrambled-sectors)) |
//! | [`FaultFs::flip_bit`] | bit rot: one bit of a file's durable (and so visible) contents flips |
//! | [`FaultFs::fail_next_sync`] | the next `sync_data` fails with `EIO` and the file's pending writes are dropped |
//! | [`FaultFs::fail_next_write`] | the next `write_all` or `write_at` stores a prefix of its data of a chosen length (possibly empty), then fails with `EIO` |
//! | [`FaultFs::fail_next_sync_dir`] | the next `sync_dir` fails with `EIO`; the directory's durable entries stay as they were |
//! | [`FaultFs::set_capacity`] | a disk size: a write that would grow the files beyond it fails with `ENOSPC` and writes nothing; an overwrite within a file's length always fits, as on ext4 or XFS |
//! | [`FaultFs::set_short_writes`] | with a capacity: a write that would exceed it first stores the prefix that fits, then fails with `ENOSPC`, as `write_all` over a real kernel does |
//!
//! Every failed write leaves what it stored (a prefix of its data, maybe empty) in the file as a
//! pending write, visible to reads and lost at a crash like any other: the caller cannot know
//! how much that was, except by the file's length.
//!
//! Everything is deterministic: no clock, no randomness, and every listing is sorted. A test that
//! wants random faults passes a seeded RNG into the [`FaultFs::crash_tearing`] or
//! [`FaultFs::crash_scrambling`] callback or draws the arguments of the other faults from one.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{Fs, FsFile};

/// `EIO`, which a failed fsync or write returns.
const EIO: i32 = 5;
/// `ENOSPC`, which a write to a full disk returns.
const ENOSPC: i32 = 28;

/// The unit in which [`FaultFs::crash_scrambling`] decides what reached the disk: the size of a
/// disk sector, the least a disk writes atomically.
pub const SECTOR_BYTES: u64 = 512;

/// A deterministic in-memory file system that injects faults; see the [module docs](self) for the
/// durability model and what a crash keeps.
///
/// Cloning is cheap and shares the disk: a test keeps one handle to inject faults and inspect
/// the durable state while the storage under test owns another.
#[derive(Clone, Debug, Default)]
pub struct FaultFs {
    state: Arc<Mutex<State>>,
}

/// An open file of a [`FaultFs`], positioned at its end for appending.
///
/// It fails every operation with an error once its [`FaultFs`] has crashed.
#[derive(Debug)]
pub struct FaultFile {
    fs: FaultFs,
    /// The path it was opened or created under, for error messages; the handle follows the inode
    /// across renames.
    path: PathBuf,
    inode: InodeId,
    /// The [`State::generation`] it was opened in.
    generation: u64,
    /// The length at the last operation through this handle, which [`FsFile::len`] returns once
    /// the handle is stale.
    last_len: u64,
}

type InodeId = u64;

#[derive(Debug)]
struct State {
    /// Incremented by every crash. Invariant: handles of an older generation touch nothing.
    generation: u64,
    next_inode: InodeId,
    /// Every directory created, by path. Invariant: holds every ancestor of each of its keys.
    dirs: BTreeMap<PathBuf, Dir>,
    /// Invariant: holds exactly the inodes that a visible entry, a durable entry or an open
    /// handle of this generation refers to (see [`State::collect_garbage`]).
    inodes: BTreeMap<InodeId, Inode>,
    capacity_bytes: Option<u64>,
    /// Whether a write past the capacity stores the prefix that fits before it fails.
    short_writes: bool,
    fail_next_sync: bool,
    /// Armed by [`FaultFs::fail_next_write`]: how many bytes the failing write stores first.
    fail_next_write: Option<usize>,
    fail_next_sync_dir: bool,
    sync_count: u64,
    op_count: u64,
}

#[derive(Clone, Debug, Default)]
struct Dir {
    /// The entries reads and listings see.
    visible: BTreeMap<String, InodeId>,
    /// The entries as of the last `sync_dir`: what a crash brings back.
    durable: BTreeMap<String, InodeId>,
}

#[derive(Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    /// The writes since the last successful `sync_data`, oldest first.
    pending: Vec<Pending>,
    /// Invariant: `durable` with `pending` replayed on it (see [`Inode::check`]).
    visible: Vec<u8>,
    /// Open handles of the current generation.
    open_handles: usize,
}

#[derive(Clone, Debug)]
enum Pending {
    /// `data` written at byte `offset`: over the bytes there, and growing the file (with zeros
    /// before `offset` if it starts past the end) if it ends past them. An append is a write at
    /// the length.
    Write {
        offset: u64,
        data: Vec<u8>,
    },
    SetLen(u64),
}

impl Default for State {
    fn default() -> State {
        // The root and the current directory exist from the start, as on a real system.
        let dirs = [PathBuf::from("/"), PathBuf::new()]
            .into_iter()
            .map(|dir| (dir, Dir::default()))
            .collect();
        State {
            generation: 0,
            next_inode: 0,
            dirs,
            inodes: BTreeMap::new(),
            capacity_bytes: None,
            short_writes: false,
            fail_next_sync: false,
            fail_next_write: None,
            fail_next_sync_dir: false,
            sync_count: 0,
            op_count: 0,
        }
    }
}

fn not_found(what: &str, path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{what} {} not found", path.display()),
    )
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn is_a_directory(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::IsADirectory,
        format!("{} is a directory", path.display()),
    )
}

/// Splits a file path into its directory and its name.
fn split(path: &Path) -> io::Result<(&Path, &str)> {
    let dir = path.parent();
    let name = path.file_name().and_then(|name| name.to_str());
    match (dir, name) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(invalid(format!(
            "{} is not a UTF-8 file name in a directory",
            path.display()
        ))),
    }
}

/// Applies `ops` to `contents`; with `keep_written_bytes`, stops once that many written bytes
/// are in, and before any later operation: a prefix of the write stream.
fn replay(contents: &mut Vec<u8>, ops: &[Pending], keep_written_bytes: Option<usize>) {
    let mut budget = keep_written_bytes.unwrap_or(usize::MAX);
    for op in ops {
        if budget == 0 {
            break;
        }
        match op {
            Pending::Write { offset, data } => {
                let take = data.len().min(budget);
                write_into(contents, to_usize(*offset), &data[..take]);
                if keep_written_bytes.is_some() {
                    budget -= take;
                }
            }
            Pending::SetLen(len) => contents.resize(to_usize(*len), 0),
        }
    }
}

/// `pwrite` on a byte vector: overwrites from `offset`, growing (with zeros up to `offset`) as
/// needed. Writing nothing changes nothing, even past the end.
fn write_into(contents: &mut Vec<u8>, offset: usize, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let end = offset + data.len();
    if contents.len() < end {
        contents.resize(end, 0);
    }
    contents[offset..end].copy_from_slice(data);
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn written_bytes(ops: &[Pending]) -> usize {
    ops.iter()
        .map(|op| match op {
            Pending::Write { data, .. } => data.len(),
            Pending::SetLen(_) => 0,
        })
        .sum()
}

impl Inode {
    /// Checks the invariant of `visible`, cheaply: its length is that of `durable` with the
    /// pending writes replayed.
    fn check(&self) {
        let replayed_len = self
            .pending
            .iter()
            .fold(self.durable.len(), |len, op| match op {
                Pending::Write { offset, data } => len.max(to_usize(*offset) + data.len()),
                Pending::SetLen(new_len) => to_usize(*new_len),
            });
        assert_eq!(
            replayed_len,
            self.visible.len(),
            "FaultFs: visible contents are not the durable ones ({} bytes) with {} pending writes replayed",
            self.durable.len(),
            self.pending.len()
        );
    }

    fn drop_pending(&mut self) {
        self.pending.clear();
        self.visible.clone_from(&self.durable);
    }
}

impl State {
    fn lookup(&self, path: &Path) -> io::Result<InodeId> {
        if self.dirs.contains_key(path) {
            return Err(is_a_directory(path));
        }
        let (dir, name) = split(path)?;
        self.dirs
            .get(dir)
            .and_then(|dir| dir.visible.get(name).copied())
            .ok_or_else(|| not_found("file", path))
    }

    fn inode(&self, path: &Path) -> io::Result<&Inode> {
        let id = self.lookup(path)?;
        Ok(&self.inodes[&id])
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs
            .get_mut(dir)
            .ok_or_else(|| not_found("directory", dir))
    }

    fn new_inode(&mut self) -> InodeId {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, Inode::default());
        id
    }

    /// The inodes some entry refers to; visible ones only, or durable ones too.
    fn linked(&self, durable_too: bool) -> BTreeSet<InodeId> {
        let mut linked = BTreeSet::new();
        for dir in self.dirs.values() {
            linked.extend(dir.visible.values().copied());
            if durable_too {
                linked.extend(dir.durable.values().copied());
            }
        }
        linked
    }

    /// Forgets the inodes that nothing refers to any more: no entry, visible or durable, and no
    /// open handle. Nothing can reach them again, not even a crash.
    fn collect_garbage(&mut self) {
        let linked = self.linked(true);
        self.inodes
            .retain(|id, inode| inode.open_handles > 0 || linked.contains(id));
    }

    /// The bytes the disk still has room for (`None`: unlimited). The space used is the
    /// visible length of every file that is visible or open.
    fn free_bytes(&self) -> Option<u64> {
        let capacity = self.capacity_bytes?;
        let linked = self.linked(false);
        let used: u64 = self
            .inodes
            .iter()
            .filter(|(id, inode)| inode.open_handles > 0 || linked.contains(id))
            .map(|(_, inode)| inode.visible.len() as u64)
            .sum();
        Some(capacity.saturating_sub(used))
    }

    /// Fails with `ENOSPC` unless the disk has room for `growth` more bytes.
    fn check_room(&self, growth: u64) -> io::Result<()> {
        if growth == 0 {
            return Ok(());
        }
        match self.free_bytes() {
            Some(free) if growth > free => Err(io::Error::from_raw_os_error(ENOSPC)),
            _ => Ok(()),
        }
    }

    /// Writes `data` at `offset` of the visible contents of inode `id` (`None`: at the end), as
    /// a pending write; returns the new visible length.
    fn write(&mut self, id: InodeId, offset: Option<u64>, data: &[u8]) -> u64 {
        let inode = self
            .inodes
            .get_mut(&id)
            .expect("FaultFs: an open handle keeps its inode");
        if !data.is_empty() {
            let offset = offset.unwrap_or(inode.visible.len() as u64);
            write_into(&mut inode.visible, to_usize(offset), data);
            // Coalescing a write that continues the last one keeps the write stream the same
            // and the pending list short.
            match inode.pending.last_mut() {
                Some(Pending::Write {
                    offset: last_offset,
                    data: last,
                }) if *last_offset + last.len() as u64 == offset => last.extend_from_slice(data),
                _ => inode.pending.push(Pending::Write {
                    offset,
                    data: data.to_vec(),
                }),
            }
            inode.check();
        }
        inode.visible.len() as u64
    }
}

impl FaultFs {
    /// An empty disk of unlimited capacity, holding only the root directory `/` and the empty
    /// path (the current directory).
    pub fn new() -> FaultFs {
        FaultFs::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held (a failed test assertion in a callback) leaves the state
        // as consistent as any crash does; the test that panicked is failing anyway.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one file operation and returns the locked state.
    fn op(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        state.op_count += 1;
        state
    }

    /// Simulates a power loss: only what was durable survives (see the
    /// [module docs](self#what-a-crash-keeps)), and every open [`FaultFile`] fails from now on.
    pub fn crash(&self) {
        self.crash_tearing(|_, _| 0);
    }

    /// Simulates a power loss during writeback: like [`FaultFs::crash`], except that each file
    /// that survives the crash and has `n > 0` pending written bytes (appended or written in
    /// place) keeps the first `keep(path, n)` of them (clamped to `n`), which become durable: a
    /// torn write.
    ///
    /// The kept bytes are a prefix of the file's write stream since its last sync: its pending
    /// writes and `set_len` calls are replayed in order and replay stops once the kept bytes are
    /// in, so `keep = 0` loses everything pending (as a plain crash does) and `keep = n` keeps
    /// everything. A file with only pending `set_len` calls loses them without a call.
    ///
    /// `keep` is called once per such file, in the order of the paths (the file's first durable
    /// name), so a closure drawing from a seeded RNG is deterministic. It must not call into this
    /// `FaultFs`, which is locked meanwhile: that is a programmer error and deadlocks or panics.
    pub fn crash_tearing(&self, mut keep: impl FnMut(&Path, usize) -> usize) {
        self.power_loss(|path, inode| {
            let written = written_bytes(&inode.pending);
            if written > 0 {
                let kept = keep(path, written).min(written);
                let limit = (kept < written).then_some(kept);
                let pending = std::mem::take(&mut inode.pending);
                replay(&mut inode.durable, &pending, limit);
            }
        });
    }

    /// Simulates a power loss during a writeback that reached the disk sector by sector, in any
    /// order: like [`FaultFs::crash`], except that each [`SECTOR_BYTES`]-byte sector touched by
    /// the pending writes of a file that survives the crash reached the disk if
    /// `keep_sector(path, sector)` returns `true`, and else not. Sector `n` holds bytes `512 * n`
    /// to `512 * n + 511` of the file. What a kept sector holds, what the others hold, and what
    /// length the file comes back with: see [the module docs](self#scrambled-sectors). What was
    /// kept is durable.
    ///
    /// The touched sectors are those holding a byte that a pending `write_all` or `write_at`
    /// wrote, and, if the file's length may change, its end sector. `keep_sector` is called for
    /// each file with pending writes (or `set_len` calls) in the order of the paths (the file's
    /// first durable name), and for each touched sector of it once, in increasing order, so a
    /// closure drawing from a seeded RNG is deterministic. It must not call into this `FaultFs`,
    /// which is locked meanwhile: that is a programmer error and deadlocks or panics.
    pub fn crash_scrambling(&self, mut keep_sector: impl FnMut(&Path, u64) -> bool) {
        self.power_loss(|path, inode| {
            if inode.pending.is_empty() {
                return;
            }
            let sector_of = |offset: u64| offset / SECTOR_BYTES;
            let mut touched = BTreeSet::new();
            let mut length_pending = false;
            for op in &inode.pending {
                match op {
                    Pending::Write { offset, data } => {
                        let last = offset + data.len() as u64 - 1;
                        touched.extend(sector_of(*offset)..=sector_of(last));
                    }
                    Pending::SetLen(_) => length_pending = true,
                }
            }
            let visible_len = inode.visible.len();
            length_pending |= visible_len != inode.durable.len();
            let end_sector = sector_of((visible_len as u64).saturating_sub(1));
            if length_pending {
                touched.insert(end_sector);
            }
            let kept: Vec<u64> = touched
                .into_iter()
                .filter(|&sector| keep_sector(path, sector))
                .collect();
            let mut contents = std::mem::take(&mut inode.durable);
            if length_pending && kept.binary_search(&end_sector).is_ok() {
                for op in &inode.pending {
                    if let Pending::SetLen(len) = op {
                        contents.resize(to_usize(*len), 0);
                    }
                }
                contents.resize(visible_len, 0);
            }
            let within = contents.len().min(visible_len);
            for sector in kept {
                let start = to_usize(sector * SECTOR_BYTES).min(within);
                let end = to_usize((sector + 1) * SECTOR_BYTES).min(within);
                contents[start..end].copy_from_slice(&inode.visible[start..end]);
            }
            inode.durable = contents;
        });
    }

    /// The power loss common to every crash: directories go back to their durable entries,
    /// handles go stale, unreachable inodes go, and each file that a durable entry names gets
    /// `writeback(path, inode)` (in the order of the paths, once per inode) to make some of its
    /// pending writes durable before the rest are dropped.
    fn power_loss(&self, mut writeback: impl FnMut(&Path, &mut Inode)) {
        let mut state = self.lock();
        let state = &mut *state;
        state.generation += 1;
        for dir in state.dirs.values_mut() {
            dir.visible.clone_from(&dir.durable);
        }
        for inode in state.inodes.values_mut() {
            inode.open_handles = 0;
        }
        state.collect_garbage();

        let mut seen = BTreeSet::new();
        for (dir_path, dir) in &state.dirs {
            for (name, &id) in &dir.durable {
                if !seen.insert(id) {
                    continue;
                }
                let inode = state
                    .inodes
                    .get_mut(&id)
                    .expect("FaultFs: a durable entry keeps its inode");
                writeback(&dir_path.join(name), inode);
                inode.drop_pending();
                inode.check();
            }
        }
        debug_assert!(
            state.inodes.values().all(|inode| inode.pending.is_empty()),
            "FaultFs: every inode left after a crash is named by a durable entry"
        );
    }

    /// Flips bit `offset_bits % 8` (the least significant is 0) of byte `offset_bits / 8` of the
    /// durable contents of the visible file at `path`, and so also of its visible contents where
    /// those still show the durable byte: bit rot on the disk, which reads see.
    ///
    /// Fails with `NotFound` if there is no such file, and with `InvalidInput` if the byte is not
    /// durable (only synced bytes can rot). Not counted as an operation.
    pub fn flip_bit(&self, path: &Path, offset_bits: u64) -> io::Result<()> {
        let mut state = self.lock();
        let id = state.lookup(path)?;
        let inode = state
            .inodes
            .get_mut(&id)
            .expect("FaultFs: a visible entry keeps its inode");
        let byte = to_usize(offset_bits / 8);
        let Some(target) = inode.durable.get_mut(byte) else {
            return Err(invalid(format!(
                "byte {byte} of {} is not durable ({} durable bytes)",
                path.display(),
                inode.durable.len()
            )));
        };
        *target ^= 1 << (offset_bits % 8);
        let mut visible = inode.durable.clone();
        replay(&mut visible, &inode.pending, None);
        inode.visible = visible;
        inode.check();
        Ok(())
    }

    /// Makes the next [`FsFile::sync_data`] (on any file) fail with `EIO`
    /// (`io::Error::from_raw_os_error(5)`).
    ///
    /// The failed sync drops that file's pending writes, from its visible contents too: like
    /// Linux after a failed fsync, which marks the dirty pages clean although they never reached
    /// the disk, a later successful sync must not make the lost data durable, and here it cannot.
    /// Arming it twice before a sync still fails one sync.
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    /// Makes the next [`FsFile::write_all`] or [`FsFile::write_at`] (on any file) store the first `stored_bytes` of its
    /// data (fewer if the data is shorter or the disk has no room for them) and then fail with
    /// `EIO` (`io::Error::from_raw_os_error(5)`).
    ///
    /// This is a write whose outcome the caller cannot know: a device or file system error, after
    /// which part of the data may sit in the page cache. The stored prefix is a pending write like
    /// any other: reads see it, a sync makes it durable, a crash loses it. Arming it twice before
    /// a write still fails one write, storing the prefix armed last.
    pub fn fail_next_write(&self, stored_bytes: usize) {
        self.lock().fail_next_write = Some(stored_bytes);
    }

    /// Makes the next [`Fs::sync_dir`] (of any existing directory) fail with `EIO`.
    ///
    /// The directory's durable entries stay as they were before the call, and its visible entries
    /// stay as they are: a crash now reverts the creations, renames and removals since its last
    /// successful sync, and a later successful sync makes them durable. (A real failed directory
    /// fsync may have made some of them durable; storage must assume either.)
    pub fn fail_next_sync_dir(&self) {
        self.lock().fail_next_sync_dir = true;
    }

    /// Sets the disk size in bytes (`None`: unlimited). A write or a `set_len` growth that would
    /// take the total visible length of all visible or open files beyond it fails with `ENOSPC`
    /// (an overwrite within a file's length takes no space, so it always fits)
    /// (`io::Error::from_raw_os_error(28)`) and writes nothing (but see
    /// [`FaultFs::set_short_writes`]). Lowering it below the space in use removes nothing; only
    /// growth fails.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity_bytes = bytes;
    }

    /// With `true`, a write that would exceed the capacity first stores the prefix of its data
    /// that fits, and only then fails with `ENOSPC`: what `write_all` does over a real kernel,
    /// where `write(2)` returns a short count once the disk fills and the retry gets `ENOSPC`.
    /// The stored prefix is a pending write, as with [`FaultFs::fail_next_write`]. A `set_len`
    /// growth past the capacity still changes nothing. Off by default.
    pub fn set_short_writes(&self, enabled: bool) {
        self.lock().short_writes = enabled;
    }

    /// What a crash would leave at `path`: the durable contents of the file its durable entry
    /// names, or `None` if the path has no durable entry.
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let (dir, name) = split(path).ok()?;
        let id = state.dirs.get(dir)?.durable.get(name)?;
        Some(state.inodes[id].durable.clone())
    }

    /// The paths of all visible files, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let state = self.lock();
        state
            .dirs
            .iter()
            .flat_map(|(dir, entries)| entries.visible.keys().map(move |name| dir.join(name)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// The number of successful [`FsFile::sync_data`] calls so far, over all generations.
    pub fn sync_count(&self) -> u64 {
        self.lock().sync_count
    }

    /// The number of file operations so far, over all generations: every call of an [`Fs`]
    /// method and of [`FsFile::write_all`], [`FsFile::sync_data`] and [`FsFile::set_len`],
    /// whether it succeeded or not, and of [`FsFile::write_at`]. [`FsFile::len`] and the methods of `FaultFs` itself do not
    /// count.
    pub fn op_count(&self) -> u64 {
        self.lock().op_count
    }

    fn open(&self, state: &mut State, path: &Path, inode: InodeId) -> FaultFile {
        let entry = state
            .inodes
            .get_mut(&inode)
            .expect("FaultFs: an entry keeps its inode");
        entry.open_handles += 1;
        FaultFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            inode,
            generation: state.generation,
            last_len: entry.visible.len() as u64,
        }
    }
}

/// Locks the state of `fs` as one operation of the handle of `inode` opened in `generation`, or
/// fails if the handle is from before a crash. (A function of the fields, not a method, so that
/// the caller can still update its other fields while holding the lock.)
fn lock_live<'a>(
    fs: &'a FaultFs,
    generation: u64,
    path: &Path,
    inode: InodeId,
) -> io::Result<MutexGuard<'a, State>> {
    let state = fs.op();
    if state.generation != generation {
        return Err(io::Error::other(format!(
            "file handle of {} is from before a crash",
            path.display()
        )));
    }
    assert!(
        state.inodes.contains_key(&inode),
        "FaultFs: an open handle of {} keeps its inode",
        path.display()
    );
    Ok(state)
}

impl FaultFile {
    /// A write at `offset` (`None`: at the end), with every fault a write can meet.
    fn write(&mut self, offset: Option<u64>, data: &[u8]) -> io::Result<()> {
        let mut state = lock_live(&self.fs, self.generation, &self.path, self.inode)?;
        let id = self.inode;
        let len = state.inodes[&id].visible.len() as u64;
        let offset_value = offset.unwrap_or(len);
        let end = offset_value.saturating_add(data.len() as u64);
        // The longest prefix of `data` that fits: only growth past the length takes space.
        let fits = state.free_bytes().map_or(data.len(), |free| {
            to_usize((len + free).saturating_sub(offset_value)).min(data.len())
        });
        if let Some(stored_bytes) = state.fail_next_write.take() {
            let stored = stored_bytes.min(data.len()).min(fits);
            self.last_len = state.write(id, offset, &data[..stored]);
            return Err(io::Error::from_raw_os_error(EIO));
        }
        if let Err(error) = state.check_room(end.saturating_sub(len)) {
            if state.short_writes {
                self.last_len = state.write(id, offset, &data[..fits]);
            }
            return Err(error);
        }
        self.last_len = state.write(id, offset, data);
        Ok(())
    }
}

impl FsFile for FaultFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.write(None, data)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write(Some(offset), data)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = lock_live(&self.fs, self.generation, &self.path, self.inode)?;
        let id = self.inode;
        let state = &mut *state;
        let inode = state.inodes.get_mut(&id).expect("checked by op");
        if std::mem::take(&mut state.fail_next_sync) {
            // fsyncgate: the kernel forgets the dirty pages of a failed fsync, so nothing can make
            // them durable later. Dropping them here makes a retry that pretends otherwise visible.
            inode.drop_pending();
            self.last_len = inode.visible.len() as u64;
            return Err(io::Error::from_raw_os_error(EIO));
        }
        // Replaying the pending writes costs what they wrote, not the size of the file.
        let pending = std::mem::take(&mut inode.pending);
        replay(&mut inode.durable, &pending, None);
        inode.check();
        state.sync_count += 1;
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut state = lock_live(&self.fs, self.generation, &self.path, self.inode)?;
        let id = self.inode;
        let old_len = state.inodes[&id].visible.len() as u64;
        state.check_room(len.saturating_sub(old_len))?;
        let inode = state.inodes.get_mut(&id).expect("checked by op");
        let Ok(new_len) = usize::try_from(len) else {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        };
        inode.visible.resize(new_len, 0);
        inode.pending.push(Pending::SetLen(len));
        inode.check();
        self.last_len = len;
        Ok(())
    }

    fn len(&self) -> u64 {
        let state = self.fs.lock();
        if state.generation != self.generation {
            return self.last_len;
        }
        state
            .inodes
            .get(&self.inode)
            .map_or(self.last_len, |inode| inode.visible.len() as u64)
    }
}

impl Drop for FaultFile {
    fn drop(&mut self) {
        let mut state = self.fs.lock();
        if state.generation != self.generation {
            return;
        }
        if let Some(inode) = state.inodes.get_mut(&self.inode) {
            inode.open_handles -= 1;
        }
        state.collect_garbage();
    }
}

impl Fs for FaultFs {
    type File = FaultFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.op();
        for ancestor in dir.ancestors() {
            if state.dirs.contains_key(ancestor) {
                continue;
            }
            if let Ok((parent, name)) = split(ancestor)
                && state
                    .dirs
                    .get(parent)
                    .is_some_and(|parent| parent.visible.contains_key(name))
            {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is a file", ancestor.display()),
                ));
            }
        }
        for ancestor in dir.ancestors() {
            state.dirs.entry(ancestor.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.op();
        let entries = state
            .dirs
            .get(dir)
            .ok_or_else(|| not_found("directory", dir))?;
        Ok(entries.visible.keys().cloned().collect())
    }

    fn create(&self, path: &Path) -> io::Result<FaultFile> {
        let mut state = self.op();
        let (dir, name) = split(path)?;
        let exists =
            state.dirs.contains_key(path) || state.dir_mut(dir)?.visible.contains_key(name);
        if exists {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", path.display()),
            ));
        }
        let id = state.new_inode();
        state.dir_mut(dir)?.visible.insert(name.to_string(), id);
        Ok(self.open(&mut state, path, id))
    }

    fn open_append(&self, path: &Path) -> io::Result<FaultFile> {
        let mut state = self.op();
        let id = state.lookup(path)?;
        Ok(self.open(&mut state, path, id))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.op();
        Ok(state.inode(path)?.visible.clone())
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let state = self.op();
        let visible = &state.inode(path)?.visible;
        let start = to_usize(offset).min(visible.len());
        let end = start.saturating_add(len).min(visible.len());
        Ok(visible[start..end].to_vec())
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let state = self.op();
        Ok(state.inode(path)?.visible.len() as u64)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.op();
        let id = state.lookup(from)?;
        if state.dirs.contains_key(to) {
            return Err(is_a_directory(to));
        }
        let (to_dir, to_name) = split(to)?;
        state.dir_mut(to_dir)?;
        let (from_dir, from_name) = split(from)?;
        state.dir_mut(from_dir)?.visible.remove(from_name);
        state
            .dir_mut(to_dir)?
            .visible
            .insert(to_name.to_string(), id);
        state.collect_garbage();
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.op();
        state.lookup(path)?;
        let (dir, name) = split(path)?;
        state.dir_mut(dir)?.visible.remove(name);
        state.collect_garbage();
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.op();
        state.dir_mut(dir)?;
        if std::mem::take(&mut state.fail_next_sync_dir) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let entries = state.dir_mut(dir)?;
        entries.durable.clone_from(&entries.visible);
        state.collect_garbage();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    /// A disk with the directory `/d` and the file `/d/f` holding `durable` (synced, and its entry
    /// synced), opened for appending.
    fn setup(durable: &[u8]) -> (FaultFs, FaultFile) {
        let fs = FaultFs::new();
        fs.create_dir_all(&path("/d")).unwrap();
        let mut file = fs.create(&path("/d/f")).unwrap();
        file.write_all(durable).unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(&path("/d")).unwrap();
        (fs, file)
    }

    fn raw_os_error(result: io::Result<()>) -> Option<i32> {
        result.unwrap_err().raw_os_error()
    }

    #[test]
    fn reads_see_unsynced_writes() {
        let (fs, mut file) = setup(b"abc");
        file.write_all(b"def").unwrap();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abcdef");
        assert_eq!(fs.read_at(&path("/d/f"), 2, 3).unwrap(), b"cde");
        assert_eq!(fs.read_at(&path("/d/f"), 5, 10).unwrap(), b"f");
        assert_eq!(fs.read_at(&path("/d/f"), 99, 10).unwrap(), b"");
        assert_eq!(fs.file_len(&path("/d/f")).unwrap(), 6);
        assert_eq!(file.len(), 6);
        assert_eq!(fs.durable_contents(&path("/d/f")).unwrap(), b"abc");
    }

    #[test]
    fn unsynced_append_is_lost_at_crash() {
        let (fs, mut file) = setup(b"abc");
        file.write_all(b"def").unwrap();
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abc");
    }

    #[test]
    fn synced_append_survives_crash() {
        let (fs, mut file) = setup(b"abc");
        file.write_all(b"def").unwrap();
        file.sync_data().unwrap();
        assert_eq!(fs.durable_contents(&path("/d/f")).unwrap(), b"abcdef");
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abcdef");
    }

    #[test]
    fn unsynced_set_len_is_undone_at_crash() {
        let (fs, mut file) = setup(b"abcdef");
        file.set_len(2).unwrap();
        file.write_all(b"X").unwrap();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abX");
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abcdef");
    }

    #[test]
    fn synced_set_len_survives_crash() {
        let (fs, mut file) = setup(b"abcdef");
        file.set_len(2).unwrap();
        file.set_len(4).unwrap();
        assert_eq!(file.len(), 4);
        file.sync_data().unwrap();
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"ab\0\0");
    }

    #[test]
    fn an_overwrite_in_place_is_pending_until_synced_and_a_tear_keeps_a_prefix_of_it() {
        let (fs, mut file) = setup(b"abcdef");
        file.write_at(1, b"XY").unwrap();
        file.write_at(8, b"Z").unwrap();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"aXYdef\0\0Z");
        assert_eq!(file.len(), 9);
        // A plain crash brings back the old bytes and the old length.
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abcdef");

        let mut file = fs.open_append(&path("/d/f")).unwrap();
        file.write_at(1, b"XY").unwrap();
        file.write_at(4, b"QR").unwrap();
        let mut seen = Vec::new();
        fs.crash_tearing(|_, written| {
            seen.push(written);
            3
        });
        // The stream was XY at 1, then QR at 4: its first three bytes are XY and Q.
        assert_eq!(seen, [4]);
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"aXYdQf");

        let mut file = fs.open_append(&path("/d/f")).unwrap();
        file.write_at(0, b"12").unwrap();
        file.write_all(b"+").unwrap();
        file.sync_data().unwrap();
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"12YdQf+");
    }

    #[test]
    fn an_overwrite_takes_no_space_and_a_growing_write_at_meets_every_write_fault() {
        let (fs, mut file) = setup(b"abcdef");
        // In place: fits on a full disk.
        fs.set_capacity(Some(6));
        file.write_at(0, b"ABCDEF").unwrap();
        // Growing by 2 where 1 fits: nothing stored, or with short writes the prefix that fits.
        fs.set_capacity(Some(7));
        assert_eq!(raw_os_error(file.write_at(4, b"wxyz")), Some(ENOSPC));
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"ABCDEF");
        fs.set_short_writes(true);
        assert_eq!(raw_os_error(file.write_at(4, b"wxyz")), Some(ENOSPC));
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"ABCDwxy");
        assert_eq!(file.len(), 7);
        fs.set_capacity(None);
        // An armed failure stores its prefix at the offset, then fails.
        fs.fail_next_write(1);
        assert_eq!(raw_os_error(file.write_at(2, b"!!")), Some(EIO));
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"AB!Dwxy");
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abcdef");
    }

    #[test]
    fn create_without_dir_sync_is_lost() {
        let (fs, _) = setup(b"");
        let mut file = fs.create(&path("/d/new")).unwrap();
        file.write_all(b"data").unwrap();
        // Syncing the data does not make the name durable.
        file.sync_data().unwrap();
        assert_eq!(fs.durable_contents(&path("/d/new")), None);
        fs.crash();
        assert_eq!(fs.files(), vec![path("/d/f")]);
        assert_eq!(
            fs.read(&path("/d/new")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn create_with_dir_sync_survives_crash_with_its_synced_data_only() {
        let (fs, _) = setup(b"");
        let mut file = fs.create(&path("/d/new")).unwrap();
        file.write_all(b"data").unwrap();
        fs.sync_dir(&path("/d")).unwrap();
        fs.crash();
        assert_eq!(fs.read(&path("/d/new")).unwrap(), b"");
    }

    #[test]
    fn rename_is_durable_only_after_dir_sync() {
        let (fs, _) = setup(b"old");
        let mut tmp = fs.create(&path("/d/tmp")).unwrap();
        tmp.write_all(b"new").unwrap();
        tmp.sync_data().unwrap();
        fs.sync_dir(&path("/d")).unwrap();
        fs.rename(&path("/d/tmp"), &path("/d/f")).unwrap();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"new");
        assert_eq!(fs.files(), vec![path("/d/f")]);

        // Unsynced: the rename is reverted, and the replaced file comes back.
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"old");
        assert_eq!(fs.read(&path("/d/tmp")).unwrap(), b"new");

        fs.rename(&path("/d/tmp"), &path("/d/f")).unwrap();
        fs.sync_dir(&path("/d")).unwrap();
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"new");
        assert_eq!(fs.files(), vec![path("/d/f")]);
    }

    #[test]
    fn remove_is_durable_only_after_dir_sync() {
        let (fs, file) = setup(b"abc");
        drop(file);
        fs.remove(&path("/d/f")).unwrap();
        assert!(fs.files().is_empty());
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abc");

        fs.remove(&path("/d/f")).unwrap();
        fs.sync_dir(&path("/d")).unwrap();
        fs.crash();
        assert!(fs.files().is_empty());
        assert_eq!(fs.durable_contents(&path("/d/f")), None);
    }

    #[test]
    fn handle_follows_its_file_across_rename_and_remove() {
        let (fs, mut file) = setup(b"a");
        fs.rename(&path("/d/f"), &path("/d/g")).unwrap();
        file.write_all(b"b").unwrap();
        assert_eq!(fs.read(&path("/d/g")).unwrap(), b"ab");
        fs.remove(&path("/d/g")).unwrap();
        fs.sync_dir(&path("/d")).unwrap();
        // An unlinked open file still takes writes, which nothing can see.
        file.write_all(b"c").unwrap();
        file.sync_data().unwrap();
        assert_eq!(file.len(), 3);
        assert!(fs.files().is_empty());
    }

    #[test]
    fn directories_are_durable_at_once_and_listed_files_are_direct_children() {
        let fs = FaultFs::new();
        fs.create_dir_all(&path("/d/sub")).unwrap();
        fs.create(&path("/d/a")).unwrap();
        fs.create(&path("/d/sub/b")).unwrap();
        let mut names = fs.list(&path("/d")).unwrap();
        names.sort();
        assert_eq!(names, vec!["a".to_string()]);
        assert_eq!(fs.files(), vec![path("/d/a"), path("/d/sub/b")]);
        fs.crash();
        assert!(fs.list(&path("/d/sub")).unwrap().is_empty());
    }

    #[test]
    fn missing_and_existing_files_give_the_posix_error_kinds() {
        let (fs, _) = setup(b"");
        let kind = |result: io::Result<()>| result.unwrap_err().kind();
        assert_eq!(
            kind(fs.read(&path("/d/x")).map(drop)),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            kind(fs.open_append(&path("/d/x")).map(drop)),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            kind(fs.file_len(&path("/d/x")).map(drop)),
            io::ErrorKind::NotFound
        );
        assert_eq!(kind(fs.remove(&path("/d/x"))), io::ErrorKind::NotFound);
        assert_eq!(
            kind(fs.rename(&path("/d/x"), &path("/d/y"))),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            kind(fs.list(&path("/nope")).map(drop)),
            io::ErrorKind::NotFound
        );
        assert_eq!(kind(fs.sync_dir(&path("/nope"))), io::ErrorKind::NotFound);
        assert_eq!(
            kind(fs.create(&path("/nope/x")).map(drop)),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            kind(fs.create(&path("/d/f")).map(drop)),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs.create(&path("/d")).map(drop)),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs.create_dir_all(&path("/d/f/sub"))),
            io::ErrorKind::AlreadyExists
        );
    }

    #[test]
    fn failed_fsync_loses_the_unsynced_data_and_returns_eio() {
        let (fs, mut file) = setup(b"abc");
        let syncs = fs.sync_count();
        file.write_all(b"def").unwrap();
        fs.fail_next_sync();
        assert_eq!(raw_os_error(file.sync_data()), Some(EIO));
        assert_eq!(fs.sync_count(), syncs);
        // The retry succeeds, but the data it would have made durable is gone.
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abc");
        assert_eq!(file.len(), 3);
        file.sync_data().unwrap();
        assert_eq!(fs.sync_count(), syncs + 1);
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abc");
    }

    #[test]
    fn enospc_writes_nothing() {
        let (fs, mut file) = setup(b"abc");
        let mut other = fs.create(&path("/d/g")).unwrap();
        other.write_all(b"12").unwrap();
        fs.set_capacity(Some(8));
        assert_eq!(raw_os_error(file.write_all(b"wxyz")), Some(ENOSPC));
        assert_eq!(raw_os_error(file.set_len(7)), Some(ENOSPC));
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abc");
        assert_eq!(file.len(), 3);
        file.write_all(b"xyz").unwrap();
        assert_eq!(raw_os_error(other.write_all(b"3")), Some(ENOSPC));
        // A removal frees the space at once; shrinking is always allowed.
        drop(other);
        fs.remove(&path("/d/g")).unwrap();
        file.write_all(b"12").unwrap();
        file.set_len(0).unwrap();
        fs.set_capacity(None);
        file.write_all(&[0; 100]).unwrap();
    }

    #[test]
    fn short_writes_store_what_fits_before_enospc() {
        let (fs, mut file) = setup(b"abc");
        fs.set_capacity(Some(6));
        fs.set_short_writes(true);
        assert_eq!(raw_os_error(file.write_all(b"defgh")), Some(ENOSPC));
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abcdef");
        assert_eq!(file.len(), 6);
        // The disk is full now: the next write stores nothing, and growth by set_len none.
        assert_eq!(raw_os_error(file.write_all(b"g")), Some(ENOSPC));
        assert_eq!(raw_os_error(file.set_len(9)), Some(ENOSPC));
        assert_eq!(file.len(), 6);
        // The stored prefix is pending like any write: a crash loses it.
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abc");
    }

    #[test]
    fn a_failed_write_stores_the_armed_prefix_and_returns_eio() {
        let (fs, mut file) = setup(b"abc");
        fs.fail_next_write(2);
        assert_eq!(raw_os_error(file.write_all(b"defg")), Some(EIO));
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abcde");
        assert_eq!(file.len(), 5);
        // One-shot: the next write succeeds.
        file.write_all(b"X").unwrap();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abcdeX");
        // A prefix longer than the data stores the data, and still fails.
        fs.fail_next_write(100);
        assert_eq!(raw_os_error(file.write_all(b"Y")), Some(EIO));
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abcdeXY");
        file.sync_data().unwrap();
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abcdeXY");
    }

    #[test]
    fn a_failed_directory_sync_returns_eio_and_makes_nothing_durable() {
        let (fs, _) = setup(b"");
        drop(fs.create(&path("/d/new")).unwrap());
        fs.fail_next_sync_dir();
        assert_eq!(raw_os_error(fs.sync_dir(&path("/d"))), Some(EIO));
        assert_eq!(fs.durable_contents(&path("/d/new")), None);
        assert_eq!(fs.files(), vec![path("/d/f"), path("/d/new")]);
        fs.crash();
        assert_eq!(fs.files(), vec![path("/d/f")]);
        // One-shot: the next sync succeeds.
        drop(fs.create(&path("/d/new")).unwrap());
        fs.sync_dir(&path("/d")).unwrap();
        fs.crash();
        assert_eq!(fs.files(), vec![path("/d/f"), path("/d/new")]);
    }

    #[test]
    fn torn_write_keeps_a_prefix() {
        let fs = FaultFs::new();
        fs.create_dir_all(&path("/d")).unwrap();
        let mut files = Vec::new();
        for name in ["a", "b", "c", "unnamed"] {
            let mut file = fs.create(&path("/d").join(name)).unwrap();
            file.write_all(b"01").unwrap();
            file.sync_data().unwrap();
            if name == "c" {
                file.set_len(1).unwrap();
            }
            file.write_all(b"2345").unwrap();
            file.write_all(b"6789").unwrap();
            if name == "c" {
                fs.sync_dir(&path("/d")).unwrap();
            }
            files.push(file);
        }
        let mut calls = Vec::new();
        fs.crash_tearing(|path, appended| {
            calls.push((path.to_path_buf(), appended));
            match path.file_name().and_then(|name| name.to_str()) {
                Some("a") => 5,
                Some("b") => 100,
                _ => 3,
            }
        });
        // `unnamed` was created after the last directory sync: no callback, gone.
        assert_eq!(
            calls,
            vec![(path("/d/a"), 8), (path("/d/b"), 8), (path("/d/c"), 8)]
        );
        assert_eq!(fs.read(&path("/d/a")).unwrap(), b"0123456");
        assert_eq!(fs.read(&path("/d/b")).unwrap(), b"0123456789");
        // The truncation came before the kept bytes, so it is kept too.
        assert_eq!(fs.read(&path("/d/c")).unwrap(), b"0234");
        assert_eq!(fs.files(), vec![path("/d/a"), path("/d/b"), path("/d/c")]);
        // What a tear kept is durable.
        fs.crash();
        assert_eq!(fs.read(&path("/d/a")).unwrap(), b"0123456");
    }

    #[test]
    fn torn_write_of_nothing_is_a_crash() {
        let (fs, mut file) = setup(b"ab");
        file.write_all(b"cd").unwrap();
        fs.crash_tearing(|_, _| 0);
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"ab");
    }

    /// Crashes `fs` keeping, of every file, the sectors numbered in `keep`; returns the sectors
    /// the crash asked about, in the order it asked, with their files.
    fn scramble(fs: &FaultFs, keep: &[u64]) -> Vec<(PathBuf, u64)> {
        let mut asked = Vec::new();
        fs.crash_scrambling(|path, sector| {
            asked.push((path.to_path_buf(), sector));
            keep.contains(&sector)
        });
        asked
    }

    fn sectors(asked: &[(PathBuf, u64)]) -> Vec<u64> {
        asked.iter().map(|(_, sector)| *sector).collect()
    }

    #[test]
    fn a_scrambled_overwrite_keeps_exactly_the_chosen_sectors_new_and_the_others_old() {
        let (fs, mut file) = setup(&[b'a'; 2048]);
        // Bytes 100..1700: sectors 0 to 3, none of them whole at both ends.
        file.write_at(100, &[b'b'; 1600]).unwrap();
        let asked = scramble(&fs, &[0, 2]);
        assert_eq!(sectors(&asked), [0, 1, 2, 3]);
        assert!(asked.iter().all(|(p, _)| *p == path("/d/f")));
        let mut expected = vec![b'a'; 2048];
        expected[100..512].fill(b'b');
        expected[1024..1536].fill(b'b');
        assert_eq!(fs.read(&path("/d/f")).unwrap(), expected);
        // What was kept is durable; a later write elsewhere leaves it alone.
        let mut file = fs.open_append(&path("/d/f")).unwrap();
        file.write_at(0, b"z").unwrap();
        assert_eq!(sectors(&scramble(&fs, &[])), [0]);
        assert_eq!(fs.read(&path("/d/f")).unwrap(), expected);
    }

    #[test]
    fn a_scrambled_growth_keeps_its_length_with_its_end_sector_and_zeros_the_sectors_not_kept() {
        // 600 durable bytes, then bytes 500..1600 written: sectors 0 to 3, the end sector 3.
        let grow = || {
            let (fs, mut file) = setup(&[b'a'; 600]);
            file.write_at(500, &[b'b'; 1100]).unwrap();
            fs
        };
        // The end sector kept: the new length, with zeros where no kept sector wrote past the
        // durable length, and the durable bytes in the sectors not kept before it.
        let fs = grow();
        assert_eq!(sectors(&scramble(&fs, &[1, 3])), [0, 1, 2, 3]);
        let mut expected = vec![b'a'; 512];
        expected.extend([b'b'; 512]);
        expected.extend([0; 512]);
        expected.extend([b'b'; 64]);
        assert_eq!(fs.read(&path("/d/f")).unwrap(), expected);

        // The end sector lost: the durable length, with the kept sectors within it.
        let fs = grow();
        scramble(&fs, &[0, 2]);
        let mut expected = vec![b'a'; 600];
        expected[500..512].fill(b'b');
        assert_eq!(fs.read(&path("/d/f")).unwrap(), expected);

        // An append within the last durable sector, and one to an empty file.
        let (fs, mut file) = setup(b"abc");
        file.write_all(b"def").unwrap();
        assert_eq!(sectors(&scramble(&fs, &[])), [0]);
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abc");
        let (fs, mut file) = setup(b"");
        file.write_all(&[b'x'; 513]).unwrap();
        assert_eq!(sectors(&scramble(&fs, &[1])), [0, 1]);
        let mut expected = vec![0; 512];
        expected.push(b'x');
        assert_eq!(fs.read(&path("/d/f")).unwrap(), expected);
    }

    #[test]
    fn a_pending_set_len_survives_a_scrambled_crash_only_with_the_end_sector() {
        // A shrink alone: only its end sector is asked about.
        let shrink = |keep: &[u64]| {
            let (fs, mut file) = setup(&[b'a'; 1024]);
            file.set_len(100).unwrap();
            assert_eq!(sectors(&scramble(&fs, keep)), [0]);
            fs.read(&path("/d/f")).unwrap()
        };
        assert_eq!(shrink(&[0]), [b'a'; 100]);
        assert_eq!(shrink(&[]), [b'a'; 1024]);

        // A shrink, then a write past the cut: kept with the end sector, the cut zeroes what no
        // kept sector rewrote; lost, the durable bytes are back.
        let cut_and_write = |keep: &[u64]| {
            let (fs, mut file) = setup(&[b'a'; 1024]);
            file.set_len(10).unwrap();
            file.write_at(600, b"x").unwrap();
            file.write_at(0, b"y").unwrap();
            assert_eq!(sectors(&scramble(&fs, keep)), [0, 1]);
            fs.read(&path("/d/f")).unwrap()
        };
        let mut expected = vec![b'a'; 10];
        expected.resize(600, 0);
        expected.push(b'x');
        assert_eq!(cut_and_write(&[1]), expected);
        expected[0] = b'y';
        assert_eq!(cut_and_write(&[0, 1]), expected);
        // Lost with the end sector, the cut still shows in sector 0, which was written back
        // after it: a kept sector holds what reads saw.
        let mut expected = vec![b'a'; 1024];
        expected[0] = b'y';
        expected[10..512].fill(0);
        assert_eq!(cut_and_write(&[0]), expected);
        assert_eq!(cut_and_write(&[]), [b'a'; 1024]);

        // A set_len that leaves the length as it was still keeps its cut with the end sector.
        let (fs, mut file) = setup(&[b'a'; 1024]);
        file.set_len(10).unwrap();
        file.set_len(1024).unwrap();
        assert_eq!(sectors(&scramble(&fs, &[1])), [1]);
        let mut expected = vec![b'a'; 10];
        expected.resize(1024, 0);
        assert_eq!(fs.read(&path("/d/f")).unwrap(), expected);
    }

    #[test]
    fn a_scrambled_crash_asks_in_path_then_sector_order_only_about_surviving_pending_files() {
        let fs = FaultFs::new();
        fs.create_dir_all(&path("/d")).unwrap();
        let mut files = Vec::new();
        for name in ["b", "a", "synced", "unnamed"] {
            let mut file = fs.create(&path("/d").join(name)).unwrap();
            file.write_all(&[1; 1000]).unwrap();
            file.sync_data().unwrap();
            if name != "unnamed" {
                fs.sync_dir(&path("/d")).unwrap();
            }
            if name != "synced" {
                file.write_at(1200, b"x").unwrap();
                file.write_at(0, b"y").unwrap();
            }
            files.push(file);
        }
        let asked = scramble(&fs, &[0, 1, 2]);
        assert_eq!(
            asked,
            vec![
                (path("/d/a"), 0),
                (path("/d/a"), 2),
                (path("/d/b"), 0),
                (path("/d/b"), 2),
            ]
        );
        assert_eq!(
            fs.files(),
            vec![path("/d/a"), path("/d/b"), path("/d/synced")]
        );
        assert_eq!(fs.read(&path("/d/a")).unwrap().len(), 1201);
    }

    #[test]
    fn keeping_every_sector_is_a_sync_keeping_none_a_crash_and_a_seed_gives_one_outcome() {
        use rand_core::{Rng, SeedableRng};
        use rand_xorshift::XorShiftRng;

        /// A file of random durable contents and random pending writes and cuts, scrambled by
        /// `keep`; returns what it holds before and after the crash.
        fn run(seed: u64, keep: &mut dyn FnMut(u64) -> bool) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
            let mut rng = XorShiftRng::seed_from_u64(seed);
            let durable: Vec<u8> = (0..rng.next_u64() % 3000).map(|i| i as u8 | 1).collect();
            let (fs, mut file) = setup(&durable);
            for _ in 0..rng.next_u64() % 6 {
                let len = file.len();
                match rng.next_u64() % 5 {
                    0 => file.set_len(rng.next_u64() % (len + 700)).unwrap(),
                    1 => file
                        .write_all(&vec![b'w'; (rng.next_u64() % 900) as usize])
                        .unwrap(),
                    _ => {
                        let offset = rng.next_u64() % (len + 700);
                        let data = vec![b'p'; 1 + (rng.next_u64() % 1500) as usize];
                        file.write_at(offset, &data).unwrap();
                    }
                }
            }
            let visible = fs.read(&path("/d/f")).unwrap();
            fs.crash_scrambling(|_, sector| keep(sector));
            (durable, visible, fs.read(&path("/d/f")).unwrap())
        }
        for seed in 0..300 {
            let (_, visible, all) = run(seed, &mut |_| true);
            assert_eq!(all, visible, "seed {seed}");
            let (durable, _, none) = run(seed, &mut |_| false);
            assert_eq!(none, durable, "seed {seed}");
            let outcome = |seed| {
                let mut coin = XorShiftRng::seed_from_u64(seed ^ 0xC0FFEE);
                run(seed, &mut |_| coin.next_u64() % 2 == 0).2
            };
            let scrambled = outcome(seed);
            assert_eq!(scrambled, outcome(seed), "seed {seed}");
            // Whatever was kept, every byte is its durable or its visible value, or a zero.
            for (at, byte) in scrambled.iter().enumerate() {
                assert!(
                    *byte == 0 || durable.get(at) == Some(byte) || visible.get(at) == Some(byte),
                    "seed {seed}: byte {at}"
                );
            }
            assert!(
                scrambled.len() == durable.len() || scrambled.len() == visible.len(),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn flip_bit_changes_one_bit() {
        let (fs, mut file) = setup(&[0b1010_1010, 0]);
        file.write_all(&[7]).unwrap();
        fs.flip_bit(&path("/d/f"), 3).unwrap();
        assert_eq!(
            fs.durable_contents(&path("/d/f")).unwrap(),
            vec![0b1010_0010, 0]
        );
        assert_eq!(fs.read(&path("/d/f")).unwrap(), vec![0b1010_0010, 0, 7]);
        fs.flip_bit(&path("/d/f"), 15).unwrap();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), vec![0b1010_0010, 0x80, 7]);
        // Byte 2 is not durable yet, and there is no byte 3.
        for offset_bits in [16, 24] {
            assert_eq!(
                fs.flip_bit(&path("/d/f"), offset_bits).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
        assert_eq!(
            fs.flip_bit(&path("/d/x"), 0).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        fs.crash();
        assert_eq!(fs.read(&path("/d/f")).unwrap(), vec![0b1010_0010, 0x80]);
    }

    #[test]
    fn old_handles_fail_after_crash() {
        let (fs, mut file) = setup(b"abc");
        file.write_all(b"d").unwrap();
        fs.crash();
        assert!(file.write_all(b"e").is_err());
        assert!(file.sync_data().is_err());
        assert!(file.set_len(0).is_err());
        assert_eq!(file.len(), 4);
        assert_eq!(fs.read(&path("/d/f")).unwrap(), b"abc");
        // A handle of the new life works, and dropping the old one disturbs nothing.
        let mut reopened = fs.open_append(&path("/d/f")).unwrap();
        drop(file);
        reopened.write_all(b"e").unwrap();
        reopened.sync_data().unwrap();
        assert_eq!(fs.durable_contents(&path("/d/f")).unwrap(), b"abce");
    }

    #[test]
    fn counts_successful_syncs_and_all_operations() {
        let fs = FaultFs::new();
        assert_eq!((fs.sync_count(), fs.op_count()), (0, 0));
        fs.create_dir_all(&path("/d")).unwrap();
        let mut file = fs.create(&path("/d/f")).unwrap();
        file.write_all(b"x").unwrap();
        file.sync_data().unwrap();
        file.sync_data().unwrap();
        fs.sync_dir(&path("/d")).unwrap();
        let _ = fs.read(&path("/d/missing"));
        let _ = file.len();
        assert_eq!((fs.sync_count(), fs.op_count()), (2, 7));
        fs.crash();
        assert!(file.sync_data().is_err());
        assert_eq!((fs.sync_count(), fs.op_count()), (2, 8));
    }

    #[test]
    fn clones_share_one_disk() {
        let fs = FaultFs::new();
        let storage_side = fs.clone();
        storage_side.create_dir_all(&path("/d")).unwrap();
        storage_side.create(&path("/d/f")).unwrap();
        assert_eq!(fs.files(), vec![path("/d/f")]);
    }
}
