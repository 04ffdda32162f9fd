//! The commands of the replicated state machine: what the server puts in log entries, and what
//! every member applies, in log order, to its own store.
//!
//! A command is proposed inside a [`CommandEnvelope`] naming the member that proposed it and
//! the request it answers, so that member can answer its client once the entry is applied.
//! The bytes are [`synod_core::wire`]'s format (postcard), the same as the engines' messages.
//!
//! Applying is deterministic: members that apply the same commands to the same store reach
//! the same store and the same responses, whatever their configuration. That is why the space
//! quota is not checked here but by the server before it proposes ([`MvccStore::check_quota`]):
//! members may be configured with different quotas.
//!
//! ```
//! use synod_kv::{Command, CommandEnvelope, MvccStore, PutRequest, Response};
//!
//! let envelope = CommandEnvelope {
//!     origin: 1,
//!     request_id: 7,
//!     command: Command::Put(PutRequest {
//!         key: "greeting".into(),
//!         value: "hello".into(),
//!         ..PutRequest::default()
//!     }),
//! };
//! let bytes = envelope.encode();
//!
//! // On every member, once the entry is committed:
//! let mut store = MvccStore::new();
//! let applied = CommandEnvelope::decode(&bytes).unwrap();
//! let Response::Put(put) = store.apply(&applied.command).unwrap() else { unreachable!() };
//! assert_eq!(put.revision, 2);
//! ```

use serde::{Deserialize, Serialize};
use synod_core::wire::{self, WireError};

use crate::error::KvError;
use crate::store::{MvccStore, validate_txn};
use crate::types::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RequestOp, Revision,
    TxnRequest, TxnResponse,
};

/// A command of the state machine: one of etcd's writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// etcd's `Put`.
    Put(PutRequest),
    /// etcd's `DeleteRange`.
    DeleteRange(DeleteRangeRequest),
    /// etcd's `Txn`. A read-only transaction may go through the log too, to be linearized.
    Txn(TxnRequest),
    /// etcd's `Compact`: forget the history before `revision`.
    Compact {
        /// The revision to compact to.
        revision: Revision,
        /// etcd answers a physical compaction only once the space is reclaimed. This store
        /// stops counting the space at once, and removes what it held then too, unless a
        /// snapshot is being written (see [`MvccStore::apply_deferring_removal`]): then only
        /// once the snapshot is on disk. Both kinds are answered at once.
        physical: bool,
    },
}

/// A command as proposed: who proposed it, for which of its requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    /// The member that proposed the command, and answers its client once it is applied.
    pub origin: u64,
    /// The proposing member's id for the request, unique among its requests in flight.
    pub request_id: u64,
    /// The command.
    pub command: Command,
}

/// What applying a [`Command`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// A put's.
    Put(PutResponse),
    /// A delete's.
    DeleteRange(DeleteRangeResponse),
    /// A transaction's.
    Txn(TxnResponse),
    /// A compaction's.
    Compact {
        /// The store's revision once compacted (compaction does not add one), for the
        /// response header.
        revision: Revision,
    },
}

impl Response {
    /// The store revision for the response header.
    pub fn revision(&self) -> Revision {
        match self {
            Response::Put(r) => r.revision,
            Response::DeleteRange(r) => r.revision,
            Response::Txn(r) => r.revision,
            Response::Compact { revision } => *revision,
        }
    }
}

impl CommandEnvelope {
    /// The envelope as the bytes of a log entry, in a vector of exactly their length.
    ///
    /// The encoder grows its buffer by doubling, so a put of a 256-byte value came out in 512
    /// bytes of capacity, and the leader's log held every entry at about twice its size until
    /// the next snapshot. The bytes are copied out rather than the buffer shrunk in place:
    /// mimalloc keeps a block shrunk by less than half at its size, and glibc's malloc leaves
    /// the cut-off tail as a hole between long-lived allocations (examples/memory.rs: 670
    /// MiB of resident memory for 376 MiB of heap, against 411 MiB with a copy).
    pub fn encode(&self) -> Vec<u8> {
        wire::encode(self).as_slice().to_vec()
    }

    /// An envelope from [`CommandEnvelope::encode`]'s bytes. Never panics: any bytes give an
    /// envelope or an error, and a length prefix cannot make it allocate much more than the
    /// bytes hold (see [`synod_core::wire`]). A decoded command may still be refused by
    /// [`MvccStore::apply`].
    pub fn decode(bytes: &[u8]) -> Result<CommandEnvelope, WireError> {
        wire::decode(bytes)
    }
}

impl Command {
    /// The checks etcd makes before it proposes a request (`checkPutRequest`,
    /// `checkDeleteRequest`, `checkTxnRequest` and `checkIntervals` in `v3rpc/key.go`): they
    /// need no state, so the server can refuse early. [`MvccStore::apply`] makes them again.
    pub fn validate(&self) -> Result<(), KvError> {
        match self {
            Command::Put(put) if put.key.is_empty() => Err(KvError::EmptyKey),
            Command::DeleteRange(delete) if delete.key.is_empty() => Err(KvError::EmptyKey),
            Command::Txn(txn) => validate_txn(txn),
            _ => Ok(()),
        }
    }

    /// What the command may add to [`MvccStore::size_bytes`], as etcd's quota charges it
    /// (`Cost` in etcd's `storage/quota.go`): [`MvccStore::version_size_bytes`] per put, and
    /// for a transaction the costlier branch. Deletes and compactions cost nothing.
    ///
    /// Unlike etcd, which only counts a transaction's direct puts, puts in nested
    /// transactions are counted too: they add data just the same.
    pub fn cost_bytes(&self) -> u64 {
        match self {
            Command::Put(put) => put_cost(put),
            Command::Txn(txn) => txn_cost(txn),
            Command::DeleteRange(_) | Command::Compact { .. } => 0,
        }
    }

    /// Whether the command may add data, and so is refused once the quota is reached.
    pub fn adds_data(&self) -> bool {
        self.cost_bytes() > 0
    }
}

fn put_cost(put: &PutRequest) -> u64 {
    MvccStore::version_size_bytes(&put.key, Some(&put.value))
}

fn txn_cost(txn: &TxnRequest) -> u64 {
    let branch = |ops: &[RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match op {
                RequestOp::Put(put) => put_cost(put),
                RequestOp::Txn(nested) => txn_cost(nested),
                RequestOp::Range(_) | RequestOp::DeleteRange(_) => 0,
            })
            .fold(0, u64::saturating_add)
    };
    branch(&txn.success).max(branch(&txn.failure))
}

impl MvccStore {
    /// Applies a committed command. A refused command changes nothing and answers etcd's
    /// error; either way every member that applies it answers the same.
    pub fn apply(&mut self, command: &Command) -> Result<Response, KvError> {
        self.apply_with(command, false)
    }

    /// [`MvccStore::apply`], except that a compaction leaves the history it forgets in place
    /// until [`MvccStore::remove_compacted`] (see [`MvccStore::compact_deferring_removal`]):
    /// for a store a snapshot is being written from. It answers exactly as `apply` would.
    pub fn apply_deferring_removal(&mut self, command: &Command) -> Result<Response, KvError> {
        self.apply_with(command, true)
    }

    fn apply_with(&mut self, command: &Command, defer_removal: bool) -> Result<Response, KvError> {
        let response = match command {
            Command::Put(put) => Response::Put(self.put(put)?),
            Command::DeleteRange(delete) => Response::DeleteRange(self.delete_range(delete)?),
            Command::Txn(txn) => Response::Txn(self.txn(txn)?),
            Command::Compact {
                revision,
                physical: _,
            } => {
                if defer_removal {
                    self.compact_deferring_removal(*revision)?;
                } else {
                    self.compact(*revision)?;
                }
                Response::Compact {
                    revision: self.revision(),
                }
            }
        };
        debug_assert!(response.revision() == self.revision());
        Ok(response)
    }

    /// etcd's space quota (`BackendQuota.Available`): a command that adds data is refused
    /// with [`KvError::NoSpace`] unless the store stays under `quota_bytes` after it; one that
    /// adds none (a delete, a compaction, a read-only transaction) always passes, so that
    /// space can be reclaimed (a compaction's counts at once, even while the history it
    /// forgets waits to be removed). The server checks this before proposing.
    pub fn check_quota(&self, command: &Command, quota_bytes: u64) -> Result<(), KvError> {
        let cost = command.cost_bytes();
        if cost == 0 || self.size_bytes().saturating_add(cost) < quota_bytes {
            Ok(())
        } else {
            Err(KvError::NoSpace)
        }
    }
}
