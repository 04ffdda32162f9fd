//! The engines the simulator can drive, and the entry points that run one seed.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::str::FromStr;

use rand_core::SeedableRng;
use rand_xorshift::XorShiftRng;
use synod_core::NodeId;
use synod_raft::{Config, Mutant, RaftNode, RestoreState};

use super::disk::Disk;
use super::{BootFn, Failure, Report, Sim, SimOptions};

/// Which engine to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// `synod-raft`.
    Raft,
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineKind::Raft => f.write_str("raft"),
        }
    }
}

impl FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raft" => Ok(EngineKind::Raft),
            "multipaxos" => Err("the multipaxos engine does not exist yet".to_string()),
            other => Err(format!("unknown engine {other:?}; expected raft")),
        }
    }
}

/// What to run: an engine, optionally with a deliberate bug.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The engine.
    pub engine: EngineKind,
    /// A deliberate bug, to show that the checkers catch it.
    pub mutant: Option<Mutant>,
}

/// Boots Raft members from their simulated disks, with every invariant check on.
pub fn raft_boot(mutant: Option<Mutant>, configure: fn(&mut Config)) -> BootFn<RaftNode> {
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
        EngineKind::Raft => Sim::new(
            seed,
            SimOptions::swarm(seed),
            raft_boot(target.mutant, |_| {}),
        )
        .run(),
    })
}

/// Runs the named scenario for one seed.
pub fn run_scenario(target: Target, name: &str, seed: u64) -> Result<Report, Failure> {
    catch_panics(seed, || match target.engine {
        EngineKind::Raft => {
            let scenario = super::scenarios::all::<RaftNode>()
                .into_iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("unknown scenario {name:?}"));
            (scenario.run)(seed, raft_boot(target.mutant, |_| {}))
        }
    })
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
