//! `cargo xtask verify --store DIR [NAME…] [--deep]`: `beaker::verify::run`; exit 1 if anything is
//! corrupt, missing or unreadable.

use anyhow::Result;

use beaker::{ModelName, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: crate::StoreArg,
    /// Only the blobs of these names [default: every blob in the store]
    names: Vec<String>,
    /// Also load ONNX models (not available yet)
    #[arg(long)]
    deep: bool,
}

pub fn run(args: Args) -> Result<()> {
    let names = args
        .names
        .iter()
        .map(|n| ModelName::new(n))
        .collect::<Result<Vec<_>, _>>()?;
    let store = Store::open(&args.store.store)?;
    let opts = beaker::verify::Options {
        names,
        deep: args.deep,
    };
    let outcome = beaker::verify::run(&store, &opts, &mut beaker::progress::Silent)?;
    if args.store.json {
        crate::print_json(&outcome)?;
    } else {
        println!("{outcome}");
    }
    Ok(outcome.into_result_for(&store)?)
}
