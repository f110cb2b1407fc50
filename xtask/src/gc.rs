//! `cargo xtask gc --store DIR [--dry-run] [--tmp-age D] [--keep MANIFEST…]`: `beaker::gc::collect`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use beaker::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: crate::StoreArg,
    /// Report what would be removed; remove nothing
    #[arg(long)]
    dry_run: bool,
    /// Remove temp files untouched for at least this long (30s, 10m, 24h, 7d) whose writer is gone
    #[arg(long, value_name = "D", default_value = "24h", value_parser = beaker::gc::parse_age)]
    tmp_age: Duration,
    /// Also keep every blob this catalogue names (repeatable)
    #[arg(long, value_name = "MANIFEST")]
    keep: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let store = Store::open(&args.store.store)?;
    let opts = beaker::gc::Options {
        dry_run: args.dry_run,
        tmp_age: args.tmp_age,
        keep: args.keep,
    };
    let outcome = beaker::gc::collect(&store, &opts, &mut beaker::progress::Silent)?;
    if args.store.json {
        return crate::print_json(&outcome);
    }
    println!("{outcome}");
    Ok(())
}
