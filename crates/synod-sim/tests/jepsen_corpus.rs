//! The 52 Jepsen etcd histories (tests/data/jepsen-etcd-register): the checker must agree with
//! Porcupine's verdict on every one, and shrink every violation to a small piece that is still a
//! violation.

use std::path::{Path, PathBuf};

use synod_sim::history::{History, Outcome};
use synod_sim::jepsen;
use synod_sim::linearizability::{self, CheckOptions, KvInput, KvModel, KvOutput};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jepsen-etcd-register")
}

/// (file name, linearizable?) for every line of VERDICTS.tsv.
fn verdicts() -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(corpus().join("VERDICTS.tsv")).expect("VERDICTS.tsv");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("file\tverdict"));
    lines
        .map(|line| {
            let (file, verdict) = line.split_once('\t').expect("two columns");
            let linearizable = match verdict {
                "linearizable" => true,
                "not-linearizable" => false,
                other => panic!("unknown verdict {other:?}"),
            };
            (file.to_owned(), linearizable)
        })
        .collect()
}

fn load(file: &str) -> History<KvInput, KvOutput> {
    let text = std::fs::read_to_string(corpus().join(file)).expect("readable history");
    jepsen::parse_register_history(&text).unwrap_or_else(|error| panic!("{file}: {error}"))
}

#[test]
fn every_history_gets_porcupines_verdict() {
    let verdicts = verdicts();
    assert_eq!(verdicts.len(), 52);
    // Both verdicts occur, so agreeing is not trivial.
    assert_eq!(
        verdicts
            .iter()
            .filter(|(_, linearizable)| *linearizable)
            .count(),
        11
    );
    let verdict_only = CheckOptions {
        shrink_step_budget: 0,
        ..CheckOptions::default()
    };
    let mut disagreements = Vec::new();
    for (file, expected) in &verdicts {
        let history = load(file);
        assert!(
            history.len() > 50,
            "{file} parsed to only {} operations",
            history.len()
        );
        let linearizable =
            linearizability::check_with(&KvModel, &history, &verdict_only).is_linearizable();
        if linearizable != *expected {
            disagreements.push(file.clone());
        }
    }
    assert!(
        disagreements.is_empty(),
        "wrong verdict on {disagreements:?}"
    );
}

#[test]
fn every_violation_shrinks_to_a_smaller_piece_that_is_still_one() {
    for (file, _) in verdicts().iter().filter(|(_, linearizable)| !linearizable) {
        let history = load(file);
        let verdict = linearizability::check(&KvModel, &history);
        let violation = verdict
            .violation()
            .unwrap_or_else(|| panic!("{file} should not be linearizable"));
        let piece = &violation.operations;

        assert_eq!(violation.partition, jepsen::REGISTER_KEY);
        assert!(
            !piece.is_empty() && piece.len() < violation.partition_len,
            "{file}: a piece of {} out of {}",
            piece.len(),
            violation.partition_len
        );
        // Histories of ~85 operations come down to a handful.
        assert!(piece.len() <= 10, "{file}: {violation}");
        assert!(violation.one_minimal, "{file}: shrinking ran out of budget");

        // The piece refers to the history's own operations, in call order, all with a result.
        assert_eq!(violation.op_ids.len(), piece.len());
        for (id, operation) in violation.op_ids.iter().zip(piece) {
            assert_eq!(&history.operations()[id.0], operation, "{file}");
            assert!(matches!(operation.outcome, Outcome::Returned { .. }));
        }
        assert!(piece.windows(2).all(|pair| pair[0].call <= pair[1].call));

        // On its own, the piece is still a violation.
        let alone: History<_, _> = piece.iter().cloned().collect();
        assert!(
            !linearizability::check(&KvModel, &alone).is_linearizable(),
            "{file}: the piece alone is linearizable: {violation}"
        );

        // The report lists every operation of the piece, with its line numbers, between two
        // lines of explanation and the column headers above and a line of conclusion below.
        let report = violation.to_string();
        assert_eq!(report.lines().count(), 2 + 1 + piece.len() + 1, "{report}");
        for operation in piece {
            assert!(
                report.contains(&format!("{:>10}", operation.call)),
                "{report}"
            );
        }
    }
}

#[test]
fn an_exhausted_search_budget_is_inconclusive_not_a_verdict() {
    // etcd_002 is linearizable, but deciding it takes more than one search step.
    let history = load("etcd_002.log");
    let starved = CheckOptions {
        search_step_budget: 1,
        ..CheckOptions::default()
    };
    let verdict = linearizability::check_with(&KvModel, &history, &starved);
    assert!(
        matches!(verdict, linearizability::Verdict::Inconclusive { .. }),
        "got {verdict:?}"
    );
    assert!(linearizability::check(&KvModel, &history).is_linearizable());
}
