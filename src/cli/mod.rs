//! The `beaker` command line: argument parsing, output, and one module per command group.

pub mod args;
mod catalogue_cmds;
mod config_cmds;
mod context;
pub mod error;
mod maint_cmds;
mod manifest_cmds;
pub mod output;
mod pull_cmd;
mod registry_cmds;
mod show_cmd;
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
    // Completions and man pages need no store and no configuration.
    let ctx = match &command {
        Command::Completions { .. } | Command::Man { .. } => None,
        _ => Some(context::Context::new(store, manifests)?),
    };
    let Some(ctx) = ctx else {
        return match command {
            Command::Completions { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut cmd, "beaker", &mut std::io::stdout());
                Ok(())
            }
            Command::Man { dir } => man(&dir),
            _ => Ok(()),
        };
    };
    match command {
        Command::Store(cmd) => {
            let (root, from) = ctx.store_root()?;
            if out.verbose > 0 {
                eprintln!("store: {} (from {from})", root.display());
            }
            match cmd {
                StoreCommand::Pull {
                    names,
                    name,
                    blake3,
                    sha256,
                    md5,
                    plain_http,
                    offline,
                    lock_timeout,
                    ca_cert,
                    check,
                } => {
                    let flags = pull_cmd::Flags {
                        name,
                        pins: pull_cmd::Pins {
                            blake3,
                            sha256,
                            md5,
                        },
                        plain_http,
                        offline,
                        lock_timeout,
                        ca_cert,
                        check,
                    };
                    pull_cmd::run(&root, &ctx, &names, flags, out)
                }
                StoreCommand::Show { target } => show_cmd::run(&root, &target, out),
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
        Command::Catalogue(cmd) => catalogue_cmds::run(cmd, &ctx, out),
        Command::Config(cmd) => config_cmds::run(cmd, &ctx, out),
        Command::Completions { .. } | Command::Man { .. } => Ok(()),
        Command::Registry(RegistryCommand::Login {
            host,
            username,
            password_stdin,
            remote,
        }) => registry_cmds::login(&host, username, password_stdin, &remote, out),
    }
}

/// Writes `beaker.1` and `beaker-<sub>[-<subsub>].1` for every subcommand into `dir`.
fn man(dir: &std::path::Path) -> Result<()> {
    fn write(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> Result<()> {
        let page = clap_mangen::Man::new(cmd.clone().name(name.to_owned()));
        let mut bytes = Vec::new();
        page.render(&mut bytes)?;
        beaker::fsx::user::create_dir_all(dir)?;
        beaker::fsx::user::write_file(&dir.join(format!("{name}.1")), &bytes)?;
        // `help` subcommands are clap's own, not pages worth having.
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            write(sub, &format!("{name}-{}", sub.get_name()), dir)?;
        }
        Ok(())
    }
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    write(&cmd, "beaker", dir)?;
    println!("{}", dir.display());
    Ok(())
}
