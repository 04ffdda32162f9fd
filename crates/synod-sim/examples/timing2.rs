use std::time::Instant;
use synod_sim::linearizability::{self, KvModel};
#[path = "../tests/common/mod.rs"]
mod common;
fn main() {
    for window in [20000u64, 50000] {
        for unknown in [0u64, 5, 20] {
            let p = common::Params {
                operations: 10_000,
                keys: 100,
                max_window: window,
                unknown_percent: unknown,
            };
            let h = common::generate(1, &p);
            let t = Instant::now();
            let v = linearizability::check(&KvModel, &h);
            let a = t.elapsed();
            let (c, _) = common::corrupt_a_read(&h, 77).unwrap();
            let t = Instant::now();
            let v2 = linearizability::check(&KvModel, &c);
            let b = t.elapsed();
            let (c3, _) = common::flip_a_compare_and_set(&h, 77).unwrap();
            let t = Instant::now();
            let v3 = linearizability::check(&KvModel, &c3);
            let d = t.elapsed();
            println!(
                "window {window} unknown {unknown}%: ok {} {:?}; bad read {} {:?} piece {:?}; flipped cas {} {:?} piece {:?} minimal {:?}",
                v.is_linearizable(),
                a,
                v2.is_linearizable(),
                b,
                v2.violation().map(|v| v.operations.len()),
                v3.is_linearizable(),
                d,
                v3.violation().map(|v| v.operations.len()),
                v3.violation().map(|v| v.one_minimal)
            );
        }
    }
}
