//! Leader failure under load: kill -9 the leader while several clients write, check that a new
//! leader takes over, that a survivor campaigned as soon as the kill closed the leader's
//! connections (not after an election timeout), that writes resume, that no acknowledged
//! write is lost, and that the old leader restarts and catches up through a snapshot (the
//! others compacted their logs meanwhile).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, wait_ready};
use etcd_client::{Client, ConnectOptions, GetOptions};

const WRITERS: usize = 4;

/// What a member logs when it campaigns because its connection from leader `id` closed.
fn early_campaign_line(id: u64) -> String {
    format!(
        "lost the connection to the leader (member {id}); campaigning without waiting for the election timeout"
    )
}

async fn connect(endpoints: &[String]) -> Client {
    let options = ConnectOptions::new()
        .with_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(1));
    Client::connect(endpoints, Some(options))
        .await
        .expect("connecting")
}

/// Which member (by index) leads, asked of member `i`.
async fn leader_of(endpoint: &str) -> Option<(u64, u64, u64)> {
    let mut client = connect(&[endpoint.to_string()]).await;
    let status = tokio::time::timeout(Duration::from_secs(2), client.status())
        .await
        .ok()?
        .ok()?;
    let member = status.header()?.member_id();
    Some((member, status.leader(), status.raft_applied_index()))
}

fn leader_kill9(engine: &str) {
    // Small snapshots, so the logs are compacted while the old leader is down.
    let mut cluster = Cluster::start(3, engine, &["--snapshot-count", "100"]);
    wait_ready(&cluster);
    let endpoints: Vec<String> = cluster.procs.iter().map(|p| p.endpoint()).collect();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        // member id -> index in the cluster
        let mut index_of = BTreeMap::new();
        for (i, endpoint) in endpoints.iter().enumerate() {
            let (id, _, _) = leader_of(endpoint).await.expect("status");
            index_of.insert(id, i);
        }
        let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let last_ack = Arc::new(Mutex::new(Instant::now()));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let endpoints = endpoints.clone();
            let acked = acked.clone();
            let stop = stop.clone();
            let last_ack = last_ack.clone();
            writers.push(tokio::spawn(async move {
                // Each writer starts on a different member, and moves on when one fails.
                let mut at = w % endpoints.len();
                let mut client = connect(&endpoints[at..=at]).await;
                let mut n = 0u64;
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline
                {
                    let key = format!("w{w}/{n:06}");
                    let value = format!("v{n}");
                    match client.put(key.clone(), value.clone(), None).await {
                        Ok(_) => {
                            acked.lock().unwrap().insert(key, value);
                            *last_ack.lock().unwrap() = Instant::now();
                            n += 1;
                        }
                        Err(_) => {
                            at = (at + 1) % endpoints.len();
                            client = connect(&endpoints[at..=at]).await;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before_kill = acked.lock().unwrap().len();
        assert!(before_kill > 20, "too few writes before the kill: {before_kill}");
        // Find and kill the leader.
        let (_, leader, _) = leader_of(&endpoints[0]).await.expect("status");
        let victim = index_of[&leader];
        cluster.kill(victim);
        let killed_at = Instant::now();
        let at_kill = acked.lock().unwrap().len();
        // Writes resume: new acknowledgements arrive after the kill.
        let resumed = loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if acked.lock().unwrap().len() > at_kill + 50 {
                break true;
            }
            if killed_at.elapsed() > Duration::from_secs(20) {
                break false;
            }
        };
        assert!(resumed, "writes did not resume after the leader was killed\n{}", cluster.logs());
        // The survivors did not wait out the election timeout: the kill closed the leader's
        // connections, and a survivor campaigned at once.
        let early = early_campaign_line(leader);
        let campaigned_early: Vec<usize> = (0..3)
            .filter(|&i| i != victim)
            .filter(|&i| {
                std::fs::read_to_string(&cluster.procs[i].log)
                    .unwrap_or_default()
                    .lines()
                    .any(|line| line.contains(&early))
            })
            .collect();
        assert!(
            !campaigned_early.is_empty(),
            "no survivor campaigned early when the killed leader's connections closed\n{}",
            cluster.logs()
        );
        // Keep writing long enough for the survivors to compact past the victim's log.
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for writer in writers {
            writer.await.expect("a writer");
        }
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() > at_kill + 100, "only {} writes in all", acked.len());
        // A new leader, among the survivors.
        let survivor = (victim + 1) % 3;
        let (_, new_leader, _) = leader_of(&endpoints[survivor]).await.expect("status");
        assert_ne!(new_leader, leader, "the killed member still leads");
        assert_ne!(new_leader, 0, "no leader after the kill");

        // The old leader restarts and catches up.
        cluster.spawn(victim);
        let caught_up = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some((_, _, theirs)) = leader_of(&endpoints[survivor]).await else {
                    continue;
                };
                if let Some((_, l, mine)) = leader_of(&endpoints[victim]).await
                    && l != 0
                    && mine >= theirs
                {
                    return;
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(30), caught_up)
            .await
            .is_err()
        {
            let mut statuses = Vec::new();
            for endpoint in &endpoints {
                statuses.push((endpoint.clone(), leader_of(endpoint).await));
            }
            panic!(
                "the restarted member {victim} did not catch up; (member, leader, applied): {statuses:?}\n{}",
                cluster.logs()
            );
        }
        let log = std::fs::read_to_string(&cluster.procs[victim].log).unwrap_or_default();
        assert!(
            log.contains("restored the state machine from a snapshot"),
            "the restarted member caught up without a snapshot, so the snapshot path was not exercised\n{}",
            cluster.logs()
        );

        // No acknowledged write is lost, on any member (each read locally once caught up).
        for endpoint in &endpoints {
            let mut client = connect(std::slice::from_ref(endpoint)).await;
            let mut found = BTreeMap::new();
            for w in 0..WRITERS {
                let response = client
                    .get(
                        format!("w{w}/"),
                        Some(GetOptions::new().with_prefix().with_serializable()),
                    )
                    .await
                    .expect("a serializable read");
                for kv in response.kvs() {
                    found.insert(
                        kv.key_str().expect("utf-8").to_string(),
                        kv.value_str().expect("utf-8").to_string(),
                    );
                }
            }
            let missing: Vec<_> = acked
                .iter()
                .filter(|(k, v)| found.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .take(10)
                .collect();
            assert!(
                missing.is_empty(),
                "{endpoint} lost acknowledged writes, e.g. {missing:?} ({} acknowledged, {} found)",
                acked.len(),
                found.len()
            );
        }
    });
}

#[test]
fn raft_leader_kill9_loses_no_acknowledged_write() {
    leader_kill9("raft");
}

#[test]
fn multipaxos_leader_kill9_loses_no_acknowledged_write() {
    leader_kill9("multipaxos");
}
