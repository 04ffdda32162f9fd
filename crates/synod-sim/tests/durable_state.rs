//! The engines' hard states encode for storage and decode back; anything else is refused.

use synod_core::DurableState;

fn round_trip<H: DurableState + PartialEq + std::fmt::Debug>(value: H) {
    let mut bytes = Vec::new();
    value.encode(&mut bytes);
    assert_eq!(H::decode(&bytes), Some(value));
    assert_eq!(H::decode(&bytes[..bytes.len() - 1]), None);
    bytes.push(0);
    assert_eq!(H::decode(&bytes), None);
}

#[test]
fn raft_hard_state_round_trips() {
    round_trip(synod_raft::HardState {
        term: 7,
        vote: Some(3),
        commit: 99,
    });
    round_trip(synod_raft::HardState {
        term: u64::MAX,
        vote: None,
        commit: 0,
    });
}

#[test]
fn paxos_hard_state_round_trips() {
    round_trip(synod_paxos::HardState {
        promised: 0x1_0002,
        commit: 12,
    });
}
