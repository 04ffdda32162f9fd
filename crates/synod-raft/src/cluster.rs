//! An in-memory, deterministic cluster of [`RaftNode`]s for tests, examples and benchmarks.
//!
//! Messages go into one queue and are delivered only when the caller says so, so a test can
//! interleave, drop, reorder and partition them precisely. Each member has an in-memory "disk"
//! that holds exactly what the engine asked to persist and got back; [`Cluster::crash`] throws
//! away everything else and [`Cluster::restart`] rebuilds the member from that disk.
//!
//! The state machine is the list of applied entries itself, so safety checks can compare
//! members entry by entry. A snapshot is a prefix of that list.
//!
//! This is a small harness for the engine's own tests; the full simulator (`synod-sim`) drives
//! any engine with fault schedules and checkers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use synod_core::engine::Envelope;
use synod_core::{Entry, Index, Membership, NodeId, Payload, Role, SnapshotMeta};

use crate::config::Config;
use crate::message::{Message, MessageKind};
use crate::raft::{HardState, RaftNode, RestoreState};

/// What one member keeps on its simulated disk.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// The durable hard state.
    pub hard_state: HardState,
    /// The durable snapshot metadata.
    pub snapshot: SnapshotMeta,
    /// The durable snapshot's contents: the applied entries it covers.
    pub snapshot_data: Vec<Entry>,
    /// Durable log entries after the snapshot.
    pub entries: Vec<Entry>,
}

/// One member: the engine, its disk, and its state machine.
pub struct Member {
    /// The engine (`None` while crashed).
    pub node: Option<RaftNode>,
    /// The durable state.
    pub disk: Disk,
    /// Every entry applied, in order (the state machine). A snapshot restore replaces it.
    pub applied: Vec<Entry>,
    /// Reads served: (context, index).
    pub reads: Vec<(u64, Index)>,
    /// Reads that failed.
    pub failed_reads: Vec<u64>,
    /// Snapshots received with InstallSnapshot messages, by index, waiting to be installed.
    pub incoming_snapshots: BTreeMap<Index, Vec<Entry>>,
    /// Writes handed out and not yet persisted (when auto-persist is off).
    pub unpersisted: VecDeque<synod_core::Write<HardState>>,
}

impl Member {
    /// The engine. Panics if the member is crashed.
    pub fn node(&self) -> &RaftNode {
        self.node.as_ref().expect("member is crashed")
    }

    /// The engine, mutably. Panics if the member is crashed.
    pub fn node_mut(&mut self) -> &mut RaftNode {
        self.node.as_mut().expect("member is crashed")
    }
}

/// An in-memory cluster. See the module documentation.
pub struct Cluster {
    /// Members by id.
    pub members: BTreeMap<NodeId, Member>,
    /// Messages sent and not yet delivered, oldest first.
    pub network: VecDeque<Envelope<Message>>,
    /// Directed links that drop every message: (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Fraction of messages dropped at random, in [0, 1).
    pub loss: f64,
    /// Persist every write as soon as it is handed out.
    pub auto_persist: bool,
    rng: XorShiftRng,
    config: Box<dyn Fn(NodeId) -> Config>,
}

impl Cluster {
    /// A fresh cluster whose voters are `1..=size`, with `Config::new(id)` plus invariant checks.
    pub fn new(size: u64, seed: u64) -> Cluster {
        Cluster::with_config(size, seed, Config::new)
    }

    /// A fresh cluster whose voters are `1..=size`, configured by `config` (invariant checks are
    /// always turned on).
    pub fn with_config(
        size: u64,
        seed: u64,
        config: impl Fn(NodeId) -> Config + 'static,
    ) -> Cluster {
        let mut cluster = Cluster {
            members: BTreeMap::new(),
            network: VecDeque::new(),
            cut: BTreeSet::new(),
            loss: 0.0,
            auto_persist: true,
            rng: XorShiftRng::seed_from_u64(seed),
            config: Box::new(config),
        };
        let membership = Membership::with_voters(1..=size);
        for id in 1..=size {
            let disk = Disk {
                snapshot: SnapshotMeta {
                    index: 0,
                    term: 0,
                    membership: membership.clone(),
                },
                ..Disk::default()
            };
            cluster.add_member(id, disk);
        }
        cluster
    }

    /// Adds a member that starts from `disk` (use `Disk::default()` for a member joining an
    /// existing cluster: it learns the configuration from the leader).
    pub fn add_member(&mut self, id: NodeId, disk: Disk) {
        let mut member = Member {
            node: None,
            applied: disk.snapshot_data.clone(),
            disk,
            reads: Vec::new(),
            failed_reads: Vec::new(),
            incoming_snapshots: BTreeMap::new(),
            unpersisted: VecDeque::new(),
        };
        member.node = Some(self.boot(id, &member.disk, member.applied.len() as Index));
        self.members.insert(id, member);
    }

    fn boot(&mut self, id: NodeId, disk: &Disk, applied: Index) -> RaftNode {
        let mut config = (self.config)(id);
        config.check_invariants = true;
        let rng = Box::new(XorShiftRng::seed_from_u64(self.rng.next_u64()));
        let state = RestoreState {
            hard_state: disk.hard_state,
            snapshot: disk.snapshot.clone(),
            entries: disk.entries.clone(),
            applied: applied.min(disk.hard_state.commit.max(disk.snapshot.index)),
        };
        RaftNode::restore(config, rng, state).expect("durable state restores")
    }

    /// The member `id`.
    pub fn member(&self, id: NodeId) -> &Member {
        &self.members[&id]
    }

    /// The engine of member `id`.
    pub fn node(&self, id: NodeId) -> &RaftNode {
        self.members[&id].node()
    }

    /// The engine of member `id`, mutably.
    pub fn node_mut(&mut self, id: NodeId) -> &mut RaftNode {
        self.members
            .get_mut(&id)
            .expect("no such member")
            .node_mut()
    }

    /// Ids of every member.
    pub fn ids(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }

    /// The members that currently believe they lead, with their terms.
    pub fn leaders(&self) -> Vec<(NodeId, u64)> {
        self.members
            .iter()
            .filter_map(|(&id, m)| m.node.as_ref().map(|n| (id, n)))
            .filter(|(_, n)| n.role() == Role::Leader)
            .map(|(id, n)| (id, n.term()))
            .collect()
    }

    /// The leader with the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|&(_, t)| t)
            .map(|(id, _)| id)
    }

    /// Drains every member's ready batches: messages into the network, committed entries into
    /// the state machine, writes onto the disk (if auto-persist is on).
    pub fn process_all(&mut self) {
        for id in self.ids() {
            self.process(id);
        }
    }

    /// Drains member `id`'s ready batches.
    pub fn process(&mut self, id: NodeId) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        if member.node.is_none() {
            return;
        }
        while member.node().has_ready() {
            let mut ready = member.node_mut().ready();
            self.network.extend(ready.messages.drain(..));
            for entry in ready.committed.drain(..) {
                assert_eq!(
                    entry.index,
                    member.applied.len() as Index + 1,
                    "node {id}: applied out of order"
                );
                member.applied.push(entry);
            }
            for read in &ready.reads {
                assert!(read.index <= member.applied.len() as Index);
                member.reads.push((read.context, read.index));
            }
            member
                .failed_reads
                .extend(ready.failed_reads.iter().copied());
            if let Some(write) = ready.write.take() {
                member.unpersisted.push_back(write);
            }
            if self.auto_persist {
                while let Some(write) = member.unpersisted.pop_front() {
                    let released = Self::persist(member, write);
                    self.network.extend(released);
                }
            }
        }
    }

    /// Persists member `id`'s oldest outstanding write (when auto-persist is off). Returns
    /// whether there was one.
    pub fn persist_one(&mut self, id: NodeId) -> bool {
        let member = self.members.get_mut(&id).expect("no such member");
        let Some(write) = member.unpersisted.pop_front() else {
            return false;
        };
        let released = Self::persist(member, write);
        self.network.extend(released);
        true
    }

    fn persist(member: &mut Member, write: synod_core::Write<HardState>) -> Vec<Envelope<Message>> {
        let disk = &mut member.disk;
        if let Some(snapshot) = write.snapshot() {
            let data = member
                .incoming_snapshots
                .remove(&snapshot.index)
                .expect("snapshot bytes arrive with the InstallSnapshot message");
            disk.snapshot = snapshot.clone();
            disk.snapshot_data = data.clone();
            disk.entries.clear();
            member.applied = data;
        }
        if let Some(from) = write.truncate_from() {
            let keep = from.saturating_sub(disk.snapshot.index + 1) as usize;
            disk.entries.truncate(keep);
        }
        for entry in write.entries() {
            let position = (entry.index - disk.snapshot.index - 1) as usize;
            disk.entries.truncate(position);
            assert_eq!(
                disk.entries.len(),
                position,
                "write leaves a gap in the log"
            );
            disk.entries.push(entry.clone());
        }
        if let Some(hard_state) = write.hard_state() {
            disk.hard_state = *hard_state;
        }
        member.node_mut().persisted(write)
    }

    fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        !self.cut.contains(&(from, to))
            && self.members.get(&to).is_some_and(|m| m.node.is_some())
            && self.members.get(&from).is_some_and(|m| m.node.is_some())
    }

    /// Delivers the oldest message in the network. Returns false if there was none.
    pub fn deliver_one(&mut self) -> bool {
        let Some(envelope) = self.network.pop_front() else {
            return false;
        };
        self.deliver(envelope);
        true
    }

    /// Delivers one message now (respecting cuts, crashes and loss).
    pub fn deliver(&mut self, envelope: Envelope<Message>) {
        if !self.link_up(envelope.from, envelope.to) {
            return;
        }
        if self.loss > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < self.loss {
            return;
        }
        if let MessageKind::InstallSnapshot { snapshot } = &envelope.message.kind {
            // The transport streams the sender's snapshot alongside the metadata.
            let data = self.members[&envelope.from].disk.snapshot_data.clone();
            assert_eq!(
                data.len() as Index,
                snapshot.index,
                "snapshot bytes match the metadata"
            );
            let to = self.members.get_mut(&envelope.to).expect("link is up");
            to.incoming_snapshots.insert(snapshot.index, data);
        }
        let to = envelope.to;
        self.node_mut(to).step(envelope.from, envelope.message);
        self.process(to);
    }

    /// Delivers messages (and everything they cause) until the network is quiet, or `limit`
    /// messages have been delivered. Returns how many were delivered.
    pub fn deliver_all(&mut self, limit: usize) -> usize {
        self.process_all();
        let mut delivered = 0;
        while delivered < limit && self.deliver_one() {
            delivered += 1;
        }
        delivered
    }

    /// Drops every message in flight.
    pub fn drop_in_flight(&mut self) {
        self.network.clear();
    }

    /// Ticks every running member once and processes the results.
    pub fn tick_all(&mut self) {
        for id in self.ids() {
            if let Some(node) = self.members.get_mut(&id).and_then(|m| m.node.as_mut()) {
                node.tick();
            }
        }
        self.process_all();
    }

    /// Ticks and delivers until some member leads and a quorum agrees, or `max_ticks` pass.
    /// Returns the leader.
    pub fn run_until_leader(&mut self, max_ticks: u32) -> Option<NodeId> {
        for _ in 0..max_ticks {
            self.tick_all();
            self.deliver_all(100_000);
            if let Some(leader) = self.leader() {
                let term = self.node(leader).term();
                let agreeing = self
                    .members
                    .values()
                    .filter_map(|m| m.node.as_ref())
                    .filter(|n| n.term() == term && n.leader() == Some(leader))
                    .count();
                if agreeing * 2 > self.members.len() {
                    return Some(leader);
                }
            }
        }
        None
    }

    /// Makes member `id` campaign now (as if its election timer fired) and delivers everything.
    pub fn campaign(&mut self, id: NodeId) {
        let node = self.node_mut(id);
        let timeout = node.election_timeout();
        for _ in 0..timeout * 2 {
            if matches!(node.role(), Role::PreCandidate | Role::Candidate) {
                break;
            }
            node.tick();
        }
        self.deliver_all(100_000);
    }

    /// Ticks every member `ticks` times, delivering after each tick.
    pub fn run_ticks(&mut self, ticks: u32) {
        for _ in 0..ticks {
            self.tick_all();
            self.deliver_all(100_000);
        }
    }

    /// Proposes `data` at member `id`; returns the proposal's index.
    pub fn propose(&mut self, id: NodeId, data: &'static [u8]) -> Option<Index> {
        let proposal = self.node_mut(id).propose(Bytes::from_static(data)).ok()?;
        self.process(id);
        Some(proposal.index)
    }

    /// Isolates member `id` in both directions.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.ids() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    /// Splits the cluster into two sides that cannot talk to each other.
    pub fn partition(&mut self, side: &[NodeId]) {
        for a in self.ids() {
            for b in self.ids() {
                if side.contains(&a) != side.contains(&b) {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Crashes member `id`: the engine and everything not on its disk are lost.
    pub fn crash(&mut self, id: NodeId) {
        let member = self.members.get_mut(&id).expect("no such member");
        member.node = None;
        member.unpersisted.clear();
        member.incoming_snapshots.clear();
        self.network.retain(|e| e.from != id && e.to != id);
    }

    /// Tells every running member but `peer` that its connection to `peer` dropped (as the
    /// server's transport does when a peer's process dies), in id order, and processes what
    /// that causes without delivering anything. Returns the members that acted on it.
    pub fn report_unreachable(&mut self, peer: NodeId) -> Vec<NodeId> {
        let mut acted = Vec::new();
        for id in self.ids() {
            if id == peer || self.members[&id].node.is_none() {
                continue;
            }
            if self.node_mut(id).peer_unreachable(peer) {
                acted.push(id);
            }
            self.process(id);
        }
        acted
    }

    /// Restarts a crashed member from its disk. Its state machine is rebuilt from the snapshot
    /// and replays the committed log as the engine hands it out again.
    pub fn restart(&mut self, id: NodeId) {
        let disk = self.members[&id].disk.clone();
        let node = self.boot(id, &disk, disk.snapshot.index);
        let member = self.members.get_mut(&id).expect("no such member");
        member.applied = disk.snapshot_data.clone();
        member.node = Some(node);
    }

    /// Takes a snapshot at member `id`'s applied index and compacts its log.
    pub fn snapshot(&mut self, id: NodeId) -> Index {
        let member = self.members.get_mut(&id).expect("no such member");
        let index = member.applied.len() as Index;
        let node = member.node.as_mut().expect("member is crashed");
        let meta = node
            .snapshot_meta(index)
            .expect("applied index can be snapshotted");
        let keep_from = (index - member.disk.snapshot.index) as usize;
        member
            .disk
            .entries
            .drain(..keep_from.min(member.disk.entries.len()));
        member.disk.snapshot = meta;
        member.disk.snapshot_data = member.applied.clone();
        node.compact(index).expect("compaction succeeds");
        index
    }

    /// State-machine safety (Raft Figure 3): no two members applied different entries at the
    /// same index. Panics with the first difference.
    pub fn check_state_machine_safety(&self) {
        let mut reference: Vec<(NodeId, &Vec<Entry>)> = Vec::new();
        for (&id, member) in &self.members {
            for (other, applied) in &reference {
                for (a, b) in member.applied.iter().zip(applied.iter()) {
                    assert_eq!(
                        a, b,
                        "state-machine safety: members {id} and {other} applied different entries"
                    );
                }
            }
            reference.push((id, &member.applied));
        }
    }

    /// The commands member `id` applied, in order (no-ops and configurations left out).
    pub fn applied_commands(&self, id: NodeId) -> Vec<Bytes> {
        self.members[&id]
            .applied
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::Command(data) => Some(data.clone()),
                _ => None,
            })
            .collect()
    }
}
