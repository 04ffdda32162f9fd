//! Group commit: concurrent writers share fdatasyncs, every acknowledged batch is durable, and
//! a failed fdatasync fails every writer rather than being retried.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use synod_core::{Entry, Payload};
use synod_storage::fault::FaultFs;
use synod_storage::group::GroupCommit;
use synod_storage::wal::{Wal, WalBatch, WalError, WalOptions};

fn batch(index: u64) -> WalBatch {
    WalBatch {
        entries: vec![Entry {
            term: 1,
            index,
            payload: Payload::Command(Bytes::from(vec![index as u8; 256])),
        }],
        ..WalBatch::default()
    }
}

fn open(fs: &FaultFs) -> (Wal<FaultFs>, usize) {
    let (wal, recovered) =
        Wal::open(fs.clone(), Path::new("/wal"), WalOptions::default()).expect("opens");
    (wal, recovered.entries.len())
}

#[test]
fn concurrent_writers_share_fdatasyncs_and_every_acknowledged_batch_survives_a_crash() {
    let fs = FaultFs::new();
    let (wal, _) = open(&fs);
    let log = Arc::new(GroupCommit::new(wal));
    let syncs_before = fs.sync_count();
    let writers: Vec<_> = (0..32u64)
        .map(|writer| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for op in 0..50 {
                    log.commit(batch(writer * 50 + op + 1)).expect("commit");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let syncs = fs.sync_count() - syncs_before;
    assert_eq!(log.rounds(), syncs);
    assert!(syncs < 1_600, "{syncs} fdatasyncs for 1,600 commits");
    drop(log);
    fs.crash();
    let (_, recovered) = open(&fs);
    assert_eq!(recovered, 1_600);
}

#[test]
fn a_failed_fdatasync_fails_the_round_and_every_later_commit() {
    let fs = FaultFs::new();
    let (wal, _) = open(&fs);
    let log = GroupCommit::new(wal);
    log.commit(batch(1)).unwrap();
    fs.fail_next_sync();
    // The lone writer wrote its batch itself and gets the fdatasync's error; it is not told
    // its batch is durable.
    let error = log.commit(batch(2)).expect_err("the sync failed");
    assert!(
        matches!(
            error,
            WalError::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{error}"
    );
    assert!(matches!(log.commit(batch(3)), Err(WalError::Poisoned)));
    drop(log);
    fs.crash();
    let (_, recovered) = open(&fs);
    assert_eq!(recovered, 1, "only the acknowledged batch is durable");
}

#[test]
fn a_full_disk_refuses_the_round_and_the_log_goes_on_once_space_returns() {
    let fs = FaultFs::new();
    // Without preallocation, so that every round grows the file and the full disk refuses it
    // (a round that fits in preallocated space needs no room).
    let options = WalOptions {
        preallocate_bytes: 0,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(fs.clone(), Path::new("/wal"), options).expect("opens");
    let log = GroupCommit::new(wal);
    log.commit(batch(1)).unwrap();
    fs.set_capacity(Some(100));
    assert!(matches!(
        log.commit(batch(2)),
        Err(WalError::StorageFull { .. })
    ));
    fs.set_capacity(None);
    log.commit(batch(3)).unwrap();
    drop(log);
    fs.crash();
    let (_, recovered) = open(&fs);
    assert_eq!(recovered, 2);
}

#[test]
fn a_failed_fdatasync_in_a_flusher_round_fails_every_writer_of_it() {
    let fs = FaultFs::new();
    let (wal, _) = open(&fs);
    let log = Arc::new(GroupCommit::new(wal));
    log.commit(batch(1)).unwrap();
    fs.fail_next_sync();
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || log.commit(batch(10 + w)))
        })
        .collect();
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(results.iter().all(Result::is_err), "{results:?}");
    assert!(matches!(log.commit(batch(99)), Err(WalError::Poisoned)));
    drop(log);
    fs.crash();
    let (_, recovered) = open(&fs);
    assert_eq!(recovered, 1, "only the acknowledged batch is durable");
}

#[test]
fn async_writers_share_fdatasyncs_and_survive_a_crash() {
    let fs = FaultFs::new();
    let (wal, _) = open(&fs);
    let log = Arc::new(GroupCommit::new(wal));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..64u64)
            .map(|task| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    for op in 0..20 {
                        log.commit_async(batch(task * 20 + op + 1)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert!(log.rounds() < 1_280, "{} rounds", log.rounds());
    drop(log);
    fs.crash();
    let (_, recovered) = open(&fs);
    assert_eq!(recovered, 1_280);
}
