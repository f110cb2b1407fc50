//! The `beaker` command line: argument parsing, output, and one module per command group.

pub mod args;
mod maint_cmds;
mod manifest_cmds;
pub mod output;
mod store_cmds;

use anyhow::Result;

use args::{Cli, Command};
use output::Output;

pub fn run(cli: Cli) -> Result<()> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match cli.command {
        Command::Store(cmd) => {
            let root = store_cmds::store_root(cli.store)?;
            if out.verbose > 0 {
                eprintln!("store: {}", root.display());
            }
            store_cmds::run(cmd, &root, out)
        }
        Command::Manifest(cmd) => manifest_cmds::run(cmd, out),
    }
}
