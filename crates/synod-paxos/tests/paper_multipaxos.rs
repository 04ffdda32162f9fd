//! The Multi-Paxos engine checked against the papers it follows.
//!
//! Test names say which rule or section they check:
//!
//! - `pms_*`: Lamport, "Paxos Made Simple" (2001): §2.2 choosing a value (P1, P1a, P2a–P2c, and
//!   the Nack that tells a proposer to abandon its proposal), §2.3 learning a chosen value,
//!   §2.4 progress (a distinguished proposer), §2.5 the implementation (stable storage),
//!   §3 the state machine (a stable leader that runs Phase 1 once, gaps filled with no-ops);
//! - `pmmc_*`: van Renesse & Altinbuken, "Paxos Made Moderately Complex" (2015): leaders,
//!   scouts (Phase 1) and commanders (Phase 2), preemption, slots decided out of order,
//!   reconfiguration, read-only commands;
//! - `pml_*`: Chandra, Griesemer & Redstone, "Paxos Made Live" (2007): §4.5 snapshots,
//!   §5.2 runtime consistency checking;
//! - `flexible_paxos_*`: Howard, Malkhi & Spiegelman, "Flexible Paxos" (2016).
//!
//! Each test drives a small in-memory [`Net`] and decides the fate of every message itself
//! (deliver, drop or hold back), so each scenario is built step by step as the paper tells it.
//! Everything is deterministic: every member's RNG is drawn from one seeded `XorShiftRng`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use proptest::prelude::*;
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use synod_core::{
    ConfChange, Engine, Entry, Envelope, Index, Membership, NodeId, Payload, ProposeError,
    ReadContext, ReadState, Role, SnapshotMeta, Term, WireMessage, Write,
};
use synod_paxos::ballot;
use synod_paxos::{Config, HardState, Message, PaxosNode, RestoreState};

type Env = Envelope<Message>;

/// The most ticks any election in these tests may take.
const ELECTION_TICKS_MAX: u32 = 1_000;
/// The bound on a fault-free election with the default timeouts (15 ticks minimum): the first
/// timeout fires before tick 30, and a split vote costs at most one more randomised timeout.
/// (Over 100 seeds the slowest election settled in 29 ticks.)
const ELECTION_TICKS_BOUND: u32 = 60;
/// The most messages one `pump` may deliver before the network must have gone quiet.
const PUMP_MESSAGES_MAX: usize = 100_000;

// ------------------------------------------------------------------------------------------------
// The harness.

/// What one member keeps on its simulated disk: exactly what the engine asked to persist and
/// got back.
#[derive(Clone, Debug, Default)]
struct Disk {
    hard_state: HardState,
    snapshot: SnapshotMeta,
    /// The snapshot's contents: the applied entries it covers.
    snapshot_data: Vec<Entry>,
    /// Accepted entries after the snapshot, by slot (slots are independent: gaps are allowed).
    entries: BTreeMap<Index, Entry>,
}

/// One member: the engine, its disk and its state machine.
struct Member {
    /// The engine (`None` while crashed).
    node: Option<PaxosNode>,
    disk: Disk,
    /// The state machine: every entry applied, in slot order (entry `i` at position `i - 1`).
    applied: Vec<Entry>,
    reads: Vec<ReadState>,
    failed_reads: Vec<ReadContext>,
    /// Snapshot contents streamed with InstallSnapshot messages, by index.
    incoming_snapshots: BTreeMap<Index, Vec<Entry>>,
    /// Writes handed out and not yet persisted.
    unpersisted: VecDeque<Write<HardState>>,
    /// Persist every write as soon as it is handed out.
    auto_persist: bool,
    /// Every write persisted.
    persisted: Vec<PersistedWrite>,
}

/// A persisted write, as [`Member::persisted`] records it: whether it needed a sync, whether it
/// stored slots, and the hard state it stored with the one on disk before it.
type PersistedWrite = (bool, bool, Option<(HardState, HardState)>);

/// What happens to one message in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Deliver,
    Drop,
    /// Set aside and returned to the caller, who may deliver it later.
    Hold,
}

/// An in-memory cluster of [`PaxosNode`]s with one queue of messages in flight.
struct Net {
    members: BTreeMap<NodeId, Member>,
    network: VecDeque<Env>,
    /// Every message any member sent, in order (for counting message kinds).
    trace: Vec<Env>,
    rng: XorShiftRng,
    phase2_quorum: Option<usize>,
}

impl Net {
    /// A fresh cluster whose voters are `1..=size`.
    fn new(size: NodeId, seed: u64) -> Net {
        Net::with_phase2_quorum(size, seed, None)
    }

    fn with_phase2_quorum(size: NodeId, seed: u64, phase2_quorum: Option<usize>) -> Net {
        let mut net = Net {
            members: BTreeMap::new(),
            network: VecDeque::new(),
            trace: Vec::new(),
            rng: XorShiftRng::seed_from_u64(seed),
            phase2_quorum,
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
            net.add_member(id, disk);
        }
        net
    }

    fn config(&self, id: NodeId) -> Config {
        Config {
            phase2_quorum: self.phase2_quorum,
            check_invariants: true,
            ..Config::new(id)
        }
    }

    /// Adds a member that starts from `disk` (`Disk::default()` for a member joining an existing
    /// cluster: it learns the configuration from the leader).
    fn add_member(&mut self, id: NodeId, disk: Disk) {
        let node = self.boot(id, &disk);
        self.members.insert(
            id,
            Member {
                node: Some(node),
                applied: disk.snapshot_data.clone(),
                disk,
                reads: Vec::new(),
                failed_reads: Vec::new(),
                incoming_snapshots: BTreeMap::new(),
                unpersisted: VecDeque::new(),
                auto_persist: true,
                persisted: Vec::new(),
            },
        );
    }

    fn boot(&mut self, id: NodeId, disk: &Disk) -> PaxosNode {
        let rng = Box::new(XorShiftRng::seed_from_u64(self.rng.next_u64()));
        let state = RestoreState {
            hard_state: disk.hard_state,
            snapshot: disk.snapshot.clone(),
            entries: disk.entries.values().cloned().collect(),
            // The state machine is rebuilt from the snapshot and replays the rest.
            applied: disk.snapshot.index,
        };
        PaxosNode::restore(self.config(id), rng, state).expect("durable state restores")
    }

    fn member(&self, id: NodeId) -> &Member {
        &self.members[&id]
    }

    fn member_mut(&mut self, id: NodeId) -> &mut Member {
        self.members.get_mut(&id).expect("no such member")
    }

    fn node(&self, id: NodeId) -> &PaxosNode {
        self.members[&id].node.as_ref().expect("member is crashed")
    }

    fn node_mut(&mut self, id: NodeId) -> &mut PaxosNode {
        self.member_mut(id)
            .node
            .as_mut()
            .expect("member is crashed")
    }

    fn is_up(&self, id: NodeId) -> bool {
        self.members.get(&id).is_some_and(|m| m.node.is_some())
    }

    fn up_ids(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .filter(|(_, m)| m.node.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    /// The running members that believe they lead.
    fn leaders(&self) -> Vec<NodeId> {
        self.up_ids()
            .into_iter()
            .filter(|&id| self.node(id).role() == Role::Leader)
            .collect()
    }

    /// The ballot member `id` reports as its term (its own ballot while it leads or campaigns).
    fn term(&self, id: NodeId) -> Term {
        self.node(id).status().soft_state.term
    }

    /// Drains member `id`'s ready batches in the order the engine asks for: messages into the
    /// network, committed entries into the state machine (strictly in slot order), reads, and
    /// writes onto the disk (at once if auto-persist is on).
    fn process(&mut self, id: NodeId) {
        loop {
            let Some(member) = self.members.get_mut(&id) else {
                return;
            };
            let Some(node) = member.node.as_mut() else {
                return;
            };
            if !node.has_ready() {
                return;
            }
            let mut ready = node.ready();
            for envelope in ready.messages.drain(..) {
                assert_eq!(envelope.from, id, "a member sends in its own name");
                self.trace.push(envelope.clone());
                self.network.push_back(envelope);
            }
            for entry in ready.committed.drain(..) {
                assert_eq!(
                    entry.index,
                    member.applied.len() as Index + 1,
                    "member {id}: slots handed out for applying out of order"
                );
                member.applied.push(entry);
            }
            for read in ready.reads.drain(..) {
                assert!(
                    read.index <= member.applied.len() as Index,
                    "member {id}: read {read:?} served before its index was applied"
                );
                member.reads.push(read);
            }
            member.failed_reads.append(&mut ready.failed_reads);
            if let Some(write) = ready.write.take() {
                member.unpersisted.push_back(write);
            }
            if member.auto_persist {
                while let Some(write) = member.unpersisted.pop_front() {
                    for envelope in Self::persist(member, write) {
                        self.trace.push(envelope.clone());
                        self.network.push_back(envelope);
                    }
                }
            }
        }
    }

    fn process_all(&mut self) {
        for id in self.up_ids() {
            self.process(id);
        }
    }

    /// Applies one write to the member's disk and hands it back.
    fn persist(member: &mut Member, write: Write<HardState>) -> Vec<Env> {
        let disk = &mut member.disk;
        if let Some(snapshot) = write.snapshot() {
            let data = member
                .incoming_snapshots
                .get(&snapshot.index)
                .cloned()
                .expect("snapshot contents arrive with the InstallSnapshot message");
            disk.snapshot = snapshot.clone();
            disk.snapshot_data = data.clone();
            disk.entries.clear();
            member.applied = data;
        }
        if let Some(from) = write.truncate_from() {
            disk.entries.retain(|&slot, _| slot < from);
        }
        for entry in write.entries() {
            disk.entries.insert(entry.index, entry.clone());
        }
        member.persisted.push((
            write.needs_sync(),
            !write.entries().is_empty() || write.snapshot().is_some(),
            write.hard_state().map(|h| (*h, disk.hard_state)),
        ));
        if let Some(hard_state) = write.hard_state() {
            disk.hard_state = *hard_state;
        }
        member
            .node
            .as_mut()
            .expect("a crashed member persists nothing")
            .persisted(write)
    }

    /// Persists member `id`'s oldest outstanding write; returns the messages it released (they
    /// are also put into the network).
    fn persist_one(&mut self, id: NodeId) -> Vec<Env> {
        let member = self.members.get_mut(&id).expect("no such member");
        let write = member.unpersisted.pop_front().expect("a write outstanding");
        let released = Self::persist(member, write);
        for envelope in &released {
            self.trace.push(envelope.clone());
            self.network.push_back(envelope.clone());
        }
        self.process(id);
        released
    }

    /// Delivers one message (dropped if the recipient is crashed) and processes the result.
    fn deliver(&mut self, envelope: Env) {
        if !self.is_up(envelope.to) {
            return;
        }
        if let Message::InstallSnapshot { snapshot, .. } = &envelope.message {
            // The transport streams the sender's snapshot alongside the metadata.
            let data = self.members[&envelope.from].disk.snapshot_data.clone();
            assert_eq!(
                data.len() as Index,
                snapshot.index,
                "snapshot contents match"
            );
            self.member_mut(envelope.to)
                .incoming_snapshots
                .insert(snapshot.index, data);
        }
        let to = envelope.to;
        self.node_mut(to).step(envelope.from, envelope.message);
        self.process(to);
    }

    /// Delivers every message in flight, and everything delivering it causes, asking `fate`
    /// about each. Returns the messages held back.
    fn pump(&mut self, mut fate: impl FnMut(&Env) -> Fate) -> Vec<Env> {
        self.process_all();
        let mut held = Vec::new();
        let mut budget = PUMP_MESSAGES_MAX;
        while let Some(envelope) = self.network.pop_front() {
            budget = budget.checked_sub(1).expect("the network never went quiet");
            match fate(&envelope) {
                Fate::Deliver => self.deliver(envelope),
                Fate::Drop => {}
                Fate::Hold => held.push(envelope),
            }
        }
        held
    }

    fn deliver_everything(&mut self) {
        let held = self.pump(|_| Fate::Deliver);
        assert!(held.is_empty());
    }

    /// Removes from the network every message `pick` selects, in order.
    fn take(&mut self, pick: impl Fn(&Env) -> bool) -> Vec<Env> {
        let (taken, kept): (Vec<Env>, Vec<Env>) = std::mem::take(&mut self.network)
            .into_iter()
            .partition(|e| pick(e));
        self.network = kept.into();
        taken
    }

    /// Ticks the running members among `ids` once each, then processes what they produce.
    fn tick(&mut self, ids: &[NodeId]) {
        for &id in ids {
            if self.is_up(id) {
                self.node_mut(id).tick();
            }
        }
        for &id in ids {
            self.process(id);
        }
    }

    /// Ticks every running member and delivers everything, until `done` holds.
    fn run_until(&mut self, what: &str, mut done: impl FnMut(&Net) -> bool) {
        for _ in 0..ELECTION_TICKS_MAX {
            if done(self) {
                return;
            }
            let ids = self.up_ids();
            self.tick(&ids);
            self.deliver_everything();
        }
        assert!(done(self), "{what}: not within {ELECTION_TICKS_MAX} ticks");
    }

    /// Whether `id` leads and every running voter of its configuration follows it.
    fn settled_under(&self, id: NodeId) -> bool {
        if !self.is_up(id) || self.node(id).role() != Role::Leader || !self.network.is_empty() {
            return false;
        }
        let voters = self.node(id).membership().voters.clone();
        voters
            .iter()
            .filter(|&&v| v != id && self.is_up(v))
            .all(|&v| {
                let soft = self.node(v).status().soft_state;
                soft.role == Role::Follower && soft.leader == Some(id)
            })
    }

    /// Lets time pass for an election that `id` is to win: `id` ticks, and so does every other
    /// running member that still believes in some leader (so that it stops ignoring `id`'s
    /// Prepare once it has not heard from that leader for a timeout). The others stand still:
    /// they would only duel with `id`.
    fn tick_for_election_of(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self
            .up_ids()
            .into_iter()
            .filter(|&m| m == id || self.node(m).status().soft_state.leader.is_some())
            .collect();
        self.tick(&ids);
    }

    /// Makes `id` the leader (see [`Net::tick_for_election_of`]); the Prepares of any other
    /// member that campaigns anyway are lost. Returns once `id` leads and the running voters
    /// follow it.
    fn elect(&mut self, id: NodeId) {
        for _ in 0..ELECTION_TICKS_MAX {
            self.tick_for_election_of(id);
            self.pump(|e| {
                if e.from != id && is_prepare(e) {
                    Fate::Drop
                } else {
                    Fate::Deliver
                }
            });
            if self.settled_under(id) {
                return;
            }
        }
        panic!("member {id} was not elected within {ELECTION_TICKS_MAX} ticks");
    }

    /// Ticks `id` alone until it has sent a message that `pick` selects; the messages stay in
    /// the network.
    fn tick_alone_until_it_sends(&mut self, id: NodeId, pick: impl Fn(&Env) -> bool) {
        for _ in 0..ELECTION_TICKS_MAX {
            self.tick(&[id]);
            if self.network.iter().any(|e| e.from == id && pick(e)) {
                return;
            }
        }
        panic!("member {id} never sent the expected message");
    }

    /// Lets the leader send one heartbeat and delivers everything.
    fn heartbeat(&mut self, leader: NodeId) {
        self.tick_alone_until_it_sends(leader, is_accept);
        self.deliver_everything();
    }

    /// Proposes `command` at `id` and processes the result; returns the slot.
    fn propose(&mut self, id: NodeId, command: &str) -> Index {
        let proposal = self
            .node_mut(id)
            .propose(Bytes::from(command.to_owned()))
            .unwrap_or_else(|e| panic!("member {id} refused a proposal: {e}"));
        self.process(id);
        proposal.index
    }

    /// Crashes `id`: the engine and everything not on its disk are lost, with its messages in
    /// flight.
    fn crash(&mut self, id: NodeId) {
        let member = self.member_mut(id);
        member.node = None;
        member.unpersisted.clear();
        member.incoming_snapshots.clear();
        self.network.retain(|e| e.from != id && e.to != id);
    }

    /// Restarts a crashed member from its disk.
    fn restart(&mut self, id: NodeId) {
        let disk = self.member(id).disk.clone();
        let node = self.boot(id, &disk);
        let member = self.member_mut(id);
        member.applied = disk.snapshot_data.clone();
        member.node = Some(node);
    }

    /// Takes a snapshot at member `id`'s applied index and compacts its log there.
    fn snapshot(&mut self, id: NodeId) -> Index {
        let member = self.member_mut(id);
        let index = member.applied.len() as Index;
        let node = member.node.as_mut().expect("member is crashed");
        let meta = node
            .snapshot_meta(index)
            .expect("the applied prefix can be snapshotted");
        node.compact(index).expect("compaction succeeds");
        member.disk.entries.retain(|&slot, _| slot > index);
        member.disk.snapshot = meta;
        member.disk.snapshot_data = member.applied.clone();
        index
    }

    /// What member `id` applied, by name: commands as text, `noop`, `conf`.
    fn applied_names(&self, id: NodeId) -> Vec<String> {
        self.member(id).applied.iter().map(name).collect()
    }

    /// The messages sent since trace position `mark` that `pick` selects.
    fn sent_since(&self, mark: usize, pick: impl Fn(&Env) -> bool) -> Vec<&Env> {
        self.trace[mark..].iter().filter(|e| pick(e)).collect()
    }

    /// State-machine safety: no two members applied different values at one slot. Multi-Paxos
    /// entries carry the ballot the holder accepted them in, so values are compared by payload.
    fn check_agreement(&self) {
        let mut chosen: BTreeMap<usize, (NodeId, &Payload)> = BTreeMap::new();
        for (&id, member) in &self.members {
            for (i, entry) in member.applied.iter().enumerate() {
                let (other, payload) = *chosen.entry(i).or_insert((id, &entry.payload));
                assert_eq!(
                    payload,
                    &entry.payload,
                    "members {other} and {id} applied different values at slot {}",
                    i + 1
                );
            }
        }
    }
}

fn name(entry: &Entry) -> String {
    match &entry.payload {
        Payload::Noop => "noop".to_owned(),
        Payload::Command(data) => String::from_utf8_lossy(data).into_owned(),
        Payload::Membership(_) => "conf".to_owned(),
    }
}

fn is_prepare(e: &Env) -> bool {
    matches!(e.message, Message::Prepare { .. })
}

fn is_promise(e: &Env) -> bool {
    matches!(e.message, Message::Promise { .. })
}

fn is_accept(e: &Env) -> bool {
    matches!(e.message, Message::Accept { .. })
}

fn is_accepted(e: &Env) -> bool {
    matches!(e.message, Message::Accepted { .. })
}

/// An Accept that carries at least one entry (not a bare heartbeat).
fn carries_entries(e: &Env) -> bool {
    matches!(&e.message, Message::Accept { entries, .. } if !entries.is_empty())
}

/// The slots an Accept carries.
fn carried_slots(e: &Env) -> Vec<Index> {
    match &e.message {
        Message::Accept { entries, .. } => entries.iter().map(|e| e.index).collect(),
        _ => Vec::new(),
    }
}

fn voters(ids: impl IntoIterator<Item = NodeId>) -> BTreeSet<NodeId> {
    ids.into_iter().collect()
}

// ------------------------------------------------------------------------------------------------
// "Paxos Made Simple" §2.4 and §3: a distinguished proposer, and a stable leader.

/// §2.4: progress needs a single distinguished proposer. Within a bounded number of ticks
/// exactly one member leads, everyone follows it, its ballot is its own (ballots of different
/// proposers come from disjoint sets, §2.2), and leadership stays put while nothing fails.
#[test]
fn pms_2_4_a_single_distinguished_proposer_is_elected_in_3_and_5_member_clusters() {
    for size in [3, 5] {
        for seed in 0..50 {
            let mut net = Net::new(size, seed);
            let mut ticks = 0;
            while !net.leaders().first().is_some_and(|&l| net.settled_under(l)) {
                ticks += 1;
                assert!(
                    ticks <= ELECTION_TICKS_BOUND,
                    "size {size} seed {seed}: no settled leader after {ELECTION_TICKS_BOUND} ticks"
                );
                let ids = net.up_ids();
                net.tick(&ids);
                net.deliver_everything();
            }
            let leaders = net.leaders();
            assert_eq!(leaders.len(), 1, "size {size} seed {seed}: {leaders:?}");
            let leader = leaders[0];
            let term = net.term(leader);
            assert_eq!(ballot::proposer(term), leader, "size {size} seed {seed}");
            for id in net.up_ids() {
                assert!(
                    net.node(id).promised() <= term,
                    "no member promised above the leader"
                );
            }
            for _ in 0..100 {
                let ids = net.up_ids();
                net.tick(&ids);
                net.deliver_everything();
                assert_eq!(net.leaders(), vec![leader], "size {size} seed {seed}");
                assert_eq!(net.term(leader), term, "a stable leader keeps its ballot");
            }
        }
    }
}

/// §3: "the leader ... can run phase 1 once for all instances": once it leads, a command costs
/// one Accept and one Accepted per follower, and no Prepare at all.
#[test]
fn pms_3_a_stable_leader_commits_with_one_accept_round_trip_and_no_prepare() {
    let mut net = Net::new(3, 1);
    net.elect(1);
    for round in 0..3 {
        let mark = net.trace.len();
        let command = format!("cmd{round}");
        let slot = net.propose(1, &command);
        net.deliver_everything();
        assert!(net.sent_since(mark, is_prepare).is_empty(), "no Phase 1");
        for follower in [2, 3] {
            let accepts = net.sent_since(mark, |e| is_accept(e) && e.to == follower);
            assert_eq!(accepts.len(), 1, "one Accept to {follower}");
            assert_eq!(carried_slots(accepts[0]), vec![slot]);
            let accepted = net.sent_since(mark, |e| is_accepted(e) && e.from == follower);
            assert_eq!(accepted.len(), 1, "one Accepted from {follower}");
        }
        assert_eq!(
            net.sent_since(mark, |_| true).len(),
            4,
            "nothing else was sent"
        );
        // The leader learns the value is chosen from that one round trip.
        assert_eq!(net.applied_names(1).last(), Some(&command));
    }
    // The followers learn the chosen prefix from the next Accept (a heartbeat here).
    net.heartbeat(1);
    for id in [2, 3] {
        assert_eq!(net.applied_names(id), ["cmd0", "cmd1", "cmd2"]);
    }
    net.check_agreement();
}

// ------------------------------------------------------------------------------------------------
// "Paxos Made Simple" §2.2: P2c, and recovery by a new leader (PMMC's scout).

/// P2c: a new leader must propose, at every slot, the value of the highest-numbered proposal
/// accepted by a member of its Phase-1 quorum. Here "x" was accepted by the old leader and one
/// follower only (two of five, not chosen); the next leader's quorum includes that follower,
/// so it adopts and re-proposes "x" rather than filling the slot with a no-op.
#[test]
fn pms_2_2_p2c_a_value_accepted_by_a_minority_is_adopted_by_the_next_leader() {
    let mut net = Net::new(5, 2);
    net.elect(1);
    let slot = net.propose(1, "x");
    assert_eq!(slot, 1);
    // The leader crashes after its Accept reached member 2 only.
    let to_two = net.take(|e| carries_entries(e) && e.to == 2);
    net.network.clear();
    net.deliver(to_two.into_iter().next().expect("an Accept to 2"));
    net.crash(1);
    // Member 4 leads next, and 5 is down: its Phase-1 quorum must be {2, 3, 4}.
    net.crash(5);
    net.elect(4);
    assert_eq!(
        net.node(4).log_entry(1).map(name).as_deref(),
        Some("x"),
        "the new leader re-proposes the value it learned from member 2's promise"
    );
    net.heartbeat(4);
    for id in [2, 3, 4] {
        assert_eq!(net.applied_names(id), ["x"], "member {id}");
    }
    net.restart(5);
    net.run_until("member 5 catches up", |n| n.member(5).applied.len() == 1);
    assert_eq!(net.applied_names(5), ["x"]);
    net.check_agreement();
}

/// P2c: two different values were accepted at one slot in different ballots ("a" in the first
/// leader's ballot by member 2, "b" in the second leader's higher ballot by member 4, neither
/// chosen). A third leader whose quorum holds both must pick the higher ballot's value, "b".
#[test]
fn pms_2_2_p2c_the_highest_ballot_value_wins_among_values_accepted_at_one_slot() {
    let mut net = Net::new(5, 3);
    net.elect(1);
    let first_ballot = net.term(1);
    net.propose(1, "a");
    let to_two = net.take(|e| carries_entries(e) && e.to == 2);
    net.network.clear();
    net.deliver(to_two.into_iter().next().expect("an Accept to 2"));
    net.crash(1);

    // Member 3 leads with quorum {3, 4, 5}: none of them holds slot 1, so it may propose
    // anything there; it proposes "b", which only member 4 accepts before 3 crashes.
    net.crash(2);
    net.elect(3);
    let second_ballot = net.term(3);
    assert!(second_ballot > first_ballot);
    let slot = net.propose(3, "b");
    assert_eq!(slot, 1, "slot 1 was free in member 3's quorum");
    let to_four = net.take(|e| carries_entries(e) && e.to == 4);
    net.network.clear();
    net.deliver(to_four.into_iter().next().expect("an Accept to 4"));
    net.crash(3);

    // Member 5 leads with the only quorum left, {2, 4, 5}: it hears "a" from 2 and "b" from 4.
    net.restart(2);
    let two = net.node(2).log_entry(1).cloned().expect("2 accepted a");
    let four = net.node(4).log_entry(1).cloned().expect("4 accepted b");
    assert_eq!((name(&two), two.term), ("a".to_owned(), first_ballot));
    assert_eq!((name(&four), four.term), ("b".to_owned(), second_ballot));
    net.elect(5);
    net.heartbeat(5);
    for id in [2, 4, 5] {
        assert_eq!(net.applied_names(id), ["b"], "member {id}");
    }
    net.check_agreement();
}

/// §3: "the leader ... fills the gaps ... by proposing ... a special no-op command". Slot 1
/// ("x") reached only member 2 and slot 2 ("y") only member 3. The next leader's quorum
/// {3, 4, 5} reports slot 2 and nothing at slot 1, so slot 1 becomes a no-op and "y" is kept.
#[test]
fn pms_3_a_new_leader_fills_a_gap_nobody_in_its_quorum_accepted_with_a_noop() {
    let mut net = Net::new(5, 4);
    net.elect(1);
    net.propose(1, "x");
    net.propose(1, "y");
    let x_to_two = net.take(|e| e.to == 2 && carried_slots(e) == [1]);
    let y_to_three = net.take(|e| e.to == 3 && carried_slots(e) == [2]);
    net.network.clear();
    net.deliver(x_to_two.into_iter().next().expect("slot 1 to member 2"));
    net.deliver(y_to_three.into_iter().next().expect("slot 2 to member 3"));
    net.crash(1);
    net.crash(2);
    net.elect(4);
    let recovered: Vec<String> = (1..=2)
        .map(|s| net.node(4).log_entry(s).map(name).expect("recovered"))
        .collect();
    assert_eq!(recovered, ["noop", "y"]);
    net.heartbeat(4);
    for id in [3, 4, 5] {
        assert_eq!(net.applied_names(id), ["noop", "y"], "member {id}");
    }
    // Member 2 comes back holding "x" at slot 1, unchosen: it learns the no-op instead.
    net.restart(2);
    net.run_until("member 2 catches up", |n| n.member(2).applied.len() == 2);
    assert_eq!(net.applied_names(2), ["noop", "y"]);
    net.check_agreement();
}

/// PMMC: a replica applies slot `s` only after every slot below it ("it cannot execute a
/// command for slot s until it has executed slot s - 1"). Slot 3 is accepted by a majority
/// ({1, 2}) while slot 2 is lost on the way to member 2: slot 3 is chosen before slot 2, yet
/// nothing past slot 1 is handed out until slot 2 is chosen too.
#[test]
fn pmmc_slots_are_applied_in_order_even_when_a_later_slot_is_chosen_first() {
    let mut net = Net::new(3, 5);
    net.elect(1);
    net.crash(3);
    for command in ["a", "b", "c"] {
        net.propose(1, command);
    }
    net.pump(|e| {
        if carried_slots(e) == [2] {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let held_by_two: Vec<Index> = [1, 2, 3]
        .into_iter()
        .filter(|&s| net.node(2).log_entry(s).is_some())
        .collect();
    assert_eq!(
        held_by_two,
        [1, 3],
        "slot 3 is accepted by a majority, slot 2 is not"
    );
    assert_eq!(net.applied_names(1), ["a"], "slot 3 waits for slot 2");
    assert_eq!(net.node(1).status().commit, 1);
    // The leader notices the lost message at a heartbeat and sends slot 2 again.
    net.run_until("slot 2 is chosen", |n| n.member(1).applied.len() == 3);
    assert_eq!(net.applied_names(1), ["a", "b", "c"]);
    net.heartbeat(1);
    assert_eq!(net.applied_names(2), ["a", "b", "c"]);
    net.check_agreement();
}

/// The same rule at a follower. Member 3 misses slot 2 while member 2 gets everything, so the
/// leader chooses slots 1 to 3 and its next heartbeat tells member 3 that all three are chosen.
/// Member 3 holds slot 3 in the leader's ballot, yet it applies only slot 1 until slot 2 has
/// been sent to it again.
#[test]
fn pmmc_a_follower_applies_a_chosen_slot_only_after_every_slot_below_it() {
    let mut net = Net::new(3, 21);
    net.elect(1);
    for command in ["a", "b", "c"] {
        net.propose(1, command);
    }
    net.pump(|e| {
        if e.to == 3 && carried_slots(e) == [2] {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    assert_eq!(net.applied_names(1), ["a", "b", "c"]);
    assert!(net.node(3).log_entry(2).is_none());
    assert!(net.node(3).log_entry(3).is_some());

    // The next heartbeat carries the chosen prefix, 3, and no entries for member 3 yet.
    net.tick_alone_until_it_sends(1, is_accept);
    let to_three = net.take(|e| e.to == 3 && is_accept(e)).remove(0);
    match &to_three.message {
        Message::Accept {
            entries, commit, ..
        } => {
            assert!(entries.is_empty(), "{entries:?}");
            assert_eq!(*commit, 3);
        }
        other => panic!("expected an Accept, got {other:?}"),
    }
    net.deliver(to_three);
    net.deliver_everything();
    assert_eq!(net.applied_names(3), ["a"], "slot 3 waits for slot 2");

    net.run_until("member 3 learns slot 2", |n| n.member(3).applied.len() == 3);
    assert_eq!(net.applied_names(3), ["a", "b", "c"]);
    net.check_agreement();
}

// ------------------------------------------------------------------------------------------------
// "Paxos Made Simple" §2.5: stable storage.

/// §2.5: "An acceptor records its intended response in stable storage before actually sending
/// the response." A Promise and an Accepted are never in `ready.messages`; `persisted` returns
/// them once the write holding the promise (or the accepted entry) is durable.
#[test]
fn pms_2_5_promise_and_accepted_leave_only_after_the_write_is_persisted() {
    let mut net = Net::new(3, 6);
    net.member_mut(2).auto_persist = false;
    net.tick_alone_until_it_sends(1, is_prepare);
    let ballot = net.term(1);
    let prepare = net.take(|e| is_prepare(e) && e.to == 2).remove(0);

    let node = net.node_mut(2);
    node.step(1, prepare.message);
    let mut ready = node.ready();
    assert!(!ready.messages.iter().any(is_promise), "the Promise waits");
    let write = ready.write.take().expect("the promise must be written");
    assert_eq!(write.hard_state().map(|h| h.promised), Some(ballot));
    let released = node.persisted(write);
    assert_eq!(released.len(), 1);
    assert!(is_promise(&released[0]) && released[0].to == 1);
    net.deliver(released.into_iter().next().expect("the Promise"));
    net.deliver_everything();
    assert_eq!(net.leaders(), [1]);

    net.propose(1, "x");
    let accept = net.take(|e| carries_entries(e) && e.to == 2).remove(0);
    let node = net.node_mut(2);
    node.step(1, accept.message);
    let mut ready = node.ready();
    assert!(
        !ready.messages.iter().any(is_accepted),
        "the Accepted waits"
    );
    let write = ready.write.take().expect("the entry must be written");
    assert_eq!(write.entries().len(), 1);
    assert_eq!(name(&write.entries()[0]), "x");
    let released = node.persisted(write);
    assert_eq!(released.len(), 1);
    assert!(is_accepted(&released[0]) && released[0].to == 1);
}

/// §2.5 asks acceptors to remember their promises and accepted proposals in stable storage; what
/// a member learns is chosen (its chosen prefix) it can learn again, so a write that only moves
/// that prefix is handed out without needing a sync, while promises and accepted slots need one.
#[test]
fn pms_2_5_only_promises_and_accepted_slots_need_a_sync_not_the_chosen_prefix() {
    let mut net = Net::new(3, 9);
    net.elect(1);
    for command in ["a", "b", "c"] {
        net.propose(1, command);
        net.deliver_everything();
    }
    net.heartbeat(1);
    let mut chosen_only = BTreeSet::new();
    let mut promises = 0;
    for id in net.up_ids() {
        for &(needs_sync, has_slots, hard_state) in &net.member(id).persisted {
            if has_slots {
                assert!(needs_sync, "member {id}: accepted slots must be synced");
            }
            let Some((new, old)) = hard_state else {
                continue;
            };
            if new.promised != old.promised {
                assert!(needs_sync, "member {id}: a promise must be synced");
                promises += 1;
            } else if !has_slots {
                assert!(
                    !needs_sync,
                    "member {id}: a write moving only the chosen prefix ({old:?} -> {new:?}) \
                     asked for a sync"
                );
                chosen_only.insert(id);
            }
        }
    }
    assert!(promises >= 3, "every member promised the leader's ballot");
    assert_eq!(
        chosen_only.len(),
        3,
        "members with a chosen-only write: {chosen_only:?}"
    );
}

/// §2.5 for the proposer's own acceptor: a candidate counts its own promise towards the
/// Phase-1 quorum only once that promise is durable; the other members' promises alone make a
/// majority of three here, and still the candidate must wait for its disk.
#[test]
fn pms_2_5_a_proposer_counts_its_own_promise_only_once_it_is_durable() {
    let mut net = Net::new(3, 7);
    net.member_mut(1).auto_persist = false;
    net.tick_alone_until_it_sends(1, is_prepare);
    net.deliver_everything();
    let promises = net
        .trace
        .iter()
        .filter(|e| is_promise(e) && e.to == 1)
        .count();
    assert_eq!(promises, 2, "both other members promised");
    assert_ne!(
        net.node(1).role(),
        Role::Leader,
        "its own promise is not durable yet"
    );
    while !net.member(1).unpersisted.is_empty() {
        net.persist_one(1);
    }
    assert_eq!(net.node(1).role(), Role::Leader);
}

/// §2.5 and P1a: an acceptor remembers its promise across a restart. Member 3 promised the
/// second leader's ballot, crashed and restarted from its disk; a delayed Accept of the first
/// leader's (lower) ballot is refused with a Nack naming the promise, and changes nothing.
#[test]
fn pms_2_5_a_restored_acceptor_keeps_its_promise_and_nacks_a_lower_ballot() {
    let mut net = Net::new(3, 8);
    net.elect(1);
    let first_ballot = net.term(1);
    net.propose(1, "stale");
    let delayed = net.take(|e| carries_entries(e) && e.to == 3).remove(0);
    net.deliver_everything();
    net.node_mut(1).transfer_leadership(2).expect("1 leads");
    net.deliver_everything();
    net.heartbeat(2);
    assert_eq!(net.leaders(), [2]);
    let second_ballot = net.term(2);
    assert!(second_ballot > first_ballot);
    assert_eq!(net.member(3).disk.hard_state.promised, second_ballot);

    net.crash(3);
    net.restart(3);
    assert_eq!(net.node(3).promised(), second_ballot);
    let held_before = net.node(3).log_entry(1).cloned();
    assert_eq!(
        held_before.as_ref().map(|e| (name(e), e.term)),
        Some(("stale".to_owned(), second_ballot)),
        "the new leader re-proposed slot 1 in its own ballot"
    );
    let mark = net.trace.len();
    net.deliver(delayed);
    let nacks = net.sent_since(mark, |e| e.from == 3);
    assert_eq!(nacks.len(), 1);
    assert_eq!(
        nacks[0].message,
        Message::Nack {
            ballot: first_ballot,
            promised: second_ballot
        }
    );
    assert_eq!(net.node(3).log_entry(1).cloned(), held_before);
    assert_eq!(net.node(3).promised(), second_ballot);
}

// ------------------------------------------------------------------------------------------------
// "Paxos Made Simple" §2.3: learning a chosen value.

/// §2.3: a learner must not learn a value unless it was chosen. Member 5 accepted "old" at
/// slot 1 in a deposed leader's ballot; the next leader chose "new" there. When 5 hears that
/// leader's chosen prefix (commit 1) with an Accept for slot 2 only, it must not take its own
/// "old" for the chosen value: it waits until it holds the leader's value for slot 1.
#[test]
fn pms_2_3_a_follower_does_not_mistake_an_older_ballot_value_for_the_chosen_one() {
    let mut net = Net::new(5, 9);
    net.elect(1);
    net.propose(1, "old");
    let to_five = net.take(|e| carries_entries(e) && e.to == 5).remove(0);
    net.network.clear();
    net.deliver(to_five);
    net.crash(1);
    net.crash(5);

    net.elect(2);
    net.propose(2, "new");
    net.deliver_everything();
    assert_eq!(net.applied_names(2), ["new"]);

    net.restart(5);
    let old = net.node(5).log_entry(1).cloned().expect("5 holds old");
    assert_eq!(name(&old), "old");
    let mark = net.trace.len();
    net.propose(2, "x");
    let to_five = net.sent_since(mark, |e| e.to == 5);
    assert_eq!(to_five.len(), 1);
    match &to_five[0].message {
        Message::Accept {
            entries, commit, ..
        } => {
            assert_eq!(*commit, 1, "the leader says slot 1 is chosen");
            assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), [2]);
        }
        other => panic!("expected an Accept, got {other:?}"),
    }
    net.deliver_everything();
    assert_eq!(
        net.node(5).status().commit,
        0,
        "slot 1 holds another ballot's value"
    );
    assert!(net.member(5).applied.is_empty());

    net.run_until("member 5 learns slots 1 and 2", |n| {
        n.member(5).applied.len() == 2
    });
    assert_eq!(net.applied_names(5), ["new", "x"]);
    net.check_agreement();
}

// ------------------------------------------------------------------------------------------------
// Preemption and back-off: "Paxos Made Simple" §2.2 (Nack) and §2.4; PMMC's preempted leader.

/// PMMC: a leader whose commander is preempted by a higher ballot becomes passive and later
/// retries with a ballot above the one that preempted it. Member 1 pauses (a long GC pause:
/// it neither ticks nor hears anything) while 2 and 3 elect a new leader; when it wakes up
/// still believing it leads, its Accept is refused with a Nack. It steps down, its pending
/// read fails, and its next Prepare carries a ballot above the Nack's.
#[test]
fn pmmc_a_preempted_leader_steps_down_and_its_next_ballot_is_above_the_nack() {
    let mut net = Net::new(3, 10);
    net.elect(1);
    let old_ballot = net.term(1);
    for _ in 0..ELECTION_TICKS_MAX {
        net.tick(&[2, 3]);
        net.pump(|e| {
            if e.from == 1 || e.to == 1 {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
        if net.leaders().iter().any(|&l| l != 1) {
            break;
        }
    }
    let new_leader = *net
        .leaders()
        .iter()
        .find(|&&l| l != 1)
        .expect("2 and 3 elect a leader");
    let new_ballot = net.term(new_leader);
    assert!(new_ballot > old_ballot);
    assert_eq!(net.node(1).role(), Role::Leader, "1 has not noticed yet");

    net.node_mut(1).read_index(7).expect("a leader takes reads");
    let mark = net.trace.len();
    net.propose(1, "stale");
    net.pump(|e| {
        if e.to == 1 || e.from == 1 {
            Fate::Deliver
        } else {
            Fate::Drop
        }
    });
    let nacks = net.sent_since(mark, |e| matches!(e.message, Message::Nack { .. }));
    assert!(!nacks.is_empty());
    for nack in nacks {
        assert_eq!(
            nack.message,
            Message::Nack {
                ballot: old_ballot,
                promised: new_ballot
            }
        );
    }
    assert_eq!(net.node(1).role(), Role::Follower);
    assert_eq!(
        net.member(1).failed_reads,
        [7],
        "a deposed leader fails its reads"
    );

    net.network.clear();
    net.tick_alone_until_it_sends(1, is_prepare);
    let prepare = net
        .network
        .iter()
        .find(|e| is_prepare(e))
        .expect("a Prepare");
    let Message::Prepare { ballot: retry, .. } = prepare.message else {
        unreachable!()
    };
    assert!(
        retry > new_ballot,
        "{retry} must exceed the Nack's {new_ballot}"
    );
    assert_eq!(ballot::proposer(retry), 1);
    net.deliver_everything();
    net.run_until("a leader settles", |n| {
        n.leaders().first().is_some_and(|&l| n.settled_under(l))
    });
    net.check_agreement();
}

/// §2.4: dueling proposers can prevent progress, so one distinguished proposer should be the
/// only one to issue proposals. A follower that heard from the leader within the minimum
/// timeout ignores another member's Prepare (it neither promises nor answers), and so does the
/// leader: a member that merely lost touch with the leader cannot depose it.
#[test]
fn pms_2_4_a_follower_that_hears_from_the_leader_ignores_another_proposers_prepare() {
    let mut net = Net::new(3, 11);
    net.elect(1);
    let leader_ballot = net.term(1);
    // Member 2 alone loses touch: only its clock runs, so 3 heard from 1 "just now".
    net.tick_alone_until_it_sends(2, is_prepare);
    let mark = net.trace.len();
    let rival = net.term(2);
    assert!(rival > leader_ballot);
    net.deliver_everything();
    assert!(
        net.sent_since(mark, |e| e.from != 2).is_empty(),
        "neither 1 nor 3 answered: {:?}",
        net.sent_since(mark, |e| e.from != 2)
    );
    assert_eq!(net.node(3).promised(), leader_ballot);
    assert_eq!(net.node(3).status().soft_state.leader, Some(1));
    assert_eq!(net.leaders(), [1]);
    assert_eq!(net.term(1), leader_ballot);
}

/// §2.4, the failure detector: when the transport reports that the leader's connection
/// dropped, both surviving followers start Phase 1 at once, at the same moment, instead of
/// waiting out their timeouts. Ballots are unique per proposer, so the two proposers cannot
/// split the vote: the higher ballot gets every promise and the lower is refused, and one
/// leader is elected with no tick passing. Contrast: without the report nobody runs Phase 1.
#[test]
fn pms_2_4_followers_told_the_leader_is_unreachable_elect_one_leader_at_once() {
    for seed in 0..20 {
        for report in [true, false] {
            let mut net = Net::new(3, seed);
            net.elect(1);
            net.propose(1, "before");
            net.heartbeat(1);
            let old_ballot = net.term(1);
            net.crash(1);
            let mark = net.trace.len();
            for id in [2, 3] {
                let acted = report && net.node_mut(id).peer_unreachable(1);
                assert_eq!(acted, report, "seed {seed}: member {id}");
                net.process(id);
            }
            net.deliver_everything();
            if !report {
                assert!(net.sent_since(mark, is_prepare).is_empty(), "seed {seed}");
                assert!(net.leaders().is_empty(), "seed {seed}");
                continue;
            }
            let leaders = net.leaders();
            assert_eq!(leaders.len(), 1, "seed {seed}: {leaders:?}");
            let leader = leaders[0];
            assert!(net.settled_under(leader), "seed {seed}");
            assert!(net.term(leader) > old_ballot, "seed {seed}");
            net.propose(leader, "after");
            net.deliver_everything();
            net.heartbeat(leader);
            for id in [2, 3] {
                assert_eq!(
                    net.applied_names(id),
                    ["before", "after"],
                    "seed {seed}: {id}"
                );
            }
        }
    }
}

/// §2.4: only a follower's own leader matters. A report about another member, or one given to
/// the leader, changes nothing and sends nothing.
#[test]
fn pms_2_4_a_report_about_a_member_other_than_the_leader_changes_nothing() {
    let mut net = Net::new(3, 13);
    net.elect(1);
    let ballot = net.term(1);
    for (id, peer) in [(2, 3), (2, 2), (3, 2), (1, 2), (1, 3)] {
        let before = net.node(id).status();
        assert!(
            !net.node_mut(id).peer_unreachable(peer),
            "{id} told about {peer}"
        );
        assert!(!net.node(id).has_ready(), "{id} told about {peer}");
        assert_eq!(net.node(id).status(), before, "{id} told about {peer}");
    }
    for _ in 0..100 {
        net.tick(&[1, 2, 3]);
        net.deliver_everything();
    }
    assert_eq!(net.leaders(), [1]);
    assert_eq!(net.term(1), ballot);
}

/// A leadership transfer: the leader sends TimeoutNow; the target starts Phase 1 at once with
/// a forced Prepare, which the members answer although they hear from a live leader, and it
/// takes over with a ballot above every ballot it has seen.
#[test]
fn pms_2_4_leadership_transfer_sends_a_forced_prepare_that_moves_leadership() {
    let mut net = Net::new(3, 12);
    net.elect(1);
    net.propose(1, "before");
    net.deliver_everything();
    let old_ballot = net.term(1);
    let mark = net.trace.len();
    net.node_mut(1).transfer_leadership(3).expect("1 leads");
    net.deliver_everything();
    let timeout_now = net.sent_since(mark, |e| matches!(e.message, Message::TimeoutNow { .. }));
    assert_eq!(timeout_now.len(), 1);
    assert_eq!(timeout_now[0].to, 3);
    let prepares = net.sent_since(mark, is_prepare);
    assert!(!prepares.is_empty());
    for prepare in prepares {
        assert_eq!(prepare.from, 3);
        assert!(matches!(
            prepare.message,
            Message::Prepare { force: true, .. }
        ));
    }
    assert_eq!(net.leaders(), [3]);
    let new_ballot = net.term(3);
    assert!(new_ballot > old_ballot);
    assert_eq!(ballot::proposer(new_ballot), 3);
    net.heartbeat(3);
    assert!(net.settled_under(3));
    net.propose(3, "after");
    net.deliver_everything();
    net.heartbeat(3);
    for id in [1, 2, 3] {
        assert_eq!(net.applied_names(id), ["before", "after"], "member {id}");
    }
    assert!(net.node_mut(1).propose(Bytes::from_static(b"no")).is_err());
    assert_eq!(
        net.node_mut(3).transfer_leadership(3),
        Err(synod_core::TransferError::AlreadyLeader(3))
    );
}

// ------------------------------------------------------------------------------------------------
// "Paxos Made Live" §4.5: snapshots, catch-up and truncated acceptors.

/// §4.5: a replica that lags behind the leader's compaction point catches up from the leader's
/// snapshot (InstallSnapshot), then from the slots after it.
#[test]
fn pml_4_5_a_lagging_follower_catches_up_from_the_leaders_snapshot() {
    let mut net = Net::new(3, 13);
    net.elect(1);
    net.crash(3);
    for i in 0..5 {
        net.propose(1, &format!("c{i}"));
        net.deliver_everything();
    }
    assert_eq!(net.snapshot(1), 5);
    net.propose(1, "c5");
    net.deliver_everything();

    let mark = net.trace.len();
    net.restart(3);
    net.run_until("member 3 catches up", |n| n.member(3).applied.len() == 6);
    let snapshots = net.sent_since(mark, |e| {
        matches!(e.message, Message::InstallSnapshot { .. }) && e.to == 3
    });
    assert!(!snapshots.is_empty(), "the leader sent its snapshot");
    assert_eq!(snapshots[0].message.snapshot().map(|s| s.index), Some(5));
    assert_eq!(net.node(3).status().snapshot_index, 5);
    assert_eq!(net.applied_names(3), net.applied_names(1));
    net.check_agreement();
}

/// §2.5 with §4.5: an acceptor that promised a higher ballot than the leader's (it ran Phase 1
/// alone while it was cut off) refuses the leader's snapshot at the lower ballot with a Nack,
/// like any other message below its promise, so the leader learns of the promise and moves to
/// a higher ballot; the lagging member then catches up. Before this rule the leader kept
/// sending its snapshot, unanswered, and the member stayed behind for good (found by the
/// server's kill -9 test).
#[test]
fn pms_2_5_a_member_promised_above_the_leader_nacks_its_snapshot_and_then_catches_up() {
    let mut net = Net::new(3, 13);
    net.elect(1);
    net.crash(3);
    for i in 0..5 {
        net.propose(1, &format!("c{i}"));
        net.deliver_everything();
    }
    assert_eq!(net.snapshot(1), 5);
    let leader_ballot = net.term(1);
    net.restart(3);
    // Member 3 times out before it hears from the leader and promises itself a higher ballot;
    // its Prepares are lost.
    net.network.clear();
    net.tick_alone_until_it_sends(3, is_prepare);
    net.network.retain(|e| !is_prepare(e));
    assert!(net.term(3) > leader_ballot, "3 promised above the leader");
    // No new proposals: the leader only heartbeats, and a heartbeat to a member behind its
    // snapshot is the snapshot itself.
    let mark = net.trace.len();
    net.run_until("member 3 follows a leader", |n| {
        n.node(3).status().soft_state.leader.is_some()
    });
    let nacks = net.sent_since(mark, |e| {
        e.from == 3 && e.to == 1 && matches!(e.message, Message::Nack { .. })
    });
    assert!(!nacks.is_empty(), "3 refused a message below its promise");
    net.run_until("a leader settles", |n| {
        n.leaders().first().is_some_and(|&l| n.settled_under(l))
    });
    let leader = net.leaders()[0];
    net.propose(leader, "c5");
    net.run_until("every member applies c5", |n| {
        [1, 2, 3].iter().all(|&id| n.member(id).applied.len() == 6)
    });
    assert_eq!(net.applied_names(3), net.applied_names(leader));
    net.check_agreement();
}

/// §4.5 and the module's truncation rule: an acceptor that compacted slots 1..=5 cannot say
/// what it accepted there, so its Promise to a Prepare from slot 1 does not count towards the
/// Phase-1 quorum ("truncated" is not "nothing accepted"). It sends its snapshot along; the
/// candidate installs it and runs Phase 1 again from slot 6, and that Promise counts.
#[test]
fn pml_4_5_a_promise_that_cannot_speak_for_truncated_slots_is_not_counted() {
    let mut net = Net::new(3, 14);
    net.elect(1);
    net.crash(3);
    for i in 0..5 {
        net.propose(1, &format!("c{i}"));
        net.deliver_everything();
    }
    net.heartbeat(1);
    assert_eq!(net.member(2).applied.len(), 5);
    assert_eq!(net.snapshot(2), 5);
    net.crash(1);
    net.restart(3);

    // 3 campaigns (2's own Prepares are lost); 2's snapshot is held back.
    let mut held = Vec::new();
    let mut truncated_promise_delivered = false;
    for _ in 0..ELECTION_TICKS_MAX {
        net.tick_for_election_of(3);
        held.extend(net.pump(|e| {
            if e.from == 2 && is_prepare(e) {
                Fate::Drop
            } else if matches!(e.message, Message::InstallSnapshot { .. }) {
                Fate::Hold
            } else {
                if e.from == 2 && e.to == 3 && is_promise(e) {
                    truncated_promise_delivered = true;
                    let Message::Promise { from, snapshot, .. } = e.message else {
                        unreachable!()
                    };
                    assert!(snapshot >= from, "2 compacted the slots 3 asks about");
                }
                Fate::Deliver
            }
        }));
        if truncated_promise_delivered {
            break;
        }
    }
    assert!(truncated_promise_delivered, "2 never promised 3");
    assert_ne!(
        net.node(3).role(),
        Role::Leader,
        "a truncated promise is not counted"
    );
    assert_eq!(net.node(3).role(), Role::Candidate);

    let snapshot = held
        .into_iter()
        .rev()
        .find(|e| e.to == 3)
        .expect("2 sent its snapshot with the promise");
    net.deliver(snapshot);
    net.pump(|e| {
        if e.from == 2 && is_prepare(e) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    assert_eq!(
        net.node(3).role(),
        Role::Leader,
        "the promise from slot 6 counts"
    );
    assert_eq!(net.node(3).status().snapshot_index, 5);
    assert_eq!(net.applied_names(3), ["c0", "c1", "c2", "c3", "c4"]);
    net.propose(3, "c5");
    net.deliver_everything();
    net.heartbeat(3);
    assert_eq!(net.applied_names(2).last().map(String::as_str), Some("c5"));
    net.check_agreement();
}

// ------------------------------------------------------------------------------------------------
// Linearizable reads (PMMC "read-only commands"; the module's read rule).

/// A read gets the index `max(commit, end of recovery)` and is served only after a quorum has
/// answered a heartbeat sent *after* the read arrived: an answer to an earlier heartbeat does
/// not prove the leader still led when the read came in.
#[test]
fn pmmc_read_index_is_served_only_after_a_quorum_answers_a_heartbeat_sent_after_the_read() {
    let mut net = Net::new(3, 15);
    net.elect(1);
    net.propose(1, "x");
    net.deliver_everything();

    // A heartbeat goes out before the read; member 3's answer to it is delayed.
    net.tick_alone_until_it_sends(1, is_accept);
    let early = net.take(|e| e.to == 3 && is_accept(e)).remove(0);
    net.network.clear();
    net.deliver(early);
    let stale_answer = net.take(|e| e.from == 3 && is_accepted(e)).remove(0);
    assert!(net.network.is_empty());

    net.node_mut(1)
        .read_index(42)
        .expect("the leader takes reads");
    net.process(1);
    assert!(net.member(1).reads.is_empty(), "no quorum has answered yet");
    let heartbeats = net.take(is_accept);
    assert_eq!(
        heartbeats.len(),
        2,
        "the read sends a heartbeat to each follower"
    );

    net.deliver(stale_answer);
    assert!(
        net.member(1).reads.is_empty(),
        "an answer to a heartbeat sent before the read does not confirm it"
    );

    let to_two = heartbeats
        .into_iter()
        .find(|e| e.to == 2)
        .expect("a heartbeat to 2");
    net.deliver(to_two);
    net.deliver_everything();
    let commit = net.node(1).status().commit;
    assert_eq!(
        net.member(1).reads,
        [ReadState {
            context: 42,
            index: commit
        }]
    );
    assert_eq!(commit, 1);
}

/// A leader that cannot reach a quorum for a timeout steps down (check-quorum), and fails the
/// read it could not confirm, so the client retries elsewhere.
#[test]
fn pmmc_a_leader_that_loses_its_quorum_fails_its_pending_reads() {
    let mut net = Net::new(3, 16);
    net.elect(1);
    net.node_mut(1)
        .read_index(9)
        .expect("the leader takes reads");
    for _ in 0..ELECTION_TICKS_MAX {
        net.tick(&[1]);
        net.network.clear();
        if net.node(1).role() != Role::Leader {
            break;
        }
    }
    assert_eq!(net.node(1).role(), Role::Follower);
    assert!(net.member(1).reads.is_empty());
    assert_eq!(net.member(1).failed_reads, [9]);
}

/// A read at a follower is forwarded to the leader and served at the follower once the follower
/// has applied the leader's read index.
#[test]
fn pmmc_a_follower_read_is_forwarded_and_served_after_applying_the_read_index() {
    let mut net = Net::new(3, 17);
    net.elect(1);
    net.propose(1, "x");
    net.deliver_everything();
    assert!(
        net.member(2).applied.is_empty(),
        "2 has not learned slot 1 yet"
    );
    net.node_mut(2).read_index(5).expect("2 knows the leader");
    // The leader confirms the read with member 3; its heartbeats to 2 are held back, so 2 gets
    // the read index (slot 1) before it has learned that slot 1 is chosen.
    let held = net.pump(|e| {
        if e.to == 2 && is_accept(e) {
            Fate::Hold
        } else {
            Fate::Deliver
        }
    });
    let responses = net
        .trace
        .iter()
        .filter(|e| matches!(e.message, Message::ReadIndexResponse { .. }))
        .count();
    assert_eq!(responses, 1, "the leader answered the forwarded read");
    assert!(net.member(2).applied.is_empty());
    assert!(
        net.member(2).reads.is_empty(),
        "slot 1 is not applied at 2 yet"
    );
    for envelope in held {
        net.deliver(envelope);
    }
    net.deliver_everything();
    assert_eq!(
        net.member(2).reads,
        [ReadState {
            context: 5,
            index: 1
        }]
    );
    assert_eq!(net.applied_names(2), ["x"]);
}

// ------------------------------------------------------------------------------------------------
// Flexible Paxos.

/// Flexible Paxos: only Phase-1 and Phase-2 quorums must intersect. With five members and
/// Phase-2 quorums of 2, Phase 1 needs 4: three running members never elect a leader, four do,
/// and then a single follower's Accepted (plus the leader's own) chooses a value.
#[test]
fn flexible_paxos_phase2_quorum_of_2_commits_and_phase1_needs_4_of_5() {
    let mut net = Net::with_phase2_quorum(5, 18, Some(2));
    net.crash(4);
    net.crash(5);
    for _ in 0..300 {
        let ids = net.up_ids();
        net.tick(&ids);
        net.deliver_everything();
        assert!(
            net.leaders().is_empty(),
            "3 promises are not a Phase-1 quorum"
        );
    }
    net.restart(4);
    net.elect(1);
    net.propose(1, "x");
    let to_two = net.take(|e| carries_entries(e) && e.to == 2).remove(0);
    net.network.clear();
    net.deliver(to_two);
    net.deliver_everything();
    assert_eq!(net.applied_names(1), ["x"], "two acceptances choose x");
    assert_eq!(net.node(1).status().commit, 1);
}

// ------------------------------------------------------------------------------------------------
// Reconfiguration by stop-sign (PMMC reconfiguration; the module's stop-sign rule).

/// A configuration entry is a stop-sign: the leader proposes nothing after it until it is
/// chosen, then runs Phase 1 again, with its ballot, in the new configuration (here: a Prepare
/// to the new member 4), and only then accepts proposals again.
#[test]
fn pmmc_stop_sign_pauses_proposals_then_reruns_phase1_in_the_new_configuration() {
    let mut net = Net::new(3, 19);
    net.elect(1);
    net.propose(1, "x");
    net.deliver_everything();
    net.add_member(4, Disk::default());
    let leader_ballot = net.term(1);

    let change = net
        .node_mut(1)
        .propose_membership_change(ConfChange::AddVoter(4))
        .expect("the leader takes a change");
    assert_eq!(change.index, 2);
    assert_eq!(
        net.node_mut(1).propose(Bytes::from_static(b"y")),
        Err(ProposeError::ConfChangeInProgress)
    );
    assert_eq!(
        net.node_mut(1)
            .propose_membership_change(ConfChange::AddVoter(5)),
        Err(ProposeError::ConfChangeInProgress)
    );

    let mark = net.trace.len();
    net.process(1);
    // Deliver the change to the old configuration, but hold the new Phase 1 back.
    let held = net.pump(|e| {
        if is_prepare(e) {
            Fate::Hold
        } else {
            Fate::Deliver
        }
    });
    assert_eq!(net.node(1).status().commit, 2, "the change is chosen");
    assert_eq!(net.node(1).membership().voters, voters([1, 2, 3, 4]));
    let prepared: BTreeSet<NodeId> = held.iter().map(|e| e.to).collect();
    assert_eq!(
        prepared,
        voters([2, 3, 4]),
        "Phase 1 in the new configuration"
    );
    for prepare in &held {
        assert_eq!(
            prepare.message,
            Message::Prepare {
                ballot: leader_ballot,
                from: 3,
                force: false
            }
        );
    }
    assert!(
        net.sent_since(mark, |e| carries_entries(e)
            && carried_slots(e).contains(&3))
            .is_empty()
    );
    assert_ne!(
        net.node(1).role(),
        Role::Leader,
        "Phase 1 is not complete yet"
    );
    assert!(net.node_mut(1).propose(Bytes::from_static(b"y")).is_err());

    for prepare in held {
        net.deliver(prepare);
    }
    net.deliver_everything();
    assert_eq!(net.node(1).role(), Role::Leader);
    let slot = net.propose(1, "y");
    assert_eq!(slot, 3);
    net.deliver_everything();
    net.heartbeat(1);
    for id in [1, 2, 3, 4] {
        assert_eq!(net.applied_names(id), ["x", "conf", "y"], "member {id}");
        assert_eq!(net.node(id).membership().voters, voters([1, 2, 3, 4]));
    }
    net.check_agreement();
}

/// Because every slot is decided by exactly one configuration, any change is safe in one step:
/// a joint change goes straight to C_new and the membership is never joint.
#[test]
fn pmmc_stop_sign_a_joint_change_goes_straight_to_the_new_configuration() {
    let mut net = Net::new(3, 20);
    net.elect(1);
    net.add_member(4, Disk::default());
    let change = net
        .node_mut(1)
        .propose_membership_change(ConfChange::Joint {
            voters: voters([1, 2, 4]),
            learners: BTreeSet::new(),
        })
        .expect("the leader takes a change");
    match &net.node(1).log_entry(change.index).expect("stored").payload {
        Payload::Membership(m) => {
            assert!(!m.is_joint(), "{m:?}");
            assert_eq!(m.voters, voters([1, 2, 4]));
        }
        other => panic!("expected a configuration entry, got {other:?}"),
    }
    net.deliver_everything();
    let membership = net.node(1).membership().clone();
    assert!(!membership.is_joint());
    assert_eq!(membership.voters, voters([1, 2, 4]));
    assert_eq!(net.node(1).role(), Role::Leader);
    net.crash(3);
    net.propose(1, "y");
    net.deliver_everything();
    net.heartbeat(1);
    for id in [1, 2, 4] {
        assert_eq!(net.applied_names(id), ["conf", "y"], "member {id}");
        assert!(!net.node(id).membership().is_joint());
    }
    net.check_agreement();
}

// ------------------------------------------------------------------------------------------------
// "Paxos Made Live" §5.2: runtime consistency checking under garbage input.

/// One input to a lone member.
#[derive(Clone, Debug)]
enum Input {
    Tick,
    Step(NodeId, Message),
    Propose,
    Read(ReadContext),
    Compact,
}

fn arb_ballot() -> impl Strategy<Value = Term> {
    prop_oneof![
        8 => (0u64..6, 0u64..6).prop_map(|(r, p)| ballot::ballot(r, p).expect("fits")),
        1 => any::<u64>(),
        1 => Just(u64::MAX),
    ]
}

/// Slots: mostly small, sometimes far ahead (around the log's storage horizon, and up to
/// 2^48), and, with `extreme`, at the very end of the index space.
fn arb_index(extreme: bool) -> BoxedStrategy<Index> {
    let ordinary = prop_oneof![
        8 => 0u64..12,
        1 => 0u64..(1 << 48),
        1 => ((1u64 << 20) - 2)..((1u64 << 20) + 14),
    ];
    if extreme {
        prop_oneof![10 => ordinary, 1 => (u64::MAX - 3)..=u64::MAX].boxed()
    } else {
        ordinary.boxed()
    }
}

fn arb_membership() -> impl Strategy<Value = Membership> {
    (
        prop::collection::btree_set(1u64..6, 1..4),
        prop::collection::btree_set(1u64..6, 0..2),
    )
        .prop_map(|(voters, learners)| Membership {
            learners: learners.difference(&voters).copied().collect(),
            voters,
            voters_outgoing: BTreeSet::new(),
        })
}

fn arb_entry(extreme: bool) -> impl Strategy<Value = Entry> {
    let payload = prop_oneof![
        3 => Just(Payload::Noop),
        6 => (0u8..4).prop_map(|b| Payload::Command(Bytes::from(vec![b]))),
        1 => arb_membership().prop_map(Payload::Membership),
    ];
    (arb_ballot(), arb_index(extreme), payload).prop_map(|(term, index, payload)| Entry {
        term,
        index,
        payload,
    })
}

fn arb_entries(extreme: bool) -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec(arb_entry(extreme), 0..4)
}

fn arb_message(extreme: bool) -> impl Strategy<Value = Message> {
    let index = move || arb_index(extreme);
    prop_oneof![
        (arb_ballot(), index(), any::<bool>()).prop_map(|(ballot, from, force)| {
            Message::Prepare {
                ballot,
                from,
                force,
            }
        }),
        (
            arb_ballot(),
            index(),
            index(),
            index(),
            arb_entries(extreme)
        )
            .prop_map(
                |(ballot, from, commit, snapshot, entries)| Message::Promise {
                    ballot,
                    from,
                    commit,
                    snapshot,
                    entries,
                }
            ),
        (arb_ballot(), arb_entries(extreme), index(), 0u64..4).prop_map(
            |(ballot, entries, commit, read_round)| Message::Accept {
                ballot,
                entries,
                commit,
                read_round,
            }
        ),
        (arb_ballot(), index(), index(), 0u64..4).prop_map(|(ballot, top, commit, read_round)| {
            Message::Accepted {
                ballot,
                top,
                commit,
                read_round,
            }
        }),
        (arb_ballot(), arb_ballot())
            .prop_map(|(ballot, promised)| Message::Nack { ballot, promised }),
        (arb_ballot(), index(), arb_ballot(), arb_membership()).prop_map(
            |(ballot, index, term, membership)| Message::InstallSnapshot {
                ballot,
                snapshot: SnapshotMeta {
                    index,
                    term,
                    membership,
                },
            }
        ),
        arb_ballot().prop_map(|ballot| Message::TimeoutNow { ballot }),
        (0u64..4).prop_map(|context| Message::ReadIndex { context }),
        (0u64..4, prop::option::of(index()))
            .prop_map(|(context, index)| Message::ReadIndexResponse { context, index }),
    ]
}

fn arb_input(extreme: bool) -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => Just(Input::Tick),
        10 => (0u64..6, arb_message(extreme)).prop_map(|(from, m)| Input::Step(from, m)),
        1 => Just(Input::Propose),
        1 => (0u64..4).prop_map(Input::Read),
        1 => Just(Input::Compact),
    ]
}

/// Drains a lone member, persisting every write at once and dropping its messages; checks that
/// slots are handed out for applying in order.
fn drain_alone(node: &mut PaxosNode, applied: &mut Index) {
    let mut rounds = 0;
    while node.has_ready() {
        rounds += 1;
        assert!(rounds < 1_000, "has_ready never turned false: {node:?}");
        let mut ready = node.ready();
        for entry in &ready.committed {
            assert_eq!(entry.index, *applied + 1, "applied out of order");
            *applied = entry.index;
        }
        if let Some(write) = ready.write.take() {
            if let Some(snapshot) = write.snapshot() {
                *applied = snapshot.index;
            }
            let _released = node.persisted(write);
        }
    }
}

/// Member 1 of three, in the role asked for (0 follower, 1 candidate, 2 leader), alone.
fn node_in_role(role: u8, seed: u64) -> PaxosNode {
    let mut net = Net::new(3, seed);
    match role {
        0 => net.elect(2),
        1 => net.tick_alone_until_it_sends(1, is_prepare),
        _ => net.elect(1),
    }
    let mut node = net.member_mut(1).node.take().expect("running");
    let expected = [Role::Follower, Role::Candidate, Role::Leader][role.min(2) as usize];
    assert_eq!(node.role(), expected);
    let mut applied = node.status().applied;
    drain_alone(&mut node, &mut applied);
    node
}

fn run_garbage(role: u8, seed: u64, inputs: Vec<Input>) {
    let mut node = node_in_role(role, seed);
    let mut applied = node.status().applied;
    for input in inputs {
        match input {
            Input::Tick => node.tick(),
            Input::Step(from, message) => node.step(from, message),
            Input::Propose => {
                let _ = node.propose(Bytes::from_static(b"p"));
            }
            Input::Read(context) => {
                let _ = node.read_index(context);
            }
            Input::Compact => {
                if applied > node.status().snapshot_index && node.snapshot_meta(applied).is_ok() {
                    node.compact(applied).expect("compactable");
                }
            }
        }
        drain_alone(&mut node, &mut applied);
        let _ = node.status();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// §5.2: the engine checks its invariants after every call (`check_invariants` is on), and
    /// `Engine::step` promises that malformed, stale or unexpected messages never panic. Random
    /// ballots (including `u64::MAX`), senders (including 0, itself and non-members), slots (up
    /// to 2^48) and entries, fed to a follower, a candidate and a leader, with ticks, proposals,
    /// reads and compactions in between.
    #[test]
    fn pml_5_2_garbage_messages_never_panic_a_node_in_any_role(
        role in 0u8..3,
        seed in 0u64..4,
        inputs in prop::collection::vec(arb_input(false), 1..60),
    ) {
        run_garbage(role, seed, inputs);
    }

    /// The same, with slots at the very end of the index space as well.
    #[test]
    fn pml_5_2_garbage_at_the_end_of_the_index_space_never_panics(
        role in 0u8..3,
        seed in 0u64..4,
        inputs in prop::collection::vec(arb_input(true), 1..60),
    ) {
        run_garbage(role, seed, inputs);
    }
}

// Regressions found by the properties above, kept as plain tests.

/// Feeds `messages` from member 2 to a fresh member 1 of three, persisting every write.
fn step_alone(messages: Vec<Message>) -> PaxosNode {
    let state = RestoreState::bootstrap(Membership::with_voters([1, 2, 3]));
    let config = Config {
        check_invariants: true,
        ..Config::new(1)
    };
    let rng = Box::new(XorShiftRng::seed_from_u64(1));
    let mut node = PaxosNode::restore(config, rng, state).expect("restores");
    let mut applied = 0;
    for message in messages {
        node.step(2, message);
        drain_alone(&mut node, &mut applied);
    }
    node
}

fn snapshot_at(index: Index) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term: 0,
        membership: Membership::with_voters([1, 2, 3]),
    }
}

/// A (malformed) InstallSnapshot at `u64::MAX`, where `snapshot.index + 1` would overflow, is
/// refused as a whole: indexes above `MAX_INDEX` are never reached by a real cluster.
#[test]
fn pml_5_2_regression_a_snapshot_at_the_last_index_does_not_overflow() {
    let leader = ballot::ballot(1, 2).expect("fits");
    let node = step_alone(vec![Message::InstallSnapshot {
        ballot: leader,
        snapshot: snapshot_at(u64::MAX),
    }]);
    assert_eq!(node.promised(), 0, "the malformed message changed nothing");
    assert_eq!(node.status().snapshot_index, 0);
}

/// A snapshot at `u64::MAX - 1` and an Accept for slot `u64::MAX` (where `accepted_top` would
/// look at slot `u64::MAX + 1`) are both refused as out of range.
#[test]
fn pml_5_2_regression_an_entry_at_the_last_slot_does_not_overflow() {
    let leader = ballot::ballot(1, 2).expect("fits");
    let node = step_alone(vec![
        Message::InstallSnapshot {
            ballot: leader,
            snapshot: snapshot_at(u64::MAX - 1),
        },
        Message::Accept {
            ballot: leader,
            entries: vec![Entry {
                term: leader,
                index: u64::MAX,
                payload: Payload::Noop,
            }],
            commit: u64::MAX,
            read_round: 0,
        },
    ]);
    assert_eq!(
        node.status().commit,
        0,
        "the malformed messages changed nothing"
    );
    assert_eq!(node.status().last_index, 0);
}
