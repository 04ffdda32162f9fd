//! synod's state machine: a multi-version key-value store with etcd v3's semantics.
//!
//! - [`store`]: the store: revisions (starting at 1, one per write; a whole transaction is one),
//!   `create_revision`, `mod_revision` and `version`; ranges with etcd's `range_end`
//!   conventions, limits, sorting, counts, keys-only reads and reads at past revisions;
//!   `prev_kv`; transactions with compares; compaction.
//! - [`types`]: requests and responses shaped after `etcdserverpb`.
//! - [`error`]: errors with etcd's exact messages.
//! - [`command`]: the commands of the replicated state machine, as log-entry bytes, and
//!   [`MvccStore::apply`].
//! - [`snapshot`]: the store as bytes, for state-machine snapshots.
//! - `history` (private): how each key's versions are kept in memory.
//!
//! The store is deterministic and does no I/O: every replica applies the same committed
//! commands and reaches the same state.

#![warn(missing_docs)]

pub mod command;
pub mod error;
pub(crate) mod history;
pub mod snapshot;
pub mod store;
pub mod types;

pub use command::{Command, CommandEnvelope, Response};
pub use error::{GrpcCode, KvError};
pub use snapshot::{SnapshotCursor, SnapshotError};
pub use store::{MAX_TXN_DEPTH, MAX_TXN_OPS, MvccStore, REVISION_OVERHEAD_BYTES};
pub use types::*;
