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
    // The round's writer learns that the log failed; it is not told its batch is durable.
    assert!(matches!(log.commit(batch(2)), Err(WalError::Poisoned)));
    assert!(matches!(log.commit(batch(3)), Err(WalError::Poisoned)));
    drop(log);
    fs.crash();
    let (_, recovered) = open(&fs);
    assert_eq!(recovered, 1, "only the acknowledged batch is durable");
}

#[test]
fn a_full_disk_refuses_the_round_and_the_log_goes_on_once_space_returns() {
    let fs = FaultFs::new();
    let (wal, _) = open(&fs);
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
