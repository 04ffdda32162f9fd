//! The `synod-sim` command line.
//!
//! Exit status: 0 for a clean verdict (linearizable), 1 for a failed one (not linearizable), 2 when
//! the input could not be read or parsed (clap uses 2 for usage errors too).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use synod_sim::jepsen;
use synod_sim::linearizability::{self, KvModel, Verdict};

/// Deterministic simulation and checkers for synod.
#[derive(Parser, Debug)]
#[command(name = "synod-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check that a recorded client history is linearizable. Prints a small piece of the history
    /// that cannot be linearized if there is one, and the verdict as the last line:
    /// `linearizable` (exit 0) or `not linearizable` (exit 1).
    CheckHistory(CheckHistoryArgs),
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
    match cli.command {
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
        Verdict::NotLinearizable(violation) => {
            write!(stdout, "{violation}").and_then(|()| writeln!(stdout, "not linearizable"))
        }
    }
    .and_then(|()| stdout.flush())
    .context("cannot write the verdict to standard output")?;
    Ok(verdict.is_linearizable())
}
