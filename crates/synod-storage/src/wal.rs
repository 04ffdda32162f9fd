//! The write-ahead log: every entry and hard-state change of one member, in append-only
//! segment files, each record framed with its length and a CRC32C.
//!
//! # Format
//!
//! A segment is named `wal-<sequence, 20 digits>.log` and holds frames back to back:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `SYNW` |
//! | 4 | body length `n`, little-endian |
//! | 4 | CRC32C of the length field and the body, little-endian |
//! | `n` | body: one [`WalBatch`] |
//!
//! A body is: a flags byte (bit 0: hard state present, bit 1: truncation present), the hard
//! state as a byte string (opaque to the log: each engine encodes its own), the truncation
//! index as a `u64`, then a `u32` entry count and the entries (see [`crate::codec`]).
//! Replaying a batch drops every entry at or above the truncation index, stores the entries
//! (each replaces any entry at its index), then the hard state. One batch is one frame, so a
//! batch is recovered whole or not at all.
//!
//! A new segment starts when the current one would grow past the segment size. The old segment
//! is synced before the new one is created and the directory is synced after, so only the last
//! segment can end in a torn write; the new segment's first frame repeats the hard state, so
//! that older segments are never needed for it.
//!
//! # Preallocation
//!
//! A segment file is longer than its frames: after them come zeros, written (not `fallocate`d)
//! ahead of need, [`WalOptions::preallocate_bytes`] at a time. The frames of a write go *in
//! place* over those zeros, so the `fdatasync` after it writes data only: the file's length
//! and block map are already durable, and ext4 needs no journal commit (which an append needs,
//! to make the new length durable, and so does a first write to `fallocate`d space, to mark its
//! extent written). Only the write that passes the preallocated length pays for the metadata:
//! it first writes zeros up to the next multiple of `preallocate_bytes` (at most to the segment
//! size, at least to its own end), then its frames, and one `fdatasync` makes both durable.
//!
//! The *logical length* of a segment is where its frames end and the zeros start; the next
//! frame goes there, and it decides when the segment is full. Before a roll the full segment
//! is cut to its logical length and synced, so older segments normally hold no zeros; recovery
//! accepts a zero tail in any segment all the same.
//!
//! # Recovery
//!
//! | on disk | recovery does |
//! |---|---|
//! | no segment | starts empty |
//! | a valid frame | replays it |
//! | only zero bytes from the end of the last valid frame (or the start) to the end of the file, in any segment | the preallocated space that no frame reached: the clean end of the segment, without a warning. The next frame is written over the first zero |
//! | the last segment ends in a partial frame, a frame whose CRC fails, or bytes without the magic, not all zero, and no valid frame follows (a torn write) | truncates the segment there, with a warning: that write was never acknowledged as durable |
//! | in the last segment, bad bytes that start with a zero byte, or hold a whole 512-byte sector of zeros, before a valid frame (a torn write into preallocated space) | truncates there, with a warning, dropping the valid frames after it. An overwrite in place reaches the disk sector by sector in any order, so a sector that still holds the preallocated zeros can come before frames of the same unsynced write; a frame starts with the nonzero magic, so a zero first byte means its first sector was never written |
//! | a frame that fails its checks otherwise (it starts with a nonzero byte and holds no zero sector), followed anywhere later in the segment by a valid frame | refuses to start: [`WalError::Corrupt`] names the file and offset. Durable data was damaged, and skipping it would lose committed entries silently |
//! | any bad frame in a segment that is not the last, unless only zeros follow it | refuses to start, as above: such a segment was synced whole before the next one was created |
//! | a valid frame whose body does not decode | refuses to start, as above |
//! | a segment file with a name that does not parse | ignored, with a warning |
//!
//! The log returns every entry it holds. Which of them a member boots from, given its newest
//! snapshot (a crash while installing a snapshot from the leader leaves old entries above it),
//! is the rule of [`crate::member`].
//!
//! # Failures while running
//!
//! A poisoned log fails every later call with [`WalError::Poisoned`]: the process must stop
//! and recover from what is on disk, by the table above.
//!
//! | failure | the log | why |
//! |---|---|---|
//! | `fdatasync` of a segment | returns the error, poisoned | the kernel may already have dropped the pages that failed to write, so a retry could report durable what is lost ("fsyncgate") |
//! | the zeros that preallocate space fail with `ENOSPC` | cuts the file back to its length before them (the cut is made durable by the sync that follows the frames) and writes the frames anyway, growing the file only as far as they reach | a full disk refuses what does not fit, not the room asked for ahead of need; a later write asks again |
//! | the zeros that preallocate space fail any other way (`EIO`) | as for a failed write of frames, below: cut back, returns [`WalError::Io`], poisoned | the same unknown state of the kernel |
//! | a write of frames (in place, or growing the file) fails with `ENOSPC` (a full disk), having stored nothing or, as a short write, a prefix of the frames | cuts the segment back to its logical length before the write (dropping any preallocated zeros after it) and syncs the cut, returns [`WalError::StorageFull`], stays usable | a full disk is a clean refusal: nothing durable was touched, and after the synced cut no partial frame is left for later frames to follow and no frame of the refused write can come back after a crash. If the cut or its sync fails, poisoned |
//! | a write fails any other way (`EIO`) | tries the same cut, returns [`WalError::Io`], poisoned | a device or file-system error leaves the kernel's state unknown (how much of the write sits in the page cache, whether the page it shares with the last durable frame is intact), so nothing more is written. Synced frames are durable either way; what of the failed write reached the disk is a torn tail that recovery cuts, or whole frames of batches that were reported failed, which is safe: an unacknowledged write may or may not have happened |
//! | cutting a full segment back to its logical length at a roll, or its `fdatasync` | returns the error, poisoned | as for any failed fsync; the segment's frames were synced before, and a zero tail left behind is a clean end for recovery |
//! | creating a segment at a roll, or syncing the directory after it | returns the error, poisoned | the directory holds a file this process does not track, whose name may or may not be durable |
//! | syncing the directory after compaction removed segments | returns the error, poisoned, as for any failed fsync; the removed segments are forgotten | whether the removals are durable is unknown; a segment that comes back holds only entries the snapshot covers and replays harmlessly before the newer ones |
//! | removing a segment at compaction | returns the error, stays usable | `unlink` either happened or did not; the segments not removed are still tracked and go at the next compaction |

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use synod_core::{Entry, Index};
use thiserror::Error;

use crate::codec::{self, DecodeError, Reader};
use crate::fs::{Fs, FsFile};

/// The magic at the start of every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"SYNW";
/// Bytes of a frame header: magic, length, CRC.
pub const FRAME_HEADER_BYTES: usize = 12;
/// The default segment size.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// The default preallocation step: one `fdatasync` in this many bytes of log pays for a
/// metadata change. Writing zeros costs a little bandwidth (each byte is written twice) and
/// makes the write that preallocates slower (a MiB more to sync); a whole segment at once would
/// make that one write take the time of 64 MiB.
pub const DEFAULT_PREALLOCATE_BYTES: u64 = 1 << 20;
/// The unit a disk writes atomically, at least: a torn write loses whole sectors.
const SECTOR_BYTES: usize = 512;
/// The largest frame body recovery accepts; anything larger is damage.
pub const MAX_FRAME_BYTES: usize = 1 << 30;

const FLAG_HARD_STATE: u8 = 1;
const FLAG_TRUNCATE: u8 = 2;

/// One durable write: what a [`synod_core::Write`] asks to store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalBatch {
    /// The engine's hard state, encoded by the caller.
    pub hard_state: Option<Vec<u8>>,
    /// Drop every entry at or above this index first.
    pub truncate_from: Option<Index>,
    /// Entries to store; each replaces any entry at its index.
    pub entries: Vec<Entry>,
}

impl WalBatch {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut flags = 0;
        if self.hard_state.is_some() {
            flags |= FLAG_HARD_STATE;
        }
        if self.truncate_from.is_some() {
            flags |= FLAG_TRUNCATE;
        }
        out.push(flags);
        codec::put_bytes(out, self.hard_state.as_deref().unwrap_or_default());
        codec::put_u64(out, self.truncate_from.unwrap_or(0));
        codec::put_u32(
            out,
            u32::try_from(self.entries.len()).expect("under 4 billion entries in one batch"),
        );
        for entry in &self.entries {
            codec::put_entry(out, entry);
        }
    }

    /// The encoded size, without the frame header.
    pub fn encoded_len(&self) -> usize {
        1 + 4
            + self.hard_state.as_ref().map_or(0, Vec::len)
            + 8
            + 4
            + self.entries.iter().map(codec::entry_len).sum::<usize>()
    }

    /// Decodes a frame body that lies in `buffer` (commands become slices of it).
    fn decode(buffer: &Bytes, body: std::ops::Range<usize>) -> Result<WalBatch, DecodeError> {
        let mut reader = Reader::new(&buffer[body]);
        let flags = reader.u8()?;
        if flags & !(FLAG_HARD_STATE | FLAG_TRUNCATE) != 0 {
            return Err(DecodeError::BadTag {
                what: "batch flags",
                tag: flags,
            });
        }
        let hard_state = reader.bytes()?;
        let truncate_from = reader.u64()?;
        let count = reader.u32()? as usize;
        // An entry takes at least 17 bytes: a count the body cannot hold is damage.
        if count > reader.remaining() / 17 {
            return Err(DecodeError::Truncated {
                needed: count.saturating_mul(17),
                left: reader.remaining(),
            });
        }
        let entries = (0..count)
            .map(|_| codec::get_entry_shared(&mut reader, buffer))
            .collect::<Result<Vec<_>, _>>()?;
        reader.finish()?;
        Ok(WalBatch {
            hard_state: (flags & FLAG_HARD_STATE != 0).then(|| hard_state.to_vec()),
            truncate_from: (flags & FLAG_TRUNCATE != 0).then_some(truncate_from),
            entries,
        })
    }
}

/// What the log held at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The newest hard state, if any was ever written.
    pub hard_state: Option<Vec<u8>>,
    /// Every stored entry, by index.
    pub entries: BTreeMap<Index, Entry>,
    /// What recovery repaired or skipped (a torn tail it cut, a file it ignored).
    pub warnings: Vec<String>,
}

/// Why the log failed.
#[derive(Debug, Error)]
pub enum WalError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The disk is full: the write was not stored, and nothing stored before it was touched.
    #[error("no space left to write {path}; nothing durable was lost")]
    StorageFull {
        /// The segment.
        path: PathBuf,
    },
    /// Durable data is damaged.
    #[error("corrupt write-ahead log {path} at byte {offset}: {reason}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the damaged frame starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A write failed while a new segment was being started, and the batches queued since the
    /// last successful sync were not stored.
    #[error("batches since the last sync were not stored: {reason}")]
    Unstored {
        /// What failed.
        reason: String,
    },
    /// A batch is larger than a frame may be.
    #[error("a batch of {bytes} bytes is larger than the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge {
        /// The batch's encoded size.
        bytes: usize,
    },
    /// An earlier fsync or write failed in a way that leaves the disk's state unknown; the log
    /// must be reopened from disk (see the [module documentation](self#failures-while-running)).
    #[error("the write-ahead log is unusable after a failed fsync or write; restart to recover")]
    Poisoned,
}

/// Options of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A new segment starts when the current one would grow past this.
    pub segment_bytes: u64,
    /// A write that passes a segment's preallocated length first extends it with zeros to the
    /// next multiple of this (see [the module documentation](self#preallocation)); 0 turns
    /// preallocation off, so that every write that is not an overwrite grows the file.
    pub preallocate_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            preallocate_bytes: DEFAULT_PREALLOCATE_BYTES,
        }
    }
}

#[derive(Clone, Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// The highest entry index stored in it (0 if none).
    max_index: Index,
}

/// The write-ahead log of one member. See the [module documentation](self).
pub struct Wal<F: Fs> {
    fs: F,
    dir: PathBuf,
    options: WalOptions,
    /// Every segment, oldest first; the last is open as `file`.
    segments: Vec<Segment>,
    file: F::File,
    /// The logical length of `file`: where its frames end and the next one goes.
    /// Invariant: `len <= file.len()`, and the bytes in between are zeros (preallocated).
    len: u64,
    /// The newest hard state written, repeated at the start of every new segment.
    hard_state: Option<Vec<u8>>,
    /// The newest hard state among the queued batches.
    pending_hard_state: Option<Vec<u8>>,
    /// Frames queued by [`Wal::append`] and not yet written.
    pending: Vec<u8>,
    /// Set when queued batches were dropped by a failed write outside [`Wal::sync`]: the next
    /// sync must not report them durable.
    unstored: Option<String>,
    /// Whether everything written has been synced.
    synced: bool,
    poisoned: bool,
}

impl<F: Fs> fmt::Debug for Wal<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

fn segment_name(seq: u64) -> String {
    format!("wal-{seq:020}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WalError + use<> {
    let path = path.to_path_buf();
    move |source| WalError::Io { op, path, source }
}

fn is_storage_full(error: &io::Error) -> bool {
    error.raw_os_error() == Some(28) || error.kind() == io::ErrorKind::StorageFull
}

/// A frame found while scanning a segment.
enum Scan {
    /// A valid frame: its body, and where the next frame starts.
    Frame(std::ops::Range<usize>, usize),
    /// The bytes from here on are not a valid frame.
    Bad(String),
    /// The end of the segment.
    End,
}

fn scan_frame(bytes: &[u8], at: usize) -> Scan {
    let rest = &bytes[at..];
    if rest.is_empty() {
        return Scan::End;
    }
    if rest.len() < FRAME_HEADER_BYTES {
        return Scan::Bad(format!("a partial frame header of {} bytes", rest.len()));
    }
    if rest[..4] != FRAME_MAGIC {
        return Scan::Bad("no frame magic".to_string());
    }
    let len_field: [u8; 4] = rest[4..8].try_into().expect("4 bytes");
    let len = u32::from_le_bytes(len_field) as usize;
    let crc = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
    if len > MAX_FRAME_BYTES || len > rest.len() - FRAME_HEADER_BYTES {
        return Scan::Bad(format!(
            "a frame of {len} bytes where {} remain",
            rest.len() - FRAME_HEADER_BYTES
        ));
    }
    let body = at + FRAME_HEADER_BYTES..at + FRAME_HEADER_BYTES + len;
    let actual = crc32c::crc32c_append(crc32c::crc32c(&len_field), &bytes[body.clone()]);
    if actual != crc {
        return Scan::Bad(format!(
            "CRC mismatch (stored {crc:#010x}, computed {actual:#010x})"
        ));
    }
    let next = body.end;
    Scan::Frame(body, next)
}

/// Whether every byte is zero, quickly enough for a preallocated tail of a whole segment.
fn is_zeros(bytes: &[u8]) -> bool {
    bytes
        .chunks(64)
        .all(|chunk| chunk.iter().fold(0, |any, &byte| any | byte) == 0)
}

/// Whether the bad bytes from `at` to the valid frame at `until` show a torn write into
/// preallocated space: a sector of it that never reached the disk and still holds the zeros.
/// Either the first byte is zero (a frame starts with the magic, so the sector where the write
/// began was not written), or a whole aligned sector before `until` is zero.
fn holds_unwritten_sector(bytes: &[u8], at: usize, until: usize) -> bool {
    debug_assert!(at < until && until <= bytes.len());
    if bytes[at] == 0 {
        return true;
    }
    let mut sector = at.next_multiple_of(SECTOR_BYTES);
    while sector + SECTOR_BYTES <= until {
        if is_zeros(&bytes[sector..sector + SECTOR_BYTES]) {
            return true;
        }
        sector += SECTOR_BYTES;
    }
    false
}

/// Whether a valid frame starts anywhere after `from`.
fn valid_frame_after(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from + 1;
    while at + FRAME_HEADER_BYTES <= bytes.len() {
        let found = bytes[at..]
            .windows(4)
            .position(|w| w == FRAME_MAGIC)
            .map(|p| at + p)?;
        if let Scan::Frame(..) = scan_frame(bytes, found) {
            return Some(found);
        }
        at = found + 1;
    }
    None
}

impl<F: Fs> Wal<F> {
    /// Opens the log in `dir` (creating it if missing) and recovers what it holds, following
    /// the rules in the [module documentation](self#recovery).
    pub fn open(fs: F, dir: &Path, options: WalOptions) -> Result<(Wal<F>, Recovered), WalError> {
        fs.create_dir_all(dir)
            .map_err(io_error("create directory", dir))?;
        let mut recovered = Recovered::default();
        let mut segments = Vec::new();
        for name in fs.list(dir).map_err(io_error("list", dir))? {
            match parse_segment_name(&name) {
                Some(seq) => segments.push(Segment {
                    seq,
                    path: dir.join(&name),
                    max_index: 0,
                }),
                None if name.ends_with(".log") => recovered.warnings.push(format!(
                    "ignored {}: not a segment name",
                    dir.join(&name).display()
                )),
                None => {}
            }
        }
        segments.sort_by_key(|s| s.seq);
        let count = segments.len();
        let mut torn_at = None;
        let mut logical_len = 0;
        for (position, segment) in segments.iter_mut().enumerate() {
            let last = position + 1 == count;
            let bytes = fs
                .read_shared(&segment.path)
                .map_err(io_error("read", &segment.path))?;
            let mut at = 0;
            loop {
                match scan_frame(&bytes, at) {
                    Scan::End => break,
                    Scan::Frame(body, next) => {
                        let batch =
                            WalBatch::decode(&bytes, body).map_err(|e| WalError::Corrupt {
                                path: segment.path.clone(),
                                offset: at as u64,
                                reason: format!("a frame with a valid CRC does not decode: {e}"),
                            })?;
                        segment.max_index = batch
                            .entries
                            .iter()
                            .map(|e| e.index)
                            .fold(segment.max_index, Index::max);
                        replay(&mut recovered, batch);
                        at = next;
                    }
                    Scan::Bad(_) if is_zeros(&bytes[at..]) => {
                        // Preallocated space that no frame reached: the clean end.
                        break;
                    }
                    Scan::Bad(reason) => {
                        let later = valid_frame_after(&bytes, at);
                        let torn = match later {
                            None => last,
                            Some(offset) => last && holds_unwritten_sector(&bytes, at, offset),
                        };
                        if !torn {
                            let detail = match later {
                                Some(offset) => {
                                    format!("{reason}; a valid frame follows at byte {offset}")
                                }
                                None => format!("{reason}, in a segment that is not the last"),
                            };
                            return Err(WalError::Corrupt {
                                path: segment.path.clone(),
                                offset: at as u64,
                                reason: detail,
                            });
                        }
                        let dropped = match later {
                            Some(offset) => format!(
                                "; an unwritten sector of preallocated space comes first, so the \
                                 valid frame at byte {offset} is of the same unsynced write"
                            ),
                            None => String::new(),
                        };
                        recovered.warnings.push(format!(
                            "{}: cut a torn write at byte {at} of {} ({reason}{dropped})",
                            segment.path.display(),
                            bytes.len()
                        ));
                        torn_at = Some(at as u64);
                        break;
                    }
                }
            }
            logical_len = at as u64;
        }
        let (file, segments) = match segments.last() {
            Some(segment) => {
                let mut file = fs
                    .open_append(&segment.path)
                    .map_err(io_error("open", &segment.path))?;
                if let Some(len) = torn_at {
                    file.set_len(len)
                        .map_err(io_error("truncate", &segment.path))?;
                    file.sync_data().map_err(io_error("sync", &segment.path))?;
                }
                (file, segments)
            }
            None => {
                let segment = Segment {
                    seq: 1,
                    path: dir.join(segment_name(1)),
                    max_index: 0,
                };
                let file = fs
                    .create(&segment.path)
                    .map_err(io_error("create", &segment.path))?;
                fs.sync_dir(dir).map_err(io_error("sync directory", dir))?;
                (file, vec![segment])
            }
        };
        debug_assert!(logical_len <= file.len(), "the frames lie in the file");
        let wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            options,
            segments,
            file,
            len: logical_len,
            hard_state: recovered.hard_state.clone(),
            pending_hard_state: None,
            pending: Vec::new(),
            unstored: None,
            synced: true,
            poisoned: false,
        };
        Ok((wal, recovered))
    }

    fn current_path(&self) -> &Path {
        &self.segments.last().expect("a segment is always open").path
    }

    fn check_usable(&self) -> Result<(), WalError> {
        if self.poisoned {
            Err(WalError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Queues a batch. It is written by the next [`Wal::sync`] (or when a segment fills up)
    /// and durable once that returns `Ok`; every batch queued before a sync shares its single
    /// write and `fdatasync` (group commit).
    pub fn append(&mut self, batch: &WalBatch) -> Result<(), WalError> {
        self.check_usable()?;
        let body_len = batch.encoded_len();
        if body_len > MAX_FRAME_BYTES {
            return Err(WalError::TooLarge { bytes: body_len });
        }
        let frame_len = (FRAME_HEADER_BYTES + body_len) as u64;
        let used = self.len + self.pending.len() as u64;
        if used > 0 && used + frame_len > self.options.segment_bytes {
            let queued = !self.pending.is_empty();
            if let Err(error) = self.roll() {
                if queued && self.pending.is_empty() {
                    // The roll's flush dropped batches appended earlier: say so at the next
                    // sync instead of reporting them durable.
                    self.unstored = Some(error.to_string());
                }
                return Err(error);
            }
        }
        let start = self.pending.len();
        encode_frame(&mut self.pending, batch);
        debug_assert_eq!((self.pending.len() - start) as u64, frame_len);
        if let Some(hard_state) = &batch.hard_state {
            self.pending_hard_state = Some(hard_state.clone());
        }
        let max = batch.entries.iter().map(|e| e.index).max().unwrap_or(0);
        let segment = self.segments.last_mut().expect("open");
        segment.max_index = segment.max_index.max(max);
        self.synced = false;
        Ok(())
    }

    /// Writes the queued frames with one write at the logical end, preallocating first if they
    /// pass the file's length. On failure drops them and cuts the segment back to its logical
    /// length; on a full disk the cut is synced and the log stays usable, on any other failure
    /// it is poisoned (see the [module documentation](self#failures-while-running)).
    fn flush(&mut self) -> Result<(), WalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let before = self.len;
        let end = before + self.pending.len() as u64;
        let result = self
            .maybe_preallocate(end)
            .and_then(|_preallocated| self.file.write_at(before, &self.pending));
        self.pending.clear();
        let Err(error) = result else {
            self.len = end;
            debug_assert!(self.len <= self.file.len(), "the frames lie in the file");
            if let Some(hard_state) = self.pending_hard_state.take() {
                self.hard_state = Some(hard_state);
            }
            return Ok(());
        };
        self.pending_hard_state = None;
        let path = self.current_path().to_path_buf();
        // A short write may have stored part of the frames or of the zeros: the cut removes
        // them, and the preallocated zeros after the logical end with them. Every byte before
        // `before` was written by an earlier flush, and each flush is followed by a sync before
        // the next, so the sync here makes durable only the cut.
        let cut = self
            .file
            .set_len(before)
            .and_then(|()| self.file.sync_data());
        if !is_storage_full(&error) || cut.is_err() {
            self.poisoned = true;
        }
        if is_storage_full(&error) {
            return Err(WalError::StorageFull { path });
        }
        Err(WalError::Io {
            op: "write",
            path,
            source: error,
        })
    }

    /// If the frames would end past the file, extends it with zeros: to the next multiple of
    /// [`WalOptions::preallocate_bytes`] after `end`, within the segment size but at least to
    /// `end`. Returns whether it did. On a full disk it drops what of the zeros was stored and
    /// reports success: the frames are then written as an append, growing the file only as far
    /// as they need.
    fn maybe_preallocate(&mut self, end: u64) -> io::Result<bool> {
        let allocated = self.file.len();
        let step = self.options.preallocate_bytes;
        if end <= allocated || step == 0 {
            return Ok(false);
        }
        let target = ((end / step + 1) * step)
            .min(self.options.segment_bytes)
            .max(end);
        let zeros = vec![0; usize::try_from(target - allocated).expect("a segment fits memory")];
        match self.file.write_at(allocated, &zeros) {
            Ok(()) => {
                debug_assert_eq!(self.file.len(), target);
                Ok(true)
            }
            Err(error) if is_storage_full(&error) => {
                self.file.set_len(allocated)?;
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// Starts a new segment: syncs the current one, cuts it to its logical length (giving back
    /// the preallocated zeros), creates the next, syncs the directory, and repeats the hard
    /// state at its start.
    fn roll(&mut self) -> Result<(), WalError> {
        self.sync()?;
        if self.file.len() > self.len {
            // The frames are durable already; the zeros are a clean end for recovery whether
            // the cut reaches the disk or not. A failed sync still poisons: see fsyncgate.
            let cut = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data());
            if let Err(source) = cut {
                self.poisoned = true;
                return Err(io_error(
                    "cut the preallocated tail of",
                    self.current_path(),
                )(source));
            }
        }
        let seq = self.segments.last().expect("open").seq + 1;
        let path = self.dir.join(segment_name(seq));
        // A failure here leaves the directory in a state this process does not track (a
        // created file whose name may or may not be durable): stop, and let recovery read
        // what is on disk.
        let file = match self.fs.create(&path) {
            Ok(file) => file,
            Err(source) => {
                self.poisoned = true;
                return Err(io_error("create", &path)(source));
            }
        };
        if let Err(source) = self.fs.sync_dir(&self.dir) {
            self.poisoned = true;
            return Err(io_error("sync directory", &self.dir)(source));
        }
        self.file = file;
        self.len = 0;
        self.segments.push(Segment {
            seq,
            path,
            max_index: 0,
        });
        if let Some(hard_state) = self.hard_state.clone() {
            let checkpoint = WalBatch {
                hard_state: Some(hard_state),
                ..WalBatch::default()
            };
            encode_frame(&mut self.pending, &checkpoint);
            self.synced = false;
        }
        Ok(())
    }

    /// Writes every queued batch and makes it durable, with one write and one `fdatasync`. A
    /// write refused for a full disk stores none of them and leaves the log usable; any other
    /// failed write, and a failed sync, poisons it (see the
    /// [module documentation](self#failures-while-running)).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.check_usable()?;
        if let Some(reason) = self.unstored.take() {
            self.pending.clear();
            self.pending_hard_state = None;
            return Err(WalError::Unstored { reason });
        }
        self.flush()?;
        if self.synced {
            return Ok(());
        }
        if let Err(source) = self.file.sync_data() {
            self.poisoned = true;
            return Err(WalError::Io {
                op: "fdatasync",
                path: self.current_path().to_path_buf(),
                source,
            });
        }
        self.synced = true;
        Ok(())
    }

    /// Forgets the batches appended since the last sync, and a pending [`WalError::Unstored`]:
    /// for a caller that reports all of them failed (group commit, after a full disk).
    pub fn abandon_queued(&mut self) {
        self.pending.clear();
        self.pending_hard_state = None;
        self.unstored = None;
    }

    /// Removes the oldest segments whose entries are all at or below `snapshot_index` (which
    /// the caller holds in a durable snapshot). The current segment is never removed.
    pub fn compact(&mut self, snapshot_index: Index) -> Result<usize, WalError> {
        self.check_usable()?;
        let removable_count = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.max_index <= snapshot_index)
            .count();
        if removable_count > 0 {
            // The hard state must be durable in a segment that stays before the segments
            // that hold it go. The current segment repeats it at its start, but that copy can
            // be missing (a crash or a failed write right after a roll), so write it again.
            // The newest hard state: one still queued, if any, else the last written.
            let newest = self
                .pending_hard_state
                .clone()
                .or_else(|| self.hard_state.clone());
            if let Some(hard_state) = newest {
                let checkpoint = WalBatch {
                    hard_state: Some(hard_state),
                    ..WalBatch::default()
                };
                self.append(&checkpoint)?;
            }
            self.sync()?;
        }
        let removable = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.max_index <= snapshot_index)
            .count();
        let mut removed = 0;
        let mut failure = None;
        for segment in &self.segments[..removable] {
            if let Err(source) = self.fs.remove(&segment.path) {
                failure = Some(io_error("remove", &segment.path)(source));
                break;
            }
            removed += 1;
        }
        // Only the segments actually removed are forgotten; the rest go at the next compaction.
        self.segments.drain(..removed);
        debug_assert!(
            !self.segments.is_empty(),
            "the current segment is never removed"
        );
        if removed > 0
            && let Err(source) = self.fs.sync_dir(&self.dir)
        {
            // Whether the removals are durable is unknown, as after any failed fsync.
            self.poisoned = true;
            return Err(io_error("sync directory", &self.dir)(source));
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(removed),
        }
    }

    /// The number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// Appends `batch` to `out` as one frame.
fn encode_frame(out: &mut Vec<u8>, batch: &WalBatch) {
    let start = out.len();
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&[0; 8]);
    batch.encode(out);
    let len = u32::try_from(out.len() - start - FRAME_HEADER_BYTES)
        .ok()
        .filter(|&len| len as usize <= MAX_FRAME_BYTES)
        .expect("a batch under 1 GiB");
    let len_field = len.to_le_bytes();
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&len_field),
        &out[start + FRAME_HEADER_BYTES..],
    );
    out[start + 4..start + 8].copy_from_slice(&len_field);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

fn replay(recovered: &mut Recovered, batch: WalBatch) {
    if let Some(from) = batch.truncate_from {
        recovered.entries.split_off(&from);
    }
    for entry in batch.entries {
        recovered.entries.insert(entry.index, entry);
    }
    if batch.hard_state.is_some() {
        recovered.hard_state = batch.hard_state;
    }
}
