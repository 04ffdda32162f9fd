//! The store against etcd v3's documented behaviour: revisions, versions, ranges, prev_kv,
//! transactions, compaction, and the exact error messages.

use bytes::Bytes;
use synod_kv::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn put(store: &mut MvccStore, key: &str, value: &str) -> PutResponse {
    let response = store
        .put(&PutRequest {
            key: b(key),
            value: b(value),
            prev_kv: true,
            ..PutRequest::default()
        })
        .expect("put");
    store.check().expect("invariants");
    response
}

fn get(store: &MvccStore, key: &str) -> Option<KeyValue> {
    store
        .range(&RangeRequest {
            key: b(key),
            ..RangeRequest::default()
        })
        .expect("range")
        .kvs
        .pop()
}

fn range(store: &MvccStore, request: RangeRequest) -> Vec<String> {
    store
        .range(&request)
        .expect("range")
        .kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.to_vec()).unwrap())
        .collect()
}

#[test]
fn revisions_start_at_1_and_rise_by_one_per_write() {
    let mut store = MvccStore::new();
    assert_eq!(store.revision(), 1);
    assert_eq!(put(&mut store, "a", "1").revision, 2);
    assert_eq!(put(&mut store, "b", "1").revision, 3);
    // A delete that deletes nothing, and a read-only transaction, are not writes.
    let response = store
        .delete_range(&DeleteRangeRequest {
            key: b("zzz"),
            ..DeleteRangeRequest::default()
        })
        .unwrap();
    assert_eq!((response.deleted, response.revision), (0, 3));
    let txn = store
        .txn(&TxnRequest {
            success: vec![RequestOp::Range(RangeRequest {
                key: b("a"),
                ..RangeRequest::default()
            })],
            ..TxnRequest::default()
        })
        .unwrap();
    assert_eq!(txn.revision, 3);
}

#[test]
fn create_and_mod_revision_and_version_and_a_delete_resets_them() {
    let mut store = MvccStore::new();
    put(&mut store, "k", "1");
    put(&mut store, "k", "2");
    let kv = get(&store, "k").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    let deleted = store
        .delete_range(&DeleteRangeRequest {
            key: b("k"),
            prev_kv: true,
            ..DeleteRangeRequest::default()
        })
        .unwrap();
    assert_eq!(deleted.deleted, 1);
    assert_eq!(deleted.prev_kvs[0].value, b("2"));
    assert_eq!(get(&store, "k"), None);
    put(&mut store, "k", "3");
    let kv = get(&store, "k").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[test]
fn put_returns_the_previous_pair_when_asked() {
    let mut store = MvccStore::new();
    assert_eq!(put(&mut store, "k", "1").prev_kv, None);
    assert_eq!(put(&mut store, "k", "2").prev_kv.unwrap().value, b("1"));
}

#[test]
fn range_end_conventions_prefix_from_key_and_all_keys() {
    let mut store = MvccStore::new();
    for key in ["a", "foo", "foo/1", "foo/2", "fop", "z"] {
        put(&mut store, key, "v");
    }
    let prefix = RangeRequest {
        key: b("foo"),
        range_end: b("fop"),
        ..RangeRequest::default()
    };
    assert_eq!(range(&store, prefix), ["foo", "foo/1", "foo/2"]);
    let from_key = RangeRequest {
        key: b("fop"),
        range_end: Bytes::from_static(b"\0"),
        ..RangeRequest::default()
    };
    assert_eq!(range(&store, from_key), ["fop", "z"]);
    let all = RangeRequest {
        key: Bytes::from_static(b"\0"),
        range_end: Bytes::from_static(b"\0"),
        ..RangeRequest::default()
    };
    assert_eq!(range(&store, all).len(), 6);
    let backwards = RangeRequest {
        key: b("z"),
        range_end: b("a"),
        ..RangeRequest::default()
    };
    assert!(range(&store, backwards).is_empty());
}

#[test]
fn limit_sort_count_only_and_keys_only() {
    let mut store = MvccStore::new();
    put(&mut store, "a", "3");
    put(&mut store, "b", "1");
    put(&mut store, "c", "2");
    put(&mut store, "b", "9");
    let all = RangeRequest {
        key: b("a"),
        range_end: b("d"),
        ..RangeRequest::default()
    };
    let limited = store
        .range(&RangeRequest {
            limit: 2,
            ..all.clone()
        })
        .unwrap();
    assert_eq!(
        (limited.kvs.len(), limited.more, limited.count),
        (2, true, 3)
    );
    let by_mod_desc = RangeRequest {
        sort_target: SortTarget::Mod,
        sort_order: SortOrder::Descend,
        ..all.clone()
    };
    assert_eq!(range(&store, by_mod_desc), ["b", "c", "a"]);
    // No order asked with a non-key target sorts ascending, as etcd does.
    let by_value = RangeRequest {
        sort_target: SortTarget::Value,
        ..all.clone()
    };
    assert_eq!(range(&store, by_value), ["c", "a", "b"]);
    let count = store
        .range(&RangeRequest {
            count_only: true,
            ..all.clone()
        })
        .unwrap();
    assert_eq!((count.kvs.len(), count.count), (0, 3));
    let keys = store
        .range(&RangeRequest {
            keys_only: true,
            ..all
        })
        .unwrap();
    assert!(keys.kvs.iter().all(|kv| kv.value.is_empty()));
}

#[test]
fn reads_at_a_past_revision_and_the_errors_for_compacted_and_future_ones() {
    let mut store = MvccStore::new();
    put(&mut store, "k", "1"); // rev 2
    put(&mut store, "k", "2"); // rev 3
    put(&mut store, "k", "3"); // rev 4
    let at = |store: &MvccStore, revision| {
        store.range(&RangeRequest {
            key: b("k"),
            revision,
            ..RangeRequest::default()
        })
    };
    assert_eq!(at(&store, 2).unwrap().kvs[0].value, b("1"));
    assert_eq!(at(&store, 1).unwrap().kvs.len(), 0);
    let future = at(&store, 5).unwrap_err();
    assert_eq!(
        future.to_string(),
        "etcdserver: mvcc: required revision is a future revision"
    );
    assert_eq!(future.grpc_code(), GrpcCode::OutOfRange);
    store.compact(3).unwrap();
    store.check().unwrap();
    assert_eq!(
        at(&store, 2).unwrap_err().to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    // Reading at the compacted revision itself still works.
    assert_eq!(at(&store, 3).unwrap().kvs[0].value, b("2"));
    assert_eq!(store.compact(3), Err(KvError::Compacted));
    assert_eq!(store.compact(9), Err(KvError::FutureRevision));
}

#[test]
fn compaction_drops_deleted_keys_and_keeps_what_later_reads_see() {
    let mut store = MvccStore::new();
    put(&mut store, "gone", "1"); // 2
    store
        .delete_range(&DeleteRangeRequest {
            key: b("gone"),
            ..DeleteRangeRequest::default()
        })
        .unwrap(); // 3
    put(&mut store, "kept", "1"); // 4
    put(&mut store, "kept", "2"); // 5
    store.compact(4).unwrap();
    store.check().unwrap();
    assert_eq!(get(&store, "gone"), None);
    let at4 = store
        .range(&RangeRequest {
            key: b("kept"),
            revision: 4,
            ..RangeRequest::default()
        })
        .unwrap();
    assert_eq!(at4.kvs[0].value, b("1"));
    assert_eq!(get(&store, "kept").unwrap().value, b("2"));
}

#[test]
fn a_transaction_is_one_revision_and_sees_its_own_writes() {
    let mut store = MvccStore::new();
    put(&mut store, "k", "1"); // 2
    let response = store
        .txn(&TxnRequest {
            compare: vec![Compare {
                key: b("k"),
                range_end: Bytes::new(),
                result: CompareResult::Equal,
                target: CompareTarget::Mod(2),
            }],
            success: vec![
                RequestOp::Put(PutRequest {
                    key: b("k"),
                    value: b("2"),
                    ..PutRequest::default()
                }),
                RequestOp::Put(PutRequest {
                    key: b("other"),
                    value: b("x"),
                    ..PutRequest::default()
                }),
                RequestOp::Range(RangeRequest {
                    key: b("k"),
                    ..RangeRequest::default()
                }),
            ],
            failure: vec![],
        })
        .unwrap();
    assert!(response.succeeded);
    assert_eq!(response.revision, 3);
    let ResponseOp::Range(read) = &response.responses[2] else {
        panic!("a range response");
    };
    assert_eq!(read.kvs[0].value, b("2"));
    assert_eq!(get(&store, "other").unwrap().mod_revision, 3);
    store.check().unwrap();
}

#[test]
fn compares_on_missing_keys_and_the_failure_branch() {
    let mut store = MvccStore::new();
    let txn = |store: &mut MvccStore, target| {
        store
            .txn(&TxnRequest {
                compare: vec![Compare {
                    key: b("missing"),
                    range_end: Bytes::new(),
                    result: CompareResult::Equal,
                    target,
                }],
                success: vec![],
                failure: vec![RequestOp::Put(PutRequest {
                    key: b("failed"),
                    ..PutRequest::default()
                })],
            })
            .unwrap()
    };
    // A missing key has version, create and mod revision 0, and never matches a value.
    assert!(txn(&mut store, CompareTarget::Version(0)).succeeded);
    assert!(txn(&mut store, CompareTarget::Create(0)).succeeded);
    assert!(!txn(&mut store, CompareTarget::Value(Bytes::new())).succeeded);
    assert!(get(&store, "failed").is_some());
}

#[test]
fn transaction_limits_and_conflicts_with_etcds_messages() {
    let mut store = MvccStore::new();
    let put_op = |key: &str| {
        RequestOp::Put(PutRequest {
            key: b(key),
            ..PutRequest::default()
        })
    };
    let too_many = TxnRequest {
        success: (0..129).map(|i| put_op(&format!("k{i}"))).collect(),
        ..TxnRequest::default()
    };
    assert_eq!(
        store.txn(&too_many).unwrap_err().to_string(),
        "etcdserver: too many operations in txn request"
    );
    let exactly = TxnRequest {
        success: (0..128).map(|i| put_op(&format!("k{i}"))).collect(),
        ..TxnRequest::default()
    };
    assert!(store.txn(&exactly).is_ok());
    let twice = TxnRequest {
        success: vec![put_op("a"), put_op("a")],
        ..TxnRequest::default()
    };
    assert_eq!(
        store.txn(&twice).unwrap_err().to_string(),
        "etcdserver: duplicate key given in txn request"
    );
    let put_in_deleted_range = TxnRequest {
        success: vec![
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: b("a"),
                range_end: b("c"),
                ..DeleteRangeRequest::default()
            }),
            put_op("b"),
        ],
        ..TxnRequest::default()
    };
    assert_eq!(store.txn(&put_in_deleted_range), Err(KvError::DuplicateKey));
    // The same key in the success and the failure branch is fine: only one runs.
    let both_branches = TxnRequest {
        success: vec![put_op("a")],
        failure: vec![put_op("a")],
        ..TxnRequest::default()
    };
    assert!(store.txn(&both_branches).is_ok());
    let nested_both = TxnRequest {
        success: vec![RequestOp::Txn(both_branches.clone()), put_op("z")],
        ..TxnRequest::default()
    };
    assert!(store.txn(&nested_both).is_ok());
    let nested_conflict = TxnRequest {
        success: vec![RequestOp::Txn(both_branches), put_op("a")],
        ..TxnRequest::default()
    };
    assert_eq!(store.txn(&nested_conflict), Err(KvError::DuplicateKey));
    assert_eq!(
        store.put(&PutRequest::default()).unwrap_err().to_string(),
        "etcdserver: key is not provided"
    );
    store.check().unwrap();
}

/// etcd sorts descending by the reversed comparison (Go's `sort.Reverse`), not by reversing the
/// ascending order: pairs that tie keep their key order either way, as `etcdctl get
/// --sort-by=VERSION --order=DESCEND` shows on etcd.
#[test]
fn sorted_ranges_keep_ties_in_key_order_in_both_directions() {
    let mut store = MvccStore::new();
    for (key, value) in [("a", "x"), ("b", "x"), ("c", "y"), ("d", "x"), ("b", "x")] {
        put(&mut store, key, value);
    }
    let sorted = |sort_target, sort_order| {
        range(
            &store,
            RangeRequest {
                key: b("a"),
                range_end: b("z"),
                sort_target,
                sort_order,
                ..RangeRequest::default()
            },
        )
        .join(" ")
    };
    // b has version 2, the others 1.
    assert_eq!(sorted(SortTarget::Version, SortOrder::Ascend), "a c d b");
    assert_eq!(sorted(SortTarget::Version, SortOrder::Descend), "b a c d");
    // c holds y, the others x.
    assert_eq!(sorted(SortTarget::Value, SortOrder::Ascend), "a b d c");
    assert_eq!(sorted(SortTarget::Value, SortOrder::Descend), "c a b d");
    assert_eq!(sorted(SortTarget::Key, SortOrder::Descend), "d c b a");
    assert_eq!(sorted(SortTarget::Mod, SortOrder::Descend), "b d c a");
}

/// The revision in each response inside a transaction, as etcd's write transaction reports it
/// (`storeTxnWrite` in `mvcc/kvstore_txn.go`, `applyTxn` in `etcdserver/apply.go`): a read the
/// revision it read at, a put the transaction's, a delete the transaction's once anything was
/// written (else the one before), and a nested transaction none (etcd sets only the outer one).
#[test]
fn responses_inside_a_transaction_carry_etcds_revisions() {
    let mut store = MvccStore::new();
    put(&mut store, "k", "1"); // 2
    let read = |key: &str| {
        RequestOp::Range(RangeRequest {
            key: b(key),
            ..RangeRequest::default()
        })
    };
    let delete = |key: &str| {
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: b(key),
            ..DeleteRangeRequest::default()
        })
    };
    let response = store
        .txn(&TxnRequest {
            success: vec![
                read("k"),
                delete("missing"),
                RequestOp::Txn(TxnRequest::default()),
                RequestOp::Put(PutRequest {
                    key: b("w"),
                    value: b("1"),
                    ..PutRequest::default()
                }),
                read("w"),
                delete("also-missing"),
            ],
            ..TxnRequest::default()
        })
        .unwrap();
    assert_eq!(response.revision, 3);
    let revisions: Vec<Revision> = response
        .responses
        .iter()
        .map(|op| match op {
            ResponseOp::Range(r) => r.revision,
            ResponseOp::Put(r) => r.revision,
            ResponseOp::DeleteRange(r) => r.revision,
            ResponseOp::Txn(r) => r.revision,
        })
        .collect();
    assert_eq!(revisions, [2, 2, 0, 3, 3, 3]);
    // A transaction that only reads makes no revision, and its reads carry the current one.
    let response = store
        .txn(&TxnRequest {
            success: vec![read("w")],
            ..TxnRequest::default()
        })
        .unwrap();
    assert_eq!(response.revision, 3);
    let ResponseOp::Range(r) = &response.responses[0] else {
        panic!("a range response");
    };
    assert_eq!((r.revision, r.kvs.len()), (3, 1));
    store.check().unwrap();
}
