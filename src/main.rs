//! `beaker`: the command-line front end. All work happens in the library and each command lives
//! in `cli/`; this file parses the command line, runs it, and ends the process with the exit code
//! of docs/design.md#cli (0 ok, 1 failed, 2 bad input, 3 not present) that `cli::error` gives.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    beaker::fsx::ignore_file_size_signal();
    // A reader that closed the pipe (`beaker store ls | head -1`) ends beaker quietly, as it
    // ends `ls`: the print that met EPIPE panics, and this hook dies of SIGPIPE instead.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if beaker::fsx::stdout_reader_gone() {
            beaker::fsx::die_of_sigpipe();
        }
        default_hook(info);
    }));
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
