//! `beaker manifest check FILE…`: validate catalogues, including conflicts between them.

use std::path::PathBuf;

use anyhow::Result;

use beaker::{Catalogue, Manifest};

use super::args::ManifestCommand;
use super::output::Output;

pub fn run(cmd: ManifestCommand, out: Output) -> Result<()> {
    let ManifestCommand::Check { files } = cmd;
    let mut loaded = Vec::with_capacity(files.len());
    for file in files {
        let m = Manifest::load(&file)?;
        out.note(format!(
            "{}: ok ({} models)",
            file.display(),
            m.models.len()
        ));
        loaded.push((file, m));
    }
    let paths: Vec<PathBuf> = loaded.iter().map(|(p, _)| p.clone()).collect();
    let catalogue = Catalogue::from_manifests(loaded)?;
    if out.json {
        return out.json(&serde_json::json!({
            "valid": true,
            "files": paths,
            "models": catalogue.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        }));
    }
    Ok(())
}
