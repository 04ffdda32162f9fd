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
//! - `configs` holds exactly the chosen configuration entries in `(snapshot.index, commit]`.

use std::collections::BTreeMap;

use synod_core::{Entry, Index, Membership, Payload, SnapshotMeta, Term};

/// The slots of one member. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct SlotLog {
    snapshot: SnapshotMeta,
    entries: BTreeMap<Index, Entry>,
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
        let entries: BTreeMap<Index, Entry> = entries
            .into_iter()
            .filter(|e| e.index > snapshot.index)
            .map(|e| (e.index, e))
            .collect();
        let mut backed = snapshot.index;
        while backed < commit && entries.contains_key(&(backed + 1)) {
            backed += 1;
        }
        let mut log = SlotLog {
            commit: snapshot.index,
            applied: snapshot.index,
            top: snapshot.index,
            top_ballot: 0,
            snapshot,
            entries,
            configs: BTreeMap::new(),
        };
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
        self.entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.snapshot.index)
            .max(self.snapshot.index)
    }

    /// The entry at `index`, if this member holds one.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        self.entries.get(&index)
    }

    /// The entries at slots from `from` on, in slot order.
    pub fn entries_from(&self, from: Index) -> impl Iterator<Item = &Entry> {
        self.entries.range(from..).map(|(_, e)| e)
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
    /// an entry at or below the chosen prefix is ignored. Returns whether it was stored.
    pub fn store(&mut self, entry: Entry) -> bool {
        if entry.index <= self.commit {
            return false;
        }
        if entry.index <= self.top && entry.term != self.top_ballot {
            self.top = entry.index - 1;
        }
        self.entries.insert(entry.index, entry);
        true
    }

    /// The highest slot `s` such that every slot in `(commit, s]` holds an entry accepted in
    /// `ballot`.
    pub fn accepted_top(&mut self, ballot: Term) -> Index {
        if self.top_ballot != ballot {
            self.top_ballot = ballot;
            self.top = self.commit;
        }
        self.top = self.top.max(self.commit);
        while self
            .entries
            .get(&(self.top + 1))
            .is_some_and(|e| e.term == ballot)
        {
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
        for slot in self.commit + 1..=index {
            let entry = self
                .entries
                .get(&slot)
                .unwrap_or_else(|| panic!("committing slot {slot}, which this member lacks"));
            if let Payload::Membership(m) = &entry.payload {
                self.configs.insert(slot, m.clone());
                chosen.push((slot, m.clone()));
            }
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
        let from = self.applied + 1;
        self.applied = self.applied.max(index);
        self.entries
            .range(from..=index)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Installs a snapshot received from another member: every slot up to its index is chosen
    /// and already reflected in the state machine. Entries above it are kept: they are accepted
    /// values this acceptor must not forget.
    pub fn install_snapshot(&mut self, snapshot: SnapshotMeta) {
        assert!(snapshot.index > self.commit, "installing an old snapshot");
        self.entries = self.entries.split_off(&(snapshot.index + 1));
        self.configs.clear();
        self.commit = snapshot.index;
        self.applied = snapshot.index;
        self.top = snapshot.index;
        self.snapshot = snapshot;
    }

    /// The metadata of a snapshot taken at `index` (chosen, above the current snapshot).
    pub fn snapshot_meta(&self, index: Index) -> SnapshotMeta {
        let term = self
            .entries
            .get(&index)
            .map_or(self.snapshot.term, |e| e.term);
        SnapshotMeta {
            index,
            term,
            membership: self.membership_at(index).clone(),
        }
    }

    /// Discards every slot up to `index`, which the application holds in a durable snapshot.
    pub fn compact(&mut self, index: Index) {
        assert!(index <= self.applied && index > self.snapshot.index);
        self.snapshot = self.snapshot_meta(index);
        self.entries = self.entries.split_off(&(index + 1));
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
        if let Some((&first, _)) = self.entries.iter().next()
            && first <= snap
        {
            return Err(format!("entry {first} at or below the snapshot {snap}"));
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
            if self.commit > snap && !self.entries.contains_key(&slot) {
                return Err(format!("chosen slot {slot} holds no entry"));
            }
        }
        Ok(())
    }
}
