//! Failover without waiting out the election timeout: the transport tells the engine that its
//! connection to a peer dropped ([`RaftNode::peer_unreachable`]), and a follower whose leader
//! that is campaigns at once (pre-vote first), the survivors staggered by id so that they do not
//! split the vote.
//!
//! The rules are the thesis's: pre-vote (§9.6) keeps a wrong report from disturbing a live
//! leader, leader stickiness (§4.2.3, §6.2) must treat a leader reported unreachable like one
//! whose lease expired, and lease reads (§6.4.1) forbid the shortcut altogether. Each test
//! also runs the contrast that shows it could fail.

use synod_core::engine::Envelope;
use synod_core::{NodeId, Role, Term};
use synod_raft::cluster::Cluster;
use synod_raft::{Config, Message, MessageKind, RaftNode};

mod common;

use common::{ElectionSafety, others, stable_leader, tick_checked};

// ---------------------------------------------------------------------------------------------
// Helpers.

fn deliver_checked(c: &mut Cluster, safety: &mut ElectionSafety) {
    while c.deliver_one() {
        safety.check(c);
    }
}

/// Ticks until a stable leader other than `old` exists; returns it and the ticks it took, or
/// `None` after `max_ticks`.
fn ticks_until_new_leader(
    c: &mut Cluster,
    safety: &mut ElectionSafety,
    old: NodeId,
    max_ticks: u32,
) -> Option<(NodeId, u32)> {
    for tick in 0..=max_ticks {
        if let Some(leader) = stable_leader(c).filter(|&l| l != old) {
            return Some((leader, tick));
        }
        tick_checked(c, safety);
    }
    None
}

/// Elects a leader and lets heartbeats go round, so that every follower knows it.
fn elect(c: &mut Cluster, safety: &mut ElectionSafety) -> NodeId {
    for _ in 0..1000 {
        if stable_leader(c).is_some() {
            break;
        }
        tick_checked(c, safety);
    }
    let leader = stable_leader(c).expect("a leader is elected");
    let heartbeat = c.node(leader).config().heartbeat_ticks;
    for _ in 0..=heartbeat {
        tick_checked(c, safety);
    }
    assert_eq!(stable_leader(c), Some(leader), "the leader is stable");
    for id in c.ids() {
        assert_eq!(c.node(id).leader(), Some(leader), "{id} knows the leader");
    }
    leader
}

fn election_ticks(c: &Cluster, id: NodeId) -> u32 {
    c.node(id).config().election_ticks
}

/// Ticks after the last heartbeat during which no follower's election timer can fire.
fn quiet_ticks(c: &Cluster, id: NodeId) -> u32 {
    let config = c.node(id).config();
    config.election_ticks - config.heartbeat_ticks - 1
}

fn with_config(edit: impl Fn(&mut Config) + 'static) -> impl Fn(NodeId) -> Config + 'static {
    move |id| {
        let mut config = Config::new(id);
        edit(&mut config);
        config
    }
}

/// A pre-vote request from `from`, as it would campaign now.
fn pre_vote_request(c: &Cluster, from: NodeId, to: NodeId) -> Envelope<Message> {
    let node = c.node(from);
    Envelope {
        from,
        to,
        message: Message {
            term: node.term() + 1,
            kind: MessageKind::RequestVote {
                pre_vote: true,
                last_log_index: node.log().last_index(),
                last_log_term: node.log().last_term(),
                transfer: false,
            },
        },
    }
}

/// Removes the pre-vote answers from `from` to `to` in flight; returns whether each was granted.
fn take_pre_vote_answers(c: &mut Cluster, from: NodeId, to: NodeId) -> Vec<bool> {
    let mut answers = Vec::new();
    c.network.retain(|e| match e.message.kind {
        MessageKind::RequestVoteResponse {
            pre_vote: true,
            granted,
        } if e.from == from && e.to == to => {
            answers.push(granted);
            false
        }
        _ => true,
    });
    answers
}

/// What a report must leave alone.
fn observable(node: &RaftNode) -> (Role, Term, Option<NodeId>, Option<NodeId>, u32) {
    (
        node.role(),
        node.term(),
        node.vote(),
        node.leader(),
        node.election_timeout(),
    )
}

// ---------------------------------------------------------------------------------------------
// The follower whose leader is reported unreachable.

/// A follower told that its leader's connection dropped forgets the leader and campaigns (with
/// a pre-vote) at once if it ranks first among the survivors; a new leader is elected well
/// within one minimum election timeout. Contrast: without the report nobody campaigns before
/// the election timeout.
#[test]
fn unreachable_leader_follower_campaigns_before_its_election_timeout() {
    for seed in 0..10 {
        for report in [true, false] {
            let mut c = Cluster::new(3, seed);
            let mut safety = ElectionSafety::default();
            let leader = elect(&mut c, &mut safety);
            let term = c.node(leader).term();
            let survivors = others(&c, leader);
            let election = election_ticks(&c, survivors[0]);
            c.crash(leader);
            if !report {
                // The election timer is reset at every heartbeat, so nobody campaigns before
                // an election timeout less one heartbeat interval.
                for _ in 0..quiet_ticks(&c, survivors[0]) {
                    tick_checked(&mut c, &mut safety);
                }
                for &id in &survivors {
                    assert_eq!(c.node(id).role(), Role::Follower, "seed {seed}: {id}");
                    assert_eq!(c.node(id).term(), term, "seed {seed}: {id}");
                }
                continue;
            }
            let acted = c.report_unreachable(leader);
            assert_eq!(
                acted, survivors,
                "seed {seed}: both followers act on the report"
            );
            let first = survivors[0];
            assert_eq!(c.node(first).role(), Role::PreCandidate, "seed {seed}");
            assert_eq!(
                c.node(first).term(),
                term,
                "seed {seed}: pre-vote keeps the term"
            );
            assert_eq!(c.node(survivors[1]).role(), Role::Follower, "seed {seed}");
            assert_eq!(c.node(survivors[1]).leader(), None, "seed {seed}");
            deliver_checked(&mut c, &mut safety);
            let (new_leader, ticks) = ticks_until_new_leader(&mut c, &mut safety, leader, election)
                .unwrap_or_else(|| panic!("seed {seed}: no new leader within {election} ticks"));
            assert_eq!(
                new_leader, first,
                "seed {seed}: the first-ranked survivor wins"
            );
            assert_eq!(ticks, 0, "seed {seed}: elected without waiting for a tick");
            assert_eq!(
                c.node(new_leader).term(),
                term + 1,
                "seed {seed}: one election"
            );
        }
    }
}

/// Thesis §9.6 and §4.2.3: a follower that hears from its leader ignores pre-votes, but once
/// told that the leader is unreachable it grants them, as if the leader's lease had expired
/// (here the report reaches only the member ranked second, so that it does not campaign
/// itself before the pre-vote arrives).
#[test]
fn thesis_9_6_follower_told_its_leader_is_unreachable_grants_pre_votes() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        let mut safety = ElectionSafety::default();
        let leader = elect(&mut c, &mut safety);
        let survivors = others(&c, leader);
        let (candidate, voter) = (survivors[0], survivors[1]);
        c.crash(leader);
        // Before the report: inside the leader's lease, the pre-vote goes unanswered.
        c.deliver(pre_vote_request(&c, candidate, voter));
        assert_eq!(
            take_pre_vote_answers(&mut c, voter, candidate),
            Vec::<bool>::new()
        );
        assert_eq!(c.node(voter).leader(), Some(leader), "seed {seed}");

        assert!(c.node_mut(voter).peer_unreachable(leader), "seed {seed}");
        c.process(voter);
        assert_eq!(
            c.node(voter).role(),
            Role::Follower,
            "seed {seed}: ranked second, waits"
        );
        c.deliver(pre_vote_request(&c, candidate, voter));
        assert_eq!(
            take_pre_vote_answers(&mut c, voter, candidate),
            vec![true],
            "seed {seed}: the pre-vote is granted once the leader is reported unreachable"
        );
    }
}

/// A report about a member that is not the follower's leader changes nothing: not the role,
/// term, vote, leader or timer, and nothing is sent.
#[test]
fn unreachable_peer_that_is_not_the_leader_changes_nothing() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        let mut safety = ElectionSafety::default();
        let leader = elect(&mut c, &mut safety);
        let survivors = others(&c, leader);
        let (follower, other) = (survivors[0], survivors[1]);
        for peer in [other, follower, 42] {
            let before = observable(c.node(follower));
            assert!(!c.node_mut(follower).peer_unreachable(peer), "seed {seed}");
            assert!(
                !c.node(follower).has_ready(),
                "seed {seed}: nothing to send or store"
            );
            assert_eq!(observable(c.node(follower)), before, "seed {seed}");
        }
        // Nor does the follower campaign early: the cluster stays as it was for an election
        // timeout (heartbeats keep flowing).
        for _ in 0..2 * election_ticks(&c, follower) {
            tick_checked(&mut c, &mut safety);
        }
        assert_eq!(stable_leader(&c), Some(leader), "seed {seed}");
        assert_eq!(c.leaders().len(), 1, "seed {seed}");
    }
}

/// A leader ignores the report (check-quorum steps it down if it really lost its quorum).
#[test]
fn unreachable_report_is_ignored_by_the_leader() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        let mut safety = ElectionSafety::default();
        let leader = elect(&mut c, &mut safety);
        for peer in others(&c, leader) {
            let before = observable(c.node(leader));
            assert!(!c.node_mut(leader).peer_unreachable(peer), "seed {seed}");
            assert!(!c.node(leader).has_ready(), "seed {seed}");
            assert_eq!(observable(c.node(leader)), before, "seed {seed}");
        }
        assert_eq!(c.node(leader).role(), Role::Leader);
    }
}

/// Thesis §6.4.1: with lease reads the leader serves reads on the promise that its followers
/// refuse votes for an election timeout after its last heartbeat. A dropped connection does
/// not prove the leader stopped serving them, so the report is ignored: the follower keeps its
/// leader, ignores pre-votes, and does not campaign. Contrast: without lease reads it acts.
#[test]
fn thesis_6_4_1_with_lease_reads_the_report_is_ignored() {
    for seed in 0..10 {
        for lease_read in [true, false] {
            let mut c =
                Cluster::with_config(3, seed, with_config(move |c| c.lease_read = lease_read));
            let mut safety = ElectionSafety::default();
            let leader = elect(&mut c, &mut safety);
            let survivors = others(&c, leader);
            c.crash(leader);
            let acted = c.report_unreachable(leader);
            if !lease_read {
                assert_eq!(
                    acted, survivors,
                    "seed {seed}: without leases the report is used"
                );
                continue;
            }
            assert_eq!(acted, Vec::<NodeId>::new(), "seed {seed}");
            for &id in &survivors {
                assert_eq!(c.node(id).role(), Role::Follower, "seed {seed}");
                assert_eq!(c.node(id).leader(), Some(leader), "seed {seed}");
            }
            let (candidate, voter) = (survivors[0], survivors[1]);
            c.deliver(pre_vote_request(&c, candidate, voter));
            assert_eq!(
                take_pre_vote_answers(&mut c, voter, candidate),
                Vec::<bool>::new()
            );
            for _ in 0..quiet_ticks(&c, voter) {
                tick_checked(&mut c, &mut safety);
            }
            for &id in &survivors {
                assert_eq!(
                    c.node(id).role(),
                    Role::Follower,
                    "seed {seed}: {id} campaigned"
                );
            }
        }
    }
}

/// Thesis §9.6: with pre-vote, a wrong report (the leader is alive; only the connection to one
/// follower dropped) disturbs nobody: the other follower still hears from the leader and
/// refuses the pre-vote, no term moves, and the reported follower follows the leader again at
/// its next heartbeat.
#[test]
fn thesis_9_6_wrong_report_about_a_live_leader_disturbs_nobody() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        let mut safety = ElectionSafety::default();
        let leader = elect(&mut c, &mut safety);
        let term = c.node(leader).term();
        let first = others(&c, leader)[0];
        assert!(c.node_mut(first).peer_unreachable(leader), "seed {seed}");
        c.process(first);
        assert_eq!(c.node(first).role(), Role::PreCandidate, "seed {seed}");
        for _ in 0..2 * election_ticks(&c, leader) {
            tick_checked(&mut c, &mut safety);
        }
        assert_eq!(stable_leader(&c), Some(leader), "seed {seed}");
        for id in c.ids() {
            assert_eq!(c.node(id).term(), term, "seed {seed}: {id} moved the term");
            assert_eq!(c.node(id).leader(), Some(leader), "seed {seed}: {id}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The survivors together.

/// Both survivors are told at the same tick. Staggered by id, exactly one election takes place
/// (the next term has a leader, and no later term is needed). Contrast: with no stagger their
/// pre-votes overlap, grant each other, and the next term is a split vote with no leader.
#[test]
fn unreachable_leader_two_followers_reported_at_once_elect_one_leader_without_split_vote() {
    for seed in 0..10 {
        for stagger in [3, 0] {
            let mut c = Cluster::with_config(
                3,
                seed,
                with_config(move |c| c.unreachable_leader_stagger_ticks = stagger),
            );
            let mut safety = ElectionSafety::default();
            let leader = elect(&mut c, &mut safety);
            let term = c.node(leader).term();
            let survivors = others(&c, leader);
            c.crash(leader);
            assert_eq!(c.report_unreachable(leader), survivors, "seed {seed}");
            deliver_checked(&mut c, &mut safety);
            if stagger == 0 {
                for &id in &survivors {
                    let node = c.node(id);
                    assert_eq!(node.term(), term + 1, "seed {seed}: {id}");
                    assert_eq!(node.vote(), Some(id), "seed {seed}: {id} voted for itself");
                    assert_ne!(node.role(), Role::Leader, "seed {seed}: {id}");
                }
                continue;
            }
            // A few ticks past the stagger, so that a late campaign would show up.
            for _ in 0..2 * stagger {
                tick_checked(&mut c, &mut safety);
            }
            let new_leader = stable_leader(&c).expect("a new leader");
            assert_eq!(new_leader, survivors[0], "seed {seed}");
            assert_eq!(
                c.node(new_leader).term(),
                term + 1,
                "seed {seed}: no split vote"
            );
            assert_eq!(
                safety.leaders.get(&(term + 1)),
                Some(&new_leader),
                "seed {seed}"
            );
            for &id in &survivors {
                assert_eq!(c.node(id).term(), term + 1, "seed {seed}: {id}");
            }
        }
    }
}

/// If the first-ranked survivor cannot win (its log is behind: Raft §5.4.1), the next one
/// campaigns after the stagger and wins, still long before an election timeout.
#[test]
fn unreachable_leader_next_survivor_wins_when_the_first_has_a_stale_log() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        let mut safety = ElectionSafety::default();
        let leader = elect(&mut c, &mut safety);
        let term = c.node(leader).term();
        let survivors = others(&c, leader);
        let (stale, fresh) = (survivors[0], survivors[1]);
        // The leader commits an entry with `fresh` alone; `stale` never hears of it.
        c.cut.insert((leader, stale));
        let index = c
            .propose(leader, b"x")
            .expect("the leader takes a proposal");
        deliver_checked(&mut c, &mut safety);
        assert!(c.node(leader).log().committed() >= index, "seed {seed}");
        assert!(c.node(stale).log().last_index() < index, "seed {seed}");
        c.crash(leader);
        c.heal();
        assert_eq!(c.report_unreachable(leader), survivors, "seed {seed}");
        let election = election_ticks(&c, fresh);
        let (new_leader, ticks) = ticks_until_new_leader(&mut c, &mut safety, leader, election)
            .unwrap_or_else(|| panic!("seed {seed}: no new leader within {election} ticks"));
        assert_eq!(new_leader, fresh, "seed {seed}");
        let stagger = c.node(fresh).config().unreachable_leader_stagger_ticks;
        assert!(
            ticks <= stagger,
            "seed {seed}: {ticks} ticks, stagger {stagger}"
        );
        assert_eq!(c.node(new_leader).term(), term + 1, "seed {seed}");
        assert!(c.node(new_leader).log().last_index() > index, "seed {seed}");
    }
}
