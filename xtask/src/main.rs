//! `cargo xtask …`: developer and maintenance tasks for beaker.
//!
//! The maintenance commands run the *same library code* as `beaker store gc | verify |
//! prune-locks` (no shelling out to the binary), so a store can be looked after from a checkout
//! without installing beaker. One subcommand per module. Exit codes match beaker's (docs/design.md#cli):
//! 0 ok, 1 failed or corruption found, 2 bad input. `cargo xtask test` is the README's test
//! command: it provides ONNX Runtime, then runs `cargo test --workspace`. `cargo xtask torture` is
//! the fault campaign (see `torture/mod.rs`); `cargo xtask bench` times beaker against its floors
//! and writes BENCHMARKS.md (module `bench`).

mod bench;
mod gc;
mod man;
mod prune_locks;
mod test;
mod torture;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "beaker's developer and maintenance tasks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Delete unreferenced blobs, stale temp files and old quarantine in a store, first evicting
    /// least recently used names with --max-size / --older-than (as `beaker store gc`)
    Gc(gc::Args),
    /// Re-hash a store's blobs, quarantining corrupt ones (as `beaker store verify`)
    Verify(verify::Args),
    /// Remove lock files nobody holds in a store (as `beaker store prune-locks`)
    PruneLocks(prune_locks::Args),
    /// Run the tests (`cargo test --workspace ARGS…`), installing ONNX Runtime from PyPI into
    /// .ort/ first if none is found
    Test(test::Args),
    /// Write beaker's man pages (target/man/ by default)
    Man(man::Args),
    /// The fault campaign against the real binary: SIGKILL trials, HTTP faults, lockless races,
    /// bad input, full disk, real users; a summary table, exit 1 if any invariant broke
    Torture(torture::Args),
    /// Time beaker against its floors (curl, b3sum, cp, sync, dd, find|sort|comm|rm) and write
    /// BENCHMARKS.md
    Bench(bench::Args),
    /// Print a file's BLAKE3 like b3sum (the bench's floor where b3sum is not installed)
    #[command(hide = true)]
    BenchHash { file: PathBuf },
    /// Run a program and print its wall time, peak RSS and success (the bench's measuring helper)
    #[command(hide = true)]
    BenchExec {
        program: std::ffi::OsString,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// The store flag every maintenance command takes.
#[derive(Debug, clap::Args)]
struct StoreArg {
    /// The store directory
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Print one JSON document on stdout (the same shape as beaker's --json)
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gc(args) => gc::run(args).map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => verify::run(args).map(|()| ExitCode::SUCCESS),
        Command::PruneLocks(args) => prune_locks::run(args).map(|()| ExitCode::SUCCESS),
        Command::Test(args) => test::run(args),
        Command::Man(args) => man::run(args),
        Command::Torture(args) => torture::run(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchHash { file } => bench::hash_file(&file),
        Command::BenchExec { program, args } => bench::exec(&program, &args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::from(beaker::exit::code(beaker::exit::category_of(e.chain())))
        }
    }
}

/// Prints `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
