//! Every named scenario passes on both engines over a few seeds.

use synod_sim::sim::engines::{EngineKind, Target, run_scenario, scenario_names};

fn assert_scenarios_pass(engine: EngineKind) {
    for name in scenario_names() {
        for seed in 0..10 {
            if let Err(failure) = run_scenario(Target::engine(engine), name, seed) {
                panic!("{engine}: scenario {name}: {failure}");
            }
        }
    }
}

#[test]
fn raft_passes_every_named_scenario() {
    assert_scenarios_pass(EngineKind::Raft);
}

#[test]
fn multipaxos_passes_every_named_scenario() {
    assert_scenarios_pass(EngineKind::MultiPaxos);
}
