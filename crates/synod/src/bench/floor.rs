//! `synod bench floor`: the least a replicated write can take on this machine.
//!
//! A put acknowledged by a 3-member cluster waits for at least one `fdatasync` (the leader's and
//! a follower's run in parallel) and one loopback round trip (the entry out to the follower, its
//! acknowledgement back). This tool measures both directly, with nothing else in the path:
//!
//! - `fdatasync` after appending a WAL-sized record (the file grows, as synod's log does), and
//!   after overwriting a record in place (as a log with preallocated segments would);
//! - the round trip of a 64-byte message over a loopback TCP connection with `TCP_NODELAY`,
//!   between two threads of this process.
//!
//! The floor is the median append-and-sync plus the median round trip.
//!
//! Three members on one machine share its disk, and their syncs of a write run at the same
//! time. So the tool also starts three threads that each overwrite a record of their own file
//! in place and sync it, all at once, round after round; a write commits once two of three
//! copies are durable, so each round's second-fastest sync is what a commit waits for. The
//! *shared-disk floor* is the median of those plus the median round trip.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::results::nearest_rank;

/// Bytes written before each sync: about one WAL frame of a 256-byte put.
const RECORD_BYTES: usize = 384;
/// Bytes of each round-trip message.
const PING_BYTES: usize = 64;
/// Members syncing one disk at once.
const MEMBERS: usize = 3;

/// Options of `synod bench floor`.
#[derive(Debug, Clone, clap::Args)]
pub struct FloorArgs {
    /// A directory on the file system the members' data lives on (a scratch file is written
    /// there and removed).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Samples of each measurement.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub samples: u32,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What `synod bench floor` measured, in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Floor {
    /// Samples of each measurement.
    pub samples: u32,
    /// Median time of appending a record and `fdatasync`.
    pub fdatasync_append_us_p50: f64,
    /// 99th percentile of the same.
    pub fdatasync_append_us_p99: f64,
    /// Median time of overwriting a record in place and `fdatasync`.
    pub fdatasync_in_place_us_p50: f64,
    /// Median loopback TCP round trip.
    pub loopback_rtt_us_p50: f64,
    /// `fdatasync_append_us_p50 + loopback_rtt_us_p50`.
    pub floor_us_p50: f64,
    /// Median of every sync when three files are overwritten in place and synced at once.
    #[serde(default)]
    pub fdatasync_shared_us_p50: f64,
    /// Median over rounds of the second-fastest of three syncs run at once: what a commit in a
    /// 3-member cluster on one disk waits for.
    #[serde(default)]
    pub fdatasync_quorum_us_p50: f64,
    /// `fdatasync_quorum_us_p50 + loopback_rtt_us_p50`.
    #[serde(default)]
    pub floor_shared_disk_us_p50: f64,
}

/// Runs the measurements and prints them.
pub fn run(args: FloorArgs) -> anyhow::Result<()> {
    let floor = measure(&args)?;
    if args.json {
        println!("{}", serde_json::to_string(&floor)?);
    } else {
        println!(
            "fdatasync after an append   p50 {:.0} µs, p99 {:.0} µs",
            floor.fdatasync_append_us_p50, floor.fdatasync_append_us_p99
        );
        println!(
            "fdatasync after an overwrite p50 {:.0} µs",
            floor.fdatasync_in_place_us_p50
        );
        println!(
            "loopback TCP round trip     p50 {:.0} µs",
            floor.loopback_rtt_us_p50
        );
        println!(
            "floor of a replicated write p50 {:.0} µs",
            floor.floor_us_p50
        );
        println!(
            "3 syncs at once, each       p50 {:.0} µs; the second of three p50 {:.0} µs",
            floor.fdatasync_shared_us_p50, floor.fdatasync_quorum_us_p50
        );
        println!(
            "floor on one shared disk    p50 {:.0} µs",
            floor.floor_shared_disk_us_p50
        );
    }
    Ok(())
}

fn measure(args: &FloorArgs) -> anyhow::Result<Floor> {
    let samples = args.samples as usize;
    let path = args
        .dir
        .join(format!(".synod-floor-{}", std::process::id()));
    let syncs = measure_syncs(&path, samples);
    let _ = std::fs::remove_file(&path);
    let (append, in_place) =
        syncs.with_context(|| format!("timing fdatasync on {}", path.display()))?;
    let rtt = measure_round_trips(samples).context("timing loopback round trips")?;
    let (shared, quorum) = measure_shared_syncs(&args.dir, samples)
        .with_context(|| format!("timing concurrent fdatasyncs in {}", args.dir.display()))?;
    let p50 = |v: &[f64]| nearest_rank(v, 0.5).unwrap_or(f64::NAN);
    let floor = Floor {
        samples: args.samples,
        fdatasync_append_us_p50: p50(&append),
        fdatasync_append_us_p99: nearest_rank(&append, 0.99).unwrap_or(f64::NAN),
        fdatasync_in_place_us_p50: p50(&in_place),
        loopback_rtt_us_p50: p50(&rtt),
        floor_us_p50: p50(&append) + p50(&rtt),
        fdatasync_shared_us_p50: p50(&shared),
        fdatasync_quorum_us_p50: p50(&quorum),
        floor_shared_disk_us_p50: p50(&quorum) + p50(&rtt),
    };
    Ok(floor)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Appends `samples` records with a sync after each, then overwrites them in place, syncing
/// after each. Returns both series of latencies.
fn measure_syncs(path: &PathBuf, samples: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)?;
    let record = [0x5au8; RECORD_BYTES];
    let mut append = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        append.push(micros(start.elapsed()));
    }
    file.seek(SeekFrom::Start(0))?;
    let mut in_place = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        in_place.push(micros(start.elapsed()));
    }
    Ok((append, in_place))
}

/// Three threads, each with its own file of `samples` records (written and synced first), all
/// overwrite their next record in place and sync it at the same moment, `samples` times.
/// Returns every sync's latency, and each round's second-fastest.
fn measure_shared_syncs(dir: &Path, samples: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let paths: Vec<PathBuf> = (0..MEMBERS)
        .map(|m| dir.join(format!(".synod-floor-{}-{m}", std::process::id())))
        .collect();
    let result = shared_syncs(&paths, samples);
    for path in &paths {
        let _ = std::fs::remove_file(path);
    }
    let per_member = result?;
    let mut all = Vec::with_capacity(MEMBERS * samples);
    let mut quorum = Vec::with_capacity(samples);
    for round in 0..samples {
        let mut latencies: Vec<f64> = per_member.iter().map(|m| m[round]).collect();
        latencies.sort_by(f64::total_cmp);
        quorum.push(latencies[1]);
        all.extend(latencies);
    }
    Ok((all, quorum))
}

fn shared_syncs(paths: &[PathBuf], samples: usize) -> anyhow::Result<Vec<Vec<f64>>> {
    let record = [0x5au8; RECORD_BYTES];
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(path)?;
        // Written and synced ahead, as a preallocated log segment is.
        file.write_all_at(&vec![0u8; RECORD_BYTES * samples], 0)?;
        file.sync_all()?;
        files.push(file);
    }
    let start_line = Arc::new(Barrier::new(files.len()));
    let threads: Vec<_> = files
        .into_iter()
        .map(|file| {
            let start_line = start_line.clone();
            std::thread::spawn(move || -> std::io::Result<Vec<f64>> {
                let mut latencies = Vec::with_capacity(samples);
                for i in 0..samples {
                    start_line.wait();
                    let start = Instant::now();
                    file.write_all_at(&record, (i * RECORD_BYTES) as u64)?;
                    file.sync_data()?;
                    latencies.push(micros(start.elapsed()));
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut per_member = Vec::with_capacity(threads.len());
    for thread in threads {
        let latencies = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a syncing thread panicked"))??;
        per_member.push(latencies);
    }
    Ok(per_member)
}

/// Sends `samples` messages to an echoing thread over loopback TCP and times each round trip.
fn measure_round_trips(samples: usize) -> anyhow::Result<Vec<f64>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut buffer = [0u8; PING_BYTES];
        for _ in 0..samples {
            stream.read_exact(&mut buffer)?;
            stream.write_all(&buffer)?;
        }
        Ok(())
    });
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    // A stuck peer fails the measurement instead of hanging it.
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let message = [7u8; PING_BYTES];
    let mut buffer = [0u8; PING_BYTES];
    let mut rtt = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut buffer)?;
        rtt.push(micros(start.elapsed()));
    }
    echo.join()
        .map_err(|_| anyhow::anyhow!("the echo thread panicked"))??;
    Ok(rtt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_sum_of_its_parts_and_each_part_was_measured() {
        let dir = std::env::temp_dir();
        let floor = measure(&FloorArgs {
            dir: dir.clone(),
            samples: 20,
            json: true,
        })
        .expect("measurable on any Linux machine");
        assert!(floor.fdatasync_append_us_p50 > 0.0);
        assert!(floor.fdatasync_in_place_us_p50 > 0.0);
        assert!(floor.loopback_rtt_us_p50 > 0.0);
        assert!(floor.fdatasync_append_us_p99 >= floor.fdatasync_append_us_p50);
        assert_eq!(
            floor.floor_us_p50,
            floor.fdatasync_append_us_p50 + floor.loopback_rtt_us_p50
        );
        assert!(floor.fdatasync_shared_us_p50 > 0.0);
        assert!(floor.fdatasync_quorum_us_p50 > 0.0);
        assert_eq!(
            floor.floor_shared_disk_us_p50,
            floor.fdatasync_quorum_us_p50 + floor.loopback_rtt_us_p50
        );
        let prefix = format!(".synod-floor-{}", std::process::id());
        let leftover = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix));
        assert!(!leftover, "the scratch files are removed");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let error = measure(&FloorArgs {
            dir: PathBuf::from("/nonexistent/synod-floor"),
            samples: 10,
            json: false,
        })
        .unwrap_err();
        assert!(format!("{error:#}").contains("fdatasync"), "{error:#}");
    }
}
