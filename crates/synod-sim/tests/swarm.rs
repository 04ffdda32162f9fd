//! Random swarm seeds: every checker passes on both engines.

use synod_sim::sim::engines::{EngineKind, Target};
use synod_sim::sim::runner::run_seeds_parallel;

fn assert_swarm_passes(engine: EngineKind, seeds: u64) {
    let summary = run_seeds_parallel(Target::engine(engine), None, 0, seeds, 2, &|failure| {
        eprintln!("{failure}")
    });
    assert!(
        summary.failures.is_empty(),
        "{engine}: {} seeds failed, first: {}",
        summary.failures.len(),
        summary.failures[0]
    );
    assert_eq!(summary.passed, seeds);
    assert!(summary.operations > 0 && summary.messages_delivered > 0);
}

#[test]
fn raft_passes_300_swarm_seeds() {
    assert_swarm_passes(EngineKind::Raft, 300);
}

#[test]
fn multipaxos_passes_300_swarm_seeds() {
    assert_swarm_passes(EngineKind::MultiPaxos, 300);
}
