//! The `beaker` command line: argument parsing, output, and one module per command group.

pub mod args;
mod maint_cmds;
mod manifest_cmds;
pub mod output;
mod pull_cmd;
mod registry_cmds;
mod store_cmds;

use anyhow::Result;

use args::{Cli, Command, RegistryCommand, StoreCommand};
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
            match cmd {
                StoreCommand::Pull {
                    names,
                    name,
                    plain_http,
                    offline,
                    lock_timeout,
                    ca_cert,
                } => {
                    let flags = pull_cmd::Flags {
                        name,
                        plain_http,
                        offline,
                        lock_timeout,
                        ca_cert,
                    };
                    pull_cmd::run(&root, &cli.manifests, &names, flags, out)
                }
                StoreCommand::Push {
                    name,
                    reference,
                    remote,
                } => registry_cmds::push(&root, &name, &reference, &remote, out),
                StoreCommand::LsRemote { reference, remote } => {
                    registry_cmds::ls_remote(&reference, &remote, out)
                }
                cmd => store_cmds::run(cmd, &root, out),
            }
        }
        Command::Manifest(cmd) => manifest_cmds::run(cmd, out),
        Command::Registry(RegistryCommand::Login {
            host,
            username,
            password_stdin,
            remote,
        }) => registry_cmds::login(&host, username, password_stdin, &remote, out),
    }
}
