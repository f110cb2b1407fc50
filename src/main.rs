//! `beaker`: the command-line front end. All work happens in the library; this file only maps
//! errors to the exit codes of DESIGN §10 (0 ok, 1 failed, 2 bad input, 3 not present).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    beaker::fsx::ignore_file_size_signal();
    let cli = cli::args::Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beaker: error: {e:#}");
            ExitCode::from(beaker::exit::code(beaker::exit::category_of(e.chain())))
        }
    }
}
