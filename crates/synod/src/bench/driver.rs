//! The closed loops: `--clients` tasks, each with one request outstanding at a time, a warm-up
//! that is not recorded, and a measurement that ends by the clock or by count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etcd_client::KvClient;
use hdrhistogram::Histogram;

use super::progress::Progress;
use super::workload::{Generator, Outcome, Spec};

/// The largest latency the histogram holds, in microseconds (a minute; longer ones are
/// recorded as a minute). Requests time out long before.
pub const LATENCY_US_MAX: u64 = 60_000_000;

/// How long a client pauses after a failed request, so that a member that refuses
/// connections is not hammered in a tight loop (which would also starve the other clients).
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// How often the progress bar is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// How a run is timed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Concurrent closed-loop clients. Invariant: at least 1.
    pub clients: usize,
    /// How long requests are sent, and not recorded, before measuring.
    pub warmup: Duration,
    /// How long to measure: the run ends after this even if `total` is not reached.
    pub duration: Duration,
    /// Stop after this many measured requests (successful or not).
    pub total: Option<u64>,
    /// Give up on one request after this long (an error).
    pub request_timeout: Duration,
}

/// What a run measured.
pub struct Tally {
    /// Latencies of the requests that returned without error (conflicts included), in
    /// microseconds.
    pub latency_us: Histogram<u64>,
    /// Requests that failed or timed out.
    pub errors: u64,
    /// Compare-and-swaps whose compare failed (included in `latency_us`).
    pub conflicts: u64,
    /// The first error's message, if any.
    pub first_error: Option<String>,
    /// From the start of measurement to the return of the last request.
    pub elapsed: Duration,
}

impl Tally {
    fn empty() -> Tally {
        Tally {
            latency_us: new_histogram(),
            errors: 0,
            conflicts: 0,
            first_error: None,
            elapsed: Duration::ZERO,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with the same bounds add");
        self.errors += other.errors;
        self.conflicts += other.conflicts;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Counters the clients share with the progress bar and with each other.
#[derive(Default)]
struct Shared {
    /// Measured requests claimed so far (a client claims one before sending it, so that with
    /// `--total` exactly `total` are sent).
    claimed: AtomicU64,
    /// Measured requests that have returned.
    completed: AtomicU64,
    /// Measured requests that failed.
    errors: AtomicU64,
}

/// Runs the plan: client `i` sends through `kv_clients[i mod len]`. Returns when every client
/// has stopped, which is at most one request timeout after the end of the plan.
pub async fn run(spec: &Spec, plan: &Plan, kv_clients: &[KvClient], progress: &Progress) -> Tally {
    assert!(plan.clients >= 1, "a run without clients");
    assert!(!kv_clients.is_empty(), "a run without connections");
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let deadline = measure_from + plan.duration;
    let shared = Arc::new(Shared::default());
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..plan.clients {
        let kv = kv_clients[client % kv_clients.len()].clone();
        let generator = Generator::new(spec, client as u64);
        let shared = shared.clone();
        let plan = plan.clone();
        tasks.spawn(client_loop(
            kv,
            generator,
            plan,
            measure_from,
            deadline,
            shared,
        ));
    }

    let mut tally = Tally::empty();
    let mut last_return = Instant::now();
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    while !tasks.is_empty() {
        tokio::select! {
            joined = tasks.join_next() => {
                if let Some(joined) = joined {
                    tally.merge(joined.expect("a benchmark client panicked"));
                    last_return = Instant::now();
                }
            }
            _ = ticker.tick() => show_progress(progress, plan, &shared, measure_from),
        }
    }
    tally.elapsed = last_return.saturating_duration_since(measure_from);
    let completed = shared.completed.load(Ordering::Relaxed);
    assert_eq!(
        completed,
        tally.latency_us.len() + tally.errors,
        "every measured request is either recorded or an error"
    );
    if let Some(total) = plan.total {
        assert!(completed <= total, "{completed} requests sent of {total}");
    }
    tally
}

/// One closed-loop client. Bounded: it sends no request after `deadline` (nor after `total`
/// measured ones), and each request gives up after the request timeout.
async fn client_loop(
    mut kv: KvClient,
    mut generator: Generator,
    plan: Plan,
    measure_from: Instant,
    deadline: Instant,
    shared: Arc<Shared>,
) -> Tally {
    let mut tally = Tally::empty();
    loop {
        let sent_at = Instant::now();
        if sent_at >= deadline {
            break;
        }
        // A request that starts during the warm-up is never recorded, even if it ends after.
        let measured = sent_at >= measure_from;
        if measured
            && let Some(total) = plan.total
            && shared.claimed.fetch_add(1, Ordering::Relaxed) >= total
        {
            break;
        }
        let outcome =
            match tokio::time::timeout(plan.request_timeout, generator.execute(&mut kv)).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::Failed(format!("no answer within {:?}", plan.request_timeout)),
            };
        let latency_us = (sent_at.elapsed().as_micros() as u64).clamp(1, LATENCY_US_MAX);
        let failed = matches!(outcome, Outcome::Failed(_));
        if measured {
            match outcome {
                Outcome::Done => tally.latency_us.saturating_record(latency_us),
                Outcome::Conflict => {
                    tally.latency_us.saturating_record(latency_us);
                    tally.conflicts += 1;
                }
                Outcome::Failed(message) => {
                    tally.errors += 1;
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    tally.first_error.get_or_insert(message);
                }
            }
            shared.completed.fetch_add(1, Ordering::Relaxed);
        }
        if failed {
            let pause_until = (Instant::now() + ERROR_PAUSE).min(deadline);
            tokio::time::sleep_until(pause_until.into()).await;
        }
    }
    tally
}

fn show_progress(progress: &Progress, plan: &Plan, shared: &Shared, measure_from: Instant) {
    let now = Instant::now();
    if now < measure_from {
        progress.set_message(format!(
            "warming up ({:.1} s left)",
            (measure_from - now).as_secs_f64()
        ));
        return;
    }
    let elapsed = now - measure_from;
    let completed = shared.completed.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let rate = completed as f64 / elapsed.as_secs_f64().max(1e-3);
    progress.set_message(format!(
        "{completed} requests, {rate:.0}/s, {errors} errors"
    ));
    match plan.total {
        Some(total) => progress.set_fraction(completed, total),
        None => progress.set_fraction(elapsed.as_millis() as u64, plan.duration.as_millis() as u64),
    }
}

/// An empty latency histogram: 1 µs to a minute, three significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}
