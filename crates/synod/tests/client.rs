//! synod through an independent etcd v3 client (the `etcd-client` crate), on both engines:
//! reads and writes, transactions, compaction, revisions and versions, Maintenance.Status,
//! Cluster.MemberList, and the services that are not built yet answering Unimplemented at once.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use common::etcd::{
    LogsOnPanic, REQUEST_TIMEOUT, assert_status, connect, connect_member, grpc_status, runtime,
    wait_all_ready, wait_ready, within,
};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, GetResponse,
    KeyValue, PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use tonic::Code;

/// Each test runs once per engine.
macro_rules! on_both_engines {
    ($($test:ident),* $(,)?) => {
        mod raft {
            $(#[test] fn $test() { super::$test("raft") })*
        }
        mod multipaxos {
            $(#[test] fn $test() { super::$test("multipaxos") })*
        }
    };
}

on_both_engines!(
    reads_and_writes,
    values_across_the_http2_write_buffer_thresholds,
    transactions,
    compaction,
    status_member_list_and_unbuilt_services,
);

/// Starts a three-member cluster, waits until every member knows the leader, and runs `body`
/// with a client for the whole cluster. The members' logs are printed if `body` panics.
fn with_cluster(engine: &str, body: impl AsyncFnOnce(&Cluster, Client)) {
    let cluster = Cluster::start(3, engine, &[]);
    runtime().block_on(async {
        let _logs = LogsOnPanic::new(&cluster);
        let mut first = connect(&cluster).await;
        wait_ready(&cluster, &mut first).await;
        wait_all_ready(&cluster).await;
        // A fresh client: tonic's balanced channel remembers the refused connections of a
        // member that was still starting and hands the error to a later request.
        body(&cluster, connect(&cluster).await).await;
    });
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.expect("a response header").revision()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn keys(response: &GetResponse) -> Vec<String> {
    response.kvs().iter().map(|kv| text(kv.key())).collect()
}

fn pairs(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| (text(kv.key()), text(kv.value())))
        .collect()
}

async fn get(client: &mut Client, key: &str, options: GetOptions) -> GetResponse {
    within(&format!("get {key}"), client.get(key, Some(options)))
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"))
}

/// Puts `key` and returns the revision the put created.
async fn put(client: &mut Client, key: &str, value: &str) -> i64 {
    let response = within(&format!("put {key}"), client.put(key, value, None))
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
    revision_of(response.header())
}

fn reads_and_writes(engine: &str) {
    with_cluster(engine, async |cluster, mut c| {
        // Every write raises the revision by exactly one.
        let mut revision = revision_of(get(&mut c, "nothing", GetOptions::new()).await.header());
        let mut created = Vec::new();
        for (key, value) in [
            ("k/a", "3"),
            ("k/b", "1"),
            ("k/c", "4"),
            ("k/d", "2"),
            ("l/x", "9"),
        ] {
            let r = put(&mut c, key, value).await;
            assert_eq!(
                r,
                revision + 1,
                "put {key} did not raise the revision by one"
            );
            revision = r;
            created.push(r);
        }
        let rev_after_b = created[1];

        // A point read.
        let a = get(&mut c, "k/a", GetOptions::new()).await;
        assert_eq!(a.count(), 1);
        assert!(!a.more());
        let kv = &a.kvs()[0];
        assert_eq!(
            (text(kv.key()), text(kv.value())),
            ("k/a".into(), "3".into())
        );
        assert_eq!(kv.version(), 1);
        assert_eq!(kv.create_revision(), created[0]);
        assert_eq!(kv.mod_revision(), created[0]);
        assert_eq!(kv.lease(), 0);
        assert_eq!(
            revision_of(a.header()),
            revision,
            "a read reports the current revision"
        );

        // Prefix, range, limit.
        let all = get(&mut c, "k/", GetOptions::new().with_prefix()).await;
        assert_eq!(keys(&all), ["k/a", "k/b", "k/c", "k/d"]);
        assert_eq!(all.count(), 4);
        let range = get(&mut c, "k/b", GetOptions::new().with_range("k/d")).await;
        assert_eq!(keys(&range), ["k/b", "k/c"], "range_end is exclusive");
        let from = get(&mut c, "k/c", GetOptions::new().with_from_key()).await;
        assert_eq!(keys(&from), ["k/c", "k/d", "l/x"]);
        let limited = get(&mut c, "k/", GetOptions::new().with_prefix().with_limit(2)).await;
        assert_eq!(keys(&limited), ["k/a", "k/b"]);
        assert_eq!(limited.count(), 4, "count ignores the limit");
        assert!(limited.more());

        // Sorting.
        let sorted = |target, order| GetOptions::new().with_prefix().with_sort(target, order);
        let by_value = get(&mut c, "k/", sorted(SortTarget::Value, SortOrder::Descend)).await;
        assert_eq!(keys(&by_value), ["k/c", "k/a", "k/d", "k/b"]);
        let by_value = get(&mut c, "k/", sorted(SortTarget::Value, SortOrder::Ascend)).await;
        assert_eq!(keys(&by_value), ["k/b", "k/d", "k/a", "k/c"]);
        let by_key = get(&mut c, "k/", sorted(SortTarget::Key, SortOrder::Descend)).await;
        assert_eq!(keys(&by_key), ["k/d", "k/c", "k/b", "k/a"]);
        let by_create = get(&mut c, "k/", sorted(SortTarget::Create, SortOrder::Descend)).await;
        assert_eq!(keys(&by_create), ["k/d", "k/c", "k/b", "k/a"]);
        let limited_sorted = get(
            &mut c,
            "k/",
            sorted(SortTarget::Value, SortOrder::Descend).with_limit(1),
        )
        .await;
        assert_eq!(
            keys(&limited_sorted),
            ["k/c"],
            "the limit applies after sorting"
        );

        // Overwriting with prev_kv: the version rises, create_revision stays.
        let response = within(
            "put with prev_kv",
            c.put("k/a", "5", Some(PutOptions::new().with_prev_key())),
        )
        .await
        .expect("put with prev_kv");
        let overwrite = revision_of(response.header());
        assert_eq!(overwrite, revision + 1);
        revision = overwrite;
        let prev = response.prev_key().expect("prev_kv on an overwrite");
        assert_eq!(
            (text(prev.key()), text(prev.value())),
            ("k/a".into(), "3".into())
        );
        assert_eq!(prev.mod_revision(), created[0]);
        let response = within(
            "put new key with prev_kv",
            c.put("k/e", "0", Some(PutOptions::new().with_prev_key())),
        )
        .await
        .expect("put with prev_kv");
        assert!(response.prev_key().is_none(), "no prev_kv for a new key");
        assert_eq!(revision_of(response.header()), revision + 1);
        revision += 1;
        let a = get(&mut c, "k/a", GetOptions::new()).await;
        let kv = &a.kvs()[0];
        assert_eq!(text(kv.value()), "5");
        assert_eq!(kv.version(), 2);
        assert_eq!(kv.create_revision(), created[0]);
        assert_eq!(kv.mod_revision(), overwrite);
        let by_mod = get(&mut c, "k/", sorted(SortTarget::Mod, SortOrder::Descend)).await;
        assert_eq!(keys(&by_mod), ["k/e", "k/a", "k/d", "k/c", "k/b"]);
        let by_version = get(
            &mut c,
            "k/",
            sorted(SortTarget::Version, SortOrder::Descend).with_limit(1),
        )
        .await;
        assert_eq!(keys(&by_version), ["k/a"]);

        // Reads at a past revision.
        let old = get(&mut c, "k/a", GetOptions::new().with_revision(created[0])).await;
        assert_eq!(pairs(old.kvs()), [("k/a".into(), "3".into())]);
        let old = get(
            &mut c,
            "k/",
            GetOptions::new().with_prefix().with_revision(rev_after_b),
        )
        .await;
        assert_eq!(keys(&old), ["k/a", "k/b"]);
        let before = get(
            &mut c,
            "k/a",
            GetOptions::new().with_revision(created[0] - 1),
        )
        .await;
        assert!(
            before.kvs().is_empty(),
            "k/a did not exist before it was created"
        );

        // keys_only and count_only.
        let keys_only = get(
            &mut c,
            "k/",
            GetOptions::new().with_prefix().with_keys_only(),
        )
        .await;
        assert_eq!(keys(&keys_only), ["k/a", "k/b", "k/c", "k/d", "k/e"]);
        assert!(keys_only.kvs().iter().all(|kv| kv.value().is_empty()));
        assert_eq!(
            keys_only.kvs()[0].version(),
            2,
            "keys_only keeps the metadata"
        );
        let count_only = get(
            &mut c,
            "k/",
            GetOptions::new().with_prefix().with_count_only(),
        )
        .await;
        assert!(count_only.kvs().is_empty());
        assert_eq!(count_only.count(), 5);

        // A serializable read on every member eventually sees the last write.
        for i in 0..cluster.procs.len() {
            let mut member = connect_member(cluster, i).await;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let r = get(&mut member, "k/a", GetOptions::new().with_serializable()).await;
                if r.kvs().first().map(|kv| text(kv.value())) == Some("5".into()) {
                    break;
                }
                assert!(Instant::now() < deadline, "member {i} never applied k/a=5");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        // Deleting one key with prev_kv.
        let deleted = within(
            "delete k/a",
            c.delete("k/a", Some(DeleteOptions::new().with_prev_key())),
        )
        .await
        .expect("delete k/a");
        assert_eq!(deleted.deleted(), 1);
        assert_eq!(pairs(deleted.prev_kvs()), [("k/a".into(), "5".into())]);
        assert_eq!(revision_of(deleted.header()), revision + 1);
        revision += 1;
        // Deleting nothing is not a write.
        let nothing = within("delete missing", c.delete("k/a", None))
            .await
            .expect("delete missing");
        assert_eq!(nothing.deleted(), 0);
        assert_eq!(revision_of(nothing.header()), revision);
        // A deleted key comes back at version 1 with a new create_revision.
        let recreated = put(&mut c, "k/a", "6").await;
        assert_eq!(recreated, revision + 1);
        revision = recreated;
        let a = get(&mut c, "k/a", GetOptions::new()).await;
        assert_eq!(a.kvs()[0].version(), 1, "the version resets after a delete");
        assert_eq!(a.kvs()[0].create_revision(), recreated);

        // Deleting a range [k/b, k/d) and then a prefix, each as one revision.
        let ranged = within(
            "delete range",
            c.delete(
                "k/b",
                Some(DeleteOptions::new().with_range("k/d").with_prev_key()),
            ),
        )
        .await
        .expect("delete range");
        assert_eq!(ranged.deleted(), 2);
        assert_eq!(
            pairs(ranged.prev_kvs()),
            [("k/b".into(), "1".into()), ("k/c".into(), "4".into())]
        );
        assert_eq!(revision_of(ranged.header()), revision + 1);
        revision += 1;
        let prefixed = within(
            "delete prefix",
            c.delete("k/", Some(DeleteOptions::new().with_prefix())),
        )
        .await
        .expect("delete prefix");
        assert_eq!(prefixed.deleted(), 3, "k/a, k/d and k/e");
        assert!(prefixed.prev_kvs().is_empty(), "no prev_kvs unless asked");
        assert_eq!(revision_of(prefixed.header()), revision + 1);
        revision += 1;
        let none = get(&mut c, "k/", GetOptions::new().with_prefix()).await;
        assert_eq!(none.count(), 0);
        assert_eq!(revision_of(none.header()), revision);
        let other = get(&mut c, "l/x", GetOptions::new()).await;
        assert_eq!(
            pairs(other.kvs()),
            [("l/x".into(), "9".into())],
            "outside the deleted prefix"
        );
        // History survives deletes.
        let old = get(
            &mut c,
            "k/",
            GetOptions::new().with_prefix().with_revision(rev_after_b),
        )
        .await;
        assert_eq!(keys(&old), ["k/a", "k/b"]);
    });
}

/// The client connections hide vectored writes from h2 (`synod_server::client_io`), so h2
/// copies DATA payloads under 1 KiB into its write buffer and sends larger ones beside it.
/// Values on both sides of 256 B and 1 KiB, and one of 1 MiB (several HTTP/2 frames), come
/// back byte for byte, also when many responses share one connection at once.
fn values_across_the_http2_write_buffer_thresholds(engine: &str) {
    with_cluster(engine, async |cluster, mut c| {
        let sizes = [
            0usize,
            1,
            200,
            255,
            256,
            300,
            1000,
            1023,
            1024,
            5000,
            16 * 1024,
            1 << 20,
        ];
        let value_of = |size: usize| -> Vec<u8> { (0..size).map(|i| (i % 251) as u8).collect() };
        for size in sizes {
            let key = format!("size/{size}");
            within(
                &format!("put {key}"),
                c.put(key.as_str(), value_of(size), None),
            )
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        }
        // One connection to one member, so that the responses share it. A linearizable read
        // first makes that member apply every put above, so its serializable reads see them.
        let mut one = connect_member(cluster, 0).await;
        within("a linearizable read", one.get("size/0", None))
            .await
            .expect("a linearizable read");
        let mut reads = Vec::new();
        for round in 0..8 {
            for size in sizes {
                let mut client = one.clone();
                let serializable = round % 2 == 0;
                reads.push(tokio::spawn(async move {
                    let key = format!("size/{size}");
                    let options = if serializable {
                        GetOptions::new().with_serializable()
                    } else {
                        GetOptions::new()
                    };
                    let response = within(
                        &format!("get {key}"),
                        client.get(key.as_str(), Some(options)),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("get {key}: {e}"));
                    (size, response.kvs().first().map(|kv| kv.value().to_vec()))
                }));
            }
        }
        for read in reads {
            let (size, value) = read.await.expect("a read task");
            // Compared without printing a megabyte on failure.
            let got = value.as_ref().map(Vec::len);
            assert!(
                value == Some(value_of(size)),
                "the {size}-byte value came back changed (got {got:?} bytes)"
            );
        }
    });
}

fn transactions(engine: &str) {
    with_cluster(engine, async |_cluster, mut c| {
        let a_rev = put(&mut c, "t/a", "1").await;
        let b_rev = put(&mut c, "t/b", "2").await;
        assert_eq!(b_rev, a_rev + 1);

        // Every kind of compare holds: the success branch runs, as one revision.
        let txn = Txn::new()
            .when([
                Compare::value("t/a", CompareOp::Equal, "1"),
                Compare::value("t/a", CompareOp::NotEqual, "2"),
                Compare::value("t/b", CompareOp::Greater, "1"),
                Compare::version("t/a", CompareOp::Equal, 1),
                Compare::version("t/missing", CompareOp::Equal, 0),
                Compare::version("t/", CompareOp::Greater, 0).with_prefix(),
                Compare::create_revision("t/a", CompareOp::Equal, a_rev),
                Compare::create_revision("t/b", CompareOp::Greater, a_rev),
                Compare::mod_revision("t/b", CompareOp::Equal, b_rev),
                Compare::mod_revision("t/a", CompareOp::Less, b_rev),
                Compare::lease("t/a", CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put("t/c", "3", None),
                TxnOp::put("t/a", "1b", Some(PutOptions::new().with_prev_key())),
                TxnOp::get("t/", Some(GetOptions::new().with_prefix())),
                TxnOp::txn(
                    // etcd evaluates every compare of a transaction, nested ones too, before
                    // any of its writes (`compareToPath`): t/c does not exist yet here.
                    Txn::new()
                        .when([
                            Compare::value("t/b", CompareOp::Equal, "2"),
                            Compare::version("t/c", CompareOp::Equal, 0),
                        ])
                        .and_then([
                            TxnOp::get("t/c", None),
                            TxnOp::delete("t/b", Some(DeleteOptions::new().with_prev_key())),
                        ])
                        .or_else([TxnOp::put("t/wrong", "x", None)]),
                ),
            ])
            .or_else([TxnOp::put("t/wrong", "x", None)]);
        let response = within("txn", c.txn(txn)).await.expect("txn");
        assert!(response.succeeded(), "every compare holds");
        let txn_rev = revision_of(response.header());
        assert_eq!(txn_rev, b_rev + 1, "a transaction is one revision");
        let ops = response.op_responses();
        assert_eq!(ops.len(), 4);
        match &ops[1] {
            TxnOpResponse::Put(p) => {
                let prev = p.prev_key().expect("prev_kv in a txn put");
                assert_eq!(text(prev.value()), "1");
            }
            other => panic!("expected a put response, got {other:?}"),
        }
        match &ops[2] {
            TxnOpResponse::Get(g) => assert_eq!(
                pairs(g.kvs()),
                [
                    ("t/a".into(), "1b".into()),
                    ("t/b".into(), "2".into()),
                    ("t/c".into(), "3".into())
                ],
                "a range inside a txn sees the txn's earlier writes"
            ),
            other => panic!("expected a range response, got {other:?}"),
        }
        match &ops[3] {
            TxnOpResponse::Txn(inner) => {
                assert!(
                    inner.succeeded(),
                    "nested compares see the state before the txn"
                );
                let inner_ops = inner.op_responses();
                match &inner_ops[0] {
                    TxnOpResponse::Get(g) => {
                        assert_eq!(pairs(g.kvs()), [("t/c".into(), "3".into())]);
                        assert_eq!(g.kvs()[0].mod_revision(), txn_rev);
                    }
                    other => panic!("expected a nested range response, got {other:?}"),
                }
                match &inner_ops[1] {
                    TxnOpResponse::Delete(d) => {
                        assert_eq!(d.deleted(), 1);
                        assert_eq!(pairs(d.prev_kvs()), [("t/b".into(), "2".into())]);
                    }
                    other => panic!("expected a nested delete response, got {other:?}"),
                }
            }
            other => panic!("expected a nested txn response, got {other:?}"),
        }
        let after = get(&mut c, "t/", GetOptions::new().with_prefix()).await;
        assert_eq!(
            pairs(after.kvs()),
            [("t/a".into(), "1b".into()), ("t/c".into(), "3".into())]
        );
        assert_eq!(after.kvs()[0].version(), 2);
        assert_eq!(after.kvs()[0].mod_revision(), txn_rev);

        // Each kind of compare that fails sends the txn to its failure branch.
        let failing = [
            Compare::value("t/a", CompareOp::Equal, "1"),
            Compare::value("t/missing", CompareOp::Equal, ""),
            Compare::version("t/a", CompareOp::Less, 2),
            Compare::create_revision("t/a", CompareOp::NotEqual, a_rev),
            Compare::mod_revision("t/a", CompareOp::Greater, txn_rev),
            Compare::lease("t/a", CompareOp::NotEqual, 0),
            Compare::version("t/", CompareOp::Equal, 1).with_prefix(),
        ];
        let mut revision = txn_rev;
        for (n, compare) in failing.into_iter().enumerate() {
            let key = format!("t/f{n}");
            let txn = Txn::new()
                .when([
                    Compare::value("t/c", CompareOp::Equal, "3"),
                    compare.clone(),
                ])
                .and_then([TxnOp::put("t/wrong", "x", None)])
                .or_else([TxnOp::get("t/a", None), TxnOp::put(key.as_str(), "f", None)]);
            let response = within("failing txn", c.txn(txn)).await.expect("txn");
            assert!(!response.succeeded(), "{compare:?} should not hold");
            assert_eq!(revision_of(response.header()), revision + 1);
            revision += 1;
            match &response.op_responses()[0] {
                TxnOpResponse::Get(g) => assert_eq!(pairs(g.kvs()), [("t/a".into(), "1b".into())]),
                other => panic!("expected a range response, got {other:?}"),
            }
        }
        let wrong = get(&mut c, "t/wrong", GetOptions::new()).await;
        assert!(wrong.kvs().is_empty(), "no success branch ran");
        let failures = get(
            &mut c,
            "t/f",
            GetOptions::new().with_prefix().with_count_only(),
        )
        .await;
        assert_eq!(failures.count(), 7);

        // A transaction that only reads does not raise the revision.
        let read_only = Txn::new()
            .when([Compare::value("t/a", CompareOp::Equal, "no")])
            .and_then([TxnOp::put("t/wrong", "x", None)])
            .or_else([TxnOp::get("t/a", None)]);
        let response = within("read-only txn", c.txn(read_only))
            .await
            .expect("txn");
        assert!(!response.succeeded());
        assert_eq!(revision_of(response.header()), revision);
        let empty = within("empty txn", c.txn(Txn::new()))
            .await
            .expect("empty txn");
        assert!(empty.succeeded(), "no compares hold vacuously");
        assert_eq!(revision_of(empty.header()), revision);
    });
}

fn compaction(engine: &str) {
    with_cluster(engine, async |_cluster, mut c| {
        let r1 = put(&mut c, "c/k", "v1").await;
        let r2 = put(&mut c, "c/k", "v2").await;
        let r3 = put(&mut c, "c/k", "v3").await;
        let compacted = within("compact", c.compact(r2, None))
            .await
            .expect("compact");
        assert!(revision_of(compacted.header()) >= r3);

        let compacted_message = "etcdserver: mvcc: required revision has been compacted";
        assert_status(
            c.get("c/k", Some(GetOptions::new().with_revision(r1)))
                .await,
            Code::OutOfRange,
            compacted_message,
        );
        let at = get(&mut c, "c/k", GetOptions::new().with_revision(r2)).await;
        assert_eq!(
            pairs(at.kvs()),
            [("c/k".into(), "v2".into())],
            "the compaction revision itself stays readable"
        );
        let now = get(&mut c, "c/k", GetOptions::new()).await;
        assert_eq!(now.kvs()[0].version(), 3, "compaction keeps the version");
        assert_eq!(
            now.kvs()[0].create_revision(),
            r1,
            "and the create revision"
        );

        // A txn that reads a compacted revision fails as a whole.
        let txn = Txn::new().and_then([
            TxnOp::put("c/other", "x", None),
            TxnOp::get("c/k", Some(GetOptions::new().with_revision(r1))),
        ]);
        assert_status(c.txn(txn).await, Code::OutOfRange, compacted_message);
        let other = get(&mut c, "c/other", GetOptions::new()).await;
        assert!(other.kvs().is_empty(), "a failed txn writes nothing");
        let now_rev = revision_of(other.header());
        assert_eq!(now_rev, r3, "a failed txn takes no revision");

        // Compacting again at or below the compaction point, or past the head, fails.
        assert_status(
            c.compact(r1, None).await,
            Code::OutOfRange,
            compacted_message,
        );
        assert_status(
            c.compact(r2, None).await,
            Code::OutOfRange,
            compacted_message,
        );
        assert_status(
            c.compact(r3 + 100, None).await,
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        );
        within(
            "physical compact",
            c.compact(r3, Some(CompactionOptions::new().with_physical())),
        )
        .await
        .expect("physical compact");
        assert_status(
            c.get("c/k", Some(GetOptions::new().with_revision(r2)))
                .await,
            Code::OutOfRange,
            compacted_message,
        );
        let now = get(&mut c, "c/k", GetOptions::new()).await;
        assert_eq!(pairs(now.kvs()), [("c/k".into(), "v3".into())]);
        // Writes go on after compaction.
        assert_eq!(put(&mut c, "c/k", "v4").await, r3 + 1);
    });
}

/// Parses "MAJOR.MINOR.PATCH" with an optional "-pre" and "+build", as semver does.
fn semver(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.split('+').next()?;
    let core = core.split('-').next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((major, minor, patch))
}

fn status_member_list_and_unbuilt_services(engine: &str) {
    with_cluster(engine, async |cluster, mut c| {
        // Every member reports the same leader, which is one of the members.
        let mut leaders = Vec::new();
        let mut member_ids = Vec::new();
        let mut cluster_ids = Vec::new();
        for i in 0..cluster.procs.len() {
            let mut member = connect_member(cluster, i).await;
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                let status = within("status", member.status()).await.expect("status");
                // A follower may not have applied the ready write yet.
                let settled = status.leader() != 0 && status.db_size() > 0;
                if settled || Instant::now() > deadline {
                    break status;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert_ne!(status.leader(), 0, "member {i} knows no leader");
            assert!(status.raft_term() >= 1, "a leader was elected in a term");
            assert!(status.raft_index() >= 1, "the ready write committed");
            assert!(status.errors().is_empty(), "errors: {:?}", status.errors());
            assert_eq!(
                semver(status.version()).map(|(major, minor, _)| (major, minor)),
                Some((3, 5)),
                "version {:?} is not 3.5.x semver",
                status.version()
            );
            assert!(status.db_size() > 0);
            let header = status.header().expect("a status header");
            leaders.push(status.leader());
            member_ids.push(header.member_id());
            cluster_ids.push(header.cluster_id());
        }
        assert!(
            leaders.iter().all(|l| *l == leaders[0]),
            "leaders: {leaders:?}"
        );
        assert!(
            member_ids.contains(&leaders[0]),
            "the leader {} is a member {member_ids:?}",
            leaders[0]
        );
        let mut distinct = member_ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "member ids {member_ids:?}");
        assert!(
            cluster_ids
                .iter()
                .all(|id| *id == cluster_ids[0] && *id != 0)
        );

        // The raft index rises with writes.
        let before = within("status", c.status())
            .await
            .expect("status")
            .raft_index();
        put(&mut c, "s/k", "v").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let after = within("status", c.status())
                .await
                .expect("status")
                .raft_index();
            if after > before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "raft_index stayed at {before} after a write"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // MemberList names every member with its peer URL.
        let list = within("member list", c.member_list())
            .await
            .expect("member list");
        let mut listed: Vec<(String, Vec<String>, u64)> = list
            .members()
            .iter()
            .map(|m| (m.name().to_string(), m.peer_urls().to_vec(), m.id()))
            .collect();
        listed.sort();
        let expected: Vec<(String, Vec<String>)> = cluster
            .procs
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    vec![format!("http://127.0.0.1:{}", p.peer_port)],
                )
            })
            .collect();
        assert_eq!(
            listed
                .iter()
                .map(|(n, u, _)| (n.clone(), u.clone()))
                .collect::<Vec<_>>(),
            expected
        );
        let mut listed_ids: Vec<u64> = listed.iter().map(|(_, _, id)| *id).collect();
        listed_ids.sort_unstable();
        assert_eq!(
            listed_ids, distinct,
            "MemberList ids are the members' header ids"
        );
        assert!(list.members().iter().all(|m| !m.is_learner()));

        // Lease, Watch and Auth are not built: each answers Unimplemented at once, not a hang.
        let prompt = Duration::from_secs(3);
        let started = Instant::now();
        let grant = tokio::time::timeout(prompt, c.lease_grant(10, None))
            .await
            .expect("LeaseGrant answers promptly");
        assert_eq!(
            grpc_status(&grant.expect_err("LeaseGrant is not built")).0,
            Code::Unimplemented
        );
        let revoke = tokio::time::timeout(prompt, c.lease_revoke(1))
            .await
            .expect("LeaseRevoke answers promptly");
        assert_eq!(
            grpc_status(&revoke.expect_err("LeaseRevoke is not built")).0,
            Code::Unimplemented
        );
        let watch = tokio::time::timeout(prompt, c.watch("s/k", None))
            .await
            .expect("Watch answers promptly");
        match watch {
            Err(e) => assert_eq!(grpc_status(&e).0, Code::Unimplemented),
            Ok(mut stream) => {
                // Some clients only see the status on the first message.
                let first = tokio::time::timeout(prompt, stream.message())
                    .await
                    .expect("the watch stream ends promptly");
                assert_eq!(
                    grpc_status(&first.expect_err("Watch is not built")).0,
                    Code::Unimplemented
                );
            }
        }
        let users = tokio::time::timeout(prompt, c.user_list())
            .await
            .expect("Auth.UserList answers promptly");
        assert_eq!(
            grpc_status(&users.expect_err("Auth is not built")).0,
            Code::Unimplemented
        );
        let auth = tokio::time::timeout(prompt, c.auth_enable())
            .await
            .expect("Auth.AuthEnable answers promptly");
        assert_eq!(
            grpc_status(&auth.expect_err("Auth is not built")).0,
            Code::Unimplemented
        );
        assert!(started.elapsed() < REQUEST_TIMEOUT);

        // The client still works after those.
        put(&mut c, "s/k", "w").await;
        let k = get(&mut c, "s/k", GetOptions::new()).await;
        assert_eq!(pairs(k.kvs()), [("s/k".into(), "w".into())]);
    });
}
