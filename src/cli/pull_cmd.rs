//! `beaker store pull NAME…`: a thin layer over [`beaker::pull::Puller`]. Resolves every name
//! first (so a typo fails before anything is fetched), then pulls each in order, printing each
//! model's path (or one JSON array); one that fails is reported and the others still pulled. An
//! `oci://` reference is resolved through its registry's manifest
//! ([`beaker::oci::pull::resolve`]) and then pulled like a catalogue entry.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use beaker::catalogue::Resolved;
use beaker::lock::Wait;
use beaker::oci::Reference;
use beaker::pull::Puller;
use beaker::{ModelName, Store};

use super::context::Context;

use super::output::{size, Output};

/// The pull-specific flags.
pub struct Flags {
    /// `--name`: what an oci:// reference or a plain URL is recorded as.
    pub name: Option<String>,
    /// `--blake3/--sha256/--md5`: the digests a plain URL must have.
    pub pins: Pins,
    pub plain_http: bool,
    pub offline: bool,
    pub lock_timeout: Option<Duration>,
    pub ca_cert: Option<PathBuf>,
    /// `--check`: load ONNX models in ONNX Runtime before publishing.
    pub check: bool,
}

/// What one name became: pulled (or already there), or why not.
enum Outcome {
    /// In the catalogues (or resolved from a registry): pull it.
    Catalogued(Box<Resolved>),
    /// In no catalogue, but the store holds it (added with `add`): its path, as the fast path.
    Stored(ModelName),
}

/// The digests given on the command line for a plain URL.
pub struct Pins {
    pub blake3: Option<String>,
    pub sha256: Option<String>,
    pub md5: Option<String>,
}

/// `https://…`, `http://…` or `file://…`: a plain URL, pulled without a catalogue with --name.
fn is_plain_url(n: &str) -> bool {
    let lower = n.to_ascii_lowercase();
    ["https://", "http://", "file://"]
        .iter()
        .any(|p| lower.starts_with(p))
}

/// The catalogue entry a plain URL pulled with `--name` stands for: its digests as given (none:
/// trust on first use, and the BLAKE3 received is recorded), its format from its file name.
fn url_entry(url: &str, name: ModelName, pins: &Pins) -> Result<Resolved> {
    use beaker::digest::{Md5, Sha256};
    let hex = |h: &Option<String>| h.as_ref().map(|h| h.trim().to_ascii_lowercase());
    let blake3 = hex(&pins.blake3)
        .map(|h| beaker::Blake3::from_hex(&h))
        .transpose()?;
    let sha256 = hex(&pins.sha256)
        .map(|h| Sha256::from_hex(&h))
        .transpose()?;
    let md5 = hex(&pins.md5).map(|h| Md5::from_hex(&h)).transpose()?;
    let onnx = url
        .split(['?', '#'])
        .next()
        .is_some_and(|p| p.to_ascii_lowercase().ends_with(".onnx"));
    Ok(Resolved {
        name,
        entry: beaker::Entry {
            blake3,
            sha256,
            md5,
            urls: vec![url.to_owned()],
            format: onnx.then_some(beaker::manifest::Format::Onnx),
            ..beaker::Entry::default()
        },
        manifest: std::path::PathBuf::from("<command line>"),
    })
}

fn is_oci(n: &str) -> bool {
    let lower = n.to_ascii_lowercase();
    lower.starts_with("oci://") || lower.starts_with("oci+http://")
}

pub fn run(root: &Path, ctx: &Context, names: &[String], flags: Flags, out: Output) -> Result<()> {
    let oci_count = names.iter().filter(|n| is_oci(n)).count();
    let url_count = names.iter().filter(|n| is_plain_url(n)).count();
    if url_count > 0 && (flags.name.is_none() || names.len() != 1) {
        anyhow::bail!(super::error::BadUsage(
            "a URL is pulled alone and with --name N (the name to record it under); add \
             --blake3/--sha256/--md5 to pin its content"
                .into()
        ));
    }
    if flags.name.is_some() && (oci_count + url_count != 1 || names.len() != 1) {
        anyhow::bail!(beaker::oci::BadReference {
            reference: names.join(" "),
            problem: "--name goes with exactly one oci:// reference or URL".into(),
        });
    }
    let pinned =
        flags.pins.blake3.is_some() || flags.pins.sha256.is_some() || flags.pins.md5.is_some();
    if pinned && url_count == 0 {
        anyhow::bail!(super::error::BadUsage(
            "--blake3/--sha256/--md5 pin a URL pulled with --name; a catalogue name has its own digests".into()
        ));
    }
    let record_as = flags.name.as_deref().map(ModelName::new).transpose()?;
    // Parse every reference before loading catalogues or touching the network.
    let references = names
        .iter()
        .filter(|n| is_oci(n))
        .map(|n| Reference::parse(n, flags.plain_http))
        .collect::<Result<Vec<_>, _>>()?;
    let catalogue = match oci_count + url_count < names.len() {
        true => Some(ctx.catalogue()?),
        false => None,
    };
    let existing = ctx.existing_store()?;
    let mut options = ctx.pull_options()?;
    options.fetch.offline |= flags.offline;
    options.check = flags.check;
    if flags.ca_cert.is_some() {
        options.fetch.ca_cert = flags.ca_cert;
    }
    if let Some(d) = flags.lock_timeout {
        options.lock_wait = Wait::For(d);
    }
    // Resolve every name (a typo fails before anything is fetched): a catalogue entry, a name the
    // store holds that no catalogue lists, or a registry reference.
    let mut todo = Vec::with_capacity(names.len());
    let mut references = references.into_iter();
    for n in names {
        if is_plain_url(n) {
            let Some(name) = record_as.clone() else {
                anyhow::bail!("internal error: a URL without --name");
            };
            let model = url_entry(n, name, &flags.pins)?;
            if !pinned {
                out.note(format!(
                    "{}: no digest given: trusting what {n} serves now (trust on first use); the BLAKE3 received is recorded, pin it next time with --blake3",
                    model.name
                ));
            }
            todo.push(Outcome::Catalogued(Box::new(model)));
            continue;
        }
        if is_oci(n) {
            let Some(reference) = references.next() else {
                anyhow::bail!("internal error: a reference was not parsed");
            };
            let remote = beaker::oci::pull::resolve(&reference, record_as.clone(), &options.fetch)?;
            todo.push(Outcome::Catalogued(Box::new(remote.model)));
            continue;
        }
        let Some(catalogue) = &catalogue else {
            anyhow::bail!("internal error: no catalogue for {n}");
        };
        match catalogue.get(n) {
            Ok(model) => {
                if out.verbose > 0 {
                    eprintln!("{n}: from the catalogue {}", model.manifest.display());
                }
                todo.push(Outcome::Catalogued(Box::new(model.clone())))
            }
            Err(unknown) => {
                let held = ModelName::new(n).ok().filter(|name| {
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
                    .pull(&model, progress.as_mut())
                    .inspect(|p| {
                        if p.downloaded {
                            // store.toml's max_size: evict down to it if gc.lock is free (never
                            // waits, spares this model). Housekeeping: the pull is complete and
                            // its errors are not the pull's (`beaker store gc` reports them).
                            let _ = beaker::evict::after_publish(&store, &model.name);
                        }
                    })
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
                super::error::say(&e);
                rows.push(serde_json::json!({ "name": name, "error": super::error::json(&e) }));
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
        return Err(super::error::Reported(1).into());
    }
    Ok(())
}

/// One `--json` row of a pull that worked.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Row {
    Pulled(beaker::pull::Pulled),
    Held {
        name: ModelName,
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
