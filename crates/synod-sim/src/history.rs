//! Client histories: what each client asked, when, and what it was told.
//!
//! A history is the only thing a linearizability checker sees. Each [`Operation`] is an interval
//! of time, from the moment the client called to the moment it got an answer, plus the answer.
//! Three outcomes are possible, and they constrain the checker differently:
//!
//! | outcome | took effect? | when? | output checked? |
//! |---|---|---|---|
//! | [`Outcome::Returned`] | yes | once, between call and return | yes |
//! | [`Outcome::Unknown`] (a timeout, a crash) | maybe | once after the call, or never | no |
//! | [`Outcome::NoEffect`] (a definite error) | no | never | no |
//!
//! Times are logical (simulator ticks, line numbers of a log): only their order matters.
//! Two operations are ordered in real time only if one *returned strictly before* the other was
//! called; intervals that touch (`return == call`) count as concurrent, because an equal tick says
//! nothing about which event happened first.

/// Identifies the client (Jepsen: the process) that issued an operation.
pub type ClientId = u64;

/// A logical time. Only the order of times matters.
pub type Time = u64;

/// What became of an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<O> {
    /// The client got `output` at `time`. The operation took effect exactly once, at some moment
    /// between its call and `time`.
    Returned {
        /// When the client received the answer. Invariant: not before the call.
        time: Time,
        /// What the client was told.
        output: O,
    },
    /// The client never learned what happened (a timeout, a lost connection, a client crash, or
    /// simply no completion recorded). The operation may have taken effect once at any moment
    /// after its call, or never.
    Unknown,
    /// The operation certainly did not take effect (a definite error such as "not the leader").
    /// The checker leaves it out.
    NoEffect,
}

/// One client operation: an interval of time and what the client learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client that issued it.
    pub client: ClientId,
    /// When the client called.
    pub call: Time,
    /// What the client asked for.
    pub input: I,
    /// What became of it.
    pub outcome: Outcome<O>,
}

impl<I, O> Operation<I, O> {
    /// The time the client got its answer, if it got one.
    pub fn return_time(&self) -> Option<Time> {
        match &self.outcome {
            Outcome::Returned { time, .. } => Some(*time),
            Outcome::Unknown | Outcome::NoEffect => None,
        }
    }

    /// The answer the client got, if it got one.
    pub fn output(&self) -> Option<&O> {
        match &self.outcome {
            Outcome::Returned { output, .. } => Some(output),
            Outcome::Unknown | Outcome::NoEffect => None,
        }
    }
}

/// The position of an operation in a [`History`], returned by [`History::invoke`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub usize);

/// A sequence of client operations, in the order they were recorded.
///
/// The order of recording does not matter to the checker (it sorts by time), so a simulator can
/// record calls as they happen and fill in answers later:
///
/// ```
/// use synod_sim::history::{History, Outcome};
/// use synod_sim::linearizability::{KvInput, KvOutput};
///
/// let mut history = History::new();
/// let write = history.invoke(1, 10, KvInput::Put { key: 7, value: 3 });
/// let read = history.invoke(2, 12, KvInput::Get { key: 7 });
/// history.complete(read, 15, KvOutput::Get(Some(3)));
/// history.complete(write, 16, KvOutput::Put);
/// // A call that is never completed stays `Outcome::Unknown`.
/// history.invoke(3, 20, KvInput::Delete { key: 7 });
/// assert_eq!(history.operations()[2].outcome, Outcome::Unknown);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<I, O> {
    operations: Vec<Operation<I, O>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        History {
            operations: Vec::new(),
        }
    }
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a call whose outcome is not known yet ([`Outcome::Unknown`] until completed).
    pub fn invoke(&mut self, client: ClientId, call: Time, input: I) -> OpId {
        self.push(Operation {
            client,
            call,
            input,
            outcome: Outcome::Unknown,
        })
    }

    /// Records that the call `id` returned `output` at `time`.
    ///
    /// # Panics
    ///
    /// If `id` is not an operation of this history, if it already has an outcome, or if `time` is
    /// before its call: these are bugs in the recorder, not in the system under test.
    pub fn complete(&mut self, id: OpId, time: Time, output: O) {
        let operation = self.pending_mut(id);
        assert!(
            time >= operation.call,
            "operation {id:?} returns at {time}, before its call at {}",
            operation.call
        );
        operation.outcome = Outcome::Returned { time, output };
    }

    /// Records that the call `id` certainly did not take effect ([`Outcome::NoEffect`]).
    ///
    /// # Panics
    ///
    /// If `id` is not an operation of this history or already has an outcome.
    pub fn complete_without_effect(&mut self, id: OpId) {
        self.pending_mut(id).outcome = Outcome::NoEffect;
    }

    /// Appends a whole operation.
    ///
    /// # Panics
    ///
    /// If the operation returns before its call.
    pub fn push(&mut self, operation: Operation<I, O>) -> OpId {
        if let Some(time) = operation.return_time() {
            assert!(
                time >= operation.call,
                "operation returns at {time}, before its call at {}",
                operation.call
            );
        }
        self.operations.push(operation);
        OpId(self.operations.len() - 1)
    }

    /// The operations, in the order they were recorded.
    pub fn operations(&self) -> &[Operation<I, O>] {
        &self.operations
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether no operation has been recorded.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    fn pending_mut(&mut self, id: OpId) -> &mut Operation<I, O> {
        let operation = self
            .operations
            .get_mut(id.0)
            .unwrap_or_else(|| panic!("no operation {id:?} in this history"));
        assert!(
            matches!(operation.outcome, Outcome::Unknown),
            "operation {id:?} already has an outcome"
        );
        operation
    }
}

impl<I, O> FromIterator<Operation<I, O>> for History<I, O> {
    /// Collects operations into a history, checking each as [`History::push`] does.
    fn from_iter<T: IntoIterator<Item = Operation<I, O>>>(iter: T) -> Self {
        let mut history = History::new();
        for operation in iter {
            history.push(operation);
        }
        history
    }
}
