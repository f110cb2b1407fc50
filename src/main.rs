//! `beaker`: the command-line front end. All work happens in the library and each command lives
//! in `cli/`; this file parses the command line, runs it, and ends the process with the exit code
//! of docs/design.md#cli (0 ok, 1 failed, 2 bad input, 3 not present) that `cli::error` gives.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    beaker::fsx::ignore_file_size_signal();
    beaker::fsx::die_quietly_on_closed_pipe();
    let cli = match cli::args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cli::error::usage(e),
    };
    let json = cli.output.json;
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::error::report(&e, json),
    }
}
