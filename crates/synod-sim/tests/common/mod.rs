//! Histories generated from a real sequential execution, shared by the tests and the benchmark
//! (which includes this file by path).
//!
//! Each operation gets a linearization point on a line, and the key-value map is updated in that
//! order; then each operation gets a call before and a return after its point, so the intervals
//! overlap at random but a linearization (the points) always exists. Some operations time out:
//! their outcome is unknown, and they either took effect at their point or never did.
//!
//! Written values are unique (operation `i` writes `i + 1`), which lets a test know exactly which
//! operation a read observed, and so corrupt a history in ways that are certainly detectable.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use synod_sim::history::{History, Operation, Outcome};
use synod_sim::linearizability::{Key, KvInput, KvOutput, Value};

/// A value no generated operation writes.
pub const NEVER_WRITTEN: Value = u64::MAX;

/// The first of the values a compare-and-set may expect that no operation ever writes.
const NEVER_HELD_BASE: Value = 1 << 40;

/// SplitMix64: a small, seedable, well-mixed generator, so that runs are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The shape of a generated history.
#[derive(Clone, Debug)]
pub struct Params {
    pub operations: usize,
    pub keys: u64,
    /// Calls start up to this much before, and returns come up to this much after, the
    /// operation's linearization point. Points are 10 apart.
    pub max_window: u64,
    /// The chance, in percent, that an operation's outcome is unknown.
    pub unknown_percent: u64,
}

/// A linearizable history drawn from a real sequential execution of the key-value map.
pub fn generate(seed: u64, params: &Params) -> History<KvInput, KvOutput> {
    let mut rng = Rng::new(seed);
    let mut values: Vec<Option<Value>> = vec![None; params.keys as usize];
    // (call, return or None if unknown, input, output) in linearization order.
    let mut drawn: Vec<(u64, Option<u64>, KvInput, KvOutput)> = Vec::new();
    for index in 0..params.operations {
        let point = 1_000_000 + 10 * index as u64;
        let key: Key = rng.below(params.keys);
        let value: Value = index as u64 + 1;
        let input = match rng.below(100) {
            0..35 => KvInput::Get { key },
            35..60 => KvInput::Put { key, value },
            60..70 => KvInput::Delete { key },
            _ => {
                let expected = match rng.below(4) {
                    // Likely to swap.
                    0 | 1 => values[key as usize],
                    // Some value written earlier, to this key or another: may or may not swap.
                    2 if index > 0 => Some(rng.below(index as u64) + 1),
                    2 => None,
                    // Certainly fails.
                    _ => Some(NEVER_HELD_BASE + index as u64),
                };
                KvInput::CompareAndSet {
                    key,
                    expected,
                    new: value,
                }
            }
        };
        let call = point - rng.below(params.max_window + 1);
        let ret = point + rng.below(params.max_window + 1);
        let unknown = rng.percent(params.unknown_percent);
        // An unknown operation took effect at its point, or never.
        let takes_effect = !unknown || rng.percent(50);
        let state = &mut values[key as usize];
        let output = step(state, &input, takes_effect);
        drawn.push((call, (!unknown).then_some(ret), input, output));
    }

    // Clients run one operation at a time: give each operation, in call order, the first client
    // that is free. A client whose operation has an unknown outcome is never free again, as in
    // Jepsen.
    drawn.sort_by_key(|&(call, ..)| call);
    let mut busy_until: Vec<u64> = Vec::new();
    let mut history = History::new();
    for (call, ret, input, output) in drawn {
        let client = match busy_until.iter().position(|&until| until < call) {
            Some(client) => client,
            None => {
                busy_until.push(0);
                busy_until.len() - 1
            }
        };
        busy_until[client] = ret.unwrap_or(u64::MAX);
        let outcome = match ret {
            Some(time) => Outcome::Returned { time, output },
            None => Outcome::Unknown,
        };
        history.push(Operation {
            client: client as u64,
            call,
            input,
            outcome,
        });
    }
    history
}

fn step(state: &mut Option<Value>, input: &KvInput, takes_effect: bool) -> KvOutput {
    let mut next = *state;
    let output = match *input {
        KvInput::Get { .. } => KvOutput::Get(*state),
        KvInput::Put { value, .. } => {
            next = Some(value);
            KvOutput::Put
        }
        KvInput::Delete { .. } => {
            next = None;
            KvOutput::Delete
        }
        KvInput::CompareAndSet { expected, new, .. } => {
            let swapped = *state == expected;
            if swapped {
                next = Some(new);
            }
            KvOutput::CompareAndSet { swapped }
        }
    };
    if takes_effect {
        *state = next;
    }
    output
}

/// The history with one completed read (chosen by `pick`) answering a value nobody wrote, and
/// that read's position; `None` if no read completed.
pub fn corrupt_a_read(
    history: &History<KvInput, KvOutput>,
    pick: usize,
) -> Option<(History<KvInput, KvOutput>, usize)> {
    let reads: Vec<usize> = (0..history.len())
        .filter(|&index| {
            let operation = &history.operations()[index];
            matches!(operation.input, KvInput::Get { .. }) && operation.output().is_some()
        })
        .collect();
    let target = *reads.get(pick % reads.len().max(1))?;
    Some((
        with_output(history, target, KvOutput::Get(Some(NEVER_WRITTEN))),
        target,
    ))
}

/// The history with one completed compare-and-set's outcome flipped, chosen among those for
/// which the flip is certainly a violation, and its position; `None` if there is none:
///
/// - one that swapped, whose new value a completed read returned: values are unique, so once
///   it did not swap nothing wrote what the read saw;
/// - one that did not swap, expecting a value no operation writes to its key: it cannot have
///   found it.
pub fn flip_a_compare_and_set(
    history: &History<KvInput, KvOutput>,
    pick: usize,
) -> Option<(History<KvInput, KvOutput>, usize)> {
    let operations = history.operations();
    let writes = |key: Key, written: Value| {
        operations.iter().any(|operation| match operation.input {
            KvInput::Put { key: k, value } => k == key && value == written,
            KvInput::CompareAndSet { key: k, new, .. } => k == key && new == written,
            _ => false,
        })
    };
    let read_returned = |key: Key, seen: Value| {
        operations.iter().any(|operation| {
            operation.input == KvInput::Get { key }
                && operation.output() == Some(&KvOutput::Get(Some(seen)))
        })
    };
    let candidates: Vec<usize> = (0..operations.len())
        .filter(|&index| {
            let operation = &operations[index];
            let KvInput::CompareAndSet { key, expected, new } = operation.input else {
                return false;
            };
            match operation.output() {
                Some(KvOutput::CompareAndSet { swapped: true }) => read_returned(key, new),
                Some(KvOutput::CompareAndSet { swapped: false }) => {
                    matches!(expected, Some(value) if !writes(key, value))
                }
                _ => false,
            }
        })
        .collect();
    let target = *candidates.get(pick % candidates.len().max(1))?;
    let Some(&KvOutput::CompareAndSet { swapped }) = operations[target].output() else {
        unreachable!("candidates are completed compare-and-sets");
    };
    Some((
        with_output(
            history,
            target,
            KvOutput::CompareAndSet { swapped: !swapped },
        ),
        target,
    ))
}

/// `history` with operation `index`'s output replaced.
pub fn with_output(
    history: &History<KvInput, KvOutput>,
    index: usize,
    output: KvOutput,
) -> History<KvInput, KvOutput> {
    history
        .operations()
        .iter()
        .enumerate()
        .map(|(position, operation)| {
            let mut operation = operation.clone();
            if position == index {
                let Outcome::Returned { time, .. } = operation.outcome else {
                    panic!("operation {index} did not return");
                };
                operation.outcome = Outcome::Returned { time, output };
            }
            operation
        })
        .collect()
}
