//! Safety checkers that run while the simulation runs.
//!
//! - **Election safety** (Raft Figure 3): at most one leader per term, ever.
//! - **State-machine safety**: no two members apply different entries at the same index. The
//!   first entry applied at an index anywhere is remembered; every later apply must match it.
//! - **Leader completeness** (Raft §5.4): an entry committed in term `t` is in the log of every
//!   leader of a term above `t` (entries below the leader's snapshot are covered by it). The
//!   checker does not know the term in which an entry was committed, but the term of a member
//!   that applies it is an upper bound (the member learned of the commit from a leader of that
//!   term or an earlier one), so it checks every entry whose smallest such bound is below the new
//!   leader's term. A leader of an older term can legitimately appear after newer commits, when
//!   its votes were granted earlier and arrive late.
//! - **Log matching**: if two logs hold an entry with the same index and term, they are
//!   identical up to that index.
//!
//! For an engine without Raft's Log Matching property ([`Engine::LOG_MATCHING`] false:
//! Multi-Paxos), entries are compared by payload only, since the same chosen value may carry a
//! different ballot on each member, and the log-matching check does not apply. A term is then a
//! ballot, and the reasoning above holds with ballots for terms: a value chosen in ballot `b`
//! is the value of every proposal numbered above `b`, so every leader of a higher ballot holds
//! it once its Phase 1 is complete (which is when it reports itself leader).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use synod_core::{Engine, Entry, Index, NodeId, Role, SoftState, Term};

use super::SimNode;

/// A fingerprint of an entry's payload.
fn fingerprint(entry: &Entry) -> u64 {
    let mut hasher = DefaultHasher::new();
    entry.payload.hash(&mut hasher);
    hasher.finish()
}

/// A member's log as index -> (term, payload fingerprint).
type LogPrints = BTreeMap<Index, (Term, u64)>;

/// The checkers' memory of the run.
#[derive(Debug)]
pub struct Checker {
    /// Whether entries at one index must also agree on their term (Raft), or only on their
    /// payload (Multi-Paxos).
    match_terms: bool,
    leaders: HashMap<Term, NodeId>,
    /// Every applied entry: index -> (term, payload fingerprint, an upper bound on the term in
    /// which it was committed).
    applied: BTreeMap<Index, (Term, u64, Term)>,
}

impl Checker {
    /// A checker for an engine with ([`Engine::LOG_MATCHING`]) or without Raft's Log Matching
    /// property.
    pub fn new(log_matching: bool) -> Self {
        Checker {
            match_terms: log_matching,
            leaders: HashMap::new(),
            applied: BTreeMap::new(),
        }
    }

    /// Whether two entries at one index are the same entry.
    fn same(&self, (term_a, print_a): (Term, u64), (term_b, print_b): (Term, u64)) -> bool {
        print_a == print_b && (!self.match_terms || term_a == term_b)
    }

    /// The highest index applied anywhere.
    pub fn highest_applied(&self) -> Index {
        self.applied.keys().next_back().copied().unwrap_or(0)
    }

    /// The number of terms that had a leader.
    pub fn elections(&self) -> usize {
        self.leaders.len()
    }

    /// Election safety and leader completeness, when a member reports a new role.
    pub fn on_soft_state<E: Engine>(
        &mut self,
        id: NodeId,
        soft: &SoftState,
        engine: &E,
    ) -> Result<(), String> {
        if soft.role != Role::Leader {
            return Ok(());
        }
        let leader = *self.leaders.entry(soft.term).or_insert(id);
        if leader != id {
            return Err(format!(
                "election safety: members {leader} and {id} both lead term {}",
                soft.term
            ));
        }
        let snapshot = engine.status().snapshot_index;
        for (&index, &(term, print, committed_by)) in self.applied.range(snapshot + 1..) {
            if committed_by >= soft.term {
                continue;
            }
            match engine.log_entry(index) {
                Some(entry) if self.same((entry.term, fingerprint(entry)), (term, print)) => {}
                other => {
                    return Err(format!(
                        "leader completeness: new leader {id} (term {}) lacks committed entry {index} \
                         (term {term}); it holds {:?}",
                        soft.term,
                        other.map(|e| (e.index, e.term))
                    ));
                }
            }
        }
        Ok(())
    }

    /// State-machine safety, when a member applies an entry.
    /// `member_term` is the applying member's current term.
    pub fn on_apply(&mut self, id: NodeId, entry: &Entry, member_term: Term) -> Result<(), String> {
        let print = fingerprint(entry);
        let same_as_applied = self
            .applied
            .get(&entry.index)
            .is_none_or(|&(term, seen, _)| self.same((term, seen), (entry.term, print)));
        match self.applied.get_mut(&entry.index) {
            Some(&mut (term, _, _)) if !same_as_applied => Err(format!(
                "member {id} applied entry {} of term {} but another member applied one of term {term} \
                 there",
                entry.index, entry.term
            )),
            Some((_, _, committed_by)) => {
                *committed_by = (*committed_by).min(member_term);
                Ok(())
            }
            None => {
                self.applied
                    .insert(entry.index, (entry.term, print, member_term));
                Ok(())
            }
        }
    }

    /// Log matching across every pair of running members.
    pub fn check_log_matching<E: Engine>(
        &self,
        nodes: &BTreeMap<NodeId, SimNode<E>>,
    ) -> Result<(), String> {
        if !self.match_terms {
            return Ok(());
        }
        let logs: Vec<(NodeId, LogPrints)> = nodes
            .iter()
            .filter_map(|(&id, n)| n.engine.as_ref().map(|e| (id, e)))
            .map(|(id, engine)| {
                let status = engine.status();
                let log = (status.snapshot_index + 1..=status.last_index)
                    .filter_map(|i| engine.log_entry(i))
                    .map(|e| (e.index, (e.term, fingerprint(e))))
                    .collect();
                (id, log)
            })
            .collect();
        for (i, (a, log_a)) in logs.iter().enumerate() {
            for (b, log_b) in &logs[i + 1..] {
                // The highest index where both hold an entry of the same term...
                let Some(&top) = log_a
                    .iter()
                    .rev()
                    .find(|(index, (term, _))| log_b.get(index).is_some_and(|(t, _)| t == term))
                    .map(|(index, _)| index)
                else {
                    continue;
                };
                // ...and below it, wherever both hold an entry, the entries are identical.
                for (index, entry) in log_a.range(..=top) {
                    if let Some(other) = log_b.get(index)
                        && other != entry
                    {
                        return Err(format!(
                            "members {a} and {b} agree at index {top} but differ at {index}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
