//! `verify --deep`: after verify's hash check, load every ONNX file of every model the store names
//! in ONNX Runtime (each graph of a model of several files, with its neighbours next to it) and
//! list those that fail (docs/design.md#maintenance).
//!
//! A pass of its own, run by the front ends (`beaker store verify --deep`, `cargo xtask verify
//! --deep`) after [`crate::maint::verify::run`], so it sees the store as verify left it: a corrupt blob
//! has been quarantined and reads as absent, and only blobs with the right bytes are loaded. A
//! model that fails to load is reported, never moved: its bytes are what the catalogue pinned;
//! the model itself is broken, which no re-download fixes.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::model::digest::Blake3;
use crate::model::file_path::FilePath;
use crate::model::name::ModelName;
use crate::onnx::check::{is_onnx, load, onnx_files, Refused};
use crate::onnx::runtime::RuntimeError;
use crate::store::{Store, StoreError};
use crate::sys::error::Category;

/// The `deep` part of `verify --deep --json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeepOutcome {
    /// ONNX blobs loaded.
    pub checked: usize,
    /// Of those, the ones ONNX Runtime accepted.
    pub ok: usize,
    /// The ones it refused, with its reason.
    pub failed: Vec<Failed>,
    /// Names not loaded because their format is not ONNX.
    pub not_onnx: Vec<ModelName>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub blake3: Blake3,
    /// Every name the store records for this blob (in this snapshot).
    pub names: Vec<ModelName>,
    /// The file in the model, for a model of several files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FilePath>,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DeepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The pass completed and some models do not load (exit 1); the outcome has the details.
    #[error("verify --deep: {failed} ONNX model(s) do not load in ONNX Runtime")]
    Found { failed: usize },
}

impl DeepError {
    pub fn category(&self) -> Category {
        match self {
            DeepError::Store(e) => e.category(),
            DeepError::Runtime(_) | DeepError::Found { .. } => Category::Failed,
        }
    }
}

impl DeepOutcome {
    /// `Ok` when every ONNX model loaded, else [`DeepError::Found`].
    pub fn into_result(&self) -> Result<(), DeepError> {
        if self.failed.is_empty() {
            Ok(())
        } else {
            Err(DeepError::Found {
                failed: self.failed.len(),
            })
        }
    }
}

/// One ONNX file to load: its blob, the file in a model of several files, and the names that
/// share it.
type ToLoad = (Blake3, Option<FilePath>, Vec<ModelName>);

/// Loads the ONNX files of `names` (every name when empty) that are present in `store`: a
/// single-file model from its file in its snapshot (a name recorded before snapshots existed from
/// its blob), a model of several files every one of its ONNX files ([`onnx_files`]) from its
/// snapshot, where the files each opens by name (ONNX external data) are next to it. Each file is
/// loaded once however many names share its snapshot. The runtime is loaded only if there is an
/// ONNX file to check.
/// Whether `--deep` can run: when any model it would load (of `names`, or all) has an ONNX
/// file, loads ONNX Runtime now, so a missing runtime is reported before the hash pass reads
/// every blob.
pub fn ready(store: &Store, names: &[ModelName]) -> Result<(), DeepError> {
    let manifest = store.read_manifest()?;
    let any_onnx = manifest
        .models
        .iter()
        .filter(|(n, _)| names.is_empty() || names.contains(n))
        .any(|(_, r)| is_onnx(&r.model) || !onnx_files(&r.model).is_empty());
    if any_onnx {
        crate::onnx::check::runtime_ready()?;
    }
    Ok(())
}

pub fn verify_deep(store: &Store, names: &[ModelName]) -> Result<DeepOutcome, DeepError> {
    let manifest = store.read_manifest()?;
    let mut out = DeepOutcome::default();
    let mut to_load: BTreeMap<std::path::PathBuf, ToLoad> = BTreeMap::new();
    for (name, record) in &manifest.models {
        if !names.is_empty() && !names.contains(name) {
            continue;
        }
        let model = &record.model;
        let listed = model.single_file().is_none();
        // The file is named in a failure only when the model has more than one.
        let several = listed && model.files().len() > 1;
        let onnx = if listed {
            onnx_files(model)
        } else if is_onnx(model) {
            vec![model.main().path.clone()]
        } else {
            Vec::new()
        };
        if onnx.is_empty() {
            out.not_onnx.push(name.clone());
            continue;
        }
        // Absent or damaged blobs, and snapshots that need repair, are verify's findings.
        let located = match store.locate(name) {
            Ok(l) if !l.snapshot_missing => l,
            _ => continue,
        };
        for path in onnx {
            let Some(id) = model
                .files()
                .iter()
                .find(|f| f.path == path)
                .map(|f| f.blob.blake3)
            else {
                continue;
            };
            let at = match &located.dir {
                Some(dir) => path.under(dir),
                None if !listed => located.main.clone(),
                None => continue, // listed files and no snapshot: verify reports it
            };
            to_load
                .entry(at)
                .or_insert_with(|| (id, several.then(|| path.clone()), Vec::new()))
                .2
                .push(name.clone());
        }
    }
    for (path, (id, file, names)) in to_load {
        out.checked += 1;
        match load(&path) {
            Ok(_) => out.ok += 1,
            Err(Refused::Runtime(e)) => return Err(e.into()),
            Err(Refused::Model(reason)) => out.failed.push(Failed {
                blake3: id,
                names,
                file,
                reason,
            }),
        }
    }
    Ok(out)
}

impl fmt::Display for DeepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deep: loaded {} ONNX model(s) in ONNX Runtime: {} ok, {} failed",
            self.checked,
            self.ok,
            self.failed.len()
        )?;
        for failed in &self.failed {
            let names: Vec<&str> = failed.names.iter().map(ModelName::as_str).collect();
            let file = failed
                .file
                .as_ref()
                .map_or_else(String::new, |p| format!("{p}, "));
            write!(
                f,
                "\ndoes not load: {} ({file}{}): {}",
                names.join(", "),
                failed.blake3.short(),
                failed.reason
            )?;
        }
        if !self.not_onnx.is_empty() {
            let names: Vec<&str> = self.not_onnx.iter().map(ModelName::as_str).collect();
            write!(f, "\nnot ONNX, not loaded: {}", names.join(", "))?;
        }
        Ok(())
    }
}
