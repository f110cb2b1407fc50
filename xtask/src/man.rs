//! `cargo xtask man [--out DIR]`: builds beaker and has it write its man pages (clap_mangen,
//! from the very argument definitions the binary parses), `target/man/` by default.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write beaker.1 and one page per subcommand
    #[arg(long, value_name = "DIR", default_value = "target/man")]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["run", "--quiet", "--bin", "beaker", "--", "man"])
        .arg(&args.out)
        .status()
        .context("run cargo")?;
    if !status.success() {
        bail!("beaker could not write its man pages ({status})");
    }
    eprintln!(
        "man pages in {} (try: man -l {}/beaker.1)",
        args.out.display(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
