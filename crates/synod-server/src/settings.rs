//! A member's settings, resolved from flags, environment and config file by the binary, and the
//! cluster layout they describe.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use synod_core::NodeId;
use thiserror::Error;

/// Which consensus engine a member runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// Raft (the default).
    #[default]
    Raft,
    /// Multi-Paxos.
    MultiPaxos,
}

impl std::str::FromStr for EngineKind {
    type Err = SettingsError;
    fn from_str(s: &str) -> Result<Self, SettingsError> {
        match s {
            "raft" => Ok(EngineKind::Raft),
            "multipaxos" | "multi-paxos" | "paxos" => Ok(EngineKind::MultiPaxos),
            other => Err(SettingsError::Invalid {
                what: "--engine",
                detail: format!("{other:?} is not an engine; use raft or multipaxos"),
            }),
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EngineKind::Raft => "raft",
            EngineKind::MultiPaxos => "multipaxos",
        })
    }
}

/// A setting that does not make sense.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SettingsError {
    /// A value is malformed or out of range.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// The flag.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// The longest engine tick, in milliseconds (see [`Settings::ticks`]).
pub const TICK_MS_MAX: u64 = 10;

/// The engine's clock, derived from `--heartbeat-interval` and `--election-timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticks {
    /// One engine tick.
    pub tick: Duration,
    /// Ticks between leader heartbeats.
    pub heartbeat: u32,
    /// Ticks of the minimum election timeout.
    pub election: u32,
}

fn invalid(what: &'static str, detail: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        what,
        detail: detail.into(),
    }
}

/// One member of the initial cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// The member's id: its position in the name-sorted `--initial-cluster`, from 1, so that
    /// every member derives the same ids from the same list.
    pub id: NodeId,
    /// The member's name.
    pub name: String,
    /// Its peer URL.
    pub peer_url: String,
    /// Its peer address (resolved from the URL).
    pub peer_addr: SocketAddr,
}

/// Everything one member needs to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This member's name (`--name`).
    pub name: String,
    /// Where its log and snapshots live (`--data-dir`).
    pub data_dir: PathBuf,
    /// Where clients connect (`--listen-client-urls`).
    pub listen_client: Vec<SocketAddr>,
    /// What it tells others clients should use (`--advertise-client-urls`).
    pub advertise_client_urls: Vec<String>,
    /// Where peers connect (`--listen-peer-urls`).
    pub listen_peer: SocketAddr,
    /// The initial members, sorted by name, ids assigned.
    pub initial_cluster: Vec<PeerSpec>,
    /// `new` or `existing`.
    pub initial_cluster_state_new: bool,
    /// Peers from another cluster token are refused.
    pub cluster_token: String,
    /// The heartbeat interval (a whole number of engine ticks, see [`Settings::ticks`]).
    pub heartbeat_interval: Duration,
    /// The election timeout.
    pub election_timeout: Duration,
    /// Applied entries between state-machine snapshots.
    pub snapshot_count: u64,
    /// Writes that add data are refused once the store is this large.
    pub quota_backend_bytes: u64,
    /// The largest client request accepted.
    pub max_request_bytes: usize,
    /// The consensus engine.
    pub engine: EngineKind,
}

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// etcd's default `--quota-backend-bytes`: 2 GiB.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 << 30;
/// etcd's default `--snapshot-count`.
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;
/// The most members a cluster may have (Multi-Paxos ballots carry a 16-bit member id).
pub const MAX_MEMBERS: usize = 65_535;

/// Parses a URL such as `http://127.0.0.1:2379` into a socket address. Only `http` with an IP
/// address is supported (no TLS, no name resolution).
pub fn parse_url(what: &'static str, url: &str) -> Result<SocketAddr, SettingsError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        invalid(
            what,
            format!("{url:?} must start with http:// (TLS is not supported yet)"),
        )
    })?;
    let rest = rest.trim_end_matches('/');
    rest.parse::<SocketAddr>().map_err(|_| {
        invalid(
            what,
            format!("{url:?} must be http://IP:PORT (host names are not resolved)"),
        )
    })
}

/// Parses a comma-separated URL list.
pub fn parse_urls(what: &'static str, urls: &str) -> Result<Vec<SocketAddr>, SettingsError> {
    let list: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() {
        return Err(invalid(what, "no URL given"));
    }
    list.into_iter().map(|u| parse_url(what, u)).collect()
}

/// Parses `--initial-cluster`: `name=http://ip:port,...`. Ids are assigned by sorted name.
pub fn parse_initial_cluster(spec: &str) -> Result<Vec<PeerSpec>, SettingsError> {
    const WHAT: &str = "--initial-cluster";
    let mut peers: Vec<(String, String, SocketAddr)> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, url) = item
            .split_once('=')
            .ok_or_else(|| invalid(WHAT, format!("{item:?} is not name=URL")))?;
        if name.is_empty() {
            return Err(invalid(WHAT, format!("{item:?} has an empty name")));
        }
        if peers.iter().any(|(n, _, _)| n == name) {
            return Err(invalid(
                WHAT,
                format!("member {name:?} appears twice (one peer URL per member is supported)"),
            ));
        }
        let addr = parse_url(WHAT, url)?;
        peers.push((name.to_string(), url.to_string(), addr));
    }
    if peers.is_empty() {
        return Err(invalid(WHAT, "no member given"));
    }
    if peers.len() > MAX_MEMBERS {
        return Err(invalid(WHAT, format!("at most {MAX_MEMBERS} members")));
    }
    peers.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(peers
        .into_iter()
        .enumerate()
        .map(|(i, (name, peer_url, peer_addr))| PeerSpec {
            id: i as NodeId + 1,
            name,
            peer_url,
            peer_addr,
        })
        .collect())
}

impl Settings {
    /// This member's entry in the initial cluster.
    pub fn me(&self) -> Result<&PeerSpec, SettingsError> {
        self.initial_cluster
            .iter()
            .find(|p| p.name == self.name)
            .ok_or_else(|| {
                invalid(
                    "--name",
                    format!(
                        "{:?} is not one of the members of --initial-cluster ({})",
                        self.name,
                        self.initial_cluster
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }

    /// The engine's clock: its tick and how many ticks make a heartbeat interval and an
    /// election timeout.
    ///
    /// The tick is the longest whole number of milliseconds, at most [`TICK_MS_MAX`], that
    /// divides the heartbeat interval: 10 ms for the default 100 ms, so that heartbeats stay
    /// exact while the engine can act at a finer grain than a heartbeat. A member that loses
    /// its connection to the leader campaigns at once or a few ticks later (the survivors are
    /// staggered, see [`crate::engine::UNREACHABLE_LEADER_STAGGER`]), and a 100 ms tick would
    /// round those few ticks up to hundreds of milliseconds. The election timeout is rounded
    /// down to whole ticks.
    pub fn ticks(&self) -> Result<Ticks, SettingsError> {
        let hb = self.heartbeat_interval.as_millis();
        let el = self.election_timeout.as_millis();
        if hb == 0 {
            return Err(invalid("--heartbeat-interval", "must be at least 1 ms"));
        }
        if el < 5 * hb {
            return Err(invalid(
                "--election-timeout",
                format!("{el} ms must be at least 5 times --heartbeat-interval ({hb} ms)"),
            ));
        }
        if el > 50 * hb {
            return Err(invalid(
                "--election-timeout",
                format!("{el} ms must be at most 50 times --heartbeat-interval ({hb} ms)"),
            ));
        }
        let tick_ms = (1..=hb.min(u128::from(TICK_MS_MAX)))
            .rev()
            .find(|d| hb.is_multiple_of(*d))
            .expect("1 divides every interval");
        let election = u32::try_from(el / tick_ms)
            .map_err(|_| invalid("--election-timeout", format!("{el} ms is too long")))?;
        let heartbeat = (hb / tick_ms) as u32;
        debug_assert!(5 * heartbeat <= election && heartbeat >= 1);
        Ok(Ticks {
            tick: Duration::from_millis(tick_ms as u64),
            heartbeat,
            election,
        })
    }

    /// The cluster id every member derives from the token and the initial members.
    pub fn cluster_id(&self) -> u64 {
        let mut text = self.cluster_token.clone();
        for p in &self.initial_cluster {
            text.push(',');
            text.push_str(&p.name);
            text.push('=');
            text.push_str(&p.peer_url);
        }
        fnv1a(text.as_bytes())
    }

    /// Checks that the settings fit together.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.name.is_empty() {
            return Err(invalid("--name", "must not be empty"));
        }
        self.me()?;
        self.ticks()?;
        if self.listen_client.is_empty() {
            return Err(invalid("--listen-client-urls", "no URL given"));
        }
        if self.snapshot_count == 0 {
            return Err(invalid("--snapshot-count", "must be at least 1"));
        }
        if self.max_request_bytes == 0 || self.max_request_bytes > 32 << 20 {
            return Err(invalid(
                "--max-request-bytes",
                "must be between 1 byte and 32 MiB",
            ));
        }
        if self.quota_backend_bytes == 0 {
            return Err(invalid("--quota-backend-bytes", "must be positive"));
        }
        if self.cluster_token.is_empty() {
            return Err(invalid("--initial-cluster-token", "must not be empty"));
        }
        Ok(())
    }
}

/// FNV-1a: a stable hash, so that every member derives the same cluster id.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_ids_follow_sorted_names() {
        let peers =
            parse_initial_cluster("b=http://127.0.0.1:2,a=http://127.0.0.1:1,c=http://127.0.0.1:3")
                .unwrap();
        let names: Vec<_> = peers.iter().map(|p| (p.id, p.name.as_str())).collect();
        assert_eq!(names, vec![(1, "a"), (2, "b"), (3, "c")]);
    }

    #[test]
    fn bad_initial_cluster_is_explained() {
        for bad in [
            "",
            "a",
            "=http://127.0.0.1:1",
            "a=127.0.0.1:1",
            "a=http://localhost:1",
            "a=http://127.0.0.1:1,a=http://127.0.0.1:2",
            "a=https://127.0.0.1:1",
        ] {
            let err = parse_initial_cluster(bad).unwrap_err();
            assert!(
                err.to_string().contains("--initial-cluster"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn ticks_divide_the_heartbeat_and_are_at_most_10_ms() {
        let ticks = |hb: u64, el: u64| {
            let settings = Settings {
                name: "a".into(),
                data_dir: PathBuf::from("/nonexistent"),
                listen_client: Vec::new(),
                advertise_client_urls: Vec::new(),
                listen_peer: "127.0.0.1:1".parse().unwrap(),
                initial_cluster: Vec::new(),
                initial_cluster_state_new: true,
                cluster_token: "t".into(),
                heartbeat_interval: Duration::from_millis(hb),
                election_timeout: Duration::from_millis(el),
                snapshot_count: 1,
                quota_backend_bytes: 1,
                max_request_bytes: 1,
                engine: EngineKind::Raft,
            };
            settings
                .ticks()
                .map(|t| (t.tick.as_millis() as u64, t.heartbeat, t.election))
        };
        // etcd's defaults: a 10 ms tick, heartbeats every 10 ticks, elections after 100.
        assert_eq!(ticks(100, 1000).unwrap(), (10, 10, 100));
        assert_eq!(ticks(20, 200).unwrap(), (10, 2, 20));
        assert_eq!(ticks(25, 1000).unwrap(), (5, 5, 200));
        assert_eq!(ticks(7, 35).unwrap(), (7, 1, 5));
        assert_eq!(ticks(13, 100).unwrap(), (1, 13, 100));
        // Rounded down to whole ticks.
        assert_eq!(ticks(100, 1005).unwrap(), (10, 10, 100));
        assert!(ticks(0, 1000).is_err());
        assert!(ticks(100, 499).is_err());
        assert!(ticks(100, 5001).is_err());
        assert!(ticks(1 << 40, 1 << 45).is_err());
    }

    #[test]
    fn urls_parse() {
        assert_eq!(
            parse_urls("x", "http://127.0.0.1:2379, http://127.0.0.2:1/").unwrap(),
            vec![
                "127.0.0.1:2379".parse().unwrap(),
                "127.0.0.2:1".parse().unwrap()
            ]
        );
        assert!(parse_urls("x", "").is_err());
    }
}
