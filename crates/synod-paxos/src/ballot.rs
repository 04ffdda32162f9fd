//! Ballot numbers packed into a [`Term`].
//!
//! Paxos needs ballots that are totally ordered and unique per proposer ("Paxos Made Simple"
//! §2.2: "different proposers choose their numbers from disjoint sets"). A ballot is a round
//! number in the high 48 bits and the proposer's node id in the low 16 bits, so comparing two
//! ballots as integers compares rounds first and breaks ties by proposer. Packing them into
//! one `u64` lets the engine report its ballot wherever the shared interface has a term.

use synod_core::{NodeId, Term};

/// Bits of a ballot that hold the proposer's id.
pub const PROPOSER_BITS: u32 = 16;

/// The largest node id a Multi-Paxos member may have.
pub const MAX_NODE_ID: NodeId = (1 << PROPOSER_BITS) - 1;

const _: () = assert!(MAX_NODE_ID == 65_535);

/// The ballot of `round` for `proposer`, or `None` if the round does not fit.
pub fn ballot(round: u64, proposer: NodeId) -> Option<Term> {
    if proposer > MAX_NODE_ID || round >= 1 << (64 - PROPOSER_BITS) {
        return None;
    }
    Some(round << PROPOSER_BITS | proposer)
}

/// The round of a ballot.
pub fn round(ballot: Term) -> u64 {
    ballot >> PROPOSER_BITS
}

/// The proposer that owns a ballot (0 for the zero ballot).
pub fn proposer(ballot: Term) -> NodeId {
    ballot & MAX_NODE_ID
}

/// The smallest ballot of `proposer` above `seen`, or `None` once rounds run out.
pub fn next_above(seen: Term, proposer: NodeId) -> Option<Term> {
    ballot(round(seen).checked_add(1)?, proposer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballots_order_by_round_then_proposer() {
        let a = ballot(3, 9).unwrap();
        let b = ballot(4, 1).unwrap();
        let c = ballot(4, 2).unwrap();
        assert!(a < b && b < c);
        assert_eq!((round(c), proposer(c)), (4, 2));
    }

    #[test]
    fn next_ballot_is_above_everything_seen_and_unique_per_proposer() {
        let seen = ballot(7, 5).unwrap();
        let mine = next_above(seen, 2).unwrap();
        assert!(mine > seen);
        assert_eq!(proposer(mine), 2);
        assert_ne!(next_above(seen, 3).unwrap(), mine);
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        assert_eq!(ballot(1 << 48, 1), None);
        assert_eq!(ballot(1, MAX_NODE_ID + 1), None);
        assert_eq!(next_above(Term::MAX, 1), None);
    }
}
