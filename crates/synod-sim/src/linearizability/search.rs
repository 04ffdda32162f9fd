//! The search for a linearization of one partition: Wing & Gong (1993) with Lowe's (2017)
//! memoisation, plus reductions that keep operations with an unknown outcome from making it
//! exponential.
//!
//! The history is flattened into a list of events sorted by time: one call event per operation and
//! one return event per operation that returned. The search tries to *linearize* an operation whose
//! call event comes before the first return event in the list (the *deadline*): apply it to the
//! model and, if the model's output matches what the client saw, remove its call and return events
//! from the list (it has taken effect) and go on from there. When nothing before the deadline can
//! be linearized, the deadline's operation returned before anything consistent could be found for
//! it, so the last choice is undone (backtracking). The history is linearizable once every
//! operation that returned has been linearized.
//!
//! Three kinds of operations (see [`Requirement`]):
//!
//! - *checked* ones returned: they must be linearized, with the output the client saw;
//! - *unknown* ones have a call event and no return event: nothing forces them to be linearized,
//!   which models "took effect at some moment after the call, or never". (Giving them a return at
//!   +infinity, as Porcupine does, is equivalent: the model is total and their output is unchecked,
//!   so they could always be appended at the end; stopping early just skips that.)
//! - *optional* ones (made by the shrinker) took effect between their call and return with any
//!   output, or never: reaching the return event of one that is not linearized yet, the search may
//!   *drop* it (it never took effect).
//!
//! A configuration is the set of operations linearized or dropped so far and the model state; its
//! future depends on nothing else. Lowe's memo skips a configuration seen before. Here the memo
//! also skips a configuration *dominated* by one seen before: same state, same operations resolved
//! except unknown ones, and a subset of the unknown ones used up. Anything the dominated one can
//! still do, the dominating one can do in the same steps, leaving the extra unknown operations out
//! (they may never have taken effect, and having no return event they never hold anything up).
//! This is subsumption, as in model checkers: sound because "dominates" is a simulation, one step
//! for one step. (Optional operations are left out of it: one that is pending can hold up others
//! at its return event until it is dropped, so a configuration that has not dropped it yet cannot
//! match, step for step, one that has.) Children are ordered so that dominating configurations
//! come first: checked operations, then drops, then unchecked operations. Without this, every
//! subset of timed-out writes that were overwritten unseen is a distinct configuration, and a
//! history with dozens of them takes hours.
//!
//! Events live in arrays linked by index (Knuth's dancing links), so that removing an operation and
//! putting it back on backtracking are O(1) and the undo stack holds only an event index and the
//! model state to restore.

use crate::history::{Operation, Outcome, Time};
use crate::linearizability::Model;
use crate::linearizability::cache::{Bitset, Cache};

/// An operation as the search sees it.
pub(crate) struct SearchOp<'a, I, O> {
    pub(crate) call: Time,
    pub(crate) input: &'a I,
    pub(crate) requirement: Requirement<'a, O>,
}

/// What the search must make of an operation.
#[derive(Clone, Copy)]
pub(crate) enum Requirement<'a, O> {
    /// Took effect once between the call and `time`, with exactly `output`.
    Returned { time: Time, output: &'a O },
    /// Took effect once at any moment after the call, with any output, or never.
    Unknown,
    /// Took effect once between the call and `deadline`, with any output, or never.
    Optional { deadline: Time },
}

impl<'a, I, O> SearchOp<'a, I, O> {
    /// The operation as recorded. `NoEffect` operations must be left out by the caller.
    pub(crate) fn exact(operation: &'a Operation<I, O>) -> SearchOp<'a, I, O> {
        let requirement = match &operation.outcome {
            Outcome::Returned { time, output } => Requirement::Returned {
                time: *time,
                output,
            },
            Outcome::Unknown => Requirement::Unknown,
            Outcome::NoEffect => unreachable!("operations without effect are never searched"),
        };
        SearchOp {
            call: operation.call,
            input: &operation.input,
            requirement,
        }
    }

    /// The operation with its output forgotten and its effect made optional.
    pub(crate) fn weakened(operation: &'a Operation<I, O>) -> SearchOp<'a, I, O> {
        let requirement = match operation.return_time() {
            Some(deadline) => Requirement::Optional { deadline },
            None => Requirement::Unknown,
        };
        SearchOp {
            call: operation.call,
            input: &operation.input,
            requirement,
        }
    }

    fn return_time(&self) -> Option<Time> {
        match self.requirement {
            Requirement::Returned { time, .. } => Some(time),
            Requirement::Optional { deadline } => Some(deadline),
            Requirement::Unknown => None,
        }
    }

    fn is_required(&self) -> bool {
        matches!(self.requirement, Requirement::Returned { .. })
    }
}

/// The result of a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SearchResult {
    Linearizable,
    NotLinearizable,
    /// The step budget ran out first.
    OutOfSteps,
}

/// The list head, before the first event.
const HEAD: u32 = 0;
/// The end of the list, and "no return event".
const NONE: u32 = u32::MAX;

/// Events in time order, linked so that they can be unlinked and relinked in O(1).
/// Index 0 is the head; events are `1..next.len()`.
struct EventList {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// The operation (index into the partition) of each event.
    operation: Vec<u32>,
    /// For a call event, its return event, or `NONE` if it has none. For a return event, `NONE`
    /// too; `is_call` tells them apart.
    return_event: Vec<u32>,
    is_call: Vec<bool>,
    /// The call event of each operation.
    call_event: Vec<u32>,
}

impl EventList {
    fn new<I, O>(operations: &[SearchOp<'_, I, O>]) -> EventList {
        // (time, 0 for a call or 1 for a return, operation). Sorting calls before returns at the
        // same time makes touching intervals concurrent (see the `history` module).
        let mut events: Vec<(Time, u8, u32)> = Vec::with_capacity(operations.len() * 2);
        for (index, operation) in operations.iter().enumerate() {
            let index = u32::try_from(index).expect("fewer than 2^32 operations per partition");
            events.push((operation.call, 0, index));
            if let Some(time) = operation.return_time() {
                assert!(
                    time >= operation.call,
                    "an operation returns before its call"
                );
                events.push((time, 1, index));
            }
        }
        events.sort_unstable();

        let count = events.len() + 1;
        assert!(count < NONE as usize, "too many events");
        let mut list = EventList {
            next: (1..=count as u32).collect(),
            prev: (0..count as u32)
                .map(|event| event.wrapping_sub(1))
                .collect(),
            operation: vec![NONE; count],
            return_event: vec![NONE; count],
            is_call: vec![false; count],
            call_event: vec![NONE; operations.len()],
        };
        list.next[count - 1] = NONE;
        list.prev[HEAD as usize] = NONE;
        for (position, &(_, kind, operation)) in events.iter().enumerate() {
            let event = position + 1;
            list.operation[event] = operation;
            if kind == 0 {
                list.is_call[event] = true;
                list.call_event[operation as usize] = event as u32;
            } else {
                // A return sorts after its own call, since the times are ordered.
                let call = list.call_event[operation as usize];
                debug_assert_ne!(call, NONE);
                list.return_event[call as usize] = event as u32;
            }
        }
        list
    }

    fn first(&self) -> u32 {
        self.next[HEAD as usize]
    }

    fn unlink(&mut self, event: u32) {
        let (prev, next) = (self.prev[event as usize], self.next[event as usize]);
        self.next[prev as usize] = next;
        if next != NONE {
            self.prev[next as usize] = prev;
        }
    }

    /// Puts back an unlinked event. Events must be relinked in the reverse order of unlinking, so
    /// that their neighbours are the ones they had.
    fn relink(&mut self, event: u32) {
        let (prev, next) = (self.prev[event as usize], self.next[event as usize]);
        self.next[prev as usize] = event;
        if next != NONE {
            self.prev[next as usize] = event;
        }
    }

    /// Removes an operation (its call event, and its return event if any) from the list.
    fn lift(&mut self, call: u32) {
        debug_assert!(self.is_call[call as usize]);
        self.unlink(call);
        let ret = self.return_event[call as usize];
        if ret != NONE {
            self.unlink(ret);
        }
    }

    /// Undoes `lift(call)`.
    fn unlift(&mut self, call: u32) {
        let ret = self.return_event[call as usize];
        if ret != NONE {
            self.relink(ret);
        }
        self.relink(call);
    }
}

/// What a choice did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChoiceKind {
    /// Linearized an operation, as a child of the given phase.
    Linearized(Phase),
    /// Linearized a state-preserving checked operation, the configuration's only child.
    Forced,
    /// Dropped an optional operation at its deadline.
    Dropped,
}

/// A choice the search made, to be undone on backtracking.
struct Choice<S> {
    /// The call event of the operation linearized or dropped.
    call: u32,
    /// The model state before the choice.
    previous_state: S,
    kind: ChoiceKind,
}

/// The groups of a configuration's children, in the order they are tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Linearize a checked operation: the urgent one (the deadline's) first, then the others in
    /// list order. This is Lowe's "just-in-time" linearization: the client that must be answered
    /// next is served first, and operations nobody needs yet are not committed to early.
    Checked,
    /// Drop the urgent operation, if it is optional.
    Drop,
    /// Linearize an unchecked operation, in list order. Last, since these only help when
    /// something checked needs their effect, and a configuration that used fewer of them
    /// dominates one that used more.
    Unchecked,
}

/// Where the search is among the children of the current configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    /// None tried yet.
    Fresh,
    /// The next child is in `phase`, after the call event `after` (from the start if `None`).
    Next { phase: Phase, after: Option<u32> },
    /// None left.
    Exhausted,
}

/// A child of a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Child {
    Linearize { event: u32, kind: ChoiceKind },
    Drop,
}

/// Searches for a linearization of `operations`, which must all belong to one partition of
/// `model`, taking at most `steps_left` steps (decremented as they are taken).
pub(crate) fn search<M: Model>(
    model: &M,
    operations: &[SearchOp<'_, M::Input, M::Output>],
    steps_left: &mut u64,
) -> SearchResult {
    let mut list = EventList::new(operations);
    // Invariant: the number of checked operations not linearized yet.
    let mut required_left = operations.iter().filter(|op| op.is_required()).count();
    let unknown: Vec<bool> = operations
        .iter()
        .map(|op| matches!(op.requirement, Requirement::Unknown))
        .collect();
    // The operations linearized or dropped so far.
    let mut resolved = Bitset::new(&unknown);
    let mut cache = Cache::new(&unknown);
    let mut state = model.init();
    let mut choices: Vec<Choice<M::State>> = Vec::new();

    let mut deadline = first_return(&list);
    let mut cursor = Cursor::Fresh;
    while required_left > 0 {
        if *steps_left == 0 {
            return SearchResult::OutOfSteps;
        }
        *steps_left -= 1;
        // A checked operation is still in the list with its return event.
        assert_ne!(deadline, NONE, "no return event left with operations left");
        let urgent = list.call_event[list.operation[deadline as usize] as usize];

        let child = match cursor {
            Cursor::Fresh => match state_preserving_candidate(model, operations, &list, &state) {
                // Linearizing it now loses nothing: a completion that places it later stays
                // valid with it moved to the front, since it leaves every state as it was, and
                // whatever must precede it already has (its call comes before every pending
                // return). So it is this configuration's only child.
                Some(event) => Some(Child::Linearize {
                    event,
                    kind: ChoiceKind::Forced,
                }),
                None => next_child(&list, operations, deadline, urgent, Phase::Checked, None),
            },
            Cursor::Next { phase, after } => {
                next_child(&list, operations, deadline, urgent, phase, after)
            }
            Cursor::Exhausted => None,
        };

        match child {
            Some(Child::Linearize { event, kind }) => {
                let index = list.operation[event as usize] as usize;
                let operation = &operations[index];
                let (next_state, output) = model.step(&state, operation.input);
                let worth_trying = match operation.requirement {
                    Requirement::Returned { output: seen, .. } => *seen == output,
                    // Dominated by the current configuration otherwise.
                    Requirement::Unknown | Requirement::Optional { .. } => next_state != state,
                } && !hides_previous_choice(
                    &list,
                    operations,
                    choices.last(),
                    event,
                    (&next_state, &output),
                    |previous_state| model.step(previous_state, operation.input),
                );
                if worth_trying {
                    resolved.insert(index);
                    if cache.insert(&resolved, &next_state) {
                        choices.push(Choice {
                            call: event,
                            previous_state: std::mem::replace(&mut state, next_state),
                            kind,
                        });
                        list.lift(event);
                        if operation.is_required() {
                            required_left -= 1;
                        }
                        deadline = first_return(&list);
                        cursor = Cursor::Fresh;
                        continue;
                    }
                    // This configuration, or one dominating it, was reached before.
                    resolved.remove(index);
                }
                cursor = match kind {
                    ChoiceKind::Linearized(phase) => Cursor::Next {
                        phase,
                        after: Some(event),
                    },
                    ChoiceKind::Forced | ChoiceKind::Dropped => Cursor::Exhausted,
                };
                if cursor != Cursor::Exhausted {
                    continue;
                }
            }
            Some(Child::Drop) => {
                // It has not taken effect by its deadline on this path: it never did.
                let index = list.operation[urgent as usize] as usize;
                resolved.insert(index);
                if cache.insert(&resolved, &state) {
                    choices.push(Choice {
                        call: urgent,
                        previous_state: state.clone(),
                        kind: ChoiceKind::Dropped,
                    });
                    list.lift(urgent);
                    deadline = first_return(&list);
                    cursor = Cursor::Fresh;
                    continue;
                }
                resolved.remove(index);
                cursor = Cursor::Next {
                    phase: Phase::Unchecked,
                    after: None,
                };
                continue;
            }
            None => {}
        }

        // This configuration has no child left: undo the choice that led to it, and go on with
        // the parent's next child (or further up, if that choice was its parent's only child).
        loop {
            let Some(choice) = choices.pop() else {
                return SearchResult::NotLinearizable;
            };
            list.unlift(choice.call);
            let undone = list.operation[choice.call as usize] as usize;
            resolved.remove(undone);
            state = choice.previous_state;
            if operations[undone].is_required() && choice.kind != ChoiceKind::Dropped {
                required_left += 1;
            }
            cursor = match choice.kind {
                ChoiceKind::Linearized(phase) => Cursor::Next {
                    phase,
                    after: Some(choice.call),
                },
                ChoiceKind::Dropped => Cursor::Next {
                    phase: Phase::Unchecked,
                    after: None,
                },
                ChoiceKind::Forced => continue,
            };
            break;
        }
        deadline = first_return(&list);
    }
    SearchResult::Linearizable
}

/// The configuration's next child in the order of [`Phase`], starting in `phase` after the call
/// event `after`.
fn next_child<I, O>(
    list: &EventList,
    operations: &[SearchOp<'_, I, O>],
    deadline: u32,
    urgent: u32,
    mut phase: Phase,
    mut after: Option<u32>,
) -> Option<Child> {
    let checked = |event: u32| operations[list.operation[event as usize] as usize].is_required();
    // The first call event from `start` (inclusive) up to the deadline that `wanted` accepts.
    let scan = |start: u32, wanted: &dyn Fn(u32) -> bool| {
        let mut event = start;
        while event != deadline {
            debug_assert!(list.is_call[event as usize], "a return before the deadline");
            if wanted(event) {
                return Some(event);
            }
            event = list.next[event as usize];
        }
        None
    };
    loop {
        match phase {
            Phase::Checked => {
                let found = match after {
                    None if checked(urgent) => Some(urgent),
                    None => scan(list.first(), &|event| checked(event)),
                    Some(previous) => {
                        let start = if previous == urgent {
                            list.first()
                        } else {
                            list.next[previous as usize]
                        };
                        scan(start, &|event| event != urgent && checked(event))
                    }
                };
                if let Some(event) = found {
                    return Some(Child::Linearize {
                        event,
                        kind: ChoiceKind::Linearized(Phase::Checked),
                    });
                }
                (phase, after) = (Phase::Drop, None);
            }
            Phase::Drop => {
                (phase, after) = (Phase::Unchecked, None);
                let index = list.operation[urgent as usize] as usize;
                if let Requirement::Optional { .. } = operations[index].requirement {
                    return Some(Child::Drop);
                }
            }
            Phase::Unchecked => {
                let start = match after {
                    None => list.first(),
                    Some(previous) => list.next[previous as usize],
                };
                return scan(start, &|event| !checked(event)).map(|event| Child::Linearize {
                    event,
                    kind: ChoiceKind::Linearized(Phase::Unchecked),
                });
            }
        }
    }
}

/// Whether linearizing the call event `event` right after `previous` (the choice that led to the
/// current configuration) would make `previous` pointless, so that the child can be skipped.
///
/// That is the case when `previous` linearized an operation `u` with an unknown outcome, and
/// linearizing `event` gives the same state (and, if checked, the same output) whether `u` came
/// first or not: `u` is overwritten before anyone sees it, as when a timed-out write is followed by
/// another write. The configuration reached is then dominated by the one reached by linearizing
/// `event` without `u`, a sibling that the search explores in any case: `event` was a child of the
/// configuration before `u` too (`u` has no return event, so it held nothing up), and worth trying
/// there (its output matches, or it changes that configuration's state). The memo would catch
/// these too, but only after building them.
fn hides_previous_choice<I, O: PartialEq, S: PartialEq>(
    list: &EventList,
    operations: &[SearchOp<'_, I, O>],
    previous: Option<&Choice<S>>,
    event: u32,
    (next_state, output): (&S, &O),
    step_from: impl FnOnce(&S) -> (S, O),
) -> bool {
    let Some(previous) = previous else {
        return false;
    };
    let previous_operation = &operations[list.operation[previous.call as usize] as usize];
    if !matches!(previous_operation.requirement, Requirement::Unknown) {
        return false;
    }
    debug_assert_eq!(list.return_event[previous.call as usize], NONE);
    let (state_without, output_without) = step_from(&previous.previous_state);
    let checked = operations[list.operation[event as usize] as usize].is_required();
    if checked {
        state_without == *next_state && output_without == *output
    } else {
        state_without == *next_state && state_without != previous.previous_state
    }
}

/// A checked call event before the first return whose recorded output the model produces from
/// `state` and which certainly left the state unchanged ([`Model::leaves_state_unchanged`]).
fn state_preserving_candidate<M: Model>(
    model: &M,
    operations: &[SearchOp<'_, M::Input, M::Output>],
    list: &EventList,
    state: &M::State,
) -> Option<u32> {
    let mut event = list.first();
    while event != NONE && list.is_call[event as usize] {
        let operation = &operations[list.operation[event as usize] as usize];
        if let Requirement::Returned { output: seen, .. } = operation.requirement
            && model.leaves_state_unchanged(operation.input, seen)
        {
            let (next_state, output) = model.step(state, operation.input);
            if output == *seen {
                debug_assert!(next_state == *state, "leaves_state_unchanged lied");
                return Some(event);
            }
        }
        event = list.next[event as usize];
    }
    None
}

/// The first return event in the list, or `NONE` if there is none.
fn first_return(list: &EventList) -> u32 {
    let mut event = list.first();
    while event != NONE && list.is_call[event as usize] {
        event = list.next[event as usize];
    }
    event
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::linearizability::{KvInput, KvModel, KvOutput};

    /// Owned operations, from which the borrowed `SearchOp`s are made.
    #[derive(Clone, Debug)]
    struct Drawn {
        call: Time,
        input: KvInput,
        /// 0: returned at `end` with `output`; 1: unknown; 2: optional until `end`.
        kind: u8,
        end: Time,
        output: KvOutput,
    }

    fn search_ops(drawn: &[Drawn]) -> Vec<SearchOp<'_, KvInput, KvOutput>> {
        drawn
            .iter()
            .map(|op| SearchOp {
                call: op.call,
                input: &op.input,
                requirement: match op.kind {
                    0 => Requirement::Returned {
                        time: op.end,
                        output: &op.output,
                    },
                    1 => Requirement::Unknown,
                    _ => Requirement::Optional { deadline: op.end },
                },
            })
            .collect()
    }

    fn drawn_operation() -> impl Strategy<Value = Drawn> {
        (
            0u8..4,
            0u64..3,
            prop::option::of(0u64..3),
            0u64..10,
            0u64..6,
            // Three in five operations checked, the rest unknown or optional.
            prop::sample::select(vec![0u8, 0, 0, 1, 2]),
            prop::option::of(0u64..3),
            prop::bool::ANY,
        )
            .prop_map(|(op, value, expected, call, length, kind, seen, swapped)| {
                let (input, output) = match op {
                    0 => (KvInput::Get { key: 0 }, KvOutput::Get(seen)),
                    1 => (KvInput::Put { key: 0, value }, KvOutput::Put),
                    2 => (KvInput::Delete { key: 0 }, KvOutput::Delete),
                    _ => (
                        KvInput::CompareAndSet {
                            key: 0,
                            expected,
                            new: value,
                        },
                        KvOutput::CompareAndSet { swapped },
                    ),
                };
                Drawn {
                    call,
                    input,
                    kind,
                    end: call + length,
                    output,
                }
            })
    }

    /// Every order of every admissible subset, straight from the definitions of the three
    /// requirements.
    fn brute_force(drawn: &[Drawn]) -> bool {
        fn extend(drawn: &[Drawn], status: &mut Vec<u8>, state: Option<u64>) -> bool {
            // status: 0 pending, 1 placed, 2 never.
            if (0..drawn.len()).all(|i| status[i] != 0 || drawn[i].kind != 0) {
                return true;
            }
            for next in 0..drawn.len() {
                if status[next] != 0 {
                    continue;
                }
                // Anything pending that ended before this call must come first, or, if it may
                // never happen, now never does.
                let ended_before =
                    |i: usize| i != next && drawn[i].kind != 1 && drawn[i].end < drawn[next].call;
                if (0..drawn.len()).any(|i| status[i] == 0 && drawn[i].kind == 0 && ended_before(i))
                {
                    continue;
                }
                let (after, output) = KvModel.step(&state, &drawn[next].input);
                if drawn[next].kind == 0 && output != drawn[next].output {
                    continue;
                }
                let saved = status.clone();
                for (i, status) in status.iter_mut().enumerate() {
                    if *status == 0 && ended_before(i) {
                        *status = 2;
                    }
                }
                status[next] = 1;
                let found = extend(drawn, status, after);
                *status = saved;
                if found {
                    return true;
                }
            }
            false
        }
        extend(drawn, &mut vec![0; drawn.len()], None)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The reductions (just-in-time order, state-preserving operations first, skipping
        /// unchecked operations that change nothing or are overwritten unseen, the dominance
        /// memo) change how fast the search is, never what it finds.
        #[test]
        fn search_agrees_with_brute_force(
            drawn in prop::collection::vec(drawn_operation(), 0..=7),
        ) {
            let mut steps = u64::MAX;
            let found = search(&KvModel, &search_ops(&drawn), &mut steps);
            let expected = if brute_force(&drawn) {
                SearchResult::Linearizable
            } else {
                SearchResult::NotLinearizable
            };
            prop_assert_eq!(found, expected);
        }
    }

    #[test]
    fn a_step_budget_stops_the_search() {
        let drawn: Vec<Drawn> = (0..20)
            .map(|i| Drawn {
                call: 0,
                input: KvInput::Put { key: 0, value: i },
                kind: 0,
                end: 100,
                output: KvOutput::Put,
            })
            .chain([Drawn {
                call: 200,
                input: KvInput::Get { key: 0 },
                kind: 0,
                end: 300,
                output: KvOutput::Get(Some(99)),
            }])
            .collect();
        let mut steps = 1_000;
        assert_eq!(
            search(&KvModel, &search_ops(&drawn), &mut steps),
            SearchResult::OutOfSteps
        );
        assert_eq!(steps, 0);
    }
}
