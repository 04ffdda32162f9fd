//! Building either consensus engine from a member's settings and recovered state.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use rand_core::SeedableRng;
use rand_xorshift::XorShiftRng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use synod_core::{Engine, Entry, Index, NodeId, SnapshotMeta};
use synod_paxos::PaxosNode;
use synod_raft::RaftNode;
use synod_storage::member::LogPolicy;

use crate::settings::EngineKind;

/// How long apart the surviving Raft voters campaign when they lose their connections to
/// the leader at the same moment (see `synod_raft::Config::unreachable_leader_stagger_ticks`).
///
/// The first-ranked survivor campaigns at once; the next must not start its pre-vote before
/// the first's pre-vote round is over, or the two may grant each other and split the vote
/// (which costs a randomised election timeout, over a second by default). A pre-vote round is
/// one round trip with no disk write, well under a millisecond between local members. The
/// members' ticks are not aligned, so the stagger is at least two ticks: with 10 ms ticks it
/// is 3, which separates the campaigns by 20 to 30 ms. It costs time only when the first
/// survivor cannot win (its log is behind, or it did not hear of the loss).
pub const UNREACHABLE_LEADER_STAGGER: Duration = Duration::from_millis(30);

/// [`UNREACHABLE_LEADER_STAGGER`] in ticks of `tick`, rounded up, and at least 2.
pub fn unreachable_leader_stagger_ticks(tick: Duration) -> u32 {
    let ticks = UNREACHABLE_LEADER_STAGGER
        .as_millis()
        .div_ceil(tick.as_millis().max(1))
        .max(2);
    u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// What an engine boots from.
#[derive(Debug)]
pub struct Boot<H> {
    /// This member.
    pub id: NodeId,
    /// Ticks of one heartbeat.
    pub heartbeat_ticks: u32,
    /// Ticks of one election timeout.
    pub election_ticks: u32,
    /// Ticks of [`UNREACHABLE_LEADER_STAGGER`].
    pub unreachable_leader_stagger_ticks: u32,
    /// The recovered hard state.
    pub hard_state: Option<H>,
    /// The snapshot the state machine was restored from.
    pub snapshot: SnapshotMeta,
    /// Log entries after it.
    pub entries: Vec<Entry>,
    /// The index the state machine has applied (the snapshot's).
    pub applied: Index,
}

/// A consensus engine the server can run.
pub trait ServerEngine:
    Engine<
        Message: Serialize + DeserializeOwned + Send + Sync + 'static,
        HardState: Send + Sync + 'static,
    > + Send
    + Sized
    + 'static
{
    /// Which engine this is.
    const KIND: EngineKind;
    /// How recovery treats log entries above the snapshot.
    const RECOVERY: LogPolicy;
    /// Builds the engine.
    fn build(boot: Boot<Self::HardState>) -> Result<Self, String>;
}

/// A seed for the engine's election timeouts, from the standard library's per-process random
/// hash keys (so that members started together do not time out together).
pub(crate) fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

impl ServerEngine for RaftNode {
    const KIND: EngineKind = EngineKind::Raft;
    const RECOVERY: LogPolicy = LogPolicy::LogMatching;

    fn build(boot: Boot<Self::HardState>) -> Result<Self, String> {
        let mut config = synod_raft::Config::new(boot.id);
        config.heartbeat_ticks = boot.heartbeat_ticks;
        config.election_ticks = boot.election_ticks;
        config.unreachable_leader_stagger_ticks = boot.unreachable_leader_stagger_ticks;
        config.check_invariants = cfg!(debug_assertions);
        let state = synod_raft::RestoreState {
            hard_state: boot.hard_state.unwrap_or_default(),
            snapshot: boot.snapshot,
            entries: boot.entries,
            applied: boot.applied,
        };
        let rng = Box::new(XorShiftRng::seed_from_u64(random_seed()));
        RaftNode::restore(config, rng, state).map_err(|e| e.to_string())
    }
}

impl ServerEngine for PaxosNode {
    const KIND: EngineKind = EngineKind::MultiPaxos;
    const RECOVERY: LogPolicy = LogPolicy::IndependentSlots;

    fn build(boot: Boot<Self::HardState>) -> Result<Self, String> {
        let mut config = synod_paxos::Config::new(boot.id);
        config.heartbeat_ticks = boot.heartbeat_ticks;
        config.election_ticks = boot.election_ticks;
        config.check_invariants = cfg!(debug_assertions);
        let state = synod_paxos::RestoreState {
            hard_state: boot.hard_state.unwrap_or_default(),
            snapshot: boot.snapshot,
            entries: boot.entries,
            applied: boot.applied,
        };
        let rng = Box::new(XorShiftRng::seed_from_u64(random_seed()));
        PaxosNode::restore(config, rng, state).map_err(|e| e.to_string())
    }
}
