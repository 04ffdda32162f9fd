//! A parser for Jepsen's text logs of a compare-and-set register, such as the etcd histories of the
//! linearizability-checker corpus (github.com/ahorn/linearizability-checker).
//!
//! One event per line, fields separated by white space (tabs in the corpus):
//!
//! ```text
//! INFO  jepsen.util - 3  :invoke  :cas  [1 4]
//! INFO  jepsen.util - 3  :fail    :cas  [1 4]
//! ```
//!
//! The `INFO jepsen.util -` prefix is optional. Events map onto the
//! [`KvModel`](crate::linearizability::KvModel) with a single key, [`REGISTER_KEY`], which starts
//! absent (Jepsen's `nil`). Times are line numbers, so a violation report points straight into the
//! file.
//!
//! | event | meaning | becomes |
//! |---|---|---|
//! | `:invoke :read nil` | a read | [`KvInput::Get`] |
//! | `:invoke :write N` | a write | [`KvInput::Put`] |
//! | `:invoke :cas [A B]` | set to B if it holds A | [`KvInput::CompareAndSet`] |
//! | `:ok :read V` (`nil` or N) | returned V | [`KvOutput::Get`] |
//! | `:ok :write N`, `:ok :cas [A B]` | took effect / swapped | [`KvOutput::Put`], swapped `true` |
//! | `:fail :cas [A B]` | the register did not hold A | swapped `false` (an observation) |
//! | `:fail :read`, `:fail :write` | certainly no effect | [`Outcome::NoEffect`] |
//! | `:info …` (value often `:timed-out`) | unknown | [`Outcome::Unknown`] |
//! | an `:invoke` never completed | unknown | [`Outcome::Unknown`] |
//!
//! A process runs one operation at a time, so a completion belongs to the process's open invoke,
//! and an invoke while one is open is an error. Every error names its line; nothing here panics on
//! any input.
//!
//! [`Outcome::NoEffect`]: crate::history::Outcome::NoEffect
//! [`Outcome::Unknown`]: crate::history::Outcome::Unknown

use std::collections::HashMap;

use crate::history::{ClientId, History, OpId};
use crate::linearizability::{Key, KvInput, KvOutput, Value};

/// The key of the register in the histories this module parses.
pub const REGISTER_KEY: Key = 0;

/// A line that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// The line, counting from 1.
    pub line: usize,
    /// What is wrong with it.
    pub kind: ParseErrorKind,
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The line does not have the shape of an event.
    #[error("expected `INFO jepsen.util - PROCESS :TYPE :F VALUE`, found {0:?}")]
    Malformed(String),
    /// The process is not a number.
    #[error("process {0:?} is not a non-negative integer")]
    BadProcess(String),
    /// The event type is not one of Jepsen's.
    #[error("unknown event type {0:?} (expected :invoke, :ok, :fail or :info)")]
    UnknownType(String),
    /// The operation is not one of a register's.
    #[error("unknown operation {0:?} (expected :read, :write or :cas)")]
    UnknownFunction(String),
    /// The value does not fit the operation and event type.
    #[error("value {value:?} does not fit `{event} {function}`: expected {expected}")]
    BadValue {
        /// The event type, such as `:ok`.
        event: String,
        /// The operation, such as `:cas`.
        function: String,
        /// The value found.
        value: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// A process invoked while its previous operation had not completed.
    #[error("process {process} invokes while its operation invoked on line {open_line} is open")]
    AlreadyOpen {
        /// The process.
        process: ClientId,
        /// The line of the open invoke.
        open_line: usize,
    },
    /// A process completed an operation it had not invoked.
    #[error("process {process} completes an operation it has not invoked")]
    NotInvoked {
        /// The process.
        process: ClientId,
    },
    /// A completion does not match the process's open invoke.
    #[error("process {process} completes {completed} but invoked {invoked} on line {invoke_line}")]
    Mismatch {
        /// The process.
        process: ClientId,
        /// The completion's operation and value.
        completed: String,
        /// The invoke's operation and value.
        invoked: String,
        /// The line of the invoke.
        invoke_line: usize,
    },
}

/// Parses a history of a compare-and-set register in Jepsen's log format (see the module docs).
pub fn parse_register_history(text: &str) -> Result<History<KvInput, KvOutput>, ParseError> {
    let mut history = History::new();
    // Each process's open operation: its id in the history and the line of its invoke.
    let mut open: HashMap<ClientId, (OpId, usize)> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let error = |kind| ParseError {
            line: line_number,
            kind,
        };
        if line.trim().is_empty() {
            continue;
        }
        let event = parse_event(line).map_err(error)?;
        let time = line_number as u64;
        if event.kind == EventKind::Invoke {
            if let Some(&(_, open_line)) = open.get(&event.process) {
                return Err(error(ParseErrorKind::AlreadyOpen {
                    process: event.process,
                    open_line,
                }));
            }
            let input = invoked_input(&event).map_err(error)?;
            let id = history.invoke(event.process, time, input);
            open.insert(event.process, (id, line_number));
            continue;
        }
        let Some((id, invoke_line)) = open.remove(&event.process) else {
            return Err(error(ParseErrorKind::NotInvoked {
                process: event.process,
            }));
        };
        let invoked = history.operations()[id.0].input;
        match completion(&event, &invoked, invoke_line).map_err(error)? {
            Completion::Returned(output) => history.complete(id, time, output),
            Completion::NoEffect => history.complete_without_effect(id),
            // Already recorded as unknown by `invoke`.
            Completion::Unknown => {}
        }
    }
    // Invokes still open at the end stay unknown, as the format says: `invoke` recorded them so.
    Ok(history)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventKind {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Function {
    Read,
    Write,
    Cas,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JepsenValue {
    Nil,
    Integer(Value),
    TimedOut,
    /// `[A B]`; either may be `nil`.
    Pair(Option<Value>, Option<Value>),
}

struct Event<'a> {
    process: ClientId,
    kind: EventKind,
    kind_text: &'a str,
    function: Function,
    function_text: &'a str,
    value: JepsenValue,
    value_text: String,
}

enum Completion {
    Returned(KvOutput),
    NoEffect,
    Unknown,
}

fn parse_event(line: &str) -> Result<Event<'_>, ParseErrorKind> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    // Skip the logger's prefix, which ends with a lone dash.
    let fields = match tokens.iter().position(|&token| token == "-") {
        Some(dash) => &tokens[dash + 1..],
        None => &tokens[..],
    };
    let [process_text, kind_text, function_text, value_tokens @ ..] = fields else {
        return Err(ParseErrorKind::Malformed(line.to_owned()));
    };
    if value_tokens.is_empty() {
        return Err(ParseErrorKind::Malformed(line.to_owned()));
    }
    let process = process_text
        .parse::<ClientId>()
        .map_err(|_| ParseErrorKind::BadProcess((*process_text).to_owned()))?;
    let kind = match *kind_text {
        ":invoke" => EventKind::Invoke,
        ":ok" => EventKind::Ok,
        ":fail" => EventKind::Fail,
        ":info" => EventKind::Info,
        other => return Err(ParseErrorKind::UnknownType(other.to_owned())),
    };
    let function = match *function_text {
        ":read" => Function::Read,
        ":write" => Function::Write,
        ":cas" => Function::Cas,
        other => return Err(ParseErrorKind::UnknownFunction(other.to_owned())),
    };
    let value_text = value_tokens.join(" ");
    let bad_value = || ParseErrorKind::BadValue {
        event: (*kind_text).to_owned(),
        function: (*function_text).to_owned(),
        value: value_text.clone(),
        expected: "nil, an integer, :timed-out or [A B]",
    };
    let value = parse_value(&value_text).ok_or_else(bad_value)?;
    Ok(Event {
        process,
        kind,
        kind_text,
        function,
        function_text,
        value,
        value_text,
    })
}

fn parse_value(text: &str) -> Option<JepsenValue> {
    let atom = |text: &str| match text {
        "nil" => Some(None),
        _ => text.parse::<Value>().ok().map(Some),
    };
    if text == ":timed-out" {
        return Some(JepsenValue::TimedOut);
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let mut parts = inner.split_whitespace();
        let (Some(first), Some(second), None) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        return Some(JepsenValue::Pair(atom(first)?, atom(second)?));
    }
    Some(match atom(text)? {
        None => JepsenValue::Nil,
        Some(value) => JepsenValue::Integer(value),
    })
}

fn bad_value(event: &Event<'_>, expected: &'static str) -> ParseErrorKind {
    ParseErrorKind::BadValue {
        event: event.kind_text.to_owned(),
        function: event.function_text.to_owned(),
        value: event.value_text.clone(),
        expected,
    }
}

fn invoked_input(event: &Event<'_>) -> Result<KvInput, ParseErrorKind> {
    let key = REGISTER_KEY;
    match (event.function, event.value) {
        (Function::Read, JepsenValue::Nil) => Ok(KvInput::Get { key }),
        (Function::Read, _) => Err(bad_value(event, "nil")),
        (Function::Write, JepsenValue::Integer(value)) => Ok(KvInput::Put { key, value }),
        (Function::Write, _) => Err(bad_value(event, "an integer")),
        (Function::Cas, JepsenValue::Pair(expected, Some(new))) => {
            Ok(KvInput::CompareAndSet { key, expected, new })
        }
        (Function::Cas, _) => Err(bad_value(event, "[A B], B an integer")),
    }
}

fn completion(
    event: &Event<'_>,
    invoked: &KvInput,
    invoke_line: usize,
) -> Result<Completion, ParseErrorKind> {
    // The value a write or cas completion repeats from its invoke.
    let same_as_invoked = match (*invoked, event.value) {
        (KvInput::Put { value, .. }, JepsenValue::Integer(seen)) => value == seen,
        (KvInput::CompareAndSet { expected, new, .. }, JepsenValue::Pair(a, b)) => {
            (expected, Some(new)) == (a, b)
        }
        _ => false,
    };
    let function_matches = matches!(
        (event.function, invoked),
        (Function::Read, KvInput::Get { .. })
            | (Function::Write, KvInput::Put { .. })
            | (Function::Cas, KvInput::CompareAndSet { .. })
    );
    let timed_out = event.value == JepsenValue::TimedOut;
    let mismatch = || ParseErrorKind::Mismatch {
        process: event.process,
        completed: format!("{} {}", event.function_text, event.value_text),
        invoked: invoked.to_string(),
        invoke_line,
    };
    if !function_matches {
        return Err(mismatch());
    }
    match (event.kind, event.function) {
        (EventKind::Invoke, _) => unreachable!("invokes are handled by the caller"),
        (EventKind::Ok, Function::Read) => match event.value {
            JepsenValue::Nil => Ok(Completion::Returned(KvOutput::Get(None))),
            JepsenValue::Integer(value) => Ok(Completion::Returned(KvOutput::Get(Some(value)))),
            _ => Err(bad_value(event, "nil or an integer")),
        },
        (EventKind::Ok, Function::Write) if same_as_invoked => {
            Ok(Completion::Returned(KvOutput::Put))
        }
        (EventKind::Ok, Function::Cas) if same_as_invoked => {
            Ok(Completion::Returned(KvOutput::CompareAndSet {
                swapped: true,
            }))
        }
        // A failed cas is an observation: the register did not hold the expected value.
        (EventKind::Fail, Function::Cas) if same_as_invoked => {
            Ok(Completion::Returned(KvOutput::CompareAndSet {
                swapped: false,
            }))
        }
        // A failed read (usually `:timed-out`) returned nothing, so it constrains nothing.
        (EventKind::Fail, Function::Read) => Ok(Completion::NoEffect),
        (EventKind::Fail, Function::Write) if same_as_invoked || timed_out => {
            Ok(Completion::NoEffect)
        }
        (EventKind::Info, Function::Read) => Ok(Completion::Unknown),
        (EventKind::Info, _) if same_as_invoked || timed_out => Ok(Completion::Unknown),
        _ => Err(mismatch()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    fn parse(text: &str) -> Result<History<KvInput, KvOutput>, ParseError> {
        parse_register_history(text)
    }

    fn error_at(text: &str) -> (usize, ParseErrorKind) {
        let error = parse(text).expect_err("should not parse");
        (error.line, error.kind)
    }

    #[test]
    fn parses_each_kind_of_event() {
        let text = "\
INFO  jepsen.util - 0\t:invoke\t:read\tnil
INFO  jepsen.util - 1\t:invoke\t:write\t4
INFO  jepsen.util - 2\t:invoke\t:cas\t[4 0]
INFO  jepsen.util - 0\t:ok\t:read\tnil
INFO  jepsen.util - 1\t:ok\t:write\t4

INFO  jepsen.util - 2\t:fail\t:cas\t[4 0]
3 :invoke :write 7
3 :info :write :timed-out
4 :invoke :read nil
4 :fail :read :timed-out
5 :invoke :cas [nil 1]
";
        let history = parse(text).expect("parses");
        let operations = history.operations();
        assert_eq!(operations.len(), 6);
        assert_eq!(operations[0].input, KvInput::Get { key: REGISTER_KEY });
        assert_eq!(
            operations[0].outcome,
            Outcome::Returned {
                time: 4,
                output: KvOutput::Get(None)
            }
        );
        assert_eq!(operations[1].call, 2);
        assert_eq!(operations[1].output(), Some(&KvOutput::Put));
        assert_eq!(
            operations[2].outcome,
            Outcome::Returned {
                time: 7,
                output: KvOutput::CompareAndSet { swapped: false }
            }
        );
        assert_eq!(operations[3].client, 3);
        assert_eq!(operations[3].outcome, Outcome::Unknown);
        assert_eq!(operations[4].outcome, Outcome::NoEffect);
        assert_eq!(
            operations[5].input,
            KvInput::CompareAndSet {
                key: REGISTER_KEY,
                expected: None,
                new: 1
            }
        );
        assert_eq!(operations[5].outcome, Outcome::Unknown);
    }

    #[test]
    fn errors_name_the_line() {
        let good = "0 :invoke :read nil\n";
        // (the bad line, the line reported, whether the error is the expected one)
        type Case = (&'static str, usize, fn(&ParseErrorKind) -> bool);
        let cases: [Case; 11] = [
            ("garbage", 2, |k| matches!(k, ParseErrorKind::Malformed(_))),
            ("0 :invoke :read", 2, |k| {
                matches!(k, ParseErrorKind::Malformed(_))
            }),
            ("x :ok :read nil", 2, |k| {
                matches!(k, ParseErrorKind::BadProcess(_))
            }),
            ("0 :done :read nil", 2, |k| {
                matches!(k, ParseErrorKind::UnknownType(_))
            }),
            ("0 :ok :frob nil", 2, |k| {
                matches!(k, ParseErrorKind::UnknownFunction(_))
            }),
            ("0 :ok :read [1 2 3]", 2, |k| {
                matches!(k, ParseErrorKind::BadValue { .. })
            }),
            ("0 :ok :read -1", 2, |k| {
                matches!(k, ParseErrorKind::BadValue { .. })
            }),
            ("0 :invoke :read nil", 2, |k| {
                matches!(k, ParseErrorKind::AlreadyOpen { open_line: 1, .. })
            }),
            ("1 :ok :read nil", 2, |k| {
                matches!(k, ParseErrorKind::NotInvoked { process: 1 })
            }),
            ("0 :ok :write 3", 2, |k| {
                matches!(k, ParseErrorKind::Mismatch { invoke_line: 1, .. })
            }),
            ("0 :ok :read :timed-out", 2, |k| {
                matches!(k, ParseErrorKind::BadValue { .. })
            }),
        ];
        for (line, expected_line, is_expected) in cases {
            let (at, kind) = error_at(&format!("{good}{line}\n"));
            assert_eq!(at, expected_line, "{line:?}: {kind}");
            assert!(is_expected(&kind), "{line:?}: unexpected error {kind:?}");
        }
    }

    #[test]
    fn completions_must_repeat_the_invoked_value() {
        let (line, kind) = error_at("7 :invoke :cas [1 2]\n7 :ok :cas [1 3]\n");
        assert_eq!(line, 2);
        assert!(matches!(kind, ParseErrorKind::Mismatch { process: 7, .. }));
        let (line, _) = error_at("7 :invoke :write 1\n7 :fail :write 2\n");
        assert_eq!(line, 2);
        // A write may time out, a cas's failure is an observation and must say which cas.
        assert!(parse("7 :invoke :write 1\n7 :info :write :timed-out\n").is_ok());
        assert!(parse("7 :invoke :cas [1 2]\n7 :fail :cas :timed-out\n").is_err());
    }

    #[test]
    fn error_messages_are_readable() {
        let error = parse("0 :invoke :read nil\n0 :invoke :write 1\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2: process 0 invokes while its operation invoked on line 1 is open"
        );
    }
}
