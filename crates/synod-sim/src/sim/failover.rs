//! Failover time: how long a cluster takes to commit again after its leader crashes.
//!
//! Each trial is one seed: a quiet three-member cluster (network delay and disk latency drawn
//! from the seed) elects a leader and commits writes for a while; then the leader crashes, and
//! from that moment a write is offered to whichever member leads, once per tick, until one
//! commits. The figure is the time from the crash to that commit, in engine ticks.

use synod_core::{Engine, NodeId, Proposal, Role};

use super::{BootFn, FaultProfile, Micros, Sim, SimOptions};

const MS: Micros = 1_000;

/// Why a trial produced no figure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrialError {
    /// No first leader within the time allowed.
    NoFirstLeader,
    /// Nothing committed within the time allowed after the crash.
    NoRecovery,
}

/// Runs one failover trial; returns the time from the leader's crash to the first commit of a
/// write proposed after it, in microseconds.
pub fn failover_trial<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Micros, TrialError> {
    let mut options = SimOptions::calm(3);
    options.clients = 0;
    options.faults = FaultProfile {
        delay_max: 2 * MS + seed % 5 * MS,
        disk_latency_max: 1 + seed % 3 * MS,
        ..FaultProfile::none()
    };
    let tick = options.tick;
    let mut sim = Sim::new(seed, options, boot).without_random_faults();
    let all: Vec<NodeId> = (1..=3).collect();
    let leader = sim
        .wait_for_leader(&all, 5_000 * MS)
        .ok_or(TrialError::NoFirstLeader)?;
    // Steady state: a write per tick for a while, so that the crash lands mid-stream at a
    // point drawn from the seed.
    let steady = 200 * MS + seed % 300 * MS;
    let end = sim.now() + steady;
    let mut value = 0;
    while sim.now() < end {
        value += 1;
        sim.propose_write(leader, 1, value);
        sim.run_for(tick);
    }
    let crashed_at = sim.now();
    sim.crash(leader);
    let survivors: Vec<NodeId> = all.iter().copied().filter(|&id| id != leader).collect();
    let deadline = crashed_at + 10_000 * MS;
    let mut offered: Vec<(NodeId, Proposal)> = Vec::new();
    let mut next_offer = crashed_at;
    while sim.now() < deadline {
        if sim.now() >= next_offer {
            next_offer = sim.now() + tick;
            if let Some(id) = survivors.iter().copied().find(|&id| {
                sim.engine(id)
                    .is_some_and(|e| e.status().soft_state.role == Role::Leader)
            }) {
                value += 1;
                if let Some(proposal) = sim.propose_write_at(id, 1, value) {
                    offered.push((id, proposal));
                }
            }
        }
        // The write committed if the member that placed it has committed its index and
        // still holds the entry it placed there (same index and term: the same proposal).
        let committed = offered.iter().any(|&(id, proposal)| {
            sim.engine(id).is_some_and(|e| {
                e.status().commit >= proposal.index
                    && e.log_entry(proposal.index)
                        .is_some_and(|entry| entry.term == proposal.term)
            })
        });
        if committed {
            return Ok(sim.now() - crashed_at);
        }
        sim.run_for(100);
    }
    Err(TrialError::NoRecovery)
}

/// Percentiles of a set of failover times.
#[derive(Clone, Debug, PartialEq)]
pub struct FailoverSummary {
    /// Trials that produced a figure.
    pub trials: usize,
    /// Trials that did not (no leader, or no commit in 10 s).
    pub failed: usize,
    /// Median, in ticks.
    pub p50_ticks: f64,
    /// 99th percentile, in ticks.
    pub p99_ticks: f64,
    /// The longest, in ticks.
    pub max_ticks: f64,
}

/// Summarises trial results given in microseconds, with `tick` microseconds to a tick.
pub fn summarize(results: &[Result<Micros, TrialError>], tick: Micros) -> FailoverSummary {
    let mut times: Vec<Micros> = results.iter().filter_map(|r| r.clone().ok()).collect();
    times.sort_unstable();
    let pick = |q: f64| {
        if times.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
        times[rank - 1] as f64 / tick as f64
    };
    FailoverSummary {
        trials: times.len(),
        failed: results.len() - times.len(),
        p50_ticks: pick(0.50),
        p99_ticks: pick(0.99),
        max_ticks: pick(1.0),
    }
}
