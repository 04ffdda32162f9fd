//! The Multi-Paxos wire messages.
//!
//! Every message carries the ballot it belongs to. Entries inside a message carry, as their
//! term, the ballot in which they were accepted (in a Promise) or are proposed (in an Accept).

use serde::{Deserialize, Serialize};
use synod_core::{Entry, Index, ReadContext, SnapshotMeta, Term, WireMessage};

/// A Multi-Paxos message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1a for every slot from `from` on.
    Prepare {
        /// The proposer's ballot.
        ballot: Term,
        /// The first slot the proposer does not know to be chosen.
        from: Index,
        /// Sent on a leadership transfer: acceptors answer even while they hear from a leader.
        force: bool,
    },
    /// Phase 1b: the acceptor will accept nothing below `ballot`, and reports what it has
    /// accepted at slots from `from` on.
    Promise {
        /// The ballot promised.
        ballot: Term,
        /// The `from` of the Prepare this answers.
        from: Index,
        /// The acceptor's chosen prefix.
        commit: Index,
        /// The acceptor's compaction point. If it is at or above `from`, the acceptor no longer
        /// knows what it accepted at the slots it truncated, so the promise says nothing about
        /// them: "truncated" must never be read as "nothing accepted". The acceptor sends its
        /// snapshot along.
        snapshot: Index,
        /// Every accepted entry at a slot from `max(from, snapshot + 1)` on; an entry's term
        /// is the ballot in which it was accepted.
        entries: Vec<Entry>,
    },
    /// Phase 2a for the entries (whose terms all equal `ballot`), and a heartbeat.
    Accept {
        /// The leader's ballot.
        ballot: Term,
        /// Entries to accept.
        entries: Vec<Entry>,
        /// Every slot up to here is chosen, with the value the leader proposed in this ballot.
        commit: Index,
        /// The leader's latest read round, echoed back to confirm leadership for reads.
        read_round: u64,
    },
    /// Phase 2b, and the answer to a heartbeat.
    Accepted {
        /// The ballot accepted.
        ballot: Term,
        /// Every slot after `commit` and up to here holds an entry accepted in `ballot`.
        top: Index,
        /// The acceptor's chosen prefix.
        commit: Index,
        /// The read round of the Accept this answers.
        read_round: u64,
    },
    /// The acceptor has promised a higher ballot and refuses `ballot`.
    Nack {
        /// The refused ballot.
        ballot: Term,
        /// The ballot the acceptor has promised.
        promised: Term,
    },
    /// Install this snapshot: every slot up to its index is chosen. The transport streams the
    /// sender's snapshot contents with it.
    InstallSnapshot {
        /// The sender's ballot.
        ballot: Term,
        /// The snapshot's metadata.
        snapshot: SnapshotMeta,
    },
    /// Leadership transfer: start Phase 1 at once.
    TimeoutNow {
        /// The current leader's ballot.
        ballot: Term,
    },
    /// A follower forwards a linearizable read to the leader.
    ReadIndex {
        /// The follower's read context.
        context: ReadContext,
    },
    /// The leader's answer to a forwarded read: the index to wait for, or `None` if the read
    /// failed.
    ReadIndexResponse {
        /// The follower's read context.
        context: ReadContext,
        /// The read index.
        index: Option<Index>,
    },
}

impl WireMessage for Message {
    fn snapshot(&self) -> Option<&SnapshotMeta> {
        match self {
            Message::InstallSnapshot { snapshot, .. } => Some(snapshot),
            _ => None,
        }
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "Prepare",
            Message::Promise { .. } => "Promise",
            Message::Accept { .. } => "Accept",
            Message::Accepted { .. } => "Accepted",
            Message::Nack { .. } => "Nack",
            Message::InstallSnapshot { .. } => "InstallSnapshot",
            Message::TimeoutNow { .. } => "TimeoutNow",
            Message::ReadIndex { .. } => "ReadIndex",
            Message::ReadIndexResponse { .. } => "ReadIndexResponse",
        }
    }
}
