//! Regressions found by a review of synod-storage: each of these tests failed before its fix,
//! with an acknowledged batch or the hard state lost after a crash.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use synod_core::{Entry, Payload};
use synod_storage::fault::FaultFs;
use synod_storage::fs::Fs;
use synod_storage::group::GroupCommit;
use synod_storage::wal::{DEFAULT_PREALLOCATE_BYTES, Wal, WalBatch, WalError, WalOptions};

fn entry(index: u64, size: usize) -> Entry {
    Entry {
        term: 1,
        index,
        payload: Payload::Command(Bytes::from(vec![index as u8; size])),
    }
}
fn batch(index: u64, size: usize) -> WalBatch {
    WalBatch {
        entries: vec![entry(index, size)],
        ..WalBatch::default()
    }
}
const SEG: WalOptions = WalOptions {
    segment_bytes: 1000,
    preallocate_bytes: DEFAULT_PREALLOCATE_BYTES,
};
fn dir() -> &'static Path {
    Path::new("/wal")
}

/// A log with the hard state in its first frame and its one segment nearly full, so that the
/// next 150-byte batch starts a new segment.
fn one_segment_nearly_full() -> (FaultFs, Wal<FaultFs>) {
    let fs = FaultFs::new();
    let (mut wal, _) = Wal::open(fs.clone(), dir(), SEG).unwrap();
    wal.append(&WalBatch {
        hard_state: Some(b"term=7,vote=3".to_vec()),
        ..batch(1, 10)
    })
    .unwrap();
    wal.sync().unwrap();
    for i in 2..6 {
        wal.append(&batch(i, 150)).unwrap();
        wal.sync().unwrap();
    }
    (fs, wal)
}

/// ENOSPC on the first write after a roll drops the repeated hard state; later frames go
/// into the new segment without it; compaction then removes the only copy.
#[test]
fn hard_state_survives_a_full_disk_right_after_a_roll_and_compaction() {
    let (fs, mut wal) = one_segment_nearly_full();
    // Next append rolls; make the write after the roll fail.
    let used: u64 = fs.files().iter().map(|p| fs.file_len(p).unwrap()).sum();
    fs.set_capacity(Some(used + 20));
    wal.append(&batch(6, 150)).unwrap(); // rolls: old synced, new created, checkpoint queued
    assert!(matches!(wal.sync(), Err(WalError::StorageFull { .. })));
    fs.set_capacity(None);
    wal.append(&batch(7, 10)).unwrap();
    wal.sync().unwrap();
    assert_eq!(wal.segment_count(), 2);
    assert_eq!(wal.compact(5).unwrap(), 1);
    drop(wal);
    fs.crash();
    let (_, rec) = Wal::open(fs.clone(), dir(), SEG).unwrap();
    assert_eq!(
        rec.hard_state,
        Some(b"term=7,vote=3".to_vec()),
        "hard state lost: {:?}",
        rec.hard_state
    );
}

/// A crash right after a roll leaves an empty last segment; recovery appends into it
/// without repeating the hard state; compaction then removes the only copy.
#[test]
fn hard_state_survives_a_crash_right_after_a_roll_and_compaction() {
    let (fs, mut wal) = one_segment_nearly_full();
    wal.append(&batch(6, 150)).unwrap(); // rolls; checkpoint + batch 6 pending, not synced
    assert_eq!(wal.segment_count(), 2);
    drop(wal);
    fs.crash();
    let (mut wal, rec) = Wal::open(fs.clone(), dir(), SEG).unwrap();
    assert_eq!(rec.hard_state, Some(b"term=7,vote=3".to_vec()));
    wal.append(&batch(6, 10)).unwrap();
    wal.sync().unwrap();
    assert_eq!(wal.compact(5).unwrap(), 1);
    drop(wal);
    fs.crash();
    let (_, rec) = Wal::open(fs.clone(), dir(), SEG).unwrap();
    assert_eq!(
        rec.hard_state,
        Some(b"term=7,vote=3".to_vec()),
        "hard state lost"
    );
}

/// A roll inside append flushes (and on failure drops) batches queued earlier; the next sync
/// used to return Ok although they were never written.
#[test]
fn batches_dropped_by_a_failed_roll_are_reported_by_the_next_sync() {
    let fs = FaultFs::new();
    // Without preallocation, so that the queued batch's write needs room the disk lacks.
    let seg = WalOptions {
        preallocate_bytes: 0,
        ..SEG
    };
    let (mut wal, _) = Wal::open(fs.clone(), dir(), seg).unwrap();
    for i in 1..5 {
        wal.append(&batch(i, 150)).unwrap();
        wal.sync().unwrap();
    }
    let used: u64 = fs.files().iter().map(|p| fs.file_len(p).unwrap()).sum();
    fs.set_capacity(Some(used + 20));
    wal.append(&batch(5, 100)).unwrap(); // queued (A)
    let err = wal.append(&batch(6, 300)); // rolls -> flush of A fails
    assert!(err.is_err(), "{err:?}");
    fs.set_capacity(None);
    // The next sync must not report A durable: it was dropped with the failed write.
    assert!(matches!(wal.sync(), Err(WalError::Unstored { .. })));
    // The log goes on.
    wal.append(&batch(7, 10)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    fs.crash();
    let (_, rec) = Wal::open(fs.clone(), dir(), seg).unwrap();
    assert!(!rec.entries.contains_key(&5));
    assert!(rec.entries.contains_key(&7));
}

/// in a refused (ENOSPC) flusher round, the writer holding the round's last ticket removes
/// the refused range; writers of the same round checking later used to be told Ok.
#[test]
fn every_writer_of_a_refused_round_is_told_so() {
    let mut lost_total = 0;
    for _attempt in 0..200 {
        let fs = FaultFs::new();
        let (wal, _) = Wal::open(fs.clone(), dir(), WalOptions::default()).unwrap();
        let log = Arc::new(GroupCommit::new(wal));
        let used: u64 = fs.files().iter().map(|p| fs.file_len(p).unwrap()).sum();
        fs.set_capacity(Some(used + 2000));
        let next = Arc::new(AtomicU64::new(1));
        let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (log, next, acked) = (log.clone(), next.clone(), acked.clone());
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if log.commit(batch(i, 200)).is_ok() {
                            acked.lock().unwrap().push(i);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(log);
        fs.crash();
        let (_, rec) = Wal::open(fs.clone(), dir(), WalOptions::default()).unwrap();
        let lost: Vec<_> = acked
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|i| !rec.entries.contains_key(i))
            .collect();
        lost_total += lost.len();
        if !lost.is_empty() {
            eprintln!("acknowledged but lost: {lost:?}");
            break;
        }
    }
    assert_eq!(lost_total, 0);
}

/// a non-poisoning error (roll's create fails) fails a flusher round; a writer racing into
/// the inline path used to write a later batch and move `settled` over the failed round.
#[test]
fn no_write_is_acknowledged_after_a_failed_round() {
    let seg = WalOptions {
        segment_bytes: 64 << 10,
        ..WalOptions::default()
    };
    for attempt in 0..3000 {
        let fs = FaultFs::new();
        let (wal, _) = Wal::open(fs.clone(), dir(), seg).unwrap();
        // Squat the next segment name, so that the roll's create fails (AlreadyExists).
        drop(
            fs.create(&dir().join("wal-00000000000000000002.log"))
                .unwrap(),
        );
        let log = Arc::new(GroupCommit::new(wal));
        let next = Arc::new(AtomicU64::new(1));
        let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..6u64)
            .map(|t| {
                let (log, next, acked) = (log.clone(), next.clone(), acked.clone());
                std::thread::spawn(move || {
                    for k in 0..40u64 {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        // Thread 0's 20th batch is too big for the segment: it rolls.
                        let size = if t == 0 && k == 20 { 70 << 10 } else { 16 };
                        if log.commit(batch(i, size)).is_ok() {
                            acked.lock().unwrap().push(i);
                        }
                    }
                })
            })
            .collect();
        let mut panicked = false;
        for t in threads {
            panicked |= t.join().is_err();
        }
        let log = match Arc::try_unwrap(log) {
            Ok(l) => l,
            Err(_) => panic!(),
        };
        drop(log);
        fs.crash();
        let (_, rec) = Wal::open(fs.clone(), dir(), seg).unwrap();
        let lost: Vec<_> = acked
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|i| !rec.entries.contains_key(i))
            .collect();
        if panicked || !lost.is_empty() {
            panic!(
                "attempt {attempt}: writer panicked: {panicked}; acknowledged but lost: {lost:?}"
            );
        }
    }
}
