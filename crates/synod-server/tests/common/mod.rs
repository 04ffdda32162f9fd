//! Helpers shared by the in-process member tests.

#![allow(dead_code)] // each test file uses its own subset

use std::time::Duration;

use synod_server::settings::{EngineKind, Settings, parse_initial_cluster};

/// Settings of member `a` (id 1) of a two-member cluster whose other member, `b`, the test
/// plays itself; `a` listens on loopback ports picked by the system.
pub fn settings(dir: &std::path::Path, heartbeat: Duration, election: Duration) -> Settings {
    let peer = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    Settings {
        name: "a".into(),
        data_dir: dir.join("a"),
        listen_client: vec!["127.0.0.1:0".parse().unwrap()],
        advertise_client_urls: vec!["http://127.0.0.1:1".into()],
        listen_peer: peer,
        initial_cluster: parse_initial_cluster(&format!("a=http://{peer},b=http://127.0.0.1:9"))
            .unwrap(),
        initial_cluster_state_new: true,
        cluster_token: "token-1".into(),
        heartbeat_interval: heartbeat,
        election_timeout: election,
        snapshot_count: 1000,
        quota_backend_bytes: 1 << 30,
        max_request_bytes: 1 << 20,
        engine: EngineKind::Raft,
    }
}
