//! `cargo xtask verify --store DIR [NAME…] [--deep]`: `beaker::verify::run`, with the very flags of
//! `beaker store verify` ([`beaker::maint_args::VerifyArgs`]); exit 1 if anything is corrupt,
//! missing or unreadable.

use anyhow::Result;

use beaker::maint_args::VerifyArgs;
use beaker::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: crate::StoreArg,
    #[command(flatten)]
    verify: VerifyArgs,
}

pub fn run(args: Args) -> Result<()> {
    let opts = args.verify.options()?;
    let store = Store::open(&args.store.store)?;
    let outcome = beaker::verify::run(&store, &opts, &mut beaker::progress::Silent)?;
    if args.store.json {
        crate::print_json(&outcome)?;
    } else {
        println!("{outcome}");
    }
    Ok(outcome.into_result_for(&store)?)
}
