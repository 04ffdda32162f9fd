//! Failures while running, injected by `FaultFs`: a write that fails with `EIO`, a full disk
//! that takes a short write before `ENOSPC`, and a failed directory fsync, under the log (at a
//! segment roll and after compaction) and under the snapshot store (after its rename). Each
//! must leave every synced batch and every installed snapshot intact, and report nothing as
//! durable that is not (see "Failures while running" in `synod_storage::wal`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use synod_core::{Entry, Index, Membership, Payload, SnapshotMeta};
use synod_storage::fault::FaultFs;
use synod_storage::fs::Fs;
use synod_storage::group::GroupCommit;
use synod_storage::snapshot::{SnapshotError, SnapshotStore};
use synod_storage::wal::{
    DEFAULT_PREALLOCATE_BYTES, DEFAULT_SEGMENT_BYTES, Recovered, Wal, WalBatch, WalError,
    WalOptions,
};

const DIR: &str = "/member/wal";
/// Small segments, so that a few batches roll.
const SMALL_SEGMENTS: WalOptions = WalOptions {
    segment_bytes: 1000,
    preallocate_bytes: DEFAULT_PREALLOCATE_BYTES,
};

/// No preallocation: every write grows the file, so a full disk meets the frames themselves
/// (with preallocation, only a write past the preallocated length needs room).
const NO_PREALLOCATION: WalOptions = WalOptions {
    segment_bytes: DEFAULT_SEGMENT_BYTES,
    preallocate_bytes: 0,
};

fn dir() -> &'static Path {
    Path::new(DIR)
}

fn batch(index: Index, size: usize) -> WalBatch {
    WalBatch {
        hard_state: Some(format!("hard state {index}").into_bytes()),
        truncate_from: None,
        entries: vec![Entry {
            term: 1,
            index,
            payload: Payload::Command(Bytes::from(vec![index as u8; size])),
        }],
    }
}

fn open(fs: &FaultFs, options: WalOptions) -> (Wal<FaultFs>, Recovered) {
    Wal::open(fs.clone(), dir(), options).expect("the log opens")
}

/// A log holding batches `1..=count` of `size` bytes, each synced.
fn synced_log(count: Index, size: usize, options: WalOptions) -> (FaultFs, Wal<FaultFs>) {
    let fs = FaultFs::new();
    let (mut wal, _) = open(&fs, options);
    for index in 1..=count {
        wal.append(&batch(index, size)).expect("appends");
        wal.sync().expect("syncs");
    }
    (fs, wal)
}

/// Asserts that the log in `fs` recovers exactly `indexes`, with the hard state of the last,
/// and warns of nothing.
fn assert_recovers_exactly(fs: &FaultFs, options: WalOptions, indexes: &[Index]) {
    let (_, recovered) = open(fs, options);
    let found: Vec<Index> = recovered.entries.keys().copied().collect();
    assert_eq!(found, indexes);
    let last = indexes.last().expect("some batch");
    assert_eq!(
        recovered.hard_state,
        Some(format!("hard state {last}").into_bytes())
    );
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
}

/// Each segment's durable contents.
fn durable(fs: &FaultFs) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fs.files()
        .into_iter()
        .map(|path| {
            let contents = fs.durable_contents(&path);
            (path, contents)
        })
        .collect()
}

/// Asserts that each file's durable contents are a prefix of what they were, cut only in
/// zeros: the preallocated space after the frames.
fn assert_cut_only_zeros(
    before: &BTreeMap<PathBuf, Option<Vec<u8>>>,
    after: &BTreeMap<PathBuf, Option<Vec<u8>>>,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (path, contents) in after {
        let old = before[path].as_ref().expect("durable before");
        let new = contents.as_ref().expect("durable after");
        assert_eq!(old[..new.len()], new[..], "{}: a prefix", path.display());
        assert!(
            old[new.len()..].iter().all(|&b| b == 0),
            "{}: only zeros were cut",
            path.display()
        );
    }
}

/// Pending appended bytes per file, found by a crash that keeps all of them.
fn crash_keeping_everything_pending(fs: &FaultFs) -> Vec<(PathBuf, usize)> {
    let mut pending = Vec::new();
    fs.crash_tearing(|path, bytes| {
        pending.push((path.to_path_buf(), bytes));
        bytes
    });
    pending
}

// (a) A write that fails with EIO.

#[test]
fn an_eio_write_poisons_the_log_and_every_synced_batch_survives() {
    // The failed write stores nothing, part of a frame, exactly one frame header, or all of it.
    for stored_bytes in [0, 5, 12, 60, 10_000] {
        let (fs, mut wal) = synced_log(3, 40, WalOptions::default());
        let before = durable(&fs);
        fs.fail_next_write(stored_bytes);
        wal.append(&batch(4, 40)).expect("queues");
        let error = wal.sync().expect_err("the write fails");
        assert!(
            matches!(&error, WalError::Io { op: "write", source, .. } if source.raw_os_error() == Some(5)),
            "stored {stored_bytes}: {error}"
        );
        // The state of the kernel is unknown: nothing more is written.
        assert!(matches!(wal.append(&batch(5, 1)), Err(WalError::Poisoned)));
        assert!(matches!(wal.sync(), Err(WalError::Poisoned)));
        assert!(matches!(wal.compact(3), Err(WalError::Poisoned)));
        assert_cut_only_zeros(&before, &durable(&fs));
        drop(wal);

        // A restart without a power loss sees the cut-back segment; one after a power loss, too.
        assert_recovers_exactly(&fs, WalOptions::default(), &[1, 2, 3]);
        fs.crash();
        assert_recovers_exactly(&fs, WalOptions::default(), &[1, 2, 3]);
    }
}

#[test]
fn an_eio_write_under_group_commit_fails_the_round_and_poisons_the_log() {
    let (fs, wal) = synced_log(2, 40, WalOptions::default());
    let log = GroupCommit::new(wal);
    fs.fail_next_write(30);
    let error = log.commit(batch(3, 40)).expect_err("the write fails");
    assert!(matches!(error, WalError::Io { op: "write", .. }), "{error}");
    assert!(matches!(log.commit(batch(4, 40)), Err(WalError::Poisoned)));
    drop(log);
    fs.crash();
    assert_recovers_exactly(&fs, WalOptions::default(), &[1, 2]);
}

// (b) A full disk that takes a short write first.

/// Fills the disk so that only `room` more bytes fit, with short writes on.
fn fill_disk(fs: &FaultFs, room: u64) {
    let used: u64 = fs.files().iter().map(|p| fs.file_len(p).unwrap()).sum();
    fs.set_short_writes(true);
    fs.set_capacity(Some(used + room));
}

#[test]
fn a_short_write_on_a_full_disk_is_cut_back_and_the_log_goes_on() {
    // The space left takes nothing, part of a header, part of a body, or a whole frame and
    // part of the next.
    for room in [0, 7, 100, 300] {
        let (fs, mut wal) = synced_log(3, 40, NO_PREALLOCATION);
        let before = durable(&fs);
        let segment = fs.files().pop().expect("one segment");
        let length = fs.file_len(&segment).unwrap();
        fill_disk(&fs, room);
        wal.append(&batch(4, 150)).expect("queues");
        wal.append(&batch(5, 150)).expect("queues");
        let error = wal.sync().expect_err("the disk is full");
        assert!(
            matches!(error, WalError::StorageFull { .. }),
            "room {room}: {error}"
        );
        // The partial frames are gone, and the cut is durable: nothing of them is pending.
        assert_eq!(fs.file_len(&segment).unwrap(), length, "room {room}");
        assert_eq!(durable(&fs), before, "room {room}");

        // Space comes back: the log goes on, and the refused batches were never stored.
        fs.set_capacity(None);
        wal.append(&batch(6, 40)).expect("appends");
        wal.sync().expect("syncs");
        drop(wal);
        fs.crash();
        assert_recovers_exactly(&fs, NO_PREALLOCATION, &[1, 2, 3, 6]);
    }
}

#[test]
fn a_crash_right_after_a_short_write_finds_no_partial_frame_to_tear() {
    for room in [7, 100, 300] {
        let (fs, mut wal) = synced_log(3, 40, NO_PREALLOCATION);
        fill_disk(&fs, room);
        wal.append(&batch(4, 150)).expect("queues");
        wal.append(&batch(5, 150)).expect("queues");
        assert!(matches!(wal.sync(), Err(WalError::StorageFull { .. })));
        drop(wal);
        // A power loss during writeback keeps whatever is pending: the synced cut left
        // nothing, so no frame of the refused write can come back.
        assert_eq!(crash_keeping_everything_pending(&fs), [], "room {room}");
        fs.set_capacity(None);
        assert_recovers_exactly(&fs, NO_PREALLOCATION, &[1, 2, 3]);
    }
}

#[test]
fn a_short_write_during_a_segment_roll_drops_only_the_unsynced_batches() {
    let small_unpreallocated = WalOptions {
        preallocate_bytes: 0,
        ..SMALL_SEGMENTS
    };
    let (fs, mut wal) = synced_log(4, 150, small_unpreallocated);
    assert_eq!(wal.segment_count(), 1);
    fill_disk(&fs, 50);
    // Queued, then flushed by the roll that the next append starts: the short write fails it.
    wal.append(&batch(5, 20)).expect("queues");
    assert_eq!(wal.segment_count(), 1);
    let error = wal
        .append(&batch(6, 300))
        .expect_err("the roll's write fails");
    assert!(matches!(error, WalError::StorageFull { .. }), "{error}");
    assert!(matches!(wal.sync(), Err(WalError::Unstored { .. })));
    fs.set_capacity(None);
    wal.append(&batch(7, 300)).expect("appends");
    wal.sync().expect("syncs");
    drop(wal);
    fs.crash();
    assert_recovers_exactly(&fs, small_unpreallocated, &[1, 2, 3, 4, 7]);
}

#[test]
fn a_short_write_under_group_commit_refuses_the_round_and_the_next_one_succeeds() {
    let (fs, wal) = synced_log(2, 40, NO_PREALLOCATION);
    let log = GroupCommit::new(wal);
    fill_disk(&fs, 30);
    assert!(matches!(
        log.commit(batch(3, 200)),
        Err(WalError::StorageFull { .. })
    ));
    fs.set_capacity(None);
    log.commit(batch(4, 200)).expect("commits");
    drop(log);
    fs.crash();
    assert_recovers_exactly(&fs, NO_PREALLOCATION, &[1, 2, 4]);
}

// (c) A failed directory fsync.

#[test]
fn a_failed_directory_sync_at_a_segment_roll_poisons_the_log() {
    let (fs, mut wal) = synced_log(4, 150, SMALL_SEGMENTS);
    assert_eq!(wal.segment_count(), 1);
    fs.fail_next_sync_dir();
    let error = wal.append(&batch(5, 300)).expect_err("the roll fails");
    assert!(
        matches!(&error, WalError::Io { op: "sync directory", source, .. } if source.raw_os_error() == Some(5)),
        "{error}"
    );
    assert!(matches!(wal.append(&batch(6, 1)), Err(WalError::Poisoned)));
    assert!(matches!(wal.sync(), Err(WalError::Poisoned)));
    drop(wal);

    // Without a power loss the new, empty segment is there; after one, it may be gone. Either
    // way every synced batch is, and the reopened log works.
    assert_recovers_exactly(&fs, SMALL_SEGMENTS, &[1, 2, 3, 4]);
    fs.crash();
    let (mut wal, _) = open(&fs, SMALL_SEGMENTS);
    wal.append(&batch(7, 300)).expect("appends");
    wal.sync().expect("syncs");
    drop(wal);
    fs.crash();
    assert_recovers_exactly(&fs, SMALL_SEGMENTS, &[1, 2, 3, 4, 7]);
}

#[test]
fn a_failed_directory_sync_after_compaction_poisons_the_log_and_loses_nothing() {
    let (fs, mut wal) = synced_log(12, 150, SMALL_SEGMENTS);
    let segments = wal.segment_count();
    assert!(segments >= 3, "{segments} segments");
    fs.fail_next_sync_dir();
    let error = wal.compact(8).expect_err("the directory sync fails");
    assert!(
        matches!(
            error,
            WalError::Io {
                op: "sync directory",
                ..
            }
        ),
        "{error}"
    );
    assert!(matches!(wal.append(&batch(13, 1)), Err(WalError::Poisoned)));
    drop(wal);
    // The removals were not durable: the old segments come back, and replay harmlessly.
    fs.crash();
    assert_eq!(fs.files().len(), segments);
    assert_recovers_exactly(&fs, SMALL_SEGMENTS, &(1..=12).collect::<Vec<_>>());
}

fn meta(index: Index, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        membership: Membership {
            voters: [1, 2, 3].into(),
            ..Membership::default()
        },
    }
}

fn store_snapshot(
    store: &mut SnapshotStore<FaultFs>,
    meta: SnapshotMeta,
    content: &[u8],
) -> Result<SnapshotMeta, SnapshotError> {
    let mut writer = store.begin(meta)?;
    for chunk in content.chunks(7) {
        writer.write_chunk(chunk)?;
    }
    writer.finish()
}

const SNAPSHOTS: &str = "/member/snap";

/// A snapshot store on a fresh file system, holding one snapshot: "ten" at index 10.
fn store_holding_ten() -> (FaultFs, SnapshotStore<FaultFs>) {
    let fs = FaultFs::new();
    let mut store = SnapshotStore::open(fs.clone(), SNAPSHOTS.into(), 2).expect("opens");
    store_snapshot(&mut store, meta(10, 1), b"ten").expect("stores");
    (fs, store)
}

/// After a power loss, the store holds the snapshot at index 10 and nothing else.
fn assert_only_ten_survives_a_crash(fs: &FaultFs) {
    fs.crash();
    let store = SnapshotStore::open(fs.clone(), SNAPSHOTS.into(), 2).expect("opens");
    assert_eq!(store.snapshots(), &[meta(10, 1)]);
    assert_eq!(store.read_all(10).unwrap(), b"ten");
    assert!(store.warnings().is_empty(), "{:?}", store.warnings());
}

#[test]
fn a_failed_directory_sync_after_the_snapshot_rename_does_not_report_it_stored() {
    let (fs, mut store) = store_holding_ten();
    fs.fail_next_sync_dir();
    let error = store_snapshot(&mut store, meta(20, 2), b"twenty, from the leader")
        .expect_err("the directory sync fails");
    assert!(
        matches!(&error, SnapshotError::Sync { path, source } if path == Path::new(SNAPSHOTS) && source.raw_os_error() == Some(5)),
        "{error}"
    );
    assert_eq!(store.newest(), Some(&meta(10, 1)));
    assert_eq!(store.snapshots(), &[meta(10, 1)]);
    drop(store);
    // The rename was not durable: after a power loss only the old snapshot is there.
    assert_only_ten_survives_a_crash(&fs);
}

#[test]
fn a_failed_sync_while_a_large_snapshot_is_written_fails_it_and_keeps_the_old_one() {
    let (fs, mut store) = store_holding_ten();
    // A large snapshot is synced as it goes (every few MiB): the first of those syncs fails.
    fs.fail_next_sync();
    let mut writer = store.begin(meta(20, 2)).expect("begins");
    let chunk = vec![7u8; 1 << 20];
    let error = (0..64)
        .find_map(|_| writer.write_chunk(&chunk).err())
        .expect("a sync within 64 MiB fails");
    assert!(
        matches!(&error, SnapshotError::Sync { source, .. } if source.raw_os_error() == Some(5)),
        "{error}"
    );
    // Never retried: the writer refuses more, and cannot finish.
    assert!(writer.write_chunk(b"more").is_err());
    assert!(writer.finish().is_err());
    assert_eq!(store.snapshots(), &[meta(10, 1)]);
    drop(store);
    assert_only_ten_survives_a_crash(&fs);
}

#[test]
fn a_snapshot_whose_rename_was_not_synced_is_verified_like_any_other_at_the_next_open() {
    let (fs, mut store) = store_holding_ten();
    fs.fail_next_sync_dir();
    assert!(store_snapshot(&mut store, meta(20, 2), b"twenty").is_err());
    drop(store);
    // Without a power loss the renamed file is there, its contents synced: open lists it.
    let store = SnapshotStore::open(fs.clone(), SNAPSHOTS.into(), 2).expect("opens");
    assert_eq!(store.snapshots(), &[meta(10, 1), meta(20, 2)]);
    assert_eq!(store.read_all(20).unwrap(), b"twenty");
}

// (d) Faults while preallocating (see "Preallocation" in `synod_storage::wal`).

/// Segments of 64 KiB preallocated 4 KiB at a time: a batch of a few KiB passes a step.
const PREALLOCATING: WalOptions = WalOptions {
    segment_bytes: 64 << 10,
    preallocate_bytes: 4096,
};

#[test]
fn a_full_disk_refuses_the_preallocating_zeros_but_not_frames_that_fit() {
    // Room for the frames and part of the zeros, or for little more than the frames.
    for room in [3000, 600] {
        let (fs, mut wal) = synced_log(3, 40, PREALLOCATING);
        let segment = fs.files().pop().expect("one segment");
        assert_eq!(fs.file_len(&segment).unwrap(), 4096);
        fill_disk(&fs, room);
        wal.append(&batch(4, 4000)).expect("queues");
        wal.sync().expect("the frames fit, so the write succeeds");
        // No zeros after the frames: the file ends where they do, and the partial zeros are
        // not pending either.
        let contents = fs.read(&segment).unwrap();
        assert_ne!(contents.last(), Some(&0), "room {room}");
        assert_eq!(crash_keeping_everything_pending(&fs), [], "room {room}");
        assert_recovers_exactly(&fs, PREALLOCATING, &[1, 2, 3, 4]);

        // With space back, the next write that grows the file preallocates again.
        fs.set_capacity(None);
        let (mut wal, _) = open(&fs, PREALLOCATING);
        wal.append(&batch(5, 40)).expect("appends");
        wal.sync().expect("syncs");
        assert_eq!(fs.file_len(&segment).unwrap() % 4096, 0, "room {room}");
        drop(wal);
        fs.crash();
        assert_recovers_exactly(&fs, PREALLOCATING, &[1, 2, 3, 4, 5]);
    }
}

#[test]
fn a_full_disk_that_takes_neither_zeros_nor_frames_refuses_the_write_and_the_log_goes_on() {
    let (fs, mut wal) = synced_log(3, 40, PREALLOCATING);
    let before = durable(&fs);
    fill_disk(&fs, 100);
    wal.append(&batch(4, 4000)).expect("queues");
    assert!(matches!(wal.sync(), Err(WalError::StorageFull { .. })));
    // The cut took the file back to its frames, which gives the preallocated zeros back too.
    assert_eq!(crash_keeping_everything_pending(&fs), []);
    assert_cut_only_zeros(&before, &durable(&fs));
    fs.set_capacity(None);
    let (mut wal, _) = open(&fs, PREALLOCATING);
    wal.append(&batch(5, 40)).expect("appends");
    wal.sync().expect("syncs");
    drop(wal);
    fs.crash();
    assert_recovers_exactly(&fs, PREALLOCATING, &[1, 2, 3, 5]);
}

#[test]
fn an_eio_on_the_preallocating_zeros_poisons_the_log_and_every_synced_batch_survives() {
    // The zeros are the first write of the flush that passes the preallocated length.
    for stored_bytes in [0, 100, 4096, 8192] {
        let (fs, mut wal) = synced_log(3, 40, PREALLOCATING);
        let before = durable(&fs);
        fs.fail_next_write(stored_bytes);
        wal.append(&batch(4, 4000)).expect("queues");
        let error = wal.sync().expect_err("the zeros fail");
        assert!(
            matches!(&error, WalError::Io { op: "write", source, .. } if source.raw_os_error() == Some(5)),
            "stored {stored_bytes}: {error}"
        );
        assert!(matches!(wal.append(&batch(5, 1)), Err(WalError::Poisoned)));
        assert!(matches!(wal.sync(), Err(WalError::Poisoned)));
        drop(wal);
        // Only zeros after the frames were cut, and the cut is synced.
        assert_cut_only_zeros(&before, &durable(&fs));
        assert_recovers_exactly(&fs, PREALLOCATING, &[1, 2, 3]);
        fs.crash();
        assert_recovers_exactly(&fs, PREALLOCATING, &[1, 2, 3]);
    }
}

#[test]
fn an_eio_on_frames_written_in_place_poisons_the_log_and_every_synced_batch_survives() {
    for stored_bytes in [0, 5, 12, 60, 10_000] {
        let (fs, mut wal) = synced_log(3, 40, PREALLOCATING);
        let segment = fs.files().pop().expect("one segment");
        let length = fs.file_len(&segment).unwrap();
        fs.fail_next_write(stored_bytes);
        wal.append(&batch(4, 40)).expect("queues");
        assert!(matches!(wal.sync(), Err(WalError::Io { op: "write", .. })));
        assert!(matches!(wal.sync(), Err(WalError::Poisoned)));
        drop(wal);
        // The write was in place: the file did not grow until the cut.
        assert!(
            fs.file_len(&segment).unwrap() < length,
            "stored {stored_bytes}"
        );
        assert_recovers_exactly(&fs, PREALLOCATING, &[1, 2, 3]);
        fs.crash();
        assert_recovers_exactly(&fs, PREALLOCATING, &[1, 2, 3]);
    }
}

#[test]
fn a_failed_fdatasync_of_the_cut_at_a_roll_poisons_the_log_and_loses_nothing() {
    let (fs, mut wal) = synced_log(4, 150, SMALL_SEGMENTS);
    assert_eq!(wal.segment_count(), 1);
    // The next append rolls: its sync has nothing to write, so the first fdatasync is the cut's.
    fs.fail_next_sync();
    let error = wal
        .append(&batch(5, 300))
        .expect_err("the cut's sync fails");
    assert!(matches!(error, WalError::Io { .. }), "{error}");
    assert!(matches!(wal.sync(), Err(WalError::Poisoned)));
    drop(wal);
    assert_eq!(fs.files().len(), 1, "no new segment was created");
    fs.crash();
    assert_recovers_exactly(&fs, SMALL_SEGMENTS, &[1, 2, 3, 4]);
}
