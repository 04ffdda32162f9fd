//! `synod serve` settings: flags (etcd's names), each also readable from a `SYNOD_*`
//! environment variable or a TOML config file (`--config-file`), in that order of precedence.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use synod_server::settings::{
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_QUOTA_BACKEND_BYTES, DEFAULT_SNAPSHOT_COUNT, EngineKind,
    Settings, parse_initial_cluster, parse_url, parse_urls,
};

/// Flags of `synod serve`.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// A TOML file with any of these settings, keyed by flag name (`name = "infra1"`,
    /// `heartbeat-interval = 100`). Flags and environment variables override it.
    #[arg(long, env = "SYNOD_CONFIG_FILE")]
    config_file: Option<PathBuf>,
    /// This member's name, as it appears in --initial-cluster. [default: default]
    #[arg(long, env = "SYNOD_NAME")]
    name: Option<String>,
    /// Where this member keeps its data. [default: <name>.synod]
    #[arg(long, env = "SYNOD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Comma-separated URLs to serve clients on. [default: http://127.0.0.1:2379]
    #[arg(long, env = "SYNOD_LISTEN_CLIENT_URLS")]
    listen_client_urls: Option<String>,
    /// Client URLs to tell the rest of the cluster about. [default: the listen URLs]
    #[arg(long, env = "SYNOD_ADVERTISE_CLIENT_URLS")]
    advertise_client_urls: Option<String>,
    /// The URL to serve peers on. [default: http://127.0.0.1:2380]
    #[arg(long, env = "SYNOD_LISTEN_PEER_URLS")]
    listen_peer_urls: Option<String>,
    /// This member's peer URL as the others reach it. [default: the listen peer URL]
    #[arg(long, env = "SYNOD_INITIAL_ADVERTISE_PEER_URLS")]
    initial_advertise_peer_urls: Option<String>,
    /// The initial members: name=URL,... [default: <name>=<advertise peer URL>]
    #[arg(long, env = "SYNOD_INITIAL_CLUSTER")]
    initial_cluster: Option<String>,
    /// `new` to bootstrap a cluster, `existing` to restart a member of one. [default: new]
    #[arg(long, env = "SYNOD_INITIAL_CLUSTER_STATE")]
    initial_cluster_state: Option<String>,
    /// A token that keeps members of different clusters apart. [default: synod-cluster]
    #[arg(long, env = "SYNOD_INITIAL_CLUSTER_TOKEN")]
    initial_cluster_token: Option<String>,
    /// Milliseconds between heartbeats. [default: 100]
    #[arg(long, env = "SYNOD_HEARTBEAT_INTERVAL")]
    heartbeat_interval: Option<u64>,
    /// Milliseconds without a leader before an election. [default: 1000]
    #[arg(long, env = "SYNOD_ELECTION_TIMEOUT")]
    election_timeout: Option<u64>,
    /// Applied entries between snapshots (the log is compacted at each). [default: 100000]
    #[arg(long, env = "SYNOD_SNAPSHOT_COUNT")]
    snapshot_count: Option<u64>,
    /// Writes that add data are refused once the store is this large. [default: 2 GiB]
    #[arg(long, env = "SYNOD_QUOTA_BACKEND_BYTES")]
    quota_backend_bytes: Option<u64>,
    /// The largest client request accepted. [default: 1.5 MiB]
    #[arg(long, env = "SYNOD_MAX_REQUEST_BYTES")]
    max_request_bytes: Option<u64>,
    /// The consensus engine: raft or multipaxos. [default: raft]
    #[arg(long, env = "SYNOD_ENGINE")]
    engine: Option<String>,
}

/// The config file: the same settings, keyed by flag name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigFile {
    name: Option<String>,
    data_dir: Option<PathBuf>,
    listen_client_urls: Option<String>,
    advertise_client_urls: Option<String>,
    listen_peer_urls: Option<String>,
    initial_advertise_peer_urls: Option<String>,
    initial_cluster: Option<String>,
    initial_cluster_state: Option<String>,
    initial_cluster_token: Option<String>,
    heartbeat_interval: Option<u64>,
    election_timeout: Option<u64>,
    snapshot_count: Option<u64>,
    quota_backend_bytes: Option<u64>,
    max_request_bytes: Option<u64>,
    engine: Option<String>,
}

impl ServeArgs {
    /// Merges flags, environment and file, fills defaults and validates.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading --config-file {}", path.display()))?;
                toml::from_str::<ConfigFile>(&text)
                    .with_context(|| format!("in --config-file {}", path.display()))?
            }
            None => ConfigFile::default(),
        };
        let name = self
            .name
            .or(file.name)
            .unwrap_or_else(|| "default".to_string());
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(format!("{name}.synod")));
        let listen_client_urls = self
            .listen_client_urls
            .or(file.listen_client_urls)
            .unwrap_or_else(|| "http://127.0.0.1:2379".into());
        let listen_client = parse_urls("--listen-client-urls", &listen_client_urls)?;
        let advertise_client_urls = split(
            &self
                .advertise_client_urls
                .or(file.advertise_client_urls)
                .unwrap_or_else(|| listen_client_urls.clone()),
        );
        for url in &advertise_client_urls {
            parse_url("--advertise-client-urls", url)?;
        }
        let listen_peer_urls = self
            .listen_peer_urls
            .or(file.listen_peer_urls)
            .unwrap_or_else(|| "http://127.0.0.1:2380".into());
        let listen_peer = match parse_urls("--listen-peer-urls", &listen_peer_urls)?.as_slice() {
            [one] => *one,
            _ => bail!("invalid --listen-peer-urls: give exactly one URL"),
        };
        let advertise_peer = self
            .initial_advertise_peer_urls
            .or(file.initial_advertise_peer_urls)
            .unwrap_or_else(|| listen_peer_urls.clone());
        let initial_cluster = self
            .initial_cluster
            .or(file.initial_cluster)
            .unwrap_or_else(|| format!("{name}={advertise_peer}"));
        let initial_cluster = parse_initial_cluster(&initial_cluster)?;
        let state = self
            .initial_cluster_state
            .or(file.initial_cluster_state)
            .unwrap_or_else(|| "new".into());
        let initial_cluster_state_new = match state.as_str() {
            "new" => true,
            "existing" => false,
            other => {
                bail!("invalid --initial-cluster-state: {other:?} is neither new nor existing")
            }
        };
        let engine: EngineKind = self
            .engine
            .or(file.engine)
            .unwrap_or_else(|| "raft".into())
            .parse()?;
        let max_request_bytes = self
            .max_request_bytes
            .or(file.max_request_bytes)
            .unwrap_or(DEFAULT_MAX_REQUEST_BYTES as u64);
        let settings = Settings {
            name,
            data_dir,
            listen_client,
            advertise_client_urls,
            listen_peer,
            initial_cluster,
            initial_cluster_state_new,
            cluster_token: self
                .initial_cluster_token
                .or(file.initial_cluster_token)
                .unwrap_or_else(|| "synod-cluster".into()),
            heartbeat_interval: Duration::from_millis(
                self.heartbeat_interval
                    .or(file.heartbeat_interval)
                    .unwrap_or(100),
            ),
            election_timeout: Duration::from_millis(
                self.election_timeout
                    .or(file.election_timeout)
                    .unwrap_or(1000),
            ),
            snapshot_count: self
                .snapshot_count
                .or(file.snapshot_count)
                .unwrap_or(DEFAULT_SNAPSHOT_COUNT),
            quota_backend_bytes: self
                .quota_backend_bytes
                .or(file.quota_backend_bytes)
                .unwrap_or(DEFAULT_QUOTA_BACKEND_BYTES),
            max_request_bytes: usize::try_from(max_request_bytes).unwrap_or(usize::MAX),
            engine,
        };
        settings.validate()?;
        Ok(settings)
    }
}

fn split(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}
