//! Random swarm seeds: every checker passes on the Raft engine.

use synod_sim::sim::engines::{EngineKind, Target, run_seed};

#[test]
fn raft_passes_swarm_seeds() {
    let target = Target {
        engine: EngineKind::Raft,
        mutant: None,
    };
    let mut delivered = 0;
    for seed in 0..40 {
        match run_seed(target, seed) {
            Ok(report) => {
                assert!(
                    report.elections >= 1,
                    "seed {seed}: no leader was ever elected"
                );
                delivered += report.messages_delivered;
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    assert!(delivered > 0);
}
