//! The replicated state machine's commands: encoding for log entries, deterministic applying,
//! refused commands that change nothing, and the space accounting behind etcd's quota.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use synod_core::wire::WireError;
use synod_kv::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: b(key),
        value: b(value),
        ..PutRequest::default()
    }
}

fn delete(key: &str, range_end: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: b(key),
        range_end: b(range_end),
        prev_kv: true,
    }
}

fn read(key: &str, revision: Revision) -> RangeRequest {
    RangeRequest {
        key: b(key),
        revision,
        ..RangeRequest::default()
    }
}

fn value_equals(key: &str, value: &str) -> Compare {
    Compare {
        key: b(key),
        range_end: Bytes::new(),
        result: CompareResult::Equal,
        target: CompareTarget::Value(b(value)),
    }
}

fn envelope(command: Command) -> CommandEnvelope {
    CommandEnvelope {
        origin: 3,
        request_id: 41,
        command,
    }
}

/// Applies `command` after a trip through log-entry bytes, and checks the store's invariants.
fn apply(store: &mut MvccStore, command: Command) -> Result<Response, KvError> {
    let bytes = envelope(command.clone()).encode();
    // A leader keeps these bytes in its log: no spare capacity.
    assert_eq!(bytes.capacity(), bytes.len());
    let decoded = CommandEnvelope::decode(&bytes).expect("decode");
    assert_eq!(decoded, envelope(command));
    let response = store.apply(&decoded.command);
    store.check().expect("invariants");
    response
}

/// Compacts `store` at its current revision.
fn compact_to_current(store: &mut MvccStore, physical: bool) {
    let revision = store.revision();
    apply(store, Command::Compact { revision, physical }).unwrap();
}

// -------------------------------------------------------------------------------------------
// Applying.

#[test]
fn each_command_applies_as_the_store_method_it_names() {
    let mut store = MvccStore::new();
    let mut twin = store.clone();

    let response = apply(&mut store, Command::Put(put("a", "1"))).unwrap();
    assert_eq!(response, Response::Put(twin.put(&put("a", "1")).unwrap()));
    assert_eq!(response.revision(), 2);

    let txn = TxnRequest {
        compare: vec![value_equals("a", "1")],
        success: vec![
            RequestOp::Put(put("b", "2")),
            RequestOp::Range(read("a", 0)),
        ],
        failure: vec![],
    };
    let response = apply(&mut store, Command::Txn(txn.clone())).unwrap();
    assert_eq!(response, Response::Txn(twin.txn(&txn).unwrap()));
    assert_eq!(response.revision(), 3);

    let response = apply(&mut store, Command::DeleteRange(delete("a", "c"))).unwrap();
    assert_eq!(
        response,
        Response::DeleteRange(twin.delete_range(&delete("a", "c")).unwrap())
    );
    assert_eq!(response.revision(), 4);

    for physical in [false, true] {
        let revision = 2 + physical as i64;
        let response = apply(&mut store, Command::Compact { revision, physical }).unwrap();
        twin.compact(revision).unwrap();
        // Compaction adds no revision: the header carries the current one.
        assert_eq!(response, Response::Compact { revision: 4 });
    }
    assert_eq!(store, twin);
}

#[test]
fn refused_commands_change_nothing_and_answer_etcds_error() {
    let mut store = MvccStore::new();
    for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
        apply(&mut store, Command::Put(put(key, value))).unwrap();
    }
    apply(
        &mut store,
        Command::Compact {
            revision: 3,
            physical: false,
        },
    )
    .unwrap();
    let refused = [
        (Command::Put(put("", "x")), KvError::EmptyKey),
        (Command::DeleteRange(delete("", "")), KvError::EmptyKey),
        (
            Command::Compact {
                revision: 99,
                physical: false,
            },
            KvError::FutureRevision,
        ),
        (
            Command::Compact {
                revision: 2,
                physical: true,
            },
            KvError::Compacted,
        ),
        (
            Command::Txn(TxnRequest {
                success: vec![RequestOp::Put(put("k", "1")), RequestOp::Put(put("k", "2"))],
                ..TxnRequest::default()
            }),
            KvError::DuplicateKey,
        ),
        (
            Command::Txn(TxnRequest {
                success: (0..=MAX_TXN_OPS)
                    .map(|i| RequestOp::Put(put(&format!("k{i}"), "")))
                    .collect(),
                ..TxnRequest::default()
            }),
            KvError::TooManyOps,
        ),
        // A read of a future or compacted revision after a write in the same branch: etcd
        // checks the reads of the path before writing anything.
        (
            Command::Txn(TxnRequest {
                success: vec![
                    RequestOp::Put(put("new", "1")),
                    RequestOp::DeleteRange(delete("a", "")),
                    RequestOp::Range(read("b", 5)),
                ],
                ..TxnRequest::default()
            }),
            KvError::FutureRevision,
        ),
        (
            Command::Txn(TxnRequest {
                compare: vec![value_equals("a", "no")],
                failure: vec![
                    RequestOp::Put(put("new", "1")),
                    RequestOp::Txn(TxnRequest {
                        success: vec![RequestOp::Range(read("b", 1))],
                        ..TxnRequest::default()
                    }),
                ],
                ..TxnRequest::default()
            }),
            KvError::Compacted,
        ),
    ];
    for (command, error) in refused {
        let before = store.clone();
        assert_eq!(command.validate().err().filter(|e| *e != error), None);
        assert_eq!(
            apply(&mut store, command.clone()),
            Err(error.clone()),
            "{command:?}"
        );
        assert_eq!(store, before, "{command:?} changed the store");
    }
    // A bad read on the branch that does not run is not checked, as in etcd.
    let unchecked = TxnRequest {
        compare: vec![value_equals("a", "3")],
        success: vec![RequestOp::Put(put("new", "1"))],
        failure: vec![RequestOp::Range(read("b", 99))],
    };
    assert!(apply(&mut store, Command::Txn(unchecked)).is_ok());
}

/// etcd (`compareToPath`) evaluates a nested transaction's compares against the store before
/// the outer transaction, not against the outer transaction's own writes.
#[test]
fn nested_compares_see_the_store_before_the_transaction() {
    let mut store = MvccStore::new();
    let txn = TxnRequest {
        success: vec![
            RequestOp::Put(put("a", "1")),
            RequestOp::Txn(TxnRequest {
                compare: vec![value_equals("a", "1")],
                success: vec![RequestOp::Put(put("then", ""))],
                failure: vec![RequestOp::Put(put("else", ""))],
            }),
        ],
        ..TxnRequest::default()
    };
    let Response::Txn(response) = apply(&mut store, Command::Txn(txn)).unwrap() else {
        panic!("a transaction answers a transaction");
    };
    let ResponseOp::Txn(nested) = &response.responses[1] else {
        panic!("a nested transaction answers a nested transaction");
    };
    assert!(!nested.succeeded);
    assert!(store.range(&read("else", 0)).unwrap().count == 1);
    assert!(store.range(&read("then", 0)).unwrap().count == 0);
}

/// A chain of nested transactions used to be validated in time exponential in its depth (each
/// level walked its nested transaction twice).
#[test]
fn deeply_nested_transactions_are_validated_in_linear_time() {
    let chain = |depth: usize| {
        let mut txn = TxnRequest {
            success: vec![RequestOp::Put(put("leaf", ""))],
            failure: vec![RequestOp::DeleteRange(delete("x", ""))],
            ..TxnRequest::default()
        };
        for level in 1..depth {
            let key = format!("k{level}");
            txn = TxnRequest {
                compare: vec![value_equals(&key, "")],
                success: vec![RequestOp::Txn(txn), RequestOp::Put(put(&key, ""))],
                failure: vec![RequestOp::DeleteRange(delete(&key, ""))],
            };
        }
        Command::Txn(txn)
    };
    // Each level has two operations, so etcd's budget allows 64 levels and refuses more.
    let started = Instant::now();
    let deep = chain(64);
    assert_eq!(deep.validate(), Ok(()));
    assert_eq!(chain(65).validate(), Err(KvError::TooManyOps));
    assert!(started.elapsed() < Duration::from_secs(5));
    // ... and both chains can be sent, and the deep one applied.
    let mut store = MvccStore::new();
    assert!(apply(&mut store, deep).is_ok());
    assert!(apply(&mut store, chain(65)).is_err());
}

// -------------------------------------------------------------------------------------------
// Space accounting.

#[test]
fn size_grows_with_every_revision_and_shrinks_on_compaction() {
    let overhead = REVISION_OVERHEAD_BYTES;
    let mut store = MvccStore::new();
    assert_eq!(store.size_bytes(), 0);
    apply(&mut store, Command::Put(put("key", "value"))).unwrap();
    assert_eq!(store.size_bytes(), overhead + 8);
    // Overwriting keeps the old version until compaction.
    apply(&mut store, Command::Put(put("key", "v2"))).unwrap();
    assert_eq!(store.size_bytes(), 2 * overhead + 8 + 5);
    // A delete stores a tombstone: the key and the overhead.
    apply(&mut store, Command::DeleteRange(delete("key", ""))).unwrap();
    assert_eq!(store.size_bytes(), 3 * overhead + 8 + 5 + 3);
    // A delete that deletes nothing stores nothing.
    apply(&mut store, Command::DeleteRange(delete("nothing", ""))).unwrap();
    assert_eq!(store.size_bytes(), 3 * overhead + 8 + 5 + 3);
    // A transaction counts each version it writes.
    let txn = TxnRequest {
        success: vec![
            RequestOp::Put(put("a", "1")),
            RequestOp::Put(put("b", "22")),
        ],
        ..TxnRequest::default()
    };
    apply(&mut store, Command::Txn(txn)).unwrap();
    let with_txn = 5 * overhead + 8 + 5 + 3 + 2 + 3;
    assert_eq!(store.size_bytes(), with_txn);
    // Compacting past the deletion forgets the key's whole history.
    compact_to_current(&mut store, false);
    assert_eq!(store.size_bytes(), 2 * overhead + 2 + 3);
    // Deleting everything and compacting empties the store.
    apply(&mut store, Command::DeleteRange(delete("\0", "\0"))).unwrap();
    assert!(store.size_bytes() > 2 * overhead + 5);
    compact_to_current(&mut store, true);
    assert_eq!(store.size_bytes(), 0);
}

#[test]
fn a_full_store_refuses_writes_that_add_data_but_not_deletes_or_compaction() {
    let mut store = MvccStore::new();
    let quota = 4 * REVISION_OVERHEAD_BYTES;
    let mut written = 0;
    loop {
        let command = Command::Put(put(&format!("k{written}"), "value"));
        match store.check_quota(&command, quota) {
            Ok(()) => apply(&mut store, command).map(drop).unwrap(),
            Err(error) => {
                assert_eq!(error, KvError::NoSpace);
                assert_eq!(
                    error.to_string(),
                    "etcdserver: mvcc: database space exceeded"
                );
                assert_eq!(error.grpc_code(), GrpcCode::ResourceExhausted);
                break;
            }
        }
        written += 1;
    }
    assert_eq!(
        written, 3,
        "a put is admitted only if the store stays under the quota"
    );
    let puts_in_txn = Command::Txn(TxnRequest {
        failure: vec![RequestOp::Txn(TxnRequest {
            success: vec![RequestOp::Put(put("n", ""))],
            ..TxnRequest::default()
        })],
        ..TxnRequest::default()
    });
    assert!(puts_in_txn.adds_data());
    assert_eq!(
        store.check_quota(&puts_in_txn, quota),
        Err(KvError::NoSpace)
    );
    let read_only = Command::Txn(TxnRequest {
        compare: vec![value_equals("k0", "value")],
        success: vec![RequestOp::Range(read("k0", 0))],
        failure: vec![RequestOp::DeleteRange(delete("k0", ""))],
    });
    let delete_all = Command::DeleteRange(delete("\0", "\0"));
    for command in [&read_only, &delete_all] {
        assert!(!command.adds_data());
        assert_eq!(store.check_quota(command, quota), Ok(()));
    }
    apply(&mut store, delete_all).unwrap();
    let compact = Command::Compact {
        revision: store.revision(),
        physical: false,
    };
    assert_eq!(store.check_quota(&compact, quota), Ok(()));
    apply(&mut store, compact).unwrap();
    let put_again = Command::Put(put("again", "value"));
    assert_eq!(store.check_quota(&put_again, quota), Ok(()));
}

// -------------------------------------------------------------------------------------------
// Snapshots.

#[test]
fn a_snapshot_keeps_the_applied_index_and_the_size() {
    let mut store = MvccStore::new();
    apply(&mut store, Command::Put(put("a", "1"))).unwrap();
    apply(&mut store, Command::DeleteRange(delete("a", ""))).unwrap();
    let bytes = store.snapshot_with_applied_index(77);
    let (restored, applied_index) = MvccStore::restore_with_applied_index(&bytes).unwrap();
    assert_eq!((&restored, applied_index), (&store, 77));
    assert_eq!(restored.size_bytes(), store.size_bytes());
    // A recorded size that does not match the versions is damage.
    let mut wrong_size = bytes.clone();
    wrong_size[8 + 8 + 16] ^= 1;
    assert!(MvccStore::restore(&wrong_size).is_err());
    // So is another version of the format.
    let mut version_one = bytes;
    version_one[..8].copy_from_slice(b"SYNKV001");
    assert!(MvccStore::restore(&version_one).is_err());
}

#[test]
fn a_snapshot_streamed_in_pieces_is_the_same_bytes_and_a_failing_writer_stops_it() {
    let mut store = MvccStore::new();
    for i in 0..200 {
        let value = "v".repeat(i % 37);
        apply(
            &mut store,
            Command::Put(put(&format!("k{}", i % 50), &value)),
        )
        .unwrap();
    }
    apply(&mut store, Command::DeleteRange(delete("k1", "k2"))).unwrap();
    let whole = store.snapshot_with_applied_index(9);

    /// A writer that takes at most 7 bytes per call and fails once `budget` is spent.
    struct Trickle {
        out: Vec<u8>,
        budget: usize,
    }
    impl std::io::Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.budget == 0 {
                return Err(std::io::Error::other("disk full"));
            }
            let n = buf.len().min(7).min(self.budget);
            self.out.extend_from_slice(&buf[..n]);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut streamed = Trickle {
        out: Vec::new(),
        budget: usize::MAX,
    };
    store.write_snapshot(9, &mut streamed).unwrap();
    assert_eq!(streamed.out, whole);
    let mut failing = Trickle {
        out: Vec::new(),
        budget: whole.len() / 2,
    };
    let error = store.write_snapshot(9, &mut failing).unwrap_err();
    assert_eq!(error.to_string(), "disk full");
    assert!(
        MvccStore::restore(&failing.out).is_err(),
        "half a snapshot restored"
    );

    // Decoding from a source that hands out 5 bytes per read gives the same store.
    struct Drip<'a>(&'a [u8]);
    impl std::io::Read for Drip<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("unplugged"));
            }
            let n = buf.len().min(5).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let (read, applied) = MvccStore::read_snapshot(&mut Drip(&whole), whole.len() as u64).unwrap();
    assert_eq!((&read, applied), (&store, 9));
    // A source that fails (here: runs dry) before the length it promised is an error.
    let error = MvccStore::read_snapshot(&mut Drip(&whole[..whole.len() - 3]), whole.len() as u64)
        .unwrap_err();
    assert!(error.to_string().contains("unplugged"), "{error}");
    // So is a length shorter than the bytes, which leaves the last ones unread.
    assert!(MvccStore::read_snapshot(&mut Drip(&whole), whole.len() as u64 - 1).is_err());
}

// -------------------------------------------------------------------------------------------
// Decoding bytes from the log.

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn nesting_beyond_etcds_limit_is_refused_by_the_decoder() {
    // origin 1, request 1, Command::Txn (2), then levels of: no compares, one success
    // operation, RequestOp::Txn (3), ... Far deeper than any stack could recurse.
    let mut bytes = vec![1, 1, 2];
    for _ in 0..1_000_000 {
        bytes.extend_from_slice(&[0, 1, 3]);
    }
    // (postcard reports serde's custom errors without their text.)
    let error = CommandEnvelope::decode(&bytes).unwrap_err();
    assert!(matches!(error, WireError::Malformed(_)), "{error}");
    // The deepest transaction etcd accepts decodes, and one level more does not.
    let nest = |depth: usize| {
        let mut bytes = vec![1, 1, 2];
        for _ in 1..depth {
            bytes.extend_from_slice(&[0, 1, 3]);
        }
        bytes.extend_from_slice(&[0, 0, 0]);
        bytes.extend(std::iter::repeat_n(0, depth - 1));
        bytes
    };
    let deepest = CommandEnvelope::decode(&nest(MAX_TXN_DEPTH)).unwrap();
    assert_eq!(deepest.command.validate(), Ok(()));
    assert!(MvccStore::new().apply(&deepest.command).is_ok());
    assert!(CommandEnvelope::decode(&nest(MAX_TXN_DEPTH + 1)).is_err());
    // The decoder's depth count is balanced after errors: a shallow command still decodes.
    assert!(
        CommandEnvelope::decode(&envelope(Command::Txn(TxnRequest::default())).encode()).is_ok()
    );
}

#[test]
fn huge_length_prefixes_are_refused() {
    for claim in [1u64 << 32, 1 << 60, u64::MAX] {
        // A put whose key claims `claim` bytes.
        let mut key = vec![1, 1, 0];
        key.extend(varint(claim));
        key.extend_from_slice(b"short");
        assert!(CommandEnvelope::decode(&key).is_err());
        // A transaction with `claim` success operations, at every level of a nest.
        let mut nest = vec![1, 1, 2];
        for _ in 0..MAX_TXN_DEPTH - 1 {
            nest.push(0);
            nest.extend(varint(claim));
            nest.push(3);
        }
        assert!(CommandEnvelope::decode(&nest).is_err());
    }
}

fn key() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        8 => (0u8..6).prop_map(|k| Bytes::from(vec![b'k', b'0' + k])),
        1 => Just(Bytes::new()),
        1 => Just(Bytes::from_static(b"\0")),
    ]
}

fn range_end() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => Just(Bytes::new()),
        1 => Just(Bytes::from_static(b"\0")),
        2 => key(),
    ]
}

fn revision() -> impl Strategy<Value = Revision> {
    prop_oneof![4 => 0i64..16, 1 => any::<i64>()]
}

fn put_request() -> impl Strategy<Value = PutRequest> {
    (
        key(),
        prop::collection::vec(any::<u8>(), 0..4),
        0i64..3,
        any::<bool>(),
    )
        .prop_map(|(key, value, lease, prev_kv)| PutRequest {
            key,
            value: Bytes::from(value),
            lease,
            prev_kv,
        })
}

fn delete_request() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), range_end(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn range_request() -> impl Strategy<Value = RangeRequest> {
    (key(), range_end(), 0i64..3, revision(), any::<bool>()).prop_map(
        |(key, range_end, limit, revision, keys_only)| RangeRequest {
            key,
            range_end,
            limit,
            revision,
            keys_only,
            ..RangeRequest::default()
        },
    )
}

fn compare() -> impl Strategy<Value = Compare> {
    let target = prop_oneof![
        (0i64..3).prop_map(CompareTarget::Version),
        (0i64..8).prop_map(CompareTarget::Mod),
        (0i64..8).prop_map(CompareTarget::Create),
        prop::collection::vec(any::<u8>(), 0..2).prop_map(|v| CompareTarget::Value(v.into())),
    ];
    let result = prop_oneof![
        Just(CompareResult::Equal),
        Just(CompareResult::Greater),
        Just(CompareResult::Less),
        Just(CompareResult::NotEqual),
    ];
    (key(), range_end(), result, target).prop_map(|(key, range_end, result, target)| Compare {
        key,
        range_end,
        result,
        target,
    })
}

fn txn_request() -> impl Strategy<Value = TxnRequest> {
    let flat_op = prop_oneof![
        2 => put_request().prop_map(RequestOp::Put),
        1 => delete_request().prop_map(RequestOp::DeleteRange),
        1 => range_request().prop_map(RequestOp::Range),
    ];
    let flat = (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(flat_op.clone(), 0..4),
        prop::collection::vec(flat_op.clone(), 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        });
    let op = prop_oneof![4 => flat_op, 1 => flat.prop_map(RequestOp::Txn)];
    (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(op.clone(), 0..4),
        prop::collection::vec(op, 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => put_request().prop_map(Command::Put),
        2 => delete_request().prop_map(Command::DeleteRange),
        3 => txn_request().prop_map(Command::Txn),
        1 => (revision(), any::<bool>())
            .prop_map(|(revision, physical)| Command::Compact { revision, physical }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Replicas that apply the same commands, one from the decoded log bytes, one directly, one
    /// restored from a snapshot part-way, and one whose compactions leave their history in
    /// place for a while (as while a snapshot is written), end identical and answer
    /// identically, sizes included; a refused command changes nothing.
    #[test]
    fn replicas_applying_the_same_commands_agree(
        commands in prop::collection::vec(command(), 1..40),
        snapshot_at in any::<prop::sample::Index>(),
        removals in prop::collection::vec(any::<bool>(), 40),
    ) {
        let snapshot_at = snapshot_at.index(commands.len());
        let mut from_log = MvccStore::new();
        let mut direct = MvccStore::new();
        let mut deferring = MvccStore::new();
        let mut restored: Option<MvccStore> = None;
        for (index, command) in commands.iter().enumerate() {
            if index == snapshot_at {
                let bytes = direct.snapshot_with_applied_index(index as u64);
                let (store, applied) = MvccStore::restore_with_applied_index(&bytes).unwrap();
                prop_assert_eq!(applied, index as u64);
                restored = Some(store);
                // As the server does at a snapshot: a rebuilt map changes nothing else.
                let unshrunk = from_log.clone();
                from_log.shrink_to_fit();
                prop_assert_eq!(&from_log, &unshrunk);
                prop_assert!(from_log.check().is_ok());
            }
            let before = direct.clone();
            let size_before = direct.size_bytes();
            let answer = apply(&mut from_log, command.clone());
            prop_assert_eq!(&direct.apply(command), &answer);
            if let Some(store) = restored.as_mut() {
                prop_assert_eq!(&store.apply(command), &answer);
            }
            prop_assert_eq!(&deferring.apply_deferring_removal(command), &answer);
            prop_assert_eq!(deferring.size_bytes(), direct.size_bytes());
            prop_assert!(deferring.check().is_ok(), "{:?}", deferring.check());
            if removals[index] {
                deferring.remove_compacted();
                prop_assert_eq!(&deferring, &direct);
            }
            match &answer {
                Err(_) => prop_assert_eq!(&direct, &before),
                // Only compaction makes the store smaller.
                Ok(Response::Compact { .. }) => prop_assert!(direct.size_bytes() <= size_before),
                Ok(_) => prop_assert!(direct.size_bytes() >= size_before),
            }
            // What was refused before proposing is refused when applied.
            if let Err(error) = command.validate() {
                prop_assert_eq!(answer, Err(error));
            }
            prop_assert!(direct.check().is_ok(), "{:?}", direct.check());
        }
        prop_assert_eq!(&from_log, &direct);
        prop_assert_eq!(restored.as_ref(), Some(&direct));
        deferring.remove_compacted();
        prop_assert_eq!(&deferring, &direct);
    }

    #[test]
    fn envelopes_round_trip_and_every_prefix_is_refused(
        command in command(),
        origin in any::<u64>(),
        request_id in any::<u64>(),
    ) {
        let envelope = CommandEnvelope { origin, request_id, command };
        let bytes = envelope.encode();
        prop_assert_eq!(&CommandEnvelope::decode(&bytes).unwrap(), &envelope);
        for cut in 0..bytes.len() {
            prop_assert!(CommandEnvelope::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = CommandEnvelope::decode(&bytes);
    }

    /// Random bytes mostly fail at once; a damaged real command gets much further. Whatever
    /// decodes can be applied without panicking.
    #[test]
    fn damaged_commands_never_panic(
        command in command(),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = envelope(command).encode();
        for (at, byte) in damage {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if let Ok(decoded) = CommandEnvelope::decode(&bytes) {
            let mut store = MvccStore::new();
            store.apply(&Command::Put(put("k0", "v"))).unwrap();
            let before = store.clone();
            if store.apply(&decoded.command).is_err() {
                prop_assert_eq!(&store, &before);
            }
            prop_assert!(store.check().is_ok());
        }
    }
}

#[test]
fn a_snapshot_whose_key_count_its_bytes_cannot_hold_is_refused() {
    let mut store = MvccStore::new();
    for i in 0..20 {
        apply(
            &mut store,
            Command::Put(put(&format!("key{i:02}"), "value")),
        )
        .unwrap();
    }
    let bytes = store.snapshot_with_applied_index(3);
    // The key count follows the magic and four u64 fields.
    const KEYS_AT: usize = 8 + 8 * 4;
    assert_eq!(&bytes[KEYS_AT..KEYS_AT + 8], &20u64.to_le_bytes());
    let left = (bytes.len() - KEYS_AT - 8) as u64;
    let with_count = |count: u64| {
        let mut damaged = bytes.clone();
        damaged[KEYS_AT..KEYS_AT + 8].copy_from_slice(&count.to_le_bytes());
        MvccStore::restore(&damaged).unwrap_err().to_string()
    };
    // Each key takes at least 18 bytes: one more key than that allows is refused up front.
    let error = with_count(left / 18 + 1);
    assert!(error.contains("key count beyond"), "{error}");
    let error = with_count(u64::MAX);
    assert!(error.contains("key count beyond"), "{error}");
    // A count the bytes could hold, but do not, fails as the keys run out.
    let error = with_count(left / 18);
    assert!(!error.contains("key count beyond"), "{error}");
}

#[test]
fn the_map_is_rebuilt_only_after_enough_keys_came_or_went() {
    let min = MvccStore::RESHAPED_MIN as usize;
    // Bulk loads call the store directly: this file's `apply` checks the whole store each time.
    let mut store = MvccStore::new();
    for i in 0..min - 1 {
        store
            .apply(&Command::Put(put(&format!("k{i:06}"), "v")))
            .unwrap();
    }
    // Fewer new keys than the minimum: not worth a pass.
    assert!(!store.shrink_if_reshaped());
    apply(&mut store, Command::Put(put("k999999", "v"))).unwrap();
    let before = store.clone();
    assert!(store.shrink_if_reshaped());
    assert_eq!(store, before);
    store.check().unwrap();
    // Overwriting and deleting keys (a tombstone is a new version) changes no shape.
    for i in 0..min {
        store
            .apply(&Command::Put(put(&format!("k{i:06}"), "w")))
            .unwrap();
    }
    apply(&mut store, Command::DeleteRange(delete("k", "l"))).unwrap();
    assert!(!store.shrink_if_reshaped());
    // Compaction drops the deleted keys from the map: that reshapes it.
    compact_to_current(&mut store, false);
    let before = store.clone();
    assert!(store.shrink_if_reshaped());
    assert_eq!(store, before);
    assert!(!store.shrink_if_reshaped());
    // Past the minimum, an eighth of the keys: 8,192 keys take 1,024 new ones.
    for i in 0..8 * min - 1 {
        store
            .apply(&Command::Put(put(&format!("a{i:06}"), "v")))
            .unwrap();
    }
    assert!(store.shrink_if_reshaped());
    for i in 0..min - 1 {
        store
            .apply(&Command::Put(put(&format!("b{i:06}"), "v")))
            .unwrap();
    }
    assert!(!store.shrink_if_reshaped(), "1,023 new keys in 9,214");
    for i in 0..100 {
        store
            .apply(&Command::Put(put(&format!("c{i:06}"), "v")))
            .unwrap();
    }
    assert!(
        !store.shrink_if_reshaped(),
        "1,123 new keys in 9,314: fewer than an eighth"
    );
    for i in 0..100 {
        store
            .apply(&Command::Put(put(&format!("d{i:06}"), "v")))
            .unwrap();
    }
    assert!(
        store.shrink_if_reshaped(),
        "1,223 new keys in 9,414: more than an eighth"
    );
}
