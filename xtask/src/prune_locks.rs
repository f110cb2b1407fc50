//! `cargo xtask prune-locks --store DIR`: `beaker::prune::run`.

use anyhow::Result;

use beaker::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: crate::StoreArg,
}

pub fn run(args: Args) -> Result<()> {
    let store = Store::open(&args.store.store)?;
    let outcome = beaker::prune::run(&store)?;
    if args.store.json {
        return crate::print_json(&outcome);
    }
    println!("{outcome}");
    Ok(())
}
