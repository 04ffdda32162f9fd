//! `synod bench failover`: one trial of leader failover, for synod and etcd alike.
//!
//! It waits until every member knows the leader and commits a write made through it, finds
//! the leader (the member whose Maintenance.Status names itself), kills its process with
//! SIGKILL, and measures the time from the kill to the first write that succeeds through a
//! surviving member. Restarting the killed member is the caller's business (the comparison
//! script restarts it between trials).
//!
//! How writes are probed after the kill: a new put starts every `--probe-interval` (5 ms),
//! through the survivors in turn, each with its own timeout (1 s), so that the measurement does
//! not depend on how a server treats a write that arrives while it has no leader. etcd 3.4 fails such a
//! write at once ("raft proposal dropped"), and one forwarded to the dead leader before the
//! followers noticed is lost until the server's own deadline; a later probe gets through as
//! soon as a new leader commits. The figure is therefore accurate to about one probe interval
//! plus one commit.
//!
//! ```text
//! synod bench failover --endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 \
//!     --pids 4101,4102,4103 --json
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;
use etcd_client::{Client, ConnectOptions, KvClient};
use serde::{Deserialize, Serialize};

use super::parse_duration;

/// The most probe writes in flight at once after the kill, whatever the interval and timeout.
/// The probes share one connection per survivor, and a server may cap the streams of one
/// HTTP/2 connection (hyper's default is 200).
const PROBES_IN_FLIGHT_MAX: usize = 300;

/// The key the probes and the readiness check write.
const PROBE_KEY: &str = "bench/failover";

/// How long to wait between two readiness checks of a member that is not ready yet.
const READY_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Flags of `synod bench failover`.
#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// Client endpoints of every member (host:port or http://host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    /// The process id of each member, in the order of --endpoints. The leader's is killed
    /// with SIGKILL.
    #[arg(long, value_delimiter = ',', required = true)]
    pub pids: Vec<u32>,
    /// Before the kill, wait at most this long for every member to know the leader and to
    /// commit a write made through it.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub ready_timeout: Duration,
    /// After the kill, start a write through a survivor this often.
    #[arg(long, value_parser = parse_duration, default_value = "5ms")]
    pub probe_interval: Duration,
    /// Give up on one probe write after this long. Probes must not pile up: a write that a
    /// follower forwarded to the dead leader is never answered, and the in-flight probes are
    /// capped (interval × cap must exceed the timeout, or probing stalls until they expire).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub attempt_timeout: Duration,
    /// Fail the trial if no write succeeds this long after the kill.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub give_up_after: Duration,
    /// Print the trial as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What one trial measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    /// The endpoint of the member that led and was killed.
    pub leader_endpoint: String,
    /// Its process id.
    pub leader_pid: u32,
    /// From the return of kill(SIGKILL) to the answer of the first successful write.
    pub failover_ms: f64,
    /// Probe writes started after the kill, the successful one included.
    pub attempts: u64,
    /// Probe writes that failed or timed out before the first success.
    pub failed_attempts: u64,
    /// The first failed probe's error, if any.
    pub first_error: Option<String>,
    /// The endpoint of the member that leads after the failover, if a survivor said.
    pub new_leader_endpoint: Option<String>,
}

/// One member as the readiness check saw it.
struct Member {
    endpoint: String,
    pid: u32,
    client: Client,
    member_id: u64,
    leader: u64,
}

/// Runs one trial and prints it.
pub async fn run(args: FailoverArgs) -> anyhow::Result<()> {
    ensure!(
        args.endpoints.len() == args.pids.len(),
        "--endpoints names {} members but --pids {}",
        args.endpoints.len(),
        args.pids.len()
    );
    ensure!(
        args.endpoints.len() >= 3,
        "a failover needs at least 3 members, so that 2 survive"
    );
    ensure!(
        !args.probe_interval.is_zero(),
        "--probe-interval must be positive"
    );
    ensure!(
        args.probe_interval * PROBES_IN_FLIGHT_MAX as u32 > args.attempt_timeout,
        "--attempt-timeout {:?} is longer than {PROBES_IN_FLIGHT_MAX} probe intervals of {:?}: \
         probing would stall while the probes in flight wait",
        args.attempt_timeout,
        args.probe_interval
    );
    let trial = run_trial(&args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&trial).expect("a trial serializes")
        );
    } else {
        println!(
            "killed the leader {} (pid {}); the first write succeeded {:.1} ms later, after {} \
             attempts ({} failed); new leader {}",
            trial.leader_endpoint,
            trial.leader_pid,
            trial.failover_ms,
            trial.attempts,
            trial.failed_attempts,
            trial.new_leader_endpoint.as_deref().unwrap_or("unknown"),
        );
    }
    Ok(())
}

async fn run_trial(args: &FailoverArgs) -> anyhow::Result<Trial> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(args.attempt_timeout);
    let ready_deadline = Instant::now() + args.ready_timeout;
    let mut members = Vec::with_capacity(args.endpoints.len());
    for (endpoint, &pid) in args.endpoints.iter().zip(&args.pids) {
        let endpoint = endpoint.trim().to_string();
        let member = wait_ready(&endpoint, pid, options.clone(), ready_deadline).await?;
        members.push(member);
    }
    let leader_id = members[0].leader;
    ensure!(
        members.iter().all(|m| m.leader == leader_id),
        "the members name different leaders: {}",
        members
            .iter()
            .map(|m| format!("{} says {:x}", m.endpoint, m.leader))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let leader_index = members
        .iter()
        .position(|m| m.member_id == leader_id)
        .with_context(|| format!("no endpoint is the leader {leader_id:x}"))?;
    let leader = members.remove(leader_index);
    let survivors: Vec<KvClient> = members.iter().map(|m| m.client.kv_client()).collect();

    kill(leader.pid)?;
    let killed_at = Instant::now();
    let probed = probe_until_write(args, &survivors, killed_at).await?;
    let new_leader_endpoint = find_leader(&mut members).await;
    Ok(Trial {
        leader_endpoint: leader.endpoint,
        leader_pid: leader.pid,
        failover_ms: probed.elapsed.as_secs_f64() * 1e3,
        attempts: probed.attempts,
        failed_attempts: probed.failed_attempts,
        first_error: probed.first_error,
        new_leader_endpoint,
    })
}

/// Connects to `endpoint` and waits until it knows a leader and commits a write.
async fn wait_ready(
    endpoint: &str,
    pid: u32,
    options: ConnectOptions,
    deadline: Instant,
) -> anyhow::Result<Member> {
    let mut last_error = String::from("never tried");
    while Instant::now() < deadline {
        match try_ready(endpoint, options.clone()).await {
            Ok((client, member_id, leader)) => {
                return Ok(Member {
                    endpoint: endpoint.to_string(),
                    pid,
                    client,
                    member_id,
                    leader,
                });
            }
            Err(e) => last_error = format!("{e:#}"),
        }
        tokio::time::sleep(READY_RETRY_PAUSE).await;
    }
    bail!("{endpoint} was not ready in time: {last_error}")
}

/// One readiness check: (the client, the member's id, the leader it names).
async fn try_ready(endpoint: &str, options: ConnectOptions) -> anyhow::Result<(Client, u64, u64)> {
    let mut client = Client::connect([endpoint], Some(options)).await?;
    let status = client.status().await?;
    let member_id = status
        .header()
        .map(|h| h.member_id())
        .context("a status without a header")?;
    ensure!(status.leader() != 0, "no leader yet");
    client.put(PROBE_KEY, "ready", None).await?;
    // The write may have taken an election: ask again who leads.
    let leader = client.status().await?.leader();
    ensure!(leader != 0, "no leader after the write");
    Ok((client, member_id, leader))
}

/// Sends SIGKILL to `pid` (kill -9), and checks that the signal was delivered.
fn kill(pid: u32) -> anyhow::Result<()> {
    ensure!(pid > 1, "refusing to kill pid {pid}");
    let status = Command::new("kill")
        .args(["-s", "KILL", &pid.to_string()])
        .status()
        .context("running kill")?;
    ensure!(status.success(), "kill -9 {pid} failed ({status})");
    Ok(())
}

/// What probing found.
struct Probed {
    elapsed: Duration,
    attempts: u64,
    failed_attempts: u64,
    first_error: Option<String>,
}

/// Starts a write every probe interval through the survivors in turn until one succeeds.
/// Bounded: it gives up `--give-up-after` after the kill.
async fn probe_until_write(
    args: &FailoverArgs,
    survivors: &[KvClient],
    killed_at: Instant,
) -> anyhow::Result<Probed> {
    assert!(!survivors.is_empty(), "probing without a survivor");
    let give_up = tokio::time::sleep_until((killed_at + args.give_up_after).into());
    tokio::pin!(give_up);
    let mut ticker = tokio::time::interval(args.probe_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut attempts = 0u64;
    let mut failed_attempts = 0u64;
    let mut first_error = None;
    let elapsed = loop {
        tokio::select! {
            _ = ticker.tick(), if in_flight.len() < PROBES_IN_FLIGHT_MAX => {
                let mut kv = survivors[attempts as usize % survivors.len()].clone();
                let timeout = args.attempt_timeout;
                let value = format!("probe {attempts}");
                attempts += 1;
                in_flight.spawn(async move {
                    match tokio::time::timeout(timeout, kv.put(PROBE_KEY, value, None)).await {
                        Ok(Ok(_)) => Ok(Instant::now()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                    }
                });
            }
            Some(joined) = in_flight.join_next() => {
                match joined.context("a probe task panicked")? {
                    Ok(answered_at) => break answered_at.saturating_duration_since(killed_at),
                    Err(e) => {
                        failed_attempts += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            _ = &mut give_up => {
                in_flight.abort_all();
                bail!(
                    "no write succeeded within {:?} of the kill ({attempts} attempts; first \
                     error: {})",
                    args.give_up_after,
                    first_error.as_deref().unwrap_or("none")
                );
            }
        }
    };
    in_flight.abort_all();
    assert!(
        failed_attempts < attempts,
        "the successful attempt is not a failure"
    );
    Ok(Probed {
        elapsed,
        attempts,
        failed_attempts,
        first_error,
    })
}

/// The endpoint of the member the survivors name as leader, if one answers within a second.
async fn find_leader(survivors: &mut [Member]) -> Option<String> {
    let mut leader = 0;
    for member in survivors.iter_mut() {
        let asked = tokio::time::timeout(Duration::from_secs(1), member.client.status()).await;
        if let Ok(Ok(status)) = asked
            && status.leader() != 0
        {
            leader = status.leader();
            break;
        }
    }
    survivors
        .iter()
        .find(|m| m.member_id == leader)
        .map(|m| m.endpoint.clone())
}
