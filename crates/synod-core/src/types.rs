//! Identifiers and counters used throughout synod.

/// The identity of a cluster member. Zero is reserved and never names a member.
pub type NodeId = u64;

/// A position in the replicated log (a Raft index, a Paxos slot). The first entry has index 1;
/// index 0 means "before the first entry".
pub type Index = u64;

/// An epoch: a Raft term, or a Multi-Paxos ballot packed into a `u64`. Epochs only grow.
pub type Term = u64;

/// An opaque token that the application attaches to a linearizable read request and gets back
/// when the read may be served.
pub type ReadContext = u64;
