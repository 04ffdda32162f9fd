//! A pure, deterministic Multi-Paxos engine, and single-decree Paxos as its building block.
//!
//! - [`single_decree`]: the Synod protocol of "Paxos Made Simple": proposers, acceptors and
//!   learners agreeing on one value.
//! - [`PaxosNode`]: Multi-Paxos, a replicated log of such instances with a stable leader that
//!   runs Phase 1 once for all slots, recovery of open slots by a new leader, gap filling,
//!   catch-up, snapshots, reconfiguration by stop-sign, linearizable reads and optional
//!   flexible quorums. See [`multipaxos`] for every rule the papers leave open.
//!
//! The engine does no I/O, reads no clock and draws randomness only from the RNG it is given.
//! It implements [`synod_core::Engine`], the interface the Raft engine implements, so the
//! simulator, the checkers and the server drive both the same way.
//!
//! # Driving a node
//!
//! ```
//! use bytes::Bytes;
//! use rand_core::SeedableRng;
//! use rand_xorshift::XorShiftRng;
//! use synod_core::{Membership, Role};
//! use synod_paxos::{Config, PaxosNode, RestoreState};
//!
//! // A one-member cluster wins Phase 1 on its own.
//! let state = RestoreState::bootstrap(Membership::with_voters([1]));
//! let rng = Box::new(XorShiftRng::seed_from_u64(7));
//! let mut node = PaxosNode::restore(Config::new(1), rng, state).unwrap();
//! let mut applied = Vec::new();
//! for _ in 0..100 {
//!     node.tick();
//!     if node.role() == Role::Leader && applied.is_empty() {
//!         node.propose(Bytes::from_static(b"set x=1")).unwrap();
//!     }
//!     while node.has_ready() {
//!         let mut ready = node.ready();
//!         // 1. Send `ready.messages` now (there are no peers here).
//!         // 2. Apply the committed entries.
//!         applied.extend(ready.committed.drain(..));
//!         // 3. Make the write durable, then hand it back; send what it releases.
//!         if let Some(write) = ready.write.take() {
//!             let _released = node.persisted(write);
//!         }
//!     }
//! }
//! assert_eq!(applied.len(), 1);
//! ```

#![warn(missing_docs)]

pub mod ballot;
pub mod config;
pub mod log;
pub mod message;
pub mod multipaxos;
pub mod mutant;
pub mod single_decree;

pub use config::{Config, ConfigError};
pub use message::Message;
pub use multipaxos::{HardState, PaxosNode, RestoreError, RestoreState};
pub use mutant::Mutant;
