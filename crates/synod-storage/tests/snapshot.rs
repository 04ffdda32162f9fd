//! The snapshot store: streamed snapshots come back intact, only the newest `keep` are kept, an
//! interrupted write is invisible, damage of any kind makes open fall back to the next older
//! valid snapshot, and a crash or a failed fsync at any step leaves the old or the new snapshot,
//! never a damaged one.
//!
//! Most tests use the real file system on a temporary directory; the crash and fsync tests put
//! [`FaultFs`] underneath, through [`CrashingFs`], which crashes it at a chosen operation.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use synod_core::{Membership, SnapshotMeta};
use synod_storage::fault::FaultFs;
use synod_storage::fs::{Fs, FsFile, RealFs};
use synod_storage::snapshot::{
    DEFAULT_KEEP, HEADER_LEN, SnapshotError, SnapshotStore, SnapshotWarning, TRAILER_LEN,
};

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        membership: Membership {
            voters: BTreeSet::from([1, 2, 3]),
            voters_outgoing: BTreeSet::new(),
            learners: BTreeSet::from([4]),
        },
    }
}

/// Deterministic pseudo-random bytes (SplitMix64), different for each `seed`.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn open_real(dir: &Path, keep: usize) -> SnapshotStore<RealFs> {
    SnapshotStore::open(RealFs, dir.to_path_buf(), keep).expect("opens")
}

/// Writes a snapshot in chunks of `chunk_len` bytes.
fn write<F: Fs>(store: &mut SnapshotStore<F>, meta: SnapshotMeta, data: &[u8], chunk_len: usize) {
    let mut writer = store.begin(meta.clone()).expect("begins");
    for chunk in data.chunks(chunk_len) {
        writer.write_chunk(chunk).expect("writes");
    }
    assert_eq!(writer.finish().expect("finishes"), meta);
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn quarantined(store: &SnapshotStore<impl Fs>) -> Vec<(PathBuf, String)> {
    store
        .warnings()
        .iter()
        .filter_map(|w| match w {
            SnapshotWarning::Quarantined { path, reason, .. } => {
                Some((path.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_5_mib_snapshot_written_in_64_kib_chunks_reads_back_in_100_kib_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(1, 5 << 20);
    let mut store = open_real(dir.path(), DEFAULT_KEEP);
    assert_eq!(store.newest(), None);
    write(&mut store, meta(100, 3), &data, 64 << 10);
    assert_eq!(store.newest(), Some(&meta(100, 3)));

    // Reopened, so the scan at open verifies the file too.
    drop(store);
    let store = open_real(dir.path(), DEFAULT_KEEP);
    assert!(store.warnings().is_empty(), "{:?}", store.warnings());
    assert_eq!(store.newest(), Some(&meta(100, 3)));
    let mut reader = store.open_reader(100).unwrap();
    assert_eq!(reader.meta(), &meta(100, 3));
    assert_eq!(reader.content_len(), data.len() as u64);
    let mut read = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = reader.next_chunk(100 << 10).unwrap() {
        assert!(!chunk.is_empty() && chunk.len() <= 100 << 10);
        read.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert_eq!(chunks, (5usize << 20).div_ceil(100 << 10));
    assert!(read == data, "content differs");
    // A verified reader stays at its end.
    assert_eq!(reader.next_chunk(1).unwrap(), None);
    assert!(store.read_all(100).unwrap() == data);
}

#[test]
fn an_empty_snapshot_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_real(dir.path(), DEFAULT_KEEP);
    write(&mut store, meta(1, 1), &[], 1);
    drop(store);
    let store = open_real(dir.path(), DEFAULT_KEEP);
    assert_eq!(store.newest(), Some(&meta(1, 1)));
    assert_eq!(store.read_all(1).unwrap(), Vec::<u8>::new());
}

#[test]
fn only_the_newest_keep_snapshots_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_real(dir.path(), 2);
    for i in 1..=5u64 {
        write(&mut store, meta(i * 10, i), &content(i, 1000), 300);
        let kept: Vec<u64> = store.snapshots().iter().map(|m| m.index).collect();
        let expected: Vec<u64> = (i.saturating_sub(1).max(1)..=i).map(|j| j * 10).collect();
        assert_eq!(kept, expected);
    }
    assert_eq!(
        names(dir.path()),
        vec![
            format!("snap-{:020}-{:020}.snap", 40, 4),
            format!("snap-{:020}-{:020}.snap", 50, 5),
        ]
    );
    assert!(matches!(
        store.open_reader(30),
        Err(SnapshotError::NotFound(30))
    ));
    assert_eq!(store.read_all(40).unwrap(), content(4, 1000));

    // Opening with a smaller `keep` prunes at once.
    drop(store);
    let store = open_real(dir.path(), 1);
    assert_eq!(store.snapshots(), &[meta(50, 5)]);
    assert_eq!(names(dir.path()).len(), 1);
}

#[test]
fn a_snapshot_older_than_the_newest_is_refused_and_an_equal_one_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_real(dir.path(), DEFAULT_KEEP);
    write(&mut store, meta(20, 2), b"twenty", 4);
    assert!(matches!(
        store.begin(meta(10, 1)),
        Err(SnapshotError::Stale {
            index: 10,
            newest: 20
        })
    ));
    write(&mut store, meta(20, 2), b"twenty again", 4);
    assert_eq!(store.snapshots(), &[meta(20, 2)]);
    assert_eq!(store.read_all(20).unwrap(), b"twenty again");
}

#[test]
fn a_crash_mid_write_leaves_the_previous_snapshot_newest_and_open_removes_the_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_real(dir.path(), DEFAULT_KEEP);
    write(&mut store, meta(10, 1), b"old state", 3);

    // The "crash": the writer is dropped after some chunks, without `finish`.
    let mut writer = store.begin(meta(20, 2)).unwrap();
    writer.write_chunk(&content(2, 5000)).unwrap();
    let tmp = writer.temporary_path().to_path_buf();
    drop(writer);
    assert!(tmp.exists());
    assert_eq!(store.newest(), Some(&meta(10, 1)));

    drop(store);
    let store = open_real(dir.path(), DEFAULT_KEEP);
    assert_eq!(
        store.warnings(),
        &[SnapshotWarning::RemovedTemporary { path: tmp.clone() }]
    );
    assert!(!tmp.exists());
    assert_eq!(store.newest(), Some(&meta(10, 1)));
    assert_eq!(store.read_all(10).unwrap(), b"old state");
}

#[test]
fn a_dropped_writer_does_not_block_a_new_write_of_the_same_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_real(dir.path(), DEFAULT_KEEP);
    let mut writer = store.begin(meta(20, 2)).unwrap();
    writer.write_chunk(b"abandoned").unwrap();
    drop(writer);
    write(&mut store, meta(20, 2), b"finished", 3);
    assert_eq!(store.read_all(20).unwrap(), b"finished");
    assert_eq!(
        names(dir.path()),
        vec![format!("snap-{:020}-{:020}.snap", 20, 2)]
    );
}

/// Two small snapshots on disk, as bytes: (name, contents) of the older and of the newer.
fn two_snapshot_files() -> [(String, Vec<u8>); 2] {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_real(dir.path(), DEFAULT_KEEP);
    write(&mut store, meta(10, 1), b"older", 2);
    write(&mut store, meta(20, 2), &content(20, 40), 7);
    let files: Vec<_> = names(dir.path())
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.path().join(&name)).unwrap();
            (name, bytes)
        })
        .collect();
    files.try_into().expect("two snapshot files")
}

/// Opens a store over the older snapshot and `newer` as the newer one's file; checks that the
/// newer one was quarantined and the older one is newest. Returns the reason given.
fn assert_falls_back(older: &(String, Vec<u8>), newer_name: &str, newer: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(&older.0), &older.1).unwrap();
    std::fs::write(dir.path().join(newer_name), newer).unwrap();
    let store = open_real(dir.path(), DEFAULT_KEEP);
    assert_eq!(store.snapshots(), &[meta(10, 1)]);
    let quarantined = quarantined(&store);
    assert_eq!(quarantined.len(), 1, "{:?}", store.warnings());
    assert_eq!(quarantined[0].0, dir.path().join(newer_name));
    assert_eq!(store.read_all(10).unwrap(), b"older");
    assert!(dir.path().join(format!("{newer_name}.broken")).exists());
    assert!(!dir.path().join(newer_name).exists());
    quarantined[0].1.clone()
}

#[test]
fn a_bit_flip_in_each_region_of_the_newest_is_detected_and_open_falls_back() {
    let [older, (newer_name, newer)] = two_snapshot_files();
    let meta_len = u32::from_le_bytes(newer[12..16].try_into().unwrap()) as usize;
    let content_start = HEADER_LEN as usize + meta_len;
    let trailer_start = newer.len() - TRAILER_LEN as usize;
    assert_eq!(trailer_start - content_start, 40);
    let region = |offset: usize| match offset {
        0..8 => "magic",
        8..12 => "version",
        12..16 => "metadata length",
        o if o < content_start => "metadata",
        o if o < trailer_start => "content",
        o if o < trailer_start + 8 => "trailer: content length",
        _ => "trailer: CRC",
    };
    let mut regions_seen = BTreeSet::new();
    // Every bit of the file, so every region.
    for bit in 0..newer.len() * 8 {
        let mut damaged = newer.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let reason = assert_falls_back(&older, &newer_name, &damaged);
        assert!(!reason.is_empty(), "bit {bit} ({})", region(bit / 8));
        regions_seen.insert(region(bit / 8));
    }
    assert_eq!(regions_seen.len(), 7);
    // The reasons name the offset of what they found.
    let mut damaged = newer.clone();
    damaged[0] ^= 1;
    assert!(assert_falls_back(&older, &newer_name, &damaged).contains("bad magic"));
    let mut damaged = newer.clone();
    damaged[content_start] ^= 1;
    let reason = assert_falls_back(&older, &newer_name, &damaged);
    assert!(
        reason.contains("CRC mismatch")
            && reason.contains(&format!("offset {}", trailer_start + 8)),
        "{reason}"
    );
}

#[test]
fn a_truncated_or_extended_snapshot_file_is_detected() {
    let [older, (newer_name, newer)] = two_snapshot_files();
    for len in 0..newer.len() {
        assert_falls_back(&older, &newer_name, &newer[..len]);
    }
    let mut extended = newer.clone();
    extended.push(0);
    assert_falls_back(&older, &newer_name, &extended);
}

#[test]
fn a_snapshot_whose_metadata_disagrees_with_its_name_is_not_used() {
    let [older, (_, newer)] = two_snapshot_files();
    let reason = assert_falls_back(&older, &format!("snap-{:020}-{:020}.snap", 30, 2), &newer);
    assert!(reason.contains("index 20 term 2"), "{reason}");
}

#[test]
fn the_reader_detects_damage_after_open_only_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(7, 300_000);
    let mut store = open_real(dir.path(), DEFAULT_KEEP);
    write(&mut store, meta(5, 1), &data, 1 << 16);
    // Bit rot after open: the last content byte.
    let path = store.snapshot_path(5, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    let last_content = bytes.len() - TRAILER_LEN as usize - 1;
    bytes[last_content] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    let mut reader = store.open_reader(5).unwrap();
    let mut read = 0;
    let error = loop {
        match reader.next_chunk(1 << 16) {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) => panic!("damage not detected"),
            Err(e) => break e,
        }
    };
    // Every chunk came back before the CRC could be checked: that is why callers must wait.
    assert_eq!(read, data.len());
    let message = error.to_string();
    assert!(
        matches!(error, SnapshotError::Corrupt { .. })
            && message.contains(&path.display().to_string())
            && message.contains("CRC mismatch"),
        "{message}"
    );
    assert!(reader.next_chunk(1).is_err());
    assert!(store.read_all(5).is_err());
}

#[test]
fn missing_indexes_are_not_found_and_foreign_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    std::fs::write(dir.path().join("snap-1-2.snap"), b"odd").unwrap();
    let store = open_real(dir.path(), DEFAULT_KEEP);
    assert!(matches!(store.read_all(1), Err(SnapshotError::NotFound(1))));
    assert_eq!(
        store.warnings(),
        &[SnapshotWarning::UnrecognizedName {
            path: dir.path().join("snap-1-2.snap")
        }]
    );
    assert_eq!(names(dir.path()), vec!["notes.txt", "snap-1-2.snap"]);
}

#[test]
fn open_creates_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/snapshots");
    let mut store = open_real(&nested, DEFAULT_KEEP);
    write(&mut store, meta(1, 1), b"x", 1);
    assert_eq!(names(&nested).len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_garbage_as_a_snapshot_file_never_panics_open(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        with_header in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut file = Vec::new();
        if with_header {
            // A valid header, so that the damage is met further in.
            file.extend_from_slice(b"SYNODSNP");
            file.extend_from_slice(&1u32.to_le_bytes());
        }
        file.extend_from_slice(&bytes);
        let name = format!("snap-{:020}-{:020}.snap", 1, 1);
        std::fs::write(dir.path().join(&name), &file).unwrap();
        let store = SnapshotStore::open(RealFs, dir.path().to_path_buf(), DEFAULT_KEEP).unwrap();
        // Garbage verifies only if it forges a CRC-32C, a 2^-32 chance.
        prop_assert!(store.snapshots().is_empty());
        prop_assert_eq!(quarantined(&store).len(), 1);
    }

    #[test]
    fn any_damaged_byte_of_a_snapshot_file_is_detected(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        position in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_real(dir.path(), DEFAULT_KEEP);
        write(&mut store, meta(3, 1), &data, 97);
        let path = store.snapshot_path(3, 1);
        drop(store);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = position.index(bytes.len());
        bytes[at] ^= mask;
        std::fs::write(&path, &bytes).unwrap();
        let store = open_real(dir.path(), DEFAULT_KEEP);
        prop_assert!(store.snapshots().is_empty());
        prop_assert_eq!(quarantined(&store).len(), 1);
    }
}

// ---- Crashes and failed fsyncs, on FaultFs ----

/// A [`FaultFs`] that logs every operation and, at a chosen one, crashes the disk instead of
/// performing it; every later operation fails, as the process would be gone.
#[derive(Clone, Debug, Default)]
struct CrashingFs {
    disk: FaultFs,
    plan: Arc<Mutex<Plan>>,
}

#[derive(Debug, Default)]
struct Plan {
    /// The operations performed (or attempted), in order.
    log: Vec<&'static str>,
    /// Crash instead of performing the operation with this position in `log`.
    crash_at: Option<usize>,
    /// Keep half of each file's pending appends at the crash: a torn write.
    tear: bool,
    crashed: bool,
}

impl CrashingFs {
    fn op(&self, name: &'static str) -> io::Result<()> {
        let mut plan = self.plan.lock().unwrap();
        if plan.crashed {
            return Err(io::Error::other("the process crashed"));
        }
        plan.log.push(name);
        if plan.crash_at == Some(plan.log.len() - 1) {
            plan.crashed = true;
            let tear = plan.tear;
            drop(plan);
            if tear {
                self.disk.crash_tearing(|_, pending| pending / 2);
            } else {
                self.disk.crash();
            }
            return Err(io::Error::other("crashed"));
        }
        Ok(())
    }

    fn log(&self) -> Vec<&'static str> {
        self.plan.lock().unwrap().log.clone()
    }
}

struct CrashingFile {
    fs: CrashingFs,
    file: <FaultFs as Fs>::File,
}

impl FsFile for CrashingFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.fs.op("write_all")?;
        self.file.write_all(data)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.fs.op("write_at")?;
        self.file.write_at(offset, data)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.fs.op("sync_data")?;
        self.file.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.fs.op("set_len")?;
        self.file.set_len(len)
    }

    fn len(&self) -> u64 {
        self.file.len()
    }
}

impl Fs for CrashingFs {
    type File = CrashingFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.op("create_dir_all")?;
        self.disk.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.op("list")?;
        self.disk.list(dir)
    }

    fn create(&self, path: &Path) -> io::Result<CrashingFile> {
        self.op("create")?;
        let file = self.disk.create(path)?;
        Ok(CrashingFile {
            fs: self.clone(),
            file,
        })
    }

    fn open_append(&self, path: &Path) -> io::Result<CrashingFile> {
        self.op("open_append")?;
        let file = self.disk.open_append(path)?;
        Ok(CrashingFile {
            fs: self.clone(),
            file,
        })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.op("read")?;
        self.disk.read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.op("read_at")?;
        self.disk.read_at(path, offset, len)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.op("file_len")?;
        self.disk.file_len(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.op("rename")?;
        self.disk.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.op("remove")?;
        self.disk.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.op("sync_dir")?;
        self.disk.sync_dir(dir)
    }
}

const FAULT_DIR: &str = "/member/snapshots";

/// A disk holding two installed snapshots, 10 and 20, with `keep` 2, and the store on it.
fn faulty_store_with_two_snapshots() -> (CrashingFs, SnapshotStore<CrashingFs>) {
    let fs = CrashingFs::default();
    let mut store = SnapshotStore::open(fs.clone(), PathBuf::from(FAULT_DIR), 2).unwrap();
    write(&mut store, meta(10, 1), b"ten", 2);
    write(&mut store, meta(20, 2), &content(20, 3000), 1000);
    (fs, store)
}

/// Begins, writes and finishes snapshot 30, stopping at the first error.
fn try_write_30(store: &mut SnapshotStore<CrashingFs>) -> Result<SnapshotMeta, SnapshotError> {
    let mut writer = store.begin(meta(30, 3))?;
    for chunk in content(30, 3000).chunks(1000) {
        writer.write_chunk(chunk)?;
    }
    writer.finish()
}

/// The store a restart finds on `disk`.
fn reopen(disk: &FaultFs) -> SnapshotStore<FaultFs> {
    SnapshotStore::open(disk.clone(), PathBuf::from(FAULT_DIR), 2).expect("reopens")
}

#[test]
fn finish_syncs_the_file_then_renames_it_then_syncs_the_dir_then_prunes() {
    let (fs, mut store) = faulty_store_with_two_snapshots();
    let start = fs.log().len();
    try_write_30(&mut store).unwrap();
    let log = fs.log()[start..].to_vec();
    // create, the header, three chunks, the trailer and the CRC; then the durable install;
    // then the removal of snapshot 10 and its directory sync.
    assert_eq!(
        log,
        [
            "create",
            "write_all",
            "write_all",
            "write_all",
            "write_all",
            "write_all",
            "write_all",
            "sync_data",
            "rename",
            "sync_dir",
            "remove",
            "sync_dir",
        ]
    );
    assert_eq!(store.snapshots(), &[meta(20, 2), meta(30, 3)]);
}

#[test]
fn a_crash_before_the_dir_sync_loses_the_new_snapshot_but_keeps_the_old() {
    let (fs, mut store) = faulty_store_with_two_snapshots();
    let start = fs.log().len();
    // The directory sync that would make the rename durable is op 9 of `finish` (see above).
    fs.plan.lock().unwrap().crash_at = Some(start + 9);
    assert!(matches!(
        try_write_30(&mut store),
        Err(SnapshotError::Sync { .. })
    ));
    assert_eq!(store.newest(), Some(&meta(20, 2)));
    drop(store);

    let store = reopen(&fs.disk);
    assert_eq!(store.snapshots(), &[meta(10, 1), meta(20, 2)]);
    assert!(store.warnings().is_empty(), "{:?}", store.warnings());
    assert_eq!(store.read_all(20).unwrap(), content(20, 3000));
}

#[test]
fn an_eio_on_sync_data_fails_finish_and_the_old_snapshot_stays_newest() {
    let (fs, mut store) = faulty_store_with_two_snapshots();
    let start = fs.log().len();
    fs.disk.fail_next_sync();
    let error = try_write_30(&mut store).unwrap_err();
    assert!(
        matches!(&error, SnapshotError::Sync { source, .. } if source.raw_os_error() == Some(5)),
        "{error}"
    );
    // One fsync, never retried, and nothing renamed.
    let log = fs.log()[start..].to_vec();
    assert_eq!(log.iter().filter(|&&op| op == "sync_data").count(), 1);
    assert!(!log.contains(&"rename"));
    assert_eq!(store.newest(), Some(&meta(20, 2)));
    assert_eq!(store.read_all(20).unwrap(), content(20, 3000));

    // Neither a restart without a crash nor one after a crash sees snapshot 30.
    drop(store);
    let store = reopen(&fs.disk);
    assert_eq!(store.newest(), Some(&meta(20, 2)));
    drop(store);
    fs.disk.crash();
    let mut store = reopen(&fs.disk);
    assert_eq!(store.snapshots(), &[meta(10, 1), meta(20, 2)]);

    // A later snapshot is a new file with a new fsync, and succeeds.
    write(&mut store, meta(40, 4), b"forty", 2);
    assert_eq!(store.snapshots(), &[meta(20, 2), meta(40, 4)]);
}

#[test]
fn a_crash_at_any_operation_of_a_write_leaves_the_old_or_the_new_snapshot() {
    let (fs, mut store) = faulty_store_with_two_snapshots();
    let start = fs.log().len();
    try_write_30(&mut store).unwrap();
    let end = fs.log().len();

    for tear in [false, true] {
        for crash_at in start..end {
            let (fs, mut store) = faulty_store_with_two_snapshots();
            assert_eq!(fs.log().len(), start);
            {
                let mut plan = fs.plan.lock().unwrap();
                plan.crash_at = Some(crash_at);
                plan.tear = tear;
            }
            let finished = try_write_30(&mut store).is_ok();
            drop(store);
            assert!(!finished, "the crash at op {crash_at} was not reached");

            let store = reopen(&fs.disk);
            let context = format!(
                "crash at op {crash_at} (tear {tear}): {:?}",
                store.warnings()
            );
            assert!(quarantined(&store).is_empty(), "{context}");
            let newest = store.newest().cloned();
            assert!(
                newest == Some(meta(20, 2)) || newest == Some(meta(30, 3)),
                "{context}: newest {newest:?}"
            );
            for snapshot in store.snapshots() {
                let expected = match snapshot.index {
                    10 => b"ten".to_vec(),
                    index => content(index, 3000),
                };
                assert!(
                    store.read_all(snapshot.index).unwrap() == expected,
                    "{context}"
                );
            }
            // The temporary file never survives a restart.
            assert!(
                fs.disk
                    .files()
                    .iter()
                    .all(|p| !p.to_string_lossy().ends_with(".tmp")),
                "{context}"
            );
        }
    }
}
