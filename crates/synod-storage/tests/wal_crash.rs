//! Crash tests of the write-ahead log over the fault-injecting file system, deterministic by
//! seed: random workloads (appends with entries, truncations and hard states; syncs; segment
//! rolls; compaction) stopped at a random point by a power cut that loses every unsynced
//! write, tears the last writes at a random byte, or keeps a random subset of the sectors they
//! touched (a disk that writes sectors back in any order), or by a failed fdatasync.
//!
//! After recovery the log must hold exactly the state after some prefix of the batches
//! written: at least every batch whose sync returned `Ok`, and nothing from after a torn
//! write. Recovery must never find corruption: every such power cut leaves a legal state.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use synod_core::{Entry, Index, Payload};
use synod_storage::fault::FaultFs;
use synod_storage::fs::{Fs, FsFile};
use synod_storage::wal::{DEFAULT_PREALLOCATE_BYTES, Wal, WalBatch, WalError, WalOptions};

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

/// Small segments, preallocated by `preallocate_bytes` (0: not at all).
fn options(preallocate_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes: 2048,
        preallocate_bytes,
    }
}

fn open(
    fs: &FaultFs,
    dir: &Path,
    options: WalOptions,
) -> Result<(Wal<FaultFs>, Model, Vec<String>), WalError> {
    let (wal, recovered) = Wal::open(fs.clone(), dir, options)?;
    let model = Model {
        hard_state: recovered.hard_state,
        entries: recovered.entries,
    };
    Ok((wal, model, recovered.warnings))
}

/// One seed: a workload, a crash, recovery, and the check. Each seed preallocates its segments
/// in its own steps: not at all, several steps a segment, or the whole segment at once.
fn run(seed: u64) {
    let mut rng = XorShiftRng::seed_from_u64(seed);
    let options = options([0, 100, 700, DEFAULT_PREALLOCATE_BYTES][(seed % 4) as usize]);
    let fs = FaultFs::new();
    let dir = Path::new("/data/wal");
    let (mut wal, _, _) = open(&fs, dir, options).expect("a new log opens");
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
    let (_, recovered, warnings) = match open(&fs, dir, options) {
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
    let (_, again, warnings) = open(&fs, dir, options).expect("recovers again");
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
    let (mut wal, _, _) = open(&fs, dir, options(0)).unwrap();
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
    let (_, recovered, warnings) = open(&fs, dir, options(0)).unwrap();
    assert_eq!(recovered, model);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_bit_flip_in_a_durable_frame_followed_by_valid_frames_is_refused() {
    let fs = FaultFs::new();
    let dir = Path::new("/data/wal");
    let (mut wal, _, _) = open(&fs, dir, options(0)).unwrap();
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
        let opened = open(&fs, dir, options(DEFAULT_PREALLOCATE_BYTES));
        fs.flip_bit(&segment, bit).unwrap();
        match opened {
            Err(WalError::Corrupt { path, .. }) => assert_eq!(path, segment),
            Err(other) => panic!("bit {bit}: {other}"),
            // A flip inside the last frame with nothing valid after it reads as a torn write.
            Ok((_, _, warnings)) => assert_eq!(warnings.len(), 1, "bit {bit}"),
        }
    }
}

/// A [`FaultFs`] that, at its operation number `crash_at`, crashes the disk instead of
/// performing it, by its [`Cut`]; that operation and every later one fail, as the process is
/// gone. It counts the operations it performed.
#[derive(Clone, Debug)]
struct CrashAt {
    disk: FaultFs,
    state: Arc<Mutex<CrashState>>,
}

/// What of the unsynced writes a [`CrashAt`] keeps when it crashes.
#[derive(Debug)]
enum Cut {
    /// The first this many bytes of each file's unsynced writes ([`FaultFs::crash_tearing`]).
    Tear(usize),
    /// Each sector they touched with this chance in percent, drawn from the RNG
    /// ([`FaultFs::crash_scrambling`]).
    Scramble { keep_percent: u64, rng: XorShiftRng },
}

#[derive(Debug)]
struct CrashState {
    ops: usize,
    crash_at: Option<usize>,
    cut: Cut,
    /// Set by the crash: the unsynced bytes (a tear) or the sectors they touched (a scramble)
    /// there were, over all files.
    crashed_with_pending: Option<usize>,
    /// Set by the crash: how many of those it kept.
    kept: usize,
}

impl CrashAt {
    /// A new disk that crashes at `crash_at`, keeping `keep` bytes of each file's unsynced
    /// writes.
    fn new(crash_at: Option<usize>, keep: usize) -> CrashAt {
        CrashAt::on(FaultFs::new(), crash_at, Cut::Tear(keep))
    }

    /// `disk`, from now on crashing at `crash_at` by `cut`.
    fn on(disk: FaultFs, crash_at: Option<usize>, cut: Cut) -> CrashAt {
        CrashAt {
            disk,
            state: Arc::new(Mutex::new(CrashState {
                ops: 0,
                crash_at,
                cut,
                crashed_with_pending: None,
                kept: 0,
            })),
        }
    }

    fn op(&self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        if state.crashed_with_pending.is_some() {
            return Err(io::Error::other("the process crashed"));
        }
        if state.crash_at == Some(state.ops) {
            self.crash(&mut state);
            return Err(io::Error::other("crashed"));
        }
        state.ops += 1;
        Ok(())
    }

    /// Crashes now, unless it has crashed already; returns the [`CrashState`] after.
    fn crash_now(&self) -> std::sync::MutexGuard<'_, CrashState> {
        let mut state = self.state.lock().unwrap();
        if state.crashed_with_pending.is_none() {
            self.crash(&mut state);
        }
        state
    }

    fn crash(&self, state: &mut CrashState) {
        let (mut pending, mut kept) = (0, 0);
        match &mut state.cut {
            Cut::Tear(keep) => self.disk.crash_tearing(|_, written| {
                pending += written;
                kept += (*keep).min(written);
                (*keep).min(written)
            }),
            Cut::Scramble { keep_percent, rng } => self.disk.crash_scrambling(|_, _| {
                pending += 1;
                let keep = rng.next_u64() % 100 < *keep_percent;
                kept += usize::from(keep);
                keep
            }),
        }
        state.crashed_with_pending = Some(pending);
        state.kept = kept;
    }
}

struct CrashAtFile {
    fs: CrashAt,
    file: <FaultFs as Fs>::File,
}

impl FsFile for CrashAtFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.fs.op()?;
        self.file.write_all(data)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.fs.op()?;
        self.file.write_at(offset, data)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.fs.op()?;
        self.file.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.fs.op()?;
        self.file.set_len(len)
    }
    fn len(&self) -> u64 {
        self.file.len()
    }
}

impl Fs for CrashAt {
    type File = CrashAtFile;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.op()?;
        self.disk.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.op()?;
        self.disk.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<CrashAtFile> {
        self.op()?;
        let file = self.disk.create(path)?;
        Ok(CrashAtFile {
            fs: self.clone(),
            file,
        })
    }
    fn open_append(&self, path: &Path) -> io::Result<CrashAtFile> {
        self.op()?;
        let file = self.disk.open_append(path)?;
        Ok(CrashAtFile {
            fs: self.clone(),
            file,
        })
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.op()?;
        self.disk.read(path)
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.op()?;
        self.disk.read_at(path, offset, len)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.op()?;
        self.disk.file_len(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.op()?;
        self.disk.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.op()?;
        self.disk.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.op()?;
        self.disk.sync_dir(dir)
    }
}

/// A fixed workload over preallocated segments (batches that pass preallocation steps, fill
/// segments and roll, and a compaction), crashed before each of its file operations with every
/// possible tear of the unsynced writes: each recovery must hold a prefix of the batches with
/// at least the synced ones, warn at most of a torn write, and keep its repair.
#[test]
fn a_crash_at_every_point_of_preallocating_appends_keeps_a_prefix_with_every_synced_batch() {
    let options = options(300);
    let dir = Path::new("/data/wal");
    let mut rng = XorShiftRng::seed_from_u64(77);
    let (mut last, mut term) = (0, 1);
    // (batch, whether a sync follows it)
    let workload: Vec<(WalBatch, bool)> = (0..24)
        .map(|_| {
            let batch = random_batch(&mut rng, &mut last, &mut term);
            (batch, rng.next_u64() % 3 != 0)
        })
        .collect();
    let mut states = vec![Model::default()];
    for (batch, _) in &workload {
        let mut next = states.last().expect("initial").clone();
        next.apply(batch);
        states.push(next);
    }
    // Runs the workload until the first error; returns how many batches a sync acknowledged.
    let run = |fs: &CrashAt| -> usize {
        let Ok((mut wal, _)) = Wal::open(fs.clone(), dir, options) else {
            return 0;
        };
        let mut synced = 0;
        for (done, (batch, sync)) in workload.iter().enumerate() {
            if wal.append(batch).is_err() {
                break;
            }
            if *sync {
                if wal.sync().is_err() {
                    break;
                }
                synced = done + 1;
            }
        }
        synced
    };
    let uncrashed = CrashAt::new(None, 0);
    let last_sync = workload
        .iter()
        .rposition(|(_, sync)| *sync)
        .map_or(0, |i| i + 1);
    assert_eq!(run(&uncrashed), last_sync);
    let total_ops = uncrashed.state.lock().unwrap().ops;
    let mut crashes = 0;
    let mut torn = 0;
    for crash_at in 0..total_ops {
        for keep in 0.. {
            let fs = CrashAt::new(Some(crash_at), keep);
            let synced = run(&fs);
            let pending = fs
                .state
                .lock()
                .unwrap()
                .crashed_with_pending
                .expect("crashed");
            crashes += 1;
            let (_, recovered, warnings) = match open(&fs.disk, dir, options) {
                Ok(opened) => opened,
                Err(error) => panic!("crash at op {crash_at}, keeping {keep}: {error}"),
            };
            assert!(
                (synced..states.len()).any(|k| states[k] == recovered),
                "crash at op {crash_at}, keeping {keep} of {pending}: not a prefix with the \
                 {synced} synced batches; warnings: {warnings:?}"
            );
            assert!(warnings.len() <= 1, "{warnings:?}");
            // Keeping nothing unsynced leaves only synced frames and synced zeros: no tear.
            assert!(
                keep > 0 || warnings.is_empty(),
                "crash at op {crash_at}: {warnings:?}"
            );
            torn += warnings.len();
            fs.disk.crash();
            let (_, again, warnings) = open(&fs.disk, dir, options).expect("recovers again");
            assert_eq!(again, recovered, "crash at op {crash_at}, keeping {keep}");
            assert!(warnings.is_empty(), "{warnings:?}");
            if keep >= pending {
                break;
            }
        }
    }
    // The sweep met both the preallocating zeros and the frames in flight, and torn frames.
    println!("{crashes} crashes over {total_ops} operations, {torn} torn writes cut");
    assert!(
        crashes > 1000 && torn > 100,
        "{crashes} crashes, {torn} torn"
    );
}

/// What the scrambled-sector crash test met, over all its seeds: evidence that it exercised
/// the recovery rules it is about.
#[derive(Debug, Default)]
struct ScrambleCounts {
    /// Power cuts that met unsynced writes and kept some of the sectors they touched, not all.
    mixed_cuts: usize,
    /// Power cuts while the log was recovering.
    cuts_in_recovery: usize,
    /// Recoveries that cut a torn write.
    torn_writes_cut: usize,
    /// Of those, the cuts before a valid frame: a torn write into preallocated space.
    valid_frames_dropped: usize,
}

/// The batches written since the log was last recovered, and what the next recovery may
/// return: the state after some prefix of them that holds at least the synced ones.
#[derive(Debug)]
struct SinceRecovery {
    /// `states[k]`: the state after the first `k` batches; `states[0]` is the recovered one.
    states: Vec<Model>,
    /// How many of the batches a successful sync covered.
    synced: usize,
}

impl SinceRecovery {
    fn from(recovered: Model) -> SinceRecovery {
        SinceRecovery {
            states: vec![recovered],
            synced: 0,
        }
    }

    /// Checks that `recovered` is a state recovery may return, ignoring the entries at or
    /// below `compacted`, and counts the torn writes it cut.
    fn check(
        &self,
        recovered: &Model,
        warnings: &[String],
        compacted: Index,
        counts: &mut ScrambleCounts,
        context: &str,
    ) {
        let recovered = recovered.above(compacted);
        let matching = (self.synced..self.states.len())
            .find(|&k| self.states[k].above(compacted) == recovered);
        assert!(
            matching.is_some(),
            "{context}: recovered state is not that after any prefix of at least the {} synced \
             batches of {}; warnings: {warnings:?}",
            self.synced,
            self.states.len() - 1
        );
        assert!(warnings.len() <= 1, "{context}: {warnings:?}");
        counts.torn_writes_cut += warnings.len();
        counts.valid_frames_dropped += warnings
            .iter()
            .filter(|warning| warning.contains("comes first, so the valid frame"))
            .count();
    }
}

/// Appends random batches to `wal`, syncs and compacts, until `steps` steps are done or an
/// operation fails (the power cut), recording every batch and sync in `since`, and the highest
/// compaction in `compacted`. `last` and `term` carry the index and term of the batches on.
fn scrambled_workload(
    rng: &mut XorShiftRng,
    wal: &mut Wal<CrashAt>,
    since: &mut SinceRecovery,
    compacted: &mut Index,
    (last, term): (&mut Index, &mut u64),
) {
    let steps = 10 + rng.next_u64() % 30;
    for _ in 0..steps {
        match rng.next_u64() % 10 {
            // Mostly appends, so that a write carries several frames over several sectors.
            0..=6 => {
                let batch = random_batch(rng, last, term);
                if wal.append(&batch).is_err() {
                    return;
                }
                let mut next = since.states.last().expect("the recovered state").clone();
                next.apply(&batch);
                since.states.push(next);
            }
            7 | 8 => {
                if wal.sync().is_err() {
                    return;
                }
                since.synced = since.states.len() - 1;
            }
            _ => {
                let durable = &since.states[since.synced].entries;
                let durable_last = durable.keys().next_back().copied().unwrap_or(0);
                if durable_last > 0 {
                    // Compact below what is durable, as an application with a durable
                    // snapshot there would. A cut can come after some segments went.
                    let at = rng.next_u64() % (durable_last + 1);
                    *compacted = (*compacted).max(at);
                    match wal.compact(at) {
                        // Compaction syncs before it removes anything.
                        Ok(removed) if removed > 0 => since.synced = since.states.len() - 1,
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            }
        }
    }
}

/// One seed of the scrambled-sector crash test: three rounds of opening the log (recovering
/// from the last power cut, which may itself be cut), checking what it recovered, appending
/// more batches to it, and cutting the power at a random operation. The first cut scrambles
/// the sectors of the unsynced writes; later ones scramble them or lose them all. Segments are
/// preallocated, by the default step (the whole segment) or by smaller ones.
fn scrambled_rounds(seed: u64, counts: &mut ScrambleCounts) {
    let mut rng = XorShiftRng::seed_from_u64(seed);
    let options = WalOptions {
        segment_bytes: [2048, 4096, 16384][(seed % 3) as usize],
        preallocate_bytes: [
            DEFAULT_PREALLOCATE_BYTES,
            DEFAULT_PREALLOCATE_BYTES,
            1024,
            700,
        ][(seed / 3 % 4) as usize],
    };
    let disk = FaultFs::new();
    let dir = Path::new("/data/wal");
    let mut since = SinceRecovery::from(Model::default());
    let mut compacted = 0;
    let mut term = 1;
    for round in 0..3 {
        let context = format!("seed {seed}, round {round}");
        let cut = if round == 0 || !rng.next_u64().is_multiple_of(4) {
            Cut::Scramble {
                keep_percent: 10 + rng.next_u64() % 81,
                rng: XorShiftRng::seed_from_u64(rng.next_u64()),
            }
        } else {
            Cut::Tear(0)
        };
        // One round in eight cuts the power while recovering (which takes a few operations, and
        // more to repair a torn write), the others at one of the next operations after.
        let in_recovery = rng.next_u64().is_multiple_of(8);
        let crash_at = in_recovery.then(|| (rng.next_u64() % 8) as usize);
        let fs = CrashAt::on(disk.clone(), crash_at, cut);
        match Wal::open(fs.clone(), dir, options) {
            Ok((mut wal, recovered)) => {
                if !in_recovery {
                    let mut state = fs.state.lock().unwrap();
                    state.crash_at = Some(state.ops + (rng.next_u64() % 16) as usize);
                }
                let recovered_model = Model {
                    hard_state: recovered.hard_state,
                    entries: recovered.entries,
                };
                since.check(
                    &recovered_model,
                    &recovered.warnings,
                    compacted,
                    counts,
                    &context,
                );
                let mut last = recovered_model.entries.keys().next_back().copied();
                since = SinceRecovery::from(recovered_model);
                // New entries and hard states differ from any the cut lost, so that one of
                // those coming back shows.
                term += 1000;
                scrambled_workload(
                    &mut rng,
                    &mut wal,
                    &mut since,
                    &mut compacted,
                    (last.get_or_insert(0), &mut term),
                );
            }
            // The power cut came while recovering: the next recovery has the same choice.
            Err(WalError::Io { .. }) if fs.state.lock().unwrap().crashed_with_pending.is_some() => {
                counts.cuts_in_recovery += 1;
            }
            Err(error) => panic!("{context}: recovery failed: {error}"),
        }
        let state = fs.crash_now();
        let pending = state.crashed_with_pending.expect("crashed");
        if matches!(state.cut, Cut::Scramble { .. }) && 0 < state.kept && state.kept < pending {
            counts.mixed_cuts += 1;
        }
    }
    let context = format!("seed {seed}, last recovery");
    let (_, recovered, warnings) = match open(&disk, dir, options) {
        Ok(opened) => opened,
        Err(error) => panic!("{context}: recovery failed: {error}"),
    };
    since.check(&recovered, &warnings, compacted, counts, &context);
    // Recovery made its repair durable: a crash and recovery give the same state.
    disk.crash();
    let (_, again, warnings) = open(&disk, dir, options).expect("recovers again");
    assert_eq!(
        again.above(compacted),
        recovered.above(compacted),
        "{context}"
    );
    assert!(warnings.is_empty(), "{context}: {warnings:?}");
}

/// Power cuts by a disk that writes the sectors of a write back in any order, on preallocated
/// segments, round after round: every scramble of unsynced sectors is a state recovery must
/// accept (no [`WalError::Corrupt`]) and repair to the state after a prefix of the batches
/// that holds every synced one; and after more batches over the repaired log and another cut,
/// no frame from before the first cut comes back.
#[test]
fn scrambled_sectors_of_unsynced_writes_recover_to_a_prefix_with_every_synced_batch_round_after_round()
 {
    let mut counts = ScrambleCounts::default();
    for seed in 0..10_000 {
        scrambled_rounds(seed, &mut counts);
    }
    println!("{counts:?}");
    // The cuts kept some sectors and lost others, met recovery, and left torn writes into
    // preallocated space with valid frames after them.
    assert!(
        counts.mixed_cuts > 3_000
            && counts.cuts_in_recovery > 1_000
            && counts.torn_writes_cut > 1_000
            && counts.valid_frames_dropped > 300,
        "{counts:?}"
    );
}
