//! The Raft node: roles, elections, replication, reads, transfers and membership.
//!
//! Section references are to Ongaro & Ousterhout, "In Search of an Understandable Consensus
//! Algorithm" (2014), and "thesis" to Ongaro's PhD thesis (2014).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use bytes::Bytes;
use rand_core::Rng;
use synod_core::engine::{CompactError, Engine, Envelope, Ready, Write};
use synod_core::quorum::{VoteResult, joint_committed_index, joint_vote_result};
use synod_core::{
    ConfChange, Entry, Index, Membership, NodeId, Payload, Proposal, ProposeError, ReadContext,
    ReadError, ReadState, Role, SnapshotMeta, SoftState, Status, Term, TransferError,
};
use thiserror::Error;

use crate::config::{Config, ConfigError};
use crate::log::RaftLog;
use crate::message::{AppendResult, Message, MessageKind};
use crate::progress::{Progress, ProgressState};
use crate::reads::ReadTracker;

/// Raft's durable, non-log state (Figure 2), plus the commit index so that a restarted member
/// knows how much of its log it may apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this member has seen.
    pub term: Term,
    /// Whom it voted for in that term.
    pub vote: Option<NodeId>,
    /// The highest index it knows to be committed.
    pub commit: Index,
}

impl synod_core::DurableState for HardState {
    /// Term, vote (0 for none; node id 0 is reserved) and commit, as little-endian `u64`s.
    fn encode(&self, out: &mut Vec<u8>) {
        for value in [self.term, self.vote.unwrap_or(0), self.commit] {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let [term, vote, commit] = synod_core::engine::decode_u64s(bytes)?;
        Some(HardState {
            term,
            vote: (vote != 0).then_some(vote),
            commit,
        })
    }
}

/// What a member starts from: its durable state, or a fresh cluster's bootstrap.
#[derive(Clone, Debug, Default)]
pub struct RestoreState {
    /// Term, vote and commit.
    pub hard_state: HardState,
    /// The newest snapshot (index 0 with the initial configuration for a new cluster).
    pub snapshot: SnapshotMeta,
    /// The log entries after the snapshot.
    pub entries: Vec<Entry>,
    /// How much the application's state machine has already applied.
    pub applied: Index,
}

impl RestoreState {
    /// The state of a member of a brand-new cluster with these members. A member that joins an
    /// existing cluster starts from `RestoreState::default()` and learns the configuration from
    /// the leader.
    pub fn bootstrap(membership: Membership) -> Self {
        RestoreState {
            snapshot: SnapshotMeta {
                index: 0,
                term: 0,
                membership,
            },
            ..RestoreState::default()
        }
    }
}

/// Why a member could not be restored. The durable state is inconsistent or the configuration
/// is invalid; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The snapshot's membership is invalid.
    #[error("invalid membership in snapshot: {0}")]
    Membership(#[from] synod_core::MembershipError),
    /// The entries do not follow the snapshot contiguously.
    #[error("log entry {found} found where entry {expected} was expected")]
    NotContiguous {
        /// The index that should have come next.
        expected: Index,
        /// The index found.
        found: Index,
    },
    /// Terms decrease along the log, or exceed the hard state's term.
    #[error("entry {index} has term {term}, out of order")]
    TermOutOfOrder {
        /// The entry.
        index: Index,
        /// Its term.
        term: Term,
    },
    /// The commit index is beyond the log: committed entries are missing.
    #[error(
        "commit index {commit} is beyond the last log index {last}: committed entries are missing"
    )]
    CommitBeyondLog {
        /// The persisted commit index.
        commit: Index,
        /// The last index in the log.
        last: Index,
    },
    /// The state machine claims to have applied more than is committed.
    #[error("applied index {applied} is beyond the commit index {commit}")]
    AppliedBeyondCommit {
        /// The applied index.
        applied: Index,
        /// The commit index.
        commit: Index,
    },
}

/// A write handed out and not yet handed back.
#[derive(Debug)]
struct PendingWrite {
    seq: u64,
    last_entry: Option<(Index, Term)>,
    snapshot_index: Option<Index>,
    /// Messages that may leave only once this write is durable.
    gated: Vec<Envelope<Message>>,
}

/// What the invariant checker remembers between calls.
#[derive(Debug, Default)]
struct InvariantShadow {
    term: Term,
    vote: Option<NodeId>,
}

/// A pending leadership transfer.
#[derive(Clone, Copy, Debug)]
struct Transfer {
    to: NodeId,
    elapsed: u32,
}

/// A Raft member. Pure: it does no I/O and draws randomness only from the injected RNG.
///
/// See the [crate documentation](crate) for how to drive it.
pub struct RaftNode {
    config: Config,
    rng: Box<dyn Rng + Send>,

    term: Term,
    vote: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,

    /// Leader only: one entry per other member.
    progress: BTreeMap<NodeId, Progress>,
    /// Candidate and pre-candidate only: the answers received.
    votes: BTreeMap<NodeId, bool>,

    now: u64,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    /// This term's randomized election timeout, in `[election_ticks, 2 × election_ticks)`.
    election_timeout: u32,

    transfer: Option<Transfer>,
    reads: ReadTracker,
    /// Reads whose index is known, waiting until that index has been handed out for applying.
    local_reads: Vec<ReadState>,
    /// Reads forwarded to the leader and not yet answered.
    forwarded_reads: Vec<ReadContext>,
    failed_reads: Vec<ReadContext>,
    /// A received snapshot has not yet been persisted (and so not yet restored by the
    /// application); reads must wait for it.
    snapshot_restore_pending: bool,

    /// Leader: entries or a new commit index are waiting to be broadcast at the next `ready`.
    broadcast_pending: bool,
    msgs: Vec<Envelope<Message>>,
    msgs_after_write: Vec<Envelope<Message>>,
    pending_writes: VecDeque<PendingWrite>,
    next_write_seq: u64,
    last_hard_state: HardState,
    last_soft_state: SoftState,

    shadow: InvariantShadow,
}

impl fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.config.id)
            .field("role", &self.role)
            .field("term", &self.term)
            .field("vote", &self.vote)
            .field("leader", &self.leader)
            .field("last_index", &self.log.last_index())
            .field("commit", &self.log.committed())
            .finish_non_exhaustive()
    }
}

impl RaftNode {
    /// Builds a member from its durable state. `rng` draws election timeouts; seed it for
    /// deterministic runs.
    pub fn restore(
        config: Config,
        rng: Box<dyn Rng + Send>,
        state: RestoreState,
    ) -> Result<RaftNode, RestoreError> {
        config.validate()?;
        state.snapshot.membership.validate()?;
        let RestoreState {
            hard_state,
            snapshot,
            entries,
            applied,
        } = state;
        let mut expected = snapshot.index + 1;
        let mut prev_term = snapshot.term;
        for entry in &entries {
            if entry.index != expected {
                return Err(RestoreError::NotContiguous {
                    expected,
                    found: entry.index,
                });
            }
            if entry.term < prev_term || entry.term > hard_state.term {
                return Err(RestoreError::TermOutOfOrder {
                    index: entry.index,
                    term: entry.term,
                });
            }
            if let Payload::Membership(m) = &entry.payload {
                m.validate()?;
            }
            expected += 1;
            prev_term = entry.term;
        }
        let last = expected - 1;
        if hard_state.commit > last {
            return Err(RestoreError::CommitBeyondLog {
                commit: hard_state.commit,
                last,
            });
        }
        let commit = hard_state.commit.max(snapshot.index);
        if applied > commit {
            return Err(RestoreError::AppliedBeyondCommit { applied, commit });
        }
        let log = RaftLog::restore(snapshot, entries, commit, applied);
        let soft = SoftState {
            role: Role::Follower,
            term: hard_state.term,
            leader: None,
        };
        let mut node = RaftNode {
            rng,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            now: 0,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            election_timeout: config.election_ticks,
            transfer: None,
            reads: ReadTracker::default(),
            local_reads: Vec::new(),
            forwarded_reads: Vec::new(),
            failed_reads: Vec::new(),
            snapshot_restore_pending: false,
            broadcast_pending: false,
            msgs: Vec::new(),
            msgs_after_write: Vec::new(),
            pending_writes: VecDeque::new(),
            next_write_seq: 1,
            last_hard_state: HardState {
                term: hard_state.term,
                vote: hard_state.vote,
                commit,
            },
            last_soft_state: soft,
            shadow: InvariantShadow {
                term: hard_state.term,
                vote: hard_state.vote,
            },
            config,
        };
        node.election_timeout = node.draw_election_timeout();
        node.last_soft_state.role = node.public_role();
        node.check_invariants();
        Ok(node)
    }

    // ---------------------------------------------------------------------------------------
    // Accessors.

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The vote cast in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The role, as reported in [`SoftState`].
    pub fn role(&self) -> Role {
        self.public_role()
    }

    /// The leader this member believes in.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The in-memory log (read-only).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The configuration in effect.
    pub fn membership(&self) -> &Membership {
        self.log.membership()
    }

    /// The hard state as of now (it may not be durable yet).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    /// Leader only: its record of member `id`.
    pub fn progress(&self, id: NodeId) -> Option<&Progress> {
        self.progress.get(&id)
    }

    /// This term's randomized election timeout, in ticks.
    pub fn election_timeout(&self) -> u32 {
        self.election_timeout
    }

    /// The leadership transfer in progress, if any.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|t| t.to)
    }

    fn public_role(&self) -> Role {
        if self.role == Role::Follower && self.log.membership().is_learner_only(self.config.id) {
            Role::Learner
        } else {
            self.role
        }
    }

    fn soft_state(&self) -> SoftState {
        SoftState {
            role: self.public_role(),
            term: self.term,
            leader: self.leader,
        }
    }

    /// Whether the deliberate bug `mutant` is on (never, without the `mutants` feature).
    #[allow(unused_variables)]
    fn mutant(&self, mutant: crate::Mutant) -> bool {
        #[cfg(feature = "mutants")]
        return self.config.mutant == Some(mutant);
        #[cfg(not(feature = "mutants"))]
        return false;
    }

    fn is_voter(&self) -> bool {
        self.log.membership().is_voter(self.config.id)
    }

    /// Whether this member may start an election. Thesis §4.2.2: a member that is not part of
    /// its own latest configuration still campaigns while that configuration is uncommitted, if
    /// it voted in the one before, as it may be needed to commit it (its own vote counts only if
    /// it is part of the latest configuration). A learner never campaigns.
    fn can_campaign(&self) -> bool {
        if self.is_voter() {
            return true;
        }
        let latest = self.log.membership_index();
        latest > self.log.committed() && self.log.membership_at(latest - 1).is_voter(self.config.id)
    }

    // ---------------------------------------------------------------------------------------
    // Inputs.

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.now += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
        self.check_invariants();
    }

    /// Handles one inbound message from `from`.
    pub fn step(&mut self, from: NodeId, message: Message) {
        if from != 0 && from != self.config.id {
            self.step_inner(from, message);
        }
        self.check_invariants();
    }

    /// The transport lost its connection to `peer`. A follower whose leader that is forgets the
    /// leader and campaigns (pre-vote first) without waiting out its election timeout: at once
    /// if it has the lowest id among the other voters, otherwise
    /// [`Config::unreachable_leader_stagger_ticks`] later per voter ranked before it, so that
    /// the survivors do not split the vote. Returns whether it acted.
    ///
    /// Why this is safe, and when it is not done:
    /// - Terms and votes alone give Election Safety and Leader Completeness (§5.2, §5.4); the
    ///   report only moves an election earlier, exactly as if the election timer had fired.
    /// - Pre-vote keeps a wrong report harmless: if the leader is alive, the other voters still
    ///   hear from it and refuse the pre-vote (thesis §9.6), so no term is disturbed and the
    ///   member follows again at the leader's next heartbeat. Without pre-vote a wrong report
    ///   would depose a live leader, so the report is then ignored.
    /// - Forgetting the leader is what lets the member grant other members' pre-votes: the
    ///   stickiness rule refuses them only while a leader is known and was heard within an
    ///   election timeout, and a leader reported unreachable is treated like an expired one.
    /// - With lease reads the report is ignored. The leader serves reads on the promise that
    ///   every follower that acknowledged its heartbeat refuses votes for an election timeout
    ///   (thesis §6.4.1). A dropped connection does not prove that the leader stopped serving
    ///   such reads (its process may live on), so breaking the promise early could let a new
    ///   leader commit writes that the old one's lease reads do not see.
    /// - A leader ignores the report (check-quorum already steps down a leader that lost its
    ///   quorum), and so do candidates (already campaigning), learners (cannot campaign), and
    ///   a follower told about a member that is not its leader.
    pub fn peer_unreachable(&mut self, peer: NodeId) -> bool {
        let acted = self.maybe_campaign_early(peer);
        self.check_invariants();
        acted
    }

    fn maybe_campaign_early(&mut self, peer: NodeId) -> bool {
        if self.role != Role::Follower
            || self.leader != Some(peer)
            || peer == self.config.id
            || !self.config.pre_vote
            || self.config.lease_read
            || !self.can_campaign()
        {
            return false;
        }
        self.set_leader(None);
        let id = self.config.id;
        let rank = self
            .log
            .membership()
            .all_voters()
            .into_iter()
            .filter(|&v| v != peer)
            .take_while(|&v| v < id)
            .count() as u32;
        let delay = rank.saturating_mul(self.config.unreachable_leader_stagger_ticks);
        if delay == 0 {
            self.election_elapsed = 0;
            self.start_election(false);
        } else {
            // The election timer fires `delay` ticks from now, unless it would fire sooner
            // anyway, or hears from a leader or grants a vote meanwhile (both reset it).
            self.election_elapsed = self
                .election_elapsed
                .max(self.election_timeout.saturating_sub(delay));
        }
        debug_assert!(self.leader.is_none());
        true
    }

    /// Proposes a command (leader only).
    pub fn propose(&mut self, command: Bytes) -> Result<Proposal, ProposeError> {
        self.check_can_propose()?;
        Ok(self.append_entry(Payload::Command(command)))
    }

    /// Proposes a configuration change (leader only). One change may be in flight at a time,
    /// and only once the leader has committed an entry of its own term (thesis §4.1).
    pub fn propose_membership_change(
        &mut self,
        change: ConfChange,
    ) -> Result<Proposal, ProposeError> {
        self.check_can_propose()?;
        if !self.committed_in_current_term() {
            return Err(ProposeError::LeaderNotReady);
        }
        if self.log.membership_index() > self.log.committed() {
            return Err(ProposeError::ConfChangeInProgress);
        }
        let next = self.log.membership().apply(&change)?;
        let proposal = self.append_entry(Payload::Membership(next));
        self.check_invariants();
        Ok(proposal)
    }

    /// Asks for a linearizable read (thesis §6.4). A follower forwards it to the leader.
    pub fn read_index(&mut self, context: ReadContext) -> Result<(), ReadError> {
        if self.mutant(crate::Mutant::StaleRead) {
            let index = self.log.applied();
            self.local_reads.push(ReadState { context, index });
            return Ok(());
        }
        if self.role == Role::Leader {
            self.leader_read(context, self.config.id);
        } else {
            let leader = self.leader.ok_or(ReadError::NoLeader)?;
            self.forwarded_reads.push(context);
            self.send(leader, MessageKind::ReadIndex { context });
        }
        self.check_invariants();
        Ok(())
    }

    /// Starts a leadership transfer to `to` (thesis §3.10): the leader stops accepting
    /// proposals, brings `to` up to date, then tells it to campaign at once. The transfer is
    /// abandoned after an election timeout.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader {
                leader: self.leader,
            });
        }
        if to == self.config.id {
            return Err(TransferError::AlreadyLeader(to));
        }
        if !self.log.membership().voters.contains(&to) {
            return Err(TransferError::NotVoter(to));
        }
        if self.transfer.is_some_and(|t| t.to == to) {
            return Ok(());
        }
        self.transfer = Some(Transfer { to, elapsed: 0 });
        // The target will campaign while voters still hear from us: our lease is void.
        self.reads.lease_until = 0;
        let caught_up = self
            .progress
            .get(&to)
            .is_some_and(|pr| pr.matched == self.log.last_index());
        if caught_up {
            self.send(to, MessageKind::TimeoutNow);
        } else {
            self.maybe_send_append(to, true);
        }
        self.check_invariants();
        Ok(())
    }

    /// The metadata for a snapshot at `index`.
    pub fn snapshot_meta(&self, index: Index) -> Result<SnapshotMeta, CompactError> {
        self.check_compactable(index)?;
        Ok(self.log.snapshot_meta_at(index))
    }

    /// Discards the log up to `index`, which the application holds in a durable snapshot.
    pub fn compact(&mut self, index: Index) -> Result<(), CompactError> {
        self.check_compactable(index)?;
        self.log.compact(index);
        self.check_invariants();
        Ok(())
    }

    fn check_compactable(&self, index: Index) -> Result<(), CompactError> {
        let snapshot = self.log.snapshot().index;
        if index <= snapshot {
            return Err(CompactError::AlreadyCompacted { index, snapshot });
        }
        let limit = self.log.applied().min(self.log.stable());
        if index > limit {
            return Err(CompactError::NotApplied { index, limit });
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Output.

    /// Whether [`RaftNode::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        !self.msgs.is_empty()
            || !self.msgs_after_write.is_empty()
            || self.broadcast_pending
            || (self.role == Role::Leader && self.read_round_due())
            || self.hard_state() != self.last_hard_state
            || self.log.has_unwritten()
            || self.log.has_next_committed()
            || !self.failed_reads.is_empty()
            || (!self.snapshot_restore_pending
                && self
                    .local_reads
                    .iter()
                    .any(|r| r.index <= self.log.applied()))
            || self.soft_state() != self.last_soft_state
    }

    /// Takes the next output batch.
    pub fn ready(&mut self) -> Ready<HardState, Message> {
        self.flush_broadcasts();

        let mut messages = std::mem::take(&mut self.msgs);
        let gated = std::mem::take(&mut self.msgs_after_write);
        let hard_state = self.hard_state();
        let hard_state_changed = hard_state != self.last_hard_state;
        let write = if hard_state_changed
            || self.log.has_unwritten()
            || (!gated.is_empty() && !self.pending_writes.is_empty())
        {
            let (snapshot, truncate_from, entries) = self.log.take_unwritten();
            let seq = self.next_write_seq;
            self.next_write_seq += 1;
            // The commit index is volatile state (Figure 2): a write that changes nothing else
            // need not wait for a sync. Term and vote must be durable before anyone hears of
            // them.
            let volatile_only = hard_state.term == self.last_hard_state.term
                && hard_state.vote == self.last_hard_state.vote;
            self.last_hard_state = hard_state;
            self.pending_writes.push_back(PendingWrite {
                seq,
                last_entry: entries.last().map(|e| (e.index, e.term)),
                snapshot_index: snapshot.as_ref().map(|s| s.index),
                gated,
            });
            let write = Write::new(
                seq,
                hard_state_changed.then_some(hard_state),
                truncate_from,
                entries,
                snapshot,
            );
            Some(if volatile_only {
                write.without_sync()
            } else {
                write
            })
        } else {
            // Nothing is waiting to become durable, so nothing these messages depend on is
            // missing from stable storage.
            messages.extend(gated);
            None
        };

        let committed = self.log.take_next_committed();
        let mut reads = Vec::new();
        if !self.snapshot_restore_pending {
            let applied = self.log.applied();
            self.local_reads.retain(|r| {
                let ready = r.index <= applied;
                if ready {
                    reads.push(*r);
                }
                !ready
            });
        }
        let soft = self.soft_state();
        let soft_state = (soft != self.last_soft_state).then(|| {
            self.last_soft_state = soft;
            soft
        });
        let ready = Ready {
            messages,
            write,
            committed,
            reads,
            failed_reads: std::mem::take(&mut self.failed_reads),
            soft_state,
        };
        self.check_invariants();
        ready
    }

    /// Hands back a durable write; returns the messages that waited on it.
    ///
    /// # Panics
    /// If writes are handed back out of order.
    pub fn persisted(&mut self, write: Write<HardState>) -> Vec<Envelope<Message>> {
        let pending = self.pending_writes.pop_front().unwrap_or_else(|| {
            panic!("write {} handed back, but none is outstanding", write.seq())
        });
        assert_eq!(
            pending.seq,
            write.seq(),
            "writes must be handed back in the order they were issued"
        );
        if let Some(index) = pending.snapshot_index {
            self.log.snapshot_stable(index);
            // Only the newest snapshot counts: if another was installed after this write was
            // handed out, the state machine is not restored to it until its write is persisted.
            if index >= self.log.snapshot().index {
                self.snapshot_restore_pending = false;
            }
        }
        if let Some((index, term)) = pending.last_entry {
            self.log.stable_to(index, term);
        }
        if self.role == Role::Leader && self.maybe_commit() {
            // Committing C_new may have removed this leader; then there is nothing to broadcast.
            self.broadcast_pending = self.role == Role::Leader;
        }
        self.check_invariants();
        pending.gated
    }

    /// The member's current state.
    pub fn status(&self) -> Status {
        Status {
            id: self.config.id,
            soft_state: self.soft_state(),
            commit: self.log.committed(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
            persisted: self.log.stable(),
            snapshot_index: self.log.snapshot().index,
            membership: self.log.membership().clone(),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Sending.

    /// Queues a message stamped with the current term.
    fn send(&mut self, to: NodeId, kind: MessageKind) {
        let term = self.term;
        self.send_with_term(to, term, kind);
    }

    /// Queues a message. A leader's replication traffic leaves at once: its term is durable
    /// (it persisted it as a candidate), and the paper lets it send entries before its own copy
    /// is durable (§10.2.1). Everything else (votes, acknowledgements) waits for the write that
    /// makes the state it reports durable.
    fn send_with_term(&mut self, to: NodeId, term: Term, kind: MessageKind) {
        let immediate = self.role == Role::Leader
            && matches!(
                kind,
                MessageKind::AppendEntries { .. }
                    | MessageKind::Heartbeat { .. }
                    | MessageKind::InstallSnapshot { .. }
                    | MessageKind::TimeoutNow
                    | MessageKind::ReadIndexResponse { .. }
            );
        let envelope = Envelope {
            from: self.config.id,
            to,
            message: Message { term, kind },
        };
        if immediate || self.mutant(crate::Mutant::EarlyAck) {
            self.msgs.push(envelope);
        } else {
            self.msgs_after_write.push(envelope);
        }
    }

    /// Sends `to` the entries it lacks, or a snapshot if they were compacted. Returns whether
    /// a message was sent.
    fn maybe_send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let Some(pr) = self.progress.get_mut(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let prev_log_index = pr.next - 1;
        let Some(prev_log_term) = self.log.term(prev_log_index) else {
            // Raft §7: the entries this follower needs were compacted.
            let snapshot = self.log.snapshot().clone();
            pr.become_snapshot(snapshot.index);
            self.send(to, MessageKind::InstallSnapshot { snapshot });
            return true;
        };
        let entries = self.log.entries_from(
            pr.next,
            self.config.max_entries_per_message,
            self.config.max_bytes_per_message,
        );
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        if let Some(last) = entries.last() {
            let bytes = entries.iter().map(Entry::size_bytes).sum();
            pr.sent_entries(last.index, bytes);
        } else if pr.state == ProgressState::Probe {
            pr.probe_sent = true;
        }
        let leader_commit = self.log.committed();
        self.send(
            to,
            MessageKind::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            },
        );
        true
    }

    /// Leader: sends pending entries (and the commit index) to every member.
    fn flush_broadcasts(&mut self) {
        if self.role != Role::Leader {
            self.broadcast_pending = false;
            return;
        }
        if std::mem::take(&mut self.broadcast_pending) {
            let ids: Vec<NodeId> = self.progress.keys().copied().collect();
            for id in ids {
                let mut sent = self.maybe_send_append(id, true);
                while sent && self.progress[&id].state == ProgressState::Replicate {
                    sent = self.maybe_send_append(id, false);
                }
            }
        }
        if self.read_round_due() {
            self.broadcast_heartbeat();
        }
    }

    fn broadcast_heartbeat(&mut self) {
        let round = self.reads.start_round(self.now);
        let commit = self.log.committed();
        let targets: Vec<(NodeId, Index)> = self
            .progress
            .iter()
            .map(|(&id, pr)| (id, pr.matched.min(commit)))
            .collect();
        for (id, commit) in targets {
            self.send(id, MessageKind::Heartbeat { commit, round });
        }
        self.advance_read_rounds();
    }

    // ---------------------------------------------------------------------------------------
    // Role changes.

    fn draw_election_timeout(&mut self) -> u32 {
        let span = u64::from(self.config.election_ticks);
        self.config.election_ticks + (self.rng.next_u64() % span) as u32
    }

    fn reset(&mut self, term: Term) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.election_timeout = self.draw_election_timeout();
        self.votes.clear();
        self.broadcast_pending = false;
        if self.role == Role::Leader {
            // Reads the old leader had not answered can no longer be confirmed.
            for (context, requester) in self.reads.drain() {
                if requester == self.config.id {
                    self.failed_reads.push(context);
                } else {
                    self.send(
                        requester,
                        MessageKind::ReadIndexResponse {
                            context,
                            index: None,
                        },
                    );
                }
            }
            self.failed_reads
                .extend(self.local_reads.drain(..).map(|r| r.context));
        }
        self.reads = ReadTracker::default();
        self.progress.clear();
        self.transfer = None;
    }

    fn set_leader(&mut self, leader: Option<NodeId>) {
        if self.leader != leader {
            // The old leader may never answer reads forwarded to it.
            self.failed_reads.append(&mut self.forwarded_reads);
            self.leader = leader;
        }
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        self.reset(term);
        self.role = Role::Follower;
        self.set_leader(leader);
    }

    fn start_election(&mut self, transfer: bool) {
        if self.term == Term::MAX {
            // The term space is exhausted (only a bogus message can carry a term this high):
            // campaigning would overflow it, so this member can only follow.
            return;
        }
        if self.config.pre_vote && !transfer {
            self.become_pre_candidate();
        } else {
            self.become_candidate(transfer);
        }
    }

    /// Thesis §9.6: ask whether an election could be won before disturbing anyone's term.
    fn become_pre_candidate(&mut self) {
        let term = self.term;
        self.reset(term);
        self.role = Role::PreCandidate;
        self.set_leader(None);
        self.request_votes(true, false);
    }

    /// Raft §5.2: increment the term, vote for self, ask the others.
    fn become_candidate(&mut self, transfer: bool) {
        let term = self.term + 1;
        self.reset(term);
        self.role = Role::Candidate;
        self.vote = Some(self.config.id);
        self.set_leader(None);
        self.request_votes(false, transfer);
    }

    fn request_votes(&mut self, pre_vote: bool, transfer: bool) {
        let id = self.config.id;
        self.votes.insert(id, true);
        let term = if pre_vote { self.term + 1 } else { self.term };
        let last_log_index = self.log.last_index();
        let last_log_term = self.log.last_term();
        let voters = self.log.membership().all_voters();
        for voter in voters.into_iter().filter(|&v| v != id) {
            self.send_with_term(
                voter,
                term,
                MessageKind::RequestVote {
                    pre_vote,
                    last_log_index,
                    last_log_term,
                    transfer,
                },
            );
        }
        self.tally_votes();
    }

    fn tally_votes(&mut self) {
        let result = joint_vote_result(self.log.membership(), |id| self.votes.get(&id).copied());
        match (result, self.role) {
            (VoteResult::Won, Role::PreCandidate) => self.become_candidate(false),
            (VoteResult::Won, Role::Candidate) => self.become_leader(),
            (VoteResult::Lost, _) => {
                let term = self.term;
                self.become_follower(term, None);
            }
            _ => {}
        }
    }

    fn become_leader(&mut self) {
        assert_eq!(
            self.role,
            Role::Candidate,
            "only a candidate becomes leader"
        );
        let term = self.term;
        self.reset(term);
        self.role = Role::Leader;
        self.set_leader(Some(self.config.id));
        self.sync_progress();
        // Raft §8: a new leader appends a no-op so that it can commit, and thereby learn, the
        // entries of earlier terms (which it may not commit by counting replicas, §5.4.2).
        // The Figure 8 mutant leaves it out: the no-op usually travels with the older entries
        // and would mask the counting bug.
        if !self.mutant(crate::Mutant::Figure8) {
            self.append_entry(Payload::Noop);
        }
    }

    /// Leader: keeps one progress record per member of the configuration in effect.
    fn sync_progress(&mut self) {
        let members = self.log.membership().members();
        let id = self.config.id;
        self.progress.retain(|member, _| members.contains(member));
        let next = self.log.last_index() + 1;
        for member in members.into_iter().filter(|&m| m != id) {
            self.progress.entry(member).or_insert_with(|| {
                Progress::new(
                    next,
                    self.config.max_inflight_messages,
                    self.config.max_inflight_bytes,
                )
            });
        }
        if let Some(transfer) = self.transfer
            && !self.log.membership().voters.contains(&transfer.to)
        {
            self.transfer = None;
        }
    }

    /// Called whenever the log's configuration may have changed.
    fn on_membership_changed(&mut self) {
        match self.role {
            Role::Leader => self.sync_progress(),
            Role::Candidate | Role::PreCandidate if !self.can_campaign() => {
                let term = self.term;
                self.become_follower(term, None);
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------------------------------
    // Ticks.

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.can_campaign() && self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            self.start_election(false);
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum {
                // Thesis §6.2: a leader that cannot reach a quorum steps down, so that clients
                // can find the leader of the majority side.
                if !self.quorum_recently_active() {
                    let term = self.term;
                    self.become_follower(term, None);
                    return;
                }
                for pr in self.progress.values_mut() {
                    pr.recent_active = false;
                }
            }
        }
        if let Some(transfer) = &mut self.transfer {
            transfer.elapsed += 1;
            if transfer.elapsed >= self.config.election_ticks {
                self.transfer = None;
            }
        }
        let snapshot_timeout = 2 * self.config.election_ticks;
        for pr in self.progress.values_mut() {
            if let ProgressState::Snapshot { .. } = pr.state {
                pr.snapshot_elapsed += 1;
                if pr.snapshot_elapsed >= snapshot_timeout {
                    // The snapshot (or its answer) was probably lost: probe again.
                    pr.become_probe();
                }
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    fn quorum_recently_active(&self) -> bool {
        let id = self.config.id;
        let result = joint_vote_result(self.log.membership(), |member| {
            Some(member == id || self.progress.get(&member).is_some_and(|p| p.recent_active))
        });
        result == VoteResult::Won
    }

    // ---------------------------------------------------------------------------------------
    // Step.

    fn step_inner(&mut self, from: NodeId, m: Message) {
        use std::cmp::Ordering;
        match m.term.cmp(&self.term) {
            Ordering::Greater => match &m.kind {
                MessageKind::RequestVote {
                    pre_vote, transfer, ..
                } => {
                    // Thesis §4.2.3: while a member hears from a leader it ignores vote requests,
                    // so removed or partitioned members cannot disrupt the cluster. A transfer
                    // is the leader's own wish and is not ignored.
                    // With lease reads, a member that just restarted may have acknowledged a
                    // leader's lease before it crashed, so it also waits out one election timeout
                    // after starting.
                    let heard_from_leader =
                        self.leader.is_some() && self.election_elapsed < self.config.election_ticks;
                    let maybe_in_old_lease =
                        self.config.lease_read && self.now < u64::from(self.config.election_ticks);
                    let in_lease =
                        self.config.check_quorum && (heard_from_leader || maybe_in_old_lease);
                    if in_lease && !transfer {
                        return;
                    }
                    if !pre_vote {
                        self.become_follower(m.term, None);
                    }
                }
                MessageKind::RequestVoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {
                    // A granted pre-vote carries the term we would campaign in; adopting it
                    // would defeat the purpose of pre-vote.
                }
                MessageKind::AppendEntries { .. }
                | MessageKind::Heartbeat { .. }
                | MessageKind::InstallSnapshot { .. } => {
                    self.become_follower(m.term, Some(from));
                }
                _ => self.become_follower(m.term, None),
            },
            Ordering::Less => {
                match m.kind {
                    MessageKind::AppendEntries { .. }
                    | MessageKind::Heartbeat { .. }
                    | MessageKind::InstallSnapshot { .. } => {
                        // Raft §5.1: reject a stale request. Any response carries our term, from
                        // which the stale leader learns to step down.
                        self.send(from, MessageKind::HeartbeatResponse { round: 0 });
                    }
                    MessageKind::RequestVote { pre_vote, .. } => {
                        self.send(
                            from,
                            MessageKind::RequestVoteResponse {
                                pre_vote,
                                granted: false,
                            },
                        );
                    }
                    _ => {}
                }
                return;
            }
            Ordering::Equal => {}
        }

        match m.kind {
            MessageKind::RequestVote {
                pre_vote,
                last_log_index,
                last_log_term,
                ..
            } => self.handle_request_vote(from, m.term, pre_vote, last_log_index, last_log_term),
            MessageKind::RequestVoteResponse { pre_vote, granted } => {
                self.handle_vote_response(from, pre_vote, granted)
            }
            MessageKind::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => self.handle_append_entries(
                from,
                m.term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            ),
            MessageKind::AppendEntriesResponse(result) => self.handle_append_response(from, result),
            MessageKind::Heartbeat { commit, round } => self.handle_heartbeat(from, commit, round),
            MessageKind::HeartbeatResponse { round } => self.handle_heartbeat_response(from, round),
            MessageKind::InstallSnapshot { snapshot } => {
                self.handle_install_snapshot(from, snapshot)
            }
            MessageKind::TimeoutNow => self.handle_timeout_now(from),
            MessageKind::ReadIndex { context } => self.handle_read_index(from, context),
            MessageKind::ReadIndexResponse { context, index } => {
                self.handle_read_index_response(context, index)
            }
        }
    }

    /// Raft §5.2, §5.4.1 (and thesis §9.6 for pre-votes).
    fn handle_request_vote(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        last_log_index: Index,
        last_log_term: Term,
    ) {
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        let granted = can_vote
            && (self.log.is_up_to_date(last_log_index, last_log_term)
                || self.mutant(crate::Mutant::NoLogCheck));
        if granted && !pre_vote {
            // One vote per term, persisted before the answer leaves (the answer is gated).
            self.vote = Some(from);
            self.election_elapsed = 0;
        }
        // A granted pre-vote is stamped with the requested term, so the pre-candidate can tell
        // it apart from a stale answer; refusals carry our term so it can catch up.
        let reply_term = if granted && pre_vote { term } else { self.term };
        self.send_with_term(
            from,
            reply_term,
            MessageKind::RequestVoteResponse { pre_vote, granted },
        );
    }

    fn handle_vote_response(&mut self, from: NodeId, pre_vote: bool, granted: bool) {
        let expected = match self.role {
            Role::PreCandidate => pre_vote,
            Role::Candidate => !pre_vote,
            _ => false,
        };
        if !expected || !self.log.membership().is_voter(from) {
            return;
        }
        self.votes.entry(from).or_insert(granted);
        self.tally_votes();
    }

    /// Hears from the leader of the current term: become (or stay) its follower.
    fn follow(&mut self, leader: NodeId) {
        if self.role != Role::Follower {
            let term = self.term;
            self.become_follower(term, Some(leader));
        }
        self.set_leader(Some(leader));
        self.election_elapsed = 0;
    }

    /// Raft §5.3 (Figure 2, AppendEntries receiver implementation).
    fn handle_append_entries(
        &mut self,
        from: NodeId,
        term: Term,
        prev_log_index: Index,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: Index,
    ) {
        if self.role == Role::Leader {
            // Two leaders in one term would break election safety: the sender is broken.
            return;
        }
        if !well_formed(prev_log_index, prev_log_term, term, &entries) {
            return;
        }
        self.follow(from);
        let committed = self.log.committed();
        // Entries up to the commit index match any current leader's (Leader Completeness), so
        // a request that starts below it is matched there even if those entries were compacted.
        let matched = prev_log_index < committed || self.log.matches(prev_log_index, prev_log_term);
        if !matched {
            let (conflict_term, conflict_index) = if prev_log_index > self.log.last_index() {
                (None, self.log.last_index() + 1)
            } else {
                let first = self.log.first_index_of_term_at(prev_log_index);
                (self.log.term(prev_log_index), first.max(committed + 1))
            };
            self.send(
                from,
                MessageKind::AppendEntriesResponse(AppendResult::Reject {
                    rejected_index: prev_log_index,
                    conflict_term,
                    conflict_index,
                }),
            );
            return;
        }
        let last_new = prev_log_index + entries.len() as Index;
        let membership_before = self.log.membership_index();
        if self.log.append_after_match(&entries).is_err() {
            // The leader would overwrite a committed entry: ignore it rather than lose data.
            return;
        }
        if let Some(from) = self.log.pending_truncation() {
            // Writes handed out before the truncation hold replaced entries from `from` on: once
            // durable, they make durable only what precedes it. (Their last entry would match
            // the new log only if peers broke Log Matching, but durability must not rest on it.)
            let kept = from - 1;
            let kept_term = self.log.term(kept);
            for write in &mut self.pending_writes {
                if write.last_entry.is_some_and(|(index, _)| index >= from) {
                    write.last_entry = kept_term.map(|term| (kept, term));
                }
            }
        }
        if self.log.membership_index() != membership_before {
            self.on_membership_changed();
        }
        // Figure 2: commitIndex = min(leaderCommit, index of last new entry).
        self.log.commit_to(leader_commit.min(last_new));
        let match_index = last_new.max(committed);
        self.send(
            from,
            MessageKind::AppendEntriesResponse(AppendResult::Success { match_index }),
        );
    }

    fn handle_heartbeat(&mut self, from: NodeId, commit: Index, round: u64) {
        if self.role == Role::Leader {
            return;
        }
        self.follow(from);
        // The leader sends min(our match, its commit), which our log holds.
        self.log.commit_to(commit.min(self.log.last_index()));
        self.send(from, MessageKind::HeartbeatResponse { round });
    }

    /// Raft §7 (InstallSnapshot receiver). Only metadata arrives here; the application has the
    /// bytes.
    fn handle_install_snapshot(&mut self, from: NodeId, snapshot: SnapshotMeta) {
        // Malformed snapshots are ignored: a snapshot cannot end with an entry from a later term
        // than its sender's (as a leader this member would then append below its last term),
        // and no log reaches 2^63 entries (the log would overflow its index space as it grows).
        if self.role == Role::Leader
            || snapshot.membership.validate().is_err()
            || snapshot.term > self.term
            || snapshot.index > Index::MAX / 2
        {
            return;
        }
        self.follow(from);
        let match_index = if snapshot.index <= self.log.committed() {
            // Already have everything it covers.
            self.log.committed()
        } else if self.log.matches(snapshot.index, snapshot.term) {
            // Figure 13 step 6: the log already holds the snapshot's last entry; keep the
            // entries after it.
            self.log.commit_to(snapshot.index);
            snapshot.index
        } else {
            let index = snapshot.index;
            self.log.install_snapshot(snapshot);
            // The snapshot replaces the whole stored log: writes handed out before it make no
            // entry durable (their entries are superseded, or covered by the snapshot).
            for write in &mut self.pending_writes {
                write.last_entry = None;
            }
            self.snapshot_restore_pending = true;
            self.on_membership_changed();
            index
        };
        self.send(
            from,
            MessageKind::AppendEntriesResponse(AppendResult::Success { match_index }),
        );
    }

    fn handle_timeout_now(&mut self, from: NodeId) {
        if self.role == Role::Leader || self.leader != Some(from) || !self.can_campaign() {
            return;
        }
        // Thesis §3.10: campaign at once, skipping pre-vote, and tell voters to disregard
        // their current leader.
        self.start_election(true);
    }

    fn handle_append_response(&mut self, from: NodeId, result: AppendResult) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        match result {
            AppendResult::Success { match_index } => {
                if match_index > last_index {
                    return;
                }
                let was_paused = pr.is_paused();
                let updated = pr.maybe_update(match_index);
                // An empty probe answered at the current match also ends probing.
                let probe_answered = pr.state == ProgressState::Probe && match_index + 1 == pr.next;
                if !updated && !probe_answered {
                    return;
                }
                match pr.state {
                    ProgressState::Probe => pr.become_replicate(),
                    ProgressState::Snapshot { index } if pr.matched >= index => {
                        pr.become_replicate()
                    }
                    ProgressState::Snapshot { .. } => {}
                    ProgressState::Replicate => pr.inflights.free_to(match_index),
                }
                let caught_up = pr.matched == last_index;
                let committed = self.maybe_commit();
                if committed {
                    if self.role != Role::Leader {
                        // Committing C_new removed this leader.
                        return;
                    }
                    self.broadcast_pending = true;
                }
                if caught_up && self.transfer.is_some_and(|t| t.to == from) {
                    self.send(from, MessageKind::TimeoutNow);
                }
                let mut sent = false;
                while self.maybe_send_append(from, false) {
                    sent = true;
                }
                if !sent && !committed && was_paused {
                    // The follower could not be told the commit index while it was paused, and
                    // no broadcast will tell it now: send it an empty AppendEntries.
                    self.maybe_send_append(from, true);
                }
            }
            AppendResult::Reject {
                rejected_index,
                conflict_term,
                conflict_index,
            } => {
                // Raft §5.3 fast backtracking: skip the follower's whole conflicting term.
                let hint_next = conflict_term
                    .and_then(|t| self.log.last_index_of_term(t))
                    .map_or(conflict_index, |i| i + 1)
                    .max(1);
                let pr = self.progress.get_mut(&from).expect("checked above");
                if pr.maybe_decrease_to(rejected_index, hint_next) {
                    self.maybe_send_append(from, true);
                }
            }
        }
    }

    fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        let round_sent = self.reads.round_sent;
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if round <= round_sent {
            pr.round_acked = pr.round_acked.max(round);
        }
        pr.probe_sent = false;
        if pr.state == ProgressState::Replicate && pr.inflights.is_full() {
            pr.inflights.free_first();
        }
        if pr.matched < last_index {
            // Send even if `next` is past the last entry: in replicate state `next` advances
            // optimistically, so if the appends in flight were lost there is nothing new to
            // send, and only an (empty) append whose rejection resets `next` lets the follower
            // catch up without waiting for a new proposal.
            self.maybe_send_append(from, true);
        }
        self.advance_read_rounds();
    }

    fn handle_read_index(&mut self, from: NodeId, context: ReadContext) {
        if self.role == Role::Leader {
            self.leader_read(context, from);
        } else {
            self.send(
                from,
                MessageKind::ReadIndexResponse {
                    context,
                    index: None,
                },
            );
        }
    }

    fn handle_read_index_response(&mut self, context: ReadContext, index: Option<Index>) {
        let Some(pos) = self.forwarded_reads.iter().position(|&c| c == context) else {
            return;
        };
        self.forwarded_reads.swap_remove(pos);
        match index {
            Some(index) => self.local_reads.push(ReadState { context, index }),
            None => self.failed_reads.push(context),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Leader internals.

    fn check_can_propose(&self) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.transfer.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        Ok(())
    }

    fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.committed()) == Some(self.term)
    }

    fn append_entry(&mut self, payload: Payload) -> Proposal {
        debug_assert_eq!(self.role, Role::Leader);
        let is_membership = matches!(payload, Payload::Membership(_));
        let index = self.log.last_index() + 1;
        self.log.append(Entry {
            term: self.term,
            index,
            payload,
        });
        if is_membership {
            self.on_membership_changed();
        }
        self.broadcast_pending = true;
        Proposal {
            index,
            term: self.term,
        }
    }

    /// Raft §5.3, §5.4.2: commit the largest index a quorum holds durably, but only if it is
    /// from the current term. Returns whether the commit index moved.
    fn maybe_commit(&mut self) -> bool {
        let id = self.config.id;
        let stable = self.log.stable();
        let quorum_index = joint_committed_index(self.log.membership(), |member| {
            if member == id {
                // The leader counts itself only once its own copy is durable.
                stable
            } else {
                self.progress.get(&member).map_or(0, |p| p.matched)
            }
        })
        .min(self.log.last_index());
        let own_term =
            self.log.term(quorum_index) == Some(self.term) || self.mutant(crate::Mutant::Figure8);
        if quorum_index <= self.log.committed() || !own_term {
            return false;
        }
        self.log.commit_to(quorum_index);
        self.on_commit_advanced();
        true
    }

    fn on_commit_advanced(&mut self) {
        // Thesis §6.4: reads wait for the leader's first commit in its term.
        if self.committed_in_current_term() && !self.reads.awaiting_commit.is_empty() {
            for (context, requester) in std::mem::take(&mut self.reads.awaiting_commit) {
                self.leader_read(context, requester);
            }
        }
        let membership = self.log.membership();
        if self.log.committed() >= self.log.membership_index() {
            if membership.is_joint() {
                // Raft §6: once C_old,new is committed, the leader moves on to C_new.
                let next = membership.leave_joint();
                self.append_entry(Payload::Membership(next));
            } else if !membership.voters.contains(&self.config.id) {
                // Thesis §4.2.2: a leader that is not part of C_new steps down once C_new is
                // committed.
                let term = self.term;
                self.become_follower(term, None);
            }
        }
    }

    fn leader_read(&mut self, context: ReadContext, requester: NodeId) {
        if !self.committed_in_current_term() {
            self.reads.awaiting_commit.push((context, requester));
            return;
        }
        let index = self.log.committed();
        let lease_valid =
            self.config.lease_read && self.transfer.is_none() && self.now < self.reads.lease_until;
        let sole_voter = {
            let m = self.log.membership();
            !m.is_joint() && m.voters.len() == 1 && m.voters.contains(&self.config.id)
        };
        if lease_valid || sole_voter {
            self.deliver_read(context, index, requester);
        } else {
            self.reads.push(context, index, requester);
        }
    }

    fn deliver_read(&mut self, context: ReadContext, index: Index, requester: NodeId) {
        if requester == self.config.id {
            self.local_reads.push(ReadState { context, index });
        } else {
            self.send(
                requester,
                MessageKind::ReadIndexResponse {
                    context,
                    index: Some(index),
                },
            );
        }
    }

    /// Whether a read is waiting for a round that should be sent now: at most one round is in
    /// flight for reads, so that a burst of reads shares one confirmation.
    fn read_round_due(&self) -> bool {
        self.reads.wants_round() && !self.reads.round_in_flight()
    }

    fn advance_read_rounds(&mut self) {
        let id = self.config.id;
        let round_sent = self.reads.round_sent;
        let confirmed = joint_committed_index(self.log.membership(), |member| {
            if member == id {
                round_sent
            } else {
                self.progress.get(&member).map_or(0, |p| p.round_acked)
            }
        })
        .min(round_sent);
        let lease_ticks = self
            .config
            .lease_read
            .then(|| u64::from(self.config.election_ticks - self.config.lease_drift_margin_ticks));
        for read in self.reads.confirm(confirmed, lease_ticks) {
            self.deliver_read(read.context, read.index, read.requester);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Invariants.

    /// Checks the engine's invariants (when `Config::check_invariants` is set) and panics with
    /// context on a violation. Called at the end of every input.
    fn check_invariants(&mut self) {
        if !self.config.check_invariants {
            return;
        }
        let id = self.config.id;
        self.log.check_invariants();
        assert!(
            self.term >= self.shadow.term,
            "node {id}: term went down from {} to {}",
            self.shadow.term,
            self.term
        );
        if self.term == self.shadow.term
            && let Some(previous) = self.shadow.vote
        {
            assert_eq!(
                self.vote,
                Some(previous),
                "node {id}: vote changed within term {}",
                self.term
            );
        }
        self.shadow = InvariantShadow {
            term: self.term,
            vote: self.vote,
        };
        if self.role == Role::Leader {
            assert_eq!(
                self.leader,
                Some(id),
                "node {id}: leader does not know itself"
            );
            assert_eq!(
                self.vote,
                Some(id),
                "node {id}: leader did not vote for itself"
            );
            assert!(
                self.log.last_term() == self.term || self.mutant(crate::Mutant::Figure8),
                "node {id}: leader's last entry is not from its term"
            );
            let last = self.log.last_index();
            for (member, pr) in &self.progress {
                assert!(
                    pr.matched < pr.next,
                    "node {id}: progress of {member}: match {} >= next {}",
                    pr.matched,
                    pr.next
                );
                assert!(
                    pr.next <= last + 1,
                    "node {id}: progress of {member}: next {} beyond last {last} + 1",
                    pr.next
                );
            }
        } else {
            assert!(
                self.progress.is_empty(),
                "node {id}: non-leader tracks progress"
            );
        }
        for (write, next) in self
            .pending_writes
            .iter()
            .zip(self.pending_writes.iter().skip(1))
        {
            assert_eq!(
                write.seq + 1,
                next.seq,
                "node {id}: outstanding writes out of order"
            );
        }
        assert!(
            self.pending_writes
                .back()
                .is_none_or(|w| w.seq < self.next_write_seq),
            "node {id}: outstanding write from the future"
        );
    }
}

/// Checks the shape of an AppendEntries: entries contiguous after `prev_log_index`, terms
/// non-decreasing from `prev_log_term` and no later than the leader's term.
fn well_formed(prev_log_index: Index, prev_log_term: Term, term: Term, entries: &[Entry]) -> bool {
    if prev_log_term > term {
        return false;
    }
    let mut expected_index = prev_log_index;
    let mut last_term = prev_log_term;
    for entry in entries {
        let Some(next) = expected_index.checked_add(1) else {
            return false;
        };
        if entry.index != next || entry.term < last_term || entry.term > term {
            return false;
        }
        if let Payload::Membership(m) = &entry.payload
            && m.validate().is_err()
        {
            return false;
        }
        expected_index = next;
        last_term = entry.term;
    }
    true
}

impl Engine for RaftNode {
    type Message = Message;
    type HardState = HardState;

    fn id(&self) -> NodeId {
        RaftNode::id(self)
    }

    fn tick(&mut self) {
        RaftNode::tick(self)
    }

    fn step(&mut self, from: NodeId, message: Message) {
        RaftNode::step(self, from, message)
    }

    fn peer_unreachable(&mut self, peer: NodeId) -> bool {
        RaftNode::peer_unreachable(self, peer)
    }

    fn propose(&mut self, command: Bytes) -> Result<Proposal, ProposeError> {
        RaftNode::propose(self, command)
    }

    fn read_index(&mut self, context: ReadContext) -> Result<(), ReadError> {
        RaftNode::read_index(self, context)
    }

    fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        RaftNode::transfer_leadership(self, to)
    }

    fn propose_membership_change(&mut self, change: ConfChange) -> Result<Proposal, ProposeError> {
        RaftNode::propose_membership_change(self, change)
    }

    fn snapshot_meta(&self, index: Index) -> Result<SnapshotMeta, CompactError> {
        RaftNode::snapshot_meta(self, index)
    }

    fn compact(&mut self, index: Index) -> Result<(), CompactError> {
        RaftNode::compact(self, index)
    }

    fn has_ready(&self) -> bool {
        RaftNode::has_ready(self)
    }

    fn ready(&mut self) -> Ready<HardState, Message> {
        RaftNode::ready(self)
    }

    fn persisted(&mut self, write: Write<HardState>) -> Vec<Envelope<Message>> {
        RaftNode::persisted(self, write)
    }

    fn status(&self) -> Status {
        RaftNode::status(self)
    }

    fn log_entry(&self, index: Index) -> Option<&Entry> {
        self.log.entry(index)
    }
}

#[cfg(test)]
mod tests {
    //! The invariant checks catch a deliberately broken node.

    use rand_core::SeedableRng;
    use rand_xorshift::XorShiftRng;

    use super::*;

    fn leader_of_one() -> RaftNode {
        let state = RestoreState::bootstrap(Membership::with_voters([1]));
        let mut config = Config::new(1);
        config.check_invariants = true;
        let rng = Box::new(XorShiftRng::seed_from_u64(1));
        let mut node = RaftNode::restore(config, rng, state).unwrap();
        while node.role != Role::Leader {
            node.tick();
        }
        node
    }

    fn three_member_leader() -> RaftNode {
        let state = RestoreState::bootstrap(Membership::with_voters([1, 2, 3]));
        let mut config = Config::new(1);
        config.check_invariants = true;
        let rng = Box::new(XorShiftRng::seed_from_u64(1));
        let mut node = RaftNode::restore(config, rng, state).unwrap();
        node.become_candidate(false);
        let term = node.term;
        node.step(
            2,
            Message {
                term,
                kind: MessageKind::RequestVoteResponse {
                    pre_vote: false,
                    granted: true,
                },
            },
        );
        assert_eq!(node.role, Role::Leader);
        node
    }

    #[test]
    #[should_panic(expected = "term went down")]
    fn invariant_term_never_goes_down() {
        let mut node = leader_of_one();
        node.term -= 1;
        node.role = Role::Follower;
        node.tick();
    }

    #[test]
    #[should_panic(expected = "vote changed within term")]
    fn invariant_one_vote_per_term() {
        let mut node = three_member_leader();
        node.role = Role::Follower;
        node.progress.clear();
        node.vote = Some(3);
        node.tick();
    }

    #[test]
    #[should_panic(expected = "match")]
    fn invariant_match_below_next() {
        let mut node = three_member_leader();
        let pr = node.progress.get_mut(&2).unwrap();
        pr.matched = pr.next;
        node.tick();
    }
}
