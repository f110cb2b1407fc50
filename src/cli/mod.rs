//! The `beaker` command line: argument parsing, output, and one module per command group.

pub mod args;
mod catalogue_cmds;
mod config_cmds;
mod context;
mod maint_cmds;
mod manifest_cmds;
pub mod output;
mod pull_cmd;
mod show_cmd;
mod store_cmds;

use anyhow::Result;

/// A failure the command has already reported on stdout/stderr itself; the process exits with
/// this code and prints nothing more.
#[derive(Debug, thiserror::Error)]
#[error("already reported")]
pub struct Reported(pub u8);

use args::{Cli, Command, StoreCommand};
use output::Output;

pub fn run(cli: Cli) -> Result<()> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    if let Some(lib) = cli.ort_lib {
        beaker::onnx::runtime::set_library(lib);
    }
    let result = command(cli.command, cli.store, cli.manifests, out);
    if out.verbose > 0 {
        if let Some((origin, path)) = beaker::onnx::runtime::loaded_library() {
            eprintln!("ONNX Runtime: {} (from {origin})", path.display());
        }
    }
    result
}

fn command(
    command: Command,
    store: Option<std::path::PathBuf>,
    manifests: Vec<std::path::PathBuf>,
    out: Output,
) -> Result<()> {
    let ctx = context::Context::new(store, manifests)?;
    match command {
        Command::Store(cmd) => {
            let (root, from) = ctx.store_root()?;
            if out.verbose > 0 {
                eprintln!("store: {} (from {from})", root.display());
            }
            match cmd {
                StoreCommand::Pull {
                    names,
                    offline,
                    lock_timeout,
                    ca_cert,
                    check,
                } => {
                    let flags = pull_cmd::Flags {
                        offline,
                        lock_timeout,
                        ca_cert,
                        check,
                    };
                    pull_cmd::run(&root, &ctx, &names, flags, out)
                }
                StoreCommand::Show { target } => show_cmd::run(&root, &target, out),
                cmd => store_cmds::run(cmd, &root, out),
            }
        }
        Command::Manifest(cmd) => manifest_cmds::run(cmd, out),
        Command::Catalogue(cmd) => catalogue_cmds::run(cmd, &ctx, out),
        Command::Config(cmd) => config_cmds::run(cmd, &ctx, out),
    }
}
