//! The write-ahead log on the real file system: what is written and synced comes back, a torn
//! tail is cut with a warning, and damage to durable data is refused with the file and offset.

use std::path::Path;

use bytes::Bytes;
use synod_core::{Entry, Payload};
use synod_storage::fs::RealFs;
use synod_storage::wal::{Recovered, Wal, WalBatch, WalError, WalOptions};

fn entry(term: u64, index: u64, data: &str) -> Entry {
    Entry {
        term,
        index,
        payload: Payload::Command(Bytes::copy_from_slice(data.as_bytes())),
    }
}

fn open(dir: &Path, segment_bytes: u64) -> (Wal<RealFs>, Recovered) {
    Wal::open(RealFs, dir, WalOptions { segment_bytes }).expect("opens")
}

fn batch(entries: Vec<Entry>) -> WalBatch {
    WalBatch {
        entries,
        ..WalBatch::default()
    }
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

#[test]
fn synced_batches_come_back_in_order_with_the_newest_hard_state() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, recovered) = open(dir.path(), 1 << 20);
    assert_eq!(recovered, Recovered::default());
    for i in 1..=100 {
        wal.append(&WalBatch {
            hard_state: Some(vec![i as u8]),
            truncate_from: None,
            entries: vec![entry(1, i, "x")],
        })
        .unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(dir.path(), 1 << 20);
    assert_eq!(recovered.hard_state, Some(vec![100]));
    assert_eq!(recovered.entries.len(), 100);
    assert_eq!(recovered.entries[&7], entry(1, 7, "x"));
    assert!(recovered.warnings.is_empty());
}

#[test]
fn raft_section_5_3_truncation_drops_the_conflicting_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path(), 1 << 20);
    wal.append(&batch((1..=10).map(|i| entry(1, i, "old")).collect()))
        .unwrap();
    wal.append(&WalBatch {
        truncate_from: Some(6),
        entries: vec![entry(2, 6, "new")],
        ..WalBatch::default()
    })
    .unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(dir.path(), 1 << 20);
    assert_eq!(recovered.entries.len(), 6);
    assert_eq!(recovered.entries[&6], entry(2, 6, "new"));
    assert_eq!(recovered.entries[&5], entry(1, 5, "old"));
}

#[test]
fn segments_roll_repeat_the_hard_state_and_compaction_removes_whole_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path(), 4096);
    wal.append(&WalBatch {
        hard_state: Some(b"term 3".to_vec()),
        ..WalBatch::default()
    })
    .unwrap();
    let payload = "y".repeat(200);
    for i in 1..=200 {
        wal.append(&batch(vec![entry(3, i, &payload)])).unwrap();
    }
    wal.sync().unwrap();
    let before = wal.segment_count();
    assert!(before > 5, "{before} segments");
    assert_eq!(segments(dir.path()).len(), before);
    let removed = wal.compact(150).unwrap();
    assert!(removed > 0 && removed < before);
    assert_eq!(segments(dir.path()).len(), before - removed);
    drop(wal);
    let (_, recovered) = open(dir.path(), 4096);
    // The hard state was written only in the first segment, which is gone: it was repeated.
    assert_eq!(recovered.hard_state, Some(b"term 3".to_vec()));
    assert!(recovered.entries.contains_key(&200));
    assert!(recovered.entries.keys().all(|&i| i > 100));
    assert!((151..=200).all(|i| recovered.entries.contains_key(&i)));
}

#[test]
fn a_torn_final_write_is_cut_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path(), 1 << 20);
    wal.append(&batch(vec![entry(1, 1, "kept")])).unwrap();
    wal.sync().unwrap();
    wal.append(&batch(vec![entry(1, 2, "torn")])).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let path = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Both frames have the same size: one entry of four bytes each.
    let frame = bytes.len() / 2;
    for kept in frame + 1..bytes.len() {
        // Every cut inside the second frame loses exactly that frame, with a warning.
        let copy = tempfile::tempdir().unwrap();
        std::fs::write(copy.path().join(path.file_name().unwrap()), &bytes[..kept]).unwrap();
        let (_, recovered) = open(copy.path(), 1 << 20);
        assert_eq!(recovered.entries.len(), 1, "kept {kept}");
        assert_eq!(recovered.entries[&1], entry(1, 1, "kept"));
        assert_eq!(recovered.warnings.len(), 1, "{:?}", recovered.warnings);
    }
    // The cut is made durable: reopening gives the same state and no new warning.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let (mut wal, recovered) = open(dir.path(), 1 << 20);
    assert_eq!(recovered.warnings.len(), 1);
    wal.append(&batch(vec![entry(1, 2, "again")])).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(dir.path(), 1 << 20);
    assert!(recovered.warnings.is_empty());
    assert_eq!(recovered.entries[&2], entry(1, 2, "again"));
}

/// Flips one bit in each region of the first of three frames (magic, length, CRC, body) and
/// checks that recovery refuses to start, naming the file and the frame's offset, rather than
/// dropping the damaged frame and the two valid ones after it.
#[test]
fn a_flipped_bit_in_any_region_of_a_durable_frame_is_refused_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path(), 1 << 20);
    for i in 1..=3 {
        wal.append(&batch(vec![entry(1, i, "abcdefgh")])).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let path = segments(dir.path()).pop().unwrap();
    let clean = std::fs::read(&path).unwrap();
    let frame_len = clean.len() / 3;
    for (region, byte) in [
        ("magic", 1),
        ("length", 5),
        ("crc", 9),
        ("body", 20),
        ("body end", frame_len - 1),
    ] {
        let mut damaged = clean.clone();
        damaged[byte] ^= 0x10;
        std::fs::write(&path, &damaged).unwrap();
        match Wal::open(RealFs, dir.path(), WalOptions::default()) {
            Err(WalError::Corrupt {
                path: p, offset, ..
            }) => {
                assert_eq!(p, path, "{region}");
                assert_eq!(offset, 0, "{region}");
            }
            other => panic!("{region}: expected a corruption error, got {other:?}"),
        }
    }
    std::fs::write(&path, &clean).unwrap();
    let (_, recovered) = open(dir.path(), 1 << 20);
    assert_eq!(recovered.entries.len(), 3);
}

#[test]
fn a_damaged_frame_in_an_older_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path(), 512);
    for i in 1..=20 {
        wal.append(&batch(vec![entry(1, i, &"z".repeat(100))]))
            .unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let first = segments(dir.path()).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&first, &bytes).unwrap();
    let error = Wal::open(RealFs, dir.path(), WalOptions { segment_bytes: 512 }).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, WalError::Corrupt { .. }), "{message}");
    assert!(
        message.contains("wal-00000000000000000001.log"),
        "{message}"
    );
}

#[test]
fn garbage_segments_never_panic() {
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 200,
        ..Default::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..400), |bytes| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("wal-00000000000000000001.log"), &bytes).unwrap();
            let _ = Wal::open(RealFs, dir.path(), WalOptions::default());
            Ok(())
        })
        .unwrap();
}
