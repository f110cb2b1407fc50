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
    println!("{outcome}");
    Ok(())
}

pub fn verify(root: &Path, args: &VerifyArgs, out: Output) -> Result<()> {
    let opts = args.options()?;
    let store = Store::open(root)?;
    let outcome = beaker::verify::run(&store, &opts, out.progress().as_mut())?;
    if out.json {
        out.json(&outcome)?;
    } else {
        println!("{outcome}");
    }
    Ok(outcome.into_result_for(&store)?)
}

pub fn prune_locks(root: &Path, out: Output) -> Result<()> {
    let store = Store::open(root)?;
    let outcome = beaker::prune::run(&store)?;
    if out.json {
        return out.json(&outcome);
    }
    println!("{outcome}");
    Ok(())
}
