//! `beaker`: the command-line front end. All work happens in the library; this file only maps
//! errors to the exit codes of DESIGN §10 (0 ok, 1 failed, 2 bad input, 3 not present).

mod cli;

use std::process::ExitCode;

use clap::Parser;

use beaker::catalogue::UnknownName;
use beaker::fetch::FetchError;
use beaker::lock::LockError;
use beaker::manifest::ManifestError;
use beaker::name::InvalidName;
use beaker::pull::PullError;
use beaker::{Category, StoreError};

fn main() -> ExitCode {
    let cli = cli::args::Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beaker: error: {e:#}");
            ExitCode::from(match category(&e) {
                Category::Failed => 1,
                Category::BadInput => 2,
                Category::NotPresent => 3,
            })
        }
    }
}

/// The category of the first library error in the chain; anything else is an operation failure.
fn category(e: &anyhow::Error) -> Category {
    for cause in e.chain() {
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return e.category();
        }
        if let Some(e) = cause.downcast_ref::<ManifestError>() {
            return e.category();
        }
        if let Some(e) = cause.downcast_ref::<LockError>() {
            return e.category();
        }
        if let Some(e) = cause.downcast_ref::<beaker::gc::Error>() {
            return e.category();
        }
        if let Some(e) = cause.downcast_ref::<beaker::verify::Error>() {
            return e.category();
        }
        if let Some(e) = cause.downcast_ref::<beaker::prune::Error>() {
            return e.category();
        }
        if let Some(e) = cause.downcast_ref::<PullError>() {
            return e.category();
        }
        if let Some(e) = cause.downcast_ref::<FetchError>() {
            return e.category();
        }
        if cause.is::<UnknownName>() || cause.is::<InvalidName>() {
            return Category::BadInput;
        }
    }
    Category::Failed
}
