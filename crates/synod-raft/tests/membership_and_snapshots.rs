//! Membership changes (Raft §6, thesis §4) and log compaction (Raft §7), driven through the
//! in-memory [`Cluster`] harness. Every engine call runs with invariant checks on.

use std::collections::BTreeSet;

use bytes::Bytes;
use synod_core::engine::Envelope;
use synod_core::{
    CompactError, ConfChange, Index, Membership, MembershipError, NodeId, Payload, ProposeError,
    Role,
};
use synod_raft::cluster::{Cluster, Disk};
use synod_raft::{Message, MessageKind};

/// Enough deliveries for any scenario here to go quiet.
const QUIET: usize = 1_000_000;

fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
    ids.iter().copied().collect()
}

fn commit(c: &Cluster, id: NodeId) -> Index {
    c.node(id).log().committed()
}

/// Makes `id` campaign and checks that it wins.
fn elect(c: &mut Cluster, id: NodeId) {
    c.campaign(id);
    c.deliver_all(QUIET);
    assert_eq!(
        c.leader(),
        Some(id),
        "node {id} should have won the election"
    );
    assert!(commit(c, id) > 0, "the new leader commits its no-op");
}

/// Proposes a distinct command at `leader` and returns its index (without delivering).
fn propose(c: &mut Cluster, leader: NodeId, label: &str) -> Index {
    let proposal = c
        .node_mut(leader)
        .propose(Bytes::from(label.to_owned()))
        .unwrap_or_else(|e| panic!("proposal {label} at {leader} refused: {e}"));
    c.process(leader);
    proposal.index
}

/// Proposes `n` commands and delivers everything; returns the last index.
fn propose_and_commit(c: &mut Cluster, leader: NodeId, prefix: &str, n: usize) -> Index {
    let mut last = 0;
    for i in 0..n {
        last = propose(c, leader, &format!("{prefix}-{i}"));
        c.deliver_all(QUIET);
    }
    assert!(
        commit(c, leader) >= last,
        "{prefix}: leader {leader} should have committed {last}"
    );
    last
}

/// Proposes a configuration change at `leader` (which must accept it) and returns its index.
fn change(c: &mut Cluster, leader: NodeId, cc: ConfChange) -> Index {
    let proposal = c
        .node_mut(leader)
        .propose_membership_change(cc.clone())
        .unwrap_or_else(|e| panic!("change {cc:?} refused: {e}"));
    c.process(leader);
    proposal.index
}

/// Delivers every message in flight (and everything it causes), recording what was sent.
fn deliver_recording(c: &mut Cluster, seen: &mut Vec<Envelope<Message>>) {
    c.process_all();
    let mut delivered = 0;
    while let Some(envelope) = c.network.pop_front() {
        seen.push(envelope.clone());
        c.deliver(envelope);
        delivered += 1;
        assert!(delivered < QUIET, "network never went quiet");
    }
}

/// Ticks every member `ticks` times, delivering (and recording) after each tick, and calls
/// `check` after each tick.
fn run_ticks_checking(
    c: &mut Cluster,
    ticks: u32,
    seen: &mut Vec<Envelope<Message>>,
    mut check: impl FnMut(&Cluster),
) {
    for _ in 0..ticks {
        c.tick_all();
        deliver_recording(c, seen);
        check(c);
    }
}

fn sent_by(seen: &[Envelope<Message>], id: NodeId) -> impl Iterator<Item = &MessageKind> {
    seen.iter()
        .filter(move |e| e.from == id)
        .map(|e| &e.message.kind)
}

fn is_vote_request(kind: &MessageKind) -> bool {
    matches!(kind, MessageKind::RequestVote { .. })
}

/// Asserts that every running member's state machine is a prefix of the longest one, and that
/// the members in `ids` applied exactly the same entries.
fn assert_same_applied(c: &Cluster, ids: &[NodeId]) {
    c.check_state_machine_safety();
    let reference = &c.member(ids[0]).applied;
    for &id in &ids[1..] {
        assert_eq!(
            c.member(id).applied.len(),
            reference.len(),
            "node {id} applied {} entries, node {} applied {}",
            c.member(id).applied.len(),
            ids[0],
            reference.len()
        );
    }
}

/// Runs ticks until `leader` has committed its whole log and every member in `ids` has
/// applied all of it.
fn settle(c: &mut Cluster, leader: NodeId, ids: &[NodeId]) {
    for _ in 0..200 {
        c.tick_all();
        c.deliver_all(QUIET);
        let target = c.node(leader).log().last_index();
        if commit(c, leader) == target
            && ids
                .iter()
                .all(|&id| c.member(id).applied.len() as Index >= target)
        {
            assert_eq!(
                c.node(leader).role(),
                Role::Leader,
                "node {leader} lost leadership"
            );
            return;
        }
    }
    let applied: Vec<_> = ids
        .iter()
        .map(|&id| (id, c.member(id).applied.len()))
        .collect();
    panic!(
        "members did not catch up with leader {leader} (commit {}): {applied:?}",
        commit(c, leader)
    );
}

// -------------------------------------------------------------------------------------------
// Single-server changes (thesis §4.1, §4.2).

#[test]
fn thesis_4_1_added_server_with_empty_disk_catches_up_and_then_counts_in_quorum() {
    let mut c = Cluster::new(3, 11);
    elect(&mut c, 1);
    propose_and_commit(&mut c, 1, "before", 5);

    c.add_member(4, Disk::default());
    assert!(
        c.node(4).membership().voters.is_empty(),
        "a joining member knows no configuration until the leader sends one"
    );
    assert_eq!(c.node(4).role(), Role::Follower);
    let index = change(&mut c, 1, ConfChange::AddVoter(4));
    assert_eq!(
        c.node(1).membership(),
        &Membership::with_voters([1, 2, 3, 4]),
        "thesis §4.1: the configuration takes effect at the leader as soon as it is appended"
    );
    c.deliver_all(QUIET);
    assert!(commit(&c, 1) >= index, "the addition commits");
    settle(&mut c, 1, &[1, 2, 3, 4]);
    assert_same_applied(&c, &[1, 2, 3, 4]);
    assert_eq!(
        c.node(4).membership(),
        &Membership::with_voters([1, 2, 3, 4])
    );
    assert_eq!(c.node(4).role(), Role::Follower);
    assert_eq!(c.node(4).leader(), Some(1));
    assert_eq!(
        c.applied_commands(4).len(),
        5,
        "the new member received the entries from before it joined"
    );

    // Voters {1,2,3,4} need 3 acknowledgements. With 3 unreachable, 1 and 2 alone do not
    // suffice, so a commit proves that node 4 counts.
    c.isolate(3);
    let with_4 = propose(&mut c, 1, "with-4");
    c.deliver_all(QUIET);
    assert!(
        commit(&c, 1) >= with_4,
        "leader, 2 and 4 form a quorum of four"
    );

    // With 3 and 4 unreachable, 1 and 2 are not a majority of four.
    c.isolate(4);
    let without_4 = propose(&mut c, 1, "without-4");
    c.deliver_all(QUIET);
    assert!(
        commit(&c, 1) < without_4,
        "two of four voters must not commit (commit {}, entry {without_4})",
        commit(&c, 1)
    );

    // Once the links heal, the entry commits without any further proposal.
    c.heal();
    settle(&mut c, 1, &[1, 2, 3, 4]);
    assert!(commit(&c, 1) >= without_4);
    assert_same_applied(&c, &[1, 2, 3, 4]);
}

#[test]
fn thesis_4_1_removed_follower_stops_counting_and_cannot_disrupt_the_cluster() {
    let mut c = Cluster::new(3, 12);
    elect(&mut c, 1);
    propose_and_commit(&mut c, 1, "before", 3);

    let index = change(&mut c, 1, ConfChange::Remove(3));
    assert_eq!(c.node(1).membership(), &Membership::with_voters([1, 2]));
    assert!(
        c.node(1).progress(3).is_none(),
        "the leader stops replicating to a removed member"
    );
    c.deliver_all(QUIET);
    assert!(commit(&c, 1) >= index, "the removal commits with 1 and 2");

    // In {1,2} the leader needs node 2: node 3 does not count any more.
    c.isolate(2);
    let p = propose(&mut c, 1, "needs-2");
    c.deliver_all(QUIET);
    assert!(
        commit(&c, 1) < p,
        "node 3 must not count towards a quorum of {{1,2}}"
    );
    c.heal();
    settle(&mut c, 1, &[1, 2]);
    assert!(commit(&c, 1) >= p);

    // Node 3 never learned of its removal. It times out and asks for (pre-)votes, but the
    // remaining members hear from their leader and ignore it (thesis §4.2.3).
    let term = c.node(1).term();
    let mut seen = Vec::new();
    run_ticks_checking(&mut c, 400, &mut seen, |c| {
        assert!(
            !c.leaders().iter().any(|&(id, _)| id == 3),
            "removed node 3 became leader"
        );
        assert_eq!(c.leader(), Some(1), "the cluster keeps its leader");
    });
    assert!(
        sent_by(&seen, 3).any(is_vote_request),
        "the removed member did try to campaign (otherwise this test shows nothing)"
    );
    assert_eq!(
        c.node(1).term(),
        term,
        "the removed member did not disrupt the term"
    );
    assert_eq!(c.node(2).term(), term);
    let last = propose_and_commit(&mut c, 1, "after", 3);
    settle(&mut c, 1, &[1, 2]);
    assert!(
        (c.member(3).applied.len() as Index) < last,
        "the removed member gets no new entries"
    );
    assert_same_applied(&c, &[1, 2]);
}

#[test]
fn thesis_4_2_2_removed_leader_steps_down_once_c_new_commits_and_never_leads_again() {
    let mut c = Cluster::new(3, 13);
    elect(&mut c, 1);
    propose_and_commit(&mut c, 1, "before", 3);

    let index = change(&mut c, 1, ConfChange::Remove(1));
    assert_eq!(c.node(1).membership(), &Membership::with_voters([2, 3]));
    assert_eq!(
        c.node(1).role(),
        Role::Leader,
        "it manages the cluster until C_new commits"
    );

    // Thesis §4.2.2: the leader does not count itself in a majority of C_new. Node 2 alone
    // (plus the leader) would be a majority of {1,2,3} but not of {2,3}.
    c.cut.insert((1, 3));
    c.cut.insert((3, 1));
    c.deliver_all(QUIET);
    assert!(
        c.node(1).progress(2).unwrap().matched >= index,
        "node 2 holds C_new"
    );
    assert!(
        commit(&c, 1) < index,
        "C_new committed without a majority of C_new (commit {})",
        commit(&c, 1)
    );
    assert_eq!(c.node(1).role(), Role::Leader);

    // Heal and let heartbeats bring node 3 up to date; watch message by message that node 1
    // leads exactly until C_new is committed.
    c.heal();
    let mut stepped_down = false;
    for _ in 0..100 {
        c.node_mut(1).tick();
        c.process(1);
        while c.deliver_one() {
            let leads = c.node(1).role() == Role::Leader;
            assert_eq!(
                leads,
                commit(&c, 1) < index,
                "node 1 must lead exactly until C_new commits (commit {}, C_new at {index})",
                commit(&c, 1)
            );
            stepped_down |= !leads;
        }
        if stepped_down {
            break;
        }
    }
    assert!(stepped_down, "the removed leader never stepped down");
    assert!(commit(&c, 1) >= index);
    assert_eq!(c.node(1).role(), Role::Follower);
    assert!(!c.node(1).membership().is_voter(1));

    // The remaining members elect a leader among themselves.
    let old_term = c.node(1).term();
    let leader = c.run_until_leader(300).expect("{2,3} elect a new leader");
    assert!(leader == 2 || leader == 3);
    assert!(c.node(leader).term() > old_term);
    let last = propose_and_commit(&mut c, leader, "after", 3);
    let other = if leader == 2 { 3 } else { 2 };
    settle(&mut c, leader, &[leader, other]);
    assert!(commit(&c, other) >= last);

    // The removed node never campaigns again, however long it runs.
    let mut seen = Vec::new();
    run_ticks_checking(&mut c, 500, &mut seen, |c| {
        assert!(
            !c.leaders().iter().any(|&(id, _)| id == 1),
            "removed node 1 leads again"
        );
        assert!(!matches!(
            c.node(1).role(),
            Role::Candidate | Role::PreCandidate
        ));
    });
    c.isolate(1);
    run_ticks_checking(&mut c, 300, &mut seen, |c| {
        assert!(
            !c.leaders().iter().any(|&(id, _)| id == 1),
            "isolated node 1 leads again"
        );
    });
    assert!(
        !sent_by(&seen, 1).any(is_vote_request),
        "a member outside the configuration asked for votes"
    );
    assert_same_applied(&c, &[2, 3]);
}

#[test]
fn thesis_4_1_uncommitted_configuration_is_rolled_back_when_its_entry_is_truncated() {
    let mut c = Cluster::new(3, 14);
    elect(&mut c, 1);
    propose_and_commit(&mut c, 1, "before", 2);
    let old = c.node(1).membership().clone();

    // Node 1 appends a configuration nobody else receives.
    c.isolate(1);
    let index = change(&mut c, 1, ConfChange::Remove(3));
    c.deliver_all(QUIET);
    assert_eq!(c.node(1).membership(), &Membership::with_voters([1, 2]));
    assert!(commit(&c, 1) < index);

    // 2 and 3 elect a new leader and commit over index `index`.
    let mut leader = None;
    for _ in 0..500 {
        c.tick_all();
        c.deliver_all(QUIET);
        leader = c
            .leaders()
            .into_iter()
            .find(|&(id, _)| id != 1)
            .map(|(id, _)| id);
        if leader.is_some() {
            break;
        }
    }
    let leader = leader.expect("2 and 3 elect a leader");
    let last = propose_and_commit(&mut c, leader, "new-term", 3);
    assert!(last >= index);

    c.heal();
    settle(&mut c, leader, &[1, 2, 3]);
    assert_eq!(
        c.node(1).membership(),
        &old,
        "thesis §4.1: the configuration is recomputed when its entry is truncated"
    );
    assert!(
        !matches!(
            c.node(1).log().entry(index).map(|e| &e.payload),
            Some(Payload::Membership(_))
        ),
        "the uncommitted configuration entry was overwritten"
    );
    assert_same_applied(&c, &[1, 2, 3]);
}

// -------------------------------------------------------------------------------------------
// Joint consensus (Raft §6).

/// {1,2,3} with leader 1, plus empty members 4 and 5 that will join.
fn joint_setup(seed: u64) -> Cluster {
    let mut c = Cluster::new(3, seed);
    elect(&mut c, 1);
    propose_and_commit(&mut c, 1, "before", 3);
    c.add_member(4, Disk::default());
    c.add_member(5, Disk::default());
    c
}

fn to_345() -> ConfChange {
    ConfChange::Joint {
        voters: set(&[3, 4, 5]),
        learners: BTreeSet::new(),
    }
}

#[test]
fn section_6_joint_consensus_a_majority_of_the_old_half_alone_does_not_commit() {
    let mut c = joint_setup(21);
    c.isolate(4);
    c.isolate(5);
    let joint = change(&mut c, 1, to_345());
    let m = c.node(1).membership().clone();
    assert!(m.is_joint());
    assert_eq!(m.voters_outgoing, set(&[1, 2, 3]));
    assert_eq!(m.voters, set(&[3, 4, 5]));
    c.deliver_all(QUIET);
    for id in [2, 3] {
        assert!(
            c.node(1).progress(id).unwrap().matched >= joint,
            "node {id} holds C_old,new"
        );
    }
    assert!(
        commit(&c, 1) < joint,
        "C_old,new committed with only the old half (commit {})",
        commit(&c, 1)
    );
    // Not even a command after it commits.
    let p = propose(&mut c, 1, "during-joint");
    c.deliver_all(QUIET);
    assert!(commit(&c, 1) < joint && commit(&c, 1) < p);
    assert_eq!(c.node(1).role(), Role::Leader);

    // Heal: the joint configuration commits, the leader moves to C_new on its own, commits it,
    // and steps down because it is not part of C_new.
    c.heal();
    let mut c_new_index = None;
    for _ in 0..300 {
        c.tick_all();
        c.deliver_all(QUIET);
        if c_new_index.is_none() {
            let log = c.node(1).log();
            c_new_index = (joint + 1..=log.last_index()).find(|&i| {
                matches!(&log.entry(i).unwrap().payload,
                    Payload::Membership(m) if !m.is_joint() && m.voters == set(&[3, 4, 5]))
            });
        }
        if c.node(1).role() != Role::Leader {
            break;
        }
    }
    let c_new_index = c_new_index.expect("the leader proposed C_new on its own");
    assert_eq!(c.node(1).membership(), &Membership::with_voters([3, 4, 5]));
    assert!(
        commit(&c, 1) >= c_new_index,
        "node 1 committed C_new before stepping down"
    );
    assert_eq!(c.node(1).role(), Role::Follower, "the old leader left");
    finish_joint(&mut c);
}

/// After {1,2,3} → {3,4,5}: a leader among {3,4,5} takes over, 1 and 2 never lead again, and
/// the new configuration commits on its own.
fn finish_joint(c: &mut Cluster) {
    let leader = c.run_until_leader(400).expect("C_new elects a leader");
    assert!(
        [3, 4, 5].contains(&leader),
        "leader {leader} is not in C_new"
    );
    propose_and_commit(c, leader, "after", 3);
    let term = c.node(leader).term();
    let mut seen = Vec::new();
    // Node 2 never receives C_new (the leader stops replicating to it once C_new is appended),
    // so it may keep asking for votes; it must neither win nor disturb the term (thesis
    // §4.2.3). Node 1 holds C_new and knows it is out.
    run_ticks_checking(c, 400, &mut seen, |c| {
        for (id, _) in c.leaders() {
            assert!([3, 4, 5].contains(&id), "node {id} outside C_new leads");
        }
        assert_eq!(
            c.leader(),
            Some(leader),
            "the leader of C_new was disrupted"
        );
    });
    assert_eq!(
        c.node(leader).term(),
        term,
        "a removed member disrupted the term"
    );
    if c.member(1).node.is_some() {
        assert!(
            !sent_by(&seen, 1).any(is_vote_request),
            "node 1, removed and aware of it, asked for votes"
        );
    }
    propose_and_commit(c, leader, "final", 1);
    settle(c, leader, &[3, 4, 5]);
    for id in [3, 4, 5] {
        assert_eq!(c.node(id).membership(), &Membership::with_voters([3, 4, 5]));
    }
    assert_same_applied(c, &[3, 4, 5]);
}

#[test]
fn section_6_joint_consensus_a_majority_of_the_new_half_alone_neither_commits_nor_elects() {
    let mut c = joint_setup(22);
    c.isolate(2);
    c.isolate(3);
    let joint = change(&mut c, 1, to_345());
    c.deliver_all(QUIET);
    for id in [4, 5] {
        assert!(
            c.node(1).progress(id).unwrap().matched >= joint,
            "node {id} caught up from an empty log"
        );
        assert!(c.node(id).membership().is_joint());
    }
    assert!(
        commit(&c, 1) < joint,
        "C_old,new committed with only the new half (commit {})",
        commit(&c, 1)
    );

    // Elections in C_old,new also need both majorities: with the leader down and 2 and 3 cut
    // off, 4 and 5 (a majority of the new half) cannot elect anyone.
    c.crash(1);
    let mut seen = Vec::new();
    run_ticks_checking(&mut c, 300, &mut seen, |c| {
        assert!(
            c.leaders().is_empty(),
            "a leader was elected without the old half: {:?}",
            c.leaders()
        );
    });
    assert!(
        sent_by(&seen, 4).any(is_vote_request) || sent_by(&seen, 5).any(is_vote_request),
        "4 and 5 are voters of C_old,new and did campaign"
    );

    // Once 2 and 3 are back, a member holding C_old,new wins, finishes the change and C_new
    // takes over. Node 1 stays down: it has been removed anyway.
    c.heal();
    let mut done = false;
    for _ in 0..600 {
        c.tick_all();
        c.deliver_all(QUIET);
        if let Some(leader) = c.leader()
            && c.node(leader).membership() == &Membership::with_voters([3, 4, 5])
            && commit(&c, leader) >= c.node(leader).log().membership_index()
        {
            done = true;
            break;
        }
    }
    assert!(done, "the joint change never completed");
    finish_joint(&mut c);
}

#[test]
fn section_6_joint_consensus_c_new_needs_a_majority_of_c_new() {
    let mut c = joint_setup(23);
    let joint = change(&mut c, 1, to_345());
    // Deliver until C_old,new commits and the leader appends C_new, then cut off 4 and 5.
    let mut steps = 0;
    while c.node(1).membership().is_joint() {
        assert!(
            c.deliver_one(),
            "network went quiet before C_old,new committed"
        );
        steps += 1;
        assert!(steps < 10_000);
    }
    assert!(commit(&c, 1) >= joint);
    let c_new = c.node(1).log().membership_index();
    assert!(c_new > joint);
    assert_eq!(c.node(1).membership(), &Membership::with_voters([3, 4, 5]));
    c.isolate(4);
    c.isolate(5);
    c.deliver_all(QUIET);
    assert!(
        c.node(1).progress(2).is_none(),
        "node 2 left the configuration"
    );
    assert!(c.node(1).progress(3).unwrap().matched >= c_new);
    assert!(
        commit(&c, 1) < c_new,
        "C_new committed with only node 3 of {{3,4,5}}"
    );
    assert_eq!(
        c.node(1).role(),
        Role::Leader,
        "the leader keeps leading until C_new commits"
    );
    // Refused while C_new is uncommitted.
    assert_eq!(
        c.node_mut(1)
            .propose_membership_change(ConfChange::AddVoter(6)),
        Err(ProposeError::ConfChangeInProgress)
    );

    c.heal();
    for _ in 0..100 {
        c.tick_all();
        c.deliver_all(QUIET);
        if c.node(1).role() != Role::Leader {
            break;
        }
    }
    assert!(commit(&c, 1) >= c_new);
    assert_eq!(c.node(1).role(), Role::Follower);
    finish_joint(&mut c);
}

#[test]
fn thesis_4_2_2_member_outside_an_uncommitted_c_new_still_campaigns_when_needed() {
    // {1,2} → {2} by joint consensus. Leader 1 appends C_new = {2} and is cut off before anyone
    // receives it. Node 2 still has C_old,new and needs a majority of {1,2}, so it needs node
    // 1's vote, which 1 refuses (its log is longer). Thesis §4.2.2: a server that is not part
    // of its own latest configuration must still start elections until C_new commits.
    let mut c = Cluster::new(2, 24);
    elect(&mut c, 1);
    propose_and_commit(&mut c, 1, "before", 2);
    let joint = change(
        &mut c,
        1,
        ConfChange::Joint {
            voters: set(&[2]),
            learners: BTreeSet::new(),
        },
    );
    let mut steps = 0;
    while c.node(1).membership().is_joint() {
        assert!(
            c.deliver_one(),
            "network went quiet before C_old,new committed"
        );
        steps += 1;
        assert!(steps < 10_000);
    }
    c.isolate(1);
    c.deliver_all(QUIET);
    let c_new = c.node(1).log().membership_index();
    assert!(c_new > joint && commit(&c, 1) < c_new);
    assert_eq!(c.node(1).membership(), &Membership::with_voters([2]));
    assert!(
        c.node(2).membership().is_joint(),
        "node 2 never received C_new"
    );

    // Node 1 loses its quorum (check-quorum) and steps down; then the links heal.
    for _ in 0..100 {
        c.tick_all();
        c.deliver_all(QUIET);
        if c.node(1).role() != Role::Leader {
            break;
        }
    }
    assert_ne!(c.node(1).role(), Role::Leader);
    c.heal();

    let mut led_after_commit = false;
    let mut done = false;
    for _ in 0..500 {
        c.tick_all();
        c.deliver_all(QUIET);
        if c.node(1).role() == Role::Leader && commit(&c, 1) >= c_new {
            led_after_commit = true;
        }
        if c.leader() == Some(2)
            && c.node(2).membership() == &Membership::with_voters([2])
            && commit(&c, 2) >= c_new
        {
            done = true;
            break;
        }
    }
    let state: Vec<_> = [1, 2]
        .iter()
        .map(|&id| (id, c.node(id).role(), c.node(id).term(), commit(&c, id)))
        .collect();
    assert!(done, "the cluster never finished the change: {state:?}");
    assert!(!led_after_commit, "node 1 led after C_new committed");
    let mut seen = Vec::new();
    run_ticks_checking(&mut c, 300, &mut seen, |c| {
        assert_eq!(c.leader(), Some(2));
        assert_ne!(c.node(1).role(), Role::Leader);
    });
    assert!(
        !sent_by(&seen, 1).any(is_vote_request),
        "node 1 campaigns although it knows C_new is committed"
    );
    propose_and_commit(&mut c, 2, "after", 2);
    c.check_state_machine_safety();
}

// -------------------------------------------------------------------------------------------
// Learners.

#[test]
fn thesis_4_2_1_learner_receives_the_log_never_campaigns_or_counts_until_promoted() {
    let mut c = Cluster::new(3, 31);
    elect(&mut c, 1);
    propose_and_commit(&mut c, 1, "before", 4);
    c.add_member(4, Disk::default());
    let index = change(&mut c, 1, ConfChange::AddLearner(4));
    c.deliver_all(QUIET);
    assert!(commit(&c, 1) >= index);
    propose_and_commit(&mut c, 1, "with-learner", 3);
    settle(&mut c, 1, &[1, 2, 3, 4]);
    assert_same_applied(&c, &[1, 2, 3, 4]);
    assert_eq!(c.node(4).role(), Role::Learner);
    assert_eq!(c.node(4).membership().learners, set(&[4]));
    assert_eq!(
        c.applied_commands(4).len(),
        7,
        "the learner applied every command"
    );

    // A learner does not count: with 2 and 3 cut off, leader plus learner commit nothing.
    c.isolate(2);
    c.isolate(3);
    let p = propose(&mut c, 1, "leader-and-learner");
    c.deliver_all(QUIET);
    assert!(
        c.node(1).progress(4).unwrap().matched >= p,
        "the learner holds the entry"
    );
    assert!(commit(&c, 1) < p, "a learner's acknowledgement counted");
    c.heal();
    settle(&mut c, 1, &[1, 2, 3, 4]);

    // An isolated learner never campaigns, however long it waits.
    let term = c.node(4).term();
    c.isolate(4);
    let mut seen = Vec::new();
    run_ticks_checking(&mut c, 600, &mut seen, |c| {
        assert_eq!(c.node(4).role(), Role::Learner);
    });
    assert_eq!(
        c.node(4).term(),
        term,
        "the learner's term moved: it campaigned"
    );
    assert!(
        !sent_by(&seen, 4).any(is_vote_request),
        "the learner asked for votes"
    );
    c.heal();
    settle(&mut c, 1, &[1, 2, 3, 4]);

    // In an election nobody asks the learner for its vote, and a grant it sends anyway does
    // not count: 3 alone (a pre-candidate cut off from 1 and 2) cannot win with it.
    c.isolate(1);
    c.cut.insert((2, 3));
    c.cut.insert((3, 2));
    let mut seen = Vec::new();
    let mut pre_candidate = false;
    for _ in 0..200 {
        c.tick_all();
        deliver_recording(&mut c, &mut seen);
        if c.node(3).role() == Role::PreCandidate {
            pre_candidate = true;
            break;
        }
    }
    assert!(pre_candidate, "node 3 never timed out");
    let pre_vote_term = c.node(3).term() + 1;
    c.node_mut(3).step(
        4,
        Message {
            term: pre_vote_term,
            kind: MessageKind::RequestVoteResponse {
                pre_vote: true,
                granted: true,
            },
        },
    );
    assert_eq!(
        c.node(3).role(),
        Role::PreCandidate,
        "a learner's pre-vote counted"
    );
    assert!(
        !seen
            .iter()
            .any(|e| e.to == 4 && is_vote_request(&e.message.kind)),
        "a candidate asked the learner for its vote"
    );
    c.heal();
    // Node 1 was cut off from every voter: check-quorum makes it step down within an election
    // timeout, after which a leader that a quorum follows emerges.
    c.run_ticks(2 * c.node(1).config().election_ticks);
    let leader = c.run_until_leader(300).expect("a leader");
    assert_ne!(leader, 4);
    settle(&mut c, leader, &[1, 2, 3, 4]);

    // Promotion: the learner becomes a voter and now counts.
    let index = change(&mut c, leader, ConfChange::AddVoter(4));
    c.deliver_all(QUIET);
    assert!(commit(&c, leader) >= index);
    settle(&mut c, leader, &[1, 2, 3, 4]);
    assert_eq!(c.node(4).role(), Role::Follower);
    assert_eq!(
        c.node(4).membership(),
        &Membership::with_voters([1, 2, 3, 4])
    );
    let others: Vec<NodeId> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    // Four voters need three: the leader, one other voter, and node 4.
    c.isolate(others[0]);
    let p = propose(&mut c, leader, "promoted-counts");
    c.deliver_all(QUIET);
    assert!(
        commit(&c, leader) >= p,
        "the promoted learner's acknowledgement did not count"
    );
    c.isolate(4);
    let q = propose(&mut c, leader, "two-of-four");
    c.deliver_all(QUIET);
    assert!(commit(&c, leader) < q, "two of four voters committed");
    c.heal();
    settle(&mut c, leader, &[1, 2, 3, 4]);
    assert_same_applied(&c, &[1, 2, 3, 4]);
}

// -------------------------------------------------------------------------------------------
// Refused changes.

#[test]
fn thesis_4_1_refused_changes() {
    let mut c = Cluster::new(3, 41);
    // Not the leader.
    assert!(matches!(
        c.node_mut(2)
            .propose_membership_change(ConfChange::AddVoter(4)),
        Err(ProposeError::NotLeader { .. })
    ));

    // A leader that has not yet committed an entry of its term.
    let node = c.node_mut(1);
    for _ in 0..node.election_timeout() * 2 {
        if node.role() == Role::PreCandidate {
            break;
        }
        node.tick();
    }
    c.process(1);
    while c.node(1).role() != Role::Leader {
        assert!(c.deliver_one(), "node 1 did not win");
    }
    assert!(commit(&c, 1) < c.node(1).log().last_index());
    assert_eq!(
        c.node_mut(1)
            .propose_membership_change(ConfChange::AddVoter(4)),
        Err(ProposeError::LeaderNotReady),
        "thesis §4.1: no change before the leader commits an entry of its term"
    );
    c.deliver_all(QUIET);
    assert_eq!(commit(&c, 1), c.node(1).log().last_index());

    // Invalid changes.
    let invalid = [
        (ConfChange::Remove(9), MembershipError::NotMember(9)),
        (ConfChange::AddVoter(0), MembershipError::ZeroNodeId),
        (ConfChange::AddLearner(0), MembershipError::ZeroNodeId),
        (ConfChange::AddVoter(2), MembershipError::NoChange),
        (
            ConfChange::Joint {
                voters: BTreeSet::new(),
                learners: set(&[4]),
            },
            MembershipError::NoVoters,
        ),
        (
            ConfChange::Joint {
                voters: set(&[4]),
                learners: set(&[4]),
            },
            MembershipError::VoterAndLearner(4),
        ),
        (
            ConfChange::Joint {
                voters: set(&[1, 2, 3]),
                learners: BTreeSet::new(),
            },
            MembershipError::NoChange,
        ),
    ];
    let last = c.node(1).log().last_index();
    for (cc, error) in invalid {
        assert_eq!(
            c.node_mut(1).propose_membership_change(cc.clone()),
            Err(ProposeError::Membership(error)),
            "{cc:?}"
        );
    }
    assert_eq!(
        c.node(1).log().last_index(),
        last,
        "a refused change appended something"
    );

    // A second change while the first is uncommitted.
    c.isolate(2);
    c.isolate(3);
    let first = change(&mut c, 1, ConfChange::AddLearner(4));
    c.deliver_all(QUIET);
    assert!(commit(&c, 1) < first);
    for cc in [
        ConfChange::AddVoter(5),
        ConfChange::Remove(4),
        ConfChange::Remove(3),
        to_345(),
    ] {
        assert_eq!(
            c.node_mut(1).propose_membership_change(cc.clone()),
            Err(ProposeError::ConfChangeInProgress),
            "{cc:?}"
        );
    }
    // Commands are still accepted while the change is in flight.
    assert!(c.node_mut(1).propose(Bytes::from_static(b"cmd")).is_ok());
    c.process(1);
    c.heal();
    c.add_member(4, Disk::default());
    settle(&mut c, 1, &[1, 2, 3, 4]);
    assert!(commit(&c, 1) >= first);
    // Once committed, the next change is accepted.
    let second = change(&mut c, 1, ConfChange::AddVoter(4));
    c.deliver_all(QUIET);
    assert!(commit(&c, 1) >= second);

    // During a leadership transfer, changes are refused like any proposal.
    c.isolate(3);
    c.node_mut(1).transfer_leadership(3).unwrap();
    assert_eq!(
        c.node_mut(1)
            .propose_membership_change(ConfChange::Remove(4)),
        Err(ProposeError::TransferInProgress)
    );
}

// -------------------------------------------------------------------------------------------
// Log compaction and InstallSnapshot (Raft §7).

#[test]
fn section_7_lagging_follower_installs_the_leaders_snapshot_and_recovers_it_after_restart() {
    let mut c = Cluster::new(3, 51);
    elect(&mut c, 1);
    propose_and_commit(&mut c, 1, "early", 5);
    settle(&mut c, 1, &[1, 2, 3]);

    c.isolate(3);
    let last = propose_and_commit(&mut c, 1, "while-3-is-away", 40);
    settle(&mut c, 1, &[1, 2]);
    let snap = c.snapshot(1);
    assert_eq!(snap, last, "the leader snapshots everything it applied");
    assert_eq!(c.node(1).log().first_index(), snap + 1);
    assert!(
        c.node(1).log().entry(snap).is_none(),
        "compacted entries are gone"
    );
    // Compacting again at the same point is refused.
    assert_eq!(
        c.node_mut(1).compact(snap),
        Err(CompactError::AlreadyCompacted {
            index: snap,
            snapshot: snap
        })
    );
    let more = propose_and_commit(&mut c, 1, "after-snapshot", 3);

    // Heal, and only tick: the leader must notice on its own that node 3 lags behind the
    // compaction point and send the snapshot.
    c.heal();
    let mut seen = Vec::new();
    for _ in 0..100 {
        c.tick_all();
        deliver_recording(&mut c, &mut seen);
        if c.member(3).applied.len() as Index >= more {
            break;
        }
    }
    let installs: Vec<_> = seen
        .iter()
        .filter_map(|e| match &e.message.kind {
            MessageKind::InstallSnapshot { snapshot } if e.to == 3 => Some(snapshot.clone()),
            _ => None,
        })
        .collect();
    assert!(
        !installs.is_empty(),
        "the leader never sent InstallSnapshot to node 3"
    );
    assert!(
        installs
            .iter()
            .all(|s| s.index == snap && s.membership == Membership::with_voters([1, 2, 3]))
    );
    assert!(
        !seen
            .iter()
            .any(|e| e.to == 2 && matches!(e.message.kind, MessageKind::InstallSnapshot { .. })),
        "the up-to-date follower was sent a snapshot"
    );
    assert_eq!(
        c.node(3).status().snapshot_index,
        snap,
        "node 3 installed the snapshot"
    );
    assert_eq!(
        c.member(3).disk.snapshot.index,
        snap,
        "the snapshot is durable"
    );
    assert_eq!(c.member(3).disk.snapshot_data.len() as Index, snap);
    settle(&mut c, 1, &[1, 2, 3]);
    assert_eq!(
        c.member(3).applied,
        c.member(1).applied,
        "identical state machines"
    );
    assert_same_applied(&c, &[1, 2, 3]);

    // Node 3 restarts from its disk: the snapshot and the entries after it.
    let applied_before = c.member(3).applied.clone();
    c.crash(3);
    c.restart(3);
    assert_eq!(c.node(3).status().snapshot_index, snap);
    assert!(c.node(3).log().committed() >= snap);
    assert_eq!(
        c.member(3).applied.len() as Index,
        snap,
        "restored from the snapshot"
    );
    let last = propose_and_commit(&mut c, 1, "after-restart", 2);
    settle(&mut c, 1, &[1, 2, 3]);
    assert!(c.member(3).applied.len() as Index >= last);
    assert_eq!(
        &c.member(3).applied[..applied_before.len()],
        &applied_before[..]
    );
    assert_same_applied(&c, &[1, 2, 3]);
}

#[test]
fn section_7_new_member_joins_from_a_snapshot_that_carries_the_configuration() {
    let mut c = Cluster::new(3, 52);
    elect(&mut c, 1);
    propose_and_commit(&mut c, 1, "early", 10);
    settle(&mut c, 1, &[1, 2, 3]);
    for id in [1, 2, 3] {
        c.snapshot(id);
    }
    c.add_member(4, Disk::default());
    let index = change(&mut c, 1, ConfChange::AddVoter(4));
    let mut seen = Vec::new();
    deliver_recording(&mut c, &mut seen);
    assert!(
        seen.iter()
            .any(|e| e.to == 4 && matches!(e.message.kind, MessageKind::InstallSnapshot { .. })),
        "the joining member needs the compacted prefix as a snapshot"
    );
    assert!(commit(&c, 1) >= index);
    settle(&mut c, 1, &[1, 2, 3, 4]);
    assert_eq!(
        c.node(4).membership(),
        &Membership::with_voters([1, 2, 3, 4])
    );
    assert_eq!(c.applied_commands(4).len(), 10);
    assert_same_applied(&c, &[1, 2, 3, 4]);

    // The member restarts from the snapshot plus the configuration entry after it.
    c.crash(4);
    c.restart(4);
    assert_eq!(
        c.node(4).membership(),
        &Membership::with_voters([1, 2, 3, 4])
    );
    settle(&mut c, 1, &[1, 2, 3, 4]);
    assert_same_applied(&c, &[1, 2, 3, 4]);
}

#[test]
fn section_7_compaction_beyond_what_is_applied_and_durable_is_refused() {
    let mut c = Cluster::new(3, 53);
    elect(&mut c, 1);
    let applied = propose_and_commit(&mut c, 1, "x", 3);
    settle(&mut c, 1, &[1, 2, 3]);
    assert_eq!(c.member(1).applied.len() as Index, applied);

    let beyond = applied + 1;
    assert_eq!(
        c.node(1).snapshot_meta(beyond),
        Err(CompactError::NotApplied {
            index: beyond,
            limit: applied
        })
    );
    assert_eq!(
        c.node_mut(1).compact(beyond),
        Err(CompactError::NotApplied {
            index: beyond,
            limit: applied
        })
    );
    assert_eq!(
        c.node_mut(1).compact(0),
        Err(CompactError::AlreadyCompacted {
            index: 0,
            snapshot: 0
        })
    );

    // Committed but not durable locally: the followers persist and acknowledge, the leader's
    // own write is still outstanding.
    c.auto_persist = false;
    let p = propose(&mut c, 1, "not-durable-at-leader");
    for _ in 0..10 {
        c.deliver_all(QUIET);
        for id in [2, 3] {
            while c.persist_one(id) {}
        }
    }
    assert!(
        commit(&c, 1) >= p,
        "followers' durable copies commit the entry"
    );
    assert!(
        c.node(1).log().stable() < p,
        "the leader's copy is not durable"
    );
    assert_eq!(
        c.member(1).applied.len() as Index,
        applied,
        "not applied before durable"
    );
    assert!(matches!(
        c.node_mut(1).compact(p),
        Err(CompactError::NotApplied { index, limit }) if index == p && limit == applied
    ));
    while c.persist_one(1) {}
    c.auto_persist = true;
    c.process_all();
    assert_eq!(c.member(1).applied.len() as Index, p);
    assert_eq!(c.snapshot(1), p);
    assert_eq!(c.node(1).status().snapshot_index, p);
}

// -------------------------------------------------------------------------------------------
// Durability (Raft §5, Figure 2: persistent state).

#[test]
fn section_5_4_committed_entries_survive_a_crash_of_every_member() {
    let mut c = Cluster::new(3, 61);
    elect(&mut c, 1);
    let last = propose_and_commit(&mut c, 1, "durable", 20);
    settle(&mut c, 1, &[1, 2, 3]);
    c.snapshot(2);
    let before = c.applied_commands(1);
    assert_eq!(before.len(), 20);
    let term = c.node(1).term();
    let commits: Vec<Index> = [1, 2, 3].iter().map(|&id| commit(&c, id)).collect();

    for id in [1, 2, 3] {
        c.crash(id);
    }
    for id in [1, 2, 3] {
        c.restart(id);
        let node = c.node(id);
        assert_eq!(node.term(), term, "node {id} lost its term");
        assert!(
            node.log().last_index() >= last,
            "node {id} lost log entries"
        );
        assert!(
            node.log().committed() >= commits[id as usize - 1],
            "node {id} forgot its commit index"
        );
    }
    assert_eq!(
        c.node(2).status().snapshot_index,
        last,
        "node 2 kept its snapshot"
    );

    let leader = c.run_until_leader(300).expect("a leader after the restart");
    assert!(c.node(leader).term() > term);
    let new = propose_and_commit(&mut c, leader, "after", 2);
    settle(&mut c, leader, &[1, 2, 3]);
    for id in [1, 2, 3] {
        let commands = c.applied_commands(id);
        assert_eq!(
            &commands[..20],
            &before[..],
            "node {id} lost a committed command"
        );
        assert_eq!(commands.len(), 22);
        assert!(c.member(id).applied.len() as Index >= new);
    }
    assert_same_applied(&c, &[1, 2, 3]);
}
