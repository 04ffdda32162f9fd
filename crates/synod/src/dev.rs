//! `synod dev`: a three-member cluster on loopback in one process, on etcd's local-cluster
//! ports (clients 2379, 22379, 32379; peers 2380, 22380, 32380).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use synod_server::settings::{
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_QUOTA_BACKEND_BYTES, DEFAULT_SNAPSHOT_COUNT, EngineKind,
    Settings, parse_initial_cluster,
};

/// Flags of `synod dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the members keep their data (one directory each). Run again, the cluster resumes
    /// from it.
    #[arg(long, env = "SYNOD_DATA_DIR", default_value = "synod-dev-data")]
    data_dir: PathBuf,
    /// The consensus engine: raft or multipaxos.
    #[arg(long, env = "SYNOD_ENGINE", default_value = "raft")]
    engine: EngineKind,
}

const MEMBERS: [(&str, u16, u16); 3] = [
    ("infra1", 2379, 2380),
    ("infra2", 22379, 22380),
    ("infra3", 32379, 32380),
];

/// The settings of each dev member.
pub fn dev_settings(data_dir: &std::path::Path, engine: EngineKind) -> Vec<Settings> {
    let cluster = MEMBERS
        .iter()
        .map(|(name, _, peer)| format!("{name}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let initial_cluster = parse_initial_cluster(&cluster).expect("the dev cluster spec parses");
    MEMBERS
        .iter()
        .map(|(name, client, peer)| Settings {
            name: name.to_string(),
            data_dir: data_dir.join(name),
            listen_client: vec![([127, 0, 0, 1], *client).into()],
            advertise_client_urls: vec![format!("http://127.0.0.1:{client}")],
            listen_peer: ([127, 0, 0, 1], *peer).into(),
            initial_cluster: initial_cluster.clone(),
            initial_cluster_state_new: true,
            cluster_token: "synod-dev-cluster".into(),
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            quota_backend_bytes: DEFAULT_QUOTA_BACKEND_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            engine,
        })
        .collect()
}

/// Runs the dev cluster until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let mut members = Vec::new();
    for settings in dev_settings(&args.data_dir, args.engine) {
        let name = settings.name.clone();
        match synod_server::start(settings).await {
            Ok(member) => members.push(member),
            Err(e) => {
                for member in &members {
                    member.stopper().stop();
                }
                for member in members {
                    let _ = member.wait().await;
                }
                return Err(anyhow::anyhow!("starting {name}: {e}"));
            }
        }
    }
    let endpoints = MEMBERS
        .iter()
        .map(|(_, client, _)| format!("127.0.0.1:{client}"))
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "synod dev: a 3-member {} cluster, data in {}",
        args.engine,
        args.data_dir.display()
    );
    for (name, client, peer) in MEMBERS {
        println!("  {name}: clients http://127.0.0.1:{client}, peers http://127.0.0.1:{peer}");
    }
    println!();
    println!("Try:");
    println!("  etcdctl --endpoints={endpoints} put hello world");
    println!("  etcdctl --endpoints={endpoints} endpoint status -w table");
    println!();
    println!("Ctrl-C stops the cluster; run again to resume from its data.");
    crate::shutdown_signal().await;
    println!("synod dev: stopping");
    for member in &members {
        member.stopper().stop();
    }
    let mut result = Ok(());
    for member in members {
        if let Err(e) = member.wait().await {
            result = Err(anyhow::anyhow!(e));
        }
    }
    result
}
