//! Runs many seeds and sums them up: what the `synod-sim` command line prints.

use std::time::{Duration, Instant};

use super::engines::{Target, run_scenario, run_seed};
use super::{Failure, Report};

/// The outcome of running many seeds.
#[derive(Debug, Default)]
pub struct Summary {
    /// Seeds that passed.
    pub passed: u64,
    /// Seeds that failed, in seed order.
    pub failures: Vec<Failure>,
    /// Messages delivered across the passing seeds.
    pub messages_delivered: u64,
    /// Client operations recorded across the passing seeds.
    pub operations: u64,
    /// Wall-clock time taken.
    pub elapsed: Duration,
}

impl Summary {
    /// Simulated messages delivered per second of wall-clock time.
    pub fn messages_per_second(&self) -> f64 {
        self.messages_delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs one seed: a swarm schedule, or the named scenario.
pub fn run_one(target: Target, scenario: Option<&str>, seed: u64) -> Result<Report, Failure> {
    match scenario {
        Some(name) => run_scenario(target, name, seed),
        None => run_seed(target, seed),
    }
}

/// Runs every seed in `seeds`, calling `on_failure` as each failure is found.
pub fn run_seeds(
    target: Target,
    scenario: Option<&str>,
    seeds: impl IntoIterator<Item = u64>,
    mut on_failure: impl FnMut(&Failure),
) -> Summary {
    let start = Instant::now();
    let mut summary = Summary::default();
    for seed in seeds {
        match run_one(target, scenario, seed) {
            Ok(report) => {
                summary.passed += 1;
                summary.messages_delivered += report.messages_delivered;
                summary.operations += report.operations as u64;
            }
            Err(failure) => {
                on_failure(&failure);
                summary.failures.push(failure);
            }
        }
    }
    summary.elapsed = start.elapsed();
    summary
}

/// Runs seeds `first..first + count` on `jobs` threads (each thread takes every `jobs`-th
/// seed). Results do not depend on `jobs`: each seed is its own deterministic run.
pub fn run_seeds_parallel(
    target: Target,
    scenario: Option<&str>,
    first: u64,
    count: u64,
    jobs: usize,
    on_failure: &(dyn Fn(&Failure) + Sync),
) -> Summary {
    let jobs = jobs.max(1) as u64;
    let start = Instant::now();
    let parts: Vec<Summary> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|job| {
                scope.spawn(move || {
                    let seeds = (first..first + count)
                        .skip(job as usize)
                        .step_by(jobs as usize);
                    run_seeds(target, scenario, seeds, on_failure)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("simulation threads catch their own panics"))
            .collect()
    });
    let mut summary = Summary::default();
    for part in parts {
        summary.passed += part.passed;
        summary.messages_delivered += part.messages_delivered;
        summary.operations += part.operations;
        summary.failures.extend(part.failures);
    }
    summary.failures.sort_by_key(|f| f.seed);
    summary.elapsed = start.elapsed();
    summary
}
