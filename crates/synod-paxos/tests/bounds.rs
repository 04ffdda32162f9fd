//! Bounds on what one member holds: input that names absurd slots, or a leader flooded with
//! proposals, neither panics a member nor makes it allocate without bound ("Paxos Made Live"
//! §5.2: every input is checked). Found by review; each test failed before its fix.

use bytes::Bytes;
use rand_core::SeedableRng;
use rand_xorshift::XorShiftRng;
use synod_core::{Entry, Envelope, Membership, Payload, ProposeError, Role};
use synod_paxos::log::MAX_SLOTS_AHEAD;
use synod_paxos::{Config, Message, PaxosNode, RestoreState};

/// Carries out every ready batch, persisting at once; returns what the member sent.
fn drain(node: &mut PaxosNode) -> Vec<Envelope<Message>> {
    let mut out = Vec::new();
    for _ in 0..1_000 {
        if !node.has_ready() {
            return out;
        }
        let mut ready = node.ready();
        out.append(&mut ready.messages);
        if let Some(write) = ready.write.take() {
            out.extend(node.persisted(write));
        }
    }
    panic!("the member never ran out of work");
}

/// Member 1 of {1,2,3}, campaigning: returns it with its ballot and the Prepare's `from`.
fn candidate() -> (PaxosNode, u64, u64) {
    let state = RestoreState::bootstrap(Membership::with_voters([1, 2, 3]));
    let config = Config {
        check_invariants: true,
        ..Config::new(1)
    };
    let rng = Box::new(XorShiftRng::seed_from_u64(1));
    let mut node = PaxosNode::restore(config, rng, state).expect("valid");
    for _ in 0..1_000 {
        node.tick();
        for envelope in drain(&mut node) {
            if let Message::Prepare { ballot, from, .. } = envelope.message {
                return (node, ballot, from);
            }
        }
    }
    panic!("member 1 never campaigned");
}

fn promise(ballot: u64, from: u64, entries: Vec<Entry>) -> Message {
    Message::Promise {
        ballot,
        from,
        commit: 0,
        snapshot: 0,
        entries,
    }
}

fn noop(term: u64, index: u64) -> Entry {
    Entry {
        term,
        index,
        payload: Payload::Noop,
    }
}

/// A promise reporting a slot beyond what a leader re-proposes at once: the leader recovers
/// up to its horizon, does not call itself leader yet, takes no proposals, and resumes Phase 1
/// after the horizon once the recovered slots are chosen.
#[test]
fn recovery_beyond_the_horizon_is_cut_short_and_resumed() {
    let (mut node, ballot, from) = candidate();
    let far = from + MAX_SLOTS_AHEAD + 5;
    node.step(2, promise(ballot, from, vec![noop(0, far)]));
    let _ = drain(&mut node);
    assert_eq!(node.role(), Role::Candidate, "Phase 1 is not complete");
    assert_eq!(
        node.propose(Bytes::from_static(b"x")),
        Err(ProposeError::LeaderNotReady)
    );
    let horizon = from - 1 + MAX_SLOTS_AHEAD;
    node.step(
        2,
        Message::Accepted {
            ballot,
            top: horizon,
            commit: 0,
            read_round: 0,
        },
    );
    let sent = drain(&mut node);
    assert_eq!(node.status().commit, horizon);
    assert!(
        sent.iter().any(|e| matches!(
            e.message,
            Message::Prepare { from: f, .. } if f == horizon + 1
        )),
        "Phase 1 resumes after the horizon"
    );
    // The second Phase 1 adopts the far slot and fills the rest.
    node.step(2, promise(ballot, horizon + 1, vec![noop(0, far)]));
    let _ = drain(&mut node);
    assert_eq!(node.role(), Role::Leader);
    assert!(node.propose(Bytes::from_static(b"x")).is_ok());
}

/// A promise naming the last slots of the index space is refused as malformed, in bounded
/// time.
#[test]
fn a_promise_naming_an_absurd_slot_is_refused() {
    let (mut node, ballot, from) = candidate();
    node.step(2, promise(ballot, from, vec![noop(0, u64::MAX - 1)]));
    let _ = drain(&mut node);
    assert_eq!(node.role(), Role::Candidate);
}

/// A leader that cannot reach its followers stops taking proposals once it holds
/// `MAX_SLOTS_AHEAD` unchosen slots, with an error the client can retry on.
#[test]
fn a_cut_off_leader_refuses_proposals_beyond_its_horizon() {
    let (mut node, ballot, from) = candidate();
    node.step(2, promise(ballot, from, vec![]));
    let _ = drain(&mut node);
    assert_eq!(node.role(), Role::Leader);
    for _ in 0..MAX_SLOTS_AHEAD {
        node.propose(Bytes::from_static(b"x"))
            .expect("within the horizon");
    }
    assert_eq!(
        node.propose(Bytes::from_static(b"x")),
        Err(ProposeError::Overloaded)
    );
    let _ = drain(&mut node);
    node.step(
        2,
        Message::Accepted {
            ballot,
            top: MAX_SLOTS_AHEAD,
            commit: 0,
            read_round: 0,
        },
    );
    let _ = drain(&mut node);
    assert_eq!(node.status().commit, MAX_SLOTS_AHEAD);
    assert!(node.propose(Bytes::from_static(b"x")).is_ok());
}

/// A disk whose commit is ahead of its entries: the commit is clamped to what the entries back,
/// and a stray entry far ahead is not stored (it would need a slot vector of that size).
#[test]
fn restore_clamps_an_unbacked_commit_without_a_huge_allocation() {
    let mut state = RestoreState::bootstrap(Membership::with_voters([1, 2, 3]));
    state.hard_state.commit = 1 << 40;
    state.entries = vec![noop(0, 1), noop(0, 1 << 40)];
    let config = Config {
        check_invariants: true,
        ..Config::new(1)
    };
    let rng = Box::new(XorShiftRng::seed_from_u64(1));
    let node = PaxosNode::restore(config, rng, state).expect("valid");
    assert_eq!(node.status().commit, 1);
    assert_eq!(node.status().last_index, 1);
}
