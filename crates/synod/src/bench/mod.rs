//! `synod bench`: a closed-loop load generator for any server that speaks etcd's v3 API.
//!
//! It drives synod and etcd through the same third-party client (the `etcd-client` crate), so
//! that their figures are comparable. Each of `--clients` tasks sends one request, waits for
//! the answer, records its latency and sends the next (a closed loop: the offered load is
//! whatever the server can take). The clients share `--conns` gRPC connections round-robin;
//! connection `i` goes to endpoint `i mod endpoints`, as etcd's own benchmark tool does.
//!
//! A run has four phases: connect, preload (the read and compare-and-swap workloads need their
//! keys to exist), warm-up (requests sent but not recorded), and measurement, which ends after
//! `--duration` or `--total` requests. Every phase is bounded in time: requests time out after
//! `--timeout`, and a run by count stops after `--duration` too (ten minutes unless given).
//!
//! ```text
//! synod bench --endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 \
//!     --clients 64 --conns 8 --workload get --duration 10s
//! ```
//!
//! Two tools sit beside the load generator, for `bench/compare.sh`, which compares synod with
//! etcd: `synod bench failover` times one leader failover, and `synod bench report` turns the
//! comparison's raw results into BENCHMARKS.md and its plots.
//!
//! Modules: [`workload`] (what one request does), [`driver`] (the closed loops and the clock),
//! [`report`] (one run's figures, as a table or JSON), [`progress`] (the bar on stderr),
//! [`failover`] (one failover trial); for `synod bench report`, [`results`] (the comparison's
//! raw results and the rule that picks a run among rounds), [`targets`] (issue 7's targets,
//! judged), [`markdown`] (the document), [`plots`] (the PNGs) and [`compare`] (the command).

pub mod compare;
pub mod cpu;
pub mod driver;
pub mod failover;
pub mod floor;
pub mod markdown;
pub mod plots;
pub mod progress;
pub mod report;
pub mod results;
pub mod targets;
pub mod workload;

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use etcd_client::{Client, ConnectOptions};

use self::driver::Plan;
use self::progress::Progress;
use self::workload::Workload;

/// The length of a run by count (`--total`) when `--duration` is not given: a stuck server
/// must not keep the run going forever.
pub const TOTAL_RUN_DURATION_MAX: Duration = Duration::from_secs(600);

/// The length of a run when neither `--duration` nor `--total` is given.
pub const RUN_DURATION_DEFAULT: Duration = Duration::from_secs(10);

/// Flags of `synod bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A tool beside the load generator; without one, `synod bench` runs a load.
    #[command(subcommand)]
    pub tool: Option<BenchTool>,
    /// Client endpoints (host:port or http://host:port), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
    )]
    pub endpoints: Vec<String>,
    /// Concurrent closed-loop clients: each has one request outstanding at a time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub clients: u32,
    /// gRPC connections, shared round-robin by the clients (at most one per client is used).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,
    /// How long to measure, e.g. 10s, 500ms, 2m (default 10s; with --total, an upper bound).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many measured requests (or after --duration, whichever comes first).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub total: Option<u64>,
    /// What each request does.
    #[arg(long, value_enum, default_value_t = Workload::Put)]
    pub workload: Workload,
    /// The number of distinct keys; each request picks one uniformly at random.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_space: u64,
    /// The size of each written value, in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Run the workload this long before measuring, without recording it.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Give up on one request after this long (counted as an error).
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// How many puts preloading keeps in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub preload_concurrency: u32,
    /// Do not write the keys before a workload that reads them: an earlier run against the
    /// same cluster, with the same --key-space, already did.
    #[arg(long)]
    pub skip_preload: bool,
    /// Process ids of the cluster's members, comma-separated: the report then gives the CPU
    /// they spent per measured request (and always the load generator's own).
    #[arg(long, value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// Print the report as one JSON object on stdout (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// The tools beside the load generator.
#[derive(Debug, Subcommand)]
pub enum BenchTool {
    /// Kills the leader with SIGKILL and times how long until a write succeeds again.
    Failover(failover::FailoverArgs),
    /// Measures the floor of a replicated write here: one fdatasync plus one loopback round
    /// trip.
    Floor(floor::FloorArgs),
    /// Writes BENCHMARKS.md and its plots from the results of bench/compare.sh.
    Report(compare::ReportArgs),
}

/// Runs a benchmark and prints its report on stdout.
///
/// Fails if the endpoints cannot be reached, preloading fails, or no request succeeded (the
/// report is still printed in the last case).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.tool {
        Some(BenchTool::Failover(failover)) => return failover::run(failover).await,
        Some(BenchTool::Report(report)) => return compare::run(report),
        Some(BenchTool::Floor(floor)) => return floor::run(floor),
        None => {}
    }
    if args.endpoints.iter().all(|e| e.trim().is_empty()) {
        bail!("--endpoints is empty");
    }
    let endpoints: Vec<String> = args
        .endpoints
        .iter()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect();
    // More connections than clients would sit idle.
    let conns = args.conns.min(args.clients) as usize;
    let options = ConnectOptions::new()
        .with_connect_timeout(args.timeout)
        .with_timeout(args.timeout);
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        let endpoint = &endpoints[i % endpoints.len()];
        let client = Client::connect([endpoint.as_str()], Some(options.clone()))
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        clients.push(client);
    }
    let kv_clients: Vec<_> = clients.iter().map(Client::kv_client).collect();

    let spec = workload::Spec {
        workload: args.workload,
        key_space: args.key_space,
        value_size: args.value_size,
    };
    let progress = Progress::new(!args.json);
    if spec.workload.needs_preload() && !args.skip_preload {
        progress.set_message(format!("preloading {} keys", spec.key_space));
        workload::preload(
            &spec,
            &kv_clients,
            args.preload_concurrency as usize,
            args.timeout,
        )
        .await
        .context("preloading the keys")?;
    }

    let duration = match (args.duration, args.total) {
        (Some(duration), _) => duration,
        (None, Some(_)) => TOTAL_RUN_DURATION_MAX,
        (None, None) => RUN_DURATION_DEFAULT,
    };
    let plan = Plan {
        clients: args.clients as usize,
        warmup: args.warmup,
        duration,
        total: args.total,
        request_timeout: args.timeout,
    };
    // CPU is counted from the end of the warm-up to the return of the last request.
    let server_pids = args.server_pids.clone();
    let warmup = plan.warmup;
    let first_sample = tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        cpu::Sample::take(&server_pids)
    });
    let tally = driver::run(&spec, &plan, &kv_clients, &progress).await;
    let last_sample = cpu::Sample::take(&args.server_pids);
    progress.finish();

    let mut report = report::Report::new(
        &spec,
        &endpoints,
        args.clients as usize,
        conns,
        args.warmup,
        &tally,
    );
    if let Ok(first) = first_sample.await {
        (
            report.server_cpu_us_per_request,
            report.client_cpu_us_per_request,
        ) = first.per_request_us(&last_sample, report.requests);
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if report.requests == 0 {
        bail!(
            "no request succeeded{}",
            report
                .first_error
                .as_deref()
                .map(|e| format!(" (first error: {e})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Parses a duration such as `10s`, `500ms`, `1.5s`, `2m` or `10` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_seconds) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 10s, 500ms or 2m"))?;
    let seconds = value * unit_seconds;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} is not a non-negative duration"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }
}
