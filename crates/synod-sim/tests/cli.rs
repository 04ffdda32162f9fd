//! The `synod-sim check-history` command: verdict as the last line, exit 0 (linearizable), 1 (not
//! linearizable) or 2 (input that cannot be read or parsed), and never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn synod_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synod-sim"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn check_history(file: &Path) -> Output {
    synod_sim(&[
        "check-history",
        "--format",
        "jepsen",
        file.to_str().expect("UTF-8 path"),
    ])
}

fn corpus_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/jepsen-etcd-register")
        .join(name)
}

/// A file in this test's scratch directory holding `contents`.
fn scratch_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, contents).expect("scratch file");
    path
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 stderr")
}

fn assert_no_panic(output: &Output) {
    assert!(!stderr(output).contains("panicked"), "{}", stderr(output));
}

#[test]
fn linearizable_histories_exit_zero() {
    for name in ["etcd_002.log", "etcd_018.log", "etcd_102.log"] {
        let output = check_history(&corpus_file(name));
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
        assert_eq!(
            stdout(&output).lines().last(),
            Some("linearizable"),
            "{name}"
        );
    }
}

#[test]
fn violations_exit_one_and_show_the_piece_first() {
    for name in ["etcd_000.log", "etcd_004.log", "etcd_012.log"] {
        let output = check_history(&corpus_file(name));
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stderr(&output));
        let text = stdout(&output);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"not linearizable"), "{name}");
        assert!(lines[0].contains("cannot be linearized"), "{text}");
        assert!(
            lines.iter().any(|line| line.contains("get(key 0)")),
            "{text}"
        );
    }
}

#[test]
fn a_missing_file_is_reported_with_exit_two() {
    let output = check_history(Path::new("/nonexistent/history.log"));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot read /nonexistent/history.log"));
    assert!(output.stdout.is_empty());
    assert_no_panic(&output);
}

#[test]
fn a_directory_is_reported_with_exit_two() {
    let output = check_history(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot read"));
    assert_no_panic(&output);
}

#[test]
fn a_malformed_line_is_named_with_exit_two() {
    let path = scratch_file(
        "malformed.log",
        b"INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
          INFO  jepsen.util - 0\t:ok\t:read\tnil\n\
          INFO  jepsen.util - 1\t:invoke\t:write\tfour\n",
    );
    let output = check_history(&path);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("is not a Jepsen register history"),
        "{message}"
    );
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("\"four\""), "{message}");
    assert!(output.stdout.is_empty());
    assert_no_panic(&output);
}

#[test]
fn a_completion_without_invoke_is_named_with_exit_two() {
    let path = scratch_file("unbalanced.log", b"\n\n7 :ok :write 3\n");
    let output = check_history(&path);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("line 3: process 7"),
        "{}",
        stderr(&output)
    );
    assert_no_panic(&output);
}

#[test]
fn binary_content_is_reported_with_exit_two() {
    let path = scratch_file("binary.log", &[0xff, 0xfe, 0x00, 0x80, b'\n']);
    let output = check_history(&path);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot read"),
        "{}",
        stderr(&output)
    );
    assert_no_panic(&output);
}

#[test]
fn an_empty_history_is_linearizable() {
    let output = check_history(&scratch_file("empty.log", b""));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), "linearizable\n");
}

#[test]
fn usage_errors_exit_two() {
    let no_format = synod_sim(&["check-history", "some.log"]);
    assert_eq!(no_format.status.code(), Some(2));
    let unknown_format = synod_sim(&["check-history", "--format", "edn", "some.log"]);
    assert_eq!(unknown_format.status.code(), Some(2));
    assert!(stderr(&unknown_format).contains("jepsen"));
    let missing_file = synod_sim(&["check-history", "--format", "jepsen"]);
    assert_eq!(missing_file.status.code(), Some(2));
    for output in [no_format, unknown_format, missing_file] {
        assert_no_panic(&output);
    }
}

#[test]
fn multipaxos_engine_runs_from_the_command_line() {
    let output = synod_sim(&["--engine", "multipaxos", "--seeds", "3"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).lines().last(),
        Some("3 passed, 0 failed"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_mutant_of_the_other_engine_is_refused_with_a_clear_message() {
    let output = synod_sim(&["--mutant", "ignore-promise-value", "--seeds", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("add --engine multipaxos"),
        "{}",
        stderr(&output)
    );
    assert_no_panic(&output);
}
