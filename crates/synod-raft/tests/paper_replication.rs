//! Log replication and reads, checked against the Raft paper (Ongaro & Ousterhout, "In Search of
//! an Understandable Consensus Algorithm", 2014) and Ongaro's thesis (2014).
//!
//! Test names say which section or figure they check: `figure_7_...`, `figure_8_...`,
//! `section_5_3_...` for the paper, `thesis_6_4_...`, `thesis_10_2_...` for the thesis.
//!
//! Most tests drive a [`Cluster`] and decide the fate of every message themselves (deliver, drop
//! or hold back) so that each scenario is built step by step, exactly as the figure shows it.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand_core::SeedableRng;
use rand_xorshift::XorShiftRng;
use synod_core::engine::Envelope;
use synod_core::{Entry, Index, Membership, NodeId, Payload, Role, SnapshotMeta, Term};
use synod_raft::cluster::{Cluster, Disk};
use synod_raft::progress::ProgressState;
use synod_raft::{AppendResult, Config, HardState, Message, MessageKind, RaftNode, RestoreState};

type Env = Envelope<Message>;

// ------------------------------------------------------------------------------------------------
// Helpers.

/// What happens to one message in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Deliver,
    Drop,
    /// Set aside and returned to the caller, who may deliver it later.
    Hold,
}

/// Delivers every message in the network, and everything that delivering it causes, asking
/// `fate` about each one (it may also rewrite the message). Returns the messages held back.
fn pump(c: &mut Cluster, mut fate: impl FnMut(&Cluster, &mut Env) -> Fate) -> Vec<Env> {
    c.process_all();
    let mut held = Vec::new();
    let mut budget = 1_000_000;
    while let Some(mut env) = c.network.pop_front() {
        budget -= 1;
        assert!(budget > 0, "the network never went quiet");
        match fate(c, &mut env) {
            Fate::Deliver => c.deliver(env),
            Fate::Drop => {}
            Fate::Hold => held.push(env),
        }
    }
    held
}

fn deliver_everything(c: &mut Cluster) {
    let held = pump(c, |_, _| Fate::Deliver);
    assert!(held.is_empty());
}

/// Ticks `id` alone until it asks for votes (pre-votes or votes); the requests are left in the
/// network.
fn start_campaign(c: &mut Cluster, id: NodeId) {
    for _ in 0..200 {
        c.node_mut(id).tick();
        c.process(id);
        let asked = c
            .network
            .iter()
            .any(|e| e.from == id && matches!(e.message.kind, MessageKind::RequestVote { .. }));
        if asked {
            return;
        }
    }
    panic!("node {id} never campaigned");
}

/// Makes `id` campaign (again, if it loses or splits the vote) until it leads, delivering
/// messages according to `fate`. Returns the messages held back.
fn elect(
    c: &mut Cluster,
    id: NodeId,
    mut fate: impl FnMut(&Cluster, &mut Env) -> Fate,
) -> Vec<Env> {
    let mut held = Vec::new();
    for _ in 0..10 {
        if c.node(id).role() == Role::Leader {
            return held;
        }
        start_campaign(c, id);
        held.extend(pump(c, &mut fate));
    }
    assert_eq!(
        c.node(id).role(),
        Role::Leader,
        "node {id} could not win an election"
    );
    held
}

/// Ticks only the members `ids` once each and processes what they produce.
fn tick_nodes(c: &mut Cluster, ids: &[NodeId]) {
    for &id in ids {
        c.node_mut(id).tick();
    }
    for &id in ids {
        c.process(id);
    }
}

/// Ticks `ids` (delivering everything, holding back what `fate` says) until one of them leads.
fn tick_until_one_leads(
    c: &mut Cluster,
    ids: &[NodeId],
    mut fate: impl FnMut(&Cluster, &mut Env) -> Fate,
) -> (NodeId, Vec<Env>) {
    let mut held = Vec::new();
    for _ in 0..500 {
        tick_nodes(c, ids);
        held.extend(pump(c, &mut fate));
        if let Some(&leader) = ids.iter().find(|&&id| c.node(id).role() == Role::Leader) {
            return (leader, held);
        }
    }
    panic!("none of {ids:?} became leader");
}

/// Lets one heartbeat interval pass on `leader` alone and delivers everything. A follower whose
/// acknowledgement reached the leader after the commit index moved learns the new commit index
/// from the next heartbeat (Figure 2: "leaderCommit" rides on later AppendEntries, heartbeats
/// included), not necessarily at once.
fn heartbeat(c: &mut Cluster, leader: NodeId) {
    for _ in 0..c.node(leader).config().heartbeat_ticks {
        tick_nodes(c, &[leader]);
    }
    deliver_everything(c);
}

fn others(c: &Cluster, id: NodeId) -> Vec<NodeId> {
    c.ids().into_iter().filter(|&o| o != id).collect()
}

/// Elects a leader in a fresh cluster, commits three commands and lets everything settle.
fn settle(c: &mut Cluster) -> NodeId {
    let leader = c.run_until_leader(300).expect("a leader");
    c.deliver_all(100_000);
    for data in [&b"one"[..], b"two", b"three"] {
        c.propose(leader, data).expect("leader accepts proposals");
    }
    deliver_everything(c);
    let commit = c.node(leader).log().committed();
    for id in c.ids() {
        assert_eq!(
            c.node(id).log().committed(),
            commit,
            "node {id} did not settle"
        );
    }
    leader
}

fn is_append(env: &Env) -> bool {
    matches!(env.message.kind, MessageKind::AppendEntries { .. })
}

fn is_heartbeat(env: &Env) -> bool {
    matches!(env.message.kind, MessageKind::Heartbeat { .. })
}

/// The indexes an AppendEntries carries (empty for any other message).
fn carried(env: &Env) -> Vec<Index> {
    match &env.message.kind {
        MessageKind::AppendEntries { entries, .. } => entries.iter().map(|e| e.index).collect(),
        _ => Vec::new(),
    }
}

fn count(envs: &[Env], pred: impl Fn(&Env) -> bool) -> usize {
    envs.iter().filter(|e| pred(e)).count()
}

/// An entry whose command names its position, so that equal (index, term) means equal entry.
fn entry(index: Index, term: Term) -> Entry {
    Entry {
        index,
        term,
        payload: Payload::Command(Bytes::from(format!("{index}@{term}"))),
    }
}

/// A log with these terms at indexes 1, 2, ...
fn entries_with_terms(terms: &[Term]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| entry(i as Index + 1, t))
        .collect()
}

fn terms(runs: &[(usize, Term)]) -> Vec<Term> {
    runs.iter()
        .flat_map(|&(n, t)| std::iter::repeat_n(t, n))
        .collect()
}

fn log_terms(node: &RaftNode) -> Vec<(Index, Term)> {
    let log = node.log();
    (log.first_index()..=log.last_index())
        .map(|i| (i, log.term(i).expect("held")))
        .collect()
}

fn log_entries(node: &RaftNode) -> Vec<Entry> {
    let log = node.log();
    (log.first_index()..=log.last_index())
        .map(|i| log.entry(i).expect("held").clone())
        .collect()
}

/// Builds a cluster whose members start from hand-made durable state:
/// `(id, current term, log terms, commit index)`.
fn cluster_from_logs(
    seed: u64,
    config: impl Fn(NodeId) -> Config + 'static,
    members: &[(NodeId, Term, &[Term], Index)],
) -> Cluster {
    let mut c = Cluster::with_config(0, seed, config);
    let membership = Membership::with_voters(members.iter().map(|m| m.0));
    for &(id, term, log, commit) in members {
        c.add_member(
            id,
            Disk {
                hard_state: HardState {
                    term,
                    vote: None,
                    commit,
                },
                snapshot: SnapshotMeta {
                    index: 0,
                    term: 0,
                    membership: membership.clone(),
                },
                snapshot_data: Vec::new(),
                entries: entries_with_terms(log),
            },
        );
    }
    c
}

/// Raft's Log Matching Property (§5.3): if two logs hold an entry with the same index and term,
/// the logs are identical up to and including that index.
fn assert_log_matching(c: &Cluster) {
    let running: Vec<(NodeId, Vec<Entry>)> = c
        .members
        .iter()
        .filter_map(|(&id, m)| m.node.as_ref().map(|n| (id, log_entries(n))))
        .collect();
    for (i, (a, la)) in running.iter().enumerate() {
        for (b, lb) in &running[i + 1..] {
            for (n, (ea, eb)) in la.iter().zip(lb).enumerate() {
                if ea.term == eb.term {
                    assert_eq!(
                        la[..=n],
                        lb[..=n],
                        "log matching: {a} and {b} agree on the term at {} but not before",
                        ea.index
                    );
                }
            }
        }
    }
}

fn applied_terms(c: &Cluster, id: NodeId) -> Vec<(Index, Term)> {
    c.member(id)
        .applied
        .iter()
        .map(|e| (e.index, e.term))
        .collect()
}

fn served(c: &Cluster, id: NodeId, context: u64) -> Option<Index> {
    c.member(id)
        .reads
        .iter()
        .find(|&&(ctx, _)| ctx == context)
        .map(|&(_, index)| index)
}

// ------------------------------------------------------------------------------------------------
// Figure 7.

/// The leader's log in Figure 7 (indexes 1–10).
const FIGURE_7_LEADER: &[Term] = &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6];

/// Followers (a)–(f) of Figure 7, with the most rejections fast backtracking may need for each:
/// one per term the follower must skip (plus one if its log is shorter than the leader's).
const FIGURE_7_FOLLOWERS: [(&str, &[Term], usize); 6] = [
    ("a", &[1, 1, 1, 4, 4, 5, 5, 6, 6], 1),
    ("b", &[1, 1, 1, 4], 1),
    ("c", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], 0),
    ("d", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], 0),
    ("e", &[1, 1, 1, 4, 4, 4, 4], 2),
    ("f", &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 2),
];

/// Figure 7: when the leader at the top comes to power in term 8, any of the followers (a)–(f)
/// could be in its cluster. The leader brings every one of them to exactly its own log: missing
/// entries are added ((a), (b), (e)), extraneous uncommitted ones are removed ((c), (d)), and
/// both happen for (f). The leader's own log only grows (by its term-8 no-op).
#[test]
fn figure_7_leader_brings_each_follower_a_to_f_to_exactly_its_own_log() {
    // Node 1 is the leader, nodes 2–7 are followers (a)–(f). Each member's current term is the
    // term of its last entry; the leader has seen term 7 (as (d) shows, term 7 had a leader), so
    // its election is in term 8, as in the figure.
    let mut members: Vec<(NodeId, Term, &[Term], Index)> = vec![(1, 7, FIGURE_7_LEADER, 0)];
    for (i, (_, log, _)) in FIGURE_7_FOLLOWERS.iter().enumerate() {
        members.push((i as NodeId + 2, *log.last().unwrap(), log, 0));
    }
    let mut c = cluster_from_logs(7, Config::new, &members);
    let leader_disk_before = c.member(1).disk.entries.clone();

    let mut votes = BTreeMap::new();
    let mut rejections: BTreeMap<NodeId, usize> = BTreeMap::new();
    elect(&mut c, 1, |_, env| {
        match env.message.kind {
            MessageKind::RequestVoteResponse {
                pre_vote: false,
                granted,
            } => {
                votes.insert(env.from, granted);
            }
            MessageKind::AppendEntriesResponse(AppendResult::Reject { .. }) => {
                *rejections.entry(env.from).or_default() += 1;
            }
            _ => {}
        }
        Fate::Deliver
    });

    heartbeat(&mut c, 1);

    // §5.4.1: (c) and (d) hold logs more up-to-date than the leader's and refuse their votes;
    // the other four make a majority of seven with the leader.
    assert_eq!(c.node(1).term(), 8);
    assert_eq!(
        votes,
        BTreeMap::from([
            (2, true),
            (3, true),
            (4, false),
            (5, false),
            (6, true),
            (7, true)
        ])
    );

    // The leader's log is the figure's plus its own no-op at index 11, term 8; it never
    // overwrote anything of its own, on disk or in memory.
    let leader_log = log_entries(c.node(1));
    assert_eq!(leader_log[..10], entries_with_terms(FIGURE_7_LEADER)[..]);
    assert_eq!(
        leader_log[10],
        Entry {
            index: 11,
            term: 8,
            payload: Payload::Noop
        }
    );
    assert_eq!(c.member(1).disk.entries[..10], leader_disk_before[..]);
    assert_eq!(c.member(1).disk.entries, leader_log);

    for (i, (name, _, max_rejections)) in FIGURE_7_FOLLOWERS.iter().enumerate() {
        let id = i as NodeId + 2;
        assert_eq!(
            log_entries(c.node(id)),
            leader_log,
            "follower ({name}) does not hold exactly the leader's log"
        );
        assert_eq!(
            c.member(id).disk.entries,
            leader_log,
            "follower ({name}) did not store exactly the leader's log"
        );
        let rejected = rejections.get(&id).copied().unwrap_or(0);
        assert!(
            rejected <= *max_rejections,
            "follower ({name}) rejected {rejected} AppendEntries, expected at most {max_rejections}"
        );
        // Everything is committed and applied, identically everywhere.
        assert_eq!(c.node(id).log().committed(), 11, "follower ({name})");
        assert_eq!(c.member(id).applied, leader_log, "follower ({name})");
    }
    assert_eq!(c.member(1).applied, leader_log);
    assert_log_matching(&c);
    c.check_state_machine_safety();
}

// ------------------------------------------------------------------------------------------------
// Figure 8.

/// Figure 8 is from the paper, which has neither pre-vote nor check-quorum (thesis §9.6, §6.2):
/// turn them off so servers can be elected exactly when the figure says. One entry per message
/// lets the leader of (c) send index 2 without index 3.
fn figure_8_config(id: NodeId) -> Config {
    Config {
        pre_vote: false,
        check_quorum: false,
        max_entries_per_message: 1,
        ..Config::new(id)
    }
}

/// Builds Figure 8 (a)–(c) with servers S1–S5 (ids 1–5). Returns the cluster and the held-back
/// AppendEntries that would give S3 S1's term-4 entry.
fn figure_8_through_c() -> (Cluster, Vec<Env>) {
    let mut c = Cluster::with_config(5, 8, figure_8_config);

    // Before (a): S5 leads term 1 and commits index 1 (its no-op) everywhere.
    elect(&mut c, 5, |_, _| Fate::Deliver);
    heartbeat(&mut c, 5);
    for id in 1..=5 {
        assert_eq!(log_terms(c.node(id)), [(1, 1)]);
        assert_eq!(c.node(id).log().committed(), 1);
    }

    // (a): S1 is leader in term 2; its entry at index 2 reaches S2 only.
    elect(&mut c, 1, |_, env| {
        if is_append(env) && env.from == 1 && env.to != 2 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    assert_eq!(c.node(1).term(), 2);
    for id in [1, 2] {
        assert_eq!(log_terms(c.node(id)), [(1, 1), (2, 2)], "S{id} in (a)");
    }
    for id in [3, 4, 5] {
        assert_eq!(log_terms(c.node(id)), [(1, 1)], "S{id} in (a)");
    }
    assert_eq!(c.node(1).log().committed(), 1);

    // (b): S1 crashes; S5 is elected in term 3 by S3, S4 and itself (S2's log is more
    // up-to-date) and accepts a different entry at index 2, which reaches nobody else.
    c.crash(1);
    elect(&mut c, 5, |_, env| {
        if is_append(env) && env.from == 5 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    assert_eq!(c.node(5).term(), 3);
    assert_eq!(log_terms(c.node(5)), [(1, 1), (2, 3)]);

    // (c): S5 crashes; S1 restarts, is elected (in term 4, once its term-3 bid fails because S3
    // and S4 voted for S5) and continues replicating: its term-2 entry reaches S3, so it is
    // stored on a majority (S1, S2, S3). S1's term-4 entry reaches S2 but is held back from
    // S3; S4 hears nothing.
    c.crash(5);
    c.restart(1);
    let held = elect(&mut c, 1, |c, env| {
        if !is_append(env) || env.from != 1 {
            return Fate::Deliver;
        }
        match env.to {
            4 => Fate::Drop,
            3 if c.node(3).log().term(2) == Some(2) && carried(env).contains(&3) => Fate::Hold,
            _ => Fate::Deliver,
        }
    });
    assert_eq!(c.node(1).term(), 4);
    assert_eq!(log_terms(c.node(1)), [(1, 1), (2, 2), (3, 4)]);
    assert_eq!(log_terms(c.node(2)), [(1, 1), (2, 2), (3, 4)]);
    assert_eq!(log_terms(c.node(3)), [(1, 1), (2, 2)]);
    assert_eq!(log_terms(c.node(4)), [(1, 1)]);
    for id in [1, 2, 3] {
        assert_eq!(
            c.member(id).disk.entries[1],
            entry_at(&c, 1, 2),
            "S{id} stores (2, 2)"
        );
    }
    // S1 knows that S1, S2 and S3 hold index 2 durably...
    assert_eq!(c.node(1).status().persisted, 3);
    assert_eq!(c.node(1).progress(2).unwrap().matched, 3);
    assert_eq!(c.node(1).progress(3).unwrap().matched, 2);
    // ...but §5.4.2: an entry from an earlier term is never committed by counting replicas.
    assert_eq!(
        c.node(1).log().committed(),
        1,
        "S1 committed its term-2 entry by counting replicas"
    );
    for id in [1, 2, 3, 4] {
        assert_eq!(
            applied_terms(&c, id),
            [(1, 1)],
            "S{id} applied beyond index 1"
        );
    }
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].to, carried(&held[0])), (3, vec![3]));
    (c, held)
}

fn entry_at(c: &Cluster, id: NodeId, index: Index) -> Entry {
    c.node(id).log().entry(index).expect("held").clone()
}

/// Figure 8 (a)–(d): the term-2 entry S1 replicated to a majority in (c) is not committed, and
/// that is what makes (d) safe: S5 can still be elected (by S3, S4 and itself) and replace it
/// with its own term-3 entry everywhere, S1 included.
#[test]
fn figure_8_entry_of_earlier_term_on_majority_is_not_committed_by_counting_replicas() {
    let (mut c, _never_delivered) = figure_8_through_c();

    // (d): S1 crashes; S5 restarts and is elected (S3 and S4 grant: S5's last term, 3, beats
    // their 2 and 1).
    c.crash(1);
    c.restart(5);
    elect(&mut c, 5, |_, _| Fate::Deliver);
    heartbeat(&mut c, 5);
    let term = c.node(5).term();
    assert!(term >= 5);
    for id in 2..=5 {
        assert_eq!(
            log_terms(c.node(id)),
            [(1, 1), (2, 3), (3, term)],
            "S{id}: index 2 is S5's term-3 entry"
        );
        assert_eq!(c.node(id).log().committed(), 3, "S{id}");
        assert_eq!(applied_terms(&c, id), [(1, 1), (2, 3), (3, term)], "S{id}");
    }

    // S1 comes back and its term-2 and term-4 entries are overwritten too.
    c.restart(1);
    heartbeat(&mut c, 5);
    assert_eq!(log_terms(c.node(1)), [(1, 1), (2, 3), (3, term)]);
    assert_eq!(applied_terms(&c, 1), [(1, 1), (2, 3), (3, term)]);
    assert_log_matching(&c);
    c.check_state_machine_safety();
}

/// Figure 8 (e): if instead S1 replicates an entry of its current term (4) to a majority before
/// crashing, that entry is committed, and with it the term-2 entry before it (Log Matching).
/// S5 then cannot win an election, and every server ends up applying the term-2 entry.
#[test]
fn figure_8_e_earlier_term_entry_commits_with_an_entry_of_the_current_term() {
    let (mut c, held) = figure_8_through_c();

    for env in held {
        c.deliver(env);
    }
    pump(&mut c, |_, env| {
        if is_append(env) && env.to == 4 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    assert_eq!(log_terms(c.node(3)), [(1, 1), (2, 2), (3, 4)]);
    assert_eq!(
        c.node(1).log().committed(),
        3,
        "the term-4 entry is on S1, S2 and S3"
    );
    assert_eq!(applied_terms(&c, 1), [(1, 1), (2, 2), (3, 4)]);

    // S1 crashes. S5 restarts but cannot be elected: S2 and S3 hold a term-4 entry, more
    // up-to-date than S5's term-3 entry, so only S4 votes for it.
    c.crash(1);
    c.restart(5);
    for _ in 0..5 {
        start_campaign(&mut c, 5);
        deliver_everything(&mut c);
        assert_ne!(
            c.node(5).role(),
            Role::Leader,
            "S5 won without the committed entries"
        );
    }

    // S2 can be elected, and the committed entries survive everywhere.
    elect(&mut c, 2, |_, _| Fate::Deliver);
    c.restart(1);
    heartbeat(&mut c, 2);
    let log = log_entries(c.node(2));
    for id in 1..=5 {
        assert_eq!(log_entries(c.node(id)), log, "S{id}");
        assert_eq!(c.member(id).applied, log, "S{id}");
        assert_eq!(
            c.member(id).applied[1].term,
            2,
            "S{id} applied index 2 from term 2"
        );
    }
    assert_log_matching(&c);
    c.check_state_machine_safety();
}

// ------------------------------------------------------------------------------------------------
// §5.3: the consistency check and log matching.

fn lone_node(id: NodeId, term: Term, log: &[Term], commit: Index) -> RaftNode {
    let config = Config {
        check_invariants: true,
        ..Config::new(id)
    };
    let state = RestoreState {
        hard_state: HardState {
            term,
            vote: None,
            commit,
        },
        snapshot: SnapshotMeta {
            index: 0,
            term: 0,
            membership: Membership::with_voters(1..=3),
        },
        entries: entries_with_terms(log),
        applied: 0,
    };
    RaftNode::restore(config, Box::new(XorShiftRng::seed_from_u64(id)), state).expect("restores")
}

/// What a lone node put out while its batches were drained (every write persisted at once).
#[derive(Default)]
struct Drained {
    /// Messages handed out in `Ready::messages`.
    sent_now: Vec<Env>,
    /// Messages released by `persisted`: they waited for durability.
    sent_after_write: Vec<Env>,
    committed: Vec<Entry>,
    truncations: Vec<Index>,
}

impl Drained {
    fn append_results(&self) -> Vec<AppendResult> {
        self.sent_now
            .iter()
            .chain(&self.sent_after_write)
            .filter_map(|e| match e.message.kind {
                MessageKind::AppendEntriesResponse(result) => Some(result),
                _ => None,
            })
            .collect()
    }
}

fn drain(node: &mut RaftNode) -> Drained {
    let mut out = Drained::default();
    while node.has_ready() {
        let mut ready = node.ready();
        out.sent_now.append(&mut ready.messages);
        out.committed.append(&mut ready.committed);
        if let Some(write) = ready.write.take() {
            out.truncations.extend(write.truncate_from());
            out.sent_after_write.extend(node.persisted(write));
        }
    }
    out
}

fn append(
    term: Term,
    prev_log_index: Index,
    prev_log_term: Term,
    entries: Vec<Entry>,
    leader_commit: Index,
) -> Message {
    Message {
        term,
        kind: MessageKind::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        },
    }
}

/// Figure 2, AppendEntries receiver: reject if the log has no entry at prevLogIndex with
/// prevLogTerm; delete an existing entry that conflicts with a new one, and all that follow it;
/// append new entries; never truncate because of a stale or duplicate request.
#[test]
fn section_5_3_follower_rejects_mismatched_prev_and_truncates_only_conflicting_entries() {
    let mut f = lone_node(2, 2, &[1, 1, 2], 0);

    // The entry at prevLogIndex has another term: reject with the fast-backtracking hint.
    f.step(1, append(3, 3, 3, vec![entry(4, 3)], 0));
    let out = drain(&mut f);
    assert_eq!(
        out.append_results(),
        [AppendResult::Reject {
            rejected_index: 3,
            conflict_term: Some(2),
            conflict_index: 3
        }]
    );
    assert_eq!(
        log_terms(&f),
        [(1, 1), (2, 1), (3, 2)],
        "a rejection changes nothing"
    );
    assert_eq!((f.term(), f.leader()), (3, Some(1)));

    // No entry at prevLogIndex at all.
    f.step(1, append(3, 5, 3, vec![entry(6, 3)], 0));
    assert_eq!(
        drain(&mut f).append_results(),
        [AppendResult::Reject {
            rejected_index: 5,
            conflict_term: None,
            conflict_index: 4
        }]
    );
    assert_eq!(f.log().last_index(), 3);

    // prev matches at index 2: the conflicting entry 3 (term 2) and anything after it go.
    f.step(1, append(3, 2, 1, vec![entry(3, 3), entry(4, 3)], 0));
    let out = drain(&mut f);
    assert_eq!(
        out.append_results(),
        [AppendResult::Success { match_index: 4 }]
    );
    assert_eq!(log_terms(&f), [(1, 1), (2, 1), (3, 3), (4, 3)]);
    assert_eq!(
        out.truncations,
        [3],
        "storage is told to drop entry 3 first"
    );
    assert!(
        out.sent_now.is_empty(),
        "the acknowledgement left before the entries were durable"
    );

    // A delayed duplicate of a shorter request matches and must not truncate entry 4.
    f.step(1, append(3, 2, 1, vec![entry(3, 3)], 0));
    let out = drain(&mut f);
    assert_eq!(
        out.append_results(),
        [AppendResult::Success { match_index: 3 }]
    );
    assert_eq!(log_terms(&f), [(1, 1), (2, 1), (3, 3), (4, 3)]);
    assert!(out.truncations.is_empty());

    // commitIndex = min(leaderCommit, index of last new entry).
    f.step(1, append(3, 3, 3, vec![], 4));
    let out = drain(&mut f);
    assert_eq!(
        f.log().committed(),
        3,
        "only entries known to match the leader's commit"
    );
    assert_eq!(out.committed.len(), 3);
    f.step(1, append(3, 4, 3, vec![], 4));
    assert_eq!(drain(&mut f).committed, [entry(4, 3)]);

    // A (broken) leader of a later term that would overwrite a committed entry is ignored.
    f.step(3, append(4, 2, 1, vec![entry(3, 4)], 4));
    drain(&mut f);
    assert_eq!(log_terms(&f), [(1, 1), (2, 1), (3, 3), (4, 3)]);
}

/// §5.3: "a leader never overwrites or deletes entries in its own log". A leader cut off with
/// uncommitted entries keeps them whatever it is told in its own term; only once it has learned
/// of a later term, as a follower, are they replaced.
#[test]
fn section_5_3_leader_never_overwrites_its_own_log_only_followers_truncate() {
    let mut c = Cluster::new(3, 53);
    let old = settle(&mut c);
    let rest = others(&c, old);

    c.isolate(old);
    for data in [&b"lost-1"[..], b"lost-2", b"lost-3"] {
        c.propose(old, data).expect("still leader");
    }
    deliver_everything(&mut c);
    let before = log_entries(c.node(old));
    let committed = c.node(old).log().committed();
    let term = c.node(old).term();

    // Same-term AppendEntries (only a broken peer sends one) with conflicting entries.
    c.node_mut(old).step(
        rest[0],
        append(
            term,
            committed,
            term,
            vec![entry(committed + 1, term), entry(committed + 2, term)],
            committed,
        ),
    );
    // A rejection, whatever its hint, moves the leader's view of the follower, never its log.
    let last = c.node(old).log().last_index();
    c.node_mut(old).step(
        rest[0],
        Message {
            term,
            kind: MessageKind::AppendEntriesResponse(AppendResult::Reject {
                rejected_index: last,
                conflict_term: Some(term),
                conflict_index: 1,
            }),
        },
    );
    deliver_everything(&mut c);
    assert_eq!(c.node(old).role(), Role::Leader);
    assert_eq!(log_entries(c.node(old)), before);
    assert_eq!(c.member(old).disk.entries, before);

    // The others elect a leader that commits its own entries at the same indexes.
    let (new, _) = tick_until_one_leads(&mut c, &rest, |_, _| Fate::Deliver);
    c.propose(new, b"kept").expect("new leader");
    deliver_everything(&mut c);

    // Reconnect: whenever the old leader's log loses an entry, it must no longer lead.
    c.heal();
    let mut truncated = false;
    for _ in 0..50 {
        tick_nodes(&mut c, &[new]);
        while let Some(env) = c.network.pop_front() {
            let to = env.to;
            c.deliver(env);
            if to == old {
                let node = c.node(old);
                if before
                    .iter()
                    .any(|e| node.log().term(e.index) != Some(e.term))
                {
                    assert_ne!(
                        node.role(),
                        Role::Leader,
                        "a leader lost entries of its log"
                    );
                    truncated = true;
                }
            }
        }
        if log_entries(c.node(old)) == log_entries(c.node(new)) {
            break;
        }
    }
    assert!(
        truncated,
        "the old leader's uncommitted entries were never replaced"
    );
    assert_eq!(log_entries(c.node(old)), log_entries(c.node(new)));
    assert!(
        !c.applied_commands(old)
            .iter()
            .any(|cmd| cmd.starts_with(b"lost"))
    );
    assert_log_matching(&c);
    c.check_state_machine_safety();
}

/// Replicates from a leader with log `leader` (node 1) to a follower with log `follower`
/// (node 2) whose entries after index 10 conflict, and counts the follower's rejections. With
/// `one_by_one`, the follower's hints are stripped so that the leader backs up one entry per
/// rejection, as in the basic algorithm of §5.3.
fn backtrack(leader: &[Term], follower: &[Term], one_by_one: bool) -> usize {
    let mut c = cluster_from_logs(
        11,
        Config::new,
        &[
            (1, *leader.last().unwrap(), leader, 10),
            (2, *follower.last().unwrap(), follower, 10),
        ],
    );
    let mut rejections = 0;
    elect(&mut c, 1, |_, env| {
        if let MessageKind::AppendEntriesResponse(AppendResult::Reject { rejected_index, .. }) =
            env.message.kind
        {
            rejections += 1;
            if one_by_one {
                env.message.kind = MessageKind::AppendEntriesResponse(AppendResult::Reject {
                    rejected_index,
                    conflict_term: None,
                    conflict_index: rejected_index,
                });
            }
        }
        Fate::Deliver
    });
    let log = log_entries(c.node(1));
    assert_eq!(
        log.len(),
        leader.len() + 1,
        "the leader's log only grew by its no-op"
    );
    assert_eq!(log_entries(c.node(2)), log);
    assert_eq!(c.member(2).disk.entries, log);
    assert_eq!(c.node(2).log().committed(), log.len() as Index);
    rejections
}

/// §5.3 (the optimization at the end of the section): with the conflicting term and the first
/// index of that term in each rejection, the leader skips a whole term per round trip instead
/// of one entry. A follower with 50 entries of a stale term is repaired after one rejection;
/// backing up one entry at a time takes 50.
#[test]
fn section_5_3_fast_backtracking_skips_50_conflicting_entries_in_few_round_trips() {
    let cases: [(&str, Vec<Term>, Vec<Term>, usize); 3] = [
        (
            "50 stale term-2 entries, leader has no term 2",
            terms(&[(10, 1), (50, 3)]),
            terms(&[(10, 1), (50, 2)]),
            50,
        ),
        (
            "follower's term-2 run outlasts the leader's",
            terms(&[(10, 1), (20, 2), (30, 3)]),
            terms(&[(10, 1), (50, 2)]),
            30,
        ),
        (
            "follower's log is 140 entries longer than the leader's",
            terms(&[(10, 1), (10, 3)]),
            terms(&[(10, 1), (150, 2)]),
            10,
        ),
    ];
    for (name, leader, follower, conflicting) in &cases {
        let fast = backtrack(leader, follower, false);
        let slow = backtrack(leader, follower, true);
        assert!(
            fast <= 4,
            "{name}: fast backtracking needed {fast} rejections"
        );
        assert!(
            slow >= *conflicting,
            "{name}: one-by-one backtracking needed only {slow} rejections"
        );
        assert!(fast < slow);
    }
}

// ------------------------------------------------------------------------------------------------
// Thesis §10.2.2: batching and pipelining (flow control).

/// The AppendEntries from `from` to `to` among `envs`, as (prev_log_index, indexes carried).
fn appends_to(envs: &[Env], from: NodeId, to: NodeId) -> Vec<(Index, Vec<Index>)> {
    envs.iter()
        .filter(|e| e.from == from && e.to == to)
        .filter_map(|e| match &e.message.kind {
            MessageKind::AppendEntries {
                prev_log_index,
                entries,
                ..
            } => Some((*prev_log_index, entries.iter().map(|e| e.index).collect())),
            _ => None,
        })
        .collect()
}

/// Thesis §10.2.2: proposals made between two `ready` calls are sent together, at most
/// `max_entries_per_message` per AppendEntries.
#[test]
fn thesis_10_2_2_batching_100_proposals_go_out_at_most_8_entries_per_message() {
    let mut c = Cluster::with_config(3, 61, |id| Config {
        max_entries_per_message: 8,
        ..Config::new(id)
    });
    let leader = c.run_until_leader(300).expect("a leader");
    c.deliver_all(100_000);
    let followers = others(&c, leader);
    for &f in &followers {
        assert_eq!(
            c.node(leader).progress(f).unwrap().state,
            ProgressState::Replicate
        );
    }

    let first = c.node(leader).log().last_index() + 1;
    for i in 0..100 {
        c.node_mut(leader)
            .propose(Bytes::from(format!("cmd {i}")))
            .unwrap();
    }
    assert!(c.network.is_empty());
    c.process(leader);
    let sent: Vec<Env> = c.network.iter().cloned().collect();
    for &f in &followers {
        let appends = appends_to(&sent, leader, f);
        assert_eq!(
            appends.len(),
            13,
            "100 entries in messages of 8: 12 full, 1 of 4"
        );
        assert!(
            appends
                .iter()
                .all(|(_, idx)| !idx.is_empty() && idx.len() <= 8)
        );
        let indexes: Vec<Index> = appends.iter().flat_map(|(_, idx)| idx.clone()).collect();
        assert_eq!(indexes, (first..first + 100).collect::<Vec<_>>());
        for (prev, idx) in &appends {
            assert_eq!(*prev + 1, idx[0], "each message follows the previous one");
        }
    }

    let mut largest = 0;
    pump(&mut c, |_, env| {
        largest = largest.max(carried(env).len());
        Fate::Deliver
    });
    assert!(largest <= 8);
    for id in c.ids() {
        assert_eq!(c.applied_commands(id).len(), 100, "node {id}");
    }
    c.check_state_machine_safety();
}

/// `max_bytes_per_message` bounds the entry bytes of one AppendEntries, but an entry larger
/// than the limit still goes out, alone.
#[test]
fn thesis_10_2_2_batching_max_bytes_per_message_bounds_bytes_but_sends_at_least_one_entry() {
    const LIMIT: usize = 200;
    let mut c = Cluster::with_config(3, 62, |id| Config {
        max_bytes_per_message: LIMIT,
        ..Config::new(id)
    });
    let leader = c.run_until_leader(300).expect("a leader");
    c.deliver_all(100_000);
    let followers = others(&c, leader);

    // 26-byte commands are 50 bytes with the entry header: four fit in 200 bytes.
    for i in 0..20 {
        let command = Bytes::from(format!("{i:026}"));
        c.node_mut(leader).propose(command).unwrap();
    }
    c.process(leader);
    let sent: Vec<Env> = c.network.iter().cloned().collect();
    for env in sent.iter().filter(|e| is_append(e)) {
        let MessageKind::AppendEntries { entries, .. } = &env.message.kind else {
            unreachable!()
        };
        let bytes: usize = entries.iter().map(Entry::size_bytes).sum();
        assert!(bytes <= LIMIT, "{bytes} bytes in one message");
        assert_eq!(entries.len(), 4);
    }
    for &f in &followers {
        assert_eq!(appends_to(&sent, leader, f).len(), 5);
    }
    deliver_everything(&mut c);

    // A 1000-byte command exceeds the limit on its own: it is sent alone, then the next one.
    let big = c
        .node_mut(leader)
        .propose(Bytes::from(vec![7u8; 1000]))
        .unwrap();
    let small = c
        .node_mut(leader)
        .propose(Bytes::from_static(b"small"))
        .unwrap();
    c.process(leader);
    let sent: Vec<Env> = c.network.iter().cloned().collect();
    for &f in &followers {
        assert_eq!(
            appends_to(&sent, leader, f),
            [
                (big.index - 1, vec![big.index]),
                (big.index, vec![small.index])
            ]
        );
    }
    deliver_everything(&mut c);
    for id in c.ids() {
        assert_eq!(c.applied_commands(id).len(), 20 + 2, "node {id}");
    }
}

/// Thesis §10.2.2 pipelining with flow control: in probe state one AppendEntries at a time; in
/// replicate state at most `max_inflight_messages` unacknowledged; each acknowledgement frees
/// one slot.
#[test]
fn thesis_10_2_2_flow_control_probe_sends_one_replicate_at_most_max_inflight() {
    let mut c = Cluster::with_config(3, 71, |id| Config {
        max_inflight_messages: 2,
        max_entries_per_message: 1,
        ..Config::new(id)
    });
    let hold_appends = |_: &Cluster, env: &mut Env| {
        if is_append(env) && env.from == 1 {
            Fate::Hold
        } else {
            Fate::Deliver
        }
    };
    let held = elect(&mut c, 1, hold_appends);

    // A new leader knows nothing about its followers: it probes, one message each.
    for f in [2, 3] {
        assert_eq!(c.node(1).progress(f).unwrap().state, ProgressState::Probe);
        assert_eq!(appends_to(&held, 1, f).len(), 1, "one probe to {f}");
    }
    for i in 0..5 {
        c.node_mut(1).propose(Bytes::from(format!("a{i}"))).unwrap();
    }
    c.process(1);
    assert_eq!(
        count(c.network.make_contiguous(), is_append),
        0,
        "probe state sends one at a time"
    );

    // The probes are answered: replicate state, at most two unacknowledged messages.
    for env in held {
        c.deliver(env);
    }
    let held = pump(&mut c, hold_appends);
    for f in [2, 3] {
        let pr = c.node(1).progress(f).unwrap();
        assert_eq!(pr.state, ProgressState::Replicate);
        assert_eq!(pr.inflights.len(), 2);
        assert!(pr.is_paused());
        assert_eq!(
            appends_to(&held, 1, f),
            [(1, vec![2]), (2, vec![3])],
            "to {f}"
        );
    }
    for i in 0..5 {
        c.node_mut(1).propose(Bytes::from(format!("b{i}"))).unwrap();
    }
    c.process(1);
    assert_eq!(
        count(c.network.make_contiguous(), is_append),
        0,
        "window is full"
    );

    // One acknowledgement from node 2 frees one slot: exactly one more message goes to it.
    let (first, mut rest): (Vec<Env>, Vec<Env>) = held
        .into_iter()
        .partition(|e| e.to == 2 && carried(e) == [2]);
    for env in first {
        c.deliver(env);
    }
    let more = pump(&mut c, hold_appends);
    assert_eq!(appends_to(&more, 1, 2), [(3, vec![4])]);
    assert!(appends_to(&more, 1, 3).is_empty());
    assert_eq!(c.node(1).progress(2).unwrap().inflights.len(), 2);

    // Let everything through: all ten commands are replicated and applied.
    rest.extend(more);
    for env in rest {
        c.deliver(env);
    }
    deliver_everything(&mut c);
    heartbeat(&mut c, 1);
    for id in c.ids() {
        assert_eq!(c.applied_commands(id).len(), 10, "node {id}");
    }
    c.check_state_machine_safety();
}

// ------------------------------------------------------------------------------------------------
// Durability (thesis §10.2.1: the leader writes its log in parallel with replication, and counts
// toward a majority only once its own copy is durable).

/// Three members, follower C cut off. A and B hold the entry once B has persisted it, but A
/// (the leader) has not: the entry must not commit until A's own write is durable.
#[test]
fn thesis_10_2_1_leader_counts_itself_only_once_its_write_is_durable_3_nodes() {
    let mut c = Cluster::new(3, 81);
    let leader = c.run_until_leader(300).expect("a leader");
    c.deliver_all(100_000);
    let [b, cut_off] = others(&c, leader)[..] else {
        unreachable!()
    };
    c.auto_persist = false;
    c.cut.insert((leader, cut_off));
    c.cut.insert((cut_off, leader));

    let index = c.propose(leader, b"x").expect("leader");
    deliver_everything(&mut c);
    assert!(c.node(leader).log().committed() < index);

    // B persists and acknowledges.
    assert!(c.persist_one(b));
    deliver_everything(&mut c);
    assert_eq!(c.node(leader).progress(b).unwrap().matched, index);
    assert!(c.node(leader).status().persisted < index);
    assert!(
        c.node(leader).log().committed() < index,
        "committed with only one durable copy out of three"
    );

    // The leader's own write becomes durable: now two of three hold it.
    assert!(c.persist_one(leader));
    c.process(leader);
    assert_eq!(c.node(leader).log().committed(), index);
    assert_eq!(
        c.applied_commands(leader).last().map(|b| &b[..]),
        Some(&b"x"[..])
    );
}

/// Five members. The leader's own copy is not durable: two durable followers are not a majority
/// (three would be if the leader counted itself). A third durable follower is a majority
/// without the leader, and the entry commits. Committed entries reach the state machine of each
/// member (leader included) only once they are durable there.
#[test]
fn thesis_10_2_1_commit_without_the_leaders_copy_and_apply_only_durable_entries_5_nodes() {
    let mut c = Cluster::new(5, 82);
    let leader = c.run_until_leader(300).expect("a leader");
    c.deliver_all(100_000);
    let f = others(&c, leader);
    c.auto_persist = false;

    let index = c.propose(leader, b"x").expect("leader");
    deliver_everything(&mut c);
    for &id in &f {
        assert!(
            !c.member(id).unpersisted.is_empty(),
            "{id} received the entry"
        );
    }

    for &id in &f[..2] {
        assert!(c.persist_one(id));
    }
    deliver_everything(&mut c);
    assert_eq!(c.node(leader).progress(f[0]).unwrap().matched, index);
    assert_eq!(c.node(leader).progress(f[1]).unwrap().matched, index);
    assert!(
        c.node(leader).log().committed() < index,
        "the leader counted its own copy before it was durable"
    );

    assert!(c.persist_one(f[2]));
    deliver_everything(&mut c);
    assert_eq!(
        c.node(leader).log().committed(),
        index,
        "three durable followers of five"
    );
    assert!(c.node(leader).status().persisted < index);
    assert!(
        c.applied_commands(leader).is_empty(),
        "the leader applied an entry that is not durable on its disk"
    );

    // The commit index reached every follower. Those that persisted the entry apply it; f[3]
    // has not persisted it and must not.
    for &id in &f {
        assert_eq!(
            c.node(id).log().committed(),
            index,
            "follower {id} knows the commit"
        );
    }
    for &id in &f[..3] {
        assert_eq!(c.applied_commands(id).len(), 1, "follower {id}");
    }
    assert!(c.node(f[3]).status().persisted < index);
    assert!(
        c.applied_commands(f[3]).is_empty(),
        "applied before durable"
    );

    for id in [f[3], leader] {
        while c.persist_one(id) {}
        c.process(id);
        assert_eq!(
            c.applied_commands(id).len(),
            1,
            "node {id} after persisting"
        );
    }
    c.check_state_machine_safety();
}

// ------------------------------------------------------------------------------------------------
// Thesis §6.4: ReadIndex.

/// Thesis §6.4 steps 2–3: the leader records its commit index, then must hear a heartbeat round
/// acknowledged by a majority before serving the read. Without a lease, every new read needs a
/// new round.
#[test]
fn thesis_6_4_read_index_served_at_commit_after_quorum_heartbeat_not_before() {
    let mut c = Cluster::new(3, 91);
    let leader = settle(&mut c);
    let commit = c.node(leader).log().committed();

    c.node_mut(leader).read_index(7).unwrap();
    c.process(leader);
    let round: Vec<Env> = c.network.drain(..).collect();
    assert_eq!(round.len(), 2);
    assert!(round.iter().all(is_heartbeat));
    assert_eq!(
        served(&c, leader, 7),
        None,
        "served before any acknowledgement"
    );

    // One follower gets the heartbeat; until its answer arrives, nothing is confirmed.
    c.deliver(round[0].clone());
    assert_eq!(served(&c, leader, 7), None);
    let answer = c.network.pop_front().expect("heartbeat answer");
    assert!(matches!(
        answer.message.kind,
        MessageKind::HeartbeatResponse { .. }
    ));
    c.deliver(answer);
    assert_eq!(
        served(&c, leader, 7),
        Some(commit),
        "a majority (2 of 3) confirmed"
    );

    // The next read needs a round of its own.
    c.node_mut(leader).read_index(8).unwrap();
    c.process(leader);
    assert_eq!(served(&c, leader, 8), None);
    assert_eq!(count(c.network.make_contiguous(), is_heartbeat), 2);
    deliver_everything(&mut c);
    assert_eq!(served(&c, leader, 8), Some(commit));
    assert!(c.member(leader).failed_reads.is_empty());
}

/// Thesis §6.4 step 3: the heartbeat round must be sent after the read arrived. A round already
/// in flight when the read arrives proves nothing about the present and must not serve it.
#[test]
fn thesis_6_4_round_sent_before_the_read_arrived_does_not_confirm_it() {
    let mut c = Cluster::new(3, 92);
    let leader = settle(&mut c);
    let commit = c.node(leader).log().committed();

    // A periodic heartbeat round leaves.
    for _ in 0..c.node(leader).config().heartbeat_ticks {
        if c.network.iter().any(is_heartbeat) {
            break;
        }
        tick_nodes(&mut c, &[leader]);
    }
    let old_round: Vec<Env> = c.network.drain(..).collect();
    assert_eq!(count(&old_round, is_heartbeat), 2);

    c.node_mut(leader).read_index(9).unwrap();
    c.process(leader);
    assert_eq!(
        count(c.network.make_contiguous(), is_heartbeat),
        0,
        "one round in flight"
    );

    for env in old_round {
        c.deliver(env);
    }
    let new_round = pump(&mut c, |_, env| {
        if is_heartbeat(env) {
            Fate::Hold
        } else {
            Fate::Deliver
        }
    });
    assert_eq!(
        served(&c, leader, 9),
        None,
        "served by a round older than the read"
    );
    assert_eq!(
        count(&new_round, is_heartbeat),
        2,
        "a new round follows at once"
    );

    for env in new_round {
        c.deliver(env);
    }
    deliver_everything(&mut c);
    assert_eq!(served(&c, leader, 9), Some(commit));
}

/// Thesis §6.4: "the leader can batch many read-only queries on one round of heartbeats".
/// 50 reads share one round; 50 more, arriving while it is in flight, share the next one.
#[test]
fn thesis_6_4_many_reads_share_one_heartbeat_round() {
    let mut c = Cluster::new(3, 93);
    let leader = settle(&mut c);
    let commit = c.node(leader).log().committed();

    for context in 0..50 {
        c.node_mut(leader).read_index(context).unwrap();
    }
    c.process(leader);
    assert_eq!(
        count(c.network.make_contiguous(), is_heartbeat),
        2,
        "one round"
    );
    for context in 50..100 {
        c.node_mut(leader).read_index(context).unwrap();
    }
    c.process(leader);
    assert_eq!(
        count(c.network.make_contiguous(), is_heartbeat),
        2,
        "no round per read"
    );

    let mut heartbeats = 0;
    pump(&mut c, |_, env| {
        heartbeats += usize::from(is_heartbeat(env));
        Fate::Deliver
    });
    assert_eq!(heartbeats, 4, "two rounds for 100 reads");
    let reads = &c.member(leader).reads;
    assert_eq!(reads.len(), 100);
    assert!(reads.iter().all(|&(_, index)| index == commit));
}

/// Thesis §6.4: a follower forwards the read to the leader, which confirms it with a round and
/// answers with its commit index; the read is served on the follower once it has applied that
/// far.
#[test]
fn thesis_6_4_read_forwarded_from_a_follower_is_served_there() {
    let mut c = Cluster::new(3, 94);
    let leader = settle(&mut c);
    let follower = others(&c, leader)[0];
    let commit = c.node(leader).log().committed();

    c.node_mut(follower).read_index(11).unwrap();
    c.process(follower);
    let mut kinds = Vec::new();
    pump(&mut c, |_, env| {
        kinds.push((env.from, env.message.kind.name()));
        Fate::Deliver
    });
    assert!(kinds.contains(&(follower, "ReadIndex")));
    assert!(
        kinds.contains(&(leader, "Heartbeat")),
        "the leader confirmed with a round"
    );
    assert!(kinds.contains(&(leader, "ReadIndexResponse")));
    assert_eq!(served(&c, follower, 11), Some(commit));
    assert!(c.member(follower).applied.len() as Index >= commit);
    assert_eq!(
        served(&c, leader, 11),
        None,
        "served on the follower, not the leader"
    );
}

/// Thesis §6.4: a read is served only if leadership is confirmed. Reads pending at a leader
/// that is deposed before its round is acknowledged fail (on the leader, and on the follower
/// that forwarded one), and are never served.
#[test]
fn thesis_6_4_pending_reads_fail_when_the_leader_is_deposed_before_confirmation() {
    let mut c = Cluster::new(3, 95);
    let old = settle(&mut c);
    let rest = others(&c, old);
    let forwarder = rest[1];

    c.node_mut(old).read_index(21).unwrap();
    c.process(old);
    let round: Vec<Env> = c.network.drain(..).collect();
    assert_eq!(count(&round, is_heartbeat), 2);
    // A follower's read reaches the leader and waits there for the next round.
    c.node_mut(forwarder).read_index(23).unwrap();
    deliver_everything(&mut c);

    // The others stop hearing from the leader and elect a new one.
    c.isolate(old);
    let (new, _) = tick_until_one_leads(&mut c, &rest, |_, _| Fate::Deliver);
    assert!(c.node(new).term() > c.node(old).term());
    assert_eq!(
        c.node(old).role(),
        Role::Leader,
        "the old leader does not know yet"
    );

    // The old round's heartbeats arrive late; the answers carry the new term.
    c.heal();
    for env in round {
        c.deliver(env);
    }
    deliver_everything(&mut c);
    assert_ne!(c.node(old).role(), Role::Leader);
    assert!(c.member(old).failed_reads.contains(&21));
    assert!(c.member(forwarder).failed_reads.contains(&23));

    c.run_ticks(40);
    assert_eq!(
        served(&c, old, 21),
        None,
        "a read of the deposed leader was served"
    );
    assert_eq!(served(&c, forwarder, 23), None);
    for id in c.ids() {
        assert!(c.member(id).reads.is_empty(), "node {id} served a read");
    }
}

/// Thesis §6.4 step 1: a new leader's commit index may be stale until it commits an entry of its
/// own term. Here the old leader committed entry k, but no follower learned that; the new leader
/// must not serve a read (even after confirmed heartbeat rounds) until its no-op commits, and
/// then serves it at an index that covers k.
#[test]
fn thesis_6_4_new_leader_serves_reads_only_after_committing_an_entry_of_its_term() {
    let mut c = Cluster::new(3, 96);
    let old = settle(&mut c);
    let rest = others(&c, old);

    let k = c
        .node_mut(old)
        .propose(Bytes::from_static(b"k"))
        .unwrap()
        .index;
    pump(&mut c, |_, env| {
        if env.from == old && is_append(env) && carried(env).is_empty() {
            Fate::Drop // the broadcast of the new commit index
        } else {
            Fate::Deliver
        }
    });
    assert_eq!(c.node(old).log().committed(), k);
    for &id in &rest {
        assert_eq!(c.node(id).log().committed(), k - 1);
    }

    c.isolate(old);
    let hold_appends = |_: &Cluster, env: &mut Env| {
        if is_append(env) {
            Fate::Hold
        } else {
            Fate::Deliver
        }
    };
    let (new, mut held) = tick_until_one_leads(&mut c, &rest, hold_appends);
    assert!(
        c.node(new).log().committed() < k,
        "its commit index is stale"
    );

    c.node_mut(new).read_index(31).unwrap();
    c.process(new);
    let mut acknowledged = 0;
    for _ in 0..3 * c.node(new).config().heartbeat_ticks {
        tick_nodes(&mut c, &[new]);
        held.extend(pump(&mut c, |c, env| {
            if matches!(env.message.kind, MessageKind::HeartbeatResponse { .. }) {
                acknowledged += 1;
            }
            hold_appends(c, env)
        }));
    }
    assert!(acknowledged >= 2, "heartbeat rounds were acknowledged");
    assert_eq!(c.node(new).role(), Role::Leader);
    assert_eq!(
        served(&c, new, 31),
        None,
        "served before committing in its term"
    );

    for env in held {
        c.deliver(env);
    }
    deliver_everything(&mut c);
    let index = served(&c, new, 31).expect("served once the no-op committed");
    assert!(
        index > k,
        "read index {index} does not cover committed entry {k}"
    );
    assert_eq!(index, c.node(new).log().committed());
    assert_eq!(c.node(new).log().term(index), Some(c.node(new).term()));
}

/// Thesis §6.4.1: with a lease, once a round is confirmed the leader serves reads without a new
/// round until `election_ticks - lease_drift_margin_ticks` after that round was sent; after
/// that, a read needs a round again.
#[test]
fn thesis_6_4_1_lease_reads_skip_the_round_until_the_lease_expires() {
    let mut c = Cluster::with_config(3, 97, |id| Config {
        lease_read: true,
        ..Config::new(id)
    });
    let leader = c.run_until_leader(300).expect("a leader");
    c.deliver_all(100_000);
    let config = c.node(leader).config().clone();
    let lease = config.election_ticks - config.lease_drift_margin_ticks;
    let commit = c.node(leader).log().committed();

    // A new leader holds no lease: the first read takes a round, sent at this tick (T). Its
    // acknowledgements arrive 3 ticks later; the lease still counts from T.
    const DELAY: u32 = 3;
    c.node_mut(leader).read_index(1).unwrap();
    c.process(leader);
    let round: Vec<Env> = c.network.drain(..).collect();
    assert_eq!(count(&round, is_heartbeat), 2);
    for _ in 0..DELAY {
        tick_nodes(&mut c, &[leader]);
        assert!(
            c.network.is_empty(),
            "no periodic heartbeat this early in the term"
        );
    }
    assert_eq!(served(&c, leader, 1), None);
    for env in round {
        c.deliver(env);
    }
    deliver_everything(&mut c);
    assert_eq!(served(&c, leader, 1), Some(commit));

    // During the lease, reads are served at once, with no round; periodic heartbeats are lost,
    // so nothing renews the lease.
    for tick in DELAY..lease {
        if tick > DELAY {
            tick_nodes(&mut c, &[leader]);
            c.drop_in_flight();
        }
        let context = 100 + u64::from(tick);
        c.node_mut(leader).read_index(context).unwrap();
        c.process(leader);
        assert_eq!(
            served(&c, leader, context),
            Some(commit),
            "T + {tick}: within the lease"
        );
        assert_eq!(count(c.network.make_contiguous(), is_heartbeat), 0);
    }

    // The lease has run out: the read waits for a round.
    tick_nodes(&mut c, &[leader]);
    c.drop_in_flight();
    c.node_mut(leader).read_index(200).unwrap();
    c.process(leader);
    assert_eq!(
        served(&c, leader, 200),
        None,
        "served {lease} ticks after the round"
    );
    let mut heartbeats = 0;
    for _ in 0..3 * config.heartbeat_ticks {
        pump(&mut c, |_, env| {
            heartbeats += usize::from(is_heartbeat(env));
            Fate::Deliver
        });
        if served(&c, leader, 200).is_some() {
            break;
        }
        tick_nodes(&mut c, &[leader]);
    }
    assert_eq!(served(&c, leader, 200), Some(commit));
    assert!(
        heartbeats >= 2,
        "served without a round after the lease expired"
    );
    assert_eq!(c.node(leader).role(), Role::Leader);
}

/// Thesis §6.4.1: the lease rests on followers that acknowledged a round refusing to elect
/// anyone else for an election timeout. A follower that crashes and restarts forgets whom it
/// heard from, so with lease reads it must still refuse for one election timeout after
/// restarting; otherwise a rival could be elected and commit while the old leader serves reads
/// from its lease.
#[test]
fn thesis_6_4_1_member_restarted_within_the_lease_does_not_help_elect_a_rival() {
    let mut c = Cluster::with_config(3, 98, |id| Config {
        lease_read: true,
        ..Config::new(id)
    });
    let leader = settle(&mut c);
    let rest = others(&c, leader);
    let (acker, rival) = (rest[0], rest[1]);

    // A round confirmed by `acker` gives the leader its lease.
    c.node_mut(leader).read_index(1).unwrap();
    deliver_everything(&mut c);
    assert!(served(&c, leader, 1).is_some());

    // The rival is cut off from the leader and times out; `acker` restarts just before the
    // rival's pre-vote request reaches it.
    c.cut.insert((leader, rival));
    c.cut.insert((rival, leader));
    start_campaign(&mut c, rival);
    let requests: Vec<Env> = c.network.drain(..).collect();
    c.crash(acker);
    c.restart(acker);
    for env in requests {
        c.deliver(env);
    }
    deliver_everything(&mut c);
    for _ in 0..3 {
        start_campaign(&mut c, rival);
        deliver_everything(&mut c);
    }
    assert_ne!(
        c.node(rival).role(),
        Role::Leader,
        "elected while the lease holds"
    );
    assert_eq!(c.leaders(), [(leader, c.node(leader).term())]);

    // The lease read is therefore still linearizable: nothing is committed beyond it.
    c.node_mut(leader).read_index(2).unwrap();
    c.process(leader);
    let index = served(&c, leader, 2).expect("served from the lease");
    for id in c.ids() {
        assert!(
            c.node(id).log().committed() <= index,
            "node {id} committed past the read"
        );
    }
}

/// One write a member handed out, as seen just before it was persisted.
struct SeenWrite {
    needs_sync: bool,
    has_entries: bool,
    /// The hard state it stores, and the one on disk before it.
    hard_state: Option<(HardState, HardState)>,
}

/// Persists every outstanding write and delivers every message until the cluster is quiet,
/// recording each write.
fn persist_and_deliver_recording(c: &mut Cluster) -> Vec<(NodeId, SeenWrite)> {
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        c.process_all();
        let mut progressed = false;
        for id in c.ids() {
            while let Some(write) = c.members[&id].unpersisted.front() {
                let before = c.members[&id].disk.hard_state;
                seen.push((
                    id,
                    SeenWrite {
                        needs_sync: write.needs_sync(),
                        has_entries: !write.entries().is_empty() || write.truncate_from().is_some(),
                        hard_state: write.hard_state().map(|h| (*h, before)),
                    },
                ));
                c.persist_one(id);
                progressed = true;
            }
        }
        if c.deliver_one() {
            progressed = true;
        }
        if !progressed {
            return seen;
        }
    }
    panic!("the cluster never went quiet");
}

/// Figure 2 lists commitIndex among the "volatile state on all servers": a member may lose it in
/// a crash and relearn it. So a write that only moves the commit index is handed out without
/// needing a sync (as etcd's `MustSync`), while a write holding entries, a term or a vote needs
/// one before anything that depends on it is sent.
#[test]
fn figure_2_commit_index_is_volatile_so_a_commit_only_write_needs_no_sync() {
    let mut c = Cluster::new(3, 11);
    let leader = c.run_until_leader(200).expect("a leader");
    c.deliver_all(100_000);
    c.auto_persist = false;
    c.propose(leader, b"one").expect("the leader takes it");
    c.propose(leader, b"two").expect("the leader takes it");
    let mut seen = persist_and_deliver_recording(&mut c);
    // The followers learn the new commit index from the next heartbeat.
    for _ in 0..c.node(leader).config().heartbeat_ticks * 2 {
        c.node_mut(leader).tick();
        seen.extend(persist_and_deliver_recording(&mut c));
    }
    // A new election: terms and votes change.
    c.crash(leader);
    for _ in 0..400 {
        if c.leader().is_some_and(|l| l != leader) {
            break;
        }
        c.tick_all();
        seen.extend(persist_and_deliver_recording(&mut c));
    }
    assert!(c.leader().is_some_and(|l| l != leader), "a new leader");

    let mut commit_only = std::collections::BTreeSet::new();
    let mut term_or_vote = 0;
    for (id, w) in &seen {
        if w.has_entries {
            assert!(
                w.needs_sync,
                "node {id}: a write with entries must be synced"
            );
        }
        if let Some((new, old)) = w.hard_state {
            if new.term != old.term || new.vote != old.vote {
                assert!(w.needs_sync, "node {id}: a new term or vote must be synced");
                term_or_vote += 1;
            } else if !w.has_entries {
                assert!(
                    !w.needs_sync,
                    "node {id}: a commit-only write ({old:?} -> {new:?}) asked for a sync"
                );
                commit_only.insert(*id);
            }
        }
    }
    assert_eq!(
        commit_only.len(),
        3,
        "every member wrote a commit-only hard state: {commit_only:?}"
    );
    assert!(term_or_vote >= 2, "the election wrote terms and votes");
}
