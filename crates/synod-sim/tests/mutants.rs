//! The checkers can fail: each deliberately broken engine is caught within 2,000 seeds.
//!
//! `figure8` is run on its named scenario: committing an earlier term's entry by counting is
//! only observable in a narrow interleaving (Raft Figure 8), which random swarm schedules
//! almost never produce once followers learn commit indexes promptly. `no-persist-promise`
//! runs on `acceptor-restart` for the same reason: a forgotten promise only matters if the
//! acceptor restarts between promising and accepting, and an older leader then reaches it
//! first; 2,000 swarm seeds did not produce that.

use synod_sim::sim::engines::{Mutant, Target, run_scenario, run_seed};

const SEEDS: u64 = 2_000;

fn assert_caught(mutant: Mutant, scenario: Option<&str>) {
    let target = Target::mutant(mutant);
    // Broken engines may panic on their own invariant checks; keep the output quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let found = (0..SEEDS).find_map(|seed| {
        let result = match scenario {
            Some(name) => run_scenario(target, name, seed),
            None => run_seed(target, seed),
        };
        result.err()
    });
    let _ = std::panic::take_hook();
    let failure = found.unwrap_or_else(|| panic!("mutant {mutant} survived {SEEDS} seeds"));
    eprintln!(
        "mutant {mutant}: caught by {} at seed {}",
        failure.checker, failure.seed
    );
}

#[test]
fn mutant_figure8_is_caught() {
    assert_caught(Mutant::Raft(synod_raft::Mutant::Figure8), Some("figure8"));
}

#[test]
fn mutant_no_log_check_is_caught() {
    assert_caught(Mutant::Raft(synod_raft::Mutant::NoLogCheck), None);
}

#[test]
fn mutant_early_ack_is_caught() {
    assert_caught(Mutant::Raft(synod_raft::Mutant::EarlyAck), None);
}

#[test]
fn mutant_stale_read_is_caught() {
    assert_caught(Mutant::Raft(synod_raft::Mutant::StaleRead), None);
}

#[test]
fn mutant_ignore_promise_value_is_caught() {
    assert_caught(Mutant::Paxos(synod_paxos::Mutant::IgnorePromiseValue), None);
}

#[test]
fn mutant_no_persist_promise_is_caught() {
    assert_caught(
        Mutant::Paxos(synod_paxos::Mutant::NoPersistPromise),
        Some("acceptor-restart"),
    );
}

#[test]
fn mutant_apply_out_of_order_is_caught() {
    assert_caught(Mutant::Paxos(synod_paxos::Mutant::ApplyOutOfOrder), None);
}
