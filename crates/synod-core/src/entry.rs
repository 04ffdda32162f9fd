//! The replicated log entry.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::membership::Membership;
use crate::types::{Index, Term};

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The epoch in which the entry was proposed (Raft term or Paxos ballot).
    pub term: Term,
    /// The entry's position in the log.
    pub index: Index,
    /// What the entry carries.
    pub payload: Payload,
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by a new leader to commit the entries of earlier terms (Raft §5.4.2, §8), or to
    /// fill a gap in the log (Multi-Paxos). The state machine skips it.
    Noop,
    /// An application command, opaque to the engine.
    Command(Bytes),
    /// A new cluster configuration. It holds the whole configuration, not a delta, so that a
    /// member can always recover its configuration from the newest such entry in its log.
    Membership(Membership),
}

impl Entry {
    /// Bytes this entry accounts for in flow control and batching limits: the command length
    /// plus a fixed per-entry overhead for the header.
    pub fn size_bytes(&self) -> usize {
        const HEADER_BYTES: usize = 24;
        HEADER_BYTES
            + match &self.payload {
                Payload::Noop => 0,
                Payload::Command(data) => data.len(),
                Payload::Membership(m) => 8 * m.member_count(),
            }
    }
}
