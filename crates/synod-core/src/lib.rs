//! Types shared by synod's consensus engines.
//!
//! Both the Raft engine (`synod-raft`) and the Multi-Paxos engine (`synod-paxos`) order client
//! commands into a log and hand the application the same kind of output batch. This crate holds
//! what they share, one concept per module:
//!
//! - [`types`]: node ids, log indexes and epochs (a Raft term or a Paxos ballot).
//! - [`entry`]: the replicated log entry.
//! - [`membership`]: cluster configurations, single-server and joint changes.
//! - [`quorum`]: majority, joint and flexible quorum math, as pure functions.
//! - [`snapshot`]: the metadata of a state-machine snapshot.
//! - [`wire`]: the binary encoding of engine messages and log commands.
//! - [`engine`]: the [`Engine`](engine::Engine) trait and its output batch,
//!   [`Ready`](engine::Ready), whose durable part is a [`Write`](engine::Write) that must be
//!   handed back to the engine before the messages that wait on it can leave.
//!
//! Engines are pure: they do no I/O, read no clock and draw no randomness of their own.

#![warn(missing_docs)]

pub mod engine;
pub mod entry;
pub mod membership;
pub mod quorum;
pub mod snapshot;
pub mod types;
pub mod wire;

pub use engine::{
    CompactError, DurableState, Engine, Envelope, Proposal, ProposeError, ReadError, ReadState,
    Ready, Role, SoftState, Status, TransferError, WireMessage, Write,
};
pub use entry::{Entry, Payload};
pub use membership::{ConfChange, Membership, MembershipError};
pub use snapshot::SnapshotMeta;
pub use types::{Index, NodeId, ReadContext, Term};
pub use wire::WireError;
