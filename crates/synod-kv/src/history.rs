//! A key's history as the store keeps it: its versions, oldest first, in as little memory as
//! they fit.
//!
//! Most keys have a single version (a put that no later write has superseded, or whose older
//! versions compaction has forgotten), so a history holds one version inline and only a key
//! written again before a compaction gets a vector. A version stores its value as an
//! allocation of exactly the value's length and nothing else: the key is the map's (one copy
//! per key, not per version), its `mod_revision` is the revision of the version, and a
//! tombstone is marked by a `version` of 0, which no value has. A member holding a million
//! keys of 256 bytes spends about 0.4 KiB per key this way (see `examples/memory.rs`), where
//! the store's first representation (`Vec<Version>` of `Option<KeyValue>`, with `Bytes` for
//! keys and values) spent 0.9 KiB.
//!
//! Invariants (checked by [`MvccStore::check`](crate::MvccStore::check)):
//! - a history is never empty, and a [`History::Many`] holds at least two versions, so that
//!   every history has one representation;
//! - a tombstone has an empty value, and a create revision and a lease of 0.

use std::ops::{Deref, DerefMut};

use bytes::Bytes;

use crate::types::{KeyValue, Revision};

/// One version of a key: a value, or a tombstone for a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    /// The revision of the write that made this version (for a value, its `mod_revision`).
    pub(crate) revision: Revision,
    /// For a value, the revision of the put that created the key; 0 for a tombstone.
    pub(crate) create_revision: Revision,
    /// For a value, the puts since the key was created, at least 1. Invariant: 0 marks a
    /// tombstone.
    pub(crate) version: i64,
    /// For a value, its lease (0: none); 0 for a tombstone.
    pub(crate) lease: i64,
    /// The value, exactly its length; empty for a tombstone.
    pub(crate) value: Box<[u8]>,
}

impl Version {
    /// The tombstone of a deletion at `revision`.
    pub(crate) fn tombstone(revision: Revision) -> Version {
        Version {
            revision,
            create_revision: 0,
            version: 0,
            lease: 0,
            value: Box::default(),
        }
    }

    /// Whether this version is a value rather than a tombstone.
    pub(crate) fn is_value(&self) -> bool {
        self.version > 0
    }

    /// The value, or `None` for a tombstone.
    pub(crate) fn value(&self) -> Option<&[u8]> {
        self.is_value().then_some(&*self.value)
    }

    /// The value as etcd's `KeyValue` of `key`, its value left empty unless `with_value`.
    /// Copies the key and the value: the store keeps no shared buffers, so that a reply held
    /// by a slow client cannot keep a store's allocation alive, nor the store a reply's.
    pub(crate) fn to_key_value(&self, key: &[u8], with_value: bool) -> KeyValue {
        debug_assert!(self.is_value(), "a tombstone has no key-value pair");
        KeyValue {
            key: Bytes::copy_from_slice(key),
            create_revision: self.create_revision,
            mod_revision: self.revision,
            version: self.version,
            value: if with_value {
                Bytes::copy_from_slice(&self.value)
            } else {
                Bytes::new()
            },
            lease: self.lease,
        }
    }
}

/// A key's versions in increasing revision order. Dereferences to the slice of them.
#[derive(Clone, Debug)]
pub(crate) enum History {
    /// A single version, inline.
    One(Version),
    /// Invariant: at least two versions.
    Many(Vec<Version>),
}

impl History {
    /// Appends `version`, which must be newer than every version held.
    pub(crate) fn push(&mut self, version: Version) {
        debug_assert!(
            self.last()
                .is_none_or(|last| last.revision < version.revision)
        );
        match self {
            History::Many(versions) => versions.push(version),
            History::One(_) => {
                let History::One(first) = std::mem::replace(self, History::Many(Vec::new())) else {
                    unreachable!("matched One above")
                };
                *self = History::Many(vec![first, version]);
            }
        }
    }

    /// Forgets the `count` oldest versions. Returns whether any version is left; a history
    /// with none must be removed from the store.
    pub(crate) fn forget_oldest(&mut self, count: usize) -> bool {
        assert!(
            count <= self.len(),
            "forgetting more versions than a key has"
        );
        if count == 0 {
            return true;
        }
        match self {
            History::One(_) => false,
            History::Many(versions) if count == versions.len() => false,
            History::Many(versions) => {
                versions.drain(..count);
                if versions.len() == 1 {
                    let last = versions.pop().expect("one version left");
                    *self = History::One(last);
                } else {
                    versions.shrink_to_fit();
                }
                true
            }
        }
    }

    /// Whether the history has its one representation: see the [module documentation](self).
    pub(crate) fn is_canonical(&self) -> bool {
        match self {
            History::One(_) => true,
            History::Many(versions) => versions.len() >= 2,
        }
    }
}

impl Deref for History {
    type Target = [Version];

    fn deref(&self) -> &[Version] {
        match self {
            History::One(version) => std::slice::from_ref(version),
            History::Many(versions) => versions,
        }
    }
}

impl DerefMut for History {
    fn deref_mut(&mut self) -> &mut [Version] {
        match self {
            History::One(version) => std::slice::from_mut(version),
            History::Many(versions) => versions,
        }
    }
}

/// Two histories are equal when they hold the same versions, whatever their representation.
impl PartialEq for History {
    fn eq(&self, other: &History) -> bool {
        **self == **other
    }
}

impl Eq for History {}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(revision: Revision) -> Version {
        Version {
            revision,
            create_revision: 1,
            version: revision,
            lease: 0,
            value: Box::from(&b"v"[..]),
        }
    }

    #[test]
    fn one_version_is_inline_and_more_spill_to_a_vector() {
        let mut history = History::One(put(1));
        assert_eq!(history.len(), 1);
        history.push(put(2));
        history.push(Version::tombstone(3));
        assert!(matches!(history, History::Many(ref v) if v.len() == 3));
        assert_eq!(
            history.iter().map(|v| v.revision).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(history.forget_oldest(1));
        assert!(history.is_canonical() && history.len() == 2);
        assert!(history.forget_oldest(1));
        assert!(matches!(history, History::One(ref v) if v.revision == 3));
        assert!(history.forget_oldest(0));
        assert!(!history.forget_oldest(1));
    }

    #[test]
    fn a_tombstone_has_no_value() {
        let tombstone = Version::tombstone(5);
        assert!(!tombstone.is_value());
        assert_eq!(tombstone.value(), None);
        assert_eq!(put(2).value(), Some(&b"v"[..]));
        let kv = put(2).to_key_value(b"k", false);
        assert_eq!((kv.mod_revision, kv.value.len()), (2, 0));
    }

    /// What a key with one version costs in the map's nodes, besides its key and value
    /// allocations. A regression here costs about 1.7 bytes per byte, per key (a B-tree
    /// filled in key order keeps its leaves little more than half full).
    #[test]
    fn a_history_is_small() {
        assert!(size_of::<Version>() <= 48, "{}", size_of::<Version>());
        // The vector of `Many` fits beside the value's pointer, whose null is `Many`'s tag.
        assert!(size_of::<History>() <= 48, "{}", size_of::<History>());
    }
}
