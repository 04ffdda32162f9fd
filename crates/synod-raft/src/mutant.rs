//! Deliberately broken behaviours, compiled in only with the `mutants` feature. The simulator
//! turns one on to prove that its checkers catch the bug; production builds cannot.

use std::fmt;
use std::str::FromStr;

/// A deliberate protocol bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// Commits entries of earlier terms by counting replicas (violates Raft §5.4.2, Figure 8).
    /// It also skips the new leader's no-op, which would otherwise usually travel with the older
    /// entries and commit them legitimately.
    Figure8,
    /// Grants votes without the log-completeness check (violates Raft §5.4.1).
    NoLogCheck,
    /// Sends votes and acknowledgements before the state they report is durable.
    EarlyAck,
    /// Serves reads at once from the local state, without ReadIndex (thesis §6.4).
    StaleRead,
}

impl Mutant {
    /// Every mutant.
    pub const ALL: [Mutant; 4] = [
        Mutant::Figure8,
        Mutant::NoLogCheck,
        Mutant::EarlyAck,
        Mutant::StaleRead,
    ];

    /// The mutant's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::Figure8 => "figure8",
            Mutant::NoLogCheck => "no-log-check",
            Mutant::EarlyAck => "early-ack",
            Mutant::StaleRead => "stale-read",
        }
    }
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mutant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mutant::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Mutant::ALL.iter().map(|m| m.name()).collect();
                format!("unknown mutant {s:?}; expected one of {}", names.join(", "))
            })
    }
}
