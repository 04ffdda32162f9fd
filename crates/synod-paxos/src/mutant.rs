//! Deliberately broken behaviours, compiled in only with the `mutants` feature. The simulator
//! turns one on to prove that its checkers catch the bug; production builds cannot.

use std::fmt;
use std::str::FromStr;

/// A deliberate protocol bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// A new leader ignores the values reported in promises and re-proposes only what its own
    /// log holds (violates P2c of "Paxos Made Simple" §2.2).
    IgnorePromiseValue,
    /// An acceptor answers a Prepare before its promise is durable, and never makes the promise
    /// durable at all, so a restart forgets it.
    NoPersistPromise,
    /// A follower applies slots as soon as it learns they are chosen, skipping slots it has not
    /// learned yet, instead of strictly in slot order.
    ApplyOutOfOrder,
}

impl Mutant {
    /// Every mutant.
    pub const ALL: [Mutant; 3] = [
        Mutant::IgnorePromiseValue,
        Mutant::NoPersistPromise,
        Mutant::ApplyOutOfOrder,
    ];

    /// The mutant's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::IgnorePromiseValue => "ignore-promise-value",
            Mutant::NoPersistPromise => "no-persist-promise",
            Mutant::ApplyOutOfOrder => "apply-out-of-order",
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
