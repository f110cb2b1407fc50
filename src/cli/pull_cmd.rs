//! `beaker store pull NAME…`: a thin layer over [`beaker::pull::Puller`]. Resolves every name
//! first (so a typo fails before anything is fetched), then pulls in order, printing one blob
//! path per name (or one JSON array).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use beaker::lock::Wait;
use beaker::pull::Puller;
use beaker::Store;

use super::context::Context;

use super::output::{size, Output};

/// The pull-specific flags.
pub struct Flags {
    pub offline: bool,
    pub lock_timeout: Option<Duration>,
    pub ca_cert: Option<PathBuf>,
    /// `--check`: load ONNX models in ONNX Runtime before publishing.
    pub check: bool,
}

pub fn run(root: &Path, ctx: &Context, names: &[String], flags: Flags, out: Output) -> Result<()> {
    let catalogue = ctx.catalogue()?;
    let models = names
        .iter()
        .map(|n| catalogue.get(n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = ctx.pull_options()?;
    options.fetch.offline |= flags.offline;
    options.check = flags.check;
    if flags.ca_cert.is_some() {
        options.fetch.ca_cert = flags.ca_cert;
    }
    if let Some(d) = flags.lock_timeout {
        options.lock_wait = Wait::For(d);
    }
    let store = Store::open_or_create(root)?;
    let mut puller = Puller::new(&store, options);
    let mut progress = out.progress();
    let mut rows = Vec::with_capacity(models.len());
    for model in models {
        let pulled = puller.pull(model, progress.as_mut())?;
        if !out.json {
            if pulled.downloaded {
                out.note(format!(
                    "pulled {}: {} blake3 {}",
                    pulled.name,
                    size(pulled.size),
                    pulled.blake3.short()
                ));
            }
            println!("{}", pulled.path.display());
        }
        rows.push(pulled);
    }
    if out.json {
        return out.json(&rows);
    }
    Ok(())
}
