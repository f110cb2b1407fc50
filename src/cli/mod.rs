//! The `beaker` command line: the flags ([`args`]), how results and failures are printed
//! ([`output`], [`error`]), and one module per command group, each of which turns its flags into
//! the library's request, calls the library and prints the outcome. This file sends each command
//! to its module.

pub mod args;
mod catalogue_cmds;
mod config_cmds;
mod context;
mod env_cmd;
pub mod error;
mod maint_cmds;
mod manifest_cmds;
mod output;
mod pull_cmd;
mod registry_cmds;
mod show_cmd;
mod store_cmds;

use anyhow::Result;

use args::{Cli, Command, Locations, RegistryCommand, StoreCommand};
use context::Context;
use output::Output;

/// Runs the command `cli` asked for (`--ort-lib` set first; with `-v`, which ONNX Runtime was
/// loaded, said last).
pub fn run(cli: Cli) -> Result<()> {
    let out = cli.output;
    if let Some(lib) = cli.ort_lib {
        beaker::onnx::runtime::set_library(lib);
    }
    beaker::onnx::runtime::set_log_verbosity(out.verbose);
    // Ctrl-C at a terminal: a word of what is kept, not a bar left as it was.
    if !out.quiet && !out.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        beaker::fsx::say_on_interrupt();
    }
    let result = command(cli.command, cli.locations, out);
    if out.verbose > 0 {
        if let Some((origin, path)) = beaker::onnx::runtime::loaded_library() {
            eprintln!("ONNX Runtime: {} (from {origin})", path.display());
        }
    }
    result
}

/// Runs one command. Every command but `completions` and `man` reads the configuration files
/// first, those that do not use them too: a broken one is reported whatever the command.
fn command(command: Command, locations: Locations, out: Output) -> Result<()> {
    let context = || Context::new(locations.clone());
    match command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "beaker", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => man(&dir),
        Command::Store(cmd) => store(cmd, &context()?, out),
        Command::Short(cmd) => store(cmd.into_store(), &context()?, out),
        Command::Env => env_cmd::run(&context()?, out),
        Command::Manifest(cmd) => {
            context()?;
            manifest_cmds::run(cmd, out)
        }
        Command::Catalogue(cmd) => catalogue_cmds::run(cmd, &context()?, out),
        Command::Config(cmd) => match Context::new(locations.clone()) {
            Ok(ctx) => config_cmds::run(cmd, &ctx, out),
            // A broken file: what the flags, the environment and the defaults say still shows
            // (in text), then the file's error, exit 2.
            Err(e) => {
                if !out.json {
                    // The table on stdout; on stderr only the error (one line, as for any).
                    let ctx = Context::with(locations, beaker::settings::Settings::default());
                    let quiet = Output { quiet: true, ..out };
                    let _ = config_cmds::run(cmd, &ctx, quiet);
                }
                Err(e)
            }
        },
        Command::Registry(RegistryCommand::Login {
            host,
            username,
            password_stdin,
            remote,
        }) => {
            context()?;
            registry_cmds::login(&host, username, password_stdin, &remote, out)
        }
    }
}

/// `beaker store …`: each command to the module that runs it, with the store's directory.
fn store(cmd: StoreCommand, ctx: &Context, out: Output) -> Result<()> {
    let (root, from) = ctx.store_root()?;
    if out.verbose > 0 {
        eprintln!("store: {} (from {from})", root.display());
    }
    let root = root.as_path();
    match cmd {
        StoreCommand::Init {
            shared,
            group,
            locking,
        } => store_cmds::init(root, shared, group, locking, out),
        StoreCommand::Add { file, name, check } => store_cmds::add(root, &file, &name, check, out),
        StoreCommand::Pull(args) => pull_cmd::run(root, ctx, args, out),
        StoreCommand::Show { target } => show_cmd::run(root, &target, out),
        StoreCommand::Path(a) => store_cmds::path(root, &a.name, a.dir, a.blob, out),
        // `--copy` is the default, still accepted (it only conflicts with `--link`).
        StoreCommand::Export {
            name,
            dir,
            link,
            copy: _,
        } => store_cmds::export(root, &name, &dir, link, out),
        StoreCommand::Push {
            name,
            reference,
            remote,
        } => registry_cmds::push(root, &name, &reference, &remote, out),
        StoreCommand::LsRemote { reference, remote } => {
            registry_cmds::ls_remote(&reference, &remote, out)
        }
        StoreCommand::Ls(a) => store_cmds::ls(root, &a, out),
        StoreCommand::Dir => store_cmds::dir(root, out),
        StoreCommand::Rm(a) => store_cmds::rm(root, &a.names, a.dry_run, a.yes, out),
        StoreCommand::Pin { names } => store_cmds::pin(root, &names, true, out),
        StoreCommand::Unpin { names } => store_cmds::pin(root, &names, false, out),
        StoreCommand::Info => store_cmds::info(root, out),
        StoreCommand::Gc(args) => maint_cmds::gc(root, &args, out),
        StoreCommand::Verify(args) => maint_cmds::verify(root, &args, out),
        StoreCommand::PruneLocks => maint_cmds::prune_locks(root, out),
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
