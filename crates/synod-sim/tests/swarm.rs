//! Random swarm seeds: every checker passes on both engines.

use synod_sim::sim::engines::{EngineKind, Target, run_seed};
use synod_sim::sim::runner::run_seeds_parallel;

fn assert_swarm_passes(target: Target, seeds: u64) {
    let engine = target.engine;
    let summary = run_seeds_parallel(target, None, 0, seeds, 2, &|failure| eprintln!("{failure}"));
    assert!(
        summary.failures.is_empty(),
        "{engine}: {} seeds failed, first: {}",
        summary.failures.len(),
        summary.failures[0]
    );
    assert_eq!(summary.passed, seeds);
    assert!(summary.operations > 0 && summary.messages_delivered > 0);
}

/// Swarm schedules include membership changes: some seeds must actually change the
/// configuration, or the swarm tests say nothing about reconfiguration.
fn assert_some_seeds_reconfigure(engine: EngineKind) {
    let changed = (0..100)
        .filter_map(|seed| run_seed(Target::engine(engine), seed).ok())
        .filter(|report| report.membership_changes > 0)
        .count();
    eprintln!("{engine}: {changed} of 100 seeds changed the membership");
    assert!(
        changed >= 10,
        "{engine}: only {changed} of 100 seeds reconfigured"
    );
}

#[test]
fn swarm_schedules_change_the_membership() {
    assert_some_seeds_reconfigure(EngineKind::Raft);
    assert_some_seeds_reconfigure(EngineKind::MultiPaxos);
}

#[test]
fn raft_passes_300_swarm_seeds() {
    assert_swarm_passes(Target::engine(EngineKind::Raft), 300);
}

#[test]
fn multipaxos_passes_300_swarm_seeds() {
    assert_swarm_passes(Target::engine(EngineKind::MultiPaxos), 300);
}

/// Flexible Paxos (Howard et al. 2016): Phase-2 quorums of two, so Phase 1 needs all but one
/// member (all of a 3-member cluster but one, 4 of 5, 6 of 7). Safety rests on every Phase-1
/// quorum meeting every Phase-2 quorum, not on majorities.
#[test]
fn multipaxos_with_unequal_flexible_quorums_passes_200_swarm_seeds() {
    let target = Target {
        phase2_quorum: Some(2),
        ..Target::engine(EngineKind::MultiPaxos)
    };
    assert_swarm_passes(target, 200);
}

/// Both engines on the real `synod-storage` (over a fault-injecting file system): every
/// restart recovers with the real recovery code, which must return exactly what the member
/// had made durable.
#[test]
fn both_engines_pass_100_swarm_seeds_on_real_storage() {
    for engine in [EngineKind::Raft, EngineKind::MultiPaxos] {
        let target = Target {
            real_storage: true,
            ..Target::engine(engine)
        };
        assert_swarm_passes(target, 100);
    }
}
