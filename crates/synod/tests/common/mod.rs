//! Test clusters of real `synod serve` processes on loopback.
//!
//! Every process a cluster starts is killed when the cluster is dropped, so a failing test
//! leaves nothing behind.

#![allow(dead_code)]

pub mod etcd;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port for a member to listen on.
///
/// Ports come from a block of this test process's own, below the kernel's ephemeral range
/// (32768 and up on Linux), so that no other process is handed the same port by a `bind` to
/// port 0 between our check and the member's own bind (which happened with bind-and-release
/// when test binaries ran side by side). A port found in use is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const BLOCK: u16 = 60;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 10_000 + (std::process::id() % 370) as u16 * BLOCK;
    for _ in 0..BLOCK {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % BLOCK;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    // The block is exhausted (many clusters in one process): fall back to the kernel's choice.
    TcpListener::bind("127.0.0.1:0")
        .expect("binding a loopback port")
        .local_addr()
        .expect("a bound address")
        .port()
}

/// One member's process and addresses.
pub struct Proc {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }
}

/// A cluster of `synod serve` processes.
pub struct Cluster {
    pub procs: Vec<Proc>,
    pub engine: String,
    pub dir: tempfile::TempDir,
    pub initial_cluster: String,
    pub extra: Vec<String>,
}

impl Cluster {
    /// Starts `n` members running `engine`, with extra flags for each.
    pub fn start(n: usize, engine: &str, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut procs = Vec::new();
        for i in 0..n {
            let name = format!("m{}", i + 1);
            procs.push(Proc {
                data_dir: dir.path().join(&name),
                log: dir.path().join(format!("{name}.log")),
                name,
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            });
        }
        let initial_cluster = procs
            .iter()
            .map(|p| format!("{}=http://127.0.0.1:{}", p.name, p.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            procs,
            engine: engine.to_string(),
            dir,
            initial_cluster,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster
    }

    /// Starts (or restarts) member `i`.
    pub fn spawn(&mut self, i: usize) {
        let p = &self.procs[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log)
            .expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_synod"))
            .arg("serve")
            .arg("--name")
            .arg(&p.name)
            .arg("--data-dir")
            .arg(&p.data_dir)
            .arg("--listen-client-urls")
            .arg(format!("http://127.0.0.1:{}", p.client_port))
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", p.peer_port))
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-token")
            .arg("synod-test")
            .arg("--engine")
            .arg(&self.engine)
            .arg("--heartbeat-interval")
            .arg("20")
            .arg("--election-timeout")
            .arg("200")
            .args(&self.extra)
            .env_remove("SYNOD_NAME")
            .env(
                "SYNOD_LOG_LEVEL",
                std::env::var("SYNOD_TEST_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .spawn()
            .expect("starting synod");
        self.procs[i].child = Some(child);
    }

    /// kill -9 of member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.procs[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether member `i`'s process is running (started and not exited).
    pub fn alive(&mut self, i: usize) -> bool {
        match self.procs[i].child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM to member `i`; waits for it to exit and returns whether it exited cleanly.
    pub fn terminate(&mut self, i: usize) -> bool {
        let Some(mut child) = self.procs[i].child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Comma-separated client endpoints of the running members.
    pub fn endpoints(&self) -> String {
        self.procs
            .iter()
            .filter(|p| p.child.is_some())
            .map(Proc::endpoint)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The logs of every member, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in &self.procs {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out.push_str(&format!("--- {} (last 40 lines)\n", p.name));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    pub fn data_dir(&self, i: usize) -> &Path {
        &self.procs[i].data_dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
    }
}

/// Runs etcdctl (v3 API) against `endpoints` and returns (success, stdout, stderr).
pub fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl is installed (the test command installs Debian's etcd-client)");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("feeding etcdctl");
        }
    }
    let out = child.wait_with_output().expect("etcdctl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Retries `f` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `etcdctl put` succeeds through `endpoints` (a leader is elected and the
/// cluster commits).
pub fn wait_ready(cluster: &Cluster) {
    let endpoints = cluster.endpoints();
    let ok = eventually(Duration::from_secs(30), || {
        let (ok, _, _) = etcdctl(&endpoints, &["put", "__ready", "1"], None);
        ok.then_some(())
    });
    assert!(
        ok.is_some(),
        "cluster never became ready\n{}",
        cluster.logs()
    );
}
