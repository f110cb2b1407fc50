//! `cargo xtask verify --store DIR [NAME…] [--deep]`: `beaker::verify::run`, then with `--deep`
//! `beaker::verify::deep::verify_deep`; exit 1 if anything is corrupt, missing, unreadable or (deep)
//! an ONNX model that does not load.

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
    // --deep is the ONNX pass that runs after the hash check (beaker::verify::deep).
    let outcome = beaker::verify::run(&store, &opts, &mut beaker::progress::Silent)?;
    let deep = match args.verify.deep {
        true => Some(beaker::verify::deep::verify_deep(&store, &opts.names)?),
        false => None,
    };
    if args.store.json {
        let mut doc = serde_json::to_value(&outcome)?;
        if let (Some(d), Some(map)) = (&deep, doc.as_object_mut()) {
            map.insert("deep".into(), serde_json::to_value(d)?);
        }
        crate::print_json(&doc)?;
    } else {
        println!("{outcome}");
        if let Some(d) = &deep {
            println!("{d}");
        }
    }
    outcome.into_result_for(&store)?;
    if let Some(d) = deep {
        d.into_result()?;
    }
    Ok(())
}
