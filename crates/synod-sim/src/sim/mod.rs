//! The deterministic cluster simulator.
//!
//! A whole cluster runs in one thread from one seed: N engines, a simulated network (delay,
//! loss, duplication, reordering, partitions), simulated disks (latency; a crash loses whatever
//! was not yet acknowledged as durable), simulated clocks (per-member tick-rate skew and pauses)
//! and simulated clients issuing key-value operations. Every run is a function of its seed, so
//! every failure reproduces exactly.
//!
//! The simulator drives any [`Engine`]. It knows nothing about Raft: it hands messages, ticks
//! and writes to the engine, and reads back its [`Ready`](synod_core::Ready) batches.
//!
//! After every event the [`checker`] checks election safety and state-machine safety as they
//! happen; leader completeness when a leader appears; log matching periodically; durability,
//! convergence and linearizability of the client history at the end.

pub mod checker;
pub mod disk;
pub mod engines;
pub mod failover;
pub mod kv;
pub mod runner;
pub mod scenarios;
pub mod storage;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::sync::Arc;

use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use synod_core::{
    ConfChange, Engine, Envelope, Index, Membership, NodeId, Payload, Role, SnapshotMeta,
    WireMessage, Write,
};

use crate::history::{History, OpId};
use crate::linearizability::{self, KvInput, KvModel, KvOutput};
use checker::Checker;
use disk::Disk;
use kv::{Command, KvSnapshot, KvStore};

/// Simulated time, in microseconds.
pub type Micros = u64;

/// Builds an engine for member `id` from its disk, with an RNG seed.
pub type Boot<E> = Box<dyn Fn(NodeId, &Disk<<E as Engine>::HardState>, u64) -> E>;

/// How the simulator builds members, and what it stores them on.
pub struct BootFn<E: Engine> {
    /// Builds an engine for member `id` from its disk, with an RNG seed.
    pub boot: Boot<E>,
    /// Put every member on the real `synod-storage` over a fault-injecting file system (see
    /// [`storage`]).
    pub real_storage: bool,
}

/// A failed run: which checker failed, why, and the last events before it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed that reproduces it.
    pub seed: u64,
    /// The checker (or phase) that failed.
    pub checker: &'static str,
    /// What it found.
    pub detail: String,
    /// The last events before the failure, oldest first.
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} failed: {}: {}",
            self.seed, self.checker, self.detail
        )?;
        writeln!(f, "last events:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(f, "reproduce with: synod-sim --seed {}", self.seed)
    }
}

/// What a passing run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Messages delivered.
    pub messages_delivered: u64,
    /// Client operations recorded in the history.
    pub operations: usize,
    /// Operations that returned.
    pub operations_ok: usize,
    /// The highest index committed.
    pub committed: Index,
    /// Leaders elected (distinct terms with a leader).
    pub elections: usize,
    /// Configuration entries applied by some member (membership changes that took effect).
    pub membership_changes: usize,
    /// Simulated time at the end.
    pub end_time: Micros,
}

/// The faults a run injects. Swarm testing draws a different mix for every seed.
#[derive(Clone, Debug)]
pub struct FaultProfile {
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Smallest network delay.
    pub delay_min: Micros,
    /// Largest network delay (reordering comes from the spread).
    pub delay_max: Micros,
    /// Largest disk write latency.
    pub disk_latency_max: Micros,
    /// Largest tick-rate skew, as a fraction (0.05: members tick up to 5% fast or slow).
    pub skew_max: f64,
    /// Probability per fault round of crashing a member.
    pub crash: f64,
    /// Probability per fault round of crashing the leader (leader churn, as in the classic
    /// "Figure 8 unreliable" test). A member is restarted whenever fewer than a majority run.
    pub crash_leader: f64,
    /// Probability per fault round of restarting a crashed member.
    pub restart: f64,
    /// Probability per fault round of a new partition.
    pub partition: f64,
    /// Probability per fault round of healing the network.
    pub heal: f64,
    /// Probability per fault round of pausing a member (a GC pause).
    pub pause: f64,
    /// Probability per fault round of a leadership transfer.
    pub transfer: f64,
    /// Probability per fault round that the leader is asked for a membership change: add a
    /// spare member as a learner, promote a learner, remove a voter (never below three), or
    /// swap a voter for a learner in one joint change.
    pub reconfigure: f64,
    /// Probability per fault round that a member is told, wrongly, that its connection to its
    /// live leader dropped (`Engine::peer_unreachable`), as after a connection reset. (A
    /// crash always tells the members it can reach, after a network delay.)
    pub connection_reset: f64,
    /// Take a snapshot when this many entries were applied since the last (None: never).
    pub snapshot_interval: Option<u64>,
    /// Leader churn in the manner of the classic "Figure 8" tests: propose on every leader,
    /// then crash the leader a few milliseconds later, over and over, restarting members to
    /// keep a majority up. Leaves many partly replicated entries from many terms behind.
    pub churn: bool,
}

impl FaultProfile {
    /// No faults at all.
    pub fn none() -> Self {
        FaultProfile {
            loss: 0.0,
            duplicate: 0.0,
            delay_min: 500,
            delay_max: 2_000,
            disk_latency_max: 1_000,
            skew_max: 0.0,
            crash: 0.0,
            crash_leader: 0.0,
            restart: 0.0,
            partition: 0.0,
            heal: 0.0,
            pause: 0.0,
            transfer: 0.0,
            reconfigure: 0.0,
            connection_reset: 0.0,
            snapshot_interval: None,
            churn: false,
        }
    }

    /// A random mix of faults (swarm testing: each seed tests its own combination).
    pub fn swarm(rng: &mut impl Rng) -> Self {
        let mut pick = |choices: &[f64]| choices[(rng.next_u64() % choices.len() as u64) as usize];
        FaultProfile {
            loss: pick(&[0.0, 0.0, 0.01, 0.05, 0.2]),
            duplicate: pick(&[0.0, 0.0, 0.02, 0.1]),
            delay_min: pick(&[100.0, 500.0, 1_000.0]) as Micros,
            delay_max: pick(&[2_000.0, 10_000.0, 30_000.0, 80_000.0]) as Micros,
            disk_latency_max: pick(&[0.0, 1_000.0, 5_000.0, 20_000.0]) as Micros,
            skew_max: pick(&[0.0, 0.02, 0.1]),
            crash: pick(&[0.0, 0.05, 0.15]),
            crash_leader: pick(&[0.0, 0.0, 0.1, 0.3]),
            restart: pick(&[0.2, 0.5]),
            partition: pick(&[0.0, 0.05, 0.15]),
            heal: pick(&[0.1, 0.3]),
            pause: pick(&[0.0, 0.03, 0.1]),
            transfer: pick(&[0.0, 0.02, 0.05]),
            // Drawn by the caller from a separate stream, so that adding it left every other
            // draw of existing seeds unchanged.
            reconfigure: 0.0,
            connection_reset: 0.0,
            snapshot_interval: [None, Some(10), Some(50), Some(300)][(rng.next_u64() % 4) as usize],
            churn: rng.next_u64().is_multiple_of(4),
        }
    }
}

/// How a run is shaped.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Voters at the start: ids `1..=members`.
    pub members: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Distinct keys the clients touch.
    pub keys: u64,
    /// One engine tick.
    pub tick: Micros,
    /// How long faults are injected.
    pub safety_phase: Micros,
    /// How long the healed cluster runs afterwards; a leader and a committed write must appear
    /// within it.
    pub liveness_phase: Micros,
    /// A client gives up on an operation after this long.
    pub client_timeout: Micros,
    /// Time between fault rounds.
    pub fault_interval: Micros,
    /// The longest a client waits between operations.
    pub client_think_max: Micros,
    /// The faults.
    pub faults: FaultProfile,
}

impl SimOptions {
    /// The shape of a swarm run for `seed`: cluster size, clients and faults all drawn from it.
    pub fn swarm(seed: u64) -> Self {
        let mut rng = XorShiftRng::seed_from_u64(seed ^ 0x5157_4152_4d00);
        let mut reconfigure_rng = XorShiftRng::seed_from_u64(seed ^ 0x5245_434f_4e46);
        let reconfigure = [0.0, 0.0, 0.03, 0.1][(reconfigure_rng.next_u64() % 4) as usize];
        // Likewise drawn from a stream of its own.
        let mut reset_rng = XorShiftRng::seed_from_u64(seed ^ 0x5245_5345_5400);
        let connection_reset = [0.0, 0.0, 0.05, 0.2][(reset_rng.next_u64() % 4) as usize];
        let members = [3, 3, 5, 5, 7][(rng.next_u64() % 5) as usize];
        let mut options = SimOptions {
            members,
            clients: 1 + rng.next_u64() % 6,
            keys: 1 + rng.next_u64() % 5,
            tick: 10_000,
            safety_phase: 3_000_000 + (rng.next_u64() % 4) * 1_000_000,
            liveness_phase: 6_000_000,
            client_timeout: 800_000,
            fault_interval: [30_000, 100_000][(rng.next_u64() % 2) as usize],
            client_think_max: [20_000, 200_000][(rng.next_u64() % 2) as usize],
            faults: FaultProfile::swarm(&mut rng),
        };
        options.faults.reconfigure = reconfigure;
        options.faults.connection_reset = connection_reset;
        options
    }

    /// A calm run: no faults.
    pub fn calm(members: u64) -> Self {
        SimOptions {
            members,
            clients: 3,
            keys: 3,
            tick: 10_000,
            safety_phase: 2_000_000,
            liveness_phase: 2_000_000,
            client_timeout: 800_000,
            fault_interval: 100_000,
            client_think_max: 20_000,
            faults: FaultProfile::none(),
        }
    }
}

/// A scheduled event.
enum Event<M> {
    Deliver {
        from: NodeId,
        to: NodeId,
        message: M,
        snapshot: Option<Arc<KvSnapshot>>,
    },
    Tick {
        node: NodeId,
        incarnation: u64,
    },
    WriteDone {
        node: NodeId,
        incarnation: u64,
    },
    ClientStep {
        client: u64,
    },
    ClientTimeout {
        client: u64,
        op: u64,
    },
    FaultRound,
    StartLiveness,
    Probe,
    ChurnPropose,
    ChurnCrash,
    Unpause {
        node: NodeId,
    },
    /// The transport of `node` reports that its connection to `peer` dropped.
    PeerLost {
        node: NodeId,
        peer: NodeId,
        incarnation: u64,
    },
}

struct Scheduled<M> {
    time: Micros,
    seq: u64,
    event: Event<M>,
}

impl<M> PartialEq for Scheduled<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<M> Eq for Scheduled<M> {}
impl<M> PartialOrd for Scheduled<M> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Scheduled<M> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// One simulated member.
pub struct SimNode<E: Engine> {
    /// The engine; `None` while crashed.
    pub engine: Option<E>,
    /// Its disk.
    pub disk: Disk<E::HardState>,
    /// Its state machine.
    pub kv: KvStore,
    /// Bumped at every restart, so that events of an earlier life are ignored.
    pub incarnation: u64,
    /// Writes handed out and not yet durable, oldest first.
    writes: VecDeque<Write<E::HardState>>,
    /// How many of the oldest writes the flush in progress covers (0: the disk is idle). Writes
    /// that arrive during a flush share the next one, as with group commit.
    flushing: usize,
    /// Snapshots received with InstallSnapshot messages, by index.
    incoming_snapshots: BTreeMap<Index, Arc<KvSnapshot>>,
    /// Tick period of this member (skewed).
    tick: Micros,
    /// Paused (a GC pause) until this time.
    paused_until: Micros,
    /// The engine's term, as of its last reported soft state.
    term: u64,
    /// The real storage under this member, with `--storage real`.
    storage: Option<storage::RealStorage>,
}

/// What a client is doing.
#[derive(Clone, Debug)]
struct Client {
    id: u64,
    node: NodeId,
    next_op: u64,
    waiting: Option<Waiting>,
}

#[derive(Clone, Debug)]
struct Waiting {
    op: u64,
    history_id: OpId,
    input: KvInput,
    node: NodeId,
    read_context: Option<u64>,
}

/// Compact trace records, formatted only on failure.
#[derive(Clone, Debug)]
enum TraceEvent {
    Deliver {
        from: NodeId,
        to: NodeId,
        kind: &'static str,
    },
    Role {
        node: NodeId,
        role: Role,
        term: u64,
    },
    Fault(String),
    Client(String),
}

const TRACE_LEN: usize = 48;

/// The simulator. See the module documentation.
pub struct Sim<E: Engine> {
    /// The seed of this run.
    pub seed: u64,
    /// The run's shape.
    pub options: SimOptions,
    rng: XorShiftRng,
    now: Micros,
    seq: u64,
    events: BinaryHeap<Reverse<Scheduled<E::Message>>>,
    /// The members.
    pub nodes: BTreeMap<NodeId, SimNode<E>>,
    boot: BootFn<E>,
    /// Directed links that drop everything: (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    loss: f64,
    duplicate: f64,
    clients: Vec<Client>,
    /// The client history.
    pub history: History<KvInput, KvOutput>,
    /// The safety checkers.
    pub checker: Checker,
    trace: VecDeque<(Micros, TraceEvent)>,
    messages_delivered: u64,
    faults_on: bool,
    /// When the liveness phase started, and when its probe write succeeded.
    liveness_started: Option<Micros>,
    probe_ok: Option<Micros>,
    read_context_next: u64,
    /// Clients stop issuing operations at this time, so that the cluster can settle before the
    /// final convergence checks.
    quiesce_at: Micros,
    events_processed: u64,
    failure: Option<(&'static str, String)>,
    /// Indexes of the configuration entries applied anywhere.
    membership_changes: BTreeSet<Index>,
    /// Draws the delays of connection-loss reports, apart from `rng`, so that adding them left
    /// every other draw of existing seeds unchanged.
    connection_rng: XorShiftRng,
}

impl<E: Engine> Sim<E> {
    /// A new cluster of `options.members` voters, booted through `boot`.
    pub fn new(seed: u64, options: SimOptions, boot: BootFn<E>) -> Self {
        let mut rng = XorShiftRng::seed_from_u64(seed);
        let membership = Membership::with_voters(1..=options.members);
        let mut sim = Sim {
            seed,
            loss: options.faults.loss,
            duplicate: options.faults.duplicate,
            rng: XorShiftRng::seed_from_u64(rng.next_u64()),
            options,
            now: 0,
            seq: 0,
            events: BinaryHeap::new(),
            nodes: BTreeMap::new(),
            boot,
            cut: BTreeSet::new(),
            clients: Vec::new(),
            history: History::new(),
            checker: Checker::new(E::LOG_MATCHING),
            trace: VecDeque::new(),
            messages_delivered: 0,
            faults_on: true,
            liveness_started: None,
            probe_ok: None,
            read_context_next: 1,
            quiesce_at: Micros::MAX,
            events_processed: 0,
            failure: None,
            membership_changes: BTreeSet::new(),
            connection_rng: XorShiftRng::seed_from_u64(seed ^ 0x434f_4e4e_4c4f),
        };
        for id in 1..=sim.options.members {
            let disk = Disk::new(SnapshotMeta {
                index: 0,
                term: 0,
                membership: membership.clone(),
            });
            sim.add_node(id, disk);
        }
        for client in 0..sim.options.clients {
            let node = 1 + sim.rng.next_u64() % sim.options.members;
            sim.clients.push(Client {
                id: client + 1,
                node,
                next_op: 1,
                waiting: None,
            });
            let at = sim.rng.next_u64() % 100_000;
            sim.schedule(at, Event::ClientStep { client });
        }
        sim
    }

    /// Adds a member booted from `disk` (an empty disk for a member that joins later).
    pub fn add_node(&mut self, id: NodeId, disk: Disk<E::HardState>) {
        let skew = self.options.faults.skew_max;
        let factor = 1.0 + skew * (2.0 * self.uniform() - 1.0);
        let tick = ((self.options.tick as f64) * factor).max(1.0) as Micros;
        let engine = (self.boot.boot)(id, &disk, self.rng.next_u64());
        let storage = if self.boot.real_storage {
            match storage::RealStorage::create(&disk) {
                Ok(storage) => Some(storage),
                Err(detail) => {
                    self.fail("storage", format!("node {id}: creating storage: {detail}"));
                    None
                }
            }
        } else {
            None
        };
        let node = SimNode {
            storage,
            kv: KvStore::restore(&disk.snapshot_data),
            engine: Some(engine),
            disk,
            incarnation: 0,
            writes: VecDeque::new(),
            flushing: 0,
            incoming_snapshots: BTreeMap::new(),
            tick,
            paused_until: 0,
            term: 0,
        };
        self.nodes.insert(id, node);
        let first = self.rng.next_u64() % tick;
        self.schedule(
            first,
            Event::Tick {
                node: id,
                incarnation: 0,
            },
        );
    }

    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn schedule(&mut self, after: Micros, event: Event<E::Message>) {
        self.seq += 1;
        self.events.push(Reverse(Scheduled {
            time: self.now + after,
            seq: self.seq,
            event,
        }));
    }

    fn record(&mut self, event: TraceEvent) {
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back((self.now, event));
    }

    fn fail(&mut self, checker: &'static str, detail: String) {
        if self.failure.is_none() {
            self.failure = Some((checker, detail));
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> Micros {
        self.now
    }

    /// The engine of member `id`, if running.
    pub fn engine(&self, id: NodeId) -> Option<&E> {
        self.nodes.get(&id).and_then(|n| n.engine.as_ref())
    }

    /// The engine of member `id`, mutably, if running.
    pub fn engine_mut(&mut self, id: NodeId) -> Option<&mut E> {
        self.nodes.get_mut(&id).and_then(|n| n.engine.as_mut())
    }

    /// The running member that leads with the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| n.engine.as_ref().map(|e| (id, e.status())))
            .filter(|(_, s)| s.soft_state.role == Role::Leader)
            .max_by_key(|(_, s)| s.soft_state.term)
            .map(|(id, _)| id)
    }

    // -------------------------------------------------------------------------------------
    // Running.

    /// Runs the safety phase with faults, then heals everything and runs the liveness phase,
    /// then runs the final checks.
    pub fn run(mut self) -> Result<Report, Failure> {
        if self.faults_on {
            let interval = self.options.fault_interval;
            self.schedule(interval, Event::FaultRound);
            if self.options.faults.churn {
                self.schedule(interval, Event::ChurnPropose);
            }
        }
        let safety = self.options.safety_phase;
        self.schedule(safety, Event::StartLiveness);
        let end = safety + self.options.liveness_phase;
        self.quiesce_at = end - (self.options.liveness_phase / 3).min(1_000_000);
        self.run_until(end);
        self.finish()
    }

    /// Turns random faults off (for scripted scenarios).
    pub fn without_random_faults(mut self) -> Self {
        self.faults_on = false;
        self
    }

    /// Processes events until `time` (or a failure).
    pub fn run_until(&mut self, time: Micros) {
        while self.failure.is_none() {
            let Some(Reverse(next)) = self.events.peek() else {
                break;
            };
            if next.time > time {
                break;
            }
            self.events_processed += 1;
            if self.events_processed > MAX_EVENTS || self.events.len() > MAX_PENDING_EVENTS {
                // A run of a correct engine needs a small fraction of either; more means a
                // message storm or a livelock, and would otherwise exhaust memory.
                let detail = format!(
                    "{} events processed, {} pending: a message storm or livelock",
                    self.events_processed,
                    self.events.len()
                );
                self.fail("simulator budget", detail);
                break;
            }
            let Reverse(Scheduled { time, event, .. }) = self.events.pop().expect("peeked");
            self.now = time;
            self.handle(event);
        }
        self.now = self.now.max(time);
    }

    /// Runs for `duration` more.
    pub fn run_for(&mut self, duration: Micros) {
        let end = self.now + duration;
        self.run_until(end);
    }

    fn handle(&mut self, event: Event<E::Message>) {
        match event {
            Event::Deliver {
                from,
                to,
                message,
                snapshot,
            } => self.deliver(from, to, message, snapshot),
            Event::Tick { node, incarnation } => self.tick(node, incarnation),
            Event::WriteDone { node, incarnation } => self.write_done(node, incarnation),
            Event::ClientStep { client } => self.client_step(client),
            Event::ClientTimeout { client, op } => self.client_timeout(client, op),
            Event::FaultRound => self.fault_round(),
            Event::StartLiveness => self.start_liveness(),
            Event::Probe => self.probe(),
            Event::ChurnPropose => self.churn_propose(),
            Event::ChurnCrash => self.churn_crash(),
            Event::Unpause { node } => {
                self.record(TraceEvent::Fault(format!("node {node} resumes")));
                self.process(node);
            }
            Event::PeerLost {
                node,
                peer,
                incarnation,
            } => self.peer_lost(node, peer, incarnation),
        }
    }

    /// Tells `node` that its connection to `peer` dropped (if it still runs the life the report
    /// was meant for; a paused member reads it when it resumes).
    fn peer_lost(&mut self, id: NodeId, peer: NodeId, incarnation: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.incarnation != incarnation || node.engine.is_none() {
            return;
        }
        if node.paused_until > self.now {
            let wait = node.paused_until - self.now;
            self.schedule(
                wait,
                Event::PeerLost {
                    node: id,
                    peer,
                    incarnation,
                },
            );
            return;
        }
        let acted = node
            .engine
            .as_mut()
            .expect("running")
            .peer_unreachable(peer);
        if acted {
            self.record(TraceEvent::Fault(format!(
                "{id} told {peer} is unreachable: campaigns early"
            )));
        }
        self.process(id);
    }

    fn running(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.engine.is_some())
    }

    fn paused(&self, id: NodeId) -> bool {
        self.nodes
            .get(&id)
            .is_some_and(|n| n.paused_until > self.now)
    }

    fn deliver(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: E::Message,
        snapshot: Option<Arc<KvSnapshot>>,
    ) {
        if !self.running(to) || self.cut.contains(&(from, to)) {
            return;
        }
        if self.paused(to) {
            // A paused process does not read its socket; the message waits.
            let wait = self.nodes[&to].paused_until - self.now;
            self.schedule(
                wait,
                Event::Deliver {
                    from,
                    to,
                    message,
                    snapshot,
                },
            );
            return;
        }
        self.messages_delivered += 1;
        self.record(TraceEvent::Deliver {
            from,
            to,
            kind: message.kind_name(),
        });
        let node = self.nodes.get_mut(&to).expect("running");
        if let (Some(meta), Some(data)) = (message.snapshot(), snapshot) {
            node.incoming_snapshots.insert(meta.index, data);
        }
        node.engine.as_mut().expect("running").step(from, message);
        self.process(to);
    }

    fn tick(&mut self, id: NodeId, incarnation: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.incarnation != incarnation || node.engine.is_none() {
            return;
        }
        let period = node.tick;
        if node.paused_until > self.now {
            let wait = node.paused_until - self.now;
            self.schedule(
                wait,
                Event::Tick {
                    node: id,
                    incarnation,
                },
            );
            return;
        }
        node.engine.as_mut().expect("running").tick();
        self.schedule(
            period,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
        self.process(id);
    }

    fn send(&mut self, envelope: Envelope<E::Message>) {
        let Envelope { from, to, message } = envelope;
        if self.uniform() < self.loss {
            return;
        }
        // The transport streams the sender's snapshot along with an InstallSnapshot.
        let snapshot = message.snapshot().map(|meta| {
            let data = self.nodes[&from].disk.snapshot_data.clone();
            assert_eq!(
                data.index, meta.index,
                "the sender holds the snapshot it offers"
            );
            data
        });
        let copies = if self.uniform() < self.duplicate {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let faults = &self.options.faults;
            let spread = faults.delay_max.saturating_sub(faults.delay_min).max(1);
            let delay = faults.delay_min + self.rng.next_u64() % spread;
            let message = message.clone();
            self.schedule(
                delay,
                Event::Deliver {
                    from,
                    to,
                    message,
                    snapshot: snapshot.clone(),
                },
            );
        }
    }

    /// Carries out member `id`'s ready batches.
    fn process(&mut self, id: NodeId) {
        loop {
            if self.paused(id) {
                return;
            }
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let Some(engine) = node.engine.as_mut() else {
                return;
            };
            if !engine.has_ready() {
                return;
            }
            let mut ready = engine.ready();
            if let Some(soft) = ready.soft_state {
                self.nodes.get_mut(&id).expect("running").term = soft.term;
                self.record(TraceEvent::Role {
                    node: id,
                    role: soft.role,
                    term: soft.term,
                });
                let engine = self.nodes[&id].engine.as_ref().expect("running");
                if let Err(detail) = self.checker.on_soft_state(id, &soft, engine) {
                    self.fail(checker_name(&detail), detail);
                }
            }
            for envelope in ready.messages.drain(..) {
                self.send(envelope);
            }
            for entry in ready.committed.drain(..) {
                self.apply(id, &entry);
            }
            for read in ready.reads.drain(..) {
                self.complete_read(id, read.context);
            }
            for context in ready.failed_reads.drain(..) {
                self.fail_read(id, context);
            }
            if let Some(write) = ready.write.take() {
                self.nodes
                    .get_mut(&id)
                    .expect("running")
                    .writes
                    .push_back(write);
                self.maybe_start_flush(id);
            }
            self.maybe_snapshot(id);
        }
    }

    /// Starts flushing every queued write, if the disk is idle.
    fn maybe_start_flush(&mut self, id: NodeId) {
        let latency = match self.options.faults.disk_latency_max {
            0 => 0,
            max => self.rng.next_u64() % max,
        };
        let node = self.nodes.get_mut(&id).expect("running");
        if node.flushing > 0 || node.writes.is_empty() {
            return;
        }
        node.flushing = node.writes.len();
        let incarnation = node.incarnation;
        self.schedule(
            latency,
            Event::WriteDone {
                node: id,
                incarnation,
            },
        );
    }

    fn write_done(&mut self, id: NodeId, incarnation: u64) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.incarnation != incarnation || node.engine.is_none() {
            return;
        }
        let count = std::mem::take(&mut node.flushing);
        for _ in 0..count {
            self.persist_one(id);
            if self.failure.is_some() {
                return;
            }
        }
        self.process(id);
        self.maybe_start_flush(id);
    }

    /// Makes the oldest queued write durable and hands it back to the engine.
    fn persist_one(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("running");
        let write = node.writes.pop_front().expect("a write is outstanding");
        let incoming = write
            .snapshot()
            .and_then(|meta| node.incoming_snapshots.remove(&meta.index));
        if write.snapshot().is_some() && incoming.is_none() {
            self.fail("simulator", format!("node {id}: snapshot contents missing"));
            return;
        }
        node.disk.apply(&write, incoming.clone());
        if let Some(storage) = node.storage.as_mut()
            && let Err(detail) = storage.persist(&write, incoming.as_deref())
        {
            self.fail("storage", format!("node {id}: {detail}"));
            return;
        }
        let node = self.nodes.get_mut(&id).expect("running");
        if let Some(data) = incoming {
            // The application restores its state machine once the snapshot is durable.
            node.kv = KvStore::restore(&data);
            node.incoming_snapshots.retain(|&i, _| i > data.index);
        }
        let released = node.engine.as_mut().expect("running").persisted(write);
        for envelope in released {
            self.send(envelope);
        }
    }

    fn apply(&mut self, id: NodeId, entry: &synod_core::Entry) {
        let term = self.nodes[&id].term;
        if let Err(detail) = self.checker.on_apply(id, entry, term) {
            self.fail("state-machine safety", detail);
        }
        let node = self.nodes.get_mut(&id).expect("running");
        if entry.index != node.kv.applied + 1 {
            let detail = format!(
                "node {id}: applied index {} after {}",
                entry.index, node.kv.applied
            );
            self.fail("state-machine safety", detail);
            return;
        }
        node.kv.applied = entry.index;
        if let Payload::Membership(_) = &entry.payload {
            self.membership_changes.insert(entry.index);
        }
        let Payload::Command(data) = &entry.payload else {
            return;
        };
        let Some(command) = Command::decode(data) else {
            return;
        };
        let output = node.kv.apply(&command.input);
        self.complete_write(id, &command, output);
    }

    fn maybe_snapshot(&mut self, id: NodeId) {
        let Some(interval) = self.options.faults.snapshot_interval else {
            return;
        };
        let node = self.nodes.get_mut(&id).expect("running");
        let applied = node.kv.applied;
        if applied < node.disk.snapshot.index + interval {
            return;
        }
        let engine = node.engine.as_mut().expect("running");
        let Ok(meta) = engine.snapshot_meta(applied) else {
            return;
        };
        let data = Arc::new(node.kv.snapshot());
        if let Some(storage) = node.storage.as_mut()
            && let Err(detail) = storage.install_own_snapshot(&meta, &data)
        {
            self.fail("storage", format!("node {id}: {detail}"));
            return;
        }
        node.disk.install_own_snapshot(meta, data);
        engine
            .compact(applied)
            .expect("the snapshot index was just validated");
    }

    // -------------------------------------------------------------------------------------
    // Clients.

    fn client_step(&mut self, client: u64) {
        let c = &self.clients[client as usize];
        if c.waiting.is_some() || self.now >= self.quiesce_at {
            return;
        }
        let node = c.node;
        let op = c.next_op;
        let client_id = c.id;
        let key = self.rng.next_u64() % self.options.keys;
        let value = client_id * 1_000_000 + op;
        let input = match self.rng.next_u64() % 10 {
            0..=3 => KvInput::Get { key },
            4..=6 => KvInput::Put { key, value },
            7 => KvInput::Delete { key },
            _ => {
                let expected = self
                    .nodes
                    .get(&node)
                    .and_then(|n| n.kv.data.get(&key).copied());
                KvInput::CompareAndSet {
                    key,
                    expected,
                    new: value,
                }
            }
        };
        self.issue(client, node, op, input);
    }

    fn issue(&mut self, client: u64, node: NodeId, op: u64, input: KvInput) {
        let client_id = self.clients[client as usize].id;
        let Some(engine) = self.nodes.get_mut(&node).and_then(|n| n.engine.as_mut()) else {
            // Connection refused: pick another member and try again soon.
            self.redirect(client, None);
            return;
        };
        let mut read_context = None;
        let accepted = if let KvInput::Get { .. } = input {
            let context = self.read_context_next;
            self.read_context_next += 1;
            read_context = Some(context);
            engine.read_index(context).map_err(|_| None)
        } else {
            let command = Command {
                client: client_id,
                op,
                input,
            };
            engine
                .propose(command.encode())
                .map(|_| ())
                .map_err(|e| match e {
                    synod_core::ProposeError::NotLeader { leader } => leader,
                    _ => None,
                })
        };
        match accepted {
            Ok(()) => {
                let history_id = self.history.invoke(client_id, self.now, input);
                let c = &mut self.clients[client as usize];
                c.next_op += 1;
                c.waiting = Some(Waiting {
                    op,
                    history_id,
                    input,
                    node,
                    read_context,
                });
                let timeout = self.options.client_timeout;
                self.schedule(timeout, Event::ClientTimeout { client, op });
                self.process(node);
            }
            Err(hint) => self.redirect(client, hint),
        }
    }

    fn redirect(&mut self, client: u64, hint: Option<NodeId>) {
        let members = self.options.members.max(1);
        let node = hint.unwrap_or_else(|| 1 + self.rng.next_u64() % members);
        self.clients[client as usize].node = node;
        let wait = 5_000 + self.rng.next_u64() % 20_000;
        self.schedule(wait, Event::ClientStep { client });
    }

    fn finish_op(&mut self, client: u64) {
        self.clients[client as usize].waiting = None;
        let think = self.rng.next_u64() % self.options.client_think_max.max(1);
        self.schedule(think, Event::ClientStep { client });
    }

    fn complete_write(&mut self, node: NodeId, command: &Command, output: KvOutput) {
        let Some(index) = self.clients.iter().position(|c| c.id == command.client) else {
            if command.client == PROBE_CLIENT && self.probe_ok.is_none() {
                self.probe_ok = Some(self.now);
            }
            return;
        };
        let Some(waiting) = self.clients[index].waiting.clone() else {
            return;
        };
        if waiting.op != command.op || waiting.node != node {
            return;
        }
        self.history.complete(waiting.history_id, self.now, output);
        self.record(TraceEvent::Client(format!(
            "client {} {:?} -> {:?}",
            command.client, waiting.input, output
        )));
        self.finish_op(index as u64);
    }

    /// The client waiting at `node` for the read with `context`, and what it waits for.
    fn reader(&self, node: NodeId, context: u64) -> Option<(usize, Waiting)> {
        self.clients.iter().enumerate().find_map(|(index, c)| {
            c.waiting
                .as_ref()
                .filter(|w| w.read_context == Some(context) && w.node == node)
                .map(|w| (index, w.clone()))
        })
    }

    fn complete_read(&mut self, node: NodeId, context: u64) {
        let Some((index, waiting)) = self.reader(node, context) else {
            return;
        };
        let KvInput::Get { key } = waiting.input else {
            return;
        };
        let value = self.nodes[&node].kv.data.get(&key).copied();
        self.history
            .complete(waiting.history_id, self.now, KvOutput::Get(value));
        self.finish_op(index as u64);
    }

    fn fail_read(&mut self, node: NodeId, context: u64) {
        let Some((index, waiting)) = self.reader(node, context) else {
            return;
        };
        self.history.complete_without_effect(waiting.history_id);
        self.finish_op(index as u64);
        self.clients[index].node = 1 + self.rng.next_u64() % self.options.members.max(1);
    }

    fn client_timeout(&mut self, client: u64, op: u64) {
        let c = &mut self.clients[client as usize];
        if c.waiting.as_ref().is_none_or(|w| w.op != op) {
            return;
        }
        // The outcome stays unknown in the history: it may yet take effect, or never.
        c.waiting = None;
        let members = self.options.members.max(1);
        c.node = 1 + self.rng.next_u64() % members;
        self.schedule(1_000, Event::ClientStep { client });
    }

    // -------------------------------------------------------------------------------------
    // Faults.

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn random_node(&mut self) -> NodeId {
        let ids = self.ids();
        ids[(self.rng.next_u64() % ids.len() as u64) as usize]
    }

    fn fault_round(&mut self) {
        if !self.faults_on || self.liveness_started.is_some() {
            return;
        }
        let f = self.options.faults.clone();
        if self.uniform() < f.crash {
            let id = self.random_node();
            self.crash(id);
        }
        if self.uniform() < f.crash_leader
            && let Some(leader) = self.leader()
        {
            self.crash(leader);
        }
        let running = self.nodes.values().filter(|n| n.engine.is_some()).count() as u64;
        if self.uniform() < f.restart || running * 2 <= self.options.members {
            let crashed: Vec<NodeId> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.engine.is_none())
                .map(|(&id, _)| id)
                .collect();
            if !crashed.is_empty() {
                let id = crashed[(self.rng.next_u64() % crashed.len() as u64) as usize];
                self.restart(id);
            }
        }
        if self.uniform() < f.partition {
            self.random_partition();
        }
        if self.uniform() < f.heal {
            self.heal();
        }
        if self.uniform() < f.pause {
            let id = self.random_node();
            let duration = 50_000 + self.rng.next_u64() % 600_000;
            self.pause(id, duration);
        }
        if self.uniform() < f.transfer
            && let Some(leader) = self.leader()
        {
            let to = self.random_node();
            if let Some(engine) = self.engine_mut(leader)
                && engine.transfer_leadership(to).is_ok()
            {
                self.record(TraceEvent::Fault(format!("transfer {leader} -> {to}")));
                self.process(leader);
            }
        }
        // Drawn last, and only when enabled, so that seeds without reconfiguration keep the
        // schedules they had before it existed.
        if f.reconfigure > 0.0 && self.uniform() < f.reconfigure {
            self.random_reconfiguration();
        }
        if f.connection_reset > 0.0 && self.uniform() < f.connection_reset {
            self.random_connection_reset();
        }
        let interval = self.options.fault_interval;
        self.schedule(interval, Event::FaultRound);
    }

    /// Tells a random member that its connection to its leader dropped, while the leader lives
    /// on (see [`FaultProfile::connection_reset`]).
    fn random_connection_reset(&mut self) {
        let id = self.random_node();
        let leader = self
            .engine(id)
            .and_then(|e| e.status().soft_state.leader)
            .filter(|&l| l != id);
        if let Some(leader) = leader {
            self.record(TraceEvent::Fault(format!("reset {id} -> {leader}")));
            let incarnation = self.nodes[&id].incarnation;
            self.schedule(
                0,
                Event::PeerLost {
                    node: id,
                    peer: leader,
                    incarnation,
                },
            );
        }
    }

    /// Asks the leader for a random membership change (see [`FaultProfile::reconfigure`]).
    fn random_reconfiguration(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let Some(membership) = self.engine(leader).map(|e| e.status().membership) else {
            return;
        };
        if membership.is_joint() {
            return;
        }
        let voters: Vec<NodeId> = membership.voters.iter().copied().collect();
        let learners: Vec<NodeId> = membership.learners.iter().copied().collect();
        let pick = |rng: &mut XorShiftRng, ids: &[NodeId]| {
            ids[(rng.next_u64() % ids.len() as u64) as usize]
        };
        let change = match self.rng.next_u64() % 4 {
            0 => {
                // A spare joins as a learner: a member that was never in the cluster, or one
                // removed earlier (it keeps its disk and catches up).
                let spare = (1..=self.options.members + 2)
                    .find(|id| !membership.contains(*id))
                    .unwrap_or(0);
                if spare == 0 {
                    return;
                }
                if !self.nodes.contains_key(&spare) {
                    self.add_node(spare, Disk::new(SnapshotMeta::default()));
                }
                ConfChange::AddLearner(spare)
            }
            1 if !learners.is_empty() => ConfChange::AddVoter(pick(&mut self.rng, &learners)),
            2 if voters.len() > 3 => ConfChange::Remove(pick(&mut self.rng, &voters)),
            3 if !learners.is_empty() => {
                let out = pick(&mut self.rng, &voters);
                let promoted = pick(&mut self.rng, &learners);
                let mut next: BTreeSet<NodeId> = membership.voters.clone();
                next.remove(&out);
                next.insert(promoted);
                let mut rest = membership.learners.clone();
                rest.remove(&promoted);
                ConfChange::Joint {
                    voters: next,
                    learners: rest,
                }
            }
            _ => return,
        };
        let accepted = self
            .engine_mut(leader)
            .is_some_and(|e| e.propose_membership_change(change.clone()).is_ok());
        if accepted {
            self.record(TraceEvent::Fault(format!("leader {leader}: {change:?}")));
            self.process(leader);
        }
    }

    fn churn_propose(&mut self) {
        if self.liveness_started.is_some() || self.failure.is_some() {
            return;
        }
        for id in self.ids() {
            let is_leader = self
                .engine(id)
                .is_some_and(|e| e.status().soft_state.role == Role::Leader);
            if is_leader {
                let command = Command {
                    client: 0,
                    op: self.now,
                    input: KvInput::Put {
                        key: u64::MAX - 1,
                        value: self.now,
                    },
                };
                if let Some(engine) = self.engine_mut(id) {
                    let _ = engine.propose(command.encode());
                }
                self.process(id);
            }
        }
        let election = 15 * self.options.tick;
        let wait = if self.rng.next_u64().is_multiple_of(10) {
            self.rng.next_u64() % (election / 2)
        } else {
            self.rng.next_u64() % 13_000
        };
        self.schedule(wait, Event::ChurnCrash);
    }

    fn churn_crash(&mut self) {
        if self.liveness_started.is_some() || self.failure.is_some() {
            return;
        }
        // Odd seeds disconnect the leader (it keeps running, cut off), even seeds crash it.
        let disconnect = self.seed % 2 == 1;
        if self.rng.next_u64().is_multiple_of(2)
            && let Some(leader) = self.leader_among_connected()
        {
            if disconnect {
                self.isolate(leader);
            } else {
                self.crash(leader);
            }
        }
        let down: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|&(&id, n)| n.engine.is_none() || self.cut.iter().any(|&(a, _)| a == id))
            .map(|(&id, _)| id)
            .collect();
        // Spares added by membership changes count too, so the total is the nodes', not the
        // initial members'.
        let total = self.nodes.len() as u64;
        if !down.is_empty() && total.saturating_sub(down.len() as u64) * 2 <= total {
            let id = down[(self.rng.next_u64() % down.len() as u64) as usize];
            self.restart(id);
            self.reconnect(id);
        }
        self.schedule(0, Event::ChurnPropose);
    }

    fn random_partition(&mut self) {
        let ids = self.ids();
        self.cut.clear();
        match self.rng.next_u64() % 4 {
            0 => {
                // Isolate one member.
                let id = self.random_node();
                self.isolate(id);
                return;
            }
            1 => {
                // Asymmetric: a reaches b, b does not reach a.
                let a = self.random_node();
                let b = self.random_node();
                if a != b {
                    self.cut.insert((b, a));
                    self.record(TraceEvent::Fault(format!("cut {b} -> {a}")));
                }
                return;
            }
            2 => {
                // A bridge: two sides that only one member connects.
                let bridge = self.random_node();
                let side: BTreeSet<NodeId> = ids
                    .iter()
                    .copied()
                    .filter(|&id| id != bridge && self.rng.next_u64().is_multiple_of(2))
                    .collect();
                for &a in &ids {
                    for &b in &ids {
                        if a != bridge && b != bridge && side.contains(&a) != side.contains(&b) {
                            self.cut.insert((a, b));
                        }
                    }
                }
                self.record(TraceEvent::Fault(format!(
                    "bridge via {bridge}, side {side:?}"
                )));
                return;
            }
            _ => {}
        }
        let side: BTreeSet<NodeId> = ids
            .iter()
            .copied()
            .filter(|_| self.rng.next_u64().is_multiple_of(2))
            .collect();
        self.partition(&side);
    }

    /// Cuts every link between `side` and the rest, both ways.
    pub fn partition(&mut self, side: &BTreeSet<NodeId>) {
        let ids = self.ids();
        for &a in &ids {
            for &b in &ids {
                if side.contains(&a) != side.contains(&b) {
                    self.cut.insert((a, b));
                }
            }
        }
        self.record(TraceEvent::Fault(format!("partition {side:?}")));
    }

    /// Cuts member `id` off from everyone, both ways.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.ids() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
        self.record(TraceEvent::Fault(format!("isolate {id}")));
    }

    /// Proposes a write on member `id` outside the client history (scenarios use it to place
    /// entries precisely; the safety checkers still see every entry applied). Returns whether
    /// the member accepted it.
    /// The key is offset past the keys clients use, so that these writes never show up in
    /// the client history's keys.
    pub fn propose_write(&mut self, id: NodeId, key: u64, value: u64) -> bool {
        self.propose_write_at(id, key, value).is_some()
    }

    /// [`Sim::propose_write`], returning where the write was placed.
    pub fn propose_write_at(
        &mut self,
        id: NodeId,
        key: u64,
        value: u64,
    ) -> Option<synod_core::Proposal> {
        let command = Command {
            client: 0,
            op: value,
            input: KvInput::Put {
                key: SCENARIO_KEYS + key,
                value,
            },
        };
        let proposal = self
            .engine_mut(id)
            .and_then(|e| e.propose(command.encode()).ok());
        self.process(id);
        proposal
    }

    /// Runs until some member of `among` leads (and is running), or `timeout` passes.
    pub fn wait_for_leader(&mut self, among: &[NodeId], timeout: Micros) -> Option<NodeId> {
        let end = self.now + timeout;
        while self.now < end && self.failure.is_none() {
            let found = among.iter().copied().find(|&id| {
                self.engine(id)
                    .is_some_and(|e| e.status().soft_state.role == Role::Leader)
            });
            if found.is_some() {
                return found;
            }
            let step = self.options.tick;
            self.run_for(step);
        }
        None
    }

    /// Cuts member `id` off from everyone except `allowed`, both ways.
    pub fn connect_only(&mut self, id: NodeId, allowed: &[NodeId]) {
        self.reconnect(id);
        for other in self.ids() {
            if other != id && !allowed.contains(&other) {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
        self.record(TraceEvent::Fault(format!("{id} reaches only {allowed:?}")));
    }

    /// Finishes a scripted run: heals, restarts everyone, runs the liveness phase and the
    /// final checks.
    pub fn finish_scenario(mut self, liveness: Micros) -> Result<Report, Failure> {
        if self.failure.is_none() {
            self.start_liveness();
            let end = self.now + liveness;
            self.quiesce_at = end - liveness / 3;
            self.run_until(end);
        }
        self.finish()
    }

    /// Sets the message loss and duplication probabilities from now on.
    pub fn set_unreliable(&mut self, loss: f64, duplicate: f64) {
        self.loss = loss;
        self.duplicate = duplicate;
    }

    /// Restores every link of member `id`.
    pub fn reconnect(&mut self, id: NodeId) {
        let before = self.cut.len();
        self.cut.retain(|&(a, b)| a != id && b != id);
        if self.cut.len() != before {
            self.record(TraceEvent::Fault(format!("reconnect {id}")));
        }
    }

    /// The leader with the highest term among members that are running and connected.
    pub fn leader_among_connected(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|&(&id, _)| !self.cut.iter().any(|&(a, _)| a == id))
            .filter_map(|(&id, n)| n.engine.as_ref().map(|e| (id, e.status())))
            .filter(|(_, s)| s.soft_state.role == Role::Leader)
            .max_by_key(|(_, s)| s.soft_state.term)
            .map(|(id, _)| id)
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        if !self.cut.is_empty() {
            self.cut.clear();
            self.record(TraceEvent::Fault("heal".to_string()));
        }
    }

    /// Crashes member `id`: the engine and everything not yet durable are lost.
    pub fn crash(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.engine.take().is_none() {
            return;
        }
        node.writes.clear();
        node.flushing = 0;
        node.incoming_snapshots.clear();
        node.paused_until = 0;
        node.incarnation += 1;
        node.disk.crash();
        if let Some(storage) = &node.storage {
            storage.crash(None);
        }
        self.record(TraceEvent::Fault(format!("crash {id}")));
        // The kernel closes a dead process's connections at once: every member the close can
        // reach learns of it a network delay later, but, as on a TCP connection, only after
        // every message the dead member sent it before (the server reports the end of the
        // connection the dead member dialled, on which its messages came).
        let faults = &self.options.faults;
        let spread = faults.delay_max.saturating_sub(faults.delay_min).max(1);
        let delay_min = faults.delay_min;
        let reached: Vec<(NodeId, u64)> = self
            .nodes
            .iter()
            .filter(|&(&other, n)| {
                other != id && n.engine.is_some() && !self.cut.contains(&(id, other))
            })
            .map(|(&other, n)| (other, n.incarnation))
            .collect();
        for (other, incarnation) in reached {
            let last_message = self
                .events
                .iter()
                .filter_map(|Reverse(scheduled)| match &scheduled.event {
                    Event::Deliver { from, to, .. } if *from == id && *to == other => {
                        Some(scheduled.time)
                    }
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            let delay = delay_min + self.connection_rng.next_u64() % spread;
            // At the same time as the last message, the report is still handled after it: events
            // at one time run in the order they were scheduled.
            let delay = delay.max(last_message.saturating_sub(self.now));
            self.schedule(
                delay,
                Event::PeerLost {
                    node: other,
                    peer: id,
                    incarnation,
                },
            );
        }
    }

    /// Restarts a crashed member from its disk.
    pub fn restart(&mut self, id: NodeId) {
        let seed = self.rng.next_u64();
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.engine.is_some() {
            return;
        }
        if let Some(storage) = node.storage.as_mut() {
            // The member comes back from what the real recovery code finds, which must be
            // exactly what it had made durable.
            let recovered = storage
                .recover::<E::HardState>(E::LOG_MATCHING)
                .and_then(|disk| storage::same_durable_state(&disk, &node.disk).map(|()| disk));
            match recovered {
                Ok(disk) => node.disk = disk,
                Err(detail) => {
                    self.fail("storage", format!("node {id}: recovery: {detail}"));
                    return;
                }
            }
        }
        node.engine = Some((self.boot.boot)(id, &node.disk, seed));
        node.kv = KvStore::restore(&node.disk.snapshot_data);
        let incarnation = node.incarnation;
        let tick = node.tick;
        self.record(TraceEvent::Fault(format!("restart {id}")));
        self.schedule(
            tick,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
        self.process(id);
    }

    /// Pauses member `id` for `duration`: it neither ticks nor reads messages.
    pub fn pause(&mut self, id: NodeId, duration: Micros) {
        let now = self.now;
        if let Some(node) = self.nodes.get_mut(&id) {
            node.paused_until = node.paused_until.max(now + duration);
            self.record(TraceEvent::Fault(format!("pause {id} for {duration}us")));
            self.schedule(duration, Event::Unpause { node: id });
        }
    }

    fn start_liveness(&mut self) {
        self.liveness_started = Some(self.now);
        self.loss = 0.0;
        self.duplicate = 0.0;
        self.heal();
        for id in self.ids() {
            self.restart(id);
            if let Some(node) = self.nodes.get_mut(&id) {
                node.paused_until = 0;
            }
            self.process(id);
        }
        self.record(TraceEvent::Fault("liveness phase: all healed".to_string()));
        self.probe();
    }

    /// Liveness: a write from a dedicated client, retried until it commits.
    fn probe(&mut self) {
        if self.probe_ok.is_some() || self.failure.is_some() {
            return;
        }
        if let Some(leader) = self.leader() {
            let command = Command {
                client: PROBE_CLIENT,
                op: self.now,
                input: KvInput::Get { key: u64::MAX },
            };
            if let Some(engine) = self.engine_mut(leader) {
                let _ = engine.propose(command.encode());
            }
            self.process(leader);
        }
        self.schedule(200_000, Event::Probe);
    }

    fn finish(mut self) -> Result<Report, Failure> {
        if self.failure.is_none() {
            self.final_checks();
        }
        if let Some((checker, detail)) = self.failure.take() {
            return Err(Failure {
                seed: self.seed,
                checker,
                detail,
                trace: self.format_trace(),
            });
        }
        let operations_ok = self
            .history
            .operations()
            .iter()
            .filter(|o| o.return_time().is_some())
            .count();
        Ok(Report {
            messages_delivered: self.messages_delivered,
            operations: self.history.len(),
            operations_ok,
            committed: self.checker.highest_applied(),
            elections: self.checker.elections(),
            membership_changes: self.membership_changes.len(),
            end_time: self.now,
        })
    }

    fn final_checks(&mut self) {
        // Liveness: once healed, a leader appears and a write commits within the phase.
        if self.liveness_started.is_some() && self.probe_ok.is_none() {
            self.fail(
                "liveness",
                format!(
                    "no write committed within {} ms of healing (leader: {:?})",
                    self.options.liveness_phase / 1000,
                    self.leader()
                ),
            );
            return;
        }
        // Durability and convergence: every member of the final configuration holds every
        // committed entry. (Members removed along the way stop receiving the log.)
        let highest = self.checker.highest_applied();
        // The final configuration: the leader's, or, in a leaderless moment (a leader that
        // just removed itself), that of the member that knows the most committed entries.
        let members = self
            .leader()
            .and_then(|id| self.engine(id))
            .or_else(|| {
                self.nodes
                    .values()
                    .filter_map(|n| n.engine.as_ref())
                    .max_by_key(|e| e.status().commit)
            })
            .map(|e| e.status().membership.members());
        for (&id, node) in &self.nodes {
            let member = members.as_ref().is_none_or(|m| m.contains(&id));
            if member && node.engine.is_some() && node.kv.applied < highest {
                let mut detail = format!(
                    "node {id} applied only up to {} of {highest} committed entries",
                    node.kv.applied
                );
                for (other, n) in &self.nodes {
                    if let Some(engine) = &n.engine {
                        detail.push_str(&format!("\n    node {other}: {:?}", engine.status()));
                    }
                }
                self.fail("durability", detail);
                return;
            }
        }
        if let Err(detail) = self.checker.check_log_matching(&self.nodes) {
            self.fail("log matching", detail);
            return;
        }
        let options = linearizability::CheckOptions {
            search_step_budget: LINEARIZABILITY_STEP_BUDGET,
            ..linearizability::CheckOptions::default()
        };
        let verdict = linearizability::check_with(&KvModel, &self.history, &options);
        if let linearizability::Verdict::Inconclusive {
            partition,
            partition_len,
        } = verdict
        {
            self.fail(
                "linearizability",
                format!(
                    "inconclusive: key {partition:?} ({partition_len} operations) needs more than \
                     {LINEARIZABILITY_STEP_BUDGET} search steps"
                ),
            );
            return;
        }
        if let Some(violation) = verdict.violation() {
            let mut detail = format!(
                "not linearizable: key {:?}, {} of {} operations cannot be linearized:",
                violation.partition,
                violation.operations.len(),
                violation.partition_len
            );
            for op in &violation.operations {
                detail.push_str(&format!("\n    {op:?}"));
            }
            self.fail("linearizability", detail);
        }
    }

    fn format_trace(&self) -> Vec<String> {
        self.trace
            .iter()
            .map(|(time, event)| {
                let ms = *time as f64 / 1000.0;
                match event {
                    TraceEvent::Deliver { from, to, kind } => {
                        format!("{ms:>10.3} ms  {from} -> {to} {kind}")
                    }
                    TraceEvent::Role { node, role, term } => {
                        format!("{ms:>10.3} ms  node {node} is {role} in term {term}")
                    }
                    TraceEvent::Fault(what) => format!("{ms:>10.3} ms  fault: {what}"),
                    TraceEvent::Client(what) => format!("{ms:>10.3} ms  {what}"),
                }
            })
            .collect()
    }
}

/// The most events one run may process, and the most that may be pending at once.
const MAX_EVENTS: u64 = 50_000_000;
const MAX_PENDING_EVENTS: usize = 500_000;

/// The linearizability search budget per key. Histories of a correct engine need a tiny
/// fraction of it; a badly broken engine can produce one whose search would exhaust memory.
const LINEARIZABILITY_STEP_BUDGET: u64 = 2_000_000;

/// Keys from here on are written by scenarios, outside the client history.
const SCENARIO_KEYS: u64 = 1 << 32;

/// The client id of the liveness probe.
const PROBE_CLIENT: u64 = u64::MAX;

fn checker_name(detail: &str) -> &'static str {
    if detail.starts_with("election safety") {
        "election safety"
    } else {
        "leader completeness"
    }
}
