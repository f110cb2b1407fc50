//! `beaker store pull NAME…`: a thin layer over [`beaker::pull::Puller`]. Resolves every name
//! first (so a typo fails before anything is fetched), then pulls in order, printing one blob
//! path per name (or one JSON array). An `oci://` reference is resolved through its registry's
//! manifest ([`beaker::oci::pull::resolve`]) and then pulled like a catalogue entry.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use beaker::lock::Wait;
use beaker::oci::Reference;
use beaker::pull::{Options, Puller};
use beaker::{Catalogue, ModelName, Store};

use super::output::{size, Output};

/// The pull-specific flags.
pub struct Flags {
    /// `--name`: what an oci:// reference is recorded as.
    pub name: Option<String>,
    pub plain_http: bool,
    pub offline: bool,
    pub lock_timeout: Option<Duration>,
    pub ca_cert: Option<PathBuf>,
}

pub fn run(
    root: &Path,
    manifests: &[PathBuf],
    names: &[String],
    flags: Flags,
    out: Output,
) -> Result<()> {
    let is_oci = |n: &str| {
        let lower = n.to_ascii_lowercase();
        lower.starts_with("oci://") || lower.starts_with("oci+http://")
    };
    let oci_count = names.iter().filter(|n| is_oci(n)).count();
    if flags.name.is_some() && (oci_count != 1 || names.len() != 1) {
        anyhow::bail!(beaker::oci::BadReference {
            reference: names.join(" "),
            problem: "--name goes with exactly one oci:// reference".into(),
        });
    }
    let name = flags.name.as_deref().map(ModelName::new).transpose()?;
    // Parse every reference before loading catalogues or touching the network.
    let references = names
        .iter()
        .filter(|n| is_oci(n))
        .map(|n| Reference::parse(n, flags.plain_http))
        .collect::<Result<Vec<_>, _>>()?;
    let catalogue = if oci_count < names.len() {
        Some(Catalogue::load(
            manifests,
            std::env::var_os("BEAKER_MANIFEST").as_deref(),
        )?)
    } else {
        None
    };
    let mut options = Options::from_env()?;
    options.fetch.offline |= flags.offline;
    if flags.ca_cert.is_some() {
        options.fetch.ca_cert = flags.ca_cert;
    }
    if let Some(d) = flags.lock_timeout {
        options.lock_wait = Wait::For(d);
    }
    let mut models = Vec::with_capacity(names.len());
    let mut references = references.into_iter();
    for n in names {
        match (&catalogue, is_oci(n)) {
            (_, true) => {
                let Some(reference) = references.next() else {
                    anyhow::bail!("internal error: a reference was not parsed");
                };
                let remote = beaker::oci::pull::resolve(&reference, name.clone(), &options.fetch)?;
                models.push(remote.model);
            }
            (Some(c), false) => models.push(c.get(n)?.clone()),
            (None, false) => anyhow::bail!("internal error: no catalogue for {n}"),
        }
    }
    let store = Store::open_or_create(root)?;
    let mut puller = Puller::new(&store, options);
    let mut progress = out.progress();
    let mut rows = Vec::with_capacity(models.len());
    for model in &models {
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
