//! The Multi-Paxos engine: one replicated log of independent Paxos instances with a stable
//! leader.
//!
//! What the classic papers leave open is specified here, following "Paxos Made Moderately
//! Complex" (van Renesse & Altinbuken, 2015) and "Paxos Made Live" (Chandra et al., 2007):
//!
//! - **Stable leader.** A proposer runs Phase 1 once, for every slot from its first unknown
//!   slot on (`Prepare { from }`), then only Phase 2 per entry: one round trip per commit.
//! - **Failure detector.** The leader heartbeats (an empty Accept); a member that hears nothing
//!   for a randomised timeout in `[e, 2e)` starts Phase 1 with a ballot above every ballot it
//!   has seen. A proposer that is refused (Nack) steps back and draws a fresh timeout, so
//!   competing proposers back off. A member that heard from a leader within the minimum timeout
//!   ignores other proposers' Prepares (leader stickiness), and a leader that cannot reach a
//!   quorum for a timeout steps down (check-quorum).
//! - **Recovery.** A new leader adopts, slot by slot, the value of the highest-ballot proposal
//!   reported by a Phase-1 quorum (P2c of "Paxos Made Simple"), fills the gaps with no-ops, and
//!   re-proposes all of them in its own ballot. Slots decided out of order are handed out for
//!   applying strictly in slot order.
//! - **Learning.** An Accept carries the leader's chosen prefix. A follower knows a slot is
//!   chosen when the leader says so *and* the follower holds the entry the leader proposed in
//!   that same ballot (one value per slot per ballot), so an older, unchosen value it accepted
//!   from a deposed leader is never mistaken for the chosen one.
//! - **Catch-up and truncation.** The leader resends slots a follower lacks (re-proposing chosen
//!   values in its own ballot, which is always safe: P2b only constrains proposals to carry the
//!   chosen value), or sends its snapshot. Promises report the acceptor's truncation point; a
//!   promise that cannot speak for a slot because it was truncated does not count towards the
//!   Phase-1 quorum, and the acceptor sends its snapshot along instead.
//! - **Reconfiguration as a stop-sign** (see below).
//! - **Linearizable reads** by a read round to a Phase-2-sized quorum.
//! - **Flexible quorums** (Howard et al. 2016) as an option ([`Config::phase2_quorum`]).
//!
//! # Reconfiguration: a stop-sign, not a window of α slots
//!
//! A configuration entry at slot `c` decides every slot after `c`; slot `c` itself and those
//! before it are decided by the old configuration. A leader proposes nothing after a
//! configuration entry until that entry is chosen (a stop-sign), then runs Phase 1 again, with
//! its ballot, in the new configuration, for the slots after `c`. A new leader's recovery stops
//! at the first configuration entry it adopts, for the same reason. Every slot is therefore
//! decided by exactly one configuration that every proposer agrees on, so any change, however
//! many members it replaces, is safe in one step: joint consensus is not needed, and
//! [`ConfChange::Joint`] moves straight to C_new.
//!
//! The alternative, a window of α slots (the configuration at slot `c` governing slot `c + α`),
//! keeps the pipeline full across a change but caps the pipeline at α slots at all times and
//! makes a new leader's Phase 1 span configurations it does not yet know. A reconfiguration is
//! rare; one stalled round trip per change is the cheaper price.
//!
//! # Reads
//!
//! A read gets the index `max(commit, end of recovery)`: a value chosen before the read arrived
//! either was chosen in a ballot below the leader's, and so was adopted in recovery, or in the
//! leader's own ballot. It is served once a Phase-2-sized quorum has answered a heartbeat sent
//! after the read arrived (that quorum meets every Phase-1 quorum, so no higher ballot had
//! completed Phase 1 by then), and the state machine has applied the index. There is no lease:
//! it would add a timing assumption for a saving of one round trip.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use bytes::Bytes;
use rand_core::Rng;
use synod_core::quorum;
use synod_core::{
    CompactError, ConfChange, Engine, Entry, Envelope, Index, Membership, NodeId, Payload,
    Proposal, ProposeError, ReadContext, ReadError, ReadState, Ready, Role, SnapshotMeta,
    SoftState, Status, Term, TransferError, Write,
};
use thiserror::Error;

use crate::ballot;
use crate::config::{Config, ConfigError};
use crate::log::{MAX_SLOTS_AHEAD, SlotLog};
use crate::message::Message;
use crate::mutant::Mutant;

/// The durable state of a member besides its slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The highest ballot this member's acceptor has promised.
    pub promised: Term,
    /// Every slot up to here is chosen.
    pub commit: Index,
}

impl synod_core::DurableState for HardState {
    /// The promised ballot and the chosen prefix, as little-endian `u64`s.
    fn encode(&self, out: &mut Vec<u8>) {
        for value in [self.promised, self.commit] {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let [promised, commit] = synod_core::engine::decode_u64s(bytes)?;
        Some(HardState { promised, commit })
    }
}

/// What a member starts from: its durable state, or a fresh cluster's bootstrap.
#[derive(Clone, Debug, Default)]
pub struct RestoreState {
    /// The promised ballot and the chosen prefix.
    pub hard_state: HardState,
    /// The newest snapshot (index 0 with the initial configuration for a new cluster).
    pub snapshot: SnapshotMeta,
    /// The accepted entries after the snapshot, at any slots.
    pub entries: Vec<Entry>,
    /// How much the application's state machine has already applied.
    pub applied: Index,
}

impl RestoreState {
    /// The state of a member of a brand-new cluster with these members.
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

/// Why a member could not be restored. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The snapshot's cluster configuration is invalid.
    #[error("invalid membership in the snapshot: {0}")]
    Membership(#[from] synod_core::MembershipError),
    /// A stored slot or snapshot index is beyond [`MAX_INDEX`].
    #[error("index {0} is out of range")]
    IndexOutOfRange(Index),
    /// A stored entry claims a ballot above the promised one.
    #[error("entry {index} was accepted in ballot {term}, above the promised ballot {promised}")]
    AcceptedAbovePromise {
        /// The entry.
        index: Index,
        /// Its ballot.
        term: Term,
        /// The promised ballot.
        promised: Term,
    },
}

/// A write handed out and not yet handed back.
#[derive(Debug)]
struct PendingWrite {
    seq: u64,
    /// The lowest slot the write stores (nothing at or above it may be applied before it is
    /// durable).
    min_slot: Option<Index>,
    snapshot: bool,
    promised: Term,
    /// Messages that may leave only once this write is durable.
    gated: Vec<Envelope<Message>>,
}

/// A Phase 1 in progress.
#[derive(Debug)]
struct Phase1 {
    ballot: Term,
    from: Index,
    /// Promises that speak for every slot from `from` on: each acceptor's chosen prefix and its
    /// accepted entries.
    promises: BTreeMap<NodeId, (Index, Vec<Entry>)>,
}

/// The leader's view of one other member.
#[derive(Clone, Copy, Debug)]
struct Progress {
    /// Every slot up to here is accepted by the member in the leader's ballot, or chosen.
    /// Invariant: `matched < next`.
    matched: Index,
    /// The next slot to send.
    next: Index,
    /// `matched` at the previous heartbeat: no progress since then means a lost message.
    matched_at_heartbeat: Index,
    /// Heard from since the last check-quorum.
    active: bool,
    /// The highest read round the member has answered.
    read_round: u64,
}

/// A read waiting for its leadership confirmation.
#[derive(Clone, Copy, Debug)]
struct PendingRead {
    context: ReadContext,
    index: Index,
    round: u64,
    /// The follower that forwarded it, or `None` for a local read.
    origin: Option<NodeId>,
}

/// What the invariant checker remembers between calls.
#[derive(Debug, Default)]
struct Shadow {
    promised: Term,
    commit: Index,
}

/// A Multi-Paxos member. Pure: it does no I/O and draws randomness only from the injected RNG.
/// See the [module documentation](self).
pub struct PaxosNode {
    config: Config,
    rng: Box<dyn Rng + Send>,

    /// The highest ballot promised; durable.
    promised: Term,
    /// The promised ballot the next write stores (always `promised`, but for a mutant).
    disk_promised: Term,
    /// The highest promised ballot known to be durable.
    promised_durable: Term,
    /// The promised ballot the last issued write stored.
    issued_promised: Term,
    /// The highest ballot seen in any message.
    max_seen: Term,
    log: SlotLog,

    role: Role,
    leader: Option<NodeId>,
    /// The ballot this member leads or campaigns with; 0 as a follower.
    ballot: Term,
    phase1: Option<Phase1>,
    progress: BTreeMap<NodeId, Progress>,
    /// Leader: the last slot given a value.
    last_assigned: Index,
    /// Leader: the last slot re-proposed in recovery.
    recovery_end: Index,
    /// Leader: a configuration entry at this slot is not chosen yet; nothing after it may be
    /// proposed.
    stop_at: Option<Index>,
    /// Leader: recovery stopped at a configuration entry; Phase 1 is complete only for the
    /// slots up to it, so the member does not yet call itself leader.
    stopped_in_recovery: bool,
    /// Leader: recovery was cut short at this slot because promises reported more slots than
    /// a leader re-proposes at once; Phase 1 resumes after it once it is chosen.
    resume_at: Option<Index>,
    /// Follower: the latest (ballot, chosen prefix) a leader announced.
    leader_hint: (Term, Index),

    election_elapsed: u32,
    election_timeout: u32,
    heartbeat_elapsed: u32,
    quorum_elapsed: u32,

    read_round: u64,
    pending_reads: Vec<PendingRead>,
    /// Reads whose index is known, waiting until it has been handed out for applying.
    ready_reads: Vec<ReadState>,
    forwarded_reads: Vec<ReadContext>,
    failed_reads: Vec<ReadContext>,

    broadcast_pending: bool,
    msgs: Vec<Envelope<Message>>,
    /// Replies that report durable state: they leave with the next write.
    gated: Vec<Envelope<Message>>,
    /// Entries to store with the next write, in the order they were accepted.
    unwritten: Vec<Entry>,
    /// The lowest slot in `unwritten`: applying stops below it (kept, not searched, because
    /// every ready batch asks).
    unwritten_min: Option<Index>,
    unwritten_snapshot: Option<SnapshotMeta>,
    hard_state_dirty: bool,
    pending_writes: VecDeque<PendingWrite>,
    next_write_seq: u64,
    last_soft_state: SoftState,
    /// Mutant `apply-out-of-order`: slots handed out ahead of the chosen prefix.
    handed_early: BTreeSet<Index>,

    shadow: Shadow,
}

impl fmt::Debug for PaxosNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaxosNode")
            .field("id", &self.config.id)
            .field("role", &self.role)
            .field("promised", &self.promised)
            .field("ballot", &self.ballot)
            .field("leader", &self.leader)
            .field("commit", &self.log.commit())
            .field("last_assigned", &self.last_assigned)
            .finish_non_exhaustive()
    }
}

impl PaxosNode {
    /// Builds a member from its durable state. `rng` draws timeouts; seed it for deterministic
    /// runs.
    pub fn restore(
        config: Config,
        rng: Box<dyn Rng + Send>,
        state: RestoreState,
    ) -> Result<Self, RestoreError> {
        config.validate()?;
        state.snapshot.membership.validate()?;
        let promised = state.hard_state.promised;
        if state.snapshot.index > MAX_INDEX {
            return Err(RestoreError::IndexOutOfRange(state.snapshot.index));
        }
        if let Some(e) = state.entries.iter().find(|e| e.index > MAX_INDEX) {
            return Err(RestoreError::IndexOutOfRange(e.index));
        }
        if let Some(e) = state.entries.iter().find(|e| e.term > promised) {
            return Err(RestoreError::AcceptedAbovePromise {
                index: e.index,
                term: e.term,
                promised,
            });
        }
        let log = SlotLog::restore(
            state.snapshot,
            state.entries,
            state.hard_state.commit,
            state.applied,
        );
        let mut node = PaxosNode {
            rng,
            promised,
            disk_promised: promised,
            promised_durable: promised,
            issued_promised: promised,
            max_seen: promised,
            log,
            role: Role::Follower,
            leader: None,
            ballot: 0,
            phase1: None,
            progress: BTreeMap::new(),
            last_assigned: 0,
            recovery_end: 0,
            stop_at: None,
            stopped_in_recovery: false,
            resume_at: None,
            leader_hint: (0, 0),
            election_elapsed: 0,
            election_timeout: config.election_ticks,
            heartbeat_elapsed: 0,
            quorum_elapsed: 0,
            read_round: 0,
            pending_reads: Vec::new(),
            ready_reads: Vec::new(),
            forwarded_reads: Vec::new(),
            failed_reads: Vec::new(),
            broadcast_pending: false,
            msgs: Vec::new(),
            gated: Vec::new(),
            unwritten: Vec::new(),
            unwritten_min: None,
            unwritten_snapshot: None,
            hard_state_dirty: false,
            pending_writes: VecDeque::new(),
            next_write_seq: 1,
            last_soft_state: SoftState {
                role: Role::Follower,
                term: promised,
                leader: None,
            },
            handed_early: BTreeSet::new(),
            shadow: Shadow::default(),
            config,
        };
        node.reset_election_timer();
        node.last_soft_state = node.soft_state();
        node.check_invariants();
        Ok(node)
    }

    /// This member's role.
    pub fn role(&self) -> Role {
        self.soft_state().role
    }

    /// The highest ballot this member has promised.
    pub fn promised(&self) -> Term {
        self.promised
    }

    /// The configuration in effect.
    pub fn membership(&self) -> &Membership {
        self.log.membership()
    }

    fn id(&self) -> NodeId {
        self.config.id
    }

    fn soft_state(&self) -> SoftState {
        let role = match self.role {
            Role::Follower if !self.log.membership().is_voter(self.id()) => Role::Learner,
            // Phase 1 is not complete for every slot after the chosen prefix yet: a
            // configuration change cut it short, and it goes on in the new configuration.
            Role::Leader if self.phase1.is_some() || self.stopped_in_recovery => Role::Candidate,
            role => role,
        };
        SoftState {
            role,
            term: if self.ballot != 0 {
                self.ballot
            } else {
                self.promised
            },
            leader: if role == Role::Candidate {
                None
            } else {
                self.leader
            },
        }
    }

    fn mutant(&self, mutant: Mutant) -> bool {
        self.config.mutant(mutant)
    }

    fn reset_election_timer(&mut self) {
        let e = self.config.election_ticks;
        self.election_elapsed = 0;
        self.election_timeout = e + (self.rng.next_u64() % e as u64) as u32;
    }

    fn quorums(&self) -> (usize, usize) {
        self.config.quorums(self.log.membership().voters.len())
    }

    fn send(&mut self, to: NodeId, message: Message) {
        self.msgs.push(Envelope {
            from: self.id(),
            to,
            message,
        });
    }

    /// Sends a reply that reports durable state once everything before it is durable.
    fn send_after_write(&mut self, to: NodeId, message: Message) {
        let envelope = Envelope {
            from: self.id(),
            to,
            message,
        };
        if self.needs_write() || !self.pending_writes.is_empty() {
            self.gated.push(envelope);
        } else {
            self.msgs.push(envelope);
        }
    }

    fn needs_write(&self) -> bool {
        self.hard_state_dirty || !self.unwritten.is_empty() || self.unwritten_snapshot.is_some()
    }

    fn store(&mut self, entry: Entry) {
        if self.log.store(entry.clone()) {
            self.unwritten_min = Some(
                self.unwritten_min
                    .map_or(entry.index, |m| m.min(entry.index)),
            );
            self.unwritten.push(entry);
        }
    }

    fn promise(&mut self, ballot: Term, persist: bool) {
        debug_assert!(ballot >= self.promised);
        if ballot > self.promised {
            self.promised = ballot;
            if persist {
                self.disk_promised = ballot;
            }
            self.hard_state_dirty = true;
        }
    }

    /// Whether the snapshot this member holds is in storage (not still being installed).
    fn snapshot_durable(&self) -> bool {
        self.unwritten_snapshot.is_none() && !self.pending_writes.iter().any(|w| w.snapshot)
    }

    /// The highest slot below which every slot is durable here; applying stops there. A
    /// snapshot being installed stops applying altogether until the state machine is restored.
    fn stable_bound(&self) -> Index {
        if !self.snapshot_durable() {
            return self.log.applied();
        }
        let lowest = self
            .pending_writes
            .iter()
            .filter_map(|w| w.min_slot)
            .chain(self.unwritten_min)
            .min();
        lowest.map_or(Index::MAX, |slot| slot - 1)
    }

    // ------------------------------------------------------------------------------------
    // Roles.

    fn become_follower(&mut self, leader: Option<NodeId>) {
        if self.role == Role::Leader {
            for read in std::mem::take(&mut self.pending_reads) {
                match read.origin {
                    None => self.failed_reads.push(read.context),
                    Some(to) => self.send(
                        to,
                        Message::ReadIndexResponse {
                            context: read.context,
                            index: None,
                        },
                    ),
                }
            }
        }
        if leader != self.leader {
            let forwarded = std::mem::take(&mut self.forwarded_reads);
            self.failed_reads.extend(forwarded);
        }
        self.role = Role::Follower;
        self.ballot = 0;
        self.phase1 = None;
        self.progress.clear();
        self.stop_at = None;
        self.stopped_in_recovery = false;
        self.resume_at = None;
        self.leader = leader;
        self.broadcast_pending = false;
        self.reset_election_timer();
    }

    /// Starts Phase 1 with a ballot above every ballot seen. `force` asks acceptors to answer
    /// even while they hear from a leader (a leadership transfer).
    fn campaign(&mut self, force: bool) {
        if !self.log.membership().is_voter(self.id()) {
            // Removed (or never a voter): a candidate that learned so stops campaigning.
            if self.role != Role::Follower {
                self.become_follower(None);
            }
            return;
        }
        let seen = self.promised.max(self.max_seen);
        let Some(ballot) = ballot::next_above(seen, self.id()) else {
            // Ballot rounds are exhausted (2^48 of them); this member stops proposing.
            return;
        };
        self.become_follower(None);
        self.role = Role::Candidate;
        self.ballot = ballot;
        self.promise(ballot, true);
        let from = self.log.commit() + 1;
        self.phase1 = Some(Phase1 {
            ballot,
            from,
            promises: BTreeMap::new(),
        });
        self.send_prepares(force);
        self.maybe_finish_phase1();
    }

    fn send_prepares(&mut self, force: bool) {
        let Some(p1) = &self.phase1 else {
            return;
        };
        let (ballot, from) = (p1.ballot, p1.from);
        let voters: Vec<NodeId> = self.log.membership().voters.iter().copied().collect();
        let id = self.id();
        for to in voters.into_iter().filter(|&v| v != id) {
            self.send(
                to,
                Message::Prepare {
                    ballot,
                    from,
                    force,
                },
            );
        }
    }

    fn maybe_finish_phase1(&mut self) {
        let Some(p1) = &self.phase1 else {
            return;
        };
        let voters = &self.log.membership().voters;
        let (phase1_quorum, _) = self.quorums();
        let own = voters.contains(&self.id()) && self.promised_durable >= p1.ballot;
        let granted = p1.promises.keys().filter(|v| voters.contains(v)).count() + own as usize;
        if granted >= phase1_quorum && own {
            self.finish_phase1();
        }
    }

    /// Phase 1 is won: adopt the highest-ballot value reported at every slot ("Paxos Made
    /// Simple" P2c), fill the gaps with no-ops, and re-propose them all in this ballot.
    fn finish_phase1(&mut self) {
        let p1 = self.phase1.take().expect("phase 1 in progress");
        debug_assert_eq!(p1.ballot, self.ballot);
        debug_assert_eq!(p1.from, self.log.commit() + 1);
        let mut adopted: BTreeMap<Index, Entry> = self
            .log
            .entries_from(p1.from)
            .map(|e| (e.index, e.clone()))
            .collect();
        let mut peer_commits = BTreeMap::new();
        for (&peer, (commit, entries)) in &p1.promises {
            peer_commits.insert(peer, *commit);
            if self.mutant(Mutant::IgnorePromiseValue) {
                continue;
            }
            for entry in entries {
                if entry.index < p1.from || entry.term >= p1.ballot {
                    // Nothing can have been accepted in this ballot or above before the
                    // promise; such an entry is malformed input and is not adopted.
                    continue;
                }
                match adopted.get(&entry.index) {
                    Some(held) if held.term >= entry.term => {}
                    _ => {
                        adopted.insert(entry.index, entry.clone());
                    }
                }
            }
        }
        // A new leader re-proposes at most MAX_SLOTS_AHEAD slots at once; if promises report
        // more, it recovers the rest with another Phase 1 once these are chosen.
        let cap = (p1.from - 1).saturating_add(MAX_SLOTS_AHEAD);
        let mut end = adopted
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(p1.from - 1);
        if end > cap {
            end = cap;
            self.resume_at = Some(cap);
            self.stopped_in_recovery = true;
        }
        let mut slot = p1.from;
        while slot <= end {
            let payload = adopted
                .remove(&slot)
                .map_or(Payload::Noop, |entry| entry.payload);
            let is_config = matches!(payload, Payload::Membership(_));
            self.store(Entry {
                term: p1.ballot,
                index: slot,
                payload,
            });
            if is_config {
                // Stop-sign: the slots after a configuration entry belong to the configuration
                // it names; they are recovered by a Phase 1 in it once the entry is chosen.
                self.stop_at = Some(slot);
                self.stopped_in_recovery = true;
                self.resume_at = None;
                end = slot;
            }
            slot += 1;
        }
        self.last_assigned = end;
        self.recovery_end = end;
        if self.role != Role::Leader {
            self.role = Role::Leader;
            self.leader = Some(self.id());
            self.heartbeat_elapsed = 0;
            self.quorum_elapsed = 0;
            self.progress.clear();
        }
        let members: Vec<NodeId> = self.log.membership().members().into_iter().collect();
        let id = self.id();
        for peer in members.into_iter().filter(|&m| m != id) {
            let known = peer_commits.get(&peer).copied().unwrap_or(0);
            let progress = self.progress.entry(peer).or_insert(Progress {
                matched: 0,
                next: 1,
                matched_at_heartbeat: 0,
                active: true,
                read_round: 0,
            });
            progress.matched = progress.matched.max(known.min(end));
            progress.next = progress.matched + 1;
        }
        self.broadcast_pending = true;
        self.maybe_commit();
    }

    // ------------------------------------------------------------------------------------
    // Leader: Phase 2.

    fn send_accept(&mut self, to: NodeId, heartbeat: bool) {
        let Some(&progress) = self.progress.get(&to) else {
            return;
        };
        let snapshot = self.log.snapshot();
        if progress.next <= snapshot.index {
            if !self.snapshot_durable() {
                // The transport streams the snapshot from storage; it is not there yet.
                return;
            }
            let message = Message::InstallSnapshot {
                ballot: self.ballot,
                snapshot: snapshot.clone(),
            };
            let next = snapshot.index + 1;
            self.progress.get_mut(&to).expect("present").next = next;
            self.send(to, message);
            return;
        }
        let inflight = (progress.next - 1).saturating_sub(progress.matched);
        let mut entries = Vec::new();
        if inflight < self.config.max_inflight_entries as u64 && progress.next <= self.last_assigned
        {
            let end = self
                .last_assigned
                .min(progress.next + self.config.max_entries_per_message as u64 - 1);
            for slot in progress.next..=end {
                let entry = self
                    .log
                    .entry(slot)
                    .expect("the leader holds every slot after its snapshot");
                // Chosen slots keep the ballot they were accepted in here; re-proposing their
                // value in this ballot is safe (P2b only asks higher ballots to carry it).
                entries.push(Entry {
                    term: self.ballot,
                    index: slot,
                    payload: entry.payload.clone(),
                });
            }
        }
        if entries.is_empty() && !heartbeat {
            return;
        }
        let progress = self.progress.get_mut(&to).expect("present");
        progress.next += entries.len() as u64;
        let message = Message::Accept {
            ballot: self.ballot,
            entries,
            commit: self.log.commit(),
            read_round: self.read_round,
        };
        self.send(to, message);
    }

    fn broadcast(&mut self, heartbeat: bool) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_accept(peer, heartbeat);
        }
    }

    fn heartbeat(&mut self) {
        let last = self.last_assigned;
        for progress in self.progress.values_mut() {
            if progress.matched < last && progress.matched == progress.matched_at_heartbeat {
                // No progress for a heartbeat interval: something was lost; send it again.
                progress.next = progress.matched + 1;
            }
            progress.matched_at_heartbeat = progress.matched;
        }
        self.broadcast(true);
        if self.phase1.is_some() {
            self.send_prepares(false);
        }
    }

    /// Leader: advances the chosen prefix to what a Phase-2 quorum has accepted in this ballot.
    fn maybe_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let own = self
            .log
            .accepted_top(self.ballot)
            .min(self.stable_bound())
            .min(self.last_assigned);
        let (_, phase2_quorum) = self.quorums();
        let id = self.id();
        let progress = &self.progress;
        let chosen = quorum::committed_index(&self.log.membership().voters, phase2_quorum, |v| {
            if v == id {
                own
            } else {
                progress.get(&v).map_or(0, |p| p.matched)
            }
        })
        .min(self.last_assigned);
        if chosen <= self.log.commit() {
            return;
        }
        let configs = self.log.commit_to(chosen);
        self.hard_state_dirty = true;
        self.broadcast_pending = true;
        for (slot, _) in configs {
            self.on_config_chosen(slot);
            if self.role != Role::Leader {
                return;
            }
        }
        if let Some(resume) = self.resume_at
            && self.log.commit() >= resume
        {
            debug_assert_eq!(resume, self.last_assigned);
            self.resume_at = None;
            self.stopped_in_recovery = false;
            self.phase1 = Some(Phase1 {
                ballot: self.ballot,
                from: resume + 1,
                promises: BTreeMap::new(),
            });
            self.send_prepares(false);
            self.maybe_finish_phase1();
        }
        self.confirm_reads();
    }

    /// Leader: the configuration entry at `slot` is chosen. Leave if no longer a voter;
    /// otherwise recover the slots after it with a Phase 1 in the new configuration.
    fn on_config_chosen(&mut self, slot: Index) {
        if self.stop_at == Some(slot) {
            self.stop_at = None;
            self.stopped_in_recovery = false;
        }
        let membership = self.log.membership().clone();
        if !membership.is_voter(self.id()) {
            self.become_follower(None);
            return;
        }
        self.progress.retain(|id, _| membership.contains(*id));
        for peer in membership.members() {
            if peer != self.id() {
                self.progress.entry(peer).or_insert(Progress {
                    matched: 0,
                    next: 1,
                    matched_at_heartbeat: 0,
                    active: true,
                    read_round: 0,
                });
            }
        }
        debug_assert!(self.log.commit() >= slot);
        if self.log.commit() == self.last_assigned {
            self.phase1 = Some(Phase1 {
                ballot: self.ballot,
                from: self.last_assigned + 1,
                promises: BTreeMap::new(),
            });
            self.send_prepares(false);
            self.maybe_finish_phase1();
        }
    }

    fn confirm_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let (_, phase2_quorum) = self.quorums();
        let voters = self.log.membership().voters.clone();
        while let Some(read) = self.pending_reads.first().copied() {
            let acks = voters
                .iter()
                .filter(|&&v| {
                    v == self.id()
                        || self
                            .progress
                            .get(&v)
                            .is_some_and(|p| p.read_round >= read.round)
                })
                .count();
            if acks < phase2_quorum {
                return;
            }
            self.pending_reads.remove(0);
            match read.origin {
                None => self.ready_reads.push(ReadState {
                    context: read.context,
                    index: read.index,
                }),
                Some(to) => self.send(
                    to,
                    Message::ReadIndexResponse {
                        context: read.context,
                        index: Some(read.index),
                    },
                ),
            }
        }
    }

    fn start_read(&mut self, context: ReadContext, origin: Option<NodeId>) {
        if self.phase1.is_some() || self.stop_at.is_some() || self.resume_at.is_some() {
            // The configuration that a rival's Phase 1 would use is in flux: refuse, and let
            // the client retry once the change is done.
            match origin {
                None => self.failed_reads.push(context),
                Some(to) => self.send(
                    to,
                    Message::ReadIndexResponse {
                        context,
                        index: None,
                    },
                ),
            }
            return;
        }
        self.read_round += 1;
        self.pending_reads.push(PendingRead {
            context,
            index: self.log.commit().max(self.recovery_end),
            round: self.read_round,
            origin,
        });
        self.broadcast(true);
        self.confirm_reads();
    }

    // ------------------------------------------------------------------------------------
    // Message handlers.

    fn handle_prepare(&mut self, from: NodeId, ballot: Term, first: Index, force: bool) {
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Message::Nack { ballot, promised });
            return;
        }
        if ballot > self.promised {
            let sticky = self.role == Role::Leader
                || (self.leader.is_some_and(|l| l != from)
                    && self.election_elapsed < self.config.election_ticks);
            if sticky && !force {
                // Leader stickiness: a live leader is not deposed by a member that merely
                // lost touch with it.
                return;
            }
            let persist = !self.mutant(Mutant::NoPersistPromise);
            self.promise(ballot, persist);
            if self.role != Role::Follower || self.leader.is_some() {
                self.become_follower(None);
            } else {
                self.reset_election_timer();
            }
        }
        let snapshot = self.log.snapshot().clone();
        let entries: Vec<Entry> = self
            .log
            .entries_from(first.max(snapshot.index + 1))
            .cloned()
            .collect();
        let reply = Message::Promise {
            ballot,
            from: first,
            commit: self.log.commit(),
            snapshot: snapshot.index,
            entries,
        };
        if self.mutant(Mutant::NoPersistPromise) {
            self.send(from, reply);
        } else {
            self.send_after_write(from, reply);
        }
        if snapshot.index >= first && self.snapshot_durable() {
            self.send(from, Message::InstallSnapshot { ballot, snapshot });
        }
    }

    fn handle_promise(
        &mut self,
        from: NodeId,
        ballot: Term,
        first: Index,
        commit: Index,
        snapshot: Index,
        entries: Vec<Entry>,
    ) {
        let Some(p1) = self.phase1.as_mut() else {
            return;
        };
        if p1.ballot != ballot || p1.from != first || snapshot >= first {
            // A stale answer, or one that cannot speak for truncated slots.
            return;
        }
        p1.promises.insert(from, (commit, entries));
        self.maybe_finish_phase1();
    }

    fn handle_accept(
        &mut self,
        from: NodeId,
        ballot: Term,
        entries: Vec<Entry>,
        commit: Index,
        read_round: u64,
    ) {
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Message::Nack { ballot, promised });
            return;
        }
        self.promise(ballot, true);
        if self.disk_promised < ballot {
            // Only the `no-persist-promise` mutant leaves a promise off the disk; accepting a
            // ballot promises it too, and that promise is stored with the entries.
            self.disk_promised = ballot;
            self.hard_state_dirty = true;
        }
        self.follow(from, ballot);
        for entry in entries {
            if entry.term == ballot {
                self.store(entry);
            }
        }
        self.leader_hint = (ballot, commit);
        self.learn_chosen();
        self.reply_accepted(from, ballot, read_round);
    }

    /// Phase 2b: reports to the leader of `ballot` what this acceptor holds in that ballot,
    /// once it is durable.
    fn reply_accepted(&mut self, leader: NodeId, ballot: Term, read_round: u64) {
        let top = self.log.accepted_top(ballot);
        let reply = Message::Accepted {
            ballot,
            top,
            commit: self.log.commit(),
            read_round,
        };
        self.send_after_write(leader, reply);
    }

    /// Follows the leader of `ballot`, which is at least the promised ballot.
    fn follow(&mut self, leader: NodeId, ballot: Term) {
        debug_assert!(ballot >= self.promised);
        if self.role != Role::Follower || self.leader != Some(leader) {
            self.become_follower(Some(leader));
        }
        self.election_elapsed = 0;
        self.leader_hint.0 = ballot;
    }

    /// Follower: every slot the leader says is chosen and that holds the leader's value is
    /// chosen here too.
    fn learn_chosen(&mut self) {
        let (ballot, commit) = self.leader_hint;
        if ballot != self.promised || self.role != Role::Follower {
            return;
        }
        let chosen = commit.min(self.log.accepted_top(ballot));
        if chosen > self.log.commit() {
            self.log.commit_to(chosen);
            self.hard_state_dirty = true;
        }
    }

    fn handle_accepted(
        &mut self,
        from: NodeId,
        ballot: Term,
        top: Index,
        commit: Index,
        read_round: u64,
    ) {
        if self.role != Role::Leader || ballot != self.ballot {
            return;
        }
        let last = self.last_assigned;
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.matched = progress.matched.max(top.max(commit).min(last));
        progress.next = progress.next.max(progress.matched + 1);
        progress.active = true;
        progress.read_round = progress.read_round.max(read_round.min(self.read_round));
        let more = progress.next <= last;
        self.maybe_commit();
        self.confirm_reads();
        if more && self.role == Role::Leader {
            self.send_accept(from, false);
        }
    }

    fn handle_nack(&mut self, ballot: Term, promised: Term) {
        if promised > self.ballot
            && ballot == self.ballot
            && matches!(self.role, Role::Leader | Role::Candidate)
        {
            // Another proposer holds a higher ballot: back off, with a fresh random timeout.
            self.become_follower(None);
        }
    }

    fn handle_snapshot(&mut self, from: NodeId, ballot: Term, snapshot: SnapshotMeta) {
        let from_leader = ballot >= self.promised && ballot::proposer(ballot) == from;
        if ballot < self.promised && ballot::proposer(ballot) == from {
            // A leader's snapshot below this acceptor's promise is refused like any other
            // message of a lower ballot, so that the leader learns of the promise and moves to
            // a higher ballot. (A leader heartbeats a member behind its snapshot with the
            // snapshot itself; without this Nack such a member, promised above the leader,
            // would never be answered and never rejoin.) The chosen slots are still installed
            // below: that is safe whoever sends them.
            let promised = self.promised;
            self.send(from, Message::Nack { ballot, promised });
        }
        if from_leader {
            self.promise(ballot, true);
            self.follow(from, ballot);
        }
        if snapshot.index > self.log.commit() && snapshot.membership.validate().is_ok() {
            // A snapshot holds only chosen slots, so installing it is safe whoever sent it.
            if self.role == Role::Leader {
                // Someone knows more chosen slots than this leader: a higher ballot exists.
                self.become_follower(None);
            }
            self.log.install_snapshot(snapshot.clone());
            self.unwritten.clear();
            self.unwritten_min = None;
            let retained: Vec<Entry> = self.log.entries_from(snapshot.index + 1).cloned().collect();
            // Storage drops the whole log when it installs a snapshot; the accepted entries
            // above it must be stored again, or this acceptor would forget what it accepted.
            self.unwritten_min = retained.first().map(|e| e.index);
            self.unwritten.extend(retained);
            self.unwritten_snapshot = Some(snapshot);
            self.hard_state_dirty = true;
            self.handed_early.clear();
            if let Some(p1) = self.phase1.as_mut() {
                // A candidate that was behind a promise's truncation point starts again from
                // its new chosen prefix.
                p1.from = self.log.commit() + 1;
                p1.promises.clear();
                self.send_prepares(false);
            }
        }
        if from_leader {
            self.learn_chosen();
            self.reply_accepted(from, ballot, 0);
        }
    }

    // ------------------------------------------------------------------------------------
    // The engine interface.

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => {
                self.heartbeat_elapsed += 1;
                if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
                    self.heartbeat_elapsed = 0;
                    self.heartbeat();
                }
                self.quorum_elapsed += 1;
                if self.quorum_elapsed >= self.config.election_ticks {
                    self.quorum_elapsed = 0;
                    self.check_quorum();
                }
            }
            _ => {
                self.election_elapsed += 1;
                if self.election_elapsed >= self.election_timeout {
                    self.campaign(false);
                }
            }
        }
        self.check_invariants();
    }

    /// The transport lost its connection to `peer`. A follower whose leader that is starts
    /// Phase 1 at once instead of waiting out its failure-detector timeout; anyone else does
    /// nothing. Returns whether it acted.
    ///
    /// Safety rests on ballots alone, as when the timer fires. Every survivor told of the loss
    /// campaigns at once, with no stagger: ballots are unique per proposer, so competing
    /// proposers cannot split a vote as Raft candidates can; the higher ballot gets every
    /// promise, and the lower one is refused and backs off. Forgetting the leader also makes
    /// the member promise other proposers at once (leader stickiness no longer applies).
    ///
    /// Multi-Paxos has no pre-vote, so a wrong report (the leader lives on) has the cost of a
    /// follower's failure detector firing wrongly: the other voters, still hearing from the
    /// leader, ignore the Prepare, but this member's promise of its own ballot refuses the
    /// leader's next Accept and so deposes it, and an election follows. A connection drops
    /// with its process alive only if the network between them failed, when a new election
    /// is wanted anyway.
    pub fn peer_unreachable(&mut self, peer: NodeId) -> bool {
        let acted = self.role == Role::Follower
            && self.leader == Some(peer)
            && peer != self.id()
            && self.log.membership().is_voter(self.id());
        if acted {
            self.campaign(false);
        }
        self.check_invariants();
        acted
    }

    /// Check-quorum: a leader that has not heard from a Phase-2 quorum in a timeout steps down,
    /// so that its clients go elsewhere.
    fn check_quorum(&mut self) {
        let (_, phase2_quorum) = self.quorums();
        let id = self.id();
        let active = self
            .log
            .membership()
            .voters
            .iter()
            .filter(|&&v| v == id || self.progress.get(&v).is_some_and(|p| p.active))
            .count();
        for progress in self.progress.values_mut() {
            progress.active = false;
        }
        if active < phase2_quorum {
            self.become_follower(None);
        }
    }

    /// Handles one inbound message.
    pub fn step(&mut self, from: NodeId, message: Message) {
        if from == self.id() || from == 0 || !well_formed(&message) {
            return;
        }
        let ballot = match &message {
            Message::Prepare { ballot, .. }
            | Message::Promise { ballot, .. }
            | Message::Accept { ballot, .. }
            | Message::Accepted { ballot, .. }
            | Message::InstallSnapshot { ballot, .. }
            | Message::TimeoutNow { ballot } => Some(*ballot),
            Message::Nack { promised, .. } => Some(*promised),
            _ => None,
        };
        if let Some(ballot) = ballot {
            self.max_seen = self.max_seen.max(ballot);
        }
        match message {
            Message::Prepare {
                ballot,
                from: first,
                force,
            } => {
                if ballot::proposer(ballot) == from && first > 0 {
                    self.handle_prepare(from, ballot, first, force);
                }
            }
            Message::Promise {
                ballot,
                from: first,
                commit,
                snapshot,
                entries,
            } => self.handle_promise(from, ballot, first, commit, snapshot, entries),
            Message::Accept {
                ballot,
                entries,
                commit,
                read_round,
            } => {
                if ballot::proposer(ballot) == from {
                    self.handle_accept(from, ballot, entries, commit, read_round);
                }
            }
            Message::Accepted {
                ballot,
                top,
                commit,
                read_round,
            } => self.handle_accepted(from, ballot, top, commit, read_round),
            Message::Nack { ballot, promised } => self.handle_nack(ballot, promised),
            Message::InstallSnapshot { ballot, snapshot } => {
                self.handle_snapshot(from, ballot, snapshot)
            }
            Message::TimeoutNow { ballot } => {
                if ballot == self.promised
                    && ballot::proposer(ballot) == from
                    && self.role == Role::Follower
                {
                    self.campaign(true);
                }
            }
            Message::ReadIndex { context } => {
                if self.role == Role::Leader {
                    self.start_read(context, Some(from));
                } else {
                    self.send(
                        from,
                        Message::ReadIndexResponse {
                            context,
                            index: None,
                        },
                    );
                }
            }
            Message::ReadIndexResponse { context, index } => {
                if let Some(pos) = self.forwarded_reads.iter().position(|&c| c == context) {
                    self.forwarded_reads.remove(pos);
                    match index {
                        Some(index) => self.ready_reads.push(ReadState { context, index }),
                        None => self.failed_reads.push(context),
                    }
                }
            }
        }
        self.check_invariants();
    }

    /// Proposes a command; only the leader accepts one.
    pub fn propose(&mut self, command: Bytes) -> Result<Proposal, ProposeError> {
        self.propose_payload(Payload::Command(command))
    }

    fn propose_payload(&mut self, payload: Payload) -> Result<Proposal, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.stop_at.is_some() {
            return Err(ProposeError::ConfChangeInProgress);
        }
        if self.phase1.is_some() || self.resume_at.is_some() {
            return Err(ProposeError::LeaderNotReady);
        }
        if self.last_assigned - self.log.commit() >= MAX_SLOTS_AHEAD {
            return Err(ProposeError::Overloaded);
        }
        let index = self.last_assigned + 1;
        let is_config = matches!(payload, Payload::Membership(_));
        self.store(Entry {
            term: self.ballot,
            index,
            payload,
        });
        self.last_assigned = index;
        if is_config {
            self.stop_at = Some(index);
        }
        self.broadcast_pending = true;
        self.check_invariants();
        Ok(Proposal {
            index,
            term: self.ballot,
        })
    }

    /// Asks for a linearizable read; see the [module documentation](self#reads).
    pub fn read_index(&mut self, context: ReadContext) -> Result<(), ReadError> {
        if self.role == Role::Leader {
            self.start_read(context, None);
        } else {
            let leader = self.leader.ok_or(ReadError::NoLeader)?;
            self.forwarded_reads.push(context);
            self.send(leader, Message::ReadIndex { context });
        }
        self.check_invariants();
        Ok(())
    }

    /// Asks the leader to hand leadership to `to`: `to` starts Phase 1 at once.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader {
                leader: self.leader,
            });
        }
        if to == self.id() {
            return Err(TransferError::AlreadyLeader(to));
        }
        if !self.log.membership().voters.contains(&to) {
            return Err(TransferError::NotVoter(to));
        }
        let ballot = self.ballot;
        self.send(to, Message::TimeoutNow { ballot });
        Ok(())
    }

    /// Proposes a configuration change. It is a stop-sign: nothing is proposed after it until
    /// it is chosen. A joint change moves straight to C_new (see the module documentation).
    pub fn propose_membership_change(
        &mut self,
        change: ConfChange,
    ) -> Result<Proposal, ProposeError> {
        if self.role == Role::Leader && self.stop_at.is_some() {
            return Err(ProposeError::ConfChangeInProgress);
        }
        let next = self.log.membership().apply(&change)?.leave_joint();
        self.propose_payload(Payload::Membership(next))
    }

    /// The metadata of a snapshot at `index`.
    pub fn snapshot_meta(&self, index: Index) -> Result<SnapshotMeta, CompactError> {
        self.check_compactable(index)?;
        Ok(self.log.snapshot_meta(index))
    }

    fn check_compactable(&self, index: Index) -> Result<(), CompactError> {
        let snapshot = self.log.snapshot().index;
        if index <= snapshot {
            return Err(CompactError::AlreadyCompacted { index, snapshot });
        }
        let limit = self.log.applied().min(self.stable_bound());
        if index > limit {
            return Err(CompactError::NotApplied { index, limit });
        }
        Ok(())
    }

    /// Discards the slots up to `index`, which the application holds in a durable snapshot.
    pub fn compact(&mut self, index: Index) -> Result<(), CompactError> {
        self.check_compactable(index)?;
        self.log.compact(index);
        self.check_invariants();
        Ok(())
    }

    /// Whether [`PaxosNode::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        !self.msgs.is_empty()
            || self.broadcast_pending
            || self.needs_write()
            || !self.gated.is_empty()
            || !self.failed_reads.is_empty()
            || self.soft_state() != self.last_soft_state
            || self.log.commit().min(self.stable_bound()) > self.log.applied()
            || self.snapshot_durable()
                && self
                    .ready_reads
                    .iter()
                    .any(|r| r.index <= self.log.applied())
            || self.mutant(Mutant::ApplyOutOfOrder)
                && self.role == Role::Follower
                && self.early_slots().next().is_some()
    }

    /// Mutant `apply-out-of-order`: slots known chosen beyond a gap in the chosen prefix.
    fn early_slots(&self) -> impl Iterator<Item = Index> + '_ {
        let (ballot, commit) = self.leader_hint;
        let bound = self.stable_bound();
        let from = self.log.commit() + 1;
        let to = commit.min(bound);
        (from..=to)
            .take(1024)
            .filter(move |&s| self.log.entry(s).is_some_and(|e| e.term == ballot))
            .filter(|s| !self.handed_early.contains(s))
    }

    /// Takes the next output batch.
    pub fn ready(&mut self) -> Ready<HardState, Message> {
        if self.broadcast_pending {
            self.broadcast_pending = false;
            if self.role == Role::Leader {
                self.broadcast(false);
            }
        }
        let soft = self.soft_state();
        let soft_state = (soft != self.last_soft_state).then_some(soft);
        self.last_soft_state = soft;
        let bound = self.log.commit().min(self.stable_bound());
        let mut committed = if bound > self.log.applied() {
            self.log.hand_out(bound)
        } else {
            Vec::new()
        };
        if self.mutant(Mutant::ApplyOutOfOrder) && self.role == Role::Follower {
            let early: Vec<Index> = self.early_slots().collect();
            for slot in early {
                self.handed_early.insert(slot);
                committed.push(self.log.entry(slot).expect("held").clone());
            }
        }
        let applied = self.log.applied();
        let restoring = !self.snapshot_durable();
        let (reads, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ready_reads)
            .into_iter()
            .partition(|r| r.index <= applied && !restoring);
        self.ready_reads = waiting;
        let write = (self.needs_write() || !self.gated.is_empty()).then(|| self.issue_write());
        let ready = Ready {
            messages: std::mem::take(&mut self.msgs),
            write,
            committed,
            reads,
            failed_reads: std::mem::take(&mut self.failed_reads),
            soft_state,
        };
        self.check_invariants();
        ready
    }

    fn issue_write(&mut self) -> Write<HardState> {
        let seq = self.next_write_seq;
        self.next_write_seq += 1;
        let mut entries = std::mem::take(&mut self.unwritten);
        if !entries.is_sorted_by(|a, b| a.index < b.index) {
            // A slot accepted twice in one batch keeps its latest value; storage wants
            // ascending slots. The sort is stable, so the latest of equal slots is last.
            entries.sort_by_key(|e| e.index);
            entries.reverse();
            entries.dedup_by_key(|e| e.index);
            entries.reverse();
        }
        let snapshot = self.unwritten_snapshot.take();
        let hard_state = std::mem::take(&mut self.hard_state_dirty).then_some(HardState {
            promised: self.disk_promised,
            commit: self.log.commit(),
        });
        // The chosen prefix is volatile (a member relearns it): a write that stores nothing
        // else need not wait for a sync. A promise must be durable before it is sent.
        let volatile_only = hard_state.is_none_or(|h| h.promised == self.issued_promised);
        if let Some(h) = hard_state {
            self.issued_promised = h.promised;
        }
        self.pending_writes.push_back(PendingWrite {
            seq,
            min_slot: self.unwritten_min.take(),
            snapshot: snapshot.is_some(),
            promised: self.promised,
            gated: std::mem::take(&mut self.gated),
        });
        let write = Write::new(seq, hard_state, None, entries, snapshot);
        if volatile_only {
            write.without_sync()
        } else {
            write
        }
    }

    /// Hands back a write once it is durable; returns the messages that waited on it.
    ///
    /// # Panics
    /// If writes are handed back out of order: that is a bug in the application.
    pub fn persisted(&mut self, write: Write<HardState>) -> Vec<Envelope<Message>> {
        let pending = self.pending_writes.pop_front().unwrap_or_else(|| {
            panic!("write {} handed back, but none is outstanding", write.seq())
        });
        assert_eq!(
            pending.seq,
            write.seq(),
            "writes must be handed back in the order they were issued"
        );
        self.promised_durable = self.promised_durable.max(pending.promised);
        if self.phase1.is_some() {
            self.maybe_finish_phase1();
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
        self.check_invariants();
        pending.gated
    }

    /// The member's current state.
    pub fn status(&self) -> Status {
        Status {
            id: self.id(),
            soft_state: self.soft_state(),
            commit: self.log.commit(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
            persisted: self.stable_bound().min(self.log.last_index()),
            snapshot_index: self.log.snapshot().index,
            membership: self.log.membership().clone(),
        }
    }

    fn check_invariants(&mut self) {
        if !self.config.check_invariants {
            return;
        }
        if let Err(detail) = self.invariants() {
            panic!(
                "member {}: invariant violated: {detail}\n{self:?}",
                self.id()
            );
        }
        self.shadow.promised = self.promised;
        self.shadow.commit = self.log.commit();
    }

    fn invariants(&self) -> Result<(), String> {
        self.log.check()?;
        if self.promised < self.shadow.promised {
            return Err(format!(
                "promised ballot went back from {} to {}",
                self.shadow.promised, self.promised
            ));
        }
        if self.log.commit() < self.shadow.commit {
            return Err(format!(
                "chosen prefix went back from {} to {}",
                self.shadow.commit,
                self.log.commit()
            ));
        }
        if self.promised_durable > self.promised {
            return Err("durable promise above the promise".into());
        }
        match self.role {
            Role::Leader | Role::Candidate => {
                if self.ballot == 0 || ballot::proposer(self.ballot) != self.id() {
                    return Err(format!("leading with foreign ballot {}", self.ballot));
                }
                if self.ballot > self.promised {
                    return Err(format!(
                        "ballot {} above the promise {}",
                        self.ballot, self.promised
                    ));
                }
            }
            _ => {
                if self.ballot != 0 || !self.progress.is_empty() {
                    return Err("a follower keeps leader state".into());
                }
            }
        }
        if self.role == Role::Leader {
            if self.leader != Some(self.id()) {
                return Err("a leader that does not know it leads".into());
            }
            if self.last_assigned < self.log.commit() {
                return Err(format!(
                    "last assigned {} below the commit {}",
                    self.last_assigned,
                    self.log.commit()
                ));
            }
            for slot in [self.log.commit() + 1, self.last_assigned] {
                if slot > self.log.commit()
                    && slot <= self.last_assigned
                    && self.log.entry(slot).is_none_or(|e| e.term != self.ballot)
                {
                    return Err(format!("leader's slot {slot} not in its ballot"));
                }
            }
            if let Some(stop) = self.stop_at
                && (stop != self.last_assigned
                    || !matches!(
                        self.log.entry(stop).map(|e| &e.payload),
                        Some(Payload::Membership(_))
                    ))
            {
                return Err(format!(
                    "stop-sign at {stop} is not the last configuration entry"
                ));
            }
            for (id, p) in &self.progress {
                if p.matched >= p.next || p.matched > self.last_assigned {
                    return Err(format!(
                        "progress of {id}: matched {} next {} last {}",
                        p.matched, p.next, self.last_assigned
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Slots, snapshot indexes and chosen prefixes above this are malformed: no cluster reaches
/// them, and refusing them keeps every `index + 1` and look-ahead in range.
pub const MAX_INDEX: Index = u64::MAX / 2;

/// Ballots of rounds from here on are malformed: refusing them keeps a single message from
/// exhausting a member's ballots.
const MAX_ROUND: u64 = 1 << 47;

/// Whether a message's numbers are in range. Anything else is ignored, never a panic.
fn well_formed(message: &Message) -> bool {
    let index_ok = |index: Index| index <= MAX_INDEX;
    let ballot_ok = |ballot: Term| ballot::round(ballot) < MAX_ROUND;
    let entries_ok = |entries: &[Entry]| {
        entries
            .iter()
            .all(|e| index_ok(e.index) && e.index > 0 && ballot_ok(e.term))
    };
    match message {
        Message::Prepare { ballot, from, .. } => ballot_ok(*ballot) && index_ok(*from),
        Message::Promise {
            ballot,
            from,
            commit,
            snapshot,
            entries,
        } => {
            ballot_ok(*ballot)
                && index_ok(*from)
                && index_ok(*commit)
                && index_ok(*snapshot)
                && entries_ok(entries)
        }
        Message::Accept {
            ballot,
            entries,
            commit,
            ..
        } => ballot_ok(*ballot) && index_ok(*commit) && entries_ok(entries),
        Message::Accepted {
            ballot,
            top,
            commit,
            ..
        } => ballot_ok(*ballot) && index_ok(*top) && index_ok(*commit),
        Message::Nack { ballot, promised } => ballot_ok(*ballot) && ballot_ok(*promised),
        Message::InstallSnapshot { ballot, snapshot } => {
            ballot_ok(*ballot) && index_ok(snapshot.index) && ballot_ok(snapshot.term)
        }
        Message::TimeoutNow { ballot } => ballot_ok(*ballot),
        Message::ReadIndex { .. } => true,
        Message::ReadIndexResponse { index, .. } => index.is_none_or(index_ok),
    }
}

impl Engine for PaxosNode {
    type Message = Message;
    type HardState = HardState;

    const LOG_MATCHING: bool = false;

    fn id(&self) -> NodeId {
        self.config.id
    }

    fn tick(&mut self) {
        PaxosNode::tick(self)
    }

    fn step(&mut self, from: NodeId, message: Message) {
        PaxosNode::step(self, from, message)
    }

    fn peer_unreachable(&mut self, peer: NodeId) -> bool {
        PaxosNode::peer_unreachable(self, peer)
    }

    fn propose(&mut self, command: Bytes) -> Result<Proposal, ProposeError> {
        PaxosNode::propose(self, command)
    }

    fn read_index(&mut self, context: ReadContext) -> Result<(), ReadError> {
        PaxosNode::read_index(self, context)
    }

    fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        PaxosNode::transfer_leadership(self, to)
    }

    fn propose_membership_change(&mut self, change: ConfChange) -> Result<Proposal, ProposeError> {
        PaxosNode::propose_membership_change(self, change)
    }

    fn snapshot_meta(&self, index: Index) -> Result<SnapshotMeta, CompactError> {
        PaxosNode::snapshot_meta(self, index)
    }

    fn compact(&mut self, index: Index) -> Result<(), CompactError> {
        PaxosNode::compact(self, index)
    }

    fn has_ready(&self) -> bool {
        PaxosNode::has_ready(self)
    }

    fn ready(&mut self) -> Ready<HardState, Message> {
        PaxosNode::ready(self)
    }

    fn persisted(&mut self, write: Write<HardState>) -> Vec<Envelope<Message>> {
        PaxosNode::persisted(self, write)
    }

    fn status(&self) -> Status {
        PaxosNode::status(self)
    }

    fn log_entry(&self, index: Index) -> Option<&Entry> {
        self.log.entry(index)
    }
}
