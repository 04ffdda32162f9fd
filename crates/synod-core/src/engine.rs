//! The interface every consensus engine implements, and the output batch it hands back.
//!
//! An engine is a pure state machine. The application feeds it logical time ([`Engine::tick`]),
//! inbound messages ([`Engine::step`]) and requests (propose, read, transfer, membership,
//! snapshots), then drains a [`Ready`] batch and carries it out:
//!
//! 1. send [`Ready::messages`] at once: they depend on nothing that is not yet durable;
//! 2. apply [`Ready::committed`] to the state machine, in order;
//! 3. answer [`Ready::reads`] (their entries have been handed out for applying by now) and
//!    fail [`Ready::failed_reads`];
//! 4. make [`Ready::write`] durable, then hand it back with [`Engine::persisted`], which returns
//!    the messages that were waiting on it.
//!
//! The durability order is enforced by types: messages that may only leave once the write is
//! durable (a vote, an acknowledgement of entries) never appear in the batch. The engine keeps
//! them until it gets the [`Write`] back, so the application cannot send them early by mistake.
//! Writes must be persisted, and handed back, in the order they were issued.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::entry::Entry;
use crate::membership::{ConfChange, Membership, MembershipError};
use crate::snapshot::SnapshotMeta;
use crate::types::{Index, NodeId, ReadContext, Term};

/// A message with its sender and recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<M> {
    /// The sender.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The protocol message.
    pub message: M,
}

/// What a member is doing in the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks whether it could win an election, without disturbing the term (Raft thesis §9.6).
    PreCandidate,
    /// Campaigns for leadership (Raft), or runs Phase 1 (Paxos).
    Candidate,
    /// Orders commands.
    Leader,
    /// Receives the log but does not vote.
    Learner,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
            Role::Learner => "learner",
        };
        f.write_str(name)
    }
}

/// The volatile view of who leads: reported whenever it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    /// This member's role.
    pub role: Role,
    /// The current epoch (term or ballot).
    pub term: Term,
    /// The leader this member believes in, if any.
    pub leader: Option<NodeId>,
}

/// A read that may be served once the state machine has applied `index`.
///
/// The entries up to `index` have already been handed out in [`Ready::committed`] of this or an
/// earlier batch, so an application that applies each batch before answering its reads can
/// answer at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The context passed to `read_index`.
    pub context: ReadContext,
    /// The commit index the read must observe.
    pub index: Index,
}

/// Where a proposal was placed. If the entry later committed at `index` has another term, the
/// proposal was lost (overwritten by a new leader) and may be retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The log index given to the proposal.
    pub index: Index,
    /// The term of the leader that placed it.
    pub term: Term,
}

/// Why a proposal was refused. Nothing was appended.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals; `leader` is the one this member knows of.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// A leadership transfer is in progress.
    #[error("a leadership transfer is in progress")]
    TransferInProgress,
    /// A configuration change is still uncommitted; only one may be in flight.
    #[error("a configuration change is already in progress")]
    ConfChangeInProgress,
    /// The leader has not yet committed an entry of its own term (Raft thesis §4.1: required
    /// before a configuration change).
    #[error("the leader has not yet committed an entry in its term")]
    LeaderNotReady,
    /// Too many proposals are in flight (not yet committed); retry once some have committed.
    #[error("too many proposals in flight")]
    Overloaded,
    /// The requested configuration is invalid.
    #[error("invalid configuration change: {0}")]
    Membership(#[from] MembershipError),
}

/// Why a read could not be started.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ReadError {
    /// No leader is known to forward the read to.
    #[error("no leader is known")]
    NoLeader,
}

/// Why a leadership transfer could not be started.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TransferError {
    /// Only the leader can transfer leadership.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The target is not a voter of the current configuration.
    #[error("node {0} is not a voter")]
    NotVoter(NodeId),
    /// The target is the leader itself.
    #[error("node {0} is already the leader")]
    AlreadyLeader(NodeId),
}

/// Why a snapshot or compaction request was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CompactError {
    /// The index is at or below the current snapshot.
    #[error("index {index} is already compacted (snapshot at {snapshot})")]
    AlreadyCompacted {
        /// The requested index.
        index: Index,
        /// The current snapshot index.
        snapshot: Index,
    },
    /// The index has not been handed out for applying, or is not yet durable.
    #[error("index {index} is beyond what has been applied and persisted ({limit})")]
    NotApplied {
        /// The requested index.
        index: Index,
        /// The largest index that could be compacted.
        limit: Index,
    },
}

/// The durable part of a [`Ready`] batch.
///
/// Apply it to stable storage in this order: install [`Write::snapshot`] (which discards the
/// whole log), drop every stored entry at index `>=` [`Write::truncate_from`], store
/// [`Write::entries`] (each overwrites any stored entry at its index), store
/// [`Write::hard_state`]. Then make it durable and hand it back with [`Engine::persisted`].
///
/// A write whose [`Write::needs_sync`] is false holds only state the engine can lose in a crash
/// (a commit index, which the protocols keep in volatile state): store it, but it may be handed
/// back without waiting for a sync. A later synced write makes it durable with everything before
/// it; a crash may lose it, but then also loses nothing written before it that was synced.
#[derive(Debug)]
#[must_use = "a Write must be made durable and handed back to the engine"]
pub struct Write<H> {
    seq: u64,
    hard_state: Option<H>,
    truncate_from: Option<Index>,
    entries: Vec<Entry>,
    snapshot: Option<SnapshotMeta>,
    sync: bool,
}

impl<H> Write<H> {
    /// Builds a write. Engines call this; an application never needs to.
    pub fn new(
        seq: u64,
        hard_state: Option<H>,
        truncate_from: Option<Index>,
        entries: Vec<Entry>,
        snapshot: Option<SnapshotMeta>,
    ) -> Self {
        Write {
            seq,
            hard_state,
            truncate_from,
            entries,
            snapshot,
            sync: true,
        }
    }

    /// Marks a write that the engine could lose in a crash without harm: it holds no entries,
    /// truncation or snapshot, and its hard state differs from the last synced one only in
    /// what the protocol treats as volatile. Ignored (the write stays synced) otherwise.
    pub fn without_sync(mut self) -> Self {
        self.sync =
            !(self.truncate_from.is_none() && self.entries.is_empty() && self.snapshot.is_none());
        self
    }

    /// Whether storage must make this write durable before handing it back (see [`Write`]).
    pub fn needs_sync(&self) -> bool {
        self.sync
    }

    /// The engine's sequence number for this write.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The new hard state (for Raft: term, vote and commit), if it changed.
    pub fn hard_state(&self) -> Option<&H> {
        self.hard_state.as_ref()
    }

    /// Drop stored entries from this index on before storing [`Write::entries`].
    pub fn truncate_from(&self) -> Option<Index> {
        self.truncate_from
    }

    /// Entries to store, in ascending index order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Moves the entries out (to hand them to storage without copying). The engine still knows
    /// what this write covered.
    pub fn take_entries(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.entries)
    }

    /// A snapshot received from the leader to install. Its bytes were streamed to the
    /// application alongside the message that carried this metadata. Once the write is durable,
    /// restore the state machine from it before applying any later committed entry.
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref()
    }

    /// Whether there is nothing to store (the write only orders messages behind earlier writes).
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.truncate_from.is_none()
            && self.entries.is_empty()
            && self.snapshot.is_none()
    }
}

/// One output batch. See the [module documentation](self) for the order in which to carry it out.
#[derive(Debug)]
pub struct Ready<H, M> {
    /// Messages that may be sent at once.
    pub messages: Vec<Envelope<M>>,
    /// What to make durable. Messages that wait on it are released by [`Engine::persisted`].
    pub write: Option<Write<H>>,
    /// Committed entries to apply, in index order. They are always already durable locally.
    pub committed: Vec<Entry>,
    /// Linearizable reads that may now be served.
    pub reads: Vec<ReadState>,
    /// Reads that failed (leadership was lost); the client should retry elsewhere.
    pub failed_reads: Vec<ReadContext>,
    /// The new role, term or leader, if any of them changed.
    pub soft_state: Option<SoftState>,
}

impl<H, M> Ready<H, M> {
    /// Whether the batch asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.write.is_none()
            && self.committed.is_empty()
            && self.reads.is_empty()
            && self.failed_reads.is_empty()
            && self.soft_state.is_none()
    }
}

/// A snapshot of a member's state, for status APIs, metrics and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This member.
    pub id: NodeId,
    /// Role, term and leader.
    pub soft_state: SoftState,
    /// The highest committed index this member knows of.
    pub commit: Index,
    /// The highest index handed out for applying.
    pub applied: Index,
    /// The index of the last entry in the log.
    pub last_index: Index,
    /// The highest index known to be durable locally.
    pub persisted: Index,
    /// The index of the last snapshot (compaction point).
    pub snapshot_index: Index,
    /// The configuration in effect.
    pub membership: Membership,
}

/// A value storage can keep: the engines' hard states encode themselves, so that storage
/// stays ignorant of the protocol.
pub trait DurableState: Sized {
    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes what [`DurableState::encode`] wrote; `None` for anything else.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// Decodes `N` little-endian `u64`s that make up all of `bytes`.
pub fn decode_u64s<const N: usize>(bytes: &[u8]) -> Option<[u64; N]> {
    if bytes.len() != 8 * N {
        return None;
    }
    let mut out = [0; N];
    for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        *value = u64::from_le_bytes(chunk.try_into().ok()?);
    }
    Some(out)
}

/// What a transport (or the simulator) needs to know about a protocol message without
/// understanding the protocol.
pub trait WireMessage: Clone + fmt::Debug {
    /// If the message asks the recipient to install a snapshot, its metadata: the transport
    /// must stream the sender's snapshot at that index along with it.
    fn snapshot(&self) -> Option<&SnapshotMeta>;

    /// A short name of the message kind, for traces and metrics.
    fn kind_name(&self) -> &'static str;
}

/// A consensus engine: Raft or Multi-Paxos. See the [module documentation](self).
pub trait Engine {
    /// The protocol's wire message.
    type Message: WireMessage;
    /// The protocol's durable, non-log state (Raft: term, vote, commit).
    type HardState: Clone + fmt::Debug + PartialEq + DurableState;

    /// Whether the engine guarantees Raft's Log Matching property (§5.3): two logs that hold an
    /// entry with the same index and term are identical up to it, and a committed entry has
    /// the same term everywhere. Multi-Paxos does not: each slot is decided on its own, and an
    /// entry's term is the ballot in which the member holding it accepted it, so the same
    /// chosen value may carry different ballots on different members. Checkers then compare
    /// entries by their payload only.
    const LOG_MATCHING: bool = true;

    /// This member's id.
    fn id(&self) -> NodeId;

    /// Advances logical time by one tick.
    fn tick(&mut self);

    /// Handles one inbound message. Malformed, stale or unexpected messages are ignored or
    /// answered as the protocol says; they never cause a panic.
    fn step(&mut self, from: NodeId, message: Self::Message);

    /// Tells the engine that the transport lost its connection to `peer` (the peer closed it,
    /// reset it, or refused a new one): a hint that `peer` may have crashed, which arrives
    /// long before an election timeout would reveal it. After `kill -9` the kernel closes the
    /// dead process's connections at once.
    ///
    /// The hint may be wrong (a connection can drop while its process lives on), may arrive
    /// late, twice or never, and says nothing about when the peer comes back. Safety must
    /// therefore never rest on it: an engine may only use it to start, sooner than its timer
    /// would, what it would do anyway once the timer fired (such as an election). A follower
    /// told that its leader is unreachable forgets the leader and campaigns soon; any other
    /// member does nothing. Returns whether the engine acted on the hint (for logs).
    fn peer_unreachable(&mut self, peer: NodeId) -> bool;

    /// Proposes a command. On success the command has been appended to the leader's log at the
    /// returned position; it is committed once it appears in [`Ready::committed`].
    fn propose(&mut self, command: Bytes) -> Result<Proposal, ProposeError>;

    /// Asks for a linearizable read. `context` comes back in a [`ReadState`] once the read may
    /// be served, or in [`Ready::failed_reads`] if it cannot be.
    fn read_index(&mut self, context: ReadContext) -> Result<(), ReadError>;

    /// Asks the leader to hand leadership to `to`.
    fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError>;

    /// Proposes a configuration change.
    fn propose_membership_change(&mut self, change: ConfChange) -> Result<Proposal, ProposeError>;

    /// The metadata to store with a state-machine snapshot taken at `index` (which must have
    /// been handed out for applying, and be durable).
    fn snapshot_meta(&self, index: Index) -> Result<SnapshotMeta, CompactError>;

    /// Tells the engine that the application holds a durable snapshot at `index`; the engine
    /// discards its log up to and including `index`. Lagging followers will then be sent this
    /// snapshot.
    fn compact(&mut self, index: Index) -> Result<(), CompactError>;

    /// Whether [`Engine::ready`] has anything to hand out.
    fn has_ready(&self) -> bool;

    /// Takes the next output batch.
    fn ready(&mut self) -> Ready<Self::HardState, Self::Message>;

    /// Hands back a write once it is durable; returns the messages that waited on it.
    ///
    /// # Panics
    /// If writes are handed back out of order: that is a bug in the application.
    fn persisted(&mut self, write: Write<Self::HardState>) -> Vec<Envelope<Self::Message>>;

    /// The member's current state.
    fn status(&self) -> Status;

    /// The entry at `index` in this member's log, if it holds one (durable or not). For
    /// checkers and status pages.
    fn log_entry(&self, index: Index) -> Option<&Entry>;
}
