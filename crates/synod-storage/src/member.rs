//! Recovering one member's durable state from its write-ahead log and its snapshot store: the
//! entries it boots from, given the newest snapshot.
//!
//! A member stores a snapshot it receives from the leader in the [`crate::snapshot`] store
//! first (temporary file, fsync, rename, directory fsync) and only then appends a log batch
//! that drops every entry (`truncate_from: Some(0)`). A crash between the two leaves the new
//! snapshot next to the old log, whose entries above the snapshot may belong to a history the
//! snapshot does not continue. Which of them a member may keep depends on the protocol, given
//! as a [`LogPolicy`].
//!
//! # Recovery rule
//!
//! `S` is the newest valid snapshot, the log's entries are what [`crate::wal::Wal::open`]
//! recovered. Every warning names how many entries it dropped and why.
//!
//! | the log holds | [`LogPolicy::LogMatching`] (Raft) | [`LogPolicy::IndependentSlots`] (Multi-Paxos) |
//! |---|---|---|
//! | entries at or below `S.index` | dropped silently: the snapshot covers them (compaction removes whole segments, so they are normal) | dropped silently, likewise |
//! | an entry at `S.index` whose term is not `S.term` | drops every entry above `S.index`, with a warning: they come from a history that diverged from the snapshot's at or before `S.index` | keeps every entry above `S.index` |
//! | entries from `S.index + 1` on, without a gap, terms never decreasing and at least `S.term` (and, if there is one, the entry at `S.index` has `S.term`) | keeps them: Raft §7, InstallSnapshot: "If existing log entry has same index and term as snapshot's last included entry, retain log entries following it" | keeps them |
//! | after such a run: a gap, or an entry whose term is below its predecessor's or below `S.term` | keeps the run, drops the entry and everything after it, with a warning | keeps every entry, gaps allowed: an acceptor must never forget a value it accepted (Paxos P2c), and each slot is decided on its own |
//! | no entry above `S.index` | nothing to keep | nothing to keep |
//!
//! Dropping under `LogMatching` is safe because nothing dropped can be committed, so the leader
//! re-sends what the member needs:
//!
//! - A committed entry at `S.index` has `S.term` (the snapshot holds only committed entries,
//!   and Leader Completeness, §5.4, gives every later leader that entry). An entry above
//!   `S.index` in a log whose entry at `S.index` has another term can therefore not be
//!   committed: by Log Matching (§5.3), a log holding a committed entry matches the leader's
//!   log, and so `S.term`, at every index below it.
//! - An entry above `S.index` with a term below `S.term` cannot be committed either: the log of
//!   the leader of `S.term` would hold it, and a Raft log's terms never decrease, so its entry
//!   at `S.index` would have a term below `S.term`.
//! - A Raft log has no gaps; one can only come from damage the log's checksums did not see, and
//!   the entries after it cannot be placed.
//!
//! What `LogMatching` keeps is what a Raft member can boot from: contiguous from
//! `S.index + 1`, terms never decreasing from `S.term`.
//!
//! The hard state is returned as the log holds it. After a crash in the window above it
//! predates the snapshot (the new hard state was in the batch that never made it), so its
//! commit index may lie below `S.index`: the engine boots with the larger of the two.

use std::collections::BTreeMap;

use synod_core::{Entry, Index, SnapshotMeta};

use crate::wal::Recovered;

/// How the entries of a member's log relate to each other, which decides what recovery may keep
/// above the snapshot (see the [module documentation](self#recovery-rule)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogPolicy {
    /// Raft's Log Matching property (§5.3): two logs with an entry of the same index and term
    /// are identical up to it. Recovery keeps only a contiguous run above the snapshot that
    /// continues it.
    LogMatching,
    /// Multi-Paxos: each slot is decided on its own, and an entry's term is the ballot in which
    /// this member accepted it. Recovery keeps every entry above the snapshot.
    IndependentSlots,
}

impl LogPolicy {
    /// The policy of an engine, from its `synod_core::Engine::LOG_MATCHING`.
    pub fn from_log_matching(log_matching: bool) -> LogPolicy {
        if log_matching {
            LogPolicy::LogMatching
        } else {
            LogPolicy::IndependentSlots
        }
    }
}

/// What a member boots from, besides its snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootState {
    /// The newest hard state the log holds, encoded by the engine, if any was ever written.
    pub hard_state: Option<Vec<u8>>,
    /// The entries above the snapshot to boot with, by index.
    /// Invariant: every key is above the snapshot's index, and each entry sits at its own index.
    pub entries: BTreeMap<Index, Entry>,
    /// The log's recovery warnings, then one for each group of entries dropped here.
    pub warnings: Vec<String>,
}

/// Applies the [recovery rule](self#recovery-rule): the hard state and the entries to boot from,
/// given what the log recovered and the newest snapshot's metadata.
pub fn recover(recovered: Recovered, snapshot: &SnapshotMeta, policy: LogPolicy) -> BootState {
    let Recovered {
        hard_state,
        mut entries,
        mut warnings,
    } = recovered;
    let divergent_at_snapshot = entries
        .get(&snapshot.index)
        .filter(|entry| entry.term != snapshot.term)
        .map(|entry| entry.term);
    // The entries at or below the snapshot's index stay in `entries`, dropped.
    let mut above = match snapshot.index.checked_add(1) {
        Some(first) => entries.split_off(&first),
        None => BTreeMap::new(),
    };
    if policy == LogPolicy::LogMatching {
        if let Some(term) = divergent_at_snapshot {
            if !above.is_empty() {
                warnings.push(format!(
                    "dropped {} log entries above the snapshot at index {}: the log's entry \
                     there has term {term}, the snapshot's term {}, so they come from a \
                     divergent history (Raft §5.3, §7)",
                    above.len(),
                    snapshot.index,
                    snapshot.term
                ));
            }
            above.clear();
        } else if let Some(warning) = keep_continuing_run(&mut above, snapshot) {
            warnings.push(warning);
        }
    }
    debug_assert!(
        above
            .iter()
            .all(|(&index, entry)| index > snapshot.index && entry.index == index),
        "boot entries lie above the snapshot at {}, each at its own index",
        snapshot.index
    );
    BootState {
        hard_state,
        entries: above,
        warnings,
    }
}

/// Cuts `above` (the entries above `snapshot`) to the run that continues the snapshot: starting
/// at `snapshot.index + 1`, without a gap, terms never decreasing from `snapshot.term`. Returns a
/// warning if it dropped anything.
fn keep_continuing_run(
    above: &mut BTreeMap<Index, Entry>,
    snapshot: &SnapshotMeta,
) -> Option<String> {
    let mut expected = snapshot.index.saturating_add(1);
    let mut previous_term = snapshot.term;
    let mut break_at = None;
    for (&index, entry) in above.iter() {
        let reason = if index != expected {
            Some(format!("a gap: index {expected} is missing"))
        } else if entry.term < previous_term {
            let preceding = if index == snapshot.index.saturating_add(1) {
                "the snapshot's"
            } else {
                "the preceding entry's"
            };
            Some(format!(
                "entry {index} has term {}, below {preceding} term {previous_term}",
                entry.term
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            break_at = Some((index, reason));
            break;
        }
        expected = index.saturating_add(1);
        previous_term = entry.term;
    }
    let (index, reason) = break_at?;
    let dropped = above.split_off(&index);
    Some(format!(
        "dropped {} log entries from index {index} on, above the snapshot at index {} (term \
         {}): {reason}; only a contiguous run with non-decreasing terms continues the snapshot \
         (Raft §5.3)",
        dropped.len(),
        snapshot.index,
        snapshot.term
    ))
}
