//! `cargo xtask gc --store DIR [--dry-run] [--tmp-age D] [--keep MANIFEST…] [--max-size SIZE]
//! [--older-than D] [--min-age D]`: `beaker::gc::collect`,
//! with the very flags of `beaker store gc` ([`beaker::maint_args::GcArgs`]).

use anyhow::Result;

use beaker::maint_args::GcArgs;
use beaker::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: crate::StoreArg,
    #[command(flatten)]
    gc: GcArgs,
}

pub fn run(args: Args) -> Result<()> {
    let store = Store::open(&args.store.store)?;
    let outcome = beaker::gc::collect(&store, &args.gc.options(), &mut beaker::progress::Silent)?;
    if args.store.json {
        return crate::print_json(&outcome);
    }
    println!("{outcome}");
    Ok(())
}
