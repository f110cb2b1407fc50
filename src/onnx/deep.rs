//! `verify --deep`: after verify's hash check, load every ONNX blob the store names in ONNX
//! Runtime and list those that fail (DESIGN §7).
//!
//! A pass of its own, run by the front ends (`beaker store verify --deep`, `cargo xtask verify
//! --deep`) after [`crate::verify::run`], so it sees the store as verify left it: a corrupt blob
//! has been quarantined and reads as absent, and only blobs with the right bytes are loaded. A
//! model that fails to load is reported, never moved: its bytes are what the catalogue pinned;
//! the model itself is broken, which no re-download fixes.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::check::{is_onnx, load, Refused};
use super::runtime::RuntimeError;
use crate::digest::Blake3;
use crate::error::Category;
use crate::name::ModelName;
use crate::store::{Store, StoreError};

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
    /// Every name the store records for this blob.
    pub names: Vec<ModelName>,
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

/// Loads the ONNX models of `names` (every name when empty) that are present in `store`, each
/// from its main file in its snapshot, where the files it opens by name (ONNX external data) are
/// next to it; a name recorded before snapshots existed is loaded from its blob. Each model is
/// loaded once however many names share it. The runtime is loaded only if there is an ONNX model
/// to check.
pub fn verify_deep(store: &Store, names: &[ModelName]) -> Result<DeepOutcome, DeepError> {
    let manifest = store.read_manifest()?;
    let mut out = DeepOutcome::default();
    let mut models: BTreeMap<std::path::PathBuf, (Blake3, Vec<ModelName>)> = BTreeMap::new();
    for (name, entry) in &manifest.models {
        if !names.is_empty() && !names.contains(name) {
            continue;
        }
        if !is_onnx(entry) {
            out.not_onnx.push(name.clone());
            continue;
        }
        // Absent or damaged blobs, and snapshots that need repair, are verify's findings.
        let located = match store.locate(name) {
            Ok(l) if !l.snapshot_missing => l,
            _ => continue,
        };
        let main = entry.main_file(name);
        let Some(id) = entry
            .files(name)
            .into_iter()
            .find(|f| f.path == main)
            .and_then(|f| f.blake3)
        else {
            continue;
        };
        models
            .entry(located.main)
            .or_insert_with(|| (id, Vec::new()))
            .1
            .push(name.clone());
    }
    for (path, (id, names)) in models {
        out.checked += 1;
        match load(&path) {
            Ok(_) => out.ok += 1,
            Err(Refused::Runtime(e)) => return Err(e.into()),
            Err(Refused::Model(reason)) => out.failed.push(Failed {
                blake3: id,
                names,
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
            write!(
                f,
                "\ndoes not load: {} ({}): {}",
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
