//! Snapshot metadata. The engines never hold a snapshot's bytes: the application writes, streams
//! and restores them, and the engine only tracks where a snapshot sits in the log.

use serde::{Deserialize, Serialize};

use crate::membership::Membership;
use crate::types::{Index, Term};

/// Describes a state-machine snapshot: the last log entry it covers, and the configuration in
/// effect at that entry.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The index of the last entry the snapshot covers.
    pub index: Index,
    /// The term (epoch) of that entry.
    pub term: Term,
    /// The cluster configuration as of that entry.
    pub membership: Membership,
}
