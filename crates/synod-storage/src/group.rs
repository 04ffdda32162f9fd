//! Group commit: many writers, one write and one `fdatasync` per round.
//!
//! Writers queue their batches and wait; a flusher thread takes everything queued, writes it
//! with one write, syncs once, and wakes exactly the writers that round covered. Batches
//! queued while a sync is in flight go into the next round, so every batch queued during an
//! `fdatasync` shares the next one, and a lone writer pays one write and one sync.
//!
//! Writers of consecutive rounds wait on different condition variables, so finishing a round
//! wakes only the writers it covered, not those already queued for the next: with hundreds of
//! writers, the wake-ups, not the disk, are what limit a round.
//!
//! A batch counts as durable only once the sync that covered it returned `Ok`. A failed sync
//! poisons the log for every writer, waiting or later (see [`crate::wal`]). A write refused
//! for want of space fails every batch of its round, and the log stays usable.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::fs::Fs;
use crate::wal::{Wal, WalBatch, WalError};

struct Queue {
    batches: Vec<WalBatch>,
    /// The number of batches ever queued; a batch's ticket is its position in that count.
    queued: u64,
    /// Every ticket up to here is durable.
    durable: u64,
    /// The round that will take the batches queued now.
    next_round: u64,
    /// Tickets refused because the disk was full, with the segment's path.
    refused: Vec<(std::ops::RangeInclusive<u64>, PathBuf)>,
    /// Set when a sync failed: the log is unusable.
    failure: Option<String>,
    /// Rounds completed.
    rounds: u64,
    shutdown: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signals the flusher that batches are queued (or that it should stop).
    work: Condvar,
    /// Round `r`'s writers wait on `done[r % 2]`.
    done: [Condvar; 2],
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
                durable: 0,
                next_round: 0,
                refused: Vec::new(),
                failure: None,
                rounds: 0,
                shutdown: false,
            }),
            work: Condvar::new(),
            done: [Condvar::new(), Condvar::new()],
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
        let mut queue = lock(&self.shared.queue);
        if queue.failure.is_some() {
            return Err(WalError::Poisoned);
        }
        queue.batches.push(batch);
        queue.queued += 1;
        let ticket = queue.queued;
        let round = queue.next_round;
        self.shared.work.notify_one();
        loop {
            if let Some(position) = queue.refused.iter().position(|(r, _)| r.contains(&ticket)) {
                let path = queue.refused[position].1.clone();
                if *queue.refused[position].0.end() == ticket {
                    queue.refused.remove(position);
                }
                return Err(WalError::StorageFull { path });
            }
            if queue.durable >= ticket {
                return Ok(());
            }
            if queue.failure.is_some() {
                return Err(WalError::Poisoned);
            }
            queue = self.shared.done[(round % 2) as usize]
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
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
            queue = shared
                .work
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if queue.batches.is_empty() && queue.shutdown {
            return;
        }
        let batches = std::mem::take(&mut queue.batches);
        let round = queue.next_round;
        queue.next_round += 1;
        let covered = queue.queued;
        let first = covered - batches.len() as u64 + 1;
        drop(queue);
        let result = write_and_sync(wal, &batches);
        let mut queue = lock(&shared.queue);
        queue.rounds += 1;
        match result {
            Ok(()) => queue.durable = covered,
            // A write failed for want of space. Some batches of the round may have reached
            // the disk with an earlier segment; none is acknowledged, which is always safe
            // (an unacknowledged write may or may not have happened).
            Err(WalError::StorageFull { path }) => queue.refused.push((first..=covered, path)),
            Err(error) => queue.failure = Some(error.to_string()),
        }
        let failed = queue.failure.is_some();
        drop(queue);
        shared.done[(round % 2) as usize].notify_all();
        if failed {
            // Wake the next round's writers too: nothing will be durable any more.
            shared.done[((round + 1) % 2) as usize].notify_all();
            let mut queue = lock(&shared.queue);
            queue.batches.clear();
            while !queue.shutdown {
                queue = shared
                    .work
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
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
