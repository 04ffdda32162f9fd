//! Leader election, checked section by section against the Raft paper (Ongaro & Ousterhout,
//! "In Search of an Understandable Consensus Algorithm", 2014) and Ongaro's thesis
//! ("Consensus: Bridging Theory and Practice", 2014).
//!
//! Test names start with the section they check: `section_5_2_…` for the paper,
//! `thesis_9_6_…` for the thesis.

use std::collections::BTreeSet;

use bytes::Bytes;
use synod_core::engine::Envelope;
use synod_core::{ConfChange, NodeId, Payload, ProposeError, Role, Term, TransferError};
use synod_raft::cluster::{Cluster, Disk};
use synod_raft::{AppendResult, Config, HardState, Message, MessageKind};

mod common;

use common::{ElectionSafety, others, running, stable_leader, tick_checked};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A tiny deterministic PRNG for the randomized schedules (xorshift64*).
struct Prng(u64);

impl Prng {
    fn new(seed: u64) -> Self {
        Prng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

fn any_config(c: &Cluster) -> &Config {
    c.members
        .values()
        .find_map(|m| m.node.as_ref())
        .expect("some member is running")
        .config()
}

fn election_ticks(c: &Cluster) -> u32 {
    any_config(c).election_ticks
}

fn heartbeat_ticks(c: &Cluster) -> u32 {
    any_config(c).heartbeat_ticks
}

/// Runs [`tick_checked`] rounds until `done` holds (checked before every round too). Returns
/// the number of rounds it took, or `None` if `max_ticks` rounds were not enough.
fn run_until(
    c: &mut Cluster,
    safety: &mut ElectionSafety,
    max_ticks: u32,
    mut done: impl FnMut(&Cluster) -> bool,
) -> Option<u32> {
    for tick in 0..=max_ticks {
        if done(c) {
            return Some(tick);
        }
        if tick < max_ticks {
            tick_checked(c, safety);
        }
    }
    None
}

/// Elects a leader and lets a few heartbeats go round, so that every member is up to date.
fn elect(c: &mut Cluster, safety: &mut ElectionSafety) -> NodeId {
    let et = election_ticks(c);
    run_until(c, safety, 20 * et, |c| stable_leader(c).is_some()).expect("a leader is elected");
    let leader = stable_leader(c).expect("a leader is elected");
    let hb = heartbeat_ticks(c);
    for _ in 0..hb + 1 {
        tick_checked(c, safety);
    }
    assert_eq!(stable_leader(c), Some(leader), "the new leader is stable");
    leader
}

/// Removes and returns every message in flight that matches `keep`.
fn take_matching(
    c: &mut Cluster,
    mut keep: impl FnMut(&Envelope<Message>) -> bool,
) -> Vec<Envelope<Message>> {
    let mut taken = Vec::new();
    let mut rest = std::collections::VecDeque::new();
    for envelope in c.network.drain(..) {
        if keep(&envelope) {
            taken.push(envelope);
        } else {
            rest.push_back(envelope);
        }
    }
    c.network = rest;
    taken
}

fn is_vote_request(e: &Envelope<Message>) -> bool {
    matches!(
        e.message.kind,
        MessageKind::RequestVote {
            pre_vote: false,
            ..
        }
    )
}

fn is_pre_vote_request(e: &Envelope<Message>) -> bool {
    matches!(
        e.message.kind,
        MessageKind::RequestVote { pre_vote: true, .. }
    )
}

fn is_vote_response(e: &Envelope<Message>) -> bool {
    matches!(
        e.message.kind,
        MessageKind::RequestVoteResponse {
            pre_vote: false,
            ..
        }
    )
}

fn is_timeout_now(e: &Envelope<Message>) -> bool {
    matches!(e.message.kind, MessageKind::TimeoutNow)
}

/// A RequestVote (or pre-vote request) as `from` would send it.
fn vote_request(
    from: NodeId,
    to: NodeId,
    term: Term,
    last_log_index: u64,
    last_log_term: Term,
    pre_vote: bool,
    transfer: bool,
) -> Envelope<Message> {
    Envelope {
        from,
        to,
        message: Message {
            term,
            kind: MessageKind::RequestVote {
                pre_vote,
                last_log_index,
                last_log_term,
                transfer,
            },
        },
    }
}

/// The (term, granted) of every real-vote answer from `from` to `to` in flight, removed from
/// the network.
fn take_vote_answers(c: &mut Cluster, from: NodeId, to: NodeId) -> Vec<(Term, bool)> {
    take_matching(c, |e| e.from == from && e.to == to && is_vote_response(e))
        .into_iter()
        .map(|e| match e.message.kind {
            MessageKind::RequestVoteResponse { granted, .. } => (e.message.term, granted),
            _ => unreachable!(),
        })
        .collect()
}

fn config_with(pre_vote: bool, check_quorum: bool) -> impl Fn(NodeId) -> Config + 'static {
    move |id| {
        let mut config = Config::new(id);
        config.pre_vote = pre_vote;
        config.check_quorum = check_quorum;
        config
    }
}

// ---------------------------------------------------------------------------------------------
// §5.2 Leader election.

/// §5.2: servers start as followers, nobody campaigns before the minimum election timeout, and
/// then exactly one member wins, with the votes of a majority, and every member learns of it.
#[test]
fn section_5_2_initial_election_elects_exactly_one_leader_with_3_and_5_members() {
    for size in [3u64, 5] {
        for seed in 0..10 {
            let mut c = Cluster::new(size, seed);
            let mut safety = ElectionSafety::default();
            let et = election_ticks(&c);
            for id in c.ids() {
                assert_eq!(c.node(id).role(), Role::Follower, "size {size} seed {seed}");
                assert_eq!(c.node(id).term(), 0);
            }
            // No election timeout is shorter than `election_ticks`.
            for _ in 0..et - 1 {
                tick_checked(&mut c, &mut safety);
            }
            for id in c.ids() {
                let node = c.node(id);
                assert_eq!(
                    (node.role(), node.term()),
                    (Role::Follower, 0),
                    "size {size} seed {seed}: node {id} campaigned before election_ticks"
                );
            }
            run_until(&mut c, &mut safety, 20 * et, |c| stable_leader(c).is_some())
                .expect("a leader within 20 election timeouts");
            let leader = stable_leader(&c).unwrap();
            for _ in 0..heartbeat_ticks(&c) + 1 {
                tick_checked(&mut c, &mut safety);
            }
            let term = c.node(leader).term();
            assert!(term >= 1, "size {size} seed {seed}");
            assert_eq!(
                c.leaders(),
                vec![(leader, term)],
                "size {size} seed {seed}: one leader"
            );
            let mut voted_for_leader = 0;
            for id in c.ids() {
                let node = c.node(id);
                assert_eq!(
                    node.term(),
                    term,
                    "size {size} seed {seed}: node {id}'s term"
                );
                assert_eq!(
                    node.leader(),
                    Some(leader),
                    "size {size} seed {seed}: node {id}"
                );
                if node.vote() == Some(leader) {
                    voted_for_leader += 1;
                }
            }
            assert_eq!(
                c.node(leader).vote(),
                Some(leader),
                "a candidate votes for itself"
            );
            assert!(
                voted_for_leader * 2 > size,
                "size {size} seed {seed}: the leader holds only {voted_for_leader} votes"
            );
            // §8: the new leader's no-op of its own term commits everywhere.
            let last = c.node(leader).log().last_index();
            let noop = c.node(leader).log().entry(last).unwrap().clone();
            assert_eq!((noop.term, noop.payload), (term, Payload::Noop));
            for id in c.ids() {
                assert_eq!(
                    c.node(id).log().committed(),
                    last,
                    "size {size} seed {seed}"
                );
            }
        }
    }
}

/// §5.2: when the leader fails (here: is cut off), the others time out, hold an election in a
/// later term and elect a new leader; the old one follows it once it can hear it again.
#[test]
fn section_5_2_reelection_after_the_leader_is_isolated() {
    for size in [3u64, 5] {
        for seed in 0..10 {
            let mut c = Cluster::new(size, seed);
            let mut safety = ElectionSafety::default();
            let et = election_ticks(&c);
            let old = elect(&mut c, &mut safety);
            let old_term = c.node(old).term();
            c.isolate(old);
            run_until(&mut c, &mut safety, 10 * et, |c| {
                c.leaders()
                    .iter()
                    .any(|&(id, term)| id != old && term > old_term)
            })
            .unwrap_or_else(|| panic!("size {size} seed {seed}: no re-election"));
            let (new, new_term) = *c.leaders().iter().find(|&&(id, _)| id != old).unwrap();
            assert!(new_term > old_term);
            c.heal();
            run_until(&mut c, &mut safety, 4 * et, |c| {
                c.node(old).leader() == Some(new) && c.leaders() == vec![(new, new_term)]
            })
            .unwrap_or_else(|| {
                panic!("size {size} seed {seed}: old leader {old} did not follow {new}")
            });
            for id in c.ids() {
                assert_eq!(
                    c.node(id).term(),
                    new_term,
                    "size {size} seed {seed}: node {id}"
                );
            }
        }
    }
}

/// §5.2 / Figure 3 Election Safety: on 7 members, with messages reordered, delayed and lost,
/// partitions, isolated leaders, crashes and restarts, never two leaders in one term. Checked
/// after every tick and every delivered message, over 50 seeds and all four pre-vote /
/// check-quorum combinations.
#[test]
fn section_5_2_election_safety_many_elections_on_seven_members() {
    const TICKS: u32 = 600;
    let (mut total_elections, mut total_overlaps) = (0, 0);
    for seed in 0..50u64 {
        let pre_vote = seed % 2 == 0;
        let check_quorum = seed % 4 < 2;
        let mut c = Cluster::with_config(7, seed, config_with(pre_vote, check_quorum));
        c.loss = 0.03;
        let mut rng = Prng::new(seed + 1000);
        let mut safety = ElectionSafety::default();
        let mut crashed: Option<NodeId> = None;
        for tick in 0..TICKS {
            if tick % 40 == 39 {
                if let Some(id) = crashed.take() {
                    c.restart(id);
                }
                c.heal();
                match rng.below(4) {
                    0 => {}
                    1 => {
                        if let Some(leader) = c.leader() {
                            c.isolate(leader);
                        }
                    }
                    2 => {
                        let size = 1 + rng.below(3);
                        let mut side = BTreeSet::new();
                        while side.len() < size as usize {
                            side.insert(1 + rng.below(7));
                        }
                        c.partition(&side.into_iter().collect::<Vec<_>>());
                    }
                    _ => {
                        let id = c.leader().unwrap_or(1 + rng.below(7));
                        c.crash(id);
                        crashed = Some(id);
                    }
                }
            }
            // Ticks, with some skipped so that clocks drift apart.
            for id in c.ids() {
                if running(&c, id) && rng.percent(90) {
                    c.node_mut(id).tick();
                }
                c.process(id);
                safety.check(&c);
            }
            let leaders = c.leaders();
            if !leaders.is_empty() && rng.percent(30) {
                let (leader, _) = leaders[rng.below(leaders.len() as u64) as usize];
                c.propose(leader, b"x");
                safety.check(&c);
            }
            // Deliver most of what is in flight, in random order; the rest waits.
            let budget = c.network.len() * 9 / 10 + 1;
            for _ in 0..budget {
                if c.network.is_empty() {
                    break;
                }
                let i = rng.below(c.network.len() as u64) as usize;
                let envelope = c.network.remove(i).unwrap();
                c.deliver(envelope);
                safety.check(&c);
            }
        }
        if let Some(id) = crashed.take() {
            c.restart(id);
        }
        c.heal();
        c.loss = 0.0;
        let et = election_ticks(&c);
        run_until(&mut c, &mut safety, 40 * et, |c| stable_leader(c).is_some())
            .unwrap_or_else(|| panic!("seed {seed}: no leader after healing"));
        c.check_state_machine_safety();
        assert!(
            safety.elected_terms() >= 4,
            "seed {seed}: only {} elections; the schedule is too gentle to test anything",
            safety.elected_terms()
        );
        total_elections += safety.elected_terms();
        total_overlaps += safety.overlapping_steps;
    }
    assert!(
        total_elections >= 50 * 7,
        "only {total_elections} elections in all"
    );
    assert!(
        total_overlaps >= 100,
        "stale and new leaders coexisted at only {total_overlaps} steps"
    );
}

/// §5.2: election timeouts are chosen at random from a fixed interval, here
/// `[election_ticks, 2 × election_ticks)`, and drawn again for every new term; the member
/// campaigns exactly when the timeout drawn for its term runs out.
#[test]
fn section_5_2_election_timeout_is_randomized_and_redrawn_every_term() {
    let mut initial = BTreeSet::new();
    let mut all = BTreeSet::new();
    for seed in 0..50 {
        // Without pre-vote every timeout starts a new term, so each term's timeout shows.
        let mut c = Cluster::with_config(3, seed, config_with(false, true));
        let et = election_ticks(&c);
        for id in c.ids() {
            initial.insert(c.node(id).election_timeout());
        }
        // Node 1 alone: nothing it sends is delivered.
        let mut term = c.node(1).term();
        let mut timeout = c.node(1).election_timeout();
        let mut per_term = vec![timeout];
        let mut since_change = 0;
        for _ in 0..30 {
            loop {
                c.node_mut(1).tick();
                since_change += 1;
                assert!(
                    since_change <= 2 * et,
                    "seed {seed}: no election for 2 timeouts"
                );
                if c.node(1).term() != term {
                    break;
                }
            }
            assert_eq!(c.node(1).term(), term + 1, "seed {seed}");
            assert_eq!(c.node(1).role(), Role::Candidate);
            assert_eq!(
                since_change, timeout,
                "seed {seed}: campaigned {since_change} ticks into term {term}, whose timeout was {timeout}"
            );
            term = c.node(1).term();
            timeout = c.node(1).election_timeout();
            since_change = 0;
            per_term.push(timeout);
        }
        for &t in &per_term {
            assert!(
                (et..2 * et).contains(&t),
                "seed {seed}: timeout {t} out of range"
            );
            all.insert(t);
        }
        let distinct: BTreeSet<_> = per_term.iter().collect();
        assert!(
            distinct.len() >= 5,
            "seed {seed}: 31 terms drew only {} distinct timeouts: not redrawn per term",
            distinct.len()
        );
        // A follower that adopts a new term from a message redraws too.
        let mut redrawn = false;
        for attempt in 0..20u64 {
            let before = c.node(2).election_timeout();
            let term = c.node(2).term() + 1;
            c.deliver(vote_request(3, 2, term, 100, term, false, false));
            assert_eq!(c.node(2).term(), term, "seed {seed} attempt {attempt}");
            let after = c.node(2).election_timeout();
            assert!((et..2 * et).contains(&after));
            redrawn |= after != before;
        }
        assert!(
            redrawn,
            "seed {seed}: a follower never redrew its timeout on a new term"
        );
    }
    let et = Config::new(1).election_ticks;
    assert!(initial.iter().all(|t| (et..2 * et).contains(t)));
    assert!(
        initial.len() >= 10,
        "initial timeouts barely vary: {initial:?}"
    );
    assert_eq!(
        all.len() as u32,
        et,
        "every value in range is drawn eventually: {all:?}"
    );
}

/// §5.2: if two candidates split the vote, nobody wins that term; each times out and a later
/// election (with new random timeouts) elects exactly one leader.
#[test]
fn section_5_2_split_vote_elects_nobody_then_a_later_term_elects_one() {
    for seed in 0..10 {
        let mut c = Cluster::new(4, seed);
        let mut safety = ElectionSafety::default();
        // Nodes 1 and 2 time out together.
        for id in [1, 2] {
            for _ in 0..2 * election_ticks(&c) {
                if c.node(id).role() == Role::PreCandidate {
                    break;
                }
                c.node_mut(id).tick();
            }
            assert_eq!(c.node(id).role(), Role::PreCandidate, "seed {seed}");
        }
        c.process_all();
        // Both win their pre-votes (a pre-vote is not a vote); hold their real vote requests.
        let mut held = Vec::new();
        while !c.network.is_empty() {
            held.extend(take_matching(&mut c, is_vote_request));
            c.deliver_one();
            safety.check(&c);
        }
        held.extend(take_matching(&mut c, is_vote_request));
        for id in [1, 2] {
            assert_eq!(c.node(id).role(), Role::Candidate, "seed {seed}: node {id}");
            assert_eq!(c.node(id).term(), 1, "seed {seed}: node {id}");
        }
        assert_eq!(
            held.len(),
            6,
            "seed {seed}: each candidate asks the other three"
        );
        // Node 3 hears node 1 first, node 4 hears node 2 first: 2 votes against 2.
        held.sort_by_key(|e| match (e.from, e.to) {
            (1, 3) | (2, 4) => 0,
            _ => 1,
        });
        for envelope in held {
            c.deliver(envelope);
            safety.check(&c);
        }
        while c.deliver_one() {
            safety.check(&c);
        }
        assert_eq!(c.node(3).vote(), Some(1), "seed {seed}");
        assert_eq!(c.node(4).vote(), Some(2), "seed {seed}");
        for id in c.ids() {
            let node = c.node(id);
            assert_eq!(node.term(), 1, "seed {seed}: node {id}");
            assert_ne!(
                node.role(),
                Role::Leader,
                "seed {seed}: node {id} won a split vote"
            );
        }
        // Time passes: a later term elects exactly one leader.
        let et = election_ticks(&c);
        run_until(&mut c, &mut safety, 20 * et, |c| stable_leader(c).is_some())
            .unwrap_or_else(|| panic!("seed {seed}: no leader after the split vote"));
        let leader = stable_leader(&c).unwrap();
        let term = c.node(leader).term();
        assert!(term >= 2, "seed {seed}: elected in term {term}");
        assert!(
            !safety.leaders.contains_key(&1),
            "seed {seed}: somebody won term 1"
        );
        assert_eq!(c.leaders(), vec![(leader, term)], "seed {seed}");
    }
}

/// §5.2: each server votes for at most one candidate in a given term, first come first served;
/// the vote survives a restart; a later term frees it.
#[test]
fn section_5_2_one_vote_per_term() {
    let mut c = Cluster::new(3, 7);
    // A = 1 asks first; B = 2 asks in the same term, even claiming a longer log.
    c.deliver(vote_request(1, 3, 1, 0, 0, false, false));
    assert_eq!(take_vote_answers(&mut c, 3, 1), vec![(1, true)]);
    assert_eq!((c.node(3).term(), c.node(3).vote()), (1, Some(1)));

    c.deliver(vote_request(2, 3, 1, 5, 1, false, false));
    assert_eq!(
        take_vote_answers(&mut c, 3, 2),
        vec![(1, false)],
        "a second vote in term 1"
    );
    assert_eq!(c.node(3).vote(), Some(1));

    // A retransmitted request from the same candidate gets the same answer.
    c.deliver(vote_request(1, 3, 1, 0, 0, false, false));
    assert_eq!(take_vote_answers(&mut c, 3, 1), vec![(1, true)]);

    // The vote is durable: after a crash it still binds.
    assert_eq!(c.member(3).disk.hard_state.vote, Some(1));
    c.crash(3);
    c.restart(3);
    assert_eq!((c.node(3).term(), c.node(3).vote()), (1, Some(1)));
    c.deliver(vote_request(2, 3, 1, 5, 1, false, false));
    assert_eq!(
        take_vote_answers(&mut c, 3, 2),
        vec![(1, false)],
        "voted twice after restart"
    );

    // A new term, a new vote.
    c.deliver(vote_request(2, 3, 2, 5, 1, false, false));
    assert_eq!(take_vote_answers(&mut c, 3, 2), vec![(2, true)]);
    assert_eq!((c.node(3).term(), c.node(3).vote()), (2, Some(2)));
}

/// §5.2 with Figure 2's rule "persistent state … updated on stable storage before responding to
/// RPCs": the vote reaches the disk before the answer leaves, and a candidate's own term and
/// self-vote before its requests leave. A pre-vote changes nothing durable and needs no write.
#[test]
fn section_5_2_vote_is_persisted_before_the_answer_leaves() {
    // Directly on the engine.
    let mut c = Cluster::new(3, 3);
    c.auto_persist = false;
    let request = vote_request(1, 2, 1, 0, 0, false, false);
    let node = c.node_mut(2);
    node.step(1, request.message);
    let mut ready = node.ready();
    assert!(
        !ready.messages.iter().any(is_vote_response),
        "the vote answer left before the vote was durable: {:?}",
        ready.messages
    );
    let write = ready.write.take().expect("the vote must be written");
    assert_eq!(
        write.hard_state(),
        Some(&HardState {
            term: 1,
            vote: Some(1),
            commit: 0
        })
    );
    // Asking again does not release it either.
    let again = node.ready();
    assert!(!again.messages.iter().any(is_vote_response));
    assert!(again.write.is_none());
    // A retransmitted request is granted again, but that answer too must wait for the vote's
    // write: it is queued behind it (in an empty write), not sent at once.
    node.step(1, vote_request(1, 2, 1, 0, 0, false, false).message);
    let mut retransmit = node.ready();
    assert!(
        !retransmit.messages.iter().any(is_vote_response),
        "the second answer overtook the unpersisted vote"
    );
    let behind = retransmit
        .write
        .take()
        .expect("the answer waits behind the vote's write");
    assert!(behind.is_empty());
    let grant = Envelope {
        from: 2,
        to: 1,
        message: Message {
            term: 1,
            kind: MessageKind::RequestVoteResponse {
                pre_vote: false,
                granted: true,
            },
        },
    };
    assert_eq!(node.persisted(write), vec![grant.clone()]);
    assert_eq!(node.persisted(behind), vec![grant]);

    // Through a whole election, with the harness persisting only when told.
    let mut c = Cluster::new(3, 4);
    c.auto_persist = false;
    for _ in 0..2 * election_ticks(&c) {
        if c.node(1).role() == Role::PreCandidate {
            break;
        }
        c.node_mut(1).tick();
    }
    assert_eq!(c.node(1).role(), Role::PreCandidate);
    c.process(1);
    assert!(
        c.member(1).unpersisted.is_empty(),
        "a pre-candidate has nothing to persist"
    );
    assert_eq!(
        c.network.iter().filter(|e| is_pre_vote_request(e)).count(),
        2
    );
    // Pre-vote grants leave without a write.
    for envelope in take_matching(&mut c, is_pre_vote_request) {
        let to = envelope.to;
        c.deliver(envelope);
        assert!(
            c.member(to).unpersisted.is_empty(),
            "node {to} wrote for a pre-vote"
        );
    }
    // The grants make node 1 a candidate in term 1: its RequestVotes wait for its write.
    c.deliver_all(100);
    assert_eq!((c.node(1).role(), c.node(1).term()), (Role::Candidate, 1));
    assert!(
        !c.network.iter().any(is_vote_request),
        "RequestVote before the term was durable"
    );
    assert_eq!(c.member(1).unpersisted.len(), 1);
    assert_eq!(
        c.member(1).unpersisted[0]
            .hard_state()
            .map(|h| (h.term, h.vote)),
        Some((1, Some(1)))
    );
    assert!(c.persist_one(1));
    assert_eq!(c.member(1).disk.hard_state.vote, Some(1));
    let requests = take_matching(&mut c, is_vote_request);
    assert_eq!(requests.len(), 2);
    // Node 2 grants; its answer waits for its own write.
    let to_two = requests.into_iter().find(|e| e.to == 2).unwrap();
    c.deliver(to_two);
    assert!(
        !c.network.iter().any(is_vote_response),
        "answer left before the vote was durable"
    );
    assert_eq!(c.member(2).disk.hard_state.vote, None);
    assert!(c.persist_one(2));
    assert_eq!(c.member(2).disk.hard_state.vote, Some(1));
    assert_eq!(take_vote_answers(&mut c, 2, 1), vec![(1, true)]);
    // Delivering that answer elects node 1.
    c.deliver(Envelope {
        from: 2,
        to: 1,
        message: Message {
            term: 1,
            kind: MessageKind::RequestVoteResponse {
                pre_vote: false,
                granted: true,
            },
        },
    });
    assert_eq!(c.node(1).role(), Role::Leader);
}

/// §5.2: a candidate that hears AppendEntries from a leader whose term is at least its own
/// returns to follower; one from a smaller term is rejected (answered with the candidate's
/// term) and the candidate carries on.
#[test]
fn section_5_2_candidate_yields_only_to_a_leader_of_at_least_its_term() {
    let append = |term: Term| Message {
        term,
        kind: MessageKind::AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: Vec::new(),
            leader_commit: 0,
        },
    };
    let become_candidate = |c: &mut Cluster| {
        let term = c.node(2).term();
        while c.node(2).term() == term {
            c.node_mut(2).tick();
        }
        assert_eq!(c.node(2).role(), Role::Candidate);
        c.process(2);
        c.drop_in_flight();
    };
    let mut c = Cluster::with_config(3, 5, config_with(false, true));
    // Node 1 won term 1 (with node 3's vote) while node 2 campaigned in it.
    become_candidate(&mut c);
    assert_eq!(c.node(2).term(), 1);
    c.deliver(Envelope {
        from: 1,
        to: 2,
        message: append(1),
    });
    let node = c.node(2);
    assert_eq!(
        (node.role(), node.term(), node.leader()),
        (Role::Follower, 1, Some(1))
    );
    assert!(
        c.network.iter().any(|e| e.from == 2
            && e.to == 1
            && matches!(
                e.message.kind,
                MessageKind::AppendEntriesResponse(AppendResult::Success { .. })
            )),
        "the candidate did not accept the leader's AppendEntries"
    );
    c.drop_in_flight();

    // Node 2 campaigns again, in term 2; the leader of term 1 is now stale.
    become_candidate(&mut c);
    assert_eq!(c.node(2).term(), 2);
    c.deliver(Envelope {
        from: 1,
        to: 2,
        message: append(1),
    });
    let node = c.node(2);
    assert_eq!(
        (node.role(), node.term(), node.leader()),
        (Role::Candidate, 2, None)
    );
    let answers = take_matching(&mut c, |e| e.from == 2 && e.to == 1);
    assert_eq!(
        answers.len(),
        1,
        "the stale leader must learn the newer term"
    );
    assert_eq!(answers[0].message.term, 2);
}

/// Figure 2 (Followers): the election timer restarts when the member grants a vote, so a voter
/// gives the candidate it voted for a full timeout to win.
#[test]
fn section_5_2_granting_a_vote_restarts_the_election_timer() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        // Node 3 learns of term 1 (no leader, no vote yet).
        c.deliver(Envelope {
            from: 2,
            to: 3,
            message: Message {
                term: 1,
                kind: MessageKind::HeartbeatResponse { round: 0 },
            },
        });
        let node = c.node(3);
        assert_eq!((node.term(), node.vote(), node.leader()), (1, None, None));
        let timeout = node.election_timeout();
        for _ in 0..timeout - 1 {
            c.node_mut(3).tick();
        }
        assert_eq!(c.node(3).role(), Role::Follower, "seed {seed}");
        // A vote in the same term, one tick before the timer would fire.
        c.deliver(vote_request(1, 3, 1, 0, 0, false, false));
        assert_eq!(
            take_vote_answers(&mut c, 3, 1),
            vec![(1, true)],
            "seed {seed}"
        );
        assert_eq!(
            c.node(3).election_timeout(),
            timeout,
            "same term, same timeout"
        );
        for _ in 0..timeout - 1 {
            c.node_mut(3).tick();
            assert_eq!(
                c.node(3).role(),
                Role::Follower,
                "seed {seed}: timer not restarted"
            );
        }
        c.node_mut(3).tick();
        assert_eq!(c.node(3).role(), Role::PreCandidate, "seed {seed}");
    }
}

// ---------------------------------------------------------------------------------------------
// §5.4.1 Election restriction.

/// §5.4.1: a voter denies its vote to a candidate whose log is less up-to-date than its own,
/// so a member that missed committed entries cannot become leader, even with a higher term;
/// the up-to-date member wins instead and keeps every committed entry.
#[test]
fn section_5_4_1_member_with_stale_log_cannot_win() {
    for (pre_vote, check_quorum) in [(false, false), (true, true), (false, true)] {
        for seed in 0..8 {
            let what = format!("pre_vote {pre_vote} check_quorum {check_quorum} seed {seed}");
            let mut c = Cluster::with_config(3, seed, config_with(pre_vote, check_quorum));
            let mut safety = ElectionSafety::default();
            let et = election_ticks(&c);
            let leader = elect(&mut c, &mut safety);
            let term = c.node(leader).term();
            let followers = others(&c, leader);
            let (stale, fresh) = (followers[0], followers[1]);
            // The stale member misses some committed entries.
            c.isolate(stale);
            for _ in 0..3 {
                c.propose(leader, b"committed").unwrap();
            }
            c.deliver_all(10_000);
            let committed = c.node(leader).log().committed();
            assert_eq!(committed, c.node(leader).log().last_index(), "{what}");
            assert_eq!(c.node(fresh).log().committed(), committed, "{what}");
            assert!(c.node(stale).log().last_index() < committed, "{what}");
            // The leader dies; the stale member can talk to the fresh one.
            c.crash(leader);
            c.heal();

            if !pre_vote && !check_quorum {
                // The stale member campaigns first, in a higher term: refused on its log.
                for _ in 0..2 * et {
                    if c.node(stale).role() == Role::Candidate {
                        break;
                    }
                    c.node_mut(stale).tick();
                }
                assert_eq!(c.node(stale).role(), Role::Candidate, "{what}");
                assert_eq!(c.node(stale).term(), term + 1, "{what}");
                c.process(stale);
                let request = take_matching(&mut c, |e| is_vote_request(e) && e.to == fresh);
                assert_eq!(request.len(), 1, "{what}");
                c.deliver(request.into_iter().next().unwrap());
                assert_eq!(
                    c.node(fresh).term(),
                    term + 1,
                    "{what}: adopts the higher term"
                );
                assert_eq!(c.node(fresh).vote(), None, "{what}: voted for a stale log");
                assert_eq!(
                    take_vote_answers(&mut c, fresh, stale),
                    vec![(term + 1, false)]
                );
            }

            safety.never_leader = Some(stale);
            let won = run_until(&mut c, &mut safety, 20 * et, |c| {
                c.node(fresh).role() == Role::Leader
            });
            assert!(
                won.is_some(),
                "{what}: the up-to-date member was not elected"
            );
            assert!(c.node(fresh).term() > term);
            // The stale member voted for it and now holds every committed entry.
            for _ in 0..heartbeat_ticks(&c) + 1 {
                tick_checked(&mut c, &mut safety);
            }
            assert_eq!(c.node(stale).leader(), Some(fresh), "{what}");
            for index in 1..=committed {
                assert_eq!(
                    c.node(stale).log().term(index),
                    c.node(fresh).log().term(index),
                    "{what}: entry {index}"
                );
            }
            assert_eq!(c.applied_commands(stale).len(), 3, "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Thesis §9.6 Pre-vote.

/// Thesis §9.6: a member partitioned away keeps timing out, but as a pre-candidate: it never
/// wins a pre-vote, so it never raises its term; when it rejoins, the leader and term stand.
#[test]
fn thesis_9_6_prevote_isolated_member_does_not_inflate_term_or_disrupt() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        let mut safety = ElectionSafety::default();
        let et = election_ticks(&c);
        let leader = elect(&mut c, &mut safety);
        let term = c.node(leader).term();
        let lonely = others(&c, leader)[0];
        c.isolate(lonely);
        let (mut pre_vote_requests, mut vote_requests) = (0, 0);
        for _ in 0..20 * et {
            for id in c.ids() {
                c.node_mut(id).tick();
                c.process(id);
                safety.check(&c);
            }
            pre_vote_requests += c
                .network
                .iter()
                .filter(|e| e.from == lonely && is_pre_vote_request(e))
                .count();
            vote_requests += c
                .network
                .iter()
                .filter(|e| e.from == lonely && is_vote_request(e))
                .count();
            while c.deliver_one() {
                safety.check(&c);
            }
            let node = c.node(lonely);
            assert_eq!(
                node.term(),
                term,
                "seed {seed}: the isolated member raised its term"
            );
            assert_ne!(node.role(), Role::Candidate, "seed {seed}");
            assert_eq!(c.leaders(), vec![(leader, term)], "seed {seed}");
        }
        assert_eq!(c.node(lonely).role(), Role::PreCandidate, "seed {seed}");
        // Every timeout is shorter than 2 × election_ticks: at least 10 pre-campaigns of two
        // requests each, and not one real election.
        assert!(
            pre_vote_requests >= 2 * 10,
            "seed {seed}: only {pre_vote_requests} pre-vote requests"
        );
        assert_eq!(vote_requests, 0, "seed {seed}");
        c.heal();
        for _ in 0..10 * et {
            tick_checked(&mut c, &mut safety);
            assert_eq!(
                c.leaders(),
                vec![(leader, term)],
                "seed {seed}: rejoining disrupted"
            );
        }
        assert_eq!(c.node(lonely).leader(), Some(leader), "seed {seed}");
        assert_eq!(c.node(lonely).term(), term, "seed {seed}");
        assert_eq!(c.node(lonely).role(), Role::Follower, "seed {seed}");
    }
}

/// Thesis §9.6, the problem pre-vote solves: without it the isolated member's term grows with
/// every timeout, and when it rejoins its term forces the leader out.
#[test]
fn thesis_9_6_without_prevote_isolated_member_inflates_term_and_disrupts() {
    for seed in 0..10 {
        let mut c = Cluster::with_config(3, seed, config_with(false, true));
        let mut safety = ElectionSafety::default();
        let et = election_ticks(&c);
        let leader = elect(&mut c, &mut safety);
        let term = c.node(leader).term();
        let lonely = others(&c, leader)[0];
        c.isolate(lonely);
        for _ in 0..20 * et {
            tick_checked(&mut c, &mut safety);
        }
        let inflated = c.node(lonely).term();
        // Every timeout is shorter than 2 × election_ticks: at least 10 elections in 20.
        assert!(
            inflated >= term + 10,
            "seed {seed}: term only went {term} -> {inflated}"
        );
        assert_eq!(c.leaders(), vec![(leader, term)], "seed {seed}");
        c.heal();
        run_until(&mut c, &mut safety, 20 * et, |c| {
            stable_leader(c).is_some_and(|l| c.node(l).term() >= inflated)
        })
        .unwrap_or_else(|| panic!("seed {seed}: the inflated term never took over"));
        assert!(
            c.node(leader).term() >= inflated,
            "seed {seed}: the old leader of term {term} was not disrupted"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Thesis §6.2 Check-quorum and §4.2.3 leader stickiness.

/// Thesis §6.2: a leader that cannot reach a majority steps down within about two election
/// timeouts (it checks once per timeout); without check-quorum it would lead forever.
#[test]
fn thesis_6_2_check_quorum_isolated_leader_steps_down() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        let mut safety = ElectionSafety::default();
        let et = election_ticks(&c);
        let leader = elect(&mut c, &mut safety);
        let term = c.node(leader).term();
        c.isolate(leader);
        let took = run_until(&mut c, &mut safety, 2 * et, |c| {
            c.node(leader).role() != Role::Leader
        })
        .unwrap_or_else(|| panic!("seed {seed}: still leading after 2 election timeouts"));
        assert!(took >= 1);
        let node = c.node(leader);
        assert_eq!(
            node.term(),
            term,
            "seed {seed}: stepped down on its own, in its term"
        );
        assert_eq!(node.leader(), None, "seed {seed}");
    }
    // Contrast: without check-quorum the cut-off leader never notices.
    for seed in 0..5 {
        let mut c = Cluster::with_config(3, seed, config_with(true, false));
        let mut safety = ElectionSafety::default();
        let et = election_ticks(&c);
        let leader = elect(&mut c, &mut safety);
        c.isolate(leader);
        for _ in 0..10 * et {
            tick_checked(&mut c, &mut safety);
        }
        assert_eq!(c.node(leader).role(), Role::Leader, "seed {seed}");
    }
}

/// Thesis §6.2: a leader that hears from a quorum stays leader, even when a minority of the
/// members cannot reach it (and those do not disrupt it either).
#[test]
fn thesis_6_2_check_quorum_leader_hearing_from_quorum_stays() {
    for seed in 0..10 {
        let mut c = Cluster::new(5, seed);
        let mut safety = ElectionSafety::default();
        let et = election_ticks(&c);
        let leader = elect(&mut c, &mut safety);
        let term = c.node(leader).term();
        let followers = others(&c, leader);
        for &cut_off in &followers[..2] {
            c.cut.insert((leader, cut_off));
            c.cut.insert((cut_off, leader));
        }
        for _ in 0..20 * et {
            tick_checked(&mut c, &mut safety);
            assert_eq!(c.leaders(), vec![(leader, term)], "seed {seed}");
        }
        for &f in &followers[2..] {
            assert_eq!(c.node(f).leader(), Some(leader), "seed {seed}");
        }
        // And the leader still commits.
        let index = c.propose(leader, b"still here").unwrap();
        c.deliver_all(10_000);
        assert!(c.node(leader).log().committed() >= index, "seed {seed}");
    }
}

/// Thesis §4.2.3 (used with §6.2's check-quorum): a member that heard from its leader within
/// the minimum election timeout ignores RequestVote and pre-vote requests from a higher term,
/// without adopting the term; the leader does too. A transfer's request is the exception.
/// Without check-quorum the same request takes the term and the vote.
#[test]
fn thesis_6_2_follower_in_lease_ignores_higher_term_vote_requests() {
    for seed in 0..5 {
        let mut c = Cluster::new(3, seed);
        let mut safety = ElectionSafety::default();
        let leader = elect(&mut c, &mut safety);
        let term = c.node(leader).term();
        let followers = others(&c, leader);
        let (voter, disruptor) = (followers[0], followers[1]);
        let (lli, llt) = {
            let log = c.node(disruptor).log();
            (log.last_index(), log.last_term())
        };
        for target in [voter, leader] {
            for pre_vote in [false, true] {
                let vote_before = c.node(target).vote();
                c.deliver(vote_request(
                    disruptor,
                    target,
                    term + 5,
                    lli,
                    llt,
                    pre_vote,
                    false,
                ));
                let node = c.node(target);
                assert_eq!(node.term(), term, "seed {seed}: {target} adopted the term");
                assert_eq!(node.vote(), vote_before, "seed {seed}");
                assert_eq!(node.leader(), Some(leader), "seed {seed}");
                assert!(
                    take_matching(&mut c, |e| e.from == target && e.to == disruptor).is_empty(),
                    "seed {seed}: {target} answered a vote request inside its lease"
                );
            }
        }
        assert_eq!(c.leaders(), vec![(leader, term)]);
        // A transfer's RequestVote is not ignored.
        c.deliver(vote_request(
            disruptor,
            voter,
            term + 5,
            lli,
            llt,
            false,
            true,
        ));
        assert_eq!(c.node(voter).term(), term + 5, "seed {seed}");
        assert_eq!(
            take_vote_answers(&mut c, voter, disruptor),
            vec![(term + 5, true)]
        );
    }
    // Contrast: without check-quorum there is no lease.
    for seed in 0..5 {
        let mut c = Cluster::with_config(3, seed, config_with(true, false));
        let mut safety = ElectionSafety::default();
        let leader = elect(&mut c, &mut safety);
        let term = c.node(leader).term();
        let followers = others(&c, leader);
        let (voter, disruptor) = (followers[0], followers[1]);
        let (lli, llt) = {
            let log = c.node(disruptor).log();
            (log.last_index(), log.last_term())
        };
        c.deliver(vote_request(
            disruptor,
            voter,
            term + 5,
            lli,
            llt,
            false,
            false,
        ));
        assert_eq!(c.node(voter).term(), term + 5, "seed {seed}");
        assert_eq!(c.node(voter).vote(), Some(disruptor), "seed {seed}");
        assert_eq!(
            take_vote_answers(&mut c, voter, disruptor),
            vec![(term + 5, true)]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Thesis §3.10 Leadership transfer.

/// Thesis §3.10: transferring to an up-to-date follower sends it TimeoutNow at once; it
/// campaigns immediately (skipping pre-vote, past the voters' leases) and wins the next term.
#[test]
fn thesis_3_10_transfer_to_up_to_date_follower() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        let mut safety = ElectionSafety::default();
        let leader = elect(&mut c, &mut safety);
        let term = c.node(leader).term();
        let target = others(&c, leader)[0];
        let last = c.node(leader).log().last_index();
        assert_eq!(
            c.node(leader).progress(target).unwrap().matched,
            last,
            "seed {seed}"
        );

        c.node_mut(leader).transfer_leadership(target).unwrap();
        assert_eq!(c.node(leader).transfer_target(), Some(target));
        c.process(leader);
        let timeout_now = take_matching(&mut c, is_timeout_now);
        assert_eq!(timeout_now.len(), 1, "seed {seed}: TimeoutNow at once");
        assert_eq!((timeout_now[0].from, timeout_now[0].to), (leader, target));
        c.deliver(timeout_now.into_iter().next().unwrap());
        safety.check(&c);
        assert_eq!(
            (c.node(target).role(), c.node(target).term()),
            (Role::Candidate, term + 1),
            "seed {seed}: TimeoutNow skips pre-vote"
        );
        while c.deliver_one() {
            safety.check(&c);
        }
        assert_eq!(c.leaders(), vec![(target, term + 1)], "seed {seed}");
        assert_eq!(c.node(leader).leader(), Some(target));
        assert_eq!(c.node(leader).role(), Role::Follower);
        // The new leader serves.
        let index = c.propose(target, b"after transfer").unwrap();
        c.deliver_all(10_000);
        assert!(c.node(target).log().committed() >= index);
    }
}

/// Thesis §3.10: transferring to a lagging follower first brings its log up to date, and only
/// then sends TimeoutNow; meanwhile the leader refuses proposals. The target wins the next term
/// with every entry.
#[test]
fn thesis_3_10_transfer_to_lagging_follower_catches_it_up_first() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        let mut safety = ElectionSafety::default();
        let et = election_ticks(&c);
        let leader = elect(&mut c, &mut safety);
        let term = c.node(leader).term();
        let target = others(&c, leader)[0];
        c.isolate(target);
        for _ in 0..5 {
            c.propose(leader, b"missed").unwrap();
        }
        c.deliver_all(10_000);
        let last = c.node(leader).log().last_index();
        assert_eq!(c.node(leader).log().committed(), last);
        assert!(c.node(target).log().last_index() < last);
        c.heal();

        c.node_mut(leader).transfer_leadership(target).unwrap();
        assert_eq!(
            c.node_mut(leader).propose(Bytes::from_static(b"refused")),
            Err(ProposeError::TransferInProgress),
            "seed {seed}"
        );
        assert_eq!(
            c.node_mut(leader)
                .propose_membership_change(ConfChange::Remove(target)),
            Err(ProposeError::TransferInProgress),
            "seed {seed}"
        );
        c.process(leader);
        assert!(
            !c.network.iter().any(is_timeout_now),
            "seed {seed}: TimeoutNow to a lagging log"
        );

        let mut target_last_at_timeout_now = None;
        let mut ticks = 0;
        while c.node(target).role() != Role::Leader {
            if c.network.is_empty() {
                assert!(
                    ticks < et,
                    "seed {seed}: transfer not done within an election timeout"
                );
                for id in c.ids() {
                    c.node_mut(id).tick();
                    c.process(id);
                }
                ticks += 1;
                if c.node(target).role() != Role::Leader && c.node(leader).role() == Role::Leader {
                    assert_eq!(
                        c.node_mut(leader).propose(Bytes::from_static(b"refused")),
                        Err(ProposeError::TransferInProgress),
                        "seed {seed}"
                    );
                }
            }
            if target_last_at_timeout_now.is_none() && c.network.iter().any(is_timeout_now) {
                target_last_at_timeout_now = Some(c.node(target).log().last_index());
            }
            c.deliver_one();
            safety.check(&c);
        }
        assert_eq!(
            target_last_at_timeout_now,
            Some(last),
            "seed {seed}: TimeoutNow before the target had the whole log"
        );
        assert_eq!(c.node(target).term(), term + 1, "seed {seed}");
        while c.deliver_one() {
            safety.check(&c);
        }
        assert_eq!(c.leaders(), vec![(target, term + 1)], "seed {seed}");
        for index in 1..=last {
            assert_eq!(
                c.node(target).log().term(index),
                c.node(leader).log().term(index),
                "seed {seed}: entry {index}"
            );
        }
        for _ in 0..heartbeat_ticks(&c) + 1 {
            tick_checked(&mut c, &mut safety);
        }
        assert_eq!(c.applied_commands(target).len(), 5, "seed {seed}");
    }
}

/// Thesis §3.10: if the transfer does not complete within an election timeout, the leader
/// abandons it and accepts proposals again, still leading in its term.
#[test]
fn thesis_3_10_transfer_to_unreachable_target_is_abandoned() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        let mut safety = ElectionSafety::default();
        let et = election_ticks(&c);
        let leader = elect(&mut c, &mut safety);
        let term = c.node(leader).term();
        let target = others(&c, leader)[0];
        c.isolate(target);
        c.node_mut(leader).transfer_leadership(target).unwrap();
        let mut ticks = 0;
        while c.node(leader).transfer_target().is_some() {
            assert_eq!(
                c.node_mut(leader).propose(Bytes::from_static(b"refused")),
                Err(ProposeError::TransferInProgress),
                "seed {seed}"
            );
            tick_checked(&mut c, &mut safety);
            ticks += 1;
            assert!(ticks <= 2 * et, "seed {seed}: transfer never abandoned");
            assert_eq!(c.leaders(), vec![(leader, term)], "seed {seed}");
        }
        assert!(
            ticks >= et,
            "seed {seed}: abandoned after only {ticks} ticks"
        );
        let index = c
            .propose(leader, b"accepted again")
            .expect("proposals accepted again");
        c.deliver_all(10_000);
        assert!(c.node(leader).log().committed() >= index, "seed {seed}");
        assert_eq!(c.leaders(), vec![(leader, term)], "seed {seed}");
    }
}

/// Thesis §3.10: only the leader transfers, only to another voter.
#[test]
fn thesis_3_10_transfer_to_self_or_non_voter_is_refused() {
    let mut c = Cluster::new(3, 11);
    let mut safety = ElectionSafety::default();
    let leader = elect(&mut c, &mut safety);
    let follower = others(&c, leader)[0];
    // A learner joins.
    c.add_member(4, Disk::default());
    c.node_mut(leader)
        .propose_membership_change(ConfChange::AddLearner(4))
        .unwrap();
    c.deliver_all(10_000);
    for _ in 0..heartbeat_ticks(&c) + 1 {
        tick_checked(&mut c, &mut safety);
    }
    assert!(c.node(leader).membership().learners.contains(&4));
    assert_eq!(c.node(4).role(), Role::Learner);

    let node = c.node_mut(leader);
    assert_eq!(
        node.transfer_leadership(leader),
        Err(TransferError::AlreadyLeader(leader))
    );
    assert_eq!(node.transfer_leadership(4), Err(TransferError::NotVoter(4)));
    assert_eq!(node.transfer_leadership(9), Err(TransferError::NotVoter(9)));
    assert_eq!(node.transfer_target(), None);
    assert!(node.propose(Bytes::from_static(b"fine")).is_ok());
    assert_eq!(
        c.node_mut(follower).transfer_leadership(leader),
        Err(TransferError::NotLeader {
            leader: Some(leader)
        })
    );
    assert_eq!(
        c.node_mut(4).transfer_leadership(leader),
        Err(TransferError::NotLeader {
            leader: Some(leader)
        })
    );
    c.process_all();
    assert!(!c.network.iter().any(is_timeout_now));
}
