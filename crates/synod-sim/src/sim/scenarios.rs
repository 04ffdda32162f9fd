//! Named scenarios after the classic Raft test suite, scripted on the engine-agnostic
//! simulator. Each one is randomized by its seed (delays, disk latency, which member does what)
//! and ends with the same liveness phase and final checks as a swarm run.

use std::collections::BTreeSet;

use synod_core::{ConfChange, Engine, NodeId, Role, SnapshotMeta};

use super::disk::Disk;
use super::{BootFn, Failure, FaultProfile, Micros, Report, Sim, SimOptions};

const MS: Micros = 1_000;

/// A scenario: a name and a script.
pub struct Scenario<E: Engine> {
    /// The scenario's name, for the command line and reports.
    pub name: &'static str,
    /// Runs the scenario for one seed.
    pub run: fn(u64, BootFn<E>) -> Result<Report, Failure>,
}

/// Every named scenario.
pub fn all<E: Engine>() -> Vec<Scenario<E>> {
    vec![
        Scenario {
            name: "initial-election",
            run: initial_election::<E>,
        },
        Scenario {
            name: "re-election",
            run: re_election::<E>,
        },
        Scenario {
            name: "many-elections-7",
            run: many_elections_7::<E>,
        },
        Scenario {
            name: "basic-agreement",
            run: basic_agreement::<E>,
        },
        Scenario {
            name: "follower-down",
            run: follower_down::<E>,
        },
        Scenario {
            name: "no-quorum-no-agreement",
            run: no_quorum_no_agreement::<E>,
        },
        Scenario {
            name: "rejoin-partitioned-leader",
            run: rejoin_partitioned_leader::<E>,
        },
        Scenario {
            name: "persistence-crashes",
            run: persistence_crashes::<E>,
        },
        Scenario {
            name: "figure8",
            run: figure8::<E>,
        },
        Scenario {
            name: "concurrent-proposals",
            run: concurrent_proposals::<E>,
        },
        Scenario {
            name: "backup",
            run: backup::<E>,
        },
        Scenario {
            name: "figure8-unreliable",
            run: figure8_unreliable::<E>,
        },
        Scenario {
            name: "unreliable-churn",
            run: unreliable_churn::<E>,
        },
        Scenario {
            name: "snapshot-install-lossy",
            run: snapshot_install_lossy::<E>,
        },
        Scenario {
            name: "snapshot-install-crashes",
            run: snapshot_install_crashes::<E>,
        },
        Scenario {
            name: "membership-joint",
            run: membership_joint::<E>,
        },
        Scenario {
            name: "membership-single-server",
            run: membership_single_server::<E>,
        },
        Scenario {
            name: "acceptor-restart",
            run: acceptor_restart::<E>,
        },
        Scenario {
            name: "leadership-transfer",
            run: leadership_transfer::<E>,
        },
    ]
}

/// A quiet cluster with some network delay and disk latency drawn from the seed.
fn quiet<E: Engine>(seed: u64, members: u64, boot: BootFn<E>) -> Sim<E> {
    quiet_with_clients(seed, members, 3, boot)
}

/// [`quiet`] with `clients` clients (0: only the scenario's own writes).
fn quiet_with_clients<E: Engine>(seed: u64, members: u64, clients: u64, boot: BootFn<E>) -> Sim<E> {
    let mut options = SimOptions::calm(members);
    options.clients = clients;
    options.faults = FaultProfile {
        delay_max: 2 * MS + seed % 10 * MS,
        disk_latency_max: seed % 3 * MS,
        ..FaultProfile::none()
    };
    Sim::new(seed, options, boot).without_random_faults()
}

fn fail(seed: u64, scenario: &'static str, detail: String) -> Failure {
    Failure {
        seed,
        checker: scenario,
        detail,
        trace: Vec::new(),
    }
}

/// Raft §5.2: a leader is elected within a few election timeouts.
pub fn initial_election<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet(seed, 3, boot);
    let all: Vec<NodeId> = (1..=3).collect();
    if sim.wait_for_leader(&all, 2_000 * MS).is_none() {
        return Err(fail(
            seed,
            "initial-election",
            "no leader within 2 s".into(),
        ));
    }
    sim.finish_scenario(1_000 * MS)
}

/// Raft §5.2: when the leader is cut off, the rest elect another; when it returns, it follows.
pub fn re_election<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet(seed, 3, boot);
    let all: Vec<NodeId> = (1..=3).collect();
    let first = sim
        .wait_for_leader(&all, 2_000 * MS)
        .ok_or_else(|| fail(seed, "re-election", "no first leader".into()))?;
    sim.isolate(first);
    let rest: Vec<NodeId> = all.iter().copied().filter(|&id| id != first).collect();
    if sim.wait_for_leader(&rest, 3_000 * MS).is_none() {
        return Err(fail(
            seed,
            "re-election",
            "the majority elected nobody".into(),
        ));
    }
    sim.heal();
    sim.finish_scenario(2_000 * MS)
}

/// Many elections on seven members: random members are cut off and rejoin, repeatedly.
pub fn many_elections_7<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet(seed, 7, boot);
    for round in 0..10u64 {
        let side: BTreeSet<NodeId> = (1..=7)
            .filter(|id| (seed.wrapping_mul(31) + round * 7 + id).is_multiple_of(3))
            .collect();
        sim.partition(&side);
        sim.run_for(400 * MS);
        sim.heal();
        sim.run_for(300 * MS);
    }
    sim.finish_scenario(3_000 * MS)
}

/// Basic agreement: writes commit and every member applies them.
pub fn basic_agreement<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet(seed, 5, boot);
    sim.run_for(2_000 * MS);
    sim.finish_scenario(2_000 * MS)
}

/// Agreement with a follower down: the rest keep committing.
pub fn follower_down<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet(seed, 3, boot);
    let all: Vec<NodeId> = (1..=3).collect();
    let leader = sim
        .wait_for_leader(&all, 2_000 * MS)
        .ok_or_else(|| fail(seed, "follower-down", "no leader".into()))?;
    let follower = all
        .iter()
        .copied()
        .find(|&id| id != leader)
        .expect("3 members");
    sim.crash(follower);
    let before = sim.checker.highest_applied();
    sim.run_for(1_000 * MS);
    if sim.checker.highest_applied() <= before {
        return Err(fail(
            seed,
            "follower-down",
            "nothing committed with one follower down".into(),
        ));
    }
    sim.restart(follower);
    sim.finish_scenario(2_000 * MS)
}

/// No agreement without a quorum: with a majority down, nothing new commits.
pub fn no_quorum_no_agreement<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet(seed, 5, boot);
    let all: Vec<NodeId> = (1..=5).collect();
    let leader = sim
        .wait_for_leader(&all, 2_000 * MS)
        .ok_or_else(|| fail(seed, "no-quorum", "no leader".into()))?;
    let others: Vec<NodeId> = all.iter().copied().filter(|&id| id != leader).collect();
    for &id in &others[..3] {
        sim.crash(id);
    }
    sim.run_for(50 * MS);
    let before = sim.checker.highest_applied();
    for value in 0..5 {
        sim.propose_write(leader, 1, value);
    }
    sim.run_for(1_000 * MS);
    if sim.checker.highest_applied() > before {
        return Err(fail(
            seed,
            "no-quorum",
            "an entry committed without a quorum".into(),
        ));
    }
    sim.finish_scenario(3_000 * MS)
}

/// A partitioned leader keeps accepting writes it cannot commit; when it rejoins, it steps down
/// and its uncommitted entries are replaced.
pub fn rejoin_partitioned_leader<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet(seed, 3, boot);
    let all: Vec<NodeId> = (1..=3).collect();
    let old = sim
        .wait_for_leader(&all, 2_000 * MS)
        .ok_or_else(|| fail(seed, "rejoin", "no leader".into()))?;
    sim.isolate(old);
    for value in 0..3 {
        sim.propose_write(old, 7, 100 + value);
    }
    let rest: Vec<NodeId> = all.iter().copied().filter(|&id| id != old).collect();
    let new = sim
        .wait_for_leader(&rest, 3_000 * MS)
        .ok_or_else(|| fail(seed, "rejoin", "no new leader".into()))?;
    for value in 0..3 {
        sim.propose_write(new, 7, 200 + value);
    }
    sim.run_for(300 * MS);
    sim.heal();
    sim.finish_scenario(3_000 * MS)
}

/// Persistence across crashes: members crash and restart one, two and three at a time; every
/// committed entry survives.
pub fn persistence_crashes<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet(seed, 3, boot);
    for crashes in 1..=3u64 {
        sim.run_for(500 * MS);
        for id in 1..=crashes {
            sim.crash(1 + (id + seed) % 3);
        }
        sim.run_for(100 * MS);
        for id in 1..=3 {
            sim.restart(id);
        }
    }
    sim.finish_scenario(3_000 * MS)
}

/// Raft §5.4.2, Figure 8: an entry of an earlier term that reaches a majority must not be
/// committed by counting replicas, because a member holding a later-term entry at that index
/// can still be elected and overwrite it.
///
/// (a) leader L1 replicates entry A only to S2; (b) L1 is cut off, L2 (without A) is elected and
/// appends B, which reaches nobody; (c) L1 returns, is elected, and gets A onto a third member,
/// then is cut off; (d) L2 returns and is elected. A correct engine never commits A in (c), so
/// L2 may overwrite it; an engine that counts replicas commits A, and then loses it.
pub fn figure8<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet_with_clients(seed, 5, 0, boot);
    let all: Vec<NodeId> = (1..=5).collect();
    let l1 = sim
        .wait_for_leader(&all, 2_000 * MS)
        .ok_or_else(|| fail(seed, "figure8", "no first leader".into()))?;
    sim.run_for(100 * MS);
    let others: Vec<NodeId> = all.iter().copied().filter(|&id| id != l1).collect();
    let s2 = others[(seed % 4) as usize];
    // (a) A reaches only S2.
    sim.connect_only(l1, &[s2]);
    sim.propose_write(l1, 8, 1);
    sim.run_for(50 * MS);
    // (b) L1 and S2 are cut off; the other three elect L2, which appends B and is cut off.
    sim.isolate(l1);
    sim.isolate(s2);
    let three: Vec<NodeId> = others.iter().copied().filter(|&id| id != s2).collect();
    let l2 = sim
        .wait_for_leader(&three, 3_000 * MS)
        .ok_or_else(|| fail(seed, "figure8", "no second leader".into()))?;
    sim.isolate(l2);
    sim.propose_write(l2, 8, 2);
    sim.run_for(50 * MS);
    // (c) L1 returns with the two members that hold neither A nor B (S2 stays away, so that
    // only L1 can win), is elected, and replicates A to them: A is on a majority.
    let pair: Vec<NodeId> = three.iter().copied().filter(|&id| id != l2).collect();
    sim.heal();
    sim.isolate(l2);
    sim.isolate(s2);
    if sim.wait_for_leader(&[l1], 3_000 * MS).is_none() {
        // A correct engine gets here: L2's no-op of term 2 reached the pair in (b), so L1 (last
        // term 1) cannot win their votes, and the state of Figure 8 (c) cannot arise.
        return sim.finish_scenario(3_000 * MS);
    }
    // Once the pair holds everything L1 has, L1's outgoing links are cut, so that it learns of
    // their acknowledgements but cannot announce a commit (S1 crashing in Figure 8 (c) before
    // it tells anyone).
    let last = sim.engine(l1).map_or(0, |e| e.status().last_index);
    let deadline = sim.now() + 500 * MS;
    while sim.now() < deadline
        && !pair.iter().all(|&id| {
            sim.engine(id)
                .is_some_and(|e| e.status().last_index >= last)
        })
    {
        sim.run_for(100);
    }
    for &id in &all {
        if id != l1 {
            sim.cut.insert((l1, id));
        }
    }
    sim.run_for(50 * MS);
    // (d) L1 is cut off; L2 and S2 return. Any other leader is crashed and restarted (its log
    // unchanged) until L2, whose log ends with the later term, is elected and overwrites A.
    sim.heal();
    sim.isolate(l1);
    for _ in 0..10 {
        sim.run_for(300 * MS);
        match sim.leader_among_connected() {
            Some(leader) if leader == l2 => break,
            Some(leader) => {
                sim.crash(leader);
                sim.restart(leader);
            }
            None => {}
        }
    }
    sim.run_for(1_000 * MS);
    sim.finish_scenario(3_000 * MS)
}

/// A cluster with faults drawn from `faults`, run through the usual swarm phases.
fn faulty<E: Engine>(seed: u64, members: u64, faults: FaultProfile, boot: BootFn<E>) -> Sim<E> {
    let mut options = SimOptions::calm(members);
    options.safety_phase = 4_000 * MS;
    options.liveness_phase = 5_000 * MS;
    options.faults = faults;
    Sim::new(seed, options, boot)
}

/// Many clients propose at once, on a quiet network.
pub fn concurrent_proposals<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet_with_clients(seed, 5, 10, boot);
    sim.run_for(2_000 * MS);
    sim.finish_scenario(2_000 * MS)
}

/// Fast backtracking (Raft §5.3): a leader cut off with one follower appends 50 entries that
/// never commit, while the majority commits 50 others; after healing, the conflicting entries
/// are replaced.
pub fn backup<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet_with_clients(seed, 5, 0, boot);
    let all: Vec<NodeId> = (1..=5).collect();
    let old = sim
        .wait_for_leader(&all, 2_000 * MS)
        .ok_or_else(|| fail(seed, "backup", "no leader".into()))?;
    let buddy = all
        .iter()
        .copied()
        .find(|&id| id != old)
        .expect("5 members");
    let side: BTreeSet<NodeId> = [old, buddy].into_iter().collect();
    sim.partition(&side);
    for value in 0..50 {
        sim.propose_write(old, 1, value);
    }
    sim.run_for(100 * MS);
    let majority: Vec<NodeId> = all
        .iter()
        .copied()
        .filter(|id| !side.contains(id))
        .collect();
    let new = sim
        .wait_for_leader(&majority, 3_000 * MS)
        .ok_or_else(|| fail(seed, "backup", "the majority elected nobody".into()))?;
    for value in 0..50 {
        sim.propose_write(new, 2, value);
    }
    sim.run_for(500 * MS);
    sim.heal();
    sim.finish_scenario(3_000 * MS)
}

/// Leader churn on an unreliable network, after the classic "Figure 8 (unreliable)" test.
pub fn figure8_unreliable<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let faults = FaultProfile {
        loss: 0.1,
        duplicate: 0.05,
        delay_max: 30 * MS,
        disk_latency_max: 2 * MS,
        churn: true,
        ..FaultProfile::none()
    };
    faulty(seed, 5, faults, boot).run()
}

/// Random crashes, restarts and partitions on a lossy network.
pub fn unreliable_churn<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let faults = FaultProfile {
        loss: 0.1,
        duplicate: 0.05,
        delay_max: 20 * MS,
        disk_latency_max: 5 * MS,
        crash: 0.15,
        restart: 0.4,
        partition: 0.1,
        heal: 0.3,
        ..FaultProfile::none()
    };
    faulty(seed, 5, faults, boot).run()
}

/// Snapshots every 10 entries on a lossy network: lagging members must install them.
pub fn snapshot_install_lossy<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let faults = FaultProfile {
        loss: 0.15,
        delay_max: 10 * MS,
        partition: 0.1,
        heal: 0.2,
        snapshot_interval: Some(10),
        ..FaultProfile::none()
    };
    faulty(seed, 3, faults, boot).run()
}

/// Snapshots every 10 entries with crashes: a member may crash while installing one.
pub fn snapshot_install_crashes<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let faults = FaultProfile {
        loss: 0.02,
        delay_max: 10 * MS,
        disk_latency_max: 5 * MS,
        crash: 0.15,
        restart: 0.5,
        snapshot_interval: Some(10),
        ..FaultProfile::none()
    };
    faulty(seed, 3, faults, boot).run()
}

/// Proposes `change` on whoever leads, retrying until it is accepted or `timeout` passes.
fn change_membership<E: Engine>(sim: &mut Sim<E>, change: ConfChange, timeout: Micros) -> bool {
    let end = sim.now() + timeout;
    while sim.now() < end {
        if let Some(leader) = sim.leader_among_connected()
            && sim
                .engine_mut(leader)
                .is_some_and(|e| e.propose_membership_change(change.clone()).is_ok())
        {
            return true;
        }
        sim.run_for(20 * MS);
    }
    false
}

/// Waits until the leader's configuration satisfies `done`, and so does that of a majority of
/// its voters (so the configuration entry is replicated on a quorum).
fn wait_for_membership<E: Engine>(
    sim: &mut Sim<E>,
    timeout: Micros,
    done: impl Fn(&synod_core::Membership) -> bool,
) -> bool {
    let end = sim.now() + timeout;
    while sim.now() < end {
        let settled = sim
            .leader_among_connected()
            .and_then(|id| sim.engine(id))
            .map(|e| e.status().membership)
            .is_some_and(|m| {
                let holding = m
                    .voters
                    .iter()
                    .filter(|&&id| sim.engine(id).is_some_and(|e| done(&e.status().membership)))
                    .count();
                done(&m) && holding * 2 > m.voters.len()
            });
        if settled {
            return true;
        }
        sim.run_for(20 * MS);
    }
    false
}

/// A spare member with an empty disk, ready to be added.
fn add_spare<E: Engine>(sim: &mut Sim<E>, id: NodeId) {
    sim.add_node(id, Disk::new(SnapshotMeta::default()));
}

fn lossy<E: Engine>(sim: &mut Sim<E>) {
    sim.set_unreliable(0.05, 0.02);
    sim.options.faults.delay_max = 10 * MS;
    sim.options.faults.disk_latency_max = 3 * MS;
}

/// Joint consensus under message loss and a crash: {1,2,3} becomes {3,4,5}, which removes
/// whoever of 1 and 2 leads.
pub fn membership_joint<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet(seed, 3, boot);
    lossy(&mut sim);
    add_spare(&mut sim, 4);
    add_spare(&mut sim, 5);
    sim.run_for(500 * MS);
    let change = ConfChange::Joint {
        voters: [3, 4, 5].into_iter().collect(),
        learners: BTreeSet::new(),
    };
    if !change_membership(&mut sim, change.clone(), 3_000 * MS) {
        return Err(fail(
            seed,
            "membership-joint",
            "the change was never accepted".into(),
        ));
    }
    sim.run_for(seed % 200 * MS);
    let victim = 1 + seed % 5;
    sim.crash(victim);
    sim.run_for(300 * MS);
    sim.restart(victim);
    // A change that was not yet committed when its leader crashed may be lost: propose it
    // again whenever the leader is back at the old configuration.
    let target: BTreeSet<NodeId> = [3, 4, 5].into_iter().collect();
    let mut reached = false;
    for _ in 0..5 {
        if wait_for_membership(&mut sim, 2_000 * MS, |m| {
            !m.is_joint() && m.voters == target
        }) {
            reached = true;
            break;
        }
        let lost = sim
            .leader_among_connected()
            .and_then(|id| sim.engine(id))
            .is_some_and(|e| e.status().membership.voters == [1, 2, 3].into_iter().collect());
        if lost {
            change_membership(&mut sim, change.clone(), 3_000 * MS);
        }
    }
    if !reached {
        let states: Vec<String> = (1..=5)
            .filter_map(|id| {
                sim.engine(id)
                    .map(|e| format!("\n    {id}: {:?}", e.status()))
            })
            .collect();
        return Err(fail(
            seed,
            "membership-joint",
            format!("never reached {{3,4,5}}:{}", states.concat()),
        ));
    }
    sim.finish_scenario(3_000 * MS)
}

/// Single-server changes under loss: add a learner, promote it, then remove the leader.
pub fn membership_single_server<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet(seed, 3, boot);
    lossy(&mut sim);
    add_spare(&mut sim, 4);
    sim.run_for(500 * MS);
    if !change_membership(&mut sim, ConfChange::AddLearner(4), 3_000 * MS)
        || !wait_for_membership(&mut sim, 5_000 * MS, |m| m.learners.contains(&4))
    {
        return Err(fail(
            seed,
            "membership-single-server",
            "learner 4 never added".into(),
        ));
    }
    if !change_membership(&mut sim, ConfChange::AddVoter(4), 3_000 * MS)
        || !wait_for_membership(&mut sim, 5_000 * MS, |m| m.voters.contains(&4))
    {
        return Err(fail(
            seed,
            "membership-single-server",
            "4 never promoted".into(),
        ));
    }
    let leader = sim
        .leader_among_connected()
        .ok_or_else(|| fail(seed, "membership-single-server", "no leader".into()))?;
    if !change_membership(&mut sim, ConfChange::Remove(leader), 3_000 * MS)
        || !wait_for_membership(&mut sim, 5_000 * MS, |m| !m.contains(leader))
    {
        return Err(fail(
            seed,
            "membership-single-server",
            "the leader was never removed".into(),
        ));
    }
    sim.finish_scenario(3_000 * MS)
}

/// Leadership transfers to random members on a lossy network, with a pause.
pub fn leadership_transfer<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet(seed, 5, boot);
    lossy(&mut sim);
    for round in 0..8u64 {
        sim.run_for(300 * MS);
        if let Some(leader) = sim.leader_among_connected() {
            let to = 1 + (seed + round) % 5;
            if let Some(engine) = sim.engine_mut(leader) {
                let _ = engine.transfer_leadership(to);
            }
        }
        if round == 4 {
            sim.pause(1 + seed % 5, 200 * MS);
        }
    }
    sim.finish_scenario(3_000 * MS)
}

/// "Paxos Made Simple" §3 (and Raft §5.1 for votes): an acceptor must remember its promise
/// even if it fails and restarts.
///
/// The leader L is cut off from the other two, which time out; one campaigns and the other, X,
/// promises (or votes). X crashes the moment it has answered and restarts at once, while the
/// new leader's messages to X are cut and L's are let through again, and L keeps proposing. An
/// acceptor that forgot its promise accepts L's older ballot, so L's values are chosen; then the
/// new leader reaches X and gets its own values chosen at the same slots.
pub fn acceptor_restart<E: Engine>(seed: u64, boot: BootFn<E>) -> Result<Report, Failure> {
    let mut sim = quiet_with_clients(seed, 3, 0, boot);
    let all: Vec<NodeId> = (1..=3).collect();
    let l = sim
        .wait_for_leader(&all, 2_000 * MS)
        .ok_or_else(|| fail(seed, "acceptor-restart", "no first leader".into()))?;
    sim.propose_write(l, 9, 1);
    sim.run_for(100 * MS);
    let others: Vec<NodeId> = all.iter().copied().filter(|&id| id != l).collect();
    for &id in &others {
        sim.cut.insert((l, id));
        sim.cut.insert((id, l));
    }
    let term_of = |sim: &Sim<E>, id: NodeId| sim.engine(id).map(|e| e.status().soft_state);
    let before = others
        .iter()
        .filter_map(|&id| term_of(&sim, id).map(|s| s.term))
        .max()
        .unwrap_or(0);
    // Wait, in small steps, for a member that answered someone else's campaign.
    let deadline = sim.now() + 3_000 * MS;
    let mut answered = None;
    while sim.now() < deadline && answered.is_none() {
        sim.run_for(100);
        answered = others.iter().copied().find(|&id| {
            term_of(&sim, id).is_some_and(|s| s.role == Role::Follower && s.term > before)
        });
    }
    let Some(x) = answered else {
        return sim.finish_scenario(3_000 * MS);
    };
    let n = others
        .iter()
        .copied()
        .find(|&id| id != x)
        .expect("two others");
    sim.crash(x);
    sim.restart(x);
    sim.cut.insert((n, x));
    sim.cut.remove(&(l, x));
    sim.cut.remove(&(x, l));
    for value in 0..5 {
        sim.propose_write(l, 9, 10 + value);
        sim.run_for(20 * MS);
    }
    sim.run_for(300 * MS);
    sim.cut.remove(&(n, x));
    if sim.wait_for_leader(&[n], 1_000 * MS).is_some() {
        for value in 0..5 {
            sim.propose_write(n, 9, 100 + value);
            sim.run_for(20 * MS);
        }
    }
    sim.run_for(500 * MS);
    sim.finish_scenario(3_000 * MS)
}
