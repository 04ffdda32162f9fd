//! Raft's wire messages.
//!
//! Every message carries the sender's term (Raft §5.1): a member that sees a higher term adopts
//! it, and a member that sees a lower one rejects or ignores the message.

use serde::{Deserialize, Serialize};
use synod_core::{Entry, Index, ReadContext, SnapshotMeta, Term, WireMessage};

/// One Raft message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender's term (for a pre-vote request: the term it would campaign in).
    pub term: Term,
    /// What the message says.
    pub kind: MessageKind,
}

/// The kinds of Raft message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageKind {
    /// RequestVote (Raft §5.2, Figure 2), or a pre-vote request (thesis §9.6).
    RequestVote {
        /// A pre-vote: asks whether the voter would grant, without changing any state.
        pre_vote: bool,
        /// The candidate's last log index (§5.4.1).
        last_log_index: Index,
        /// The term of the candidate's last entry (§5.4.1).
        last_log_term: Term,
        /// Sent because of a leadership transfer: voters grant even while they hear from a
        /// leader (thesis §3.10).
        transfer: bool,
    },
    /// The answer to a RequestVote.
    RequestVoteResponse {
        /// Answers a pre-vote request.
        pre_vote: bool,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// AppendEntries (Raft §5.3, Figure 2).
    AppendEntries {
        /// The index of the entry just before `entries`.
        prev_log_index: Index,
        /// Its term.
        prev_log_term: Term,
        /// Entries to store, contiguous from `prev_log_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: Index,
    },
    /// The answer to an AppendEntries or InstallSnapshot.
    AppendEntriesResponse(AppendResult),
    /// A heartbeat: asserts leadership, carries the commit index the follower may safely adopt,
    /// and numbers a round that confirms leadership for reads.
    Heartbeat {
        /// `min(follower's match index, leader commit)`.
        commit: Index,
        /// The leader's heartbeat round.
        round: u64,
    },
    /// The answer to a heartbeat.
    HeartbeatResponse {
        /// The round being acknowledged.
        round: u64,
    },
    /// InstallSnapshot (Raft §7). Carries only metadata: the application streams the bytes of
    /// the snapshot it holds at this index alongside.
    InstallSnapshot {
        /// The snapshot to install.
        snapshot: SnapshotMeta,
    },
    /// Tells the target of a leadership transfer to start an election now (thesis §3.10).
    TimeoutNow,
    /// A follower forwards a linearizable read to the leader.
    ReadIndex {
        /// The follower's read context.
        context: ReadContext,
    },
    /// The leader's answer to a forwarded read.
    ReadIndexResponse {
        /// The follower's read context.
        context: ReadContext,
        /// The index the read must observe, or `None` if the leader could not serve it.
        index: Option<Index>,
    },
}

/// The outcome of an AppendEntries or InstallSnapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendResult {
    /// The follower's log matches the leader's up to and including `match_index`, durably.
    Success {
        /// The last index known to match.
        match_index: Index,
    },
    /// The consistency check failed at `rejected_index` (the request's `prev_log_index`). The
    /// hint lets the leader skip a whole term at a time (Raft §5.3, "fast backtracking").
    Reject {
        /// The `prev_log_index` that did not match.
        rejected_index: Index,
        /// The follower's term at `rejected_index`, or `None` if its log is shorter.
        conflict_term: Option<Term>,
        /// The first index of `conflict_term` in the follower's log, or the follower's last
        /// index + 1 if its log is shorter.
        conflict_index: Index,
    },
}

impl MessageKind {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            MessageKind::RequestVote { pre_vote: true, .. } => "PreVote",
            MessageKind::RequestVote { .. } => "RequestVote",
            MessageKind::RequestVoteResponse { pre_vote: true, .. } => "PreVoteResponse",
            MessageKind::RequestVoteResponse { .. } => "RequestVoteResponse",
            MessageKind::AppendEntries { .. } => "AppendEntries",
            MessageKind::AppendEntriesResponse(_) => "AppendEntriesResponse",
            MessageKind::Heartbeat { .. } => "Heartbeat",
            MessageKind::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageKind::InstallSnapshot { .. } => "InstallSnapshot",
            MessageKind::TimeoutNow => "TimeoutNow",
            MessageKind::ReadIndex { .. } => "ReadIndex",
            MessageKind::ReadIndexResponse { .. } => "ReadIndexResponse",
        }
    }
}

impl WireMessage for Message {
    fn snapshot(&self) -> Option<&SnapshotMeta> {
        match &self.kind {
            MessageKind::InstallSnapshot { snapshot } => Some(snapshot),
            _ => None,
        }
    }

    fn kind_name(&self) -> &'static str {
        self.kind.name()
    }
}
