//! Helpers shared by the election tests (`paper_election.rs`, `unreachable_leader.rs`).

#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;

use synod_core::{NodeId, Term};
use synod_raft::cluster::Cluster;

/// Election Safety (Figure 3): at most one leader can be elected in a given term. Remembers
/// every (term, leader) ever observed, so that a second leader in an old term is caught too.
#[derive(Default)]
pub struct ElectionSafety {
    pub leaders: BTreeMap<Term, NodeId>,
    /// A member that must never become leader, checked at every step too.
    pub never_leader: Option<NodeId>,
    /// Steps at which two members believed they led (in different terms): a stale leader
    /// and a new one, the situation in which a second leader in one term could slip in.
    pub overlapping_steps: usize,
}

impl ElectionSafety {
    pub fn check(&mut self, c: &Cluster) {
        let mut now: BTreeMap<Term, NodeId> = BTreeMap::new();
        let leaders = c.leaders();
        if leaders.len() > 1 {
            self.overlapping_steps += 1;
        }
        for (id, term) in leaders {
            if let Some(other) = now.insert(term, id) {
                panic!("election safety: {other} and {id} both lead term {term} right now");
            }
            assert_ne!(
                Some(id),
                self.never_leader,
                "node {id} became leader of term {term}"
            );
            let first = *self.leaders.entry(term).or_insert(id);
            assert_eq!(
                first, id,
                "election safety: {first} and {id} were both leaders of term {term}"
            );
        }
    }

    /// Terms in which somebody was elected.
    pub fn elected_terms(&self) -> usize {
        self.leaders.len()
    }
}

/// Whether member `id` is running (not crashed).
pub fn running(c: &Cluster, id: NodeId) -> bool {
    c.member(id).node.is_some()
}

/// One round of logical time: ticks every running member, then delivers everything in flight
/// (and everything that causes), checking Election Safety after every single step.
pub fn tick_checked(c: &mut Cluster, safety: &mut ElectionSafety) {
    for id in c.ids() {
        if running(c, id) {
            c.node_mut(id).tick();
        }
        c.process(id);
        safety.check(c);
    }
    while c.deliver_one() {
        safety.check(c);
    }
}

/// The leader of the highest term, if a majority of all members are in that term and follow it.
pub fn stable_leader(c: &Cluster) -> Option<NodeId> {
    let leader = c.leader()?;
    let term = c.node(leader).term();
    let agreeing = c
        .members
        .values()
        .filter_map(|m| m.node.as_ref())
        .filter(|n| n.term() == term && n.leader() == Some(leader))
        .count();
    (agreeing * 2 > c.members.len()).then_some(leader)
}

/// Every member but `id`.
pub fn others(c: &Cluster, id: NodeId) -> Vec<NodeId> {
    c.ids().into_iter().filter(|&o| o != id).collect()
}
