//! Helpers for tests that talk to a cluster through the `etcd-client` crate: an etcd v3 client
//! written independently of synod, so that these tests check synod against someone else's
//! reading of etcd's protocol.

use std::future::Future;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};
use tonic::Code;

use super::Cluster;

/// How long one request may take before a test calls it a hang.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A runtime for one test; each test drives its own.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn options() -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(REQUEST_TIMEOUT)
}

/// A client for every running member of `cluster`.
pub async fn connect(cluster: &Cluster) -> Client {
    connect_to(&cluster.endpoints(), options()).await
}

/// A client for member `i` alone.
pub async fn connect_member(cluster: &Cluster, i: usize) -> Client {
    connect_to(&cluster.procs[i].endpoint(), options()).await
}

/// A client for member `i` alone that asks for a leader (`hasleader: true` metadata).
pub async fn connect_member_requiring_leader(cluster: &Cluster, i: usize) -> Client {
    connect_to(
        &cluster.procs[i].endpoint(),
        options().with_require_leader(true),
    )
    .await
}

async fn connect_to(endpoints: &str, options: ConnectOptions) -> Client {
    let urls: Vec<String> = endpoints
        .split(',')
        .filter(|e| !e.is_empty())
        .map(|e| format!("http://{e}"))
        .collect();
    let connecting = Client::connect(urls, Some(options));
    tokio::time::timeout(REQUEST_TIMEOUT, connecting)
        .await
        .expect("connecting does not hang")
        .expect("connecting to the cluster")
}

/// Awaits `future` for at most [`REQUEST_TIMEOUT`], panicking with `what` on a hang.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(REQUEST_TIMEOUT, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no answer within {REQUEST_TIMEOUT:?}"),
    }
}

/// Waits until a write commits through `client` (a leader is elected and a quorum answers).
pub async fn wait_ready(cluster: &Cluster, client: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt =
            tokio::time::timeout(Duration::from_secs(3), client.put("__ready", "1", None));
        if let Ok(Ok(_)) = attempt.await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster never became ready\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every running member knows the leader (Maintenance.Status) and commits a write
/// made through it.
///
/// The write matters after a restart: a follower forwards a write to the leader over its own
/// link, which may still be redialling after the leader came back, and a write forwarded then
/// is lost and answers "request timed out" only after the server's 7 s deadline.
pub async fn wait_all_ready(cluster: &Cluster) {
    for (i, p) in cluster.procs.iter().enumerate() {
        if p.child.is_none() {
            continue;
        }
        let mut client = connect_member(cluster, i).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(3), client.status()).await;
            if let Ok(Ok(status)) = attempt
                && status.leader() != 0
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member {} never knew a leader\n{}",
                p.name,
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        loop {
            let put = client.put("__ready", p.name.as_str(), None);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), put).await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no write commits through member {}\n{}",
                p.name,
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Prints the members' logs if the test panics while it is alive (it keeps the paths, not a
/// borrow of the cluster, so that the test can still kill and restart members).
pub struct LogsOnPanic(Vec<(String, u16, u16, std::path::PathBuf)>);

impl LogsOnPanic {
    pub fn new(cluster: &Cluster) -> LogsOnPanic {
        LogsOnPanic(
            cluster
                .procs
                .iter()
                .map(|p| (p.name.clone(), p.client_port, p.peer_port, p.log.clone()))
                .collect(),
        )
    }
}

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (name, client_port, peer_port, log) in &self.0 {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "--- {name} (client port {client_port}, peer port {peer_port}), last 60 lines"
            );
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// The gRPC status of a failed request (panics on any other kind of failure).
pub fn grpc_status(error: &etcd_client::Error) -> (Code, String) {
    match error {
        etcd_client::Error::GRpcStatus(status) => (status.code(), status.message().to_string()),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// Asserts that `result` failed with exactly `code` and `message`.
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, etcd_client::Error>,
    code: Code,
    message: &str,
) {
    match result {
        Ok(value) => panic!("expected {code:?} {message:?}, got success: {value:?}"),
        Err(error) => {
            assert_eq!(
                grpc_status(&error),
                (code, message.to_string()),
                "the wrong error: {error:?}"
            );
        }
    }
}

/// Reads every key under `prefix` (linearizable) as (key, value) strings.
pub async fn read_prefix(client: &mut Client, prefix: &str) -> Vec<(String, String)> {
    let response = within(
        "reading a prefix",
        client.get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await
    .expect("reading a prefix");
    response
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
            )
        })
        .collect()
}
