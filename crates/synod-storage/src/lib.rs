//! Durable storage for one synod member.
//!
//! - [`fs`]: the file layer, a trait with the real file system behind it and, for tests, an
//!   in-memory one that injects faults (lost unsynced writes at a crash, torn writes, bit flips,
//!   failed fsyncs, a full disk).
//! - [`fault`]: `FaultFs`, the deterministic in-memory file system that injects those faults.
//! - [`wal`]: the write-ahead log: checksummed frames in segment files, group commit, recovery
//!   that cuts a torn tail and refuses damaged durable data.
//! - [`group`]: group commit, so that concurrent writers share each `fdatasync`.
//! - [`snapshot`]: the snapshot store: streamed, checksummed snapshot files installed atomically.
//! - [`member`]: recovering one member's durable state: which log entries above the newest
//!   snapshot it boots from, by the protocol's rule.
//! - [`codec`]: the binary encodings of entries, configurations and snapshot metadata.

#![warn(missing_docs)]

pub mod codec;
pub mod fault;
pub mod fs;
pub mod group;
pub mod member;
pub mod snapshot;
pub mod wal;
