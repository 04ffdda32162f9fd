//! A linearizability checker.
//!
//! A history is *linearizable* (Herlihy & Wing 1990) if every operation that returned, and any
//! subset of those whose outcome is unknown, can be given a single point in time between its call
//! and its return such that running them in that order on a sequential [`Model`] produces exactly
//! the outputs the clients saw.
//!
//! The check is the Wing & Gong (1993) backtracking search with Lowe's (2017) memoisation of
//! explored (set of linearized operations, model state) pairs, as in Knossos and Porcupine, run
//! separately on each partition of the history: a key-value history is linearizable if and only if
//! each key's sub-history is (P-compositionality, Horn & Kroening 2015), and the search is
//! exponential in the concurrency of what it is given, so small partitions matter more than any
//! constant factor.
//!
//! On a violation the failing partition is shrunk to a small piece that shows why: operations that
//! cannot be linearized even if every other operation of the partition had any result, or no
//! effect at all (see [`Violation`]).
//!
//! ```
//! use synod_sim::history::History;
//! use synod_sim::linearizability::{self, KvInput, KvModel, KvOutput};
//!
//! // Client 1 writes 5 to key 0, and the write returns; then client 2 still reads nothing.
//! let mut history = History::new();
//! let put = history.invoke(1, 0, KvInput::Put { key: 0, value: 5 });
//! history.complete(put, 10, KvOutput::Put);
//! let get = history.invoke(2, 20, KvInput::Get { key: 0 });
//! history.complete(get, 30, KvOutput::Get(None));
//!
//! let verdict = linearizability::check(&KvModel, &history);
//! let violation = verdict.violation().expect("a stale read");
//! assert_eq!(violation.operations.len(), 2);
//! println!("{violation}");
//! ```

mod cache;
mod kv;
mod search;
mod shrink;

use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hash;

use crate::history::{History, OpId, Operation, Outcome};
pub use kv::{Key, KvInput, KvModel, KvOutput, Value};
use search::{SearchOp, SearchResult, search};

/// A sequential specification: what a single copy of the object would answer.
///
/// The model must be deterministic and total (every input applies in every state), which is what
/// lets an operation with an unknown outcome be linearized anywhere after its call, or nowhere.
pub trait Model {
    /// The state of one partition of the object (for [`KvModel`], the value of one key).
    /// Hashed and compared by the search's memo, so it should be small.
    type State: Clone + Eq + Hash;
    /// An operation as the client asked for it.
    type Input: Clone + fmt::Debug;
    /// An answer as the client saw it.
    type Output: Clone + Eq + fmt::Debug;
    /// Names a partition: a set of operations that never affects any other partition.
    type PartitionKey: Clone + Ord + fmt::Debug;

    /// The state of every partition before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`: the state afterwards and the output a client would see.
    fn step(&self, state: &Self::State, input: &Self::Input) -> (Self::State, Self::Output);

    /// The partition `input` belongs to. Return a constant for a model that cannot be partitioned.
    fn partition(&self, input: &Self::Input) -> Self::PartitionKey;

    /// Whether `input` never changes the state. An operation that does not, and whose outcome is
    /// unknown, constrains nothing, so the checker drops it before searching.
    fn is_read_only(&self, _input: &Self::Input) -> bool {
        false
    }

    /// Whether an operation that produced `output` certainly left the state as it was, in every
    /// state in which it could have produced that output (a read; a compare-and-set that did not
    /// swap). Such an operation is linearized as soon as its output is consistent, without trying
    /// alternatives, which saves the search most of its backtracking on read-heavy histories.
    /// Answering `true` wrongly makes the checker unsound; `false` is always safe.
    fn leaves_state_unchanged(&self, input: &Self::Input, _output: &Self::Output) -> bool {
        self.is_read_only(input)
    }

    /// A one-line, human-readable rendering of an operation for violation reports; `output` is
    /// `None` if the outcome is unknown.
    fn describe(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match output {
            Some(output) => format!("{input:?} -> {output:?}"),
            None => format!("{input:?} -> ?"),
        }
    }
}

/// Knobs for [`check_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// The most search steps spent shrinking a violation to a small piece (0: do not shrink).
    /// A budget, not a deadline, so that reports are the same on every machine and every run.
    pub shrink_step_budget: u64,
    /// The most search steps spent deciding one partition; past it the verdict is
    /// [`Verdict::Inconclusive`]. Unbounded by default. The problem is NP-complete, and a badly
    /// broken system can produce a history whose search would exhaust memory; a simulator
    /// running thousands of seeds sets a budget.
    pub search_step_budget: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        // About a second of shrinking in the worst case; most violations shrink in milliseconds.
        CheckOptions {
            shrink_step_budget: 20_000_000,
            search_step_budget: u64::MAX,
        }
    }
}

/// The checker's answer.
#[derive(Clone, Debug)]
pub enum Verdict<M: Model> {
    /// Every partition can be linearized.
    Linearizable,
    /// Some partition cannot; the first one in key order is reported.
    NotLinearizable(Violation<M>),
    /// The search of this partition ran out of [`CheckOptions::search_step_budget`].
    Inconclusive {
        /// The partition whose search was cut short.
        partition: M::PartitionKey,
        /// How many operations it holds.
        partition_len: usize,
    },
}

impl<M: Model> Verdict<M> {
    /// Whether the history is linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }

    /// The violation found, if any.
    pub fn violation(&self) -> Option<&Violation<M>> {
        match self {
            Verdict::Linearizable | Verdict::Inconclusive { .. } => None,
            Verdict::NotLinearizable(violation) => Some(violation),
        }
    }
}

/// A piece of a history that cannot be linearized.
///
/// The piece is *robust*: it cannot be linearized even if every other operation of its partition
/// is weakened to "took effect between its own call and return, with any result, or never" (and
/// operations with an unknown outcome keep theirs). In particular it cannot be linearized on its
/// own, and the violation does not depend on the result of anything left out. Pieces are found
/// by delta debugging, which this weakening makes sound; simply deleting operations would not
/// (deleting every write of 1 turns any read of 1 into a one-operation "violation").
#[derive(Clone, Debug)]
pub struct Violation<M: Model> {
    /// The partition (for [`KvModel`], the key) whose operations cannot be linearized.
    pub partition: M::PartitionKey,
    /// How many operations of that partition the checker considered (those with no effect, and
    /// read-only ones with an unknown outcome, are dropped first).
    pub partition_len: usize,
    /// The piece: operations of the partition, each with a known outcome, that together cannot
    /// be linearized, in call order.
    pub operations: Vec<Operation<M::Input, M::Output>>,
    /// Where each operation of `operations` is in the history that was checked.
    pub op_ids: Vec<OpId>,
    /// Whether weakening any single operation of the piece too makes the partition linearizable.
    /// False if the shrink budget ran out first (the piece is still a genuine, robust violation,
    /// just maybe not the smallest).
    pub one_minimal: bool,
    /// `operations`, rendered by [`Model::describe`].
    descriptions: Vec<String>,
}

impl<M: Model> fmt::Display for Violation<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "partition {:?}: {} of its {} operations cannot be linearized,\n\
             even if every other one took effect between its call and return with any result, \
             or never:",
            self.partition,
            self.operations.len(),
            self.partition_len
        )?;
        writeln!(
            f,
            "  {:>10}  {:>10}  {:>8}  operation",
            "call", "return", "client"
        )?;
        for (operation, description) in self.operations.iter().zip(&self.descriptions) {
            let return_time = match &operation.outcome {
                Outcome::Returned { time, .. } => time.to_string(),
                Outcome::Unknown => "unknown".to_owned(),
                Outcome::NoEffect => "no effect".to_owned(),
            };
            writeln!(
                f,
                "  {:>10}  {:>10}  {:>8}  {description}",
                operation.call, return_time, operation.client
            )?;
        }
        if self.one_minimal {
            writeln!(
                f,
                "(minimal: without the result of any one of these, a linearization exists)"
            )
        } else {
            writeln!(
                f,
                "(shrinking ran out of budget: a smaller piece may exist)"
            )
        }
    }
}

/// Checks `history` against `model`, shrinking any violation with the default budget.
pub fn check<M: Model>(model: &M, history: &History<M::Input, M::Output>) -> Verdict<M> {
    check_with(model, history, &CheckOptions::default())
}

/// Checks `history` against `model`.
///
/// # Panics
///
/// If an operation returns before its call (which [`History`] already refuses).
pub fn check_with<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    options: &CheckOptions,
) -> Verdict<M> {
    for (partition, op_ids) in partitions(model, history) {
        let operations: Vec<&Operation<M::Input, M::Output>> = op_ids
            .iter()
            .map(|id| &history.operations()[id.0])
            .collect();
        let search_ops: Vec<_> = operations.iter().map(|op| SearchOp::exact(op)).collect();
        let mut steps_left = options.search_step_budget;
        match search(model, &search_ops, &mut steps_left) {
            SearchResult::Linearizable => {}
            SearchResult::NotLinearizable => {
                return Verdict::NotLinearizable(violation(
                    model,
                    partition,
                    &op_ids,
                    &operations,
                    options,
                ));
            }
            SearchResult::OutOfSteps => {
                return Verdict::Inconclusive {
                    partition,
                    partition_len: op_ids.len(),
                };
            }
        }
    }
    Verdict::Linearizable
}

/// Splits the history by partition key, leaving out operations that cannot matter, each
/// partition's operations in call order (so that reports read in order).
fn partitions<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
) -> BTreeMap<M::PartitionKey, Vec<OpId>> {
    let mut partitions: BTreeMap<M::PartitionKey, Vec<OpId>> = BTreeMap::new();
    for (index, operation) in history.operations().iter().enumerate() {
        let relevant = match operation.outcome {
            Outcome::Returned { .. } => true,
            Outcome::Unknown => !model.is_read_only(&operation.input),
            Outcome::NoEffect => false,
        };
        if relevant {
            partitions
                .entry(model.partition(&operation.input))
                .or_default()
                .push(OpId(index));
        }
    }
    for op_ids in partitions.values_mut() {
        op_ids.sort_by_key(|id| (history.operations()[id.0].call, id.0));
    }
    partitions
}

fn violation<M: Model>(
    model: &M,
    partition: M::PartitionKey,
    op_ids: &[OpId],
    operations: &[&Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> Violation<M> {
    let shrunk = shrink::shrink(model, operations, options.shrink_step_budget);
    debug_assert!(!shrunk.kept.is_empty(), "an empty history is linearizable");
    let operations: Vec<Operation<M::Input, M::Output>> = shrunk
        .kept
        .iter()
        .map(|&index| operations[index].clone())
        .collect();
    let descriptions = operations
        .iter()
        .map(|operation| model.describe(&operation.input, operation.output()))
        .collect();
    Violation {
        partition,
        partition_len: op_ids.len(),
        op_ids: shrunk.kept.iter().map(|&index| op_ids[index]).collect(),
        operations,
        one_minimal: shrunk.one_minimal,
        descriptions,
    }
}
