//! Engine configuration.

use synod_core::NodeId;
use thiserror::Error;

use crate::ballot::MAX_NODE_ID;

/// Configuration of one Multi-Paxos member.
///
/// The defaults assume a 10 ms tick, as the Raft engine's do: a follower that hears nothing from
/// a leader for 150–300 ms starts Phase 1, and the leader heartbeats every 50 ms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This member's id: 1 to [`MAX_NODE_ID`], since ids are packed into ballots.
    pub id: NodeId,
    /// The minimum failure-detector timeout, in ticks. Each member draws its timeout from
    /// `[election_ticks, 2 × election_ticks)` and draws again every time it starts Phase 1, so
    /// competing proposers back off by different amounts.
    pub election_ticks: u32,
    /// Ticks between leader heartbeats. Must be less than `election_ticks`.
    pub heartbeat_ticks: u32,
    /// Flexible Paxos (Howard, Malkhi & Spiegelman 2016): the size of a Phase-2 quorum. With N
    /// voters, Phase 1 then needs `N - phase2_quorum + 1`, so that every Phase-1 quorum meets
    /// every Phase-2 quorum. A size above N is taken as N. `None`: a majority for both phases.
    pub phase2_quorum: Option<usize>,
    /// The most entries in one Accept message.
    pub max_entries_per_message: usize,
    /// The most entries sent to one acceptor and not yet acknowledged.
    pub max_inflight_entries: usize,
    /// Check the engine's invariants after every call, panicking with context on a violation.
    /// On by default in debug builds; tests and the simulator turn it on everywhere.
    pub check_invariants: bool,
    /// A deliberate bug to turn on (simulator only: proves the checkers can fail).
    #[cfg(feature = "mutants")]
    pub mutant: Option<crate::Mutant>,
}

/// A configuration value that makes no sense.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Node ids must fit in a ballot.
    #[error("node id must be between 1 and {MAX_NODE_ID}, got {0}")]
    BadId(NodeId),
    /// Counts must be positive.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// The heartbeat interval must be shorter than the failure-detector timeout.
    #[error("heartbeat_ticks ({heartbeat}) must be less than election_ticks ({election})")]
    HeartbeatNotShorter {
        /// Heartbeat interval.
        heartbeat: u32,
        /// Timeout.
        election: u32,
    },
}

impl Config {
    /// The defaults for member `id`.
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            election_ticks: 15,
            heartbeat_ticks: 5,
            phase2_quorum: None,
            max_entries_per_message: 4096,
            max_inflight_entries: 1 << 16,
            check_invariants: cfg!(debug_assertions),
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }

    /// Checks that the values fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 || self.id > MAX_NODE_ID {
            return Err(ConfigError::BadId(self.id));
        }
        for (name, value) in [
            ("election_ticks", self.election_ticks as usize),
            ("heartbeat_ticks", self.heartbeat_ticks as usize),
            ("max_entries_per_message", self.max_entries_per_message),
            ("max_inflight_entries", self.max_inflight_entries),
            ("phase2_quorum", self.phase2_quorum.unwrap_or(1)),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.heartbeat_ticks >= self.election_ticks {
            return Err(ConfigError::HeartbeatNotShorter {
                heartbeat: self.heartbeat_ticks,
                election: self.election_ticks,
            });
        }
        Ok(())
    }

    /// The Phase-1 and Phase-2 quorum sizes for `voters` voters. Their sum always exceeds
    /// `voters`, so any two quorums of different phases intersect.
    pub fn quorums(&self, voters: usize) -> (usize, usize) {
        let majority = synod_core::quorum::majority(voters);
        let (phase1, phase2) = match self.phase2_quorum {
            Some(size) => {
                let phase2 = size.clamp(1, voters.max(1));
                ((voters + 1).saturating_sub(phase2).max(1), phase2)
            }
            None => (majority, majority),
        };
        debug_assert!(voters == 0 || phase1 + phase2 > voters);
        (phase1, phase2)
    }

    #[cfg(feature = "mutants")]
    pub(crate) fn mutant(&self, mutant: crate::Mutant) -> bool {
        self.mutant == Some(mutant)
    }

    #[cfg(not(feature = "mutants"))]
    pub(crate) fn mutant(&self, _mutant: crate::Mutant) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flexible_quorums_always_intersect() {
        for voters in 1..=9 {
            for phase2 in 1..=10 {
                let config = Config {
                    phase2_quorum: Some(phase2),
                    ..Config::new(1)
                };
                let (q1, q2) = config.quorums(voters);
                assert!(q1 + q2 > voters, "{voters} voters: {q1} + {q2}");
                assert!(q1 <= voters && q2 <= voters);
            }
            let majority = voters / 2 + 1;
            assert_eq!(Config::new(1).quorums(voters), (majority, majority));
        }
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(Config::new(0).validate(), Err(ConfigError::BadId(0)));
        assert_eq!(
            Config::new(70_000).validate(),
            Err(ConfigError::BadId(70_000))
        );
        let config = Config {
            heartbeat_ticks: 20,
            ..Config::new(1)
        };
        assert!(config.validate().is_err());
    }
}
