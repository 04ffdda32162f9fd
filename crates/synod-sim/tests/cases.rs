//! Small hand-written histories whose verdicts can be worked out on paper. Each operation is
//! written `client, [call, return]` or `[call, ?]` when its outcome is unknown.

use synod_sim::history::{History, Operation, Outcome};
use synod_sim::linearizability::{self, KvInput, KvModel, KvOutput, Verdict};

const K: u64 = 0;

fn returned(
    client: u64,
    call: u64,
    ret: u64,
    input: KvInput,
    output: KvOutput,
) -> Operation<KvInput, KvOutput> {
    Operation {
        client,
        call,
        input,
        outcome: Outcome::Returned { time: ret, output },
    }
}

fn unknown(client: u64, call: u64, input: KvInput) -> Operation<KvInput, KvOutput> {
    Operation {
        client,
        call,
        input,
        outcome: Outcome::Unknown,
    }
}

fn no_effect(client: u64, call: u64, input: KvInput) -> Operation<KvInput, KvOutput> {
    Operation {
        client,
        call,
        input,
        outcome: Outcome::NoEffect,
    }
}

fn put(client: u64, call: u64, ret: u64, value: u64) -> Operation<KvInput, KvOutput> {
    returned(
        client,
        call,
        ret,
        KvInput::Put { key: K, value },
        KvOutput::Put,
    )
}

fn get(client: u64, call: u64, ret: u64, seen: Option<u64>) -> Operation<KvInput, KvOutput> {
    returned(
        client,
        call,
        ret,
        KvInput::Get { key: K },
        KvOutput::Get(seen),
    )
}

fn cas(
    client: u64,
    call: u64,
    ret: u64,
    expected: Option<u64>,
    new: u64,
    swapped: bool,
) -> Operation<KvInput, KvOutput> {
    returned(
        client,
        call,
        ret,
        KvInput::CompareAndSet {
            key: K,
            expected,
            new,
        },
        KvOutput::CompareAndSet { swapped },
    )
}

fn check(operations: &[Operation<KvInput, KvOutput>]) -> Verdict<KvModel> {
    let history: History<_, _> = operations.iter().cloned().collect();
    linearizability::check(&KvModel, &history)
}

fn linearizable(operations: &[Operation<KvInput, KvOutput>]) -> bool {
    check(operations).is_linearizable()
}

/// The piece the checker reports, as positions in `operations`.
fn piece(operations: &[Operation<KvInput, KvOutput>]) -> Vec<usize> {
    let verdict = check(operations);
    let violation = verdict.violation().expect("not linearizable");
    violation.op_ids.iter().map(|id| id.0).collect()
}

#[test]
fn empty_history_is_linearizable() {
    assert!(linearizable(&[]));
}

#[test]
fn read_after_a_completed_write_must_see_it() {
    assert!(linearizable(&[put(1, 0, 10, 1), get(2, 20, 30, Some(1))]));
    // A stale read: the write had returned before the read was called.
    let stale = [put(1, 0, 10, 1), get(2, 20, 30, None)];
    assert!(!linearizable(&stale));
    assert_eq!(piece(&stale), [0, 1]);
}

#[test]
fn read_concurrent_with_a_write_may_see_either() {
    assert!(linearizable(&[put(1, 0, 10, 1), get(2, 5, 15, None)]));
    assert!(linearizable(&[put(1, 0, 10, 1), get(2, 5, 15, Some(1))]));
    assert!(!linearizable(&[put(1, 0, 10, 1), get(2, 5, 15, Some(2))]));
}

#[test]
fn touching_intervals_are_concurrent() {
    // The read is called at the very tick the write returns: no order between them is known.
    assert!(linearizable(&[put(1, 0, 10, 1), get(2, 10, 20, None)]));
    assert!(!linearizable(&[put(1, 0, 10, 1), get(2, 11, 20, None)]));
}

#[test]
fn concurrent_writes_take_effect_in_either_order() {
    let writes = [put(1, 0, 10, 1), put(2, 5, 15, 2)];
    for seen in [Some(1), Some(2)] {
        let mut history = writes.to_vec();
        history.push(get(3, 20, 30, seen));
        assert!(linearizable(&history), "reading {seen:?}");
    }
    let mut neither = writes.to_vec();
    neither.push(get(3, 20, 30, None));
    assert!(!linearizable(&neither));
}

#[test]
fn once_readers_see_an_order_of_writes_it_sticks() {
    // Both writes are over before either read; reading 2 then 1 would need them in both orders.
    let history = [
        put(1, 0, 10, 1),
        put(2, 5, 15, 2),
        get(3, 20, 30, Some(2)),
        get(3, 40, 50, Some(1)),
    ];
    assert!(!linearizable(&history));
    // The same reads while the writes are still running are fine.
    let overlapping = [
        put(1, 0, 100, 1),
        put(2, 5, 15, 2),
        get(3, 20, 30, Some(2)),
        get(3, 40, 50, Some(1)),
    ];
    assert!(linearizable(&overlapping));
}

#[test]
fn a_timed_out_write_may_be_observed_later() {
    let write = unknown(1, 0, KvInput::Put { key: K, value: 1 });
    assert!(linearizable(&[write.clone(), get(2, 20, 30, Some(1))]));
    // Long after the call, even after other reads saw nothing.
    assert!(linearizable(&[
        write.clone(),
        get(2, 20, 30, None),
        get(2, 1_000, 1_010, Some(1)),
    ]));
}

#[test]
fn a_timed_out_write_may_never_take_effect() {
    let write = unknown(1, 0, KvInput::Put { key: K, value: 1 });
    assert!(linearizable(&[write.clone(), get(2, 20, 30, None)]));
    assert!(linearizable(&[write, get(2, 1_000, 1_010, None)]));
}

#[test]
fn a_timed_out_write_takes_effect_at_most_once_and_not_before_its_call() {
    let write = unknown(1, 10, KvInput::Put { key: K, value: 1 });
    // Seen, then overwritten, then seen again: it would have to take effect twice.
    let twice = [
        write.clone(),
        get(2, 20, 30, Some(1)),
        put(3, 40, 50, 2),
        get(2, 60, 70, Some(1)),
    ];
    assert!(!linearizable(&twice));
    // Seen, then not: nothing deletes it.
    assert!(!linearizable(&[
        write.clone(),
        get(2, 20, 30, Some(1)),
        get(2, 40, 50, None),
    ]));
    // Seen by a read that returned before the write was even called.
    assert!(!linearizable(&[get(2, 0, 5, Some(1)), write]));
}

#[test]
fn a_failed_compare_and_set_is_an_observation() {
    // The register certainly holds 1 when the compare-and-set runs, so it must swap.
    let wrongly_failed = [put(1, 0, 10, 1), cas(2, 20, 30, Some(1), 2, false)];
    assert!(!linearizable(&wrongly_failed));
    assert_eq!(piece(&wrongly_failed), [0, 1]);
    // Expecting another value, or absence, it fails rightly.
    assert!(linearizable(&[
        put(1, 0, 10, 1),
        cas(2, 20, 30, Some(3), 2, false)
    ]));
    assert!(linearizable(&[
        put(1, 0, 10, 1),
        cas(2, 20, 30, None, 2, false)
    ]));
    // Concurrent with the write, it may run before it, on an empty register.
    assert!(linearizable(&[
        put(1, 0, 10, 1),
        cas(2, 5, 8, Some(1), 2, false)
    ]));
    // A failed compare-and-set writes nothing.
    assert!(!linearizable(&[
        put(1, 0, 10, 1),
        cas(2, 20, 30, Some(3), 2, false),
        get(1, 40, 50, Some(2)),
    ]));
}

#[test]
fn a_successful_compare_and_set_needs_the_expected_value() {
    assert!(linearizable(&[
        put(1, 0, 10, 1),
        cas(2, 20, 30, Some(1), 2, true),
        get(1, 40, 50, Some(2)),
    ]));
    assert!(linearizable(&[
        cas(2, 0, 10, None, 2, true),
        get(1, 20, 30, Some(2))
    ]));
    assert!(!linearizable(&[
        put(1, 0, 10, 1),
        cas(2, 20, 30, Some(3), 2, true)
    ]));
    // Two compare-and-sets from the same value cannot both swap.
    assert!(!linearizable(&[
        put(1, 0, 10, 1),
        cas(2, 20, 40, Some(1), 2, true),
        cas(3, 20, 40, Some(1), 3, true),
    ]));
}

#[test]
fn a_timed_out_compare_and_set_may_or_may_not_have_swapped() {
    let swap = unknown(
        2,
        20,
        KvInput::CompareAndSet {
            key: K,
            expected: Some(1),
            new: 2,
        },
    );
    for seen in [Some(1), Some(2)] {
        assert!(linearizable(&[
            put(1, 0, 10, 1),
            swap.clone(),
            get(3, 30, 40, seen)
        ]));
    }
    // But it can only swap from 1.
    assert!(!linearizable(&[
        put(1, 0, 10, 5),
        swap,
        get(3, 30, 40, Some(2))
    ]));
}

#[test]
fn delete_empties_the_key() {
    let delete = returned(2, 20, 30, KvInput::Delete { key: K }, KvOutput::Delete);
    assert!(linearizable(&[
        put(1, 0, 10, 1),
        delete.clone(),
        get(1, 40, 50, None)
    ]));
    assert!(!linearizable(&[
        put(1, 0, 10, 1),
        delete,
        get(1, 40, 50, Some(1))
    ]));
}

#[test]
fn operations_without_effect_and_unknown_reads_constrain_nothing() {
    // A write that certainly failed cannot be observed.
    let failed = no_effect(1, 0, KvInput::Put { key: K, value: 5 });
    assert!(!linearizable(&[failed.clone(), get(2, 20, 30, Some(5))]));
    assert!(linearizable(&[failed, get(2, 20, 30, None)]));
    // A read that never returned says nothing, even next to a stale one... which still fails.
    let lost_read = unknown(3, 0, KvInput::Get { key: K });
    assert!(linearizable(&[lost_read.clone(), put(1, 5, 10, 1)]));
    assert!(!linearizable(&[
        lost_read,
        put(1, 5, 10, 1),
        get(2, 20, 30, None)
    ]));
}

#[test]
fn keys_are_checked_independently() {
    let on = |key: u64, operation: Operation<KvInput, KvOutput>| {
        let input = match operation.input {
            KvInput::Put { value, .. } => KvInput::Put { key, value },
            KvInput::Get { .. } => KvInput::Get { key },
            other => other,
        };
        Operation { input, ..operation }
    };
    // The same value on another key does not count.
    let history = [on(1, put(1, 0, 10, 1)), on(2, get(2, 20, 30, Some(1)))];
    let verdict = check(&history);
    let violation = verdict.violation().expect("key 2 was never written");
    assert_eq!(violation.partition, 2);
    assert_eq!(piece(&history), [1]);
    // Interleaved operations on two keys, each fine on its own.
    assert!(linearizable(&[
        on(1, put(1, 0, 10, 1)),
        on(2, put(2, 0, 10, 2)),
        on(1, get(3, 20, 30, Some(1))),
        on(2, get(4, 20, 30, Some(2))),
    ]));
}

#[test]
fn the_piece_leaves_out_what_does_not_matter() {
    // A stale read amid unrelated, consistent traffic.
    let history = [
        put(1, 0, 10, 1),
        get(2, 12, 14, Some(1)),
        put(1, 20, 30, 2),
        get(2, 32, 34, Some(2)),
        get(3, 40, 50, Some(1)), // stale: 2 was written and read since
        put(1, 60, 70, 3),
        get(2, 72, 74, Some(3)),
    ];
    let verdict = check(&history);
    let violation = verdict.violation().expect("stale read");
    assert!(violation.one_minimal);
    // Two operations suffice: the stale read, and either the write of 2 or the read that saw
    // it. Even with everything else allowed any result or none, 1 was overwritten before the
    // stale read was called.
    let kept = piece(&history);
    assert!(kept == [2, 4] || kept == [3, 4], "{kept:?}");
    let report = violation.to_string();
    assert!(report.contains("get(key 0) -> 1"), "{report}");
}
