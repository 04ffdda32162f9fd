//! Random swarm seeds: every checker passes on the Raft engine.

use synod_sim::sim::engines::{EngineKind, Target};
use synod_sim::sim::runner::run_seeds_parallel;

#[test]
fn raft_passes_300_swarm_seeds() {
    let target = Target {
        engine: EngineKind::Raft,
        mutant: None,
    };
    let summary = run_seeds_parallel(target, None, 0, 300, 2, &|failure| eprintln!("{failure}"));
    assert!(
        summary.failures.is_empty(),
        "{} seeds failed, first: {}",
        summary.failures.len(),
        summary.failures[0]
    );
    assert_eq!(summary.passed, 300);
    assert!(summary.operations > 0 && summary.messages_delivered > 0);
}
