//! Robustness: arbitrary inputs never make the engine panic (its invariant checks are on, so a
//! violated invariant panics too), and a cluster under message loss, duplication, reordering,
//! partitions and crashes keeps Raft's safety properties (Raft Figure 3).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use proptest::prelude::*;
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use synod_core::engine::Envelope;
use synod_core::{
    ConfChange, Entry, Index, Membership, NodeId, Payload, Role, SnapshotMeta, Term, Write,
};
use synod_raft::cluster::{Cluster, Disk};
use synod_raft::{AppendResult, Config, HardState, Message, MessageKind, RaftNode, RestoreState};

/// The number of cases or seeds: `default`, or `default × SYNOD_TEST_SCALE` for longer
/// exploration runs (e.g. `SYNOD_TEST_SCALE=50 cargo test --release --test no_panic`).
fn scale(default: u64) -> u64 {
    let factor = std::env::var("SYNOD_TEST_SCALE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    default * factor.max(1)
}

// -------------------------------------------------------------------------------------------
// Strategies.

fn term() -> impl Strategy<Value = Term> {
    prop_oneof![
        16 => 0u64..8,
        1 => u64::MAX - 2..=u64::MAX,
        1 => any::<u64>(),
    ]
}

fn index() -> impl Strategy<Value = Index> {
    prop_oneof![
        16 => 0u64..24,
        1 => u64::MAX - 2..=u64::MAX,
        1 => any::<u64>(),
    ]
}

fn node_id() -> impl Strategy<Value = NodeId> {
    0u64..10
}

fn id_set(max_len: usize) -> impl Strategy<Value = BTreeSet<NodeId>> {
    prop::collection::btree_set(0u64..7, 0..=max_len)
}

/// Memberships, including invalid ones (id 0, voter and learner at once, joint without
/// incoming voters).
fn membership() -> impl Strategy<Value = Membership> {
    prop_oneof![
        3 => (id_set(4), id_set(2)).prop_map(|(voters, learners)| Membership {
            voters,
            voters_outgoing: BTreeSet::new(),
            learners,
        }),
        1 => (id_set(4), id_set(4), id_set(2)).prop_map(|(voters, voters_outgoing, learners)| {
            Membership {
                voters,
                voters_outgoing,
                learners,
            }
        }),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        2 => Just(Payload::Noop),
        4 => prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| Payload::Command(Bytes::from(b))),
        1 => membership().prop_map(Payload::Membership),
    ]
}

/// Entries: mostly a well-formed run (contiguous, non-decreasing terms), sometimes anything.
fn entries() -> impl Strategy<Value = Vec<Entry>> {
    prop_oneof![
        3 => (0u64..24, 0u64..8, prop::collection::vec((0u64..2, payload()), 0..6)).prop_map(
            |(start, first_term, items)| {
                let mut term = first_term;
                items
                    .into_iter()
                    .enumerate()
                    .map(|(k, (step, payload))| {
                        term += step;
                        Entry {
                            index: start + 1 + k as Index,
                            term,
                            payload,
                        }
                    })
                    .collect()
            }
        ),
        1 => prop::collection::vec(
            (index(), term(), payload()).prop_map(|(index, term, payload)| Entry {
                index,
                term,
                payload
            }),
            0..5
        ),
    ]
}

fn snapshot_meta() -> impl Strategy<Value = SnapshotMeta> {
    (index(), term(), membership()).prop_map(|(index, term, membership)| SnapshotMeta {
        index,
        term,
        membership,
    })
}

fn round() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..8, 1 => any::<u64>()]
}

fn message_kind() -> impl Strategy<Value = MessageKind> {
    prop_oneof![
        3 => (any::<bool>(), index(), term(), any::<bool>()).prop_map(
            |(pre_vote, last_log_index, last_log_term, transfer)| MessageKind::RequestVote {
                pre_vote,
                last_log_index,
                last_log_term,
                transfer,
            }
        ),
        3 => (any::<bool>(), any::<bool>())
            .prop_map(|(pre_vote, granted)| MessageKind::RequestVoteResponse { pre_vote, granted }),
        6 => (index(), term(), entries(), index()).prop_map(
            |(prev_log_index, prev_log_term, entries, leader_commit)| MessageKind::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            }
        ),
        2 => index().prop_map(|match_index| {
            MessageKind::AppendEntriesResponse(AppendResult::Success { match_index })
        }),
        2 => (index(), prop::option::of(term()), index()).prop_map(
            |(rejected_index, conflict_term, conflict_index)| {
                MessageKind::AppendEntriesResponse(AppendResult::Reject {
                    rejected_index,
                    conflict_term,
                    conflict_index,
                })
            }
        ),
        2 => (index(), round()).prop_map(|(commit, round)| MessageKind::Heartbeat { commit, round }),
        2 => round().prop_map(|round| MessageKind::HeartbeatResponse { round }),
        2 => snapshot_meta().prop_map(|snapshot| MessageKind::InstallSnapshot { snapshot }),
        1 => Just(MessageKind::TimeoutNow),
        1 => (0u64..8).prop_map(|context| MessageKind::ReadIndex { context }),
        1 => (0u64..8, prop::option::of(index()))
            .prop_map(|(context, index)| MessageKind::ReadIndexResponse { context, index }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (term(), message_kind()).prop_map(|(term, kind)| Message { term, kind })
}

fn conf_change() -> impl Strategy<Value = ConfChange> {
    prop_oneof![
        (0u64..7).prop_map(ConfChange::AddVoter),
        (0u64..7).prop_map(ConfChange::AddLearner),
        (0u64..7).prop_map(ConfChange::Remove),
        (id_set(4), id_set(2))
            .prop_map(|(voters, learners)| ConfChange::Joint { voters, learners }),
    ]
}

/// A message described relative to the receiving node's state (its term, log, configuration
/// and, for a leader, its progress records), resolved when it is delivered. Arbitrary messages
/// are almost always stale or inconsistent; these reach the deeper paths: elections won,
/// entries appended and truncated, commits, snapshots installed, followers backtracked.
#[derive(Clone, Debug)]
enum Plausible {
    /// A (pre-)vote answer from a voter, in the term being campaigned for.
    VoteResponse { voter: usize, granted: bool },
    /// A vote request from a member.
    RequestVote {
        from: usize,
        term_ahead: u64,
        pre_vote: bool,
        transfer: bool,
        index_delta: i64,
        term_delta: i64,
    },
    /// AppendEntries from a leader of the current term (or a later one).
    Append {
        leader: NodeId,
        term_ahead: u64,
        back: u64,
        wrong_prev_term: bool,
        entries: Vec<(bool, Payload)>,
        commit_back: u64,
    },
    /// A heartbeat from a leader of the current term (or a later one).
    Heartbeat {
        leader: NodeId,
        term_ahead: u64,
        commit_back: u64,
        round: u64,
    },
    /// An answer to AppendEntries, shaped after the leader's progress record.
    AppendResponse {
        from: usize,
        success: bool,
        delta: i64,
        conflict_back: Option<u64>,
    },
    /// An answer to a heartbeat.
    HeartbeatResponse { from: usize, round: u64 },
    /// A snapshot from a leader, ahead of the commit index.
    InstallSnapshot {
        leader: NodeId,
        term_ahead: u64,
        ahead: u64,
        membership: Option<Membership>,
    },
    /// TimeoutNow from the leader the node follows.
    TimeoutNow,
    /// The leader's answer to a forwarded read.
    ReadIndexResponse { context: u64, delta: i64 },
}

fn plausible() -> impl Strategy<Value = Plausible> {
    prop_oneof![
        4 => (0usize..6, prop::bool::weighted(0.8))
            .prop_map(|(voter, granted)| Plausible::VoteResponse { voter, granted }),
        2 => (0usize..6, 0u64..3, any::<bool>(), prop::bool::weighted(0.1), -3i64..4, -1i64..2)
            .prop_map(|(from, term_ahead, pre_vote, transfer, index_delta, term_delta)| {
                Plausible::RequestVote { from, term_ahead, pre_vote, transfer, index_delta, term_delta }
            }),
        6 => (
            2u64..6,
            prop_oneof![3 => Just(0u64), 1 => 1u64..3],
            prop_oneof![3 => 0u64..3, 1 => 3u64..12],
            prop::bool::weighted(0.15),
            prop::collection::vec((prop::bool::weighted(0.2), payload()), 0..5),
            0u64..4,
        )
            .prop_map(|(leader, term_ahead, back, wrong_prev_term, entries, commit_back)| {
                Plausible::Append { leader, term_ahead, back, wrong_prev_term, entries, commit_back }
            }),
        2 => (2u64..6, prop_oneof![3 => Just(0u64), 1 => 1u64..3], 0u64..4, 0u64..6).prop_map(
            |(leader, term_ahead, commit_back, round)| Plausible::Heartbeat {
                leader,
                term_ahead,
                commit_back,
                round,
            }
        ),
        4 => (0usize..6, prop::bool::weighted(0.7), -2i64..4, prop::option::of(0u64..4)).prop_map(
            |(from, success, delta, conflict_back)| Plausible::AppendResponse {
                from,
                success,
                delta,
                conflict_back,
            }
        ),
        2 => (0usize..6, 0u64..6).prop_map(|(from, round)| Plausible::HeartbeatResponse { from, round }),
        1 => (
            2u64..6,
            prop_oneof![3 => Just(0u64), 1 => 1u64..3],
            0u64..20,
            prop::option::of(membership()),
        )
            .prop_map(|(leader, term_ahead, ahead, membership)| Plausible::InstallSnapshot {
                leader,
                term_ahead,
                ahead,
                membership,
            }),
        1 => Just(Plausible::TimeoutNow),
        1 => (0u64..8, -2i64..3).prop_map(|(context, delta)| Plausible::ReadIndexResponse { context, delta }),
    ]
}

fn offset(base: u64, delta: i64) -> u64 {
    base.saturating_add_signed(delta)
}

/// Resolves a plausible message against the node's current state: (sender, message).
fn resolve(node: &RaftNode, p: Plausible) -> (NodeId, Message) {
    let id = node.id();
    let term = node.term();
    let log = node.log();
    let last = log.last_index();
    let others: Vec<NodeId> = {
        let members: Vec<NodeId> = node
            .membership()
            .members()
            .into_iter()
            .filter(|&m| m != id)
            .collect();
        if members.is_empty() {
            vec![2, 3]
        } else {
            members
        }
    };
    let member = |i: usize| others[i % others.len()];
    match p {
        Plausible::VoteResponse { voter, granted } => {
            let voters: Vec<NodeId> = node
                .membership()
                .all_voters()
                .into_iter()
                .filter(|&v| v != id)
                .collect();
            let from = if voters.is_empty() {
                member(voter)
            } else {
                voters[voter % voters.len()]
            };
            let (term, pre_vote) = match node.role() {
                Role::PreCandidate => (
                    if granted {
                        term.saturating_add(1)
                    } else {
                        term
                    },
                    true,
                ),
                _ => (term, false),
            };
            (
                from,
                Message {
                    term,
                    kind: MessageKind::RequestVoteResponse { pre_vote, granted },
                },
            )
        }
        Plausible::RequestVote {
            from,
            term_ahead,
            pre_vote,
            transfer,
            index_delta,
            term_delta,
        } => {
            let kind = MessageKind::RequestVote {
                pre_vote,
                last_log_index: offset(last, index_delta),
                last_log_term: offset(log.last_term(), term_delta),
                transfer,
            };
            (
                member(from),
                Message {
                    term: term.saturating_add(term_ahead),
                    kind,
                },
            )
        }
        Plausible::Append {
            leader,
            term_ahead,
            back,
            wrong_prev_term,
            entries,
            commit_back,
        } => {
            let leader = node.leader().filter(|_| term_ahead == 0).unwrap_or(leader);
            let term = term.saturating_add(term_ahead);
            let prev_log_index = last.saturating_sub(back);
            let mut prev_log_term = log.term(prev_log_index).unwrap_or(log.snapshot().term);
            if wrong_prev_term {
                prev_log_term = prev_log_term.saturating_add(1).min(term);
            }
            let mut entry_term = prev_log_term.max(log.last_term().min(term));
            let entries: Vec<Entry> = entries
                .into_iter()
                .enumerate()
                .map(|(k, (bump, payload))| {
                    if bump {
                        entry_term = entry_term.saturating_add(1).min(term);
                    }
                    Entry {
                        index: prev_log_index + 1 + k as Index,
                        term: entry_term,
                        payload,
                    }
                })
                .collect();
            let leader_commit =
                (prev_log_index + entries.len() as Index).saturating_sub(commit_back);
            let kind = MessageKind::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            };
            (leader, Message { term, kind })
        }
        Plausible::Heartbeat {
            leader,
            term_ahead,
            commit_back,
            round,
        } => {
            let leader = node.leader().filter(|_| term_ahead == 0).unwrap_or(leader);
            let commit = log.committed().max(last.saturating_sub(commit_back));
            (
                leader,
                Message {
                    term: term.saturating_add(term_ahead),
                    kind: MessageKind::Heartbeat { commit, round },
                },
            )
        }
        Plausible::AppendResponse {
            from,
            success,
            delta,
            conflict_back,
        } => {
            let from = member(from);
            let (next, matched) = node
                .progress(from)
                .map_or((last + 1, 0), |pr| (pr.next, pr.matched));
            let result = if success {
                AppendResult::Success {
                    match_index: offset(next.saturating_sub(1), delta).max(matched),
                }
            } else {
                let rejected_index = next.saturating_sub(1);
                AppendResult::Reject {
                    rejected_index,
                    conflict_term: conflict_back
                        .and_then(|b| log.term(rejected_index.saturating_sub(b))),
                    conflict_index: offset(rejected_index, -delta.abs()).max(1),
                }
            };
            (
                from,
                Message {
                    term,
                    kind: MessageKind::AppendEntriesResponse(result),
                },
            )
        }
        Plausible::HeartbeatResponse { from, round } => (
            member(from),
            Message {
                term,
                kind: MessageKind::HeartbeatResponse { round },
            },
        ),
        Plausible::InstallSnapshot {
            leader,
            term_ahead,
            ahead,
            membership,
        } => {
            let leader = node.leader().filter(|_| term_ahead == 0).unwrap_or(leader);
            let term = term.saturating_add(term_ahead);
            let snapshot = SnapshotMeta {
                index: log.committed() + ahead,
                term: log.last_term().min(term).max(log.snapshot().term),
                membership: membership.unwrap_or_else(|| node.membership().clone()),
            };
            (
                leader,
                Message {
                    term,
                    kind: MessageKind::InstallSnapshot { snapshot },
                },
            )
        }
        Plausible::TimeoutNow => (
            node.leader().unwrap_or(2),
            Message {
                term,
                kind: MessageKind::TimeoutNow,
            },
        ),
        Plausible::ReadIndexResponse { context, delta } => {
            let index = Some(offset(log.committed(), delta));
            let from = node.leader().unwrap_or(2);
            (
                from,
                Message {
                    term,
                    kind: MessageKind::ReadIndexResponse { context, index },
                },
            )
        }
    }
}

#[derive(Clone, Debug)]
enum Input {
    /// An arbitrary message.
    Step(NodeId, Message),
    /// A message shaped after the node's current state, so that it is often accepted.
    Plausible(Plausible),
    Tick(u8),
    Propose(usize),
    ReadIndex(u64),
    Transfer(NodeId),
    Change(ConfChange),
    /// Compact at an absolute index.
    Compact(Index),
    /// Compact at the applied index (the common, valid case).
    CompactApplied,
    SnapshotMeta(Index),
    Ready,
    /// Persist the oldest outstanding write.
    Persist,
    /// Drain ready batches and persist everything.
    Settle,
    /// Crash (losing unpersisted writes) and restore from the simulated disk.
    Restart,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        15 => (node_id(), message()).prop_map(|(from, m)| Input::Step(from, m)),
        25 => plausible().prop_map(Input::Plausible),
        8 => (1u8..30).prop_map(Input::Tick),
        4 => (0usize..40).prop_map(Input::Propose),
        2 => (0u64..8).prop_map(Input::ReadIndex),
        1 => node_id().prop_map(Input::Transfer),
        2 => conf_change().prop_map(Input::Change),
        1 => index().prop_map(Input::Compact),
        2 => Just(Input::CompactApplied),
        1 => index().prop_map(Input::SnapshotMeta),
        6 => Just(Input::Ready),
        6 => Just(Input::Persist),
        3 => Just(Input::Settle),
        1 => Just(Input::Restart),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Start {
    /// A member of a fresh {1,2,3} cluster.
    Fresh,
    /// The leader of a one-member cluster, with a few committed entries.
    SoloLeader,
    /// The leader of a joint configuration with a learner, elected with forged votes.
    JointLeader,
    /// Restored from a snapshot, a log with a configuration entry, a vote and a commit index.
    Restored,
    /// A learner of {2,3}.
    Learner,
    /// A member that joins an existing cluster with an empty disk.
    Joining,
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![
        Just(Start::Fresh),
        Just(Start::SoloLeader),
        Just(Start::JointLeader),
        Just(Start::Restored),
        Just(Start::Learner),
        Just(Start::Joining),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        2u32..12,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        1usize..5,
        1usize..200,
        1usize..4,
        1usize..300,
    )
        .prop_map(
            |(
                election,
                pre_vote,
                check_quorum,
                lease,
                entries,
                bytes,
                inflight,
                inflight_bytes,
            )| {
                let mut c = Config::new(1);
                c.election_ticks = election;
                c.heartbeat_ticks = 1.max(election / 3);
                c.pre_vote = pre_vote;
                c.check_quorum = check_quorum;
                c.lease_read = lease && check_quorum;
                c.lease_drift_margin_ticks = 1;
                c.max_entries_per_message = entries;
                c.max_bytes_per_message = bytes;
                c.max_inflight_messages = inflight;
                c.max_inflight_bytes = inflight_bytes;
                c.check_invariants = true;
                c
            },
        )
}

// -------------------------------------------------------------------------------------------
// A single node driven like an application would drive it.

#[derive(Clone, Debug, Default)]
struct SimDisk {
    hard_state: HardState,
    snapshot: SnapshotMeta,
    entries: Vec<Entry>,
}

struct Driver {
    config: Config,
    node: RaftNode,
    disk: SimDisk,
    writes: VecDeque<Write<HardState>>,
    /// The state machine's applied index, as the application sees it.
    applied: Index,
    restarts: u64,
}

impl Driver {
    fn new(config: Config, start: Start) -> Driver {
        let state = match start {
            Start::Fresh | Start::SoloLeader | Start::JointLeader => {
                let membership = match start {
                    Start::SoloLeader => Membership::with_voters([1]),
                    Start::JointLeader => Membership {
                        voters: [1, 2, 3].into(),
                        voters_outgoing: [1, 2, 4].into(),
                        learners: [5].into(),
                    },
                    _ => Membership::with_voters([1, 2, 3]),
                };
                RestoreState::bootstrap(membership)
            }
            Start::Learner => RestoreState::bootstrap(Membership {
                voters: [2, 3].into(),
                voters_outgoing: BTreeSet::new(),
                learners: [1].into(),
            }),
            Start::Joining => RestoreState::default(),
            Start::Restored => {
                let command = |index, term| Entry {
                    index,
                    term,
                    payload: Payload::Command(Bytes::from_static(b"c")),
                };
                RestoreState {
                    hard_state: HardState {
                        term: 4,
                        vote: Some(2),
                        commit: 7,
                    },
                    snapshot: SnapshotMeta {
                        index: 5,
                        term: 2,
                        membership: Membership::with_voters([1, 2, 3]),
                    },
                    entries: vec![
                        command(6, 2),
                        command(7, 3),
                        Entry {
                            index: 8,
                            term: 3,
                            payload: Payload::Membership(Membership {
                                voters: [1, 2, 3].into(),
                                voters_outgoing: BTreeSet::new(),
                                learners: [4].into(),
                            }),
                        },
                        command(9, 4),
                        command(10, 4),
                    ],
                    applied: 6,
                }
            }
        };
        let disk = SimDisk {
            hard_state: state.hard_state,
            snapshot: state.snapshot.clone(),
            entries: state.entries.clone(),
        };
        let applied = state.applied.max(state.snapshot.index);
        let rng = Box::new(XorShiftRng::seed_from_u64(0));
        let node = RaftNode::restore(config.clone(), rng, state).expect("valid start state");
        let mut driver = Driver {
            config,
            node,
            disk,
            writes: VecDeque::new(),
            applied,
            restarts: 0,
        };
        match start {
            Start::SoloLeader => {
                for _ in 0..100 {
                    if driver.node.role() == Role::Leader {
                        break;
                    }
                    driver.node.tick();
                }
                assert_eq!(driver.node.role(), Role::Leader);
                driver.node.propose(Bytes::from_static(b"x")).unwrap();
                driver.settle();
            }
            Start::JointLeader => {
                for _ in 0..100 {
                    if driver.node.role() != Role::Follower {
                        break;
                    }
                    driver.node.tick();
                }
                // Granted pre-votes (if pre-vote is on) and then votes from 2, which counts in
                // both halves.
                for _ in 0..2 {
                    let (term, pre_vote) = match driver.node.role() {
                        Role::PreCandidate => (driver.node.term() + 1, true),
                        _ => (driver.node.term(), false),
                    };
                    driver.node.step(
                        2,
                        Message {
                            term,
                            kind: MessageKind::RequestVoteResponse {
                                pre_vote,
                                granted: true,
                            },
                        },
                    );
                }
                assert_eq!(driver.node.role(), Role::Leader);
                driver.settle();
            }
            _ => {}
        }
        driver
    }

    fn ready(&mut self) {
        let mut ready = self.node.ready();
        for entry in ready.committed.drain(..) {
            assert_eq!(
                entry.index,
                self.applied + 1,
                "committed entries must be handed out in order"
            );
            self.applied = entry.index;
        }
        for read in &ready.reads {
            assert!(
                read.index <= self.applied,
                "read at {} served before the state machine applied it ({})",
                read.index,
                self.applied
            );
        }
        if let Some(write) = ready.write.take() {
            self.writes.push_back(write);
        }
    }

    fn persist(&mut self) {
        let Some(write) = self.writes.pop_front() else {
            return;
        };
        let disk = &mut self.disk;
        if let Some(snapshot) = write.snapshot() {
            disk.snapshot = snapshot.clone();
            disk.entries.clear();
            // The application restores its state machine from the snapshot.
            self.applied = snapshot.index;
        }
        if let Some(from) = write.truncate_from() {
            let keep = from.saturating_sub(disk.snapshot.index + 1) as usize;
            disk.entries.truncate(keep);
        }
        for entry in write.entries() {
            let position = entry
                .index
                .checked_sub(disk.snapshot.index + 1)
                .unwrap_or_else(|| {
                    panic!(
                        "write of entry {} at or below the stored snapshot {}",
                        entry.index, disk.snapshot.index
                    )
                }) as usize;
            disk.entries.truncate(position);
            assert_eq!(
                disk.entries.len(),
                position,
                "write leaves a gap in the stored log"
            );
            disk.entries.push(entry.clone());
        }
        if let Some(hard_state) = write.hard_state() {
            disk.hard_state = *hard_state;
        }
        let _released = self.node.persisted(write);
    }

    fn settle(&mut self) {
        for _ in 0..100 {
            if !self.node.has_ready() && self.writes.is_empty() {
                return;
            }
            if self.node.has_ready() {
                self.ready();
            }
            while !self.writes.is_empty() {
                self.persist();
            }
        }
        panic!("the node never stopped producing ready batches");
    }

    fn compact(&mut self, index: Index) {
        match self.node.snapshot_meta(index) {
            Ok(meta) => {
                assert!(index <= self.applied, "snapshot beyond the applied index");
                let stored_last = self.disk.snapshot.index + self.disk.entries.len() as Index;
                assert!(
                    index <= stored_last,
                    "compaction allowed at {index}, beyond the durable log ({stored_last})"
                );
                let drop = (index - self.disk.snapshot.index) as usize;
                let stored = &self.disk.entries[drop - 1];
                assert_eq!(
                    (stored.index, stored.term),
                    (meta.index, meta.term),
                    "snapshot metadata does not match the durable entry"
                );
                self.disk.entries.drain(..drop);
                self.disk.snapshot = meta;
                self.node.compact(index).expect("snapshot_meta agreed");
            }
            Err(e) => {
                assert_eq!(
                    self.node.compact(index),
                    Err(e),
                    "compact disagrees with snapshot_meta"
                );
            }
        }
    }

    fn restart(&mut self) {
        self.writes.clear();
        self.restarts += 1;
        let state = RestoreState {
            hard_state: self.disk.hard_state,
            snapshot: self.disk.snapshot.clone(),
            entries: self.disk.entries.clone(),
            applied: self.disk.snapshot.index,
        };
        let rng = Box::new(XorShiftRng::seed_from_u64(self.restarts));
        self.node = RaftNode::restore(self.config.clone(), rng, state)
            .unwrap_or_else(|e| panic!("durable state does not restore: {e}\n{:?}", self.disk));
        self.applied = self.disk.snapshot.index;
    }

    fn apply(&mut self, input: Input) {
        match input {
            Input::Step(from, message) => self.node.step(from, message),
            Input::Plausible(p) => {
                let (from, message) = resolve(&self.node, p);
                self.node.step(from, message);
            }
            Input::Tick(n) => {
                for _ in 0..n {
                    self.node.tick();
                }
            }
            Input::Propose(len) => {
                let _ = self.node.propose(Bytes::from(vec![7; len]));
            }
            Input::ReadIndex(context) => {
                let _ = self.node.read_index(context);
            }
            Input::Transfer(to) => {
                let _ = self.node.transfer_leadership(to);
            }
            Input::Change(change) => {
                let _ = self.node.propose_membership_change(change);
            }
            Input::Compact(index) => self.compact(index),
            Input::CompactApplied => {
                let index = self.node.log().applied();
                self.compact(index);
            }
            Input::SnapshotMeta(index) => {
                let _ = self.node.snapshot_meta(index);
            }
            Input::Ready => self.ready(),
            Input::Persist => self.persist(),
            Input::Settle => self.settle(),
            Input::Restart => self.restart(),
        }
        let _ = self.node.status();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: scale(2000) as u32,
        max_shrink_iters: 20_000,
        ..ProptestConfig::default()
    })]

    /// The engine's contract (`Engine::step`): malformed, stale or unexpected messages are
    /// ignored or answered, never a panic, whatever state the node is in; and every other
    /// input either succeeds or returns an error. The engine checks its own invariants after
    /// every call, so this also shows that no input sequence breaks them.
    #[test]
    fn arbitrary_inputs_never_panic(
        config in config(),
        start in start(),
        inputs in prop::collection::vec(input(), 0..200),
    ) {
        let mut driver = Driver::new(config, start);
        for input in inputs {
            driver.apply(input);
        }
        driver.settle();
        driver.restart();
        driver.settle();
    }
}

// Regressions found by `arbitrary_inputs_never_panic`, kept as plain tests.

fn checked_config() -> Config {
    let mut config = Config::new(1);
    config.check_invariants = true;
    config
}

/// Drives a lone node until it has nothing more to hand out, persisting every write.
fn drain(node: &mut RaftNode) {
    while node.has_ready() {
        let mut ready = node.ready();
        if let Some(write) = ready.write.take() {
            node.persisted(write);
        }
    }
}

#[test]
fn regression_a_term_at_the_end_of_the_term_space_does_not_overflow_when_campaigning() {
    for pre_vote in [false, true] {
        let mut config = checked_config();
        config.pre_vote = pre_vote;
        let state = RestoreState::bootstrap(Membership::with_voters([1, 2, 3]));
        let rng = Box::new(XorShiftRng::seed_from_u64(1));
        let mut node = RaftNode::restore(config, rng, state).unwrap();
        for term in [u64::MAX - 1, u64::MAX] {
            node.step(
                2,
                Message {
                    term,
                    kind: MessageKind::HeartbeatResponse { round: 0 },
                },
            );
            drain(&mut node);
            for _ in 0..100 {
                node.tick();
                drain(&mut node);
            }
            assert!(node.term() >= term);
        }
        assert_eq!(node.term(), u64::MAX);
    }
}

#[test]
fn regression_a_snapshot_at_the_end_of_the_index_space_is_ignored() {
    let state = RestoreState::bootstrap(Membership::with_voters([1, 2, 3]));
    let rng = Box::new(XorShiftRng::seed_from_u64(1));
    let mut node = RaftNode::restore(checked_config(), rng, state).unwrap();
    node.step(
        2,
        Message {
            term: 1,
            kind: MessageKind::InstallSnapshot {
                snapshot: SnapshotMeta {
                    index: u64::MAX,
                    term: 1,
                    membership: Membership::with_voters([1]),
                },
            },
        },
    );
    assert_eq!(
        node.log().snapshot().index,
        0,
        "an absurd snapshot was installed"
    );
    for _ in 0..100 {
        node.tick();
        drain(&mut node);
    }
}

#[test]
fn regression_a_snapshot_from_a_later_term_than_its_sender_is_ignored() {
    // Installed, it would leave the log's last term above the node's term, and the node (sole
    // voter of the snapshot's configuration) would then, as leader, append below it.
    let mut config = checked_config();
    config.pre_vote = false;
    let state = RestoreState::bootstrap(Membership::with_voters([1, 2, 3]));
    let rng = Box::new(XorShiftRng::seed_from_u64(1));
    let mut node = RaftNode::restore(config, rng, state).unwrap();
    node.step(
        2,
        Message {
            term: 1,
            kind: MessageKind::InstallSnapshot {
                snapshot: SnapshotMeta {
                    index: 5,
                    term: 9,
                    membership: Membership::with_voters([1]),
                },
            },
        },
    );
    assert_eq!(node.log().snapshot().index, 0);
    drain(&mut node);
    for _ in 0..100 {
        node.tick();
        drain(&mut node);
    }
}

fn step(node: &mut RaftNode, from: NodeId, term: Term, kind: MessageKind) {
    node.step(from, Message { term, kind });
}

fn fresh_follower() -> RaftNode {
    let state = RestoreState::bootstrap(Membership::with_voters([1, 2, 3]));
    let rng = Box::new(XorShiftRng::seed_from_u64(1));
    RaftNode::restore(checked_config(), rng, state).unwrap()
}

#[test]
fn regression_a_read_waits_for_the_newest_snapshot_not_an_older_one() {
    let mut node = fresh_follower();
    let empty_append = MessageKind::AppendEntries {
        prev_log_index: 0,
        prev_log_term: 0,
        entries: Vec::new(),
        leader_commit: 0,
    };
    step(&mut node, 2, 1, empty_append);
    drain(&mut node);
    node.read_index(6).unwrap();
    let install = |index| MessageKind::InstallSnapshot {
        snapshot: SnapshotMeta {
            index,
            term: 1,
            membership: Membership::with_voters([1, 2, 3]),
        },
    };
    step(&mut node, 2, 1, install(1));
    let mut ready = node.ready();
    let first = ready.write.take().expect("the first snapshot is written");
    assert_eq!(first.snapshot().map(|s| s.index), Some(1));
    // A second snapshot arrives before the first is durable, then the read's index.
    step(&mut node, 2, 1, install(3));
    step(
        &mut node,
        2,
        1,
        MessageKind::ReadIndexResponse {
            context: 6,
            index: Some(3),
        },
    );
    // Once the first snapshot is durable the state machine holds index 1, not 3.
    node.persisted(first);
    let mut ready = node.ready();
    assert!(
        ready.reads.is_empty(),
        "read at 3 served with the state machine restored to 1: {:?}",
        ready.reads
    );
    let second = ready.write.take().expect("the second snapshot is written");
    assert_eq!(second.snapshot().map(|s| s.index), Some(3));
    node.persisted(second);
    let ready = node.ready();
    assert_eq!(
        ready.reads.len(),
        1,
        "the read is served once index 3 is restored"
    );
}

#[test]
fn regression_entries_that_disagree_with_the_snapshot_entry_are_refused() {
    let state = RestoreState {
        hard_state: HardState {
            term: 8,
            vote: None,
            commit: 4,
        },
        snapshot: SnapshotMeta {
            index: 4,
            term: 8,
            membership: Membership::with_voters([1, 2, 3]),
        },
        entries: Vec::new(),
        applied: 4,
    };
    let rng = Box::new(XorShiftRng::seed_from_u64(1));
    let mut node = RaftNode::restore(checked_config(), rng, state).unwrap();
    let noop = |index| Entry {
        index,
        term: 0,
        payload: Payload::Noop,
    };
    // prev_log_index 3 is below the commit index, so it is taken as matching; entry 4 then
    // contradicts the snapshot (term 0, not 8) and entry 5 would follow term 8 with term 0.
    step(
        &mut node,
        2,
        9,
        MessageKind::AppendEntries {
            prev_log_index: 3,
            prev_log_term: 0,
            entries: vec![noop(4), noop(5)],
            leader_commit: 0,
        },
    );
    assert_eq!(node.log().last_index(), 4);
    assert_eq!(node.log().last_term(), 8);
}

#[test]
fn regression_a_rejection_beyond_anything_sent_does_not_move_next_past_the_log() {
    let mut config = checked_config();
    config.pre_vote = false;
    let state = RestoreState::bootstrap(Membership::with_voters([1, 2, 3]));
    let rng = Box::new(XorShiftRng::seed_from_u64(1));
    let mut node = RaftNode::restore(config, rng, state).unwrap();
    while node.role() != Role::Candidate {
        node.tick();
    }
    let term = node.term();
    step(
        &mut node,
        2,
        term,
        MessageKind::RequestVoteResponse {
            pre_vote: false,
            granted: true,
        },
    );
    assert_eq!(node.role(), Role::Leader);
    drain(&mut node);
    let last = node.log().last_index();
    step(
        &mut node,
        3,
        term,
        MessageKind::AppendEntriesResponse(AppendResult::Success { match_index: last }),
    );
    step(
        &mut node,
        3,
        term,
        MessageKind::AppendEntriesResponse(AppendResult::Reject {
            rejected_index: last + 2,
            conflict_term: None,
            conflict_index: last + 2,
        }),
    );
    assert!(node.progress(3).unwrap().next <= last + 1);
}

#[test]
fn regression_a_write_issued_before_a_truncation_does_not_make_replaced_entries_durable() {
    let mut node = fresh_follower();
    let entry = |index, term| Entry {
        index,
        term,
        payload: Payload::Noop,
    };
    let append = |entries, leader_commit| MessageKind::AppendEntries {
        prev_log_index: 0,
        prev_log_term: 0,
        entries,
        leader_commit,
    };
    step(&mut node, 2, 2, append(vec![entry(1, 0), entry(2, 1)], 0));
    let first = node.ready().write.expect("entries to write");
    // A message that breaks Log Matching: (2, 1) again, after a different entry 1.
    step(&mut node, 2, 2, append(vec![entry(1, 1), entry(2, 1)], 0));
    let second = node.ready().write.expect("the truncation to write");
    assert_eq!(second.truncate_from(), Some(1));
    node.persisted(first);
    assert_eq!(
        node.log().stable(),
        0,
        "the replaced entry 1 counted as durable"
    );
    node.persisted(second);
    assert_eq!(node.log().stable(), 2);
}

#[test]
fn regression_a_write_issued_before_a_snapshot_install_makes_no_entry_durable() {
    let mut node = fresh_follower();
    let entry = |index, term| Entry {
        index,
        term,
        payload: Payload::Noop,
    };
    step(
        &mut node,
        2,
        2,
        MessageKind::AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![entry(1, 1), entry(2, 2), entry(3, 2)],
            leader_commit: 0,
        },
    );
    let first = node.ready().write.expect("entries to write");
    // A snapshot at 1 that disagrees with entry 1 (this needs a second leader in term 2, so
    // it breaks Election Safety), followed by entries 2 and 3 that match the in-flight write.
    step(
        &mut node,
        2,
        2,
        MessageKind::InstallSnapshot {
            snapshot: SnapshotMeta {
                index: 1,
                term: 2,
                membership: Membership::with_voters([1, 2, 3]),
            },
        },
    );
    step(
        &mut node,
        2,
        2,
        MessageKind::AppendEntries {
            prev_log_index: 1,
            prev_log_term: 2,
            entries: vec![entry(2, 2), entry(3, 2)],
            leader_commit: 3,
        },
    );
    let mut ready = node.ready();
    let second = ready.write.take().expect("the snapshot to write");
    node.persisted(first);
    assert!(
        node.log().stable() <= 1,
        "entries after the snapshot counted as durable before the snapshot is"
    );
    let ready = node.ready();
    assert!(
        ready.committed.is_empty(),
        "entries after a snapshot handed out before the snapshot is durable: {:?}",
        ready.committed
    );
    node.persisted(second);
    let ready = node.ready();
    assert_eq!(
        ready.committed.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![2, 3]
    );
}

// -------------------------------------------------------------------------------------------
// Clusters under an unreliable network.

/// Records which member led each term and fails if two did (Election Safety, Figure 3).
#[derive(Default)]
struct ElectionSafety {
    leaders: BTreeMap<Term, NodeId>,
}

impl ElectionSafety {
    fn check(&mut self, c: &Cluster, context: &str) {
        for (id, term) in c.leaders() {
            let first = *self.leaders.entry(term).or_insert(id);
            assert_eq!(
                first, id,
                "{context}: nodes {first} and {id} both led term {term}"
            );
        }
    }
}

/// Log Matching and State Machine Safety across members: no two members hold different
/// committed entries at the same index.
fn check_committed_logs_agree(c: &Cluster, context: &str) {
    c.check_state_machine_safety();
    let mut committed: BTreeMap<Index, (NodeId, Term)> = BTreeMap::new();
    for (&id, member) in &c.members {
        let Some(node) = member.node.as_ref() else {
            continue;
        };
        let log = node.log();
        for index in log.first_index()..=log.committed() {
            let Some(entry) = log.entry(index) else {
                continue;
            };
            let (other, term) = *committed.entry(index).or_insert((id, entry.term));
            assert_eq!(
                term, entry.term,
                "{context}: committed entry {index} has term {term} at node {other} but {} at node {id}",
                entry.term
            );
        }
    }
}

struct Chaos {
    c: Cluster,
    rng: XorShiftRng,
    safety: ElectionSafety,
    next_command: u64,
    seed: u64,
}

impl Chaos {
    fn new(c: Cluster, seed: u64) -> Chaos {
        Chaos {
            c,
            rng: XorShiftRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef),
            safety: ElectionSafety::default(),
            next_command: 0,
            seed,
        }
    }

    /// Delivers one message. The harness streams the sender's *current* snapshot with an
    /// InstallSnapshot; if the sender has replaced that snapshot since (compacted further, or
    /// installed a newer one), the stream fails and the message is lost, as with a real
    /// transport. The leader retries after its snapshot timeout.
    fn deliver(&mut self, envelope: Envelope<Message>) {
        if let MessageKind::InstallSnapshot { snapshot } = &envelope.message.kind {
            let sender = &self.c.member(envelope.from).disk;
            if sender.snapshot.index != snapshot.index
                || sender.snapshot_data.len() as Index != snapshot.index
            {
                return;
            }
        }
        self.c.deliver(envelope);
    }

    /// Delivers everything in flight, oldest first, until the network is quiet.
    fn deliver_all(&mut self) {
        self.c.process_all();
        let mut delivered = 0;
        while let Some(envelope) = self.c.network.pop_front() {
            self.deliver(envelope);
            delivered += 1;
            assert!(
                delivered < 1_000_000,
                "seed {}: network never went quiet",
                self.seed
            );
        }
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n
    }

    fn running(&self) -> Vec<NodeId> {
        self.c
            .members
            .iter()
            .filter(|(_, m)| m.node.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    fn pick(&mut self, ids: &[NodeId]) -> Option<NodeId> {
        (!ids.is_empty()).then(|| ids[self.below(ids.len() as u64) as usize])
    }

    fn propose(&mut self) {
        let leaders: Vec<NodeId> = self.c.leaders().into_iter().map(|(id, _)| id).collect();
        if let Some(leader) = self.pick(&leaders) {
            self.next_command += 1;
            let data = Bytes::from(format!("{}-{}", self.seed, self.next_command));
            if self.c.node_mut(leader).propose(data).is_ok() {
                self.c.process(leader);
            }
        }
    }

    /// One random action of the adversary or the clients.
    fn step(&mut self, max_down: usize) {
        let ids = self.c.ids();
        match self.below(100) {
            0..=24 => self.c.tick_all(),
            25..=64 => {
                // Deliver a random in-flight message (reordering), sometimes keeping a copy
                // (duplication) or dropping it (loss).
                let len = self.c.network.len() as u64;
                if len > 0 {
                    let i = self.below(len) as usize;
                    let envelope = self.c.network.remove(i).expect("in range");
                    match self.below(10) {
                        0 => {}
                        1 => {
                            self.c.network.push_back(envelope.clone());
                            self.deliver(envelope);
                        }
                        _ => self.deliver(envelope),
                    }
                }
            }
            65..=74 => self.propose(),
            75..=79 => {
                // Deliver the oldest messages in order, as a healthy network would.
                for _ in 0..8 {
                    let Some(envelope) = self.c.network.pop_front() else {
                        break;
                    };
                    self.deliver(envelope);
                }
            }
            80..=81 => {
                let down = ids.len() - self.running().len();
                let running = self.running();
                if down < max_down
                    && let Some(id) = self.pick(&running)
                {
                    self.c.crash(id);
                }
            }
            82..=84 => {
                let crashed: Vec<NodeId> = ids
                    .iter()
                    .copied()
                    .filter(|id| self.c.member(*id).node.is_none())
                    .collect();
                if let Some(id) = self.pick(&crashed) {
                    self.c.restart(id);
                    self.c.process(id);
                }
            }
            85..=86 => {
                let running = self.running();
                if let Some(id) = self.pick(&running) {
                    let node = self.c.node(id);
                    let applied = node.log().applied();
                    if applied > node.log().snapshot().index
                        && self.c.member(id).applied.len() as Index == applied
                        && node.snapshot_meta(applied).is_ok()
                    {
                        self.c.snapshot(id);
                    }
                }
            }
            87..=88 => {
                let size = 1 + self.below(ids.len() as u64 - 1) as usize;
                let mut side = ids.clone();
                while side.len() > size {
                    let i = self.below(side.len() as u64) as usize;
                    side.remove(i);
                }
                self.c.partition(&side);
            }
            89..=91 => self.c.heal(),
            _ => {
                // Duplicate a random in-flight message.
                let len = self.c.network.len() as u64;
                if len > 0 {
                    let i = self.below(len) as usize;
                    let copy = self.c.network[i].clone();
                    self.c.network.push_back(copy);
                }
            }
        }
    }

    fn check(&mut self, step: usize) {
        let context = format!("seed {} step {step}", self.seed);
        self.safety.check(&self.c, &context);
        if step.is_multiple_of(25) {
            check_committed_logs_agree(&self.c, &context);
        }
    }

    /// Heals everything and checks that the cluster makes progress again: some leader commits
    /// a new command and every member of its configuration applies it.
    fn recover(&mut self) {
        let context = format!("seed {} recovery", self.seed);
        self.c.heal();
        self.c.loss = 0.0;
        for id in self.c.ids() {
            if self.c.member(id).node.is_none() {
                self.c.restart(id);
            }
        }
        let mut proposal: Option<(NodeId, Index, Term)> = None;
        for _ in 0..2_000 {
            self.c.tick_all();
            self.deliver_all();
            self.safety.check(&self.c, &context);
            if let Some((leader, index, term)) = proposal {
                let node = self.c.node(leader);
                if node.term() != term || node.role() != Role::Leader {
                    proposal = None;
                    continue;
                }
                let voters = node.membership().members();
                if node.log().committed() >= index
                    && voters
                        .iter()
                        .all(|id| self.c.member(*id).applied.len() as Index >= index)
                {
                    check_committed_logs_agree(&self.c, &context);
                    return;
                }
            } else if let Some(leader) = self.c.leader() {
                let term = self.c.node(leader).term();
                if let Ok(p) = self
                    .c
                    .node_mut(leader)
                    .propose(Bytes::from_static(b"recovery"))
                {
                    self.c.process(leader);
                    proposal = Some((leader, p.index, term));
                }
            }
        }
        let state: Vec<_> = self
            .c
            .ids()
            .into_iter()
            .map(|id| {
                let n = self.c.node(id);
                (
                    id,
                    n.role(),
                    n.term(),
                    n.leader(),
                    n.log().committed(),
                    n.log().last_index(),
                    n.log().last_term(),
                    n.membership().clone(),
                )
            })
            .collect();
        panic!("{context}: no progress after healing: {state:?}");
    }
}

/// Seeds cycle through configurations: the defaults; without pre-vote and check-quorum (plain
/// Raft); with lease reads; and with tiny batches and flow-control windows.
fn chaos_config(id: NodeId, seed: u64) -> Config {
    let mut config = Config::new(id);
    match seed % 4 {
        0 => {}
        1 => {
            config.pre_vote = false;
            config.check_quorum = false;
        }
        2 => config.lease_read = true,
        _ => {
            config.max_entries_per_message = 1;
            config.max_inflight_messages = 2;
            config.max_inflight_bytes = 64;
        }
    }
    config
}

/// Election Safety and State Machine Safety (Raft Figure 3) for a three-member cluster whose
/// network loses, duplicates and reorders messages, with partitions, crashes, restarts and
/// compactions; and liveness once the network heals.
#[test]
fn section_5_safety_under_loss_duplication_reordering_and_crashes() {
    let seeds = scale(150);
    for seed in 0..seeds {
        let mut cluster = Cluster::with_config(3, seed, move |id| chaos_config(id, seed));
        cluster.loss = 0.05;
        let mut chaos = Chaos::new(cluster, seed);
        for step in 0..3_000 {
            chaos.step(1);
            chaos.check(step);
        }
        check_committed_logs_agree(&chaos.c, &format!("seed {seed} end"));
        chaos.recover();
    }
}

/// The same, while members 4 and 5 (empty disks) are added, promoted and removed by random
/// single-server and joint changes (Raft §6, thesis §4).
#[test]
fn section_6_safety_under_chaos_with_membership_changes() {
    let seeds = scale(80);
    for seed in 0..seeds {
        let mut cluster = Cluster::with_config(3, 1_000 + seed, move |id| chaos_config(id, seed));
        cluster.loss = 0.05;
        cluster.add_member(4, Disk::default());
        cluster.add_member(5, Disk::default());
        let mut chaos = Chaos::new(cluster, seed);
        for step in 0..3_000 {
            if chaos.below(100) < 3 {
                let leaders: Vec<NodeId> =
                    chaos.c.leaders().into_iter().map(|(id, _)| id).collect();
                if let Some(leader) = chaos.pick(&leaders) {
                    let id = 1 + chaos.below(5);
                    let change = match chaos.below(5) {
                        0 => ConfChange::AddVoter(id),
                        1 => ConfChange::AddLearner(id),
                        2 => ConfChange::Remove(id),
                        _ => {
                            let mut voters = BTreeSet::new();
                            let mut learners = BTreeSet::new();
                            for id in 1..=5 {
                                match chaos.below(3) {
                                    0 => {
                                        voters.insert(id);
                                    }
                                    1 => {
                                        learners.insert(id);
                                    }
                                    _ => {}
                                }
                            }
                            ConfChange::Joint { voters, learners }
                        }
                    };
                    if chaos
                        .c
                        .node_mut(leader)
                        .propose_membership_change(change)
                        .is_ok()
                    {
                        chaos.c.process(leader);
                    }
                }
            }
            chaos.step(1);
            chaos.check(step);
        }
        check_committed_logs_agree(&chaos.c, &format!("seed {seed} end"));
        chaos.recover();
    }
}
