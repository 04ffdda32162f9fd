//! Group commit: many writers, one write and one `fdatasync` per round.
//!
//! Writers queue their batches and wait; a flusher thread takes everything queued, writes it
//! with one write, syncs once, and wakes exactly the writers that round covered. Batches
//! queued while a sync is in flight go into the next round, so every batch queued during an
//! `fdatasync` shares the next one, and a lone writer pays one write and one sync.
//!
//! A writer parks its thread, and the flusher unparks exactly the writers a round covered;
//! they check an atomic counter without taking a lock. With hundreds of writers on a few
//! cores, the wake-ups, not the disk, are what limit a round, and a condition variable would
//! also make every woken writer queue for its mutex.
//!
//! A batch counts as durable only once the sync that covered it returned `Ok`. A failed sync
//! poisons the log for every writer, waiting or later (see [`crate::wal`]). A write refused
//! for want of space fails every batch of its round, and the log stays usable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, Thread};

use crate::fs::Fs;
use crate::wal::{Wal, WalBatch, WalError};

struct Queue {
    /// Queued batches, with the thread to wake when each is settled.
    batches: Vec<(WalBatch, Thread)>,
    /// The number of batches ever queued; a batch's ticket is its position in that count.
    queued: u64,
    /// Tickets refused because the disk was full, with the segment's path.
    refused: Vec<(std::ops::RangeInclusive<u64>, PathBuf)>,
    /// Rounds completed.
    rounds: u64,
    /// The flusher is waiting for work (so a new batch must signal it).
    flusher_idle: bool,
    shutdown: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signals the flusher that batches are queued (or that it should stop).
    work: Condvar,
    /// Every ticket up to here is settled: durable, or refused (then listed in `refused`).
    settled: AtomicU64,
    /// Set when a sync failed: the log is unusable.
    failed: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves the state consistent, so a panic elsewhere while
    // holding a lock carries no information about it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A write-ahead log shared by concurrent writers. See the [module documentation](self).
pub struct GroupCommit<F: Fs + 'static> {
    shared: Arc<Shared>,
    wal: Arc<Mutex<Wal<F>>>,
    flusher: Option<JoinHandle<()>>,
}

impl<F: Fs + 'static> std::fmt::Debug for GroupCommit<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<F: Fs + 'static> GroupCommit<F> {
    /// Shares `wal` between writers, with a flusher thread.
    pub fn new(wal: Wal<F>) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                batches: Vec::new(),
                queued: 0,
                refused: Vec::new(),
                rounds: 0,
                flusher_idle: false,
                shutdown: false,
            }),
            work: Condvar::new(),
            settled: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        });
        let wal = Arc::new(Mutex::new(wal));
        let flusher = {
            let shared = Arc::clone(&shared);
            let wal = Arc::clone(&wal);
            std::thread::Builder::new()
                .name("synod-wal-flush".into())
                .spawn(move || flush_loop(&shared, &wal))
                .expect("spawn the WAL flusher thread")
        };
        GroupCommit {
            shared,
            wal,
            flusher: Some(flusher),
        }
    }

    /// Writes `batch` and returns once it is durable.
    pub fn commit(&self, batch: WalBatch) -> Result<(), WalError> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(WalError::Poisoned);
        }
        let (ticket, wake_flusher) = {
            let mut queue = lock(&self.shared.queue);
            queue.batches.push((batch, std::thread::current()));
            queue.queued += 1;
            (queue.queued, std::mem::take(&mut queue.flusher_idle))
        };
        if wake_flusher {
            self.shared.work.notify_one();
        }
        loop {
            if self.shared.settled.load(Ordering::Acquire) >= ticket {
                let mut queue = lock(&self.shared.queue);
                let Some(position) = queue.refused.iter().position(|(r, _)| r.contains(&ticket))
                else {
                    return Ok(());
                };
                let path = queue.refused[position].1.clone();
                if *queue.refused[position].0.end() == ticket {
                    queue.refused.remove(position);
                }
                return Err(WalError::StorageFull { path });
            }
            if self.shared.failed.load(Ordering::Acquire) {
                return Err(WalError::Poisoned);
            }
            // Unparked by the flusher once the round holding this batch is settled; a
            // spurious wake-up just checks again.
            std::thread::park();
        }
    }

    /// Sync rounds so far: with many writers, far fewer than commits.
    pub fn rounds(&self) -> u64 {
        lock(&self.shared.queue).rounds
    }

    /// The log, for compaction and inspection. The flusher waits while it is held.
    pub fn wal(&self) -> MutexGuard<'_, Wal<F>> {
        lock(&self.wal)
    }
}

impl<F: Fs + 'static> Drop for GroupCommit<F> {
    fn drop(&mut self) {
        lock(&self.shared.queue).shutdown = true;
        self.shared.work.notify_one();
        if let Some(flusher) = self.flusher.take() {
            // The flusher catches nothing: a panic there is a bug, reported when joined.
            let _ = flusher.join();
        }
    }
}

/// The flusher: takes every queued batch, writes and syncs them, wakes their writers.
fn flush_loop<F: Fs>(shared: &Shared, wal: &Mutex<Wal<F>>) {
    loop {
        let mut queue = lock(&shared.queue);
        while queue.batches.is_empty() && !queue.shutdown {
            queue.flusher_idle = true;
            queue = shared
                .work
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        queue.flusher_idle = false;
        if queue.batches.is_empty() && queue.shutdown {
            return;
        }
        let round = std::mem::take(&mut queue.batches);
        let covered = queue.queued;
        let first = covered - round.len() as u64 + 1;
        drop(queue);
        let (batches, writers): (Vec<WalBatch>, Vec<Thread>) = round.into_iter().unzip();
        let result = write_and_sync(wal, &batches);
        let mut queue = lock(&shared.queue);
        queue.rounds += 1;
        let failed = match result {
            Ok(()) => false,
            // A write failed for want of space. Some batches of the round may have reached
            // the disk with an earlier segment; none is acknowledged, which is always safe
            // (an unacknowledged write may or may not have happened).
            Err(WalError::StorageFull { path }) => {
                queue.refused.push((first..=covered, path));
                false
            }
            Err(_) => true,
        };
        let waiting: Vec<Thread> = if failed {
            // Nothing will be durable any more: wake the writers already queued too.
            queue.batches.drain(..).map(|(_, writer)| writer).collect()
        } else {
            Vec::new()
        };
        if failed {
            shared.failed.store(true, Ordering::Release);
        } else {
            shared.settled.store(covered, Ordering::Release);
        }
        drop(queue);
        for writer in writers.iter().chain(&waiting) {
            writer.unpark();
        }
        if failed {
            return;
        }
    }
}

fn write_and_sync<F: Fs>(wal: &Mutex<Wal<F>>, batches: &[WalBatch]) -> Result<(), WalError> {
    let mut wal = lock(wal);
    for batch in batches {
        wal.append(batch)?;
    }
    wal.sync()
}
