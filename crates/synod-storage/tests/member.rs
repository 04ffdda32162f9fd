//! Recovering a member that crashed while installing a snapshot from the leader: the snapshot
//! is durable in the snapshot store, the log batch that drops the old entries is not. What it
//! boots from follows the recovery rule of `synod_storage::member`, per protocol.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bytes::Bytes;
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use synod_core::{Entry, Index, Membership, Payload, SnapshotMeta, Term};
use synod_storage::fault::FaultFs;
use synod_storage::member::{self, BootState, LogPolicy};
use synod_storage::snapshot::SnapshotStore;
use synod_storage::wal::{Recovered, Wal, WalBatch, WalOptions};

const WAL_DIR: &str = "/member/wal";
const SNAPSHOT_DIR: &str = "/member/snap";

fn entry(index: Index, term: Term) -> Entry {
    Entry {
        term,
        index,
        payload: Payload::Command(Bytes::from(format!("{index}@{term}"))),
    }
}

fn snapshot(index: Index, term: Term) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        membership: Membership {
            voters: BTreeSet::from([1, 2, 3]),
            voters_outgoing: BTreeSet::new(),
            learners: BTreeSet::new(),
        },
    }
}

fn open_wal(fs: &FaultFs) -> (Wal<FaultFs>, Recovered) {
    Wal::open(fs.clone(), Path::new(WAL_DIR), WalOptions::default()).expect("the log opens")
}

fn open_snapshots(fs: &FaultFs) -> SnapshotStore<FaultFs> {
    SnapshotStore::open(fs.clone(), SNAPSHOT_DIR.into(), 2).expect("the store opens")
}

/// A member whose log durably holds `log` (index, term) and the hard state `old`, that then
/// receives the snapshot `installed` from the leader: the snapshot store makes it durable, the
/// log batch that replaces the whole log (`truncate_from: Some(0)`, as the simulator's
/// `persist` writes it) is queued, and the power fails before that batch is synced. With
/// `truncation_synced`, the crash comes after the sync instead.
///
/// Returns the newest snapshot and what the log recovered, after reopening both.
fn crash_installing(
    log: &[(Index, Term)],
    installed: &SnapshotMeta,
    truncation_synced: bool,
) -> (SnapshotMeta, Recovered) {
    let fs = FaultFs::new();
    let (mut wal, _) = open_wal(&fs);
    let mut store = open_snapshots(&fs);
    let mut initial = store.begin(snapshot(0, 0)).expect("begins");
    initial.write_chunk(b"empty").expect("writes");
    initial.finish().expect("the initial snapshot is stored");
    wal.append(&WalBatch {
        hard_state: Some(b"old".to_vec()),
        entries: log
            .iter()
            .map(|&(index, term)| entry(index, term))
            .collect(),
        ..WalBatch::default()
    })
    .expect("appends");
    wal.sync().expect("the old log is durable");

    let mut writer = store.begin(installed.clone()).expect("begins");
    for chunk in [b"state machine ".as_slice(), b"from the leader"] {
        writer.write_chunk(chunk).expect("writes");
    }
    writer.finish().expect("the snapshot is durable");
    wal.append(&WalBatch {
        hard_state: Some(b"new".to_vec()),
        truncate_from: Some(0),
        entries: Vec::new(),
    })
    .expect("appends");
    if truncation_synced {
        wal.sync().expect("the truncation is durable");
    }
    drop((wal, store));
    fs.crash();

    let (_, recovered) = open_wal(&fs);
    let store = open_snapshots(&fs);
    let newest = store.newest().cloned().expect("a snapshot survives");
    assert_eq!(
        &newest, installed,
        "the snapshot was durable before the crash"
    );
    assert_eq!(
        store.read_all(newest.index).expect("reads"),
        b"state machine from the leader"
    );
    (newest, recovered)
}

fn indexes(boot: &BootState) -> Vec<(Index, Term)> {
    boot.entries.values().map(|e| (e.index, e.term)).collect()
}

/// The warnings `member::recover` added (the log's own come first).
fn dropped(boot: &BootState) -> Vec<&String> {
    boot.warnings
        .iter()
        .filter(|w| w.starts_with("dropped"))
        .collect()
}

/// The old log of every test below: entries 1 to 8.
const OLD_LOG: [(Index, Term); 8] = [
    (1, 1),
    (2, 1),
    (3, 2),
    (4, 2),
    (5, 3),
    (6, 3),
    (7, 3),
    (8, 4),
];

#[test]
fn section7_install_snapshot_crash_before_log_truncation_retains_entries_following_a_matching_entry()
 {
    // The snapshot's last included entry is (5, 3), which the log holds: Raft §7 retains the
    // entries following it, and Multi-Paxos keeps them anyway.
    let (meta, recovered) = crash_installing(&OLD_LOG, &snapshot(5, 3), false);
    assert_eq!(recovered.hard_state, Some(b"old".to_vec()));
    for policy in [LogPolicy::LogMatching, LogPolicy::IndependentSlots] {
        let boot = member::recover(recovered.clone(), &meta, policy);
        assert_eq!(indexes(&boot), [(6, 3), (7, 3), (8, 4)], "{policy:?}");
        assert_eq!(boot.hard_state, Some(b"old".to_vec()));
        assert!(dropped(&boot).is_empty(), "{policy:?}: {:?}", boot.warnings);
    }
}

#[test]
fn section7_install_snapshot_crash_before_log_truncation_drops_the_suffix_of_an_entry_with_another_term()
 {
    // The leader's entry 5 has term 4; the log's has term 3. Everything above it is from a
    // history the leader does not share, so none of it can be committed: Raft drops it all.
    let (meta, recovered) = crash_installing(&OLD_LOG, &snapshot(5, 4), false);
    let raft = member::recover(recovered.clone(), &meta, LogPolicy::LogMatching);
    assert!(raft.entries.is_empty(), "{:?}", indexes(&raft));
    let warnings = dropped(&raft);
    assert_eq!(warnings.len(), 1, "{:?}", raft.warnings);
    assert!(
        warnings[0].starts_with("dropped 3 log entries"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("divergent"), "{}", warnings[0]);

    // A Multi-Paxos acceptor never forgets a value it accepted: each slot stands on its own.
    let paxos = member::recover(recovered, &meta, LogPolicy::IndependentSlots);
    assert_eq!(indexes(&paxos), [(6, 3), (7, 3), (8, 4)]);
    assert!(dropped(&paxos).is_empty(), "{:?}", paxos.warnings);
}

#[test]
fn section7_install_snapshot_crash_before_log_truncation_drops_entries_with_terms_below_the_snapshot()
 {
    // The snapshot reaches past the log's own snapshot point with a term the log's entries
    // above it never reach (a log that begins above the snapshot's index, as after compaction).
    let log = [(6, 2), (7, 2), (8, 3)];
    let (meta, recovered) = crash_installing(&log, &snapshot(5, 3), false);
    let raft = member::recover(recovered.clone(), &meta, LogPolicy::LogMatching);
    assert!(raft.entries.is_empty(), "{:?}", indexes(&raft));
    let warnings = dropped(&raft);
    assert_eq!(warnings.len(), 1, "{:?}", raft.warnings);
    assert!(warnings[0].starts_with("dropped 3 log entries from index 6"));
    assert!(
        warnings[0].contains("below the snapshot's term 3"),
        "{}",
        warnings[0]
    );
    let paxos = member::recover(recovered, &meta, LogPolicy::IndependentSlots);
    assert_eq!(indexes(&paxos), log);
}

#[test]
fn section7_install_snapshot_past_the_end_of_the_log_leaves_nothing_above_it() {
    let (meta, recovered) = crash_installing(&OLD_LOG, &snapshot(12, 5), false);
    for policy in [LogPolicy::LogMatching, LogPolicy::IndependentSlots] {
        let boot = member::recover(recovered.clone(), &meta, policy);
        assert!(boot.entries.is_empty(), "{policy:?}");
        assert!(dropped(&boot).is_empty(), "{policy:?}: {:?}", boot.warnings);
    }
}

#[test]
fn multi_paxos_crash_before_log_truncation_keeps_every_accepted_slot_gaps_and_all() {
    // Slots accepted out of order, in different ballots, with gaps.
    let log = [(2, 1), (6, 3), (7, 2), (9, 5)];
    let (meta, recovered) = crash_installing(&log, &snapshot(4, 2), false);
    let paxos = member::recover(recovered.clone(), &meta, LogPolicy::IndependentSlots);
    assert_eq!(indexes(&paxos), [(6, 3), (7, 2), (9, 5)]);
    assert!(dropped(&paxos).is_empty(), "{:?}", paxos.warnings);

    // The same log under Raft's rule: slot 5 is missing, so nothing continues the snapshot.
    let raft = member::recover(recovered, &meta, LogPolicy::LogMatching);
    assert!(raft.entries.is_empty());
    let warnings = dropped(&raft);
    assert!(
        warnings.len() == 1 && warnings[0].contains("a gap: index 5 is missing"),
        "{warnings:?}"
    );
}

#[test]
fn section7_install_snapshot_with_the_truncation_durable_boots_from_the_snapshot_alone() {
    let (meta, recovered) = crash_installing(&OLD_LOG, &snapshot(5, 3), true);
    assert_eq!(recovered.hard_state, Some(b"new".to_vec()));
    for policy in [LogPolicy::LogMatching, LogPolicy::IndependentSlots] {
        let boot = member::recover(recovered.clone(), &meta, policy);
        assert!(boot.entries.is_empty(), "{policy:?}");
        assert_eq!(boot.hard_state, Some(b"new".to_vec()));
        assert!(boot.warnings.is_empty(), "{policy:?}: {:?}", boot.warnings);
    }
}

#[test]
fn log_matching_keeps_the_run_before_a_term_that_decreases() {
    let recovered = Recovered {
        entries: [(6, 3), (7, 4), (8, 3), (9, 4)]
            .into_iter()
            .map(|(index, term)| (index, entry(index, term)))
            .collect(),
        warnings: vec!["from the log".to_string()],
        ..Recovered::default()
    };
    let boot = member::recover(recovered, &snapshot(5, 3), LogPolicy::LogMatching);
    assert_eq!(indexes(&boot), [(6, 3), (7, 4)]);
    assert_eq!(boot.warnings[0], "from the log");
    let warnings = dropped(&boot);
    assert!(
        warnings.len() == 1
            && warnings[0].starts_with("dropped 2 log entries from index 8")
            && warnings[0].contains("below the preceding entry's term 4"),
        "{warnings:?}"
    );
}

/// The rule against its statement, on random logs: `IndependentSlots` keeps exactly the entries
/// above the snapshot; `LogMatching` keeps a prefix of them that is contiguous from the snapshot
/// with non-decreasing terms, stops only where the next entry breaks that, keeps nothing if the
/// entry at the snapshot's index has another term, and warns exactly when it dropped something.
#[test]
fn the_rule_holds_on_random_logs() {
    let mut rng = XorShiftRng::seed_from_u64(7);
    for case in 0..2000 {
        let mut entries = BTreeMap::new();
        let mut term: Term = 1;
        for index in 1..=rng.next_u64() % 16 {
            if rng.next_u64().is_multiple_of(5) {
                continue; // a gap
            }
            match rng.next_u64() % 8 {
                0 => term = term.saturating_sub(1).max(1),
                1 | 2 => term += 1,
                _ => {}
            }
            entries.insert(index, entry(index, term));
        }
        let meta = snapshot(rng.next_u64() % 10, 1 + rng.next_u64() % 4);
        let recovered = Recovered {
            entries: entries.clone(),
            ..Recovered::default()
        };
        let above: Vec<Entry> = entries
            .range(meta.index + 1..)
            .map(|(_, e)| e.clone())
            .collect();

        let paxos = member::recover(recovered.clone(), &meta, LogPolicy::IndependentSlots);
        assert_eq!(paxos.entries.values().cloned().collect::<Vec<_>>(), above);
        assert!(paxos.warnings.is_empty());

        let raft = member::recover(recovered, &meta, LogPolicy::LogMatching);
        let kept: Vec<Entry> = raft.entries.values().cloned().collect();
        assert_eq!(kept[..], above[..kept.len()], "case {case}: not a prefix");
        let mut previous = (meta.index, meta.term);
        for e in &kept {
            assert_eq!(e.index, previous.0 + 1, "case {case}: a gap kept");
            assert!(e.term >= previous.1, "case {case}: a term decrease kept");
            previous = (e.index, e.term);
        }
        let divergent = entries
            .get(&meta.index)
            .is_some_and(|e| e.term != meta.term);
        if divergent {
            assert!(kept.is_empty(), "case {case}");
        } else if let Some(next) = above.get(kept.len()) {
            assert!(
                next.index != previous.0 + 1 || next.term < previous.1,
                "case {case}: stopped at {next:?}, which continues the run"
            );
        }
        assert_eq!(
            dropped(&raft).len(),
            usize::from(kept.len() < above.len()),
            "case {case}: {:?}",
            raft.warnings
        );
    }
}
