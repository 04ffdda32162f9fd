//! The leader's bookkeeping for linearizable reads (thesis §6.4).
//!
//! Every heartbeat broadcast is a numbered round. A follower echoes the round it received; the
//! highest round that a quorum has echoed is *confirmed*: at the moment that round was sent, the
//! leader was still the leader. A ReadIndex read taken at commit index `c` after round `r` was
//! sent may be served once round `r + 1` is confirmed and the state machine has applied `c`.
//! Many reads share one round, so confirmations are batched.
//!
//! The same rounds give the leader lease (thesis §6.4.1): with check-quorum, a follower that
//! acknowledged round `r` will not vote for anyone else for an election timeout after receiving
//! it, so no other leader can exist before `sent_tick(r) + election_ticks` (less a margin for
//! clock drift).

use std::collections::VecDeque;

use synod_core::{Index, NodeId, ReadContext};

/// A read waiting for its round to be confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRead {
    /// The requester's context.
    pub context: ReadContext,
    /// The commit index when the read arrived.
    pub index: Index,
    /// The round whose confirmation the read needs.
    pub round: u64,
    /// Who asked: the leader itself or a follower that forwarded the read.
    pub requester: NodeId,
}

/// Rounds, pending reads and the lease. Reset at every new term.
#[derive(Debug, Default)]
pub struct ReadTracker {
    /// The last round broadcast.
    pub round_sent: u64,
    /// The highest round a quorum has acknowledged.
    pub round_confirmed: u64,
    /// Tick at which each unconfirmed round was sent.
    sent_at: VecDeque<(u64, u64)>,
    /// Reads waiting for a round, in round order.
    pending: VecDeque<PendingRead>,
    /// Reads that arrived before the leader committed an entry of its term (thesis §6.4 step 1).
    pub awaiting_commit: Vec<(ReadContext, NodeId)>,
    /// The lease is valid while the leader's tick count is below this.
    pub lease_until: u64,
}

impl ReadTracker {
    /// Starts a new round at tick `now` and returns its number.
    pub fn start_round(&mut self, now: u64) -> u64 {
        self.round_sent += 1;
        self.sent_at.push_back((self.round_sent, now));
        self.round_sent
    }

    /// Queues a read that needs a round sent after now.
    pub fn push(&mut self, context: ReadContext, index: Index, requester: NodeId) {
        let round = self.round_sent + 1;
        debug_assert!(self.pending.back().is_none_or(|r| r.round <= round));
        self.pending.push_back(PendingRead {
            context,
            index,
            round,
            requester,
        });
    }

    /// Whether a pending read needs a round that has not been sent yet.
    pub fn wants_round(&self) -> bool {
        self.pending
            .back()
            .is_some_and(|r| r.round > self.round_sent)
    }

    /// Whether a round is in flight (sent but not yet confirmed).
    pub fn round_in_flight(&self) -> bool {
        self.round_confirmed < self.round_sent
    }

    /// Records that a quorum has acknowledged `round`; returns the reads it releases. With
    /// `lease_ticks`, extends the lease to the round's send tick plus that many ticks.
    pub fn confirm(&mut self, round: u64, lease_ticks: Option<u64>) -> Vec<PendingRead> {
        if round <= self.round_confirmed || round > self.round_sent {
            return Vec::new();
        }
        self.round_confirmed = round;
        let mut sent_tick = None;
        while let Some(&(r, tick)) = self.sent_at.front() {
            if r > round {
                break;
            }
            sent_tick = Some(tick);
            self.sent_at.pop_front();
        }
        if let (Some(ticks), Some(sent)) = (lease_ticks, sent_tick) {
            self.lease_until = self.lease_until.max(sent + ticks);
        }
        let mut released = Vec::new();
        while self.pending.front().is_some_and(|r| r.round <= round) {
            released.extend(self.pending.pop_front());
        }
        released
    }

    /// Takes every read not yet served (when leadership is lost).
    pub fn drain(&mut self) -> Vec<(ReadContext, NodeId)> {
        let mut all: Vec<_> = self
            .pending
            .drain(..)
            .map(|r| (r.context, r.requester))
            .collect();
        all.append(&mut self.awaiting_commit);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wait_for_a_round_sent_after_they_arrive() {
        let mut reads = ReadTracker::default();
        let r1 = reads.start_round(10);
        reads.push(7, 5, 1);
        assert!(reads.wants_round());
        // Confirming the round that was already in flight must not release the read.
        assert!(reads.confirm(r1, None).is_empty());
        let r2 = reads.start_round(12);
        assert!(!reads.wants_round());
        let released = reads.confirm(r2, Some(13));
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].index, 5);
        assert_eq!(
            reads.lease_until, 25,
            "lease counts from when the round was sent"
        );
    }
}
