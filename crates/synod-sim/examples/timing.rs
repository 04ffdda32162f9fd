use std::time::Instant;
use synod_sim::{
    jepsen,
    linearizability::{self, CheckOptions, KvModel},
};
fn main() {
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap();
        let h = jepsen::parse_register_history(&text).unwrap();
        let t = Instant::now();
        let v = linearizability::check_with(
            &KvModel,
            &h,
            &CheckOptions {
                shrink_step_budget: 0,
            },
        );
        let a = t.elapsed();
        let t = Instant::now();
        let v2 = linearizability::check(&KvModel, &h);
        let b = t.elapsed();
        println!(
            "{path} {} check {:?} check+shrink {:?} piece {:?}",
            v.is_linearizable(),
            a,
            b,
            v2.violation().map(|v| v.operations.len())
        );
    }
}
