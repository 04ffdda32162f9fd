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

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::{JoinHandle, Thread};

use crate::fs::Fs;
use crate::wal::{Wal, WalBatch, WalError};

/// A round refused for want of space: its tickets, the segment, and how many of its writers
/// have not yet been told.
struct Refused {
    tickets: std::ops::RangeInclusive<u64>,
    path: PathBuf,
    untold: u64,
}

/// Who waits for a batch: a blocked thread, or an async task.
enum Waiter {
    Thread(Thread),
    Task(Arc<Mutex<Option<Waker>>>),
}

impl Waiter {
    fn wake(&self) {
        match self {
            Waiter::Thread(thread) => thread.unpark(),
            Waiter::Task(slot) => {
                if let Some(waker) = lock(slot).take() {
                    waker.wake();
                }
            }
        }
    }
}

struct Queue {
    /// Queued batches, with who waits for each to be settled.
    batches: Vec<(WalBatch, Waiter)>,
    /// The number of batches ever queued; a batch's ticket is its position in that count.
    queued: u64,
    /// Rounds refused because the disk was full.
    refused: Vec<Refused>,
    /// Rounds completed.
    rounds: u64,
    /// The flusher is waiting for work (so a new batch must signal it).
    flusher_idle: bool,
    /// A round is being written, by the flusher or inline by a lone writer.
    in_flight: bool,
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
    /// Whether `Queue::refused` may hold anything (so that settled writers need not lock).
    any_refused: AtomicBool,
    /// `Queue::queued`, readable without the lock: the flusher watches it briefly before it
    /// sleeps, since a lone writer commits again right after it is woken.
    queued: AtomicU64,
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
                in_flight: false,
                shutdown: false,
            }),
            work: Condvar::new(),
            settled: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            any_refused: AtomicBool::new(false),
            queued: AtomicU64::new(0),
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
    ///
    /// A writer that finds nothing queued and nothing being written writes its batch itself,
    /// so that a lone writer pays one write and one sync and no hand-off to the flusher.
    pub fn commit(&self, batch: WalBatch) -> Result<(), WalError> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(WalError::Poisoned);
        }
        check_size(&batch)?;
        let mut queue = lock(&self.shared.queue);
        // Checked again under the lock: a round that failed since the check above must not be
        // overtaken by an inline write that would move `settled` past it.
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(WalError::Poisoned);
        }
        if !queue.in_flight && queue.batches.is_empty() {
            queue.in_flight = true;
            queue.queued += 1;
            let ticket = queue.queued;
            self.shared.queued.store(ticket, Ordering::Release);
            debug_assert_eq!(self.shared.settled.load(Ordering::Acquire), ticket - 1);
            drop(queue);
            let result = write_and_sync(&self.wal, std::slice::from_ref(&batch));
            let mut queue = lock(&self.shared.queue);
            queue.in_flight = false;
            queue.rounds += 1;
            let mut stranded = Vec::new();
            match &result {
                Ok(()) | Err(WalError::StorageFull { .. }) => {
                    self.shared.settled.store(ticket, Ordering::Release);
                }
                Err(_) => {
                    self.shared.failed.store(true, Ordering::Release);
                    stranded = queue.batches.drain(..).map(|(_, w)| w).collect();
                }
            }
            let wake_flusher = !queue.batches.is_empty();
            drop(queue);
            for waiter in &stranded {
                waiter.wake();
            }
            if wake_flusher {
                self.shared.work.notify_one();
            }
            return result;
        }
        drop(queue);
        let ticket = self.enqueue(batch, Waiter::Thread(std::thread::current()))?;
        loop {
            if let Some(outcome) = self.outcome(ticket) {
                return outcome;
            }
            // Unparked by the flusher once the round holding this batch is settled; a
            // spurious wake-up just checks again.
            std::thread::park();
        }
    }

    /// [`GroupCommit::commit`] for async callers: the future completes once the batch is
    /// durable. The batch is queued at the first poll; the flusher thread does the blocking
    /// I/O, so an async runtime's workers never wait on the disk.
    pub fn commit_async(&self, batch: WalBatch) -> Commit<'_, F> {
        Commit {
            log: self,
            state: CommitState::Unqueued(Some(batch)),
        }
    }

    /// Queues a batch; returns its ticket.
    fn enqueue(&self, batch: WalBatch, waiter: Waiter) -> Result<u64, WalError> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(WalError::Poisoned);
        }
        check_size(&batch)?;
        let (ticket, wake_flusher) = {
            let mut queue = lock(&self.shared.queue);
            queue.batches.push((batch, waiter));
            queue.queued += 1;
            self.shared.queued.store(queue.queued, Ordering::Release);
            (queue.queued, std::mem::take(&mut queue.flusher_idle))
        };
        if wake_flusher {
            self.shared.work.notify_one();
        }
        Ok(ticket)
    }

    /// The outcome of `ticket`, once it is settled.
    fn outcome(&self, ticket: u64) -> Option<Result<(), WalError>> {
        if self.shared.settled.load(Ordering::Acquire) >= ticket {
            if !self.shared.any_refused.load(Ordering::Acquire) {
                return Some(Ok(()));
            }
            let mut queue = lock(&self.shared.queue);
            let Some(position) = queue
                .refused
                .iter()
                .position(|r| r.tickets.contains(&ticket))
            else {
                return Some(Ok(()));
            };
            let refused = &mut queue.refused[position];
            let path = refused.path.clone();
            // Each writer of the round is told once; the record goes when all have been.
            refused.untold -= 1;
            if refused.untold == 0 {
                queue.refused.remove(position);
            }
            if queue.refused.is_empty() {
                self.shared.any_refused.store(false, Ordering::Release);
            }
            return Some(Err(WalError::StorageFull { path }));
        }
        if self.shared.failed.load(Ordering::Acquire) {
            return Some(Err(WalError::Poisoned));
        }
        None
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

/// How long the flusher watches for a new batch before it sleeps.
const SPIN_BEFORE_SLEEP: std::time::Duration = std::time::Duration::from_micros(50);

/// The flusher: takes every queued batch, writes and syncs them, wakes their writers.
fn flush_loop<F: Fs>(shared: &Shared, wal: &Mutex<Wal<F>>) {
    let mut taken = 0;
    loop {
        // A writer whose commit just finished usually queues its next one within
        // microseconds: watching for it briefly saves a sleep and a wake-up per commit.
        let spin_until = std::time::Instant::now() + SPIN_BEFORE_SLEEP;
        while shared.queued.load(Ordering::Acquire) == taken
            && std::time::Instant::now() < spin_until
        {
            std::hint::spin_loop();
        }
        let mut queue = lock(&shared.queue);
        while (queue.batches.is_empty() || queue.in_flight) && !queue.shutdown {
            queue.flusher_idle = true;
            queue = shared
                .work
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        queue.flusher_idle = false;
        if (queue.batches.is_empty() || queue.in_flight) && queue.shutdown {
            return;
        }
        queue.in_flight = true;
        let round = std::mem::take(&mut queue.batches);
        let covered = queue.queued;
        taken = covered;
        let first = covered - round.len() as u64 + 1;
        drop(queue);
        let (batches, writers): (Vec<WalBatch>, Vec<Waiter>) = round.into_iter().unzip();
        let result = write_and_sync(wal, &batches);
        let mut queue = lock(&shared.queue);
        queue.in_flight = false;
        queue.rounds += 1;
        let failed = match result {
            Ok(()) => false,
            // A write failed for want of space. Some batches of the round may have reached
            // the disk with an earlier segment; none is acknowledged, which is always safe
            // (an unacknowledged write may or may not have happened).
            Err(WalError::StorageFull { path }) => {
                queue.refused.push(Refused {
                    tickets: first..=covered,
                    path,
                    untold: covered - first + 1,
                });
                shared.any_refused.store(true, Ordering::Release);
                false
            }
            Err(_) => true,
        };
        let waiting: Vec<Waiter> = if failed {
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
            writer.wake();
        }
        if failed {
            return;
        }
    }
}

/// A batch too large for one frame is refused before it can fail a whole round.
fn check_size(batch: &WalBatch) -> Result<(), WalError> {
    let bytes = batch.encoded_len();
    if bytes > crate::wal::MAX_FRAME_BYTES {
        return Err(WalError::TooLarge { bytes });
    }
    Ok(())
}

fn write_and_sync<F: Fs>(wal: &Mutex<Wal<F>>, batches: &[WalBatch]) -> Result<(), WalError> {
    let mut wal = lock(wal);
    let result = batches
        .iter()
        .try_for_each(|batch| wal.append(batch))
        .and_then(|()| wal.sync());
    if let Err(WalError::StorageFull { .. }) = result {
        // The whole round is reported refused; what the log still queues of it goes too.
        wal.abandon_queued();
    }
    result
}

enum CommitState {
    Unqueued(Option<WalBatch>),
    Queued {
        ticket: u64,
        waker: Arc<Mutex<Option<Waker>>>,
    },
    Done,
}

/// The future of [`GroupCommit::commit_async`].
pub struct Commit<'a, F: Fs + 'static> {
    log: &'a GroupCommit<F>,
    state: CommitState,
}

impl<F: Fs + 'static> Future for Commit<'_, F> {
    type Output = Result<(), WalError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match &mut this.state {
            CommitState::Unqueued(batch) => {
                let batch = batch.take().expect("an unqueued commit holds its batch");
                // The waker is in place before the flusher can see the batch, so no wake-up
                // is lost.
                let waker = Arc::new(Mutex::new(Some(cx.waker().clone())));
                match this.log.enqueue(batch, Waiter::Task(Arc::clone(&waker))) {
                    Ok(ticket) => this.state = CommitState::Queued { ticket, waker },
                    Err(error) => {
                        this.state = CommitState::Done;
                        return Poll::Ready(Err(error));
                    }
                }
            }
            CommitState::Queued { waker, .. } => {
                // Replace the waker before checking, so that a round finishing in between
                // wakes the current task.
                *lock(waker) = Some(cx.waker().clone());
            }
            CommitState::Done => panic!("a commit future polled after it completed"),
        }
        let CommitState::Queued { ticket, .. } = this.state else {
            unreachable!("queued above");
        };
        match this.log.outcome(ticket) {
            Some(outcome) => {
                this.state = CommitState::Done;
                Poll::Ready(outcome)
            }
            None => Poll::Pending,
        }
    }
}
