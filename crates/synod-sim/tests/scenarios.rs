//! Every named scenario passes on the Raft engine over a few seeds.

use synod_sim::sim::engines::{EngineKind, Target, run_scenario, scenario_names};

#[test]
fn raft_passes_every_named_scenario() {
    let target = Target {
        engine: EngineKind::Raft,
        mutant: None,
    };
    for name in scenario_names() {
        for seed in 0..10 {
            if let Err(failure) = run_scenario(target, name, seed) {
                panic!("scenario {name}: {failure}");
            }
        }
    }
}
