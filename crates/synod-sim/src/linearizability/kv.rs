//! The key-value model: a map from keys to values with get, put, delete and compare-and-set.
//!
//! Every operation touches exactly one key, so the model is partitioned by key and its state is the
//! value of that one key (`None` when absent). A Jepsen compare-and-set register is the same model
//! with a single key.

use std::fmt;

use crate::linearizability::Model;

/// A key.
pub type Key = u64;

/// A value.
pub type Value = u64;

/// A key-value operation as the client asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read the value of `key`.
    Get {
        /// The key read.
        key: Key,
    },
    /// Set `key` to `value`.
    Put {
        /// The key written.
        key: Key,
        /// The value written.
        value: Value,
    },
    /// Remove `key`.
    Delete {
        /// The key removed.
        key: Key,
    },
    /// Set `key` to `new` if its value is `expected` (`None`: if it is absent).
    CompareAndSet {
        /// The key compared and maybe written.
        key: Key,
        /// The value the key must hold for the swap to happen.
        expected: Option<Value>,
        /// The value written if it does.
        new: Value,
    },
}

impl KvInput {
    /// The key the operation touches.
    pub fn key(&self) -> Key {
        match *self {
            KvInput::Get { key }
            | KvInput::Put { key, .. }
            | KvInput::Delete { key }
            | KvInput::CompareAndSet { key, .. } => key,
        }
    }
}

/// A key-value answer as the client saw it. Each variant answers the [`KvInput`] of the same name;
/// an answer of another kind matches nothing, so a history holding one is not linearizable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The value read (`None`: the key was absent).
    Get(Option<Value>),
    /// The put took effect.
    Put,
    /// The delete took effect (whether or not the key was present).
    Delete,
    /// Whether the compare-and-set swapped. `false` is an observation too: the key did not hold the
    /// expected value when the operation took effect.
    CompareAndSet {
        /// Whether the value was replaced.
        swapped: bool,
    },
}

/// The key-value model, partitioned by key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvModel;

impl Model for KvModel {
    type State = Option<Value>;
    type Input = KvInput;
    type Output = KvOutput;
    type PartitionKey = Key;

    fn init(&self) -> Option<Value> {
        None
    }

    fn step(&self, state: &Option<Value>, input: &KvInput) -> (Option<Value>, KvOutput) {
        match *input {
            KvInput::Get { .. } => (*state, KvOutput::Get(*state)),
            KvInput::Put { value, .. } => (Some(value), KvOutput::Put),
            KvInput::Delete { .. } => (None, KvOutput::Delete),
            KvInput::CompareAndSet { expected, new, .. } => {
                if *state == expected {
                    (Some(new), KvOutput::CompareAndSet { swapped: true })
                } else {
                    (*state, KvOutput::CompareAndSet { swapped: false })
                }
            }
        }
    }

    fn partition(&self, input: &KvInput) -> Key {
        input.key()
    }

    fn is_read_only(&self, input: &KvInput) -> bool {
        matches!(input, KvInput::Get { .. })
    }

    fn leaves_state_unchanged(&self, input: &KvInput, output: &KvOutput) -> bool {
        // A compare-and-set that did not swap wrote nothing, whatever the value was.
        matches!(input, KvInput::Get { .. })
            || matches!(
                (input, output),
                (
                    KvInput::CompareAndSet { .. },
                    KvOutput::CompareAndSet { swapped: false }
                )
            )
    }

    fn describe(&self, input: &KvInput, output: Option<&KvOutput>) -> String {
        let answer = match output {
            None => "? (unknown outcome)".to_owned(),
            Some(KvOutput::Get(value)) => OptionalValue(*value).to_string(),
            Some(KvOutput::Put | KvOutput::Delete) => "ok".to_owned(),
            Some(KvOutput::CompareAndSet { swapped: true }) => "swapped".to_owned(),
            Some(KvOutput::CompareAndSet { swapped: false }) => "not swapped".to_owned(),
        };
        format!("{input} -> {answer}")
    }
}

impl fmt::Display for KvInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KvInput::Get { key } => write!(f, "get(key {key})"),
            KvInput::Put { key, value } => write!(f, "put(key {key}, {value})"),
            KvInput::Delete { key } => write!(f, "delete(key {key})"),
            KvInput::CompareAndSet { key, expected, new } => {
                write!(f, "cas(key {key}, {} -> {new})", OptionalValue(expected))
            }
        }
    }
}

/// Renders an absent value as `nil`, as Jepsen does.
struct OptionalValue(Option<Value>);

impl fmt::Display for OptionalValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value}"),
            None => write!(f, "nil"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_set_swaps_only_on_the_expected_value() {
        let cas = |expected| KvInput::CompareAndSet {
            key: 0,
            expected,
            new: 9,
        };
        assert_eq!(
            KvModel.step(&None, &cas(None)),
            (Some(9), KvOutput::CompareAndSet { swapped: true })
        );
        assert_eq!(
            KvModel.step(&Some(1), &cas(None)),
            (Some(1), KvOutput::CompareAndSet { swapped: false })
        );
        assert_eq!(
            KvModel.step(&Some(1), &cas(Some(1))),
            (Some(9), KvOutput::CompareAndSet { swapped: true })
        );
        assert_eq!(
            KvModel.step(&None, &cas(Some(1))),
            (None, KvOutput::CompareAndSet { swapped: false })
        );
    }

    #[test]
    fn describe_reads_like_a_log() {
        let input = KvInput::CompareAndSet {
            key: 3,
            expected: None,
            new: 4,
        };
        assert_eq!(
            KvModel.describe(&input, Some(&KvOutput::CompareAndSet { swapped: false })),
            "cas(key 3, nil -> 4) -> not swapped"
        );
        assert_eq!(
            KvModel.describe(&KvInput::Get { key: 1 }, Some(&KvOutput::Get(None))),
            "get(key 1) -> nil"
        );
        assert_eq!(
            KvModel.describe(&KvInput::Put { key: 1, value: 2 }, None),
            "put(key 1, 2) -> ? (unknown outcome)"
        );
    }
}
