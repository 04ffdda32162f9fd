use std::time::Instant;
use synod_sim::history::History;
use synod_sim::linearizability::{self, KvModel};
#[path = "../tests/common/mod.rs"]
mod common;
fn main() {
    let window: u64 = std::env::args().nth(1).unwrap().parse().unwrap();
    let unknown: u64 = std::env::args().nth(2).unwrap().parse().unwrap();
    let p = common::Params {
        operations: 10_000,
        keys: 100,
        max_window: window,
        unknown_percent: unknown,
    };
    let h = common::generate(1, &p);
    let mut times = vec![];
    for key in 0..100u64 {
        let sub: History<_, _> = h
            .operations()
            .iter()
            .filter(|o| o.input.key() == key)
            .cloned()
            .collect();
        let t = Instant::now();
        let v = linearizability::check(&KvModel, &sub);
        times.push((t.elapsed(), key, sub.len(), v.is_linearizable()));
    }
    times.sort();
    for t in times.iter().rev().take(5) {
        println!("{:?}", t);
    }
}
