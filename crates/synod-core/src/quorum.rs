//! Quorum math: majority, joint and flexible quorums, as pure functions.
//!
//! Both engines decide two things by quorum: which index is committed (the largest index that a
//! quorum has acknowledged) and whether an election or Phase 1 has been won. A joint
//! configuration (Raft §6) needs a quorum of each half. Flexible Paxos (Howard et al. 2016) lets
//! the two phases use different quorum sizes, so the sizes are parameters here.
//!
//! Conventions, as in etcd's `quorum` package: an empty voter set acknowledges every index
//! (`Index::MAX`) and wins every vote, so that the outgoing half of a non-joint configuration
//! never constrains a decision.

use std::collections::BTreeSet;

use crate::membership::Membership;
use crate::types::{Index, NodeId};

/// The outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A quorum granted.
    Won,
    /// Enough voters refused that no quorum can grant any more.
    Lost,
    /// Neither yet.
    Pending,
}

/// The size of a simple majority of `voter_count` voters.
pub const fn majority(voter_count: usize) -> usize {
    voter_count / 2 + 1
}

const _: () = assert!(majority(1) == 1 && majority(2) == 2 && majority(3) == 2);
const _: () = assert!(majority(4) == 3 && majority(5) == 3 && majority(7) == 4);

/// The largest index that at least `quorum` of `voters` have acknowledged, where `acked` gives
/// each voter's acknowledged index (0 if none).
///
/// Returns `Index::MAX` for an empty voter set, and 0 if `quorum` exceeds the number of voters.
pub fn committed_index(
    voters: &BTreeSet<NodeId>,
    quorum: usize,
    acked: impl Fn(NodeId) -> Index,
) -> Index {
    if voters.is_empty() {
        return Index::MAX;
    }
    if quorum == 0 || quorum > voters.len() {
        return 0;
    }
    // Small clusters are the common case: sort on the stack.
    let mut stack = [0 as Index; 8];
    let mut heap;
    let indexes: &mut [Index] = if voters.len() <= stack.len() {
        &mut stack[..voters.len()]
    } else {
        heap = vec![0; voters.len()];
        &mut heap
    };
    for (slot, &id) in indexes.iter_mut().zip(voters) {
        *slot = acked(id);
    }
    indexes.sort_unstable_by(|a, b| b.cmp(a));
    // Descending order: the quorum-th largest acknowledgement is held by `quorum` voters.
    indexes[quorum - 1]
}

/// [`committed_index`] with a simple majority.
pub fn majority_committed_index(
    voters: &BTreeSet<NodeId>,
    acked: impl Fn(NodeId) -> Index,
) -> Index {
    committed_index(voters, majority(voters.len()), acked)
}

/// The largest index acknowledged by a majority of each half of `membership` (Raft §6).
pub fn joint_committed_index(membership: &Membership, acked: impl Fn(NodeId) -> Index) -> Index {
    let incoming = majority_committed_index(&membership.voters, &acked);
    let outgoing = majority_committed_index(&membership.voters_outgoing, &acked);
    incoming.min(outgoing)
}

/// Counts votes: `votes` gives each voter's answer, `None` if it has not answered.
///
/// An empty voter set wins.
pub fn vote_result(
    voters: &BTreeSet<NodeId>,
    quorum: usize,
    votes: impl Fn(NodeId) -> Option<bool>,
) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut granted, mut pending) = (0, 0);
    for &id in voters {
        match votes(id) {
            Some(true) => granted += 1,
            Some(false) => {}
            None => pending += 1,
        }
    }
    if granted >= quorum {
        VoteResult::Won
    } else if granted + pending >= quorum {
        VoteResult::Pending
    } else {
        VoteResult::Lost
    }
}

/// [`vote_result`] with a simple majority.
pub fn majority_vote_result(
    voters: &BTreeSet<NodeId>,
    votes: impl Fn(NodeId) -> Option<bool>,
) -> VoteResult {
    vote_result(voters, majority(voters.len()), votes)
}

/// Counts votes in a possibly joint configuration: won only if both halves are won, lost if
/// either half is lost.
pub fn joint_vote_result(
    membership: &Membership,
    votes: impl Fn(NodeId) -> Option<bool>,
) -> VoteResult {
    let incoming = majority_vote_result(&membership.voters, &votes);
    let outgoing = majority_vote_result(&membership.voters_outgoing, &votes);
    match (incoming, outgoing) {
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        _ => VoteResult::Pending,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Naive reference: the largest index `i` (among the acknowledged values and 0) such that at
    /// least `quorum` voters acknowledged `i` or more.
    fn naive_committed(acks: &BTreeMap<NodeId, Index>, quorum: usize) -> Index {
        if acks.is_empty() {
            return Index::MAX;
        }
        let mut best = 0;
        for &candidate in acks.values() {
            let count = acks.values().filter(|&&a| a >= candidate).count();
            if count >= quorum && candidate > best {
                best = candidate;
            }
        }
        best
    }

    /// Naive reference: try every way the pending voters could still answer.
    fn naive_vote(votes: &BTreeMap<NodeId, Option<bool>>, quorum: usize) -> VoteResult {
        if votes.is_empty() {
            return VoteResult::Won;
        }
        let pending: Vec<NodeId> = votes
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(&id, _)| id)
            .collect();
        let (mut can_win, mut can_lose) = (false, false);
        for mask in 0u32..(1 << pending.len()) {
            let granted = votes
                .iter()
                .filter(|(id, v)| match v {
                    Some(g) => *g,
                    None => {
                        let bit = pending.iter().position(|p| p == *id).unwrap();
                        mask & (1 << bit) != 0
                    }
                })
                .count();
            if granted >= quorum {
                can_win = true;
            } else {
                can_lose = true;
            }
        }
        match (can_win, can_lose) {
            (true, false) => VoteResult::Won,
            (false, true) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    fn acks_strategy() -> impl Strategy<Value = BTreeMap<NodeId, Index>> {
        prop::collection::btree_map(1u64..20, 0u64..12, 0..12)
    }

    fn votes_strategy() -> impl Strategy<Value = BTreeMap<NodeId, Option<bool>>> {
        prop::collection::btree_map(1u64..20, prop::option::of(any::<bool>()), 0..10)
    }

    proptest! {
        #[test]
        fn majority_committed_index_matches_naive_reference(acks in acks_strategy()) {
            let voters: BTreeSet<NodeId> = acks.keys().copied().collect();
            let got = majority_committed_index(&voters, |id| acks[&id]);
            prop_assert_eq!(got, naive_committed(&acks, majority(acks.len())));
        }

        #[test]
        fn flexible_committed_index_matches_naive_reference(
            acks in acks_strategy(), quorum in 1usize..12,
        ) {
            prop_assume!(quorum <= acks.len());
            let voters: BTreeSet<NodeId> = acks.keys().copied().collect();
            prop_assert_eq!(committed_index(&voters, quorum, |id| acks[&id]), naive_committed(&acks, quorum));
        }

        #[test]
        fn joint_committed_index_is_min_of_halves(
            incoming in acks_strategy(), outgoing in acks_strategy(),
        ) {
            // A node in both halves has one acknowledgement: take the incoming value.
            let mut all = outgoing.clone();
            all.extend(incoming.iter());
            let membership = Membership {
                voters: incoming.keys().copied().collect(),
                voters_outgoing: outgoing.keys().copied().collect(),
                learners: BTreeSet::new(),
            };
            let restrict = |half: &BTreeSet<NodeId>| -> BTreeMap<NodeId, Index> {
                half.iter().map(|id| (*id, all[id])).collect()
            };
            let expected = naive_committed(&restrict(&membership.voters), majority(membership.voters.len()))
                .min(naive_committed(&restrict(&membership.voters_outgoing), majority(membership.voters_outgoing.len())));
            prop_assert_eq!(joint_committed_index(&membership, |id| all[&id]), expected);
        }

        #[test]
        fn majority_vote_result_matches_naive_reference(votes in votes_strategy()) {
            let voters: BTreeSet<NodeId> = votes.keys().copied().collect();
            prop_assert_eq!(
                majority_vote_result(&voters, |id| votes[&id]),
                naive_vote(&votes, majority(votes.len()))
            );
        }

        #[test]
        fn flexible_vote_result_matches_naive_reference(votes in votes_strategy(), quorum in 1usize..10) {
            prop_assume!(quorum <= votes.len());
            let voters: BTreeSet<NodeId> = votes.keys().copied().collect();
            prop_assert_eq!(vote_result(&voters, quorum, |id| votes[&id]), naive_vote(&votes, quorum));
        }

        #[test]
        fn joint_vote_needs_both_halves(incoming in votes_strategy(), outgoing in votes_strategy()) {
            let mut all = outgoing.clone();
            all.extend(incoming.iter());
            let membership = Membership {
                voters: incoming.keys().copied().collect(),
                voters_outgoing: outgoing.keys().copied().collect(),
                learners: BTreeSet::new(),
            };
            let half = |ids: &BTreeSet<NodeId>| -> BTreeMap<NodeId, Option<bool>> {
                ids.iter().map(|id| (*id, all[id])).collect()
            };
            let a = naive_vote(&half(&membership.voters), majority(membership.voters.len()));
            let b = naive_vote(&half(&membership.voters_outgoing), majority(membership.voters_outgoing.len()));
            let expected = match (a, b) {
                (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
                (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
                _ => VoteResult::Pending,
            };
            prop_assert_eq!(joint_vote_result(&membership, |id| all[&id]), expected);
        }
    }

    #[test]
    fn empty_outgoing_half_never_constrains() {
        let m = Membership::with_voters([1, 2, 3]);
        assert_eq!(joint_committed_index(&m, |id| id * 10), 20);
        assert_eq!(joint_vote_result(&m, |id| Some(id != 3)), VoteResult::Won);
    }
}
