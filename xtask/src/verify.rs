//! `cargo xtask verify --store DIR [NAME…] [--deep]`: `beaker::verify::run`, then with `--deep`
//! `beaker::onnx::deep::verify_deep`; exit 1 if anything is corrupt, missing, unreadable or (deep)
//! an ONNX model that does not load.

use anyhow::Result;

use beaker::{ModelName, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: crate::StoreArg,
    /// Only the blobs of these names [default: every blob in the store]
    names: Vec<String>,
    /// Also load every ONNX model in ONNX Runtime and list those that fail
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
    // --deep is the ONNX pass that runs after the hash check (beaker::onnx::deep).
    let opts = beaker::verify::Options {
        names: names.clone(),
        deep: false,
    };
    let outcome = beaker::verify::run(&store, &opts, &mut beaker::progress::Silent)?;
    let deep = match args.deep {
        true => Some(beaker::onnx::deep::verify_deep(&store, &names)?),
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
