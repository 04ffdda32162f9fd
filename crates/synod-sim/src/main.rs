//! The `synod-sim` command line.
//!
//! - `synod-sim --seeds N [--engine raft] [--mutant NAME] [--scenario NAME]` runs N seeds and
//!   prints `N passed, M failed` as its last line; `synod-sim --seed S` reproduces one seed.
//! - `synod-sim check-history --format jepsen FILE` checks a recorded history.
//!
//! Exit status: 0 for a clean verdict (every seed passed, or linearizable), 1 for a failed one,
//! 2 when the input could not be read or parsed (clap uses 2 for usage errors too).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use synod_sim::jepsen;
use synod_sim::linearizability::{self, KvModel, Verdict};
use synod_sim::sim::SimOptions;
use synod_sim::sim::engines::{EngineKind, Mutant, Target, run_failover, scenario_names};
use synod_sim::sim::failover;
use synod_sim::sim::runner::run_seeds_parallel;

/// Deterministic simulation and checkers for synod.
///
/// Without a subcommand it simulates: each seed draws a cluster, clients and a mix of faults
/// (or runs the named scenario), and checks election safety, log matching, leader completeness,
/// state-machine safety, durability, liveness and linearizability. A failure prints its seed,
/// the checker that failed and the last events; `--seed S` reproduces it exactly.
#[derive(Parser, Debug)]
#[command(
    name = "synod-sim",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Run this many seeds, starting at --first-seed.
    #[arg(long, default_value_t = 100, conflicts_with = "seed")]
    seeds: u64,
    /// The first seed of --seeds.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Run exactly this seed (to reproduce a failure).
    #[arg(long)]
    seed: Option<u64>,
    /// The engine to simulate: raft or multipaxos.
    #[arg(long, default_value = "raft")]
    engine: EngineKind,
    /// Turn on a deliberate bug, to show that the checkers catch it. Raft: figure8,
    /// no-log-check, early-ack or stale-read. Multi-Paxos (with --engine multipaxos):
    /// ignore-promise-value, no-persist-promise or apply-out-of-order.
    #[arg(long)]
    mutant: Option<Mutant>,
    /// Multi-Paxos: use flexible quorums (Howard et al. 2016) with Phase-2 quorums of this size;
    /// Phase 1 then needs N minus this plus one.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    phase2_quorum: Option<u64>,
    /// What members store their state on: `memory` (a model of a disk) or `real`
    /// (`synod-storage`'s log and snapshot store over a fault-injecting file system; every
    /// restart runs the real recovery code and checks it returns what was made durable).
    #[arg(long, value_enum, default_value = "memory")]
    storage: StorageKind,
    /// Run a named scenario instead of random swarm schedules (see --list-scenarios).
    #[arg(long)]
    scenario: Option<String>,
    /// List the named scenarios and exit.
    #[arg(long)]
    list_scenarios: bool,
    /// Worker threads (each seed runs on one thread; results do not depend on this).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum StorageKind {
    /// The simulator's in-memory model of a disk.
    Memory,
    /// The real synod-storage over a fault-injecting file system.
    Real,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check that a recorded client history is linearizable. Prints a small piece of the history
    /// that cannot be linearized if there is one, and the verdict as the last line:
    /// `linearizable` (exit 0) or `not linearizable` (exit 1).
    CheckHistory(CheckHistoryArgs),
    /// Measure failover: the time from a leader's crash to the next committed write, over many
    /// seeds, as percentiles in engine ticks (10 ms each).
    Failover(FailoverArgs),
}

#[derive(Args, Debug)]
struct FailoverArgs {
    /// The engine to measure: raft or multipaxos.
    #[arg(long, default_value = "raft")]
    engine: EngineKind,
    /// Trials (one seed each), from --first-seed on.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
}

#[derive(Args, Debug)]
struct CheckHistoryArgs {
    /// The format of FILE.
    #[arg(long, value_enum)]
    format: HistoryFormat,
    /// The history to check.
    file: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum HistoryFormat {
    /// Jepsen's log of a compare-and-set register (`INFO jepsen.util - PROCESS :TYPE :F VALUE`),
    /// checked against a register that starts empty.
    Jepsen,
}

/// The exit status for input that could not be read or parsed.
const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return simulate(&cli.run);
    };
    match command {
        Command::Failover(args) => failover(&args),
        Command::CheckHistory(args) => match check_history(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(error) => {
                eprintln!("synod-sim: error: {error:#}");
                ExitCode::from(EXIT_BAD_INPUT)
            }
        },
    }
}

/// Checks the history in `args.file`; returns whether it is linearizable.
fn check_history(args: &CheckHistoryArgs) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let history = match args.format {
        HistoryFormat::Jepsen => jepsen::parse_register_history(&text)
            .with_context(|| format!("{} is not a Jepsen register history", args.file.display()))?,
    };
    let verdict = linearizability::check(&KvModel, &history);
    // Write through a handle rather than `println!`, which panics if stdout is closed.
    let mut stdout = std::io::stdout().lock();
    match &verdict {
        Verdict::Linearizable => writeln!(stdout, "linearizable"),
        // The command line leaves the search unbounded, so this cannot happen; say so if it does.
        Verdict::Inconclusive { .. } => writeln!(stdout, "inconclusive"),
        Verdict::NotLinearizable(violation) => {
            write!(stdout, "{violation}").and_then(|()| writeln!(stdout, "not linearizable"))
        }
    }
    .and_then(|()| stdout.flush())
    .context("cannot write the verdict to standard output")?;
    Ok(verdict.is_linearizable())
}

/// Runs failover trials and prints their percentiles.
fn failover(args: &FailoverArgs) -> ExitCode {
    if args.first_seed.checked_add(args.seeds).is_none() {
        eprintln!("synod-sim: error: seeds {}.. overflow", args.first_seed);
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let jobs = args.jobs.max(1) as u64;
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|job| {
                scope.spawn(move || {
                    (args.first_seed..args.first_seed + args.seeds)
                        .skip(job as usize)
                        .step_by(jobs as usize)
                        .map(|seed| run_failover(args.engine, seed))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a failover trial panicked"))
            .collect()
    });
    let tick = SimOptions::calm(3).tick;
    let summary = failover::summarize(&results, tick);
    let ms = |ticks: f64| ticks * tick as f64 / 1000.0;
    println!(
        "engine {}: {} trials, {} without a figure\n\
         leader crash to next commit: p50 {:.1} ticks ({:.0} ms), p99 {:.1} ticks ({:.0} ms), \
         max {:.1} ticks ({:.0} ms)",
        args.engine,
        summary.trials,
        summary.failed,
        summary.p50_ticks,
        ms(summary.p50_ticks),
        summary.p99_ticks,
        ms(summary.p99_ticks),
        summary.max_ticks,
        ms(summary.max_ticks),
    );
    if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs the seeds `args` asks for and prints `N passed, M failed` last.
fn simulate(args: &RunArgs) -> ExitCode {
    let names = scenario_names();
    if args.list_scenarios {
        for name in &names {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    if let Some(name) = &args.scenario
        && !names.contains(&name.as_str())
    {
        eprintln!(
            "synod-sim: error: unknown scenario {name:?}; expected one of: {}",
            names.join(", ")
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    if let Some(mutant) = args.mutant
        && mutant.engine() != args.engine
    {
        eprintln!(
            "synod-sim: error: mutant {mutant} belongs to the {} engine; add --engine {}",
            mutant.engine(),
            mutant.engine()
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    if args.phase2_quorum.is_some() && args.engine != EngineKind::MultiPaxos {
        eprintln!("synod-sim: error: --phase2-quorum needs --engine multipaxos");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let target = Target {
        engine: args.engine,
        mutant: args.mutant,
        phase2_quorum: args.phase2_quorum.map(|q| q as usize),
        real_storage: args.storage == StorageKind::Real,
    };
    let (first, count) = match args.seed {
        Some(seed) => (seed, 1),
        None => (args.first_seed, args.seeds),
    };
    if first.checked_add(count).is_none() {
        eprintln!("synod-sim: error: seeds {first}.. overflow");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    // Engine panics are caught and reported as failures with their seed; the default hook's
    // backtraces would only repeat them.
    std::panic::set_hook(Box::new(|_| {}));
    let report = |failure: &synod_sim::sim::Failure| {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{failure}\n");
    };
    let summary = run_seeds_parallel(
        target,
        args.scenario.as_deref(),
        first,
        count,
        args.jobs,
        &report,
    );
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "engine {}{}{}{}: {:.1} s, {} messages ({:.0} per second), {} client operations",
        target.engine,
        match (args.phase2_quorum, args.storage) {
            (Some(q), StorageKind::Real) => format!(", phase-2 quorum {q}, real storage"),
            (Some(q), StorageKind::Memory) => format!(", phase-2 quorum {q}"),
            (None, StorageKind::Real) => ", real storage".to_string(),
            (None, StorageKind::Memory) => String::new(),
        },
        args.mutant
            .map(|m| format!(", mutant {m}"))
            .unwrap_or_default(),
        args.scenario
            .as_deref()
            .map(|s| format!(", scenario {s}"))
            .unwrap_or_default(),
        summary.elapsed.as_secs_f64(),
        summary.messages_delivered,
        summary.messages_per_second(),
        summary.operations,
    );
    if let Some(first) = summary.failures.first() {
        let _ = writeln!(stdout, "first failing seed: {}", first.seed);
    }
    let _ = writeln!(
        stdout,
        "{} passed, {} failed",
        summary.passed,
        summary.failures.len()
    );
    if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
