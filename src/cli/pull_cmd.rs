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

/// What one name became: pulled (or already there), or why not.
enum Outcome<'c> {
    /// In the catalogues: pull it.
    Catalogued(&'c beaker::catalogue::Resolved),
    /// In no catalogue, but the store holds it (added with `add`): its path, as the fast path.
    Stored(beaker::ModelName),
}

pub fn run(root: &Path, ctx: &Context, names: &[String], flags: Flags, out: Output) -> Result<()> {
    let catalogue = ctx.catalogue()?;
    let existing = ctx.existing_store()?;
    // Resolve every name first, so a typo fails before anything is fetched.
    let mut todo = Vec::with_capacity(names.len());
    for n in names {
        match catalogue.get(n) {
            Ok(model) => todo.push(Outcome::Catalogued(model)),
            Err(unknown) => {
                let held = beaker::ModelName::new(n).ok().filter(|name| {
                    existing
                        .as_ref()
                        .and_then(|s| s.read_entry(name).ok())
                        .is_some_and(|e| e.is_some())
                });
                match held {
                    Some(name) => todo.push(Outcome::Stored(name)),
                    None => return Err(unknown.into()),
                }
            }
        }
    }
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
    // Every name is tried; each failure is reported and the others still pulled.
    let mut rows = Vec::with_capacity(todo.len());
    let mut failed: Vec<(String, anyhow::Error)> = Vec::new();
    for item in todo {
        let (name, result) = match item {
            Outcome::Catalogued(model) => (
                model.name.to_string(),
                puller
                    .pull(model, progress.as_mut())
                    .map(Row::Pulled)
                    .map_err(anyhow::Error::from),
            ),
            Outcome::Stored(name) => (
                name.to_string(),
                beaker::snapshot::locate(&store, &name)
                    .map(|l| Row::Held {
                        name: name.clone(),
                        path: l.main,
                        dir: l.dir,
                        downloaded: false,
                    })
                    .map_err(anyhow::Error::from),
            ),
        };
        match result {
            Ok(row) => {
                if !out.json {
                    if let Row::Pulled(p) = &row {
                        if p.downloaded {
                            out.note(format!(
                                "pulled {}: {} blake3 {}",
                                p.name,
                                size(p.size),
                                p.blake3.short()
                            ));
                        }
                    }
                    println!("{}", row.path().display());
                }
                rows.push(serde_json::to_value(&row)?);
            }
            Err(e) if names.len() == 1 => return Err(e),
            Err(e) => {
                let category = beaker::exit::category_of(e.chain());
                eprintln!("beaker: error: {e:#}");
                rows.push(serde_json::json!({ "name": name, "error": {
                    "message": format!("{e:#}"),
                    "kind": super::output::kind(category),
                    "exit_code": beaker::exit::code(category),
                }}));
                failed.push((name, e));
            }
        }
    }
    if out.json {
        out.json(&rows)?;
    }
    if !failed.is_empty() {
        let list: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "beaker: error: {} of {} models failed: {}",
            failed.len(),
            names.len(),
            list.join(", ")
        );
        return Err(super::Reported(1).into());
    }
    Ok(())
}

/// One `--json` row of a pull that worked.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Row {
    Pulled(beaker::pull::Pulled),
    Held {
        name: beaker::ModelName,
        path: std::path::PathBuf,
        dir: Option<std::path::PathBuf>,
        downloaded: bool,
    },
}

impl Row {
    fn path(&self) -> &Path {
        match self {
            Row::Pulled(p) => &p.path,
            Row::Held { path, .. } => path,
        }
    }
}
