//! One member's slots: what its acceptor has accepted, which prefix it knows to be chosen, and
//! the configuration in which each slot is decided.
//!
//! Unlike a Raft log, the slots are independent Paxos instances: a member may hold slot 7 and
//! not slot 6, and the entries it holds above its chosen prefix may come from different ballots.
//! An entry's term is the ballot in which this member's acceptor accepted it.
//!
//! Invariants (checked by [`SlotLog::check`]):
//! - `snapshot.index <= applied <= commit`;
//! - every slot in `(snapshot.index, commit]` holds an entry: the chosen value;
//! - every key of `entries` is above `snapshot.index`;
//! - `configs` holds exactly the chosen configuration entries in `(snapshot.index, commit]`;
//! - the slots are stored densely from `snapshot.index + 1`; the last stored slot holds an
//!   entry, and no slot beyond `commit + MAX_SLOTS_AHEAD` is ever stored, so that a message
//!   naming an absurd slot cannot make a member allocate without bound.

use std::collections::{BTreeMap, VecDeque};

use synod_core::{Entry, Index, Membership, Payload, SnapshotMeta, Term};

/// How far beyond its chosen prefix a member stores accepted entries. A leader keeps at most
/// its in-flight window ahead of what a follower has acknowledged, far less than this; an
/// Accept beyond it is ignored, which an acceptor may always do.
pub const MAX_SLOTS_AHEAD: u64 = 1 << 20;

/// The slots of one member. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct SlotLog {
    snapshot: SnapshotMeta,
    /// Slot `snapshot.index + 1 + i` at position `i`; `None` where nothing was accepted.
    entries: VecDeque<Option<Entry>>,
    commit: Index,
    applied: Index,
    configs: BTreeMap<Index, Membership>,
    /// A cache for [`SlotLog::accepted_top`]: every slot in `(commit, top]` holds an entry
    /// accepted in ballot `top_ballot`. Invariant: `top >= commit`.
    top_ballot: Term,
    top: Index,
}

impl SlotLog {
    /// A log restored from durable state. `commit` is clamped to what the entries can back, and
    /// `applied` to `[snapshot, commit]`.
    pub fn restore(
        snapshot: SnapshotMeta,
        entries: Vec<Entry>,
        commit: Index,
        applied: Index,
    ) -> Self {
        let mut log = SlotLog {
            commit: snapshot.index,
            applied: snapshot.index,
            top: snapshot.index,
            top_ballot: 0,
            snapshot,
            entries: VecDeque::new(),
            configs: BTreeMap::new(),
        };
        // The chosen prefix the stored entries can back, and no more: a commit beyond the
        // entries (a damaged disk) must not make the look-ahead horizon, and so the
        // allocation, unbounded.
        let mut entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| e.index > log.snapshot.index)
            .collect();
        entries.sort_by_key(|e| e.index);
        let mut backed = log.snapshot.index;
        for entry in &entries {
            if entry.index == backed + 1 && backed < commit {
                backed += 1;
            } else if entry.index > backed + 1 {
                break;
            }
        }
        let horizon = backed.saturating_add(MAX_SLOTS_AHEAD);
        for entry in entries {
            if entry.index <= horizon {
                log.place(entry);
            }
        }
        log.commit_to(backed);
        log.applied = applied.clamp(log.snapshot.index, log.commit);
        log
    }

    /// The newest snapshot (compaction point).
    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// Every slot up to here is chosen.
    pub fn commit(&self) -> Index {
        self.commit
    }

    /// Every slot up to here has been handed out for applying.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// The highest slot holding an entry (or the snapshot index).
    pub fn last_index(&self) -> Index {
        self.snapshot.index + self.entries.len() as u64
    }

    fn position(&self, index: Index) -> Option<usize> {
        index
            .checked_sub(self.snapshot.index + 1)
            .and_then(|i| usize::try_from(i).ok())
    }

    /// The entry at `index`, if this member holds one.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        self.position(index)
            .and_then(|i| self.entries.get(i))
            .and_then(Option::as_ref)
    }

    /// The entries at slots from `from` on, in slot order.
    pub fn entries_from(&self, from: Index) -> impl Iterator<Item = &Entry> {
        let skip = from.saturating_sub(self.snapshot.index + 1);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        self.entries.iter().skip(skip).flatten()
    }

    /// The configuration that decides the slots after the chosen prefix.
    pub fn membership(&self) -> &Membership {
        self.configs
            .values()
            .next_back()
            .unwrap_or(&self.snapshot.membership)
    }

    /// The configuration in effect after slot `index` (which must not be below the snapshot).
    pub fn membership_at(&self, index: Index) -> &Membership {
        self.configs
            .range(..=index)
            .next_back()
            .map(|(_, m)| m)
            .unwrap_or(&self.snapshot.membership)
    }

    /// Stores an accepted entry, overwriting whatever the slot held. Chosen slots never change:
    /// an entry at or below the chosen prefix is ignored, and so is one more than
    /// [`MAX_SLOTS_AHEAD`] beyond it. Returns whether it was stored.
    pub fn store(&mut self, entry: Entry) -> bool {
        if entry.index <= self.commit || entry.index - self.commit > MAX_SLOTS_AHEAD {
            return false;
        }
        if entry.index <= self.top && entry.term != self.top_ballot {
            self.top = entry.index - 1;
        }
        self.place(entry);
        true
    }

    fn place(&mut self, entry: Entry) {
        let position = self.position(entry.index).expect("above the snapshot");
        if position >= self.entries.len() {
            self.entries.resize(position + 1, None);
        }
        self.entries[position] = Some(entry);
    }

    /// The highest slot `s` such that every slot in `(commit, s]` holds an entry accepted in
    /// `ballot`.
    pub fn accepted_top(&mut self, ballot: Term) -> Index {
        if self.top_ballot != ballot {
            self.top_ballot = ballot;
            self.top = self.commit;
        }
        self.top = self.top.max(self.commit);
        while self.entry(self.top + 1).is_some_and(|e| e.term == ballot) {
            self.top += 1;
        }
        self.top
    }

    /// Marks every slot up to `index` chosen and returns the configuration entries that became
    /// chosen, in slot order.
    ///
    /// # Panics
    /// If a slot in the new prefix holds no entry: the caller must only commit what it holds.
    pub fn commit_to(&mut self, index: Index) -> Vec<(Index, Membership)> {
        let mut chosen = Vec::new();
        if index > self.commit {
            let from = self.position(self.commit + 1).expect("above the snapshot");
            let count = (index - self.commit) as usize;
            for (offset, entry) in self.entries.range(from..).take(count).enumerate() {
                let slot = self.commit + 1 + offset as u64;
                let entry = entry
                    .as_ref()
                    .unwrap_or_else(|| panic!("committing slot {slot}, which this member lacks"));
                if let Payload::Membership(m) = &entry.payload {
                    self.configs.insert(slot, m.clone());
                    chosen.push((slot, m.clone()));
                }
            }
            assert!(
                self.last_index() >= index,
                "committing up to {index}, beyond the last slot held"
            );
        }
        self.commit = self.commit.max(index);
        self.top = self.top.max(self.commit);
        chosen
    }

    /// Records that every slot up to `index` has been handed out for applying, and returns those
    /// entries.
    pub fn hand_out(&mut self, index: Index) -> Vec<Entry> {
        assert!(
            index <= self.commit,
            "handing out {index} beyond the commit {}",
            self.commit
        );
        if index <= self.applied {
            return Vec::new();
        }
        let from = self.position(self.applied + 1).expect("above the snapshot");
        let count = (index - self.applied) as usize;
        self.applied = index;
        self.entries
            .range(from..)
            .take(count)
            .map(|e| e.clone().expect("chosen slots hold entries"))
            .collect()
    }

    /// Installs a snapshot received from another member: every slot up to its index is chosen
    /// and already reflected in the state machine. Entries above it are kept: they are accepted
    /// values this acceptor must not forget.
    pub fn install_snapshot(&mut self, snapshot: SnapshotMeta) {
        assert!(snapshot.index > self.commit, "installing an old snapshot");
        let drop = (snapshot.index - self.snapshot.index).min(self.entries.len() as u64);
        self.entries.drain(..drop as usize);
        self.configs.clear();
        self.commit = snapshot.index;
        self.applied = snapshot.index;
        self.top = snapshot.index;
        self.snapshot = snapshot;
        self.trim();
    }

    /// Drops empty slots at the end, so that the last stored slot holds an entry.
    fn trim(&mut self) {
        while matches!(self.entries.back(), Some(None)) {
            self.entries.pop_back();
        }
    }

    /// The metadata of a snapshot taken at `index` (chosen, above the current snapshot).
    pub fn snapshot_meta(&self, index: Index) -> SnapshotMeta {
        let term = self.entry(index).map_or(self.snapshot.term, |e| e.term);
        SnapshotMeta {
            index,
            term,
            membership: self.membership_at(index).clone(),
        }
    }

    /// Discards every slot up to `index`, which the application holds in a durable snapshot.
    pub fn compact(&mut self, index: Index) {
        assert!(index <= self.applied && index > self.snapshot.index);
        let drop = (index - self.snapshot.index) as usize;
        self.snapshot = self.snapshot_meta(index);
        self.entries.drain(..drop);
        self.configs = self.configs.split_off(&(index + 1));
    }

    /// Checks the invariants listed in the [module documentation](self).
    pub fn check(&self) -> Result<(), String> {
        let snap = self.snapshot.index;
        if !(snap <= self.applied && self.applied <= self.commit) {
            return Err(format!(
                "snapshot {snap} <= applied {} <= commit {} violated",
                self.applied, self.commit
            ));
        }
        if self.top < self.commit {
            return Err(format!("top {} below commit {}", self.top, self.commit));
        }
        if matches!(self.entries.back(), Some(None)) {
            return Err("the last stored slot is empty".into());
        }
        if let Some(Some(first)) = self.entries.front()
            && first.index != snap + 1
        {
            return Err(format!("slot {} stored at {}", first.index, snap + 1));
        }
        if let Some(&slot) = self.configs.keys().next()
            && (slot <= snap || slot > self.commit)
        {
            return Err(format!(
                "configuration at slot {slot} outside the chosen span"
            ));
        }
        // Checking every chosen slot would make each call linear in the log; the ends of the
        // chosen span are where a bug shows first.
        for slot in [snap + 1, self.commit] {
            if self.commit > snap && self.entry(slot).is_none_or(|e| e.index != slot) {
                return Err(format!("chosen slot {slot} holds no entry"));
            }
        }
        Ok(())
    }
}
