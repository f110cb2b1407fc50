//! `beaker`: the command-line front end. All work happens in the library; this file only maps
//! errors to the exit codes of docs/design.md#cli (0 ok, 1 failed, 2 bad input, 3 not present).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    beaker::fsx::ignore_file_size_signal();
    let cli = cli::args::Cli::parse();
    let json = cli.json;
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The command printed its own report (e.g. a pull of several names, some failed).
        Err(e) if e.is::<cli::Reported>() => {
            ExitCode::from(e.downcast_ref::<cli::Reported>().map_or(1, |r| r.0))
        }
        Err(e) => {
            let category = if e.chain().any(|c| c.is::<cli::BadUsage>()) {
                beaker::Category::BadInput
            } else {
                beaker::exit::category_of(e.chain())
            };
            let code = beaker::exit::code(category);
            eprintln!("beaker: error: {e:#}");
            if json {
                // Scripts that asked for JSON never have to parse prose, failures included.
                let doc = serde_json::json!({ "error": {
                    "message": format!("{e:#}"),
                    "kind": cli::output::kind(category),
                    "exit_code": code,
                }});
                println!("{doc}");
            }
            ExitCode::from(code)
        }
    }
}
