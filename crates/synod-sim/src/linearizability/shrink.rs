//! Shrinking a non-linearizable partition to a small piece that shows why.
//!
//! A violation in a history of hundreds of operations is unreadable; usually a handful of them
//! suffice to show it (a write that returned, a later read that missed it).
//!
//! Simply deleting operations while the rest stays non-linearizable does not work, because
//! linearizability is not monotone under deletion: deleting the write of 1 makes any read of 1
//! impossible, so a lone `get -> 1` "shrinks" out of almost any violation and explains nothing.
//! Instead the shrinker *weakens* the operations it leaves out of the piece: each may have taken
//! effect within its own call-return window with any output, or never (a read so weakened
//! constrains nothing and is dropped). Weakening only ever adds linearizations, so:
//!
//! - the predicate "the piece, with everything else weakened, is not linearizable" is monotone in
//!   the piece, which is what delta debugging (Zeller & Hildebrandt 2002) needs to find a
//!   1-minimal piece: chunks first, then single operations, until none can be taken out;
//! - the piece is not linearizable on its own either (the weakened operations may all never have
//!   happened), and the violation does not hinge on the exact result of anything left out.
//!
//! Operations with an unknown outcome are already as weak as can be, so they stay as they are and
//! are never part of the piece.

use crate::history::Operation;
use crate::linearizability::Model;
use crate::linearizability::search::{SearchOp, SearchResult, search};

/// The outcome of shrinking.
pub(crate) struct Shrunk {
    /// Positions (into the operations given) of the piece's operations, in increasing order.
    pub(crate) kept: Vec<usize>,
    /// Whether weakening any one operation of the piece makes the history linearizable.
    pub(crate) one_minimal: bool,
}

/// Shrinks `operations` (one partition, not linearizable), spending at most `step_budget` search
/// steps in total.
pub(crate) fn shrink<M: Model>(
    model: &M,
    operations: &[&Operation<M::Input, M::Output>],
    mut step_budget: u64,
) -> Shrunk {
    // Invariant: `piece_is_violation(kept)`, which holds at first because with nothing weakened
    // the history is the partition itself.
    let mut kept: Vec<usize> = (0..operations.len())
        .filter(|&index| operations[index].return_time().is_some())
        .collect();
    let mut chunk = (kept.len() / 2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < kept.len() {
            let end = (start + chunk).min(kept.len());
            let candidate: Vec<usize> = kept[..start].iter().chain(&kept[end..]).copied().collect();
            match check_piece(model, operations, &candidate, &mut step_budget) {
                SearchResult::NotLinearizable => {
                    // Keep the smaller piece; the next chunk now starts at `start`.
                    kept = candidate;
                    removed_any = true;
                }
                SearchResult::Linearizable => start = end,
                SearchResult::OutOfSteps => {
                    return Shrunk {
                        kept,
                        one_minimal: false,
                    };
                }
            }
        }
        if chunk == 1 && !removed_any {
            // A full pass over single operations changed nothing: weakening any one operation of
            // this very piece was tried, and each time the history became linearizable.
            return Shrunk {
                kept,
                one_minimal: true,
            };
        }
        chunk = (chunk / 2).max(1);
    }
}

/// Searches `operations` with those at the positions in `piece` (increasing) as recorded and
/// every other one weakened.
pub(crate) fn check_piece<M: Model>(
    model: &M,
    operations: &[&Operation<M::Input, M::Output>],
    piece: &[usize],
    step_budget: &mut u64,
) -> SearchResult {
    // Operations called after the last return in the piece are left out: they could only be
    // linearized after every operation of the piece, and weakened they may as well never happen,
    // so they cannot change the verdict. The piece's ends are where violations tend to be found,
    // so this often shortens the search considerably.
    let horizon = piece
        .iter()
        .filter_map(|&index| operations[index].return_time())
        .max()
        .unwrap_or(0);
    let mut in_piece = piece.iter().peekable();
    let mut search_ops = Vec::with_capacity(operations.len());
    for (index, &operation) in operations.iter().enumerate() {
        if in_piece.next_if_eq(&&index).is_some() {
            search_ops.push(SearchOp::exact(operation));
        } else if operation.call <= horizon
            && (operation.return_time().is_none() || !model.is_read_only(&operation.input))
        {
            search_ops.push(SearchOp::weakened(operation));
        }
    }
    debug_assert!(
        in_piece.next().is_none(),
        "piece positions must be increasing"
    );
    search(model, &search_ops, step_budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jepsen;
    use crate::linearizability::{KvInput, KvModel, KvOutput, partitions};

    /// The definition of 1-minimal, checked directly: the piece is a violation with everything
    /// else weakened, and stops being one when any of its operations is weakened too.
    fn assert_one_minimal(operations: &[&Operation<KvInput, KvOutput>], piece: &[usize]) {
        let mut budget = u64::MAX;
        assert_eq!(
            check_piece(&KvModel, operations, piece, &mut budget),
            SearchResult::NotLinearizable
        );
        for left_out in 0..piece.len() {
            let mut smaller = piece.to_vec();
            smaller.remove(left_out);
            assert_eq!(
                check_piece(&KvModel, operations, &smaller, &mut budget),
                SearchResult::Linearizable,
                "operation {} of the piece is not needed",
                piece[left_out]
            );
        }
    }

    #[test]
    fn jepsen_violations_shrink_to_one_minimal_pieces() {
        let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/jepsen-etcd-register");
        // A few of the non-linearizable histories, including those with the largest pieces.
        for file in [
            "etcd_000.log",
            "etcd_008.log",
            "etcd_012.log",
            "etcd_034.log",
        ] {
            let text = std::fs::read_to_string(directory.join(file)).expect("corpus file");
            let history = jepsen::parse_register_history(&text).expect("parses");
            let (_, op_ids) = partitions(&KvModel, &history)
                .into_iter()
                .next()
                .expect("one partition");
            let operations: Vec<_> = op_ids
                .iter()
                .map(|id| &history.operations()[id.0])
                .collect();
            let shrunk = shrink(&KvModel, &operations, u64::MAX);
            assert!(shrunk.one_minimal, "{file}");
            assert!(
                shrunk.kept.len() >= 2 && shrunk.kept.len() < operations.len(),
                "{file}"
            );
            assert_one_minimal(&operations, &shrunk.kept);
        }
    }

    #[test]
    fn a_budget_of_nothing_keeps_every_returned_operation() {
        let text = "0 :invoke :write 1\n0 :ok :write 1\n1 :invoke :read nil\n1 :ok :read nil\n\
                    2 :invoke :write 2\n";
        let history = jepsen::parse_register_history(text).expect("parses");
        let operations: Vec<_> = history.operations().iter().collect();
        let shrunk = shrink(&KvModel, &operations, 0);
        assert!(!shrunk.one_minimal);
        // The write with an unknown outcome is never part of a piece.
        assert_eq!(shrunk.kept, [0, 1]);
        let shrunk = shrink(&KvModel, &operations, u64::MAX);
        assert!(shrunk.one_minimal);
        assert_eq!(shrunk.kept, [0, 1]);
    }
}
