//! The store against a naive reference that keeps a full copy of the key space at every
//! revision: random puts, deletes, transactions and compactions (some leaving the history
//! they forget in place for a while, as while a snapshot is written), then reads at every
//! revision.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use synod_kv::*;

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8),
    Delete(u8, u8),
    Compact(u8),
    /// A compaction whose history is removed later (`compact_deferring_removal`).
    CompactLater(u8),
    /// `remove_compacted`.
    RemoveCompacted,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..8, 0u8..4).prop_map(|(k, n)| Op::Delete(k, n)),
        1 => any::<u8>().prop_map(Op::Compact),
        1 => any::<u8>().prop_map(Op::CompactLater),
        1 => Just(Op::RemoveCompacted),
    ]
}

fn key(k: u8) -> Bytes {
    Bytes::from(vec![b'k', b'0' + k])
}

type Space = BTreeMap<Bytes, KeyValue>;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn matches_a_copy_per_revision(ops in proptest::collection::vec(op(), 1..60)) {
        let mut store = MvccStore::new();
        // history[r] is the key space at revision r (index 0 unused).
        let mut history: Vec<Space> = vec![Space::new(), Space::new()];
        let mut compacted = 0;
        for op in ops {
            let mut next = history.last().unwrap().clone();
            let revision = history.len() as i64;
            match op {
                Op::Put(k, v) => {
                    let previous = next.get(&key(k)).cloned();
                    let kv = KeyValue {
                        key: key(k),
                        create_revision: previous.as_ref().map_or(revision, |p| p.create_revision),
                        mod_revision: revision,
                        version: previous.as_ref().map_or(1, |p| p.version + 1),
                        value: Bytes::from(vec![v]),
                        lease: 0,
                    };
                    next.insert(key(k), kv);
                    let response = store.put(&PutRequest {
                        key: key(k),
                        value: Bytes::from(vec![v]),
                        prev_kv: true,
                        ..PutRequest::default()
                    }).unwrap();
                    prop_assert_eq!(response.prev_kv, previous);
                    history.push(next);
                }
                Op::Delete(k, n) => {
                    let end = Bytes::from(vec![b'k', b'0' + k + n]);
                    let range_end = if n == 0 { Bytes::new() } else { end.clone() };
                    let doomed: Vec<Bytes> = next
                        .keys()
                        .filter(|x| if n == 0 { **x == key(k) } else { **x >= key(k) && **x < end })
                        .cloned()
                        .collect();
                    for d in &doomed {
                        next.remove(d);
                    }
                    let response = store.delete_range(&DeleteRangeRequest {
                        key: key(k),
                        range_end,
                        prev_kv: false,
                    }).unwrap();
                    prop_assert_eq!(response.deleted as usize, doomed.len());
                    if !doomed.is_empty() {
                        history.push(next);
                    }
                }
                Op::Compact(at) | Op::CompactLater(at) => {
                    let current = history.len() as i64 - 1;
                    let at = 1 + i64::from(at) % current;
                    let result = if matches!(op, Op::Compact(_)) {
                        store.compact(at)
                    } else {
                        store.compact_deferring_removal(at)
                    };
                    if at <= compacted {
                        prop_assert_eq!(result, Err(KvError::Compacted));
                    } else {
                        prop_assert_eq!(result, Ok(()));
                        compacted = at;
                    }
                }
                Op::RemoveCompacted => store.remove_compacted(),
            }
            prop_assert!(store.check().is_ok(), "{:?}", store.check());
            prop_assert_eq!(store.compacted_revision(), compacted);
            // A snapshot restores the same store, with any history left in place removed.
            let mut removed = store.clone();
            removed.remove_compacted();
            prop_assert!(!removed.removal_pending());
            prop_assert!(removed.check().is_ok(), "{:?}", removed.check());
            prop_assert!(removed.size_bytes() <= store.size_bytes());
            prop_assert_eq!(&MvccStore::restore(&store.snapshot()).unwrap(), &removed);
            prop_assert_eq!(store.revision(), history.len() as i64 - 1);
        }
        let mut removed = store.clone();
        removed.remove_compacted();
        for revision in 1..history.len() as i64 {
            // Whether or not the compacted history is still there, reads answer alike.
            for store in [&store, &removed] {
                let read = store.range(&RangeRequest {
                    key: Bytes::from_static(b"\0"),
                    range_end: Bytes::from_static(b"\0"),
                    revision,
                    ..RangeRequest::default()
                });
                if revision < compacted {
                    prop_assert_eq!(read, Err(KvError::Compacted));
                } else {
                    let expected: Vec<KeyValue> =
                        history[revision as usize].values().cloned().collect();
                    prop_assert_eq!(read.unwrap().kvs, expected);
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn damaged_snapshots_are_refused_never_panic(
        ops in proptest::collection::vec(op(), 1..20),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut store = MvccStore::new();
        for op in ops {
            if let Op::Put(k, v) = op {
                store.put(&PutRequest { key: key(k), value: Bytes::from(vec![v]), ..PutRequest::default() }).unwrap();
            }
        }
        let bytes = store.snapshot();
        let truncated = &bytes[..cut.index(bytes.len())];
        prop_assert!(MvccStore::restore(truncated).is_err());
        let mut flipped = bytes.clone();
        let at = flip.index(flipped.len());
        flipped[at] ^= 0x40;
        // A flipped bit either is refused or restores some valid store; it never panics.
        if let Ok(restored) = MvccStore::restore(&flipped) {
            prop_assert!(restored.check().is_ok());
        }
    }
}

/// Applies `op` to `store` as a client would, ignoring its outcome (a compaction may be
/// refused).
fn apply(store: &mut MvccStore, op: &Op) {
    match *op {
        Op::Put(k, v) => {
            let put = PutRequest {
                key: key(k),
                value: Bytes::from(vec![v; 1 + usize::from(v % 64)]),
                ..PutRequest::default()
            };
            store.put(&put).unwrap();
        }
        Op::Delete(k, n) => {
            let range_end = if n == 0 {
                Bytes::new()
            } else {
                Bytes::from(vec![b'k', b'0' + k + n])
            };
            let delete = DeleteRangeRequest {
                key: key(k),
                range_end,
                prev_kv: false,
            };
            store.delete_range(&delete).unwrap();
        }
        Op::Compact(at) => {
            let at = 1 + i64::from(at) % store.revision().max(1);
            let _ = store.compact(at);
        }
        Op::CompactLater(at) => {
            let at = 1 + i64::from(at) % store.revision().max(1);
            let _ = store.compact_deferring_removal(at);
        }
        Op::RemoveCompacted => store.remove_compacted(),
    }
}

/// The writes the node applies between a snapshot's chunks: compactions among them leave
/// the history they forget in place.
fn write() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..12, 0u8..4).prop_map(|(k, n)| Op::Delete(k, n)),
        1 => any::<u8>().prop_map(Op::CompactLater),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The node writes a snapshot a chunk at a time under the store's read lock and applies
    /// writes in between, compactions included (their history is removed once the snapshot
    /// is written): the snapshot must still be the store as it was when it began.
    #[test]
    fn a_snapshot_written_in_chunks_between_writes_is_the_store_at_its_start(
        before in proptest::collection::vec(op(), 0..40),
        between in proptest::collection::vec(
            (proptest::collection::vec(write(), 0..6), 1usize..200),
            1..40,
        ),
    ) {
        let mut store = MvccStore::new();
        for op in &before {
            apply(&mut store, op);
        }
        // As the node does once a snapshot is written, so before the next one begins.
        store.remove_compacted();
        let at_start = store.clone();
        let mut cursor = store.begin_snapshot(42);
        prop_assert_eq!(cursor.revision(), store.revision());
        let mut bytes = Vec::new();
        let mut chunks = between.iter().cycle();
        let mut done = false;
        // Each chunk writes at least one key, so as many chunks as keys (and one for the
        // header alone, if there are none) finish it.
        for _ in 0..=at_start.snapshot().len() {
            let (writes, max_bytes) = chunks.next().unwrap();
            for op in writes {
                apply(&mut store, op);
            }
            if store.write_snapshot_chunk(&mut cursor, &mut bytes, *max_bytes).unwrap() {
                done = true;
                break;
            }
        }
        prop_assert!(done, "the snapshot never finished");
        prop_assert_eq!(&bytes, &at_start.snapshot_with_applied_index(42));
        let (restored, applied) = MvccStore::restore_with_applied_index(&bytes).unwrap();
        prop_assert_eq!(applied, 42);
        prop_assert_eq!(&restored, &at_start);
        // A finished cursor writes nothing more.
        prop_assert!(store.write_snapshot_chunk(&mut cursor, &mut bytes, 1).unwrap());
        prop_assert_eq!(&bytes, &at_start.snapshot_with_applied_index(42));
        // What the writes made of the store is whole once the history is removed.
        store.remove_compacted();
        prop_assert!(store.check().is_ok(), "{:?}", store.check());
    }
}

#[test]
fn a_snapshot_begun_while_compacted_history_waits_to_be_removed_is_refused() {
    let mut store = MvccStore::new();
    for (k, v) in [(0, 1), (0, 2), (1, 3)] {
        apply(&mut store, &Op::Put(k, v));
    }
    store.compact_deferring_removal(store.revision()).unwrap();
    let mut cursor = store.begin_snapshot(7);
    let error = store
        .write_snapshot_chunk(&mut cursor, &mut Vec::new(), usize::MAX)
        .unwrap_err();
    assert!(
        error.to_string().contains("waited to be removed"),
        "{error}"
    );
    // A snapshot in one go removes it from a copy: the bytes are the store's with it removed.
    let whole = store.snapshot_with_applied_index(7);
    store.remove_compacted();
    assert_eq!(whole, store.snapshot_with_applied_index(7));
    let mut cursor = store.begin_snapshot(7);
    let mut bytes = Vec::new();
    assert!(
        store
            .write_snapshot_chunk(&mut cursor, &mut bytes, usize::MAX)
            .unwrap()
    );
    assert_eq!(bytes, whole);
}

/// The node never does this (it removes compacted history only once a snapshot is written),
/// but a chunk must notice if the history it still needs went.
#[test]
fn removing_compacted_history_between_a_snapshots_chunks_stops_it() {
    let mut store = MvccStore::new();
    for (k, v) in [(0, 1), (1, 2), (0, 3), (2, 4), (1, 5)] {
        apply(&mut store, &Op::Put(k, v));
    }
    let mut cursor = store.begin_snapshot(7);
    let mut bytes = Vec::new();
    assert!(
        !store
            .write_snapshot_chunk(&mut cursor, &mut bytes, 1)
            .unwrap()
    );
    store.compact(store.revision()).unwrap();
    let error = store
        .write_snapshot_chunk(&mut cursor, &mut bytes, 1)
        .unwrap_err();
    assert!(
        error.to_string().contains("changed under a snapshot"),
        "{error}"
    );
}
