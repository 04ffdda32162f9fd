//! The in-memory Raft log: entries since the last snapshot, and the cursors that say how much of
//! it is committed, durable and handed out for applying.
//!
//! ```text
//!   snapshot.index   applied   committed         last
//!        |              |          |               |
//!   .....[--------------+----------+---------------]
//!                     stable <= written <= last
//! ```
//!
//! - `stable`: the highest index known to be durable locally (the application handed back the
//!   write that held it).
//! - `written`: the highest index handed to the application in a write, durable or not.
//! - `applied`: the highest index handed out for applying; always `<= min(committed, stable)`.
//!
//! The log also tracks its configuration entries: the configuration in effect is the newest
//! one in the log, committed or not (thesis §4.1), or the snapshot's if the log holds none.

use std::collections::VecDeque;

use synod_core::{Entry, Index, Membership, Payload, SnapshotMeta, Term};

/// Why entries could not be appended at a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The entries would overwrite a committed entry with a different one: the sender is broken
    /// or malicious, and the message is ignored.
    ConflictsWithCommitted {
        /// The committed index that would be overwritten.
        index: Index,
    },
}

/// The in-memory log. See the module documentation.
#[derive(Debug)]
pub struct RaftLog {
    snapshot: SnapshotMeta,
    entries: VecDeque<Entry>,
    committed: Index,
    applied: Index,
    stable: Index,
    written: Index,
    truncate_from: Option<Index>,
    snapshot_to_install: Option<SnapshotMeta>,
    /// Configuration entries in the log, oldest first.
    configs: VecDeque<(Index, Membership)>,
}

impl RaftLog {
    /// A log restored from durable state: a snapshot, the entries after it, the commit index
    /// and how much the state machine has applied. Everything given is durable.
    pub fn restore(
        snapshot: SnapshotMeta,
        entries: Vec<Entry>,
        committed: Index,
        applied: Index,
    ) -> RaftLog {
        let last = snapshot.index + entries.len() as Index;
        let configs = entries
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::Membership(m) => Some((e.index, m.clone())),
                _ => None,
            })
            .collect();
        let applied = applied.max(snapshot.index);
        RaftLog {
            committed: committed.max(snapshot.index),
            applied,
            stable: last,
            written: last,
            truncate_from: None,
            snapshot_to_install: None,
            entries: entries.into(),
            snapshot,
            configs,
        }
    }

    /// The snapshot at the start of the log.
    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// The index of the first entry held (one past the snapshot).
    pub fn first_index(&self) -> Index {
        self.snapshot.index + 1
    }

    /// The index of the last entry (the snapshot's if the log is empty).
    pub fn last_index(&self) -> Index {
        self.snapshot.index + self.entries.len() as Index
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot.term, |e| e.term)
    }

    /// The commit index.
    pub fn committed(&self) -> Index {
        self.committed
    }

    /// The highest index handed out for applying.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// The highest index known durable.
    pub fn stable(&self) -> Index {
        self.stable
    }

    /// The term of the entry at `index`, or `None` if it was compacted or does not exist yet.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index < self.first_index() || index > self.last_index() {
            return None;
        }
        let entry = &self.entries[(index - self.first_index()) as usize];
        debug_assert_eq!(entry.index, index, "log entries must be contiguous");
        Some(entry)
    }

    /// Whether the log holds an entry at `index` with `term`.
    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Raft §5.4.1: whether a log ending at (`last_index`, `last_term`) is at least as
    /// up-to-date as this one: a later last term wins, and with equal last terms the longer log.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// The configuration in effect: the newest in the log, else the snapshot's.
    pub fn membership(&self) -> &Membership {
        self.configs
            .back()
            .map_or(&self.snapshot.membership, |(_, m)| m)
    }

    /// The index of the newest configuration entry (the snapshot index if none is held).
    pub fn membership_index(&self) -> Index {
        self.configs
            .back()
            .map_or(self.snapshot.index, |(index, _)| *index)
    }

    /// The configuration in effect at `index` (which must be held or be the snapshot's).
    pub fn membership_at(&self, index: Index) -> &Membership {
        self.configs
            .iter()
            .rev()
            .find(|(at, _)| *at <= index)
            .map_or(&self.snapshot.membership, |(_, m)| m)
    }

    /// The first index of the run of entries with the term of the entry at `index`, going
    /// back no further than the first held entry. Used for the rejection hint.
    pub fn first_index_of_term_at(&self, index: Index) -> Index {
        let Some(term) = self.term(index) else {
            return index;
        };
        // Terms never decrease along the log, so the run starts where terms reach `term`.
        let offset = self.entries.partition_point(|e| e.term < term);
        (self.first_index() + offset as Index).min(index)
    }

    /// The last index holding an entry of `term`, if any entry has it.
    pub fn last_index_of_term(&self, term: Term) -> Option<Index> {
        let count = self.entries.partition_point(|e| e.term <= term);
        if count == 0 {
            return (self.snapshot.term == term && self.snapshot.index > 0)
                .then_some(self.snapshot.index);
        }
        let index = self.first_index() + count as Index - 1;
        (self.term(index) == Some(term)).then_some(index)
    }

    /// Entries from `from` onward, at most `max_entries` of them and at most `max_bytes` bytes
    /// (but at least one entry if any exists). Empty if `from` is beyond the log or compacted.
    pub fn entries_from(&self, from: Index, max_entries: usize, max_bytes: usize) -> Vec<Entry> {
        if from < self.first_index() || from > self.last_index() {
            return Vec::new();
        }
        let start = (from - self.first_index()) as usize;
        let mut bytes = 0;
        let mut out = Vec::with_capacity(max_entries.min(self.entries.len() - start));
        for entry in self.entries.range(start..).take(max_entries) {
            bytes += entry.size_bytes();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(entry.clone());
        }
        out
    }

    /// Appends entries at the end of the log (the leader's path: it never overwrites).
    pub fn append(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "leader appends must be contiguous"
        );
        assert!(
            entry.term >= self.last_term(),
            "terms never decrease along the log"
        );
        if let Payload::Membership(m) = &entry.payload {
            self.configs.push_back((entry.index, m.clone()));
        }
        self.entries.push_back(entry);
    }

    /// The follower's append (Raft §5.3): skips entries already held, truncates from the first
    /// conflicting entry and appends the rest. The caller has checked that the entries follow
    /// an entry the log holds, are contiguous, and have non-decreasing terms.
    pub fn append_after_match(&mut self, entries: &[Entry]) -> Result<(), AppendError> {
        // Entries below the snapshot cannot be checked; the one at the snapshot index can (its
        // term is the snapshot's), and must be, since an entry that disagrees with it would be
        // followed by entries from earlier terms than the log's.
        let conflict = entries
            .iter()
            .find(|e| self.term(e.index) != Some(e.term) && e.index >= self.snapshot.index);
        let Some(conflict) = conflict else {
            return Ok(());
        };
        let at = conflict.index;
        if at <= self.committed {
            return Err(AppendError::ConflictsWithCommitted { index: at });
        }
        if at <= self.last_index() {
            self.truncate_from(at);
        }
        let start = (at - entries[0].index) as usize;
        for entry in &entries[start..] {
            self.append(entry.clone());
        }
        Ok(())
    }

    /// Drops every entry at `index` and after. Only uncommitted entries may go.
    fn truncate_from(&mut self, index: Index) {
        assert!(
            index > self.committed,
            "truncating committed entry {index} (commit {})",
            self.committed
        );
        assert!(index > self.snapshot.index);
        self.entries.truncate((index - self.first_index()) as usize);
        while self.configs.back().is_some_and(|(at, _)| *at >= index) {
            self.configs.pop_back();
        }
        if index <= self.written {
            // Storage already holds (or is writing) entries from here: the next write must drop
            // them first.
            self.truncate_from = Some(self.truncate_from.map_or(index, |t| t.min(index)));
            self.written = index - 1;
        }
        self.stable = self.stable.min(index - 1);
    }

    /// Raises the commit index. Returns whether it moved.
    pub fn commit_to(&mut self, index: Index) -> bool {
        if index <= self.committed {
            return false;
        }
        assert!(
            index <= self.last_index(),
            "commit {index} beyond last index {}",
            self.last_index()
        );
        self.committed = index;
        true
    }

    /// Installs a snapshot received from the leader: the whole log is replaced.
    pub fn install_snapshot(&mut self, snapshot: SnapshotMeta) {
        assert!(
            snapshot.index > self.committed,
            "snapshot must be ahead of the commit index"
        );
        self.entries.clear();
        self.configs.clear();
        self.committed = snapshot.index;
        self.applied = snapshot.index;
        // Whatever storage holds is superseded; the pending truncation is subsumed by the
        // snapshot install, which discards the whole stored log.
        self.truncate_from = None;
        self.written = snapshot.index;
        self.stable = self.stable.min(snapshot.index);
        self.snapshot_to_install = Some(snapshot.clone());
        self.snapshot = snapshot;
    }

    /// Discards entries up to and including `index`, which the application has captured in a
    /// durable snapshot. The caller has checked `snapshot.index < index <= min(applied, stable)`.
    pub fn compact(&mut self, index: Index) {
        assert!(index > self.snapshot.index && index <= self.applied.min(self.stable));
        let meta = self.snapshot_meta_at(index);
        let drop = (index - self.snapshot.index) as usize;
        self.entries.drain(..drop);
        while self.configs.front().is_some_and(|(at, _)| *at <= index) {
            self.configs.pop_front();
        }
        self.snapshot = meta;
    }

    /// The snapshot metadata for `index` (which must be held).
    pub fn snapshot_meta_at(&self, index: Index) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term: self.term(index).expect("snapshot index must be held"),
            membership: self.membership_at(index).clone(),
        }
    }

    /// The lowest index truncated since the last write was handed out, if the truncation
    /// reached entries that a write already covers.
    pub fn pending_truncation(&self) -> Option<Index> {
        self.truncate_from
    }

    /// Whether the next write has anything to store.
    pub fn has_unwritten(&self) -> bool {
        self.written < self.last_index()
            || self.truncate_from.is_some()
            || self.snapshot_to_install.is_some()
    }

    /// Takes what the next write must store: a snapshot to install, a truncation point, and the
    /// entries not yet handed out.
    pub fn take_unwritten(&mut self) -> (Option<SnapshotMeta>, Option<Index>, Vec<Entry>) {
        let entries = self.entries_from(self.written + 1, usize::MAX, usize::MAX);
        self.written = self.last_index();
        (
            self.snapshot_to_install.take(),
            self.truncate_from.take(),
            entries,
        )
    }

    /// Records that storage holds entries up to (`index`, `term`) durably. Ignored if the log
    /// has since replaced that entry.
    pub fn stable_to(&mut self, index: Index, term: Term) {
        if index > self.stable && index <= self.written && self.matches(index, term) {
            self.stable = index;
        }
    }

    /// Records that an installed snapshot is durable.
    pub fn snapshot_stable(&mut self, index: Index) {
        if index == self.snapshot.index && index > self.stable {
            self.stable = index;
        }
    }

    /// Whether entries are waiting to be handed out for applying.
    pub fn has_next_committed(&self) -> bool {
        self.applied < self.committed.min(self.stable)
    }

    /// Hands out the committed, durable entries not yet applied.
    pub fn take_next_committed(&mut self) -> Vec<Entry> {
        let upto = self.committed.min(self.stable);
        if self.applied >= upto {
            return Vec::new();
        }
        let entries =
            self.entries_from(self.applied + 1, (upto - self.applied) as usize, usize::MAX);
        self.applied = upto;
        entries
    }

    /// Checks the log's own invariants. Panics with context on a violation.
    pub fn check_invariants(&self) {
        assert!(
            self.snapshot.index <= self.committed,
            "snapshot {} beyond commit {}",
            self.snapshot.index,
            self.committed
        );
        assert!(
            self.committed <= self.last_index(),
            "commit {} beyond last index {}",
            self.committed,
            self.last_index()
        );
        assert!(
            self.applied <= self.committed,
            "applied {} beyond commit {}",
            self.applied,
            self.committed
        );
        assert!(
            self.stable <= self.written && self.written <= self.last_index(),
            "stable {} <= written {} <= last {} violated",
            self.stable,
            self.written,
            self.last_index()
        );
        if let (Some(first), Some(last)) = (self.entries.front(), self.entries.back()) {
            assert_eq!(first.index, self.first_index(), "first entry misplaced");
            assert_eq!(last.index, self.last_index(), "last entry misplaced");
            assert!(
                first.term >= self.snapshot.term,
                "term below the snapshot's"
            );
        }
        if let Some((at, _)) = self.configs.back() {
            assert!(*at > self.snapshot.index && *at <= self.last_index());
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            index,
            term,
            payload: Payload::Command(Bytes::from_static(b"x")),
        }
    }

    fn log_with(terms: &[Term]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| entry(i as Index + 1, t))
            .collect();
        RaftLog::restore(SnapshotMeta::default(), entries, 0, 0)
    }

    #[test]
    fn section_5_4_1_up_to_date_compares_last_term_then_length() {
        let log = log_with(&[1, 1, 2]);
        assert!(log.is_up_to_date(3, 2));
        assert!(
            log.is_up_to_date(1, 3),
            "later last term wins even if shorter"
        );
        assert!(
            !log.is_up_to_date(2, 2),
            "same last term, shorter log loses"
        );
        assert!(
            !log.is_up_to_date(9, 1),
            "earlier last term loses even if longer"
        );
    }

    #[test]
    fn section_5_3_conflicting_suffix_is_truncated_and_written_again() {
        let mut log = log_with(&[1, 1, 2, 2]);
        log.append_after_match(&[entry(3, 3), entry(4, 3), entry(5, 3)])
            .unwrap();
        assert_eq!(log.last_index(), 5);
        assert_eq!(log.term(3), Some(3));
        let (_, truncate, entries) = log.take_unwritten();
        assert_eq!(truncate, Some(3));
        assert_eq!(entries.len(), 3);
        // A duplicate delivery changes nothing.
        log.append_after_match(&[entry(3, 3), entry(4, 3)]).unwrap();
        assert!(!log.has_unwritten());
    }

    #[test]
    fn committed_entries_are_never_truncated() {
        let mut log = log_with(&[1, 1, 2]);
        log.commit_to(2);
        assert_eq!(
            log.append_after_match(&[entry(2, 5)]),
            Err(AppendError::ConflictsWithCommitted { index: 2 })
        );
        assert_eq!(log.term(2), Some(1));
    }

    #[test]
    fn term_hints_use_runs_of_terms() {
        let log = log_with(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(log.first_index_of_term_at(5), 3);
        assert_eq!(log.last_index_of_term(2), Some(5));
        assert_eq!(log.last_index_of_term(3), None);
        assert_eq!(log.last_index_of_term(4), Some(6));
    }

    #[test]
    fn applied_entries_must_be_committed_and_durable() {
        let mut log = log_with(&[]);
        log.append(entry(1, 1));
        log.append(entry(2, 1));
        log.commit_to(2);
        assert!(!log.has_next_committed(), "not durable yet");
        let (_, _, written) = log.take_unwritten();
        log.stable_to(written.last().unwrap().index, 1);
        assert_eq!(log.take_next_committed().len(), 2);
        assert!(!log.has_next_committed());
    }

    #[test]
    fn compaction_keeps_the_term_and_configuration_at_the_snapshot() {
        let mut log = log_with(&[1, 2, 2]);
        log.commit_to(3);
        log.take_next_committed();
        log.compact(2);
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term(2), Some(2));
        assert_eq!(log.term(1), None);
        assert!(log.entries_from(1, 10, 100).is_empty());
        log.check_invariants();
    }

    #[test]
    #[should_panic(expected = "beyond last index")]
    fn invariant_commit_at_most_last_index() {
        let mut log = log_with(&[1, 1]);
        log.committed = 3;
        log.check_invariants();
    }
}
