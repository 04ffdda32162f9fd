//! Engine configuration.

use synod_core::NodeId;
use thiserror::Error;

/// Configuration of one Raft member.
///
/// The defaults assume a 10 ms tick: elections time out after 150–300 ms, as in the Raft paper
/// (§5.6), and the leader heartbeats every 50 ms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This member's id (never 0).
    pub id: NodeId,
    /// The minimum election timeout, in ticks. Each member draws its timeout from
    /// `[election_ticks, 2 × election_ticks)` and draws again at every new term.
    pub election_ticks: u32,
    /// Ticks between leader heartbeats. Must be less than `election_ticks`.
    pub heartbeat_ticks: u32,
    /// Run a pre-vote round before an election (thesis §9.6), so that a member that was
    /// partitioned away cannot inflate the term when it rejoins.
    pub pre_vote: bool,
    /// The leader steps down if it has not heard from a quorum within an election timeout, and
    /// followers ignore vote requests while they hear from a leader (thesis §6.2, §9.6).
    pub check_quorum: bool,
    /// Serve reads from a leader lease instead of a heartbeat round (thesis §6.4.1). Requires
    /// `check_quorum`.
    ///
    /// The timing assumption: for as long as an election timeout, no member's ticks run slower
    /// than the leader's by more than `lease_drift_margin_ticks`. A follower that acknowledged a
    /// heartbeat refuses votes for `election_ticks` of its own ticks after it (even across a
    /// restart), so no other leader can be elected within `election_ticks - margin` of the
    /// leader's ticks from when that heartbeat was sent.
    pub lease_read: bool,
    /// How much shorter than an election timeout the leader lease is, in ticks.
    pub lease_drift_margin_ticks: u32,
    /// When the transport reports the leader unreachable ([`crate::RaftNode::peer_unreachable`]),
    /// the surviving voters campaign one after another rather than all at once, in the order of
    /// their ids: the lowest at once, the next this many ticks later, and so on. Two pre-vote
    /// rounds that overlap can grant each other and end in a split vote, which costs a whole
    /// randomized election timeout; the stagger must therefore exceed one pre-vote round trip
    /// (plus the skew between the members' ticks). 0 lets them all campaign at once.
    pub unreachable_leader_stagger_ticks: u32,
    /// The most entries in one AppendEntries message.
    pub max_entries_per_message: usize,
    /// The most entry bytes in one AppendEntries message (at least one entry is always sent).
    pub max_bytes_per_message: usize,
    /// The most AppendEntries messages in flight to one follower.
    pub max_inflight_messages: usize,
    /// The most entry bytes in flight to one follower.
    pub max_inflight_bytes: usize,
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
    /// Node id 0 is reserved.
    #[error("node id must not be 0")]
    ZeroId,
    /// Ticks must be positive.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// The heartbeat interval must be shorter than the election timeout.
    #[error("heartbeat_ticks ({heartbeat}) must be less than election_ticks ({election})")]
    HeartbeatNotShorter {
        /// Heartbeat interval.
        heartbeat: u32,
        /// Election timeout.
        election: u32,
    },
    /// Lease reads rely on check-quorum.
    #[error("lease_read requires check_quorum")]
    LeaseWithoutCheckQuorum,
    /// The lease would be empty.
    #[error("lease_drift_margin_ticks ({margin}) must be less than election_ticks ({election})")]
    LeaseMarginTooLarge {
        /// Drift margin.
        margin: u32,
        /// Election timeout.
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
            pre_vote: true,
            check_quorum: true,
            lease_read: false,
            lease_drift_margin_ticks: 2,
            unreachable_leader_stagger_ticks: 3,
            max_entries_per_message: 4096,
            max_bytes_per_message: 1 << 20,
            max_inflight_messages: 256,
            max_inflight_bytes: 64 << 20,
            check_invariants: cfg!(debug_assertions),
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }

    /// Checks that the values fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        for (name, value) in [
            ("election_ticks", self.election_ticks as usize),
            ("heartbeat_ticks", self.heartbeat_ticks as usize),
            ("max_entries_per_message", self.max_entries_per_message),
            ("max_bytes_per_message", self.max_bytes_per_message),
            ("max_inflight_messages", self.max_inflight_messages),
            ("max_inflight_bytes", self.max_inflight_bytes),
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
        if self.lease_read && !self.check_quorum {
            return Err(ConfigError::LeaseWithoutCheckQuorum);
        }
        if self.lease_read && self.lease_drift_margin_ticks >= self.election_ticks {
            return Err(ConfigError::LeaseMarginTooLarge {
                margin: self.lease_drift_margin_ticks,
                election: self.election_ticks,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_give_150_to_300_ms_at_10_ms_ticks() {
        let config = Config::new(1);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.election_ticks * 10, 150);
        assert!(config.pre_vote && config.check_quorum);
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(Config::new(0).validate(), Err(ConfigError::ZeroId));
        let mut c = Config::new(1);
        c.heartbeat_ticks = c.election_ticks;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::HeartbeatNotShorter { .. })
        ));
        let mut c = Config::new(1);
        c.check_quorum = false;
        c.lease_read = true;
        assert_eq!(c.validate(), Err(ConfigError::LeaseWithoutCheckQuorum));
    }
}
