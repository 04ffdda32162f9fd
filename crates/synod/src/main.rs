//! `synod`: one binary for running members (`serve`), a local three-member cluster (`dev`),
//! and the tools around them: `bench`, a load generator (built with `--features bench`).

#[cfg(feature = "bench")]
mod bench;
mod config;
mod dev;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: its size classes fit the store's allocations (a
/// 256-byte value takes 256 bytes, where glibc adds a header and rounds to 272), and a member
/// holding a million keys of 256 bytes stays 15-20 MiB smaller (bench/memory.sh: 456-461 MiB
/// against 472-480 MiB per member).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A replicated key-value store that speaks etcd's v3 API, on Raft or Multi-Paxos.
#[derive(Debug, Parser)]
#[command(name = "synod", version, about, propagate_version = true)]
struct Cli {
    /// How much to log: error, warn, info, debug or trace (or a tracing filter such as
    /// `synod_server=debug`).
    #[arg(long, global = true, env = "SYNOD_LOG_LEVEL", default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one member.
    Serve(Box<config::ServeArgs>),
    /// Runs a three-member cluster on loopback, with etcd's local-cluster ports.
    Dev(dev::DevArgs),
    /// Drives a cluster (synod or etcd) with a closed-loop load and reports throughput and
    /// latency.
    #[cfg(feature = "bench")]
    #[command(args_conflicts_with_subcommands = true)]
    Bench(Box<bench::BenchArgs>),
    /// Not in this build: the load generator needs `--features bench`.
    #[cfg(not(feature = "bench"))]
    #[command(hide = true, disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&cli.log_level) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("synod: invalid --log-level {:?}: {e}", cli.log_level);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("synod: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => match args.resolve() {
            Ok(settings) => runtime.block_on(serve(settings)),
            Err(e) => {
                eprintln!("synod serve: {e:#}");
                return ExitCode::from(2);
            }
        },
        Command::Dev(args) => runtime.block_on(dev::run(args)),
        #[cfg(feature = "bench")]
        Command::Bench(args) => runtime.block_on(bench::run(*args)),
        #[cfg(not(feature = "bench"))]
        Command::Bench { .. } => {
            eprintln!(
                "synod bench: this synod was built without the load generator; build it with \
                 `cargo build --release --features bench`"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synod: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: synod_server::Settings) -> anyhow::Result<()> {
    let member = synod_server::start(settings).await?;
    let stop = member.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stop.stop();
    });
    member.wait().await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
