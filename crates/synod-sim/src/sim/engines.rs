//! The engines the simulator can drive, and the entry points that run one seed.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::str::FromStr;

use rand_core::SeedableRng;
use rand_xorshift::XorShiftRng;
use synod_core::NodeId;
use synod_paxos::PaxosNode;
use synod_raft::{Config, RaftNode, RestoreState};

use super::disk::Disk;
use super::{Boot, BootFn, Failure, Report, Sim, SimOptions};

/// Which engine to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// `synod-raft`.
    Raft,
    /// `synod-paxos`.
    MultiPaxos,
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineKind::Raft => f.write_str("raft"),
            EngineKind::MultiPaxos => f.write_str("multipaxos"),
        }
    }
}

impl FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raft" => Ok(EngineKind::Raft),
            "multipaxos" => Ok(EngineKind::MultiPaxos),
            other => Err(format!(
                "unknown engine {other:?}; expected raft or multipaxos"
            )),
        }
    }
}

/// A deliberate bug in one of the engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    /// A Raft mutant.
    Raft(synod_raft::Mutant),
    /// A Multi-Paxos mutant.
    Paxos(synod_paxos::Mutant),
}

impl Mutant {
    /// The engine the mutant belongs to.
    pub fn engine(self) -> EngineKind {
        match self {
            Mutant::Raft(_) => EngineKind::Raft,
            Mutant::Paxos(_) => EngineKind::MultiPaxos,
        }
    }

    /// Every mutant of every engine.
    pub fn all() -> Vec<Mutant> {
        let raft = synod_raft::Mutant::ALL.into_iter().map(Mutant::Raft);
        let paxos = synod_paxos::Mutant::ALL.into_iter().map(Mutant::Paxos);
        raft.chain(paxos).collect()
    }
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mutant::Raft(m) => m.fmt(f),
            Mutant::Paxos(m) => m.fmt(f),
        }
    }
}

impl FromStr for Mutant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mutant::all()
            .into_iter()
            .find(|m| m.to_string() == s)
            .ok_or_else(|| {
                let names: Vec<String> = Mutant::all().iter().map(|m| m.to_string()).collect();
                format!("unknown mutant {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// What to run: an engine, optionally with a deliberate bug.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The engine.
    pub engine: EngineKind,
    /// A deliberate bug, to show that the checkers catch it. It must belong to `engine`.
    pub mutant: Option<Mutant>,
    /// Multi-Paxos only: flexible quorums with Phase-2 quorums of this size (Phase 1 then
    /// needs N minus this plus one). `None`: majorities.
    pub phase2_quorum: Option<usize>,
    /// Put every member on the real `synod-storage` (see [`super::storage`]).
    pub real_storage: bool,
}

impl Target {
    /// The engine alone, without a mutant.
    pub fn engine(engine: EngineKind) -> Self {
        Target {
            engine,
            mutant: None,
            phase2_quorum: None,
            real_storage: false,
        }
    }

    /// The mutant on its engine.
    pub fn mutant(mutant: Mutant) -> Self {
        Target {
            engine: mutant.engine(),
            mutant: Some(mutant),
            phase2_quorum: None,
            real_storage: false,
        }
    }

    fn raft(&self) -> BootFn<RaftNode> {
        BootFn {
            boot: raft_boot(self.raft_mutant(), |_| {}),
            real_storage: self.real_storage,
        }
    }

    fn paxos(&self) -> BootFn<PaxosNode> {
        BootFn {
            boot: paxos_boot(self.paxos_mutant(), self.phase2_quorum),
            real_storage: self.real_storage,
        }
    }

    fn raft_mutant(&self) -> Option<synod_raft::Mutant> {
        match self.mutant {
            Some(Mutant::Raft(m)) => Some(m),
            _ => None,
        }
    }

    fn paxos_mutant(&self) -> Option<synod_paxos::Mutant> {
        match self.mutant {
            Some(Mutant::Paxos(m)) => Some(m),
            _ => None,
        }
    }
}

/// Boots Multi-Paxos members from their simulated disks, with every invariant check on.
pub fn paxos_boot(
    mutant: Option<synod_paxos::Mutant>,
    phase2_quorum: Option<usize>,
) -> Boot<PaxosNode> {
    Box::new(
        move |id: NodeId, disk: &Disk<synod_paxos::HardState>, seed: u64| {
            let mut config = synod_paxos::Config::new(id);
            config.check_invariants = true;
            config.mutant = mutant;
            config.phase2_quorum = phase2_quorum;
            let state = synod_paxos::RestoreState {
                hard_state: disk.hard_state.unwrap_or_default(),
                snapshot: disk.snapshot.clone(),
                entries: disk.log(),
                applied: disk.snapshot.index,
            };
            let rng = Box::new(XorShiftRng::seed_from_u64(seed));
            PaxosNode::restore(config, rng, state).expect("a simulated disk always restores")
        },
    )
}

/// Boots Raft members from their simulated disks, with every invariant check on.
pub fn raft_boot(mutant: Option<synod_raft::Mutant>, configure: fn(&mut Config)) -> Boot<RaftNode> {
    Box::new(
        move |id: NodeId, disk: &Disk<synod_raft::HardState>, seed: u64| {
            let mut config = Config::new(id);
            config.check_invariants = true;
            config.mutant = mutant;
            configure(&mut config);
            let state = RestoreState {
                hard_state: disk.hard_state.unwrap_or_default(),
                snapshot: disk.snapshot.clone(),
                entries: disk.log(),
                applied: disk.snapshot.index,
            };
            let rng = Box::new(XorShiftRng::seed_from_u64(seed));
            RaftNode::restore(config, rng, state).expect("a simulated disk always restores")
        },
    )
}

/// Runs one swarm seed: the cluster, clients and faults are all drawn from the seed.
/// An engine panic (a violated internal invariant) is reported as a failure.
pub fn run_seed(target: Target, seed: u64) -> Result<Report, Failure> {
    catch_panics(seed, || match target.engine {
        EngineKind::Raft => Sim::new(seed, SimOptions::swarm(seed), target.raft()).run(),
        EngineKind::MultiPaxos => Sim::new(seed, SimOptions::swarm(seed), target.paxos()).run(),
    })
}

/// Runs the named scenario for one seed.
pub fn run_scenario(target: Target, name: &str, seed: u64) -> Result<Report, Failure> {
    catch_panics(seed, || match target.engine {
        EngineKind::Raft => {
            let scenario = find_scenario::<RaftNode>(name);
            (scenario.run)(seed, target.raft())
        }
        EngineKind::MultiPaxos => {
            let scenario = find_scenario::<PaxosNode>(name);
            (scenario.run)(seed, target.paxos())
        }
    })
}

fn find_scenario<E: synod_core::Engine>(name: &str) -> super::scenarios::Scenario<E> {
    super::scenarios::all::<E>()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("unknown scenario {name:?}"))
}

/// Runs one failover trial (see [`super::failover`]) on `engine`.
pub fn run_failover(
    engine: EngineKind,
    seed: u64,
) -> Result<super::Micros, super::failover::TrialError> {
    match engine {
        EngineKind::Raft => super::failover::failover_trial(seed, Target::engine(engine).raft()),
        EngineKind::MultiPaxos => {
            super::failover::failover_trial(seed, Target::engine(engine).paxos())
        }
    }
}

/// The names of every scenario.
pub fn scenario_names() -> Vec<&'static str> {
    super::scenarios::all::<RaftNode>()
        .iter()
        .map(|s| s.name)
        .collect()
}

/// Runs `run`, turning a panic into a [`Failure`] for `seed`.
pub fn catch_panics(
    seed: u64,
    run: impl FnOnce() -> Result<Report, Failure>,
) -> Result<Report, Failure> {
    match panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(result) => result,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            Err(Failure {
                seed,
                checker: "engine invariant",
                detail,
                trace: Vec::new(),
            })
        }
    }
}
