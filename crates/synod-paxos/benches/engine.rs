//! Both engines side by side, driven by the same code: three in-memory members, messages passed
//! by hand, writes acknowledged at once (no disk), 64-byte commands proposed in batches. Reports
//! committed entries per second on one core. It lives with the Multi-Paxos engine but measures
//! the Raft engine too (a dev-dependency), so that one run compares them.
//!
//! Before the measurements it prints, once and outside criterion's timing, how many messages
//! each engine sends per committed entry at each batch size (every envelope, whether from
//! `Ready::messages` or released by `persisted`), with the entries per second of that one run.
//!
//! Run: `cargo bench -p synod-paxos --bench engine`

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use rand_core::SeedableRng;
use rand_xorshift::XorShiftRng;
use synod_core::{Engine, Envelope, Membership, Role};
use synod_paxos::PaxosNode;
use synod_raft::RaftNode;

/// Batch sizes, as in the Raft engine's benchmark.
const BATCHES: [u64; 3] = [1, 64, 1024];
/// Entries committed per measured iteration.
const ENTRIES_PER_ITERATION: u64 = 100_000;
/// Entries committed per measured iteration when run as a test (`cargo test --benches`), where
/// criterion runs each benchmark once only to check that it works.
const ENTRIES_PER_ITERATION_TEST: u64 = 2_000;
/// Entries committed for the messages-per-entry table.
const TABLE_ENTRIES: u64 = 100_000;
/// The same, when run as a test.
const TABLE_ENTRIES_TEST: u64 = 20_000;
/// Compact every member's log once it holds this many applied entries.
const COMPACT_EVERY: u64 = 200_000;

/// A three-member cluster of one engine, with its network.
struct Bench<E: Engine> {
    nodes: Vec<E>,
    network: VecDeque<Envelope<E::Message>>,
    applied: Vec<u64>,
    /// Envelopes sent since the cluster elected its leader.
    messages: u64,
    command: Bytes,
}

impl<E: Engine> Bench<E> {
    /// Ticks member 1 alone until it leads: the others never time out, so there is no contest.
    fn new(nodes: Vec<E>) -> Bench<E> {
        assert_eq!(nodes.len(), 3, "the benchmark runs three members");
        let mut bench = Bench {
            nodes,
            network: VecDeque::new(),
            applied: vec![0; 3],
            messages: 0,
            command: Bytes::from(vec![7u8; 64]),
        };
        while bench.nodes[0].status().soft_state.role != Role::Leader {
            bench.nodes[0].tick();
            bench.drain(0);
            bench.pump();
        }
        bench.messages = 0;
        bench
    }

    /// Carries out member `i`'s ready batches: persisting is instantaneous.
    fn drain(&mut self, i: usize) {
        while self.nodes[i].has_ready() {
            let mut ready = self.nodes[i].ready();
            self.messages += ready.messages.len() as u64;
            self.network.extend(ready.messages.drain(..));
            self.applied[i] += ready.committed.len() as u64;
            if let Some(write) = ready.write.take() {
                let released = self.nodes[i].persisted(write);
                self.messages += released.len() as u64;
                self.network.extend(released);
            }
        }
    }

    fn pump(&mut self) {
        while let Some(envelope) = self.network.pop_front() {
            let to = (envelope.to - 1) as usize;
            self.nodes[to].step(envelope.from, envelope.message);
            self.drain(to);
        }
    }

    /// Proposes `count` commands in batches of `batch` and runs until the leader applied them.
    fn commit(&mut self, count: u64, batch: u64) {
        let target = self.applied[0] + count;
        let mut proposed = 0;
        while self.applied[0] < target {
            let n = batch.min(count - proposed);
            for _ in 0..n {
                self.nodes[0].propose(self.command.clone()).expect("leader");
            }
            proposed += n;
            self.drain(0);
            self.pump();
            self.drain(0);
        }
        for node in &mut self.nodes {
            let status = node.status();
            if status.applied - status.snapshot_index >= COMPACT_EVERY {
                node.compact(status.applied).expect("compactable");
            }
        }
    }
}

fn raft_cluster() -> Bench<RaftNode> {
    let membership = Membership::with_voters([1, 2, 3]);
    let nodes = (1..=3)
        .map(|id| {
            let mut config = synod_raft::Config::new(id);
            config.check_invariants = false;
            let rng = Box::new(XorShiftRng::seed_from_u64(id));
            let state = synod_raft::RestoreState::bootstrap(membership.clone());
            RaftNode::restore(config, rng, state).expect("valid bootstrap")
        })
        .collect();
    Bench::new(nodes)
}

fn paxos_cluster() -> Bench<PaxosNode> {
    let membership = Membership::with_voters([1, 2, 3]);
    let nodes = (1..=3)
        .map(|id| {
            let mut config = synod_paxos::Config::new(id);
            config.check_invariants = false;
            let rng = Box::new(XorShiftRng::seed_from_u64(id));
            let state = synod_paxos::RestoreState::bootstrap(membership.clone());
            PaxosNode::restore(config, rng, state).expect("valid bootstrap")
        })
        .collect();
    Bench::new(nodes)
}

/// Whether criterion will only test the benchmarks (`cargo test --benches`): the same rule
/// criterion applies to its arguments, which it does not expose.
fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    !flag("--bench") || flag("--test")
}

/// Commits `entries` entries in one untimed-by-criterion run: (messages per entry, entries/s).
fn messages_per_entry<E: Engine>(mut bench: Bench<E>, entries: u64, batch: u64) -> (f64, f64) {
    let applied_before = bench.applied[0];
    let start = Instant::now();
    bench.commit(entries, batch);
    let seconds = start.elapsed().as_secs_f64();
    let committed = (bench.applied[0] - applied_before) as f64;
    (bench.messages as f64 / committed, committed / seconds)
}

fn print_table(entries: u64) {
    println!("messages per committed entry, {entries} entries per run (one run, no warm-up)");
    println!(
        "{:<11} {:>6} {:>15} {:>12}",
        "engine", "batch", "messages/entry", "entries/s"
    );
    for batch in BATCHES {
        for (engine, (messages, rate)) in [
            ("raft", messages_per_entry(raft_cluster(), entries, batch)),
            (
                "multipaxos",
                messages_per_entry(paxos_cluster(), entries, batch),
            ),
        ] {
            println!("{engine:<11} {batch:>6} {messages:>15.3} {rate:>12.0}");
        }
    }
    println!();
}

fn bench_engine<E: Engine>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    engine: &str,
    mut bench: Bench<E>,
    entries: u64,
    batch: u64,
) {
    group.bench_function(BenchmarkId::new(engine, format!("batch-{batch}")), |b| {
        b.iter(|| bench.commit(entries, batch))
    });
}

fn engine_throughput(c: &mut Criterion) {
    let test = test_mode();
    if !std::env::args().any(|a| a == "--list") {
        print_table(if test {
            TABLE_ENTRIES_TEST
        } else {
            TABLE_ENTRIES
        });
    }
    let entries = if test {
        ENTRIES_PER_ITERATION_TEST
    } else {
        ENTRIES_PER_ITERATION
    };
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(entries));
    group.sample_size(20);
    for batch in BATCHES {
        bench_engine(&mut group, "raft", raft_cluster(), entries, batch);
        bench_engine(&mut group, "multipaxos", paxos_cluster(), entries, batch);
    }
    group.finish();
}

criterion_group!(benches, engine_throughput);
criterion_main!(benches);
