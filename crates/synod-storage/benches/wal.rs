//! Write-ahead log appends per second and latency, with 1, 16 and 256 concurrent writers of
//! 256-byte entries (each commit one entry, made durable before it returns), against a raw
//! `write` + `fdatasync` loop on the same disk in the same run.
//!
//! `cargo bench -p synod-storage --bench wal` prints a table and the ratios the storage issue
//! asks for: the single writer's p50 against raw `fdatasync` (target: within 1.2×), and 256
//! writers' rate against one writer's (target: at least 50×, through group commit).
//! The interleaved single-writer figures also run two more writers in the same blocks: raw
//! overwrites in place (`pwrite` over synced bytes, + `fdatasync`, which needs no journal
//! commit) and the log without preallocation (`preallocate_bytes: 0`, every write an append).
//! Set `SYNOD_BENCH_DIR` to measure another disk; the default is under `target/`.
//! Run as a test (`cargo test --benches`) it does a few operations only, to check it works.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use synod_core::{Entry, Payload};
use synod_storage::fs::RealFs;
use synod_storage::group::GroupCommit;
use synod_storage::wal::{Wal, WalBatch, WalOptions};

const ENTRY_BYTES: usize = 256;

/// The figures of a group-commit run, after printing how many fdatasyncs it took.
fn figures(
    kind: &str,
    ops: u64,
    log: &GroupCommit<RealFs>,
    start: Instant,
    latencies_us: Vec<u64>,
) -> Figures {
    let elapsed = start.elapsed();
    println!("    {kind}: {ops} commits in {} fdatasyncs", log.rounds());
    Figures {
        ops,
        elapsed,
        latencies_us,
    }
}

/// A batch of one entry at `index`.
fn one_entry(index: u64, payload: &Bytes) -> WalBatch {
    WalBatch {
        entries: vec![Entry {
            term: 1,
            index,
            payload: Payload::Command(payload.clone()),
        }],
        ..WalBatch::default()
    }
}

struct Figures {
    ops: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, q: f64) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64
    }
}

fn fresh_dir(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench directory");
    dir
}

/// The reference: one writer, `write` of a record of the same size, then `fdatasync`.
fn raw_fdatasync(dir: &Path, ops: u64) -> Figures {
    let mut file = std::fs::File::create(dir.join("raw")).expect("raw file");
    let record = vec![7u8; ENTRY_BYTES + 40];
    let mut latencies_us = Vec::with_capacity(ops as usize);
    let start = Instant::now();
    for _ in 0..ops {
        let begin = Instant::now();
        file.write_all(&record).expect("write");
        file.sync_data().expect("fdatasync");
        latencies_us.push(begin.elapsed().as_micros() as u64);
    }
    Figures {
        ops,
        elapsed: start.elapsed(),
        latencies_us,
    }
}

fn group_commit(dir: &Path, writers: u64, ops_per_writer: u64) -> Figures {
    let (wal, _) = Wal::open(RealFs, dir, WalOptions::default()).expect("wal opens");
    let log = Arc::new(GroupCommit::new(wal));
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|writer| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(ops_per_writer as usize);
                let payload = Bytes::from(vec![writer as u8; ENTRY_BYTES]);
                for op in 0..ops_per_writer {
                    let batch = one_entry(writer * ops_per_writer + op + 1, &payload);
                    let begin = Instant::now();
                    log.commit(batch).expect("commit");
                    latencies.push(begin.elapsed().as_micros() as u64);
                }
                latencies
            })
        })
        .collect();
    let latencies_us: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("writer thread"))
        .collect();
    figures(
        &format!("{writers} writers"),
        writers * ops_per_writer,
        &log,
        start,
        latencies_us,
    )
}

/// Writes about `bytes` of log (256-byte entries in batches of 1,000), then times recovery.
fn recovery(dir: &Path, bytes: u64) {
    let (mut wal, _) = Wal::open(RealFs, dir, WalOptions::default()).expect("wal opens");
    let payload = Bytes::from(vec![3u8; ENTRY_BYTES]);
    let per_entry = (ENTRY_BYTES + 21) as u64;
    let entries = bytes / per_entry;
    let mut index = 0;
    while index < entries {
        let batch = WalBatch {
            entries: (0..1_000.min(entries - index))
                .map(|i| Entry {
                    term: 1,
                    index: index + i + 1,
                    payload: Payload::Command(payload.clone()),
                })
                .collect(),
            ..WalBatch::default()
        };
        index += batch.entries.len() as u64;
        wal.append(&batch).expect("append");
        if index % 64_000 == 0 {
            wal.sync().expect("sync");
        }
    }
    wal.sync().expect("sync");
    let segments = wal.segment_count();
    drop(wal);
    let start = Instant::now();
    let mut read_bytes = 0;
    for entry in std::fs::read_dir(dir).expect("list") {
        read_bytes += std::fs::read(entry.expect("entry").path())
            .expect("read")
            .len();
    }
    let read_only = start.elapsed();
    let start = Instant::now();
    let (_, recovered) = Wal::open(RealFs, dir, WalOptions::default()).expect("recovers");
    let elapsed = start.elapsed();
    println!(
        "    reading the {read_bytes} bytes alone: {:.2} s",
        read_only.as_secs_f64()
    );
    assert_eq!(recovered.entries.len() as u64, entries);
    println!(
        "recovery of {:.2} GiB ({} entries, {} segments): {:.2} s (target: under 3 s)",
        bytes as f64 / (1u64 << 30) as f64,
        entries,
        segments,
        elapsed.as_secs_f64()
    );
}

/// `writers` async tasks on a two-worker runtime, each committing through the async API (as
/// the server's request handlers will).
fn group_commit_tasks(dir: &Path, writers: u64, ops_per_writer: u64) -> Figures {
    let (wal, _) = Wal::open(RealFs, dir, WalOptions::default()).expect("wal opens");
    let log = Arc::new(GroupCommit::new(wal));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let start = Instant::now();
    let latencies_us = runtime.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|writer| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(ops_per_writer as usize);
                    let payload = Bytes::from(vec![writer as u8; ENTRY_BYTES]);
                    for op in 0..ops_per_writer {
                        let batch = one_entry(writer * ops_per_writer + op + 1, &payload);
                        let begin = Instant::now();
                        log.commit_async(batch).await.expect("commit");
                        latencies.push(begin.elapsed().as_micros() as u64);
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("writer task"));
        }
        all
    });
    figures(
        &format!("{writers} tasks"),
        writers * ops_per_writer,
        &log,
        start,
        latencies_us,
    )
}

/// The p50 latencies, in microseconds, of the single writers that
/// [`interleaved_single_writer`] alternates.
struct Interleaved {
    /// `write` (an append) + `fdatasync`: each sync also commits the new file size.
    raw_append: f64,
    /// `pwrite` over bytes written and synced before + `fdatasync`: a data write only.
    raw_overwrite: f64,
    /// The log as configured by default (preallocating).
    wal: f64,
    /// The log with `preallocate_bytes: 0`: every write grows its segment.
    wal_unpreallocated: f64,
}

/// Four single writers, alternating in blocks of 100 so that the disk's drift hits them alike:
/// raw appends, raw overwrites in place, the log, and the log without preallocation.
fn interleaved_single_writer(dir: &Path, blocks: u64) -> Interleaved {
    use std::os::unix::fs::FileExt;
    let mut raw_file = std::fs::File::create(dir.join("raw")).expect("raw file");
    let record = vec![7u8; ENTRY_BYTES + 40];
    // The overwritten file holds every record's place, written and synced beforehand.
    let overwritten = std::fs::File::create(dir.join("overwritten")).expect("raw file");
    let places = blocks * 100;
    overwritten
        .write_all_at(&vec![0; (places as usize) * record.len()], 0)
        .expect("zeros");
    overwritten.sync_all().expect("fsync");
    let (wal, _) = Wal::open(RealFs, &dir.join("wal"), WalOptions::default()).expect("wal opens");
    let log = GroupCommit::new(wal);
    let unpreallocated = WalOptions {
        preallocate_bytes: 0,
        ..WalOptions::default()
    };
    let (wal, _) =
        Wal::open(RealFs, &dir.join("wal-unpreallocated"), unpreallocated).expect("wal opens");
    let log_unpreallocated = GroupCommit::new(wal);
    let payload = Bytes::from(vec![1u8; ENTRY_BYTES]);
    let [
        mut appended,
        mut overwrote,
        mut logged,
        mut logged_unpreallocated,
    ]: [Vec<u64>; 4] = Default::default();
    let (mut index, mut place) = (0, 0);
    for _ in 0..blocks {
        for _ in 0..100 {
            let begin = Instant::now();
            raw_file.write_all(&record).expect("write");
            raw_file.sync_data().expect("fdatasync");
            appended.push(begin.elapsed().as_micros() as u64);
        }
        for _ in 0..100 {
            let begin = Instant::now();
            overwritten
                .write_all_at(&record, place * record.len() as u64)
                .expect("pwrite");
            overwritten.sync_data().expect("fdatasync");
            overwrote.push(begin.elapsed().as_micros() as u64);
            place += 1;
        }
        for _ in 0..100 {
            index += 1;
            let begin = Instant::now();
            log.commit(one_entry(index, &payload)).expect("commit");
            logged.push(begin.elapsed().as_micros() as u64);
            let begin = Instant::now();
            log_unpreallocated
                .commit(one_entry(index, &payload))
                .expect("commit");
            logged_unpreallocated.push(begin.elapsed().as_micros() as u64);
        }
    }
    let p50 = |v: Vec<u64>| {
        Figures {
            ops: 0,
            elapsed: Duration::ZERO,
            latencies_us: v,
        }
        .percentile(0.5)
    };
    Interleaved {
        raw_append: p50(appended),
        raw_overwrite: p50(overwrote),
        wal: p50(logged),
        wal_unpreallocated: p50(logged_unpreallocated),
    }
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let base = std::env::var_os("SYNOD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wal-bench"));
    let scale = if measuring { 1 } else { 0 };
    let raw_ops = if measuring { 2_000 } else { 20 };
    let raw = raw_fdatasync(&fresh_dir(&base, "raw"), raw_ops);
    println!("directory: {}", base.display());
    println!(
        "{:<22} {:>12} {:>10} {:>10} {:>10}",
        "", "ops/s", "p50 us", "p99 us", "max us"
    );
    let row = |name: &str, f: &Figures| {
        println!(
            "{:<22} {:>12.0} {:>10.0} {:>10.0} {:>10.0}",
            name,
            f.rate(),
            f.percentile(0.5),
            f.percentile(0.99),
            f.percentile(1.0)
        );
    };
    row("raw write+fdatasync", &raw);
    let mut single_rate = 0.0;
    let mut single_p50 = 0.0;
    for (writers, ops) in [(1, 2_000), (16, 400), (256, 60)] {
        let ops = if scale == 1 { ops } else { 4 };
        let figures = group_commit(&fresh_dir(&base, &format!("wal-{writers}")), writers, ops);
        row(&format!("wal, {writers} writers"), &figures);
        if writers == 1 {
            single_rate = figures.rate();
            single_p50 = figures.percentile(0.5);
        } else {
            println!(
                "    {writers} writers: {:.1}x the single writer's rate",
                figures.rate() / single_rate
            );
        }
    }
    println!(
        "single writer p50 / raw fdatasync p50: {:.2}x (one after the other)",
        single_p50 / raw.percentile(0.5)
    );
    let p50 = interleaved_single_writer(
        &fresh_dir(&base, "interleaved"),
        if measuring { 20 } else { 1 },
    );
    println!("interleaved in blocks of 100, p50:");
    println!(
        "    raw append+fdatasync {:.0} us, raw overwrite+fdatasync {:.0} us, wal {:.0} us, \
         wal without preallocation {:.0} us",
        p50.raw_append, p50.raw_overwrite, p50.wal, p50.wal_unpreallocated
    );
    println!(
        "single writer p50 / raw fdatasync p50, interleaved in blocks of 100: {:.0} us / \
         {:.0} us = {:.2}x (target: at most 1.2x); without preallocation {:.2}x",
        p50.wal,
        p50.raw_append,
        p50.wal / p50.raw_append,
        p50.wal_unpreallocated / p50.raw_append
    );
    println!(
        "    against raw overwrite+fdatasync: {:.2}x, without preallocation {:.2}x",
        p50.wal / p50.raw_overwrite,
        p50.wal_unpreallocated / p50.raw_overwrite
    );
    // The same with async tasks instead of threads: the writers the server will have.
    let mut single_task_rate = 0.0;
    for (writers, ops) in [(1, 2_000), (16, 400), (256, 200)] {
        let ops = if scale == 1 { ops } else { 4 };
        let figures =
            group_commit_tasks(&fresh_dir(&base, &format!("tasks-{writers}")), writers, ops);
        row(&format!("wal, {writers} tasks"), &figures);
        if writers == 1 {
            single_task_rate = figures.rate();
            println!(
                "    1 task p50 / raw fdatasync p50: {:.2}x (target: at most 1.2x)",
                figures.percentile(0.5) / raw.percentile(0.5)
            );
        } else {
            println!(
                "    {writers} tasks: {:.1}x the single task's rate, {:.1}x the single thread's \
                 (target for 256: at least 50x)",
                figures.rate() / single_task_rate,
                figures.rate() / single_rate
            );
        }
    }
    let wal_bytes: u64 = if measuring { 1 << 30 } else { 1 << 20 };
    recovery(&fresh_dir(&base, "recovery"), wal_bytes);
    let _ = std::fs::remove_dir_all(&base);
}
