//! A pure, deterministic Raft engine.
//!
//! [`RaftNode`] implements Raft as described by Ongaro & Ousterhout (2014) and Ongaro's thesis:
//! leader election with randomized timeouts, pre-vote and check-quorum; log replication with
//! fast backtracking, batching and pipelined flow control; ReadIndex and lease reads; leadership
//! transfer; single-server and joint-consensus membership changes with learners; and log
//! compaction with snapshots streamed by the application.
//!
//! The engine does no I/O. It reads no clock (time is [`RaftNode::tick`]), opens no socket or
//! file, and draws randomness only from the RNG it is given. It implements
//! [`synod_core::Engine`], the interface the Multi-Paxos engine shares.
//!
//! # Driving a node
//!
//! ```
//! use bytes::Bytes;
//! use rand_xorshift::XorShiftRng;
//! use rand_core::SeedableRng;
//! use synod_core::Membership;
//! use synod_raft::{Config, RaftNode, RestoreState};
//!
//! // A one-member cluster elects itself.
//! let state = RestoreState::bootstrap(Membership::with_voters([1]));
//! let rng = Box::new(XorShiftRng::seed_from_u64(7));
//! let mut node = RaftNode::restore(Config::new(1), rng, state).unwrap();
//! while node.role() != synod_core::Role::Leader {
//!     node.tick();
//! }
//! node.propose(Bytes::from_static(b"set x=1")).unwrap();
//!
//! let mut applied = Vec::new();
//! while node.has_ready() {
//!     let mut ready = node.ready();
//!     // 1. Send `ready.messages` now (there are no peers here).
//!     // 2. Apply the committed entries.
//!     applied.extend(ready.committed.drain(..));
//!     // 3. Make the write durable, then hand it back; send what it releases.
//!     if let Some(write) = ready.write.take() {
//!         let _released = node.persisted(write);
//!     }
//! }
//! // The no-op of the new term, then the command.
//! assert_eq!(applied.len(), 2);
//! ```

#![warn(missing_docs)]

pub mod cluster;
pub mod config;
pub mod log;
pub mod message;
pub mod mutant;
pub mod progress;
pub mod raft;
pub mod reads;

pub use config::{Config, ConfigError};
pub use message::{AppendResult, Message, MessageKind};
pub use mutant::Mutant;
pub use raft::{HardState, RaftNode, RestoreError, RestoreState};
