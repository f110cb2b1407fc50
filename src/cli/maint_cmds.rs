//! `beaker store gc | verify | prune-locks`: thin wrappers over `beaker::{gc, verify, prune}`,
//! which `cargo xtask` calls too. Reports go to stdout (text, or `--json`).

use std::path::Path;

use anyhow::Result;

use beaker::maint_args::{GcArgs, VerifyArgs};
use beaker::Store;

use super::output::Output;

pub fn gc(root: &Path, args: &GcArgs, out: Output) -> Result<()> {
    let store = Store::open(root)?;
    let outcome = beaker::gc::collect(&store, &args.options(), out.progress().as_mut())?;
    if out.json {
        return out.json(&outcome);
    }
    Ok(super::output::print_report(&outcome)?)
}

pub fn verify(root: &Path, args: &VerifyArgs, out: Output) -> Result<()> {
    let opts = args.options()?;
    let store = Store::open(root)?;
    // --deep is the ONNX pass that runs after the hash check (beaker::verify::deep); the
    // runtime it needs is found first, before every blob is read.
    if args.deep {
        beaker::verify::deep::ready(&store, &opts.names)?;
    }
    let outcome = beaker::verify::run(&store, &opts, out.progress().as_mut())?;
    let deep = match args.deep {
        true => Some(beaker::verify::deep::verify_deep(&store, &opts.names)?),
        false => None,
    };
    if out.json {
        let mut doc = serde_json::to_value(&outcome)?;
        if let (Some(d), Some(map)) = (&deep, doc.as_object_mut()) {
            map.insert("deep".into(), serde_json::to_value(d)?);
        }
        out.json(&doc)?;
    } else {
        super::output::print_report(&outcome)?;
        if let Some(d) = &deep {
            super::output::print_report(d)?;
        }
    }
    let found = outcome
        .into_result_for(&store)
        .map_err(anyhow::Error::from)
        .and_then(|()| match deep {
            Some(d) => d.into_result().map_err(anyhow::Error::from),
            None => Ok(()),
        });
    match found {
        // The JSON report above is the one document on stdout: say it on stderr, exit 1.
        Err(e) if out.json => {
            super::error::say(&e);
            Err(super::error::Reported(1).into())
        }
        other => other,
    }
}

pub fn prune_locks(root: &Path, out: Output) -> Result<()> {
    let store = Store::open(root)?;
    let outcome = beaker::prune::run(&store)?;
    if out.json {
        return out.json(&outcome);
    }
    Ok(super::output::print_report(&outcome)?)
}
