//! The two data structures the search spends its time in: the set of operations resolved so far
//! (a bitset) and the memo of configurations already explored (Lowe 2017).
//!
//! Lowe's observation is that two search paths which have linearized the same *set* of operations
//! and reached the same model state have identical futures, so the second can be cut off. This memo
//! also cuts off a configuration *dominated* by one explored before: same state, same operations
//! resolved apart from those with an unknown outcome, and a superset of those (see the `search`
//! module for why that is sound). So entries are looked up by their other operations and state
//! only, and within a lookup, unknown operations are compared by inclusion.
//!
//! The memo is consulted once per search step, so it must neither allocate on a lookup nor rehash
//! the whole bitset: the bitset carries a Zobrist fingerprint of its other members (the XOR of
//! one random word per member, updated in O(1) on every insert and remove), and cached bitsets
//! live side by side in one flat arena.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A set of operation indices, with an incrementally maintained fingerprint of its members that
/// are not unknown operations.
#[derive(Clone, Debug)]
pub(crate) struct Bitset {
    words: Vec<u64>,
    /// Which indices are operations with an unknown outcome; they do not count in the fingerprint.
    unknown: Vec<u64>,
    /// Invariant: the XOR of `member_fingerprint(i)` over every member `i` not in `unknown`.
    fingerprint: u64,
}

impl Bitset {
    /// An empty set of the indices of `unknown` (`unknown[i]`: whether operation `i`'s outcome
    /// is unknown).
    pub(crate) fn new(unknown: &[bool]) -> Bitset {
        Bitset {
            words: vec![0; words_for(unknown.len())],
            unknown: to_words(unknown),
            fingerprint: 0,
        }
    }

    /// Adds `index`, which must not be a member.
    pub(crate) fn insert(&mut self, index: usize) {
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        debug_assert!(self.words[word] & bit == 0, "{index} is already a member");
        self.words[word] |= bit;
        if self.unknown[word] & bit == 0 {
            self.fingerprint ^= member_fingerprint(index);
        }
    }

    /// Removes `index`, which must be a member.
    pub(crate) fn remove(&mut self, index: usize) {
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        debug_assert!(self.words[word] & bit != 0, "{index} is not a member");
        self.words[word] &= !bit;
        if self.unknown[word] & bit == 0 {
            self.fingerprint ^= member_fingerprint(index);
        }
    }

    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// The number of 64-bit words a set of `capacity` members needs.
pub(crate) fn words_for(capacity: usize) -> usize {
    capacity.div_ceil(64)
}

fn to_words(flags: &[bool]) -> Vec<u64> {
    let mut words = vec![0; words_for(flags.len())];
    for (index, _) in flags.iter().enumerate().filter(|(_, flag)| **flag) {
        words[index / 64] |= 1 << (index % 64);
    }
    words
}

/// SplitMix64's finaliser: a bijection on `u64` whose outputs look independent and uniform, so
/// that XORs of them collide only by chance.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn member_fingerprint(index: usize) -> u64 {
    mix64(index as u64)
}

const NO_ENTRY: u32 = u32::MAX;

/// The explored configurations: (resolved operations, model state).
pub(crate) struct Cache<S> {
    words_per_set: usize,
    /// Which operations have an unknown outcome, as in [`Bitset`].
    unknown: Vec<u64>,
    /// From the hash of a configuration's other operations and state to the newest entry with
    /// that hash; older ones are chained through `next_entry`. Keys are already well mixed, so
    /// the map does not hash them again.
    newest_entry: HashMap<u64, u32, BuildHasherDefault<PrehashedHasher>>,
    /// Entry `e`'s bitset is `sets[e * words_per_set..][..words_per_set]`.
    sets: Vec<u64>,
    states: Vec<S>,
    /// Invariant: same length as `states`.
    next_entry: Vec<u32>,
}

impl<S: Eq + Hash + Clone> Cache<S> {
    /// An empty cache for sets of the operations of `unknown`, as in [`Bitset::new`].
    pub(crate) fn new(unknown: &[bool]) -> Cache<S> {
        Cache {
            words_per_set: words_for(unknown.len()),
            unknown: to_words(unknown),
            newest_entry: HashMap::default(),
            sets: Vec::new(),
            states: Vec::new(),
            next_entry: Vec::new(),
        }
    }

    /// Records the configuration (`set`, `state`) unless it, or one dominating it, is recorded
    /// already; returns whether it was recorded.
    pub(crate) fn insert(&mut self, set: &Bitset, state: &S) -> bool {
        debug_assert_eq!(set.words().len(), self.words_per_set);
        let mut hasher = FxHasher::default();
        state.hash(&mut hasher);
        let key = set.fingerprint() ^ hasher.finish();

        let new_entry = u32::try_from(self.states.len())
            .ok()
            .filter(|&entry| entry != NO_ENTRY)
            .expect("more than 2^32 cached configurations");
        let previous = match self.newest_entry.get_mut(&key) {
            None => {
                self.newest_entry.insert(key, new_entry);
                NO_ENTRY
            }
            Some(newest) => {
                let mut entry = *newest;
                while entry != NO_ENTRY {
                    let index = entry as usize;
                    let cached = &self.sets[index * self.words_per_set..][..self.words_per_set];
                    if self.states[index] == *state && dominates(cached, set.words(), &self.unknown)
                    {
                        return false;
                    }
                    entry = self.next_entry[index];
                }
                std::mem::replace(newest, new_entry)
            }
        };
        self.sets.extend_from_slice(set.words());
        self.states.push(state.clone());
        self.next_entry.push(previous);
        debug_assert_eq!(self.states.len(), self.next_entry.len());
        true
    }

    /// The number of configurations recorded.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }
}

/// Whether the set `cached` dominates the set `set`: the same members apart from unknown
/// operations, and a subset of its unknown ones. (Equal sets dominate each other: Lowe's memo.)
fn dominates(cached: &[u64], set: &[u64], unknown: &[u64]) -> bool {
    cached
        .iter()
        .zip(set)
        .zip(unknown)
        .all(|((&cached, &set), &unknown)| {
            let only_cached = cached & !set;
            let only_set_known = set & !cached & !unknown;
            only_cached == 0 && only_set_known == 0
        })
}

/// A hasher for keys that are already uniformly distributed `u64`s.
#[derive(Default)]
pub(crate) struct PrehashedHasher {
    hash: u64,
}

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.hash
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are used; anything else still hashes correctly, just more slowly.
        for &byte in bytes {
            self.hash = mix64(self.hash ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.hash = value;
    }
}

/// The multiply-rotate hash of Firefox and rustc (FxHash): a few cycles per word, good enough for
/// small model states, whose hash is then combined with the bitset's fingerprint.
#[derive(Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.hash
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8-byte chunk")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u16(&mut self, value: u16) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_leaves_out_unknown_operations() {
        let mut unknown = vec![false; 200];
        unknown[5] = true;
        let mut a = Bitset::new(&unknown);
        let mut b = Bitset::new(&unknown);
        for index in [3, 64, 130, 199] {
            a.insert(index);
        }
        for index in [199, 7, 130, 64, 3] {
            b.insert(index);
        }
        b.remove(7);
        assert_eq!(a.words(), b.words());
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.insert(5);
        assert_ne!(a.words(), b.words());
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.remove(5);
        b.remove(3);
        assert_ne!(a.fingerprint(), b.fingerprint());
        b.remove(64);
        b.remove(130);
        b.remove(199);
        assert_eq!(b.fingerprint(), 0);
        assert!(b.words().iter().all(|&word| word == 0));
    }

    #[test]
    fn cache_tells_configurations_apart_by_set_and_state() {
        let none_unknown = vec![false; 100];
        let mut cache = Cache::<Option<u64>>::new(&none_unknown);
        let mut set = Bitset::new(&none_unknown);
        assert!(cache.insert(&set, &None));
        assert!(!cache.insert(&set, &None));
        assert!(cache.insert(&set, &Some(0)));
        set.insert(99);
        assert!(cache.insert(&set, &None));
        assert!(!cache.insert(&set, &None));
        set.remove(99);
        assert!(!cache.insert(&set, &Some(0)));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn cache_skips_configurations_that_used_more_unknown_operations() {
        // 2 and 3 have an unknown outcome, 0 and 1 not.
        let unknown = [false, false, true, true];
        let mut cache = Cache::new(&unknown);
        let mut set = Bitset::new(&unknown);
        set.insert(0);
        set.insert(2);
        assert!(cache.insert(&set, &Some(1)));
        // More unknown operations used, the same others and state: dominated.
        set.insert(3);
        assert!(!cache.insert(&set, &Some(1)));
        // Another state, or other operations: not dominated.
        assert!(cache.insert(&set, &Some(2)));
        set.insert(1);
        assert!(cache.insert(&set, &Some(1)));
        // Fewer unknown operations than a recorded configuration: not dominated either.
        set.remove(1);
        set.remove(2);
        set.remove(3);
        assert!(cache.insert(&set, &Some(1)));
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn cache_survives_colliding_keys() {
        // Equal keys, different configurations: the chain must still compare exactly. With an
        // empty set the key is the state's hash alone, so collide two states by construction.
        #[derive(Clone, PartialEq, Eq)]
        struct SameHash(u8);
        impl Hash for SameHash {
            fn hash<H: Hasher>(&self, state: &mut H) {
                state.write_u64(42);
            }
        }
        let mut cache = Cache::new(&[false]);
        let set = Bitset::new(&[false]);
        assert!(cache.insert(&set, &SameHash(1)));
        assert!(cache.insert(&set, &SameHash(2)));
        assert!(!cache.insert(&set, &SameHash(1)));
        assert!(!cache.insert(&set, &SameHash(2)));
    }
}
