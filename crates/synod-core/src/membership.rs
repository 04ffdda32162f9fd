//! Cluster configurations and how they change.
//!
//! A configuration names the voters and the learners. During a joint-consensus change (Raft §6,
//! thesis §4.3) it also names the outgoing voters: decisions then need a majority of the incoming
//! voters *and* a majority of the outgoing voters. Single-server changes (thesis §4.1) add or
//! remove one voter at a time and never pass through a joint configuration.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::NodeId;

/// A cluster configuration.
///
/// Invariants (checked by [`Membership::validate`]):
/// - the incoming voters and the learners are disjoint;
/// - if the configuration is joint, the incoming voter set is not empty.
#[derive(Clone, Debug, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The voters (of the new configuration, while joint).
    pub voters: BTreeSet<NodeId>,
    /// The voters of the old configuration while a joint change is in progress; empty otherwise.
    pub voters_outgoing: BTreeSet<NodeId>,
    /// Members that receive the log but do not vote. A learner can be promoted to a voter.
    pub learners: BTreeSet<NodeId>,
}

/// A requested change of configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChange {
    /// Single-server change: add a voter, or promote a learner to a voter.
    AddVoter(NodeId),
    /// Single-server change: add a learner, or demote a voter to a learner.
    AddLearner(NodeId),
    /// Single-server change: remove a member, voter or learner.
    Remove(NodeId),
    /// Joint consensus: move to a configuration with exactly these voters and learners, passing
    /// through the joint configuration C_old,new. The leader leaves the joint configuration on its
    /// own once C_old,new is committed.
    Joint {
        /// The voters of C_new.
        voters: BTreeSet<NodeId>,
        /// The learners of C_new.
        learners: BTreeSet<NodeId>,
    },
}

/// Why a configuration change was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MembershipError {
    /// Node id zero is reserved.
    #[error("node id 0 is reserved")]
    ZeroNodeId,
    /// A joint change is in progress; it must finish before another change starts.
    #[error("a joint configuration change is in progress")]
    JointInProgress,
    /// The change would leave no voters.
    #[error("the change would leave no voters")]
    NoVoters,
    /// The change would not change anything.
    #[error("the change does not change the configuration")]
    NoChange,
    /// The node named is not a member.
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// A node was named both voter and learner.
    #[error("node {0} cannot be both a voter and a learner")]
    VoterAndLearner(NodeId),
}

impl Membership {
    /// A configuration with these voters and no learners.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership {
            voters: voters.into_iter().collect(),
            ..Membership::default()
        }
    }

    /// Whether this is a joint configuration C_old,new.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Whether `id` votes in this configuration (in either half of a joint one).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// Whether `id` is a learner and not also an outgoing voter.
    pub fn is_learner_only(&self, id: NodeId) -> bool {
        self.learners.contains(&id) && !self.is_voter(id)
    }

    /// Whether `id` is a member in any role.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Every member, voters and learners, once each, in ascending order.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(&self.voters_outgoing);
        all.extend(&self.learners);
        all
    }

    /// Every voter of either half, once each, in ascending order.
    pub fn all_voters(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.voters_outgoing).copied().collect()
    }

    /// The number of distinct members.
    pub fn member_count(&self) -> usize {
        self.members().len()
    }

    /// Checks the structural invariants of a configuration.
    pub fn validate(&self) -> Result<(), MembershipError> {
        if self.contains(0) {
            return Err(MembershipError::ZeroNodeId);
        }
        if let Some(&id) = self.voters.intersection(&self.learners).next() {
            return Err(MembershipError::VoterAndLearner(id));
        }
        if self.is_joint() && self.voters.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        Ok(())
    }

    /// The configuration that results from applying `change` to this one.
    ///
    /// A single-server change is refused while joint; a joint change is refused while joint.
    pub fn apply(&self, change: &ConfChange) -> Result<Membership, MembershipError> {
        if self.is_joint() {
            return Err(MembershipError::JointInProgress);
        }
        let mut next = self.clone();
        match change {
            ConfChange::AddVoter(id) => {
                if *id == 0 {
                    return Err(MembershipError::ZeroNodeId);
                }
                next.learners.remove(id);
                next.voters.insert(*id);
            }
            ConfChange::AddLearner(id) => {
                if *id == 0 {
                    return Err(MembershipError::ZeroNodeId);
                }
                next.voters.remove(id);
                next.learners.insert(*id);
            }
            ConfChange::Remove(id) => {
                if !self.contains(*id) {
                    return Err(MembershipError::NotMember(*id));
                }
                next.voters.remove(id);
                next.learners.remove(id);
            }
            ConfChange::Joint { voters, learners } => {
                next.voters_outgoing = self.voters.clone();
                next.voters = voters.clone();
                next.learners = learners.clone();
                if voters.is_empty() {
                    return Err(MembershipError::NoVoters);
                }
            }
        }
        if next.voters.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        if next == *self || (next.voters == next.voters_outgoing && next.learners == self.learners)
        {
            return Err(MembershipError::NoChange);
        }
        next.validate()?;
        Ok(next)
    }

    /// The configuration C_new that ends a joint change. Leaving a non-joint configuration
    /// returns it unchanged.
    pub fn leave_joint(&self) -> Membership {
        Membership {
            voters: self.voters.clone(),
            voters_outgoing: BTreeSet::new(),
            learners: self.learners.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn single_server_changes_move_one_voter() {
        let m = Membership::with_voters([1, 2, 3]);
        let added = m.apply(&ConfChange::AddLearner(4)).unwrap();
        assert_eq!(added.learners, set(&[4]));
        let promoted = added.apply(&ConfChange::AddVoter(4)).unwrap();
        assert_eq!(promoted.voters, set(&[1, 2, 3, 4]));
        assert!(promoted.learners.is_empty());
        let removed = promoted.apply(&ConfChange::Remove(1)).unwrap();
        assert_eq!(removed.voters, set(&[2, 3, 4]));
        assert_eq!(
            removed.apply(&ConfChange::Remove(9)),
            Err(MembershipError::NotMember(9))
        );
        assert_eq!(
            m.apply(&ConfChange::AddVoter(2)),
            Err(MembershipError::NoChange)
        );
    }

    #[test]
    fn joint_change_enters_and_leaves() {
        let m = Membership::with_voters([1, 2, 3]);
        let joint = m
            .apply(&ConfChange::Joint {
                voters: set(&[2, 3, 4]),
                learners: set(&[5]),
            })
            .unwrap();
        assert!(joint.is_joint());
        assert!(joint.is_voter(1) && joint.is_voter(4));
        assert_eq!(
            joint.apply(&ConfChange::AddVoter(6)),
            Err(MembershipError::JointInProgress)
        );
        let new = joint.leave_joint();
        assert!(!new.is_joint());
        assert!(!new.contains(1));
        assert_eq!(new.learners, set(&[5]));
    }

    #[test]
    fn changes_that_leave_no_voters_are_refused() {
        let m = Membership::with_voters([1]);
        assert_eq!(
            m.apply(&ConfChange::Remove(1)),
            Err(MembershipError::NoVoters)
        );
        assert_eq!(
            m.apply(&ConfChange::Joint {
                voters: BTreeSet::new(),
                learners: BTreeSet::new()
            }),
            Err(MembershipError::NoVoters)
        );
        assert_eq!(
            m.apply(&ConfChange::Joint {
                voters: set(&[2]),
                learners: set(&[2])
            }),
            Err(MembershipError::VoterAndLearner(2))
        );
    }
}
