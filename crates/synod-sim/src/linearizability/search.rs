//! The search for a linearization of one partition: Wing & Gong (1993) with Lowe's (2017)
//! memoisation.
//!
//! The history is flattened into a list of events sorted by time: one call event per operation and
//! one return event per operation that returned. The search tries to *linearize* an operation whose
//! call event comes before the first return event in the list: apply it to the model and, if the
//! model's output matches what the client saw, remove its call and return events from the list (it
//! has taken effect) and go on from there. When no operation before the first return event can be
//! linearized, that return came before anything consistent could be found for its operation, so
//! the last choice is undone (backtracking). The history is linearizable once every operation that
//! returned has been linearized. Which operation is tried first matters a great deal for speed,
//! not for the verdict; see the comments in [`search`].
//!
//! Operations with an unknown outcome have a call event and no return event: nothing forces them to
//! be linearized, which models "took effect at some moment after the call, or never". (Giving them
//! a return at +infinity, as Porcupine does, is equivalent: the model is total and their output is
//! unchecked, so they could always be appended at the end; stopping early just skips that.)
//!
//! The shrinker also needs *optional* operations: ones that took effect between their call and
//! return with any output, or never. Reaching the return event of an optional operation that is
//! not linearized yet means it never took effect on this path, so it is dropped (removed like a
//! linearized one, without touching the model state); if what follows fails, so did the path that
//! led here, since dropping was the only choice left at that event.
//!
//! An unchecked (unknown or optional) operation that would leave the model state as it is is never
//! linearized: the configuration reached would have the same state and fewer choices left than the
//! current one, which is explored anyway.
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

/// A choice the search made, to be undone on backtracking.
struct Choice<S> {
    /// The call event of the operation linearized or dropped.
    call: u32,
    /// The model state before the choice.
    previous_state: S,
    /// Whether this was the configuration's last child to try (a drop, or a linearization that
    /// makes every other child redundant), so that backtracking goes on past it.
    last_child: bool,
}

/// Searches for a linearization of `operations`, which must all belong to one partition of
/// `model`, taking at most `steps_left` steps (decremented as they are taken).
pub(crate) fn search<M: Model>(
    model: &M,
    operations: &[SearchOp<'_, M::Input, M::Output>],
    steps_left: &mut u64,
) -> SearchResult {
    let mut list = EventList::new(operations);
    // Invariant: the number of required operations not linearized yet.
    let mut required_left = operations.iter().filter(|op| op.is_required()).count();
    // The operations linearized or dropped so far.
    let mut resolved = Bitset::new(operations.len());
    let mut cache = Cache::new(operations.len());
    let mut state = model.init();
    let mut choices: Vec<Choice<M::State>> = Vec::new();

    // The children of a configuration are: linearize any call event before the first return event
    // in the list (the *deadline*), or, if the deadline's operation (the *urgent* one) is
    // optional, drop it. They are tried urgent operation first, then the other calls in list
    // order, then the drop: Lowe's "just-in-time" linearization, which does not commit early to
    // operations that nobody needs yet.
    //
    // One reduction comes first: if a pending operation leaves the state unchanged and its
    // output is consistent now (a read of the current value), linearizing it now loses nothing,
    // so it is the configuration's only child. A completion that places it later stays valid with
    // it moved to the front: it changes no state, and whatever must precede it already has, since
    // its call comes before every pending return.
    let mut deadline = first_return(&list);
    let mut cursor = Cursor::Fresh;
    while required_left > 0 {
        if *steps_left == 0 {
            return SearchResult::OutOfSteps;
        }
        *steps_left -= 1;
        // A required operation is still in the list with its return event.
        assert_ne!(deadline, NONE, "no return event left with operations left");
        let urgent = list.call_event[list.operation[deadline as usize] as usize];

        let (candidate, only_child) = match cursor {
            Cursor::Fresh => match state_preserving_candidate(model, operations, &list, &state) {
                Some(event) => (Some(event), true),
                None => (Some(urgent), false),
            },
            Cursor::After(previous) => {
                let mut event = if previous == urgent {
                    list.first()
                } else {
                    list.next[previous as usize]
                };
                if event == urgent {
                    event = list.next[event as usize];
                }
                ((event != deadline).then_some(event), false)
            }
            Cursor::Exhausted => (None, false),
        };

        if let Some(event) = candidate {
            debug_assert!(list.is_call[event as usize]);
            let index = list.operation[event as usize] as usize;
            let operation = &operations[index];
            let (next_state, output) = model.step(&state, operation.input);
            let worth_trying = match operation.requirement {
                Requirement::Returned { output: seen, .. } => *seen == output,
                Requirement::Unknown | Requirement::Optional { .. } => next_state != state,
            };
            if worth_trying {
                resolved.insert(index);
                if cache.insert(&resolved, &next_state) {
                    choices.push(Choice {
                        call: event,
                        previous_state: std::mem::replace(&mut state, next_state),
                        last_child: only_child,
                    });
                    list.lift(event);
                    if operation.is_required() {
                        required_left -= 1;
                    }
                    deadline = first_return(&list);
                    cursor = Cursor::Fresh;
                    continue;
                }
                // Explored before from this very configuration, without success.
                resolved.remove(index);
            }
            cursor = if only_child {
                Cursor::Exhausted
            } else {
                Cursor::After(event)
            };
            if !only_child {
                continue;
            }
        } else if cursor != Cursor::Exhausted {
            // Every call before the deadline has been tried: the last child is the drop.
            let index = list.operation[urgent as usize] as usize;
            if let Requirement::Optional { .. } = operations[index].requirement {
                // It has not taken effect by its deadline on this path: it never did.
                resolved.insert(index);
                if cache.insert(&resolved, &state) {
                    choices.push(Choice {
                        call: urgent,
                        previous_state: state.clone(),
                        last_child: true,
                    });
                    list.lift(urgent);
                    deadline = first_return(&list);
                    cursor = Cursor::Fresh;
                    continue;
                }
                resolved.remove(index);
            }
        }

        // This configuration has no child left: undo choices up to the latest one that was not
        // its configuration's last child, and go on with that configuration's next child.
        loop {
            let Some(choice) = choices.pop() else {
                return SearchResult::NotLinearizable;
            };
            list.unlift(choice.call);
            let undone = list.operation[choice.call as usize] as usize;
            resolved.remove(undone);
            state = choice.previous_state;
            if operations[undone].is_required() {
                required_left += 1;
            }
            if !choice.last_child {
                cursor = Cursor::After(choice.call);
                break;
            }
        }
        deadline = first_return(&list);
    }
    SearchResult::Linearizable
}

/// Where the search is among the children of the current configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    /// None tried yet.
    Fresh,
    /// The child linearizing this call event was the last one tried.
    After(u32),
    /// None left.
    Exhausted,
}

/// A required call event before the first return whose recorded output the model produces from
/// `state` and which certainly left the state unchanged ([`Model::leaves_state_unchanged`]).
fn state_preserving_candidate<M: Model>(
    model: &M,
    operations: &[SearchOp<'_, M::Input, M::Output>],
    list: &EventList,
    state: &M::State,
) -> Option<u32> {
    let mut event = list.first();
    while event != NONE && list.is_call[event as usize] {
        let index = list.operation[event as usize] as usize;
        let operation = &operations[index];
        if let Requirement::Returned { output: seen, .. } = operation.requirement {
            if model.leaves_state_unchanged(operation.input, seen) {
                let (next_state, output) = model.step(state, operation.input);
                if output == *seen {
                    debug_assert!(next_state == *state, "leaves_state_unchanged lied");
                    return Some(event);
                }
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
