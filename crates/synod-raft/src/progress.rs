//! The leader's view of each follower: how much of the log it holds, and how much may be in
//! flight to it (flow control).

use std::collections::VecDeque;

use synod_core::Index;

/// How the leader is currently replicating to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// The leader does not know where the follower's log diverges: one AppendEntries at a time,
    /// backtracking on each rejection.
    Probe,
    /// The follower's log matches: AppendEntries stream optimistically, up to the in-flight
    /// limits.
    Replicate,
    /// The follower needs a snapshot; nothing else is sent until it is installed or the attempt
    /// times out.
    Snapshot {
        /// The index of the snapshot being sent.
        index: Index,
    },
}

/// The leader's record of one follower (or learner).
#[derive(Clone, Debug)]
pub struct Progress {
    /// The highest index known to be replicated, durably, on the follower.
    ///
    /// Invariant: `matched < next`.
    pub matched: Index,
    /// The index of the next entry to send.
    pub next: Index,
    /// How replication currently proceeds.
    pub state: ProgressState,
    /// In probe state: an AppendEntries is outstanding, so no other is sent until an answer or
    /// the next heartbeat response.
    pub probe_sent: bool,
    /// AppendEntries messages in flight in replicate state.
    pub inflights: Inflights,
    /// Whether the follower was heard from since the last check-quorum round.
    pub recent_active: bool,
    /// The highest heartbeat round the follower acknowledged.
    pub round_acked: u64,
    /// Ticks since a snapshot was sent, in snapshot state.
    pub snapshot_elapsed: u32,
}

impl Progress {
    /// A follower about which nothing is known yet: probe from the leader's last index + 1.
    pub fn new(next: Index, max_inflight_messages: usize, max_inflight_bytes: usize) -> Self {
        assert!(next >= 1, "next index must be at least 1");
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight_messages, max_inflight_bytes),
            recent_active: false,
            round_acked: 0,
            snapshot_elapsed: 0,
        }
    }

    /// Whether the leader must hold off sending AppendEntries.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(),
            ProgressState::Snapshot { .. } => true,
        }
    }

    /// Switches to probe state, resuming from just after the known match (or after a snapshot
    /// that was being installed).
    pub fn become_probe(&mut self) {
        if let ProgressState::Snapshot { index } = self.state {
            self.next = self.matched.max(index) + 1;
        } else {
            self.next = self.matched + 1;
        }
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflights.clear();
    }

    /// Switches to replicate state.
    pub fn become_replicate(&mut self) {
        self.next = self.matched + 1;
        self.state = ProgressState::Replicate;
        self.probe_sent = false;
        self.inflights.clear();
    }

    /// Switches to snapshot state while the snapshot at `index` is sent.
    pub fn become_snapshot(&mut self, index: Index) {
        self.state = ProgressState::Snapshot { index };
        self.probe_sent = false;
        self.snapshot_elapsed = 0;
        self.inflights.clear();
    }

    /// Records an acknowledgement of `index`. Returns whether it told the leader anything new.
    pub fn maybe_update(&mut self, index: Index) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index + 1);
        updated
    }

    /// Handles a rejection of the AppendEntries whose `prev_log_index` was `rejected`, moving
    /// `next` back to `hint_next` (bounded below by `matched + 1` and above by `rejected`).
    /// Returns false if the rejection is stale and was ignored.
    pub fn maybe_decrease_to(&mut self, rejected: Index, hint_next: Index) -> bool {
        match self.state {
            ProgressState::Replicate => {
                // Entries up to `matched` are known to match: a rejection at or below is stale.
                // Every append sent had `prev_log_index < next`: a rejection at or beyond it
                // answers nothing this leader sent.
                if rejected <= self.matched || rejected >= self.next {
                    return false;
                }
                // The optimistic stream broke: probe from the hinted point.
                self.next = hint_next.min(rejected).max(self.matched + 1);
                self.state = ProgressState::Probe;
                self.probe_sent = false;
                self.inflights.clear();
                true
            }
            // A snapshot is on its way; rejections of earlier appends are stale.
            ProgressState::Snapshot { .. } => false,
            ProgressState::Probe => {
                // In probe state only the outstanding probe (prev = next - 1) counts.
                if self.next == 0 || self.next - 1 != rejected {
                    return false;
                }
                self.next = hint_next.min(rejected).max(self.matched + 1);
                self.probe_sent = false;
                true
            }
        }
    }

    /// Records that entries up to `last` (carrying `bytes`) were sent in replicate state.
    pub fn sent_entries(&mut self, last: Index, bytes: usize) {
        match self.state {
            ProgressState::Replicate => {
                self.next = last + 1;
                self.inflights.add(last, bytes);
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot { .. } => {
                unreachable!("entries are never sent in snapshot state")
            }
        }
    }
}

/// A bounded window of in-flight AppendEntries messages, each remembered by its last index.
#[derive(Clone, Debug)]
pub struct Inflights {
    window: VecDeque<(Index, usize)>,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
}

impl Inflights {
    /// An empty window with these limits.
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        assert!(
            max_messages > 0 && max_bytes > 0,
            "in-flight limits must be positive"
        );
        Inflights {
            window: VecDeque::new(),
            bytes: 0,
            max_messages,
            max_bytes,
        }
    }

    /// Whether no more messages may be sent.
    pub fn is_full(&self) -> bool {
        self.window.len() >= self.max_messages || self.bytes >= self.max_bytes
    }

    /// The number of messages in flight.
    pub fn len(&self) -> usize {
        self.window.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// Records a message whose last entry is `last`.
    pub fn add(&mut self, last: Index, bytes: usize) {
        debug_assert!(
            self.window.back().is_none_or(|&(prev, _)| prev < last),
            "in-flight messages must have increasing last indexes"
        );
        self.window.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last index is at or below `index`.
    pub fn free_to(&mut self, index: Index) {
        while let Some(&(last, bytes)) = self.window.front() {
            if last > index {
                break;
            }
            self.window.pop_front();
            self.bytes -= bytes;
        }
    }

    /// Frees the oldest message (used when a heartbeat response shows the follower is alive but
    /// the window is stuck full, for example because messages were lost).
    pub fn free_first(&mut self) {
        if let Some((_, bytes)) = self.window.pop_front() {
            self.bytes -= bytes;
        }
    }

    /// Frees everything.
    pub fn clear(&mut self) {
        self.window.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflights_fill_and_free_by_messages_and_bytes() {
        let mut inflights = Inflights::new(3, 1000);
        inflights.add(5, 100);
        inflights.add(9, 100);
        assert!(!inflights.is_full());
        inflights.add(12, 100);
        assert!(inflights.is_full());
        inflights.free_to(9);
        assert_eq!(inflights.len(), 1);
        assert!(!inflights.is_full());
        inflights.add(20, 900);
        assert!(inflights.is_full(), "byte limit reached");
        inflights.free_first();
        inflights.free_first();
        assert!(inflights.is_empty());
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut pr = Progress::new(11, 8, 1 << 20);
        // Probe: only a rejection of prev = next - 1 = 10 counts.
        assert!(!pr.maybe_decrease_to(7, 3));
        assert!(pr.maybe_decrease_to(10, 4));
        assert_eq!(pr.next, 4);
        pr.maybe_update(5);
        pr.become_replicate();
        assert_eq!(pr.next, 6);
        pr.sent_entries(9, 10);
        // Replicate: a rejection at or below the match is stale.
        assert!(!pr.maybe_decrease_to(5, 1));
        assert!(pr.maybe_decrease_to(8, 7));
        assert_eq!(pr.next, 7);
        assert_eq!(pr.state, ProgressState::Probe);
        assert!(pr.matched < pr.next);
    }
}
