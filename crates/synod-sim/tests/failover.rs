//! A crashed leader's connections close at once, and the survivors are told
//! (`Engine::peer_unreachable`): they elect a new leader and commit without waiting out an
//! election timeout. Times are simulated, so the bound is exact for every seed.

use synod_sim::sim::engines::{EngineKind, run_failover};
use synod_sim::sim::failover::summarize;

/// The simulator's engines time out elections after 15 to 30 ticks of 10 ms.
const ELECTION_TIMEOUT_MIN_US: u64 = 150_000;

fn assert_failover_beats_the_election_timeout(engine: EngineKind) {
    let results: Vec<_> = (0..200).map(|seed| run_failover(engine, seed)).collect();
    for (seed, result) in results.iter().enumerate() {
        let us = result
            .clone()
            .unwrap_or_else(|e| panic!("{engine} seed {seed}: {e:?}"));
        assert!(
            us < ELECTION_TIMEOUT_MIN_US,
            "{engine} seed {seed}: {us} us from the crash to a commit, not under the minimum \
             election timeout: the survivors waited for their timers"
        );
    }
    let summary = summarize(&results, 10_000);
    assert_eq!(summary.failed, 0);
}

#[test]
fn raft_survivors_told_of_the_crash_commit_before_an_election_timeout() {
    assert_failover_beats_the_election_timeout(EngineKind::Raft);
}

#[test]
fn multipaxos_survivors_told_of_the_crash_commit_before_an_election_timeout() {
    assert_failover_beats_the_election_timeout(EngineKind::MultiPaxos);
}
