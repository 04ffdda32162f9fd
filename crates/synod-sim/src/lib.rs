//! Deterministic simulation and checkers for synod.
//!
//! The checkers that a simulation's client histories are judged by:
//!
//! - [`history`]: what clients asked, when, and what they were told ([`history::History`]).
//! - [`linearizability`]: whether a history could have come from a single sequential copy of
//!   the object ([`linearizability::check`]), against a [`linearizability::Model`] such as the
//!   key-value [`linearizability::KvModel`], and a small failing piece when not.
//! - [`jepsen`]: reads histories recorded by Jepsen, so the checker can be held to the verdicts
//!   of other checkers on real systems.
//!
//! The `synod-sim` binary wraps them: `synod-sim check-history --format jepsen FILE`.
//!
//! # Checking a recorded history
//!
//! ```
//! use synod_sim::{jepsen, linearizability};
//! use synod_sim::linearizability::KvModel;
//!
//! // Process 1's write of 3 completes, then process 2 reads the register still empty.
//! let log = "\
//!     INFO  jepsen.util - 1  :invoke  :write  3
//!     INFO  jepsen.util - 1  :ok      :write  3
//!     INFO  jepsen.util - 2  :invoke  :read   nil
//!     INFO  jepsen.util - 2  :ok      :read   nil
//! ";
//! let history = jepsen::parse_register_history(log)?;
//! let verdict = linearizability::check(&KvModel, &history);
//! let violation = verdict.violation().expect("a stale read");
//! // Both operations are needed to show it; times are line numbers.
//! assert_eq!(violation.operations.len(), 2);
//! assert_eq!(violation.operations[1].call, 3);
//! # Ok::<(), jepsen::ParseError>(())
//! ```

#![warn(missing_docs)]

pub mod history;
pub mod jepsen;
pub mod linearizability;
pub mod sim;
