//! The linearizability checker on the histories synod's simulator will produce: 10,000 operations
//! over 100 keys with 5% timeouts, about 100 in flight at any moment (one per key) and about 1,000
//! (ten per key). The requirement is a few seconds at most. Also measured: the same histories with
//! one read of a value never written (the check plus shrinking the violation), and all 52 Jepsen
//! etcd histories.
//!
//! Run: `cargo bench -p synod-sim --bench linearizability`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use synod_sim::jepsen;
use synod_sim::linearizability::{self, KvModel};

#[path = "../tests/common/mod.rs"]
mod common;

fn bench_generated(c: &mut Criterion) {
    let mut group = c.benchmark_group("generated_10k_ops_100_keys");
    group.sample_size(10);
    // Linearization points are 10 apart, so a window of ±500 keeps about 100 operations in
    // flight, and ±5,000 about 1,000.
    for (in_flight, max_window) in [(100, 500), (1_000, 5_000)] {
        let params = common::Params {
            operations: 10_000,
            keys: 100,
            max_window,
            unknown_percent: 5,
        };
        let history = common::generate(1, &params);
        assert!(linearizability::check(&KvModel, &history).is_linearizable());
        let (corrupted, _) = common::corrupt_a_read(&history, 4_321).expect("reads completed");
        assert!(!linearizability::check(&KvModel, &corrupted).is_linearizable());

        group.bench_function(format!("{in_flight}_in_flight_linearizable"), |b| {
            b.iter(|| linearizability::check(&KvModel, black_box(&history)))
        });
        group.bench_function(
            format!("{in_flight}_in_flight_bad_read_and_shrinking"),
            |b| b.iter(|| linearizability::check(&KvModel, black_box(&corrupted))),
        );
    }
    group.finish();
}

fn bench_jepsen(c: &mut Criterion) {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jepsen-etcd-register");
    let mut histories = Vec::new();
    for entry in std::fs::read_dir(&directory).expect("corpus directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|extension| extension == "log") {
            let text = std::fs::read_to_string(&path).expect("readable history");
            histories.push(jepsen::parse_register_history(&text).expect("well-formed history"));
        }
    }
    assert_eq!(histories.len(), 52);

    let mut group = c.benchmark_group("jepsen_etcd");
    group.sample_size(10);
    group.bench_function("52_histories_verdict_only", |b| {
        let options = linearizability::CheckOptions {
            shrink_step_budget: 0,
            ..linearizability::CheckOptions::default()
        };
        b.iter(|| {
            for history in &histories {
                black_box(linearizability::check_with(&KvModel, history, &options));
            }
        })
    });
    group.bench_function("52_histories_with_shrinking", |b| {
        b.iter(|| {
            for history in &histories {
                black_box(linearizability::check(&KvModel, history));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_generated, bench_jepsen);
criterion_main!(benches);
