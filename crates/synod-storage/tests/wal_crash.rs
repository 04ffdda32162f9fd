//! Crash tests of the write-ahead log over the fault-injecting file system, deterministic by
//! seed: random workloads (appends with entries, truncations and hard states; syncs; segment
//! rolls; compaction) stopped at a random point by a power cut that loses every unsynced
//! write or tears the last writes at a random byte, or by a failed fdatasync.
//!
//! After recovery the log must hold exactly the state after some prefix of the batches
//! written: at least every batch whose sync returned `Ok`, and nothing from after a torn
//! write.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use synod_core::{Entry, Index, Payload};
use synod_storage::fault::FaultFs;
use synod_storage::wal::{Wal, WalBatch, WalError, WalOptions};

/// The state a log holds after some batches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    hard_state: Option<Vec<u8>>,
    entries: BTreeMap<Index, Entry>,
}

impl Model {
    fn apply(&mut self, batch: &WalBatch) {
        if let Some(from) = batch.truncate_from {
            self.entries.split_off(&from);
        }
        for entry in &batch.entries {
            self.entries.insert(entry.index, entry.clone());
        }
        if let Some(hard_state) = &batch.hard_state {
            self.hard_state = Some(hard_state.clone());
        }
    }

    /// The state with entries at or below `compacted` left out (compaction may remove them).
    fn above(&self, compacted: Index) -> Model {
        Model {
            hard_state: self.hard_state.clone(),
            entries: self.entries.split_off_clone(compacted),
        }
    }
}

trait SplitOffClone {
    fn split_off_clone(&self, below: Index) -> Self;
}

impl SplitOffClone for BTreeMap<Index, Entry> {
    fn split_off_clone(&self, at_or_below: Index) -> Self {
        self.range(at_or_below + 1..)
            .map(|(&i, e)| (i, e.clone()))
            .collect()
    }
}

fn random_batch(rng: &mut XorShiftRng, last: &mut Index, term: &mut u64) -> WalBatch {
    let mut batch = WalBatch::default();
    if rng.next_u64().is_multiple_of(4) {
        *term += 1;
        batch.hard_state = Some(term.to_le_bytes().to_vec());
    }
    if *last > 0 && rng.next_u64().is_multiple_of(6) {
        let from = 1 + rng.next_u64() % *last;
        batch.truncate_from = Some(from);
        *last = from - 1;
    }
    for _ in 0..rng.next_u64() % 5 {
        *last += 1;
        let len = (rng.next_u64() % 300) as usize;
        batch.entries.push(Entry {
            term: *term,
            index: *last,
            payload: Payload::Command(Bytes::from(vec![(*last % 251) as u8; len])),
        });
    }
    batch
}

fn open(fs: &FaultFs, dir: &Path) -> Result<(Wal<FaultFs>, Model, Vec<String>), WalError> {
    let (wal, recovered) = Wal::open(
        fs.clone(),
        dir,
        WalOptions {
            segment_bytes: 2048,
        },
    )?;
    let model = Model {
        hard_state: recovered.hard_state,
        entries: recovered.entries,
    };
    Ok((wal, model, recovered.warnings))
}

/// One seed: a workload, a crash, recovery, and the check.
fn run(seed: u64) {
    let mut rng = XorShiftRng::seed_from_u64(seed);
    let fs = FaultFs::new();
    let dir = Path::new("/data/wal");
    let (mut wal, _, _) = open(&fs, dir).expect("a new log opens");
    // states[k]: the state after the first k batches.
    let mut states = vec![Model::default()];
    let mut synced = 0;
    let mut compacted = 0;
    let (mut last, mut term) = (0, 1);
    let steps = 1 + rng.next_u64() % 60;
    let mut poisoned = false;
    for _ in 0..steps {
        match rng.next_u64() % 10 {
            0..=5 => {
                let batch = random_batch(&mut rng, &mut last, &mut term);
                wal.append(&batch).expect("append");
                let mut next = states.last().expect("initial").clone();
                next.apply(&batch);
                states.push(next);
            }
            6..=8 => {
                let unsynced = states.len() - 1 > synced;
                if unsynced && rng.next_u64().is_multiple_of(25) {
                    fs.fail_next_sync();
                    let error = wal.sync().expect_err("the sync fails");
                    assert!(matches!(error, WalError::Io { .. }), "{error}");
                    assert!(matches!(
                        wal.append(&WalBatch::default()),
                        Err(WalError::Poisoned)
                    ));
                    assert!(matches!(wal.sync(), Err(WalError::Poisoned)));
                    poisoned = true;
                    break;
                }
                wal.sync().expect("sync");
                synced = states.len() - 1;
            }
            _ => {
                // Compact below what is durable, as an application with a durable snapshot
                // there would.
                let durable_last = states[synced]
                    .entries
                    .keys()
                    .next_back()
                    .copied()
                    .unwrap_or(0);
                if durable_last > 0 {
                    let at = rng.next_u64() % (durable_last + 1);
                    if wal.compact(at).expect("compact") > 0 {
                        // Compaction syncs before it removes anything.
                        synced = states.len() - 1;
                    }
                    compacted = compacted.max(at);
                }
            }
        }
    }
    drop(wal);
    let torn = rng.next_u64().is_multiple_of(2);
    if torn {
        let mut tear_rng = XorShiftRng::seed_from_u64(seed ^ 0x7EA2);
        fs.crash_tearing(|_, unsynced| (tear_rng.next_u64() % (unsynced as u64 + 1)) as usize);
    } else {
        fs.crash();
    }
    let (_, recovered, warnings) = match open(&fs, dir) {
        Ok(opened) => opened,
        Err(error) => panic!("seed {seed}: recovery failed: {error}"),
    };
    let recovered = recovered.above(compacted);
    let matching = (synced..states.len()).find(|&k| states[k].above(compacted) == recovered);
    assert!(
        matching.is_some(),
        "seed {seed} (torn: {torn}, poisoned: {poisoned}): recovered state is not that after \
         any prefix of at least the {synced} synced batches of {}; warnings: {warnings:?}",
        states.len() - 1
    );
    // Recovery made its repair durable: a second crash and recovery give the same state.
    fs.crash();
    let (_, again, warnings) = open(&fs, dir).expect("recovers again");
    assert_eq!(again.above(compacted), recovered, "seed {seed}");
    assert!(warnings.is_empty(), "seed {seed}: {warnings:?}");
}

#[test]
fn every_synced_batch_survives_and_nothing_after_a_torn_write_is_kept_3000_seeds() {
    for seed in 0..3_000 {
        run(seed);
    }
}

#[test]
fn a_full_disk_refuses_the_write_and_harms_nothing_durable() {
    let fs = FaultFs::new();
    let dir = Path::new("/data/wal");
    let (mut wal, _, _) = open(&fs, dir).unwrap();
    let mut last = 0;
    let mut term = 1;
    let mut rng = XorShiftRng::seed_from_u64(5);
    let mut model = Model::default();
    for _ in 0..5 {
        let batch = random_batch(&mut rng, &mut last, &mut term);
        wal.append(&batch).unwrap();
        model.apply(&batch);
    }
    wal.sync().unwrap();
    fs.set_capacity(Some(
        fs.files()
            .iter()
            .map(|p| fs.durable_contents(p).map_or(0, |c| c.len() as u64))
            .sum::<u64>()
            + 10,
    ));
    let big = WalBatch {
        entries: vec![Entry {
            term: 9,
            index: last + 1,
            payload: Payload::Command(Bytes::from(vec![1; 500])),
        }],
        ..WalBatch::default()
    };
    wal.append(&big).unwrap();
    let error = wal.sync().expect_err("no space");
    assert!(matches!(error, WalError::StorageFull { .. }), "{error}");
    assert!(error.to_string().contains("nothing durable was lost"));
    // Space comes back: the log is still usable, and the refused batch was never stored.
    fs.set_capacity(None);
    let small = WalBatch {
        hard_state: Some(b"after".to_vec()),
        ..WalBatch::default()
    };
    wal.append(&small).unwrap();
    wal.sync().unwrap();
    model.apply(&small);
    drop(wal);
    fs.crash();
    let (_, recovered, warnings) = open(&fs, dir).unwrap();
    assert_eq!(recovered, model);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_bit_flip_in_a_durable_frame_followed_by_valid_frames_is_refused() {
    let fs = FaultFs::new();
    let dir = Path::new("/data/wal");
    let (mut wal, _, _) = open(&fs, dir).unwrap();
    let mut rng = XorShiftRng::seed_from_u64(9);
    let (mut last, mut term) = (0, 1);
    for _ in 0..4 {
        wal.append(&random_batch(&mut rng, &mut last, &mut term))
            .unwrap();
        wal.sync().unwrap();
    }
    drop(wal);
    let segment = fs.files().into_iter().next().expect("a segment");
    let len = fs.durable_contents(&segment).unwrap().len() as u64;
    for bit in (0..len * 8 / 2).step_by(37) {
        fs.flip_bit(&segment, bit).unwrap();
        let opened = open(&fs, dir);
        fs.flip_bit(&segment, bit).unwrap();
        match opened {
            Err(WalError::Corrupt { path, .. }) => assert_eq!(path, segment),
            Err(other) => panic!("bit {bit}: {other}"),
            // A flip inside the last frame with nothing valid after it reads as a torn write.
            Ok((_, _, warnings)) => assert_eq!(warnings.len(), 1, "bit {bit}"),
        }
    }
}
