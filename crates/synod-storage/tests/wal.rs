//! The write-ahead log on the real file system: what is written and synced comes back, a torn
//! tail is cut with a warning, and damage to durable data is refused with the file and offset.

use std::path::Path;

use bytes::Bytes;
use synod_core::{Entry, Payload};
use synod_storage::fs::RealFs;
use synod_storage::wal::{
    DEFAULT_PREALLOCATE_BYTES, FRAME_HEADER_BYTES, Recovered, Wal, WalBatch, WalError, WalOptions,
};

fn entry(term: u64, index: u64, data: &str) -> Entry {
    Entry {
        term,
        index,
        payload: Payload::Command(Bytes::copy_from_slice(data.as_bytes())),
    }
}

/// A log without preallocation, so that a segment file holds its frames and nothing else:
/// the tests of the frame format cut and damage files by their length.
fn open(dir: &Path, segment_bytes: u64) -> (Wal<RealFs>, Recovered) {
    Wal::open(
        RealFs,
        dir,
        WalOptions {
            segment_bytes,
            preallocate_bytes: 0,
        },
    )
    .expect("opens")
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
    let error = Wal::open(
        RealFs,
        dir.path(),
        WalOptions {
            segment_bytes: 512,
            ..WalOptions::default()
        },
    )
    .unwrap_err();
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

// Preallocation (see "Preallocation" in `synod_storage::wal`).

/// Options with a small preallocation step, so that a few batches pass several steps.
fn preallocating(segment_bytes: u64, preallocate_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        preallocate_bytes,
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// The feature must not disappear silently: with the default options the segment is longer
/// than its frames after an append, by zeros, and without preallocation it is not.
#[test]
fn the_default_log_keeps_its_segment_preallocated_ahead_of_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(RealFs, dir.path(), WalOptions::default()).unwrap();
    wal.append(&batch(vec![entry(1, 1, "first")])).unwrap();
    wal.sync().unwrap();
    let path = segments(dir.path()).pop().unwrap();
    assert_eq!(file_len(&path), DEFAULT_PREALLOCATE_BYTES);
    // The next frames go over the zeros: the length stays.
    for i in 2..=50 {
        wal.append(&batch(vec![entry(1, i, "more")])).unwrap();
        wal.sync().unwrap();
    }
    assert_eq!(file_len(&path), DEFAULT_PREALLOCATE_BYTES);
    let bytes = std::fs::read(&path).unwrap();
    let frames_end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert!(frames_end < 50 * 64, "{frames_end}");
    drop(wal);

    let off = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(RealFs, off.path(), preallocating(1 << 20, 0)).unwrap();
    wal.append(&batch(vec![entry(1, 1, "first")])).unwrap();
    wal.sync().unwrap();
    let path = segments(off.path()).pop().unwrap();
    assert!(file_len(&path) < 64, "{}", file_len(&path));
}

/// A write that passes the preallocated length extends it to the next multiple of the step;
/// one larger than a step extends past its own end.
#[test]
fn a_write_past_the_preallocated_length_extends_it_by_whole_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(RealFs, dir.path(), preallocating(1 << 20, 4096)).unwrap();
    let path = || segments(dir.path()).pop().unwrap();
    wal.append(&batch(vec![entry(1, 1, "x")])).unwrap();
    wal.sync().unwrap();
    assert_eq!(file_len(&path()), 4096);
    wal.append(&batch(vec![entry(1, 2, &"y".repeat(10_000))]))
        .unwrap();
    wal.sync().unwrap();
    assert_eq!(file_len(&path()), 12_288);
    drop(wal);
    let (_, recovered) = Wal::open(RealFs, dir.path(), preallocating(1 << 20, 4096)).unwrap();
    assert_eq!(recovered.entries.len(), 2);
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
}

/// Segments cut to their frames at a roll, and segments that still hold a zero tail (a crash
/// before the cut was durable), all recover every frame without a warning; appends after
/// recovery go over the zeros at the logical end and survive another recovery.
#[test]
fn a_zero_tail_is_a_clean_end_in_the_last_and_in_older_segments() {
    let dir = tempfile::tempdir().unwrap();
    let options = preallocating(4096, 1024);
    let (mut wal, _) = Wal::open(RealFs, dir.path(), options).unwrap();
    let payload = "p".repeat(300);
    for i in 1..=40 {
        wal.append(&batch(vec![entry(1, i, &payload)])).unwrap();
        wal.sync().unwrap();
    }
    drop(wal);
    let files = segments(dir.path());
    assert!(files.len() >= 3, "{} segments", files.len());
    let last = files.last().unwrap();
    let last_len = file_len(last);
    let last_bytes = std::fs::read(last).unwrap();
    assert_eq!(last_len % 1024, 0, "the last segment is preallocated");
    assert_eq!(*last_bytes.last().unwrap(), 0, "it ends in zeros");
    // Rolled segments were cut to their frames: they end in a frame's last byte.
    for older in &files[..files.len() - 1] {
        assert_ne!(*std::fs::read(older).unwrap().last().unwrap(), 0);
    }
    // Give an older segment back a zero tail, as if the cut had not reached the disk.
    let older = &files[1];
    let mut bytes = std::fs::read(older).unwrap();
    bytes.resize(4096, 0);
    std::fs::write(older, &bytes).unwrap();

    let (mut wal, recovered) = Wal::open(RealFs, dir.path(), options).unwrap();
    assert_eq!(recovered.entries.len(), 40);
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
    // The next frame lands at the logical end, over the zeros: the file does not grow.
    wal.append(&batch(vec![entry(1, 41, "after")])).unwrap();
    wal.sync().unwrap();
    drop(wal);
    assert_eq!(segments(dir.path()).last().unwrap(), last);
    assert_eq!(file_len(last), last_len);
    let after = std::fs::read(last).unwrap();
    let frames_end = last_bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert_eq!(after[..frames_end], last_bytes[..frames_end]);
    assert_ne!(after[frames_end..], last_bytes[frames_end..]);
    let (_, recovered) = Wal::open(RealFs, dir.path(), options).unwrap();
    assert_eq!(recovered.entries.len(), 41);
    assert_eq!(recovered.entries[&41], entry(1, 41, "after"));
    assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
}

/// Three frames in the last segment, the middle one spanning whole sectors, the first synced
/// alone; returns the directory, the segment, and where the second and third frames start.
fn three_frames_preallocated() -> (tempfile::TempDir, std::path::PathBuf, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(RealFs, dir.path(), preallocating(1 << 20, 1 << 16)).unwrap();
    wal.append(&batch(vec![entry(1, 1, "first")])).unwrap();
    wal.sync().unwrap();
    let path = segments(dir.path()).pop().unwrap();
    let second = std::fs::read(&path)
        .unwrap()
        .iter()
        .rposition(|&b| b != 0)
        .unwrap()
        + 1;
    wal.append(&batch(vec![entry(1, 2, &"s".repeat(1500))]))
        .unwrap();
    wal.append(&batch(vec![entry(1, 3, "third")])).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let third = second
        + FRAME_HEADER_BYTES
        + WalBatch::encoded_len(&batch(vec![entry(1, 2, &"s".repeat(1500))]));
    (dir, path, second, third)
}

/// An overwrite in place reaches the disk sector by sector, in any order: a power loss can
/// leave a sector of it holding the preallocated zeros before a sector that holds a whole later
/// frame of the same write. That is a torn write, cut with a warning, not damage.
#[test]
fn a_torn_write_into_preallocated_space_is_cut_even_before_a_valid_frame_of_it() {
    for (case, zeroed) in [("its first sector", 0), ("a sector inside it", 1)] {
        let (dir, path, second, third) = three_frames_preallocated();
        let mut bytes = std::fs::read(&path).unwrap();
        let range = if zeroed == 0 {
            second..second.next_multiple_of(512)
        } else {
            let sector = second.next_multiple_of(512);
            sector..sector + 512
        };
        assert!(range.end <= third, "{case}");
        bytes[range].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let (_, recovered) = open(dir.path(), 1 << 20);
        assert_eq!(
            recovered.entries.keys().copied().collect::<Vec<_>>(),
            [1],
            "{case}"
        );
        assert_eq!(
            recovered.warnings.len(),
            1,
            "{case}: {:?}",
            recovered.warnings
        );
        assert!(recovered.warnings[0].contains("unwritten sector"), "{case}");
        // The cut was durable: no warning the second time.
        let (_, recovered) = open(dir.path(), 1 << 20);
        assert!(
            recovered.warnings.is_empty(),
            "{case}: {:?}",
            recovered.warnings
        );
    }
}

/// Damage that is not a zeroed sector, before a valid frame, is still refused; so is a zeroed
/// sector in a segment that is not the last, which was synced whole.
#[test]
fn nonzero_damage_before_a_valid_frame_and_a_zeroed_sector_in_an_older_segment_are_refused() {
    let (dir, path, second, _) = three_frames_preallocated();
    let clean = std::fs::read(&path).unwrap();
    let mut bytes = clean.clone();
    bytes[second + 600] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    match Wal::open(RealFs, dir.path(), WalOptions::default()) {
        Err(WalError::Corrupt { offset, .. }) => assert_eq!(offset, second as u64),
        other => panic!("expected corruption, got {other:?}"),
    }
    // The same zeroed sector as in the torn-write test, but with a newer segment after it.
    let mut bytes = clean;
    let sector = second.next_multiple_of(512);
    bytes[sector..sector + 512].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    std::fs::write(dir.path().join("wal-00000000000000000002.log"), b"").unwrap();
    match Wal::open(RealFs, dir.path(), WalOptions::default()) {
        Err(WalError::Corrupt { offset, .. }) => assert_eq!(offset, second as u64),
        other => panic!("expected corruption, got {other:?}"),
    }
}
