//! A member writes its snapshots a chunk at a time while it goes on applying writes (thesis
//! §5.1: snapshots must not stall the state machine); a compaction meanwhile takes effect at
//! once, but the history it forgets is removed only once the snapshot is on disk (removed
//! sooner, the snapshot fails and the member stops). Here one member takes a snapshot every
//! 150 entries of a store of a few megabytes while 16 writers put, delete and compact; then it
//! restarts from its directory, and the store it rebuilds from its newest snapshot and log
//! must be the store it had.

use std::time::{Duration, Instant};

use bytes::Bytes;
use synod_kv::command::Command;
use synod_kv::{DeleteRangeRequest, MvccStore, PutRequest};
use synod_server::settings::{EngineKind, Settings, parse_initial_cluster};

mod common;

const WRITERS: u64 = 16;
const WRITES_PER_WRITER: u64 = 150;
const KEYS: u64 = 500;
const VALUE_BYTES: usize = 4096;
/// The whole test's bound (it takes a second or two).
const LIMIT: Duration = Duration::from_secs(60);

/// A one-member cluster that snapshots every 150 entries.
fn settings(dir: &std::path::Path, engine: EngineKind) -> Settings {
    let mut settings = common::settings(dir, Duration::from_millis(10), Duration::from_millis(100));
    settings.initial_cluster =
        parse_initial_cluster(&format!("a=http://{}", settings.listen_peer)).unwrap();
    settings.snapshot_count = 150;
    settings.engine = engine;
    settings
}

fn key(k: u64) -> Bytes {
    Bytes::from(format!("key-{k:04}"))
}

/// A small deterministic generator (xorshift), one per writer.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn writes_snapshots_between_writes_and_compactions(engine: EngineKind) {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path(), engine);
    let member = synod_server::start(settings.clone()).await.unwrap();
    let handle = member.handle().clone();
    wait_until("the member leads", || {
        handle.status.borrow().leader == Some(member.id)
    })
    .await;

    // Every key once, so that each snapshot holds a few megabytes.
    for k in 0..KEYS {
        let put = PutRequest {
            key: key(k),
            value: Bytes::from(vec![b'v'; VALUE_BYTES]),
            ..PutRequest::default()
        };
        handle.write(Command::Put(put)).await.unwrap();
    }

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let handle = handle.clone();
        writers.push(tokio::spawn(async move {
            let mut state = 0x9e37_79b9_7f4a_7c15 ^ (w + 1);
            for i in 0..WRITES_PER_WRITER {
                let roll = next(&mut state);
                let k = roll % KEYS;
                let command = match roll % 20 {
                    0 => Command::Compact {
                        revision: handle.kv().store.revision() - 100,
                        physical: false,
                    },
                    1..=3 => Command::DeleteRange(DeleteRangeRequest {
                        key: key(k),
                        ..DeleteRangeRequest::default()
                    }),
                    _ => Command::Put(PutRequest {
                        key: key(k),
                        value: Bytes::from(vec![(w * 7 + i) as u8; VALUE_BYTES]),
                        ..PutRequest::default()
                    }),
                };
                let compaction = matches!(command, Command::Compact { .. });
                match handle.write(command).await {
                    Ok(_) => {}
                    // Two writers may compact to the same revision.
                    Err(error) if compaction && error.to_string().contains("compacted") => {}
                    Err(error) => panic!("writer {w}, write {i}: {error}"),
                }
            }
        }));
    }
    for writer in writers {
        tokio::time::timeout(LIMIT, writer)
            .await
            .expect("the writers finish")
            .unwrap();
    }

    let (mut before, applied): (MvccStore, u64) = {
        let kv = handle.kv();
        (kv.store.clone(), kv.applied)
    };
    let snapshot_index = handle.status.borrow().snapshot_index;
    assert!(
        snapshot_index >= applied - 2 * 150 && snapshot_index > 0,
        "snapshots kept up: the newest at {snapshot_index}, {applied} applied"
    );
    assert!(before.compacted_revision() > 0, "some compaction ran");
    before.check().unwrap();
    // A snapshot may be being written, and history wait to be removed: a restart removes it.
    before.remove_compacted();
    member.stopper().stop();
    tokio::time::timeout(LIMIT, member.wait())
        .await
        .expect("the member stops")
        .unwrap();

    // The same flags (the cluster's id comes from its peer URLs).
    let member = match synod_server::start(settings).await {
        Ok(member) => member,
        Err(error) => panic!("the member does not restart: {error} ({error:?})"),
    };
    let handle = member.handle().clone();
    wait_until("the restarted member applies its log", || {
        handle.kv().applied >= applied
    })
    .await;
    let mut after = handle.kv().store.clone();
    after.remove_compacted();
    assert_eq!(after.revision(), before.revision());
    assert_eq!(after.compacted_revision(), before.compacted_revision());
    assert!(after == before, "the restarted member's store differs");
    member.stopper().stop();
    tokio::time::timeout(LIMIT, member.wait())
        .await
        .expect("the member stops")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_snapshots_written_between_writes_and_compactions_restore_the_same_store() {
    writes_snapshots_between_writes_and_compactions(EngineKind::Raft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paxos_snapshots_written_between_writes_and_compactions_restore_the_same_store() {
    writes_snapshots_between_writes_and_compactions(EngineKind::MultiPaxos).await;
}
