//! Property tests: generated histories that come from a real sequential execution are always
//! linearizable; corrupting one read or one compare-and-set outcome is always caught, and the
//! corrupted operation is always in the reported piece; and on small random histories the checker
//! agrees with a brute-force search over every order, written independently from the definition.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use synod_sim::history::{History, Operation, Outcome};
use synod_sim::jepsen;
use synod_sim::linearizability::{self, KvInput, KvModel, KvOutput};

fn params() -> impl Strategy<Value = common::Params> {
    (1usize..250, 1u64..5, 0u64..80, 0u64..30).prop_map(
        |(operations, keys, max_window, unknown_percent)| common::Params {
            operations,
            keys,
            max_window,
            unknown_percent,
        },
    )
}

/// Checks that the reported piece contains the corrupted operation and is a violation on its own.
///
/// Whether the piece is 1-minimal is not asserted here: shrinking is bounded by a step budget,
/// and a generated history with a single key and wide windows can exhaust it (one such case
/// took 86 s with the default budget and came back not 1-minimal, as documented). The budget
/// is kept small so that such cases stay quick; 1-minimality itself is asserted on the Jepsen
/// violations in `linearizability::shrink`'s tests.
fn assert_piece_holds(history: &History<KvInput, KvOutput>, corrupted: usize) {
    let options = linearizability::CheckOptions {
        shrink_step_budget: 1_000_000,
        ..linearizability::CheckOptions::default()
    };
    let verdict = linearizability::check_with(&KvModel, history, &options);
    let violation = verdict.violation().expect("corruption caught");
    // Weakening the corrupted operation leaves a weakened version of a linearizable history,
    // which is linearizable, so every piece must contain it.
    assert!(
        violation.op_ids.iter().any(|id| id.0 == corrupted),
        "the piece misses the corrupted operation {corrupted}: {violation}"
    );
    assert!(violation.operations.len() <= violation.partition_len);
    let alone: History<_, _> = violation.operations.iter().cloned().collect();
    assert!(!linearizability::check(&KvModel, &alone).is_linearizable());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn histories_of_a_sequential_execution_are_linearizable(seed: u64, params in params()) {
        let history = common::generate(seed, &params);
        prop_assert_eq!(history.len(), params.operations);
        let verdict = linearizability::check(&KvModel, &history);
        prop_assert!(verdict.is_linearizable(), "{}", verdict.violation().unwrap());
    }

    #[test]
    fn a_read_of_a_value_never_written_is_caught(seed: u64, params in params(), pick: usize) {
        let history = common::generate(seed, &params);
        let corrupted = common::corrupt_a_read(&history, pick);
        prop_assume!(corrupted.is_some());
        let (corrupted, target) = corrupted.unwrap();
        assert_piece_holds(&corrupted, target);
    }

    #[test]
    fn a_flipped_compare_and_set_outcome_is_caught(seed: u64, params in params(), pick: usize) {
        let history = common::generate(seed, &params);
        let flipped = common::flip_a_compare_and_set(&history, pick);
        prop_assume!(flipped.is_some());
        let (flipped, target) = flipped.unwrap();
        assert_piece_holds(&flipped, target);
    }

    #[test]
    fn agrees_with_brute_force_on_small_histories(
        drawn in prop::collection::vec(small_operation(), 0..=7),
        sequential: bool,
        flip in prop::option::of(0usize..7),
    ) {
        let history = small_history(&drawn, sequential, flip);
        let verdict = linearizability::check(&KvModel, &history);
        let expected = brute_force_linearizable(history.operations());
        prop_assert_eq!(verdict.is_linearizable(), expected, "{:#?}", history.operations());
        if let Some(violation) = verdict.violation() {
            prop_assert!(!brute_force_linearizable(&violation.operations), "{}", violation);
        }
    }

    #[test]
    fn the_parser_never_panics(lines in prop::collection::vec(jepsen_like_line(), 0..40)) {
        let text = lines.join("\n");
        if let Ok(history) = jepsen::parse_register_history(&text) {
            // Whatever parses can be checked.
            let _ = linearizability::check(&KvModel, &history);
        }
    }

    #[test]
    fn the_parser_never_panics_on_arbitrary_text(text in "\\PC*") {
        let _ = jepsen::parse_register_history(&text);
    }
}

/// A line that is often a well-formed event and often slightly wrong.
fn jepsen_like_line() -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        "[0-3]|x|-1|99999999999999999999",
        prop::sample::select(vec![":invoke", ":ok", ":fail", ":info", ":bogus", ""]),
        prop::sample::select(vec![":read", ":write", ":cas", ":frob"]),
        prop::sample::select(vec![
            "nil",
            "0",
            "1",
            "2",
            "-3",
            ":timed-out",
            "[0 1]",
            "[1 2]",
            "[nil 1]",
            "[1]",
            "[1 2 3]",
            "[",
            "]",
            "",
            "18446744073709551616",
        ]),
    )
        .prop_map(|(prefix, process, kind, function, value)| {
            let prefix = if prefix { "INFO  jepsen.util - " } else { "" };
            format!("{prefix}{process}\t{kind}\t{function}\t{value}")
        })
}

/// (key, kind, value, expected, call, duration, outcome kind, output value, swapped)
type SmallOperation = (u64, u8, u64, Option<u64>, u64, u64, u8, Option<u64>, bool);

fn small_operation() -> impl Strategy<Value = SmallOperation> {
    (
        0u64..2,
        0u8..4,
        0u64..3,
        prop::option::of(0u64..3),
        0u64..12,
        0u64..8,
        0u8..10,
        prop::option::of(0u64..3),
        prop::bool::ANY,
    )
}

/// Builds a history from drawn operations. With `sequential`, outputs are those of running the
/// operations one by one in call order (a valid linearization, at the calls), and `flip` then
/// corrupts one; otherwise outputs are drawn at random. Small domains make the two verdicts
/// about equally likely.
fn small_history(
    drawn: &[SmallOperation],
    sequential: bool,
    flip: Option<usize>,
) -> History<KvInput, KvOutput> {
    let mut order: Vec<usize> = (0..drawn.len()).collect();
    order.sort_by_key(|&index| drawn[index].4);
    let mut map = BTreeMap::new();
    let mut history_order = Vec::new();
    for (position, &index) in order.iter().enumerate() {
        let (key, kind, value, expected, call, duration, outcome, seen, swapped) = drawn[index];
        let input = match kind {
            0 => KvInput::Get { key },
            1 => KvInput::Put { key, value },
            2 => KvInput::Delete { key },
            _ => KvInput::CompareAndSet {
                key,
                expected,
                new: value,
            },
        };
        let mut output = if sequential {
            apply(&mut map, &input)
        } else {
            match input {
                KvInput::Get { .. } => KvOutput::Get(seen),
                KvInput::Put { .. } => KvOutput::Put,
                KvInput::Delete { .. } => KvOutput::Delete,
                KvInput::CompareAndSet { .. } => KvOutput::CompareAndSet { swapped },
            }
        };
        if flip == Some(position) {
            output = match output {
                KvOutput::Get(Some(_)) => KvOutput::Get(None),
                KvOutput::Get(None) => KvOutput::Get(Some(value)),
                KvOutput::CompareAndSet { swapped } => {
                    KvOutput::CompareAndSet { swapped: !swapped }
                }
                other => other,
            };
        }
        let outcome = match outcome {
            0..7 => Outcome::Returned {
                time: call + duration,
                output,
            },
            7 | 8 => Outcome::Unknown,
            _ => Outcome::NoEffect,
        };
        history_order.push(Operation {
            client: index as u64,
            call,
            input,
            outcome,
        });
    }
    history_order.into_iter().collect()
}

/// The key-value map, written out again rather than borrowed from the model under test.
fn apply(map: &mut BTreeMap<u64, u64>, input: &KvInput) -> KvOutput {
    match *input {
        KvInput::Get { key } => KvOutput::Get(map.get(&key).copied()),
        KvInput::Put { key, value } => {
            map.insert(key, value);
            KvOutput::Put
        }
        KvInput::Delete { key } => {
            map.remove(&key);
            KvOutput::Delete
        }
        KvInput::CompareAndSet { key, expected, new } => {
            let swapped = map.get(&key).copied() == expected;
            if swapped {
                map.insert(key, new);
            }
            KvOutput::CompareAndSet { swapped }
        }
    }
}

/// Linearizability by definition, over the whole map (no partitioning): some order of the
/// operations that returned and of any subset of those with an unknown outcome, respecting
/// real time (a operation that returned before another was called comes first), gives every
/// returned operation its recorded output.
fn brute_force_linearizable(operations: &[Operation<KvInput, KvOutput>]) -> bool {
    let candidates: Vec<&Operation<KvInput, KvOutput>> = operations
        .iter()
        .filter(|operation| !matches!(operation.outcome, Outcome::NoEffect))
        .collect();
    let mut placed = vec![false; candidates.len()];
    extend(&candidates, &mut placed, &BTreeMap::new())
}

fn extend(
    operations: &[&Operation<KvInput, KvOutput>],
    placed: &mut [bool],
    map: &BTreeMap<u64, u64>,
) -> bool {
    let all_returned_placed = operations
        .iter()
        .zip(placed.iter())
        .all(|(operation, &placed)| placed || operation.return_time().is_none());
    if all_returned_placed {
        return true;
    }
    for next in 0..operations.len() {
        if placed[next] {
            continue;
        }
        let must_wait = (0..operations.len()).any(|other| {
            !placed[other]
                && other != next
                && operations[other]
                    .return_time()
                    .is_some_and(|time| time < operations[next].call)
        });
        if must_wait {
            continue;
        }
        let mut after = map.clone();
        let output = apply(&mut after, &operations[next].input);
        if operations[next]
            .output()
            .is_some_and(|seen| *seen != output)
        {
            continue;
        }
        placed[next] = true;
        let found = extend(operations, placed, &after);
        placed[next] = false;
        if found {
            return true;
        }
    }
    false
}
