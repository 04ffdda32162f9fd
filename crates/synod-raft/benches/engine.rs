//! The Raft engine alone: three in-memory members, messages passed by hand, writes acknowledged
//! at once (no disk), 64-byte commands proposed in batches. Reports committed entries per second
//! on one core, so that the engine is never the bottleneck of anything above it.
//!
//! Run: `cargo bench -p synod-raft --bench engine`

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand_core::SeedableRng;
use rand_xorshift::XorShiftRng;
use synod_core::engine::Envelope;
use synod_core::{Membership, Role};
use synod_raft::{Config, Message, RaftNode, RestoreState};

/// Entries committed per measured iteration.
const ENTRIES_PER_ITERATION: u64 = 100_000;
/// Compact every member's log once it holds this many applied entries.
const COMPACT_EVERY: u64 = 200_000;

struct Bench {
    nodes: Vec<RaftNode>,
    network: VecDeque<Envelope<Message>>,
    applied: Vec<u64>,
    command: Bytes,
}

impl Bench {
    fn new() -> Bench {
        let membership = Membership::with_voters([1, 2, 3]);
        let nodes = (1..=3)
            .map(|id| {
                let mut config = Config::new(id);
                config.check_invariants = false;
                let rng = Box::new(XorShiftRng::seed_from_u64(id));
                RaftNode::restore(config, rng, RestoreState::bootstrap(membership.clone()))
                    .expect("valid bootstrap")
            })
            .collect();
        let mut bench = Bench {
            nodes,
            network: VecDeque::new(),
            applied: vec![0; 3],
            command: Bytes::from(vec![7u8; 64]),
        };
        while bench.nodes[0].role() != Role::Leader {
            bench.nodes[0].tick();
            bench.drain(0);
            bench.pump();
        }
        bench
    }

    /// Carries out member `i`'s ready batches: persisting is instantaneous.
    fn drain(&mut self, i: usize) {
        while self.nodes[i].has_ready() {
            let mut ready = self.nodes[i].ready();
            self.network.extend(ready.messages.drain(..));
            self.applied[i] += ready.committed.len() as u64;
            if let Some(write) = ready.write.take() {
                let released = self.nodes[i].persisted(write);
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
        for i in 0..3 {
            let applied = self.nodes[i].log().applied();
            if applied - self.nodes[i].log().snapshot().index >= COMPACT_EVERY {
                self.nodes[i].compact(applied).expect("compactable");
            }
        }
    }
}

fn engine_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft_engine_3_members_64B");
    group.throughput(Throughput::Elements(ENTRIES_PER_ITERATION));
    group.sample_size(20);
    for batch in [1u64, 64, 1024] {
        let mut bench = Bench::new();
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter(|| bench.commit(ENTRIES_PER_ITERATION, batch))
        });
    }
    group.finish();
}

criterion_group!(benches, engine_throughput);
criterion_main!(benches);
