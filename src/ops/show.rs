//! `beaker store show NAME|BLAKE3`: what the store knows about a model, and for an ONNX model
//! what it takes and gives ([`crate::onnx::inspect`], read from the blob; no runtime needed).
//!
//! Read-only: takes no lock and changes nothing. A name resolves through the store manifest; a
//! 64-hex BLAKE3 names a blob directly (with every name that records it, possibly none).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::digest::Blake3;
use crate::model::manifest::{Entry, Format};
use crate::model::name::ModelName;
use crate::onnx::info::{Opset, Producer, Tensor};
use crate::onnx::{is_onnx, InspectError};
use crate::store::{BlobState, Store, StoreError};
use crate::sys::error::Category;

/// `show --json`: `{name, blake3, size, format, inputs, outputs, opsets, producer, ir_version,
/// metadata}` plus what the store records (`names`, `urls`, `added`, `description`). The ONNX
/// fields are `null` for a model that is not ONNX.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// The name asked for, or the first name recording the blob (`null` if none does).
    pub name: Option<ModelName>,
    /// Every name in the store that records this blob.
    pub names: Vec<ModelName>,
    pub blake3: Blake3,
    pub size: u64,
    /// `onnx`, `other`, or `null` when neither the store nor the bytes say.
    pub format: Option<Format>,
    pub urls: Vec<String>,
    pub added: Option<String>,
    pub description: Option<String>,
    pub inputs: Option<Vec<Tensor>>,
    pub outputs: Option<Vec<Tensor>>,
    pub opsets: Option<Vec<Opset>>,
    pub producer: Option<Producer>,
    pub ir_version: Option<i64>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] crate::model::name::InvalidName),
    #[error("no blob {blob} in the store (and no name records it); `beaker store ls` lists what it holds")]
    NoSuchBlob { blob: Blake3 },
    /// The model is recorded as ONNX but its bytes are not a readable ONNX model.
    #[error("{what} is recorded as ONNX but its blob does not read as ONNX")]
    NotOnnx {
        what: String,
        #[source]
        source: InspectError,
    },
}

impl ShowError {
    pub fn category(&self) -> Category {
        match self {
            ShowError::Store(e) => e.category(),
            ShowError::Name(_) => Category::BadInput,
            ShowError::NoSuchBlob { .. } => Category::NotPresent,
            ShowError::NotOnnx { source, .. } => source.category(),
        }
    }
}

/// The BLAKE3 of `entry`'s main file (the one `store path` prints; for ONNX, the graph).
fn main_blob(name: &ModelName, entry: &Entry) -> Option<Blake3> {
    let main = entry.main_file(name);
    entry
        .files(name)
        .into_iter()
        .find(|f| f.path == main)
        .and_then(|f| f.blake3)
}

/// Whether any file of `entry` is the blob `id`.
fn holds(name: &ModelName, entry: &Entry, id: Blake3) -> bool {
    entry.files(name).iter().any(|f| f.blake3 == Some(id))
}

/// Shows `target`: a model name the store holds (its main file), or a blob's BLAKE3 (64 hex).
pub fn show(store: &Store, target: &str) -> Result<Shown, ShowError> {
    let manifest = store.read_manifest()?;
    let (name, id, entry) = match Blake3::from_hex(target) {
        Ok(id) => {
            let found = manifest
                .models
                .iter()
                .find(|(n, e)| main_blob(n, e) == Some(id))
                .or_else(|| manifest.models.iter().find(|(n, e)| holds(n, e, id)));
            let name = found.map(|(n, _)| n.clone());
            (name, id, found.map(|(_, e)| e.clone()))
        }
        Err(_) => {
            let name = ModelName::new(target)?;
            let entry = manifest
                .models
                .get(&name)
                .ok_or_else(|| StoreError::NotInStore { name: name.clone() })?;
            let id = main_blob(&name, entry)
                .ok_or_else(|| StoreError::NotInStore { name: name.clone() })?;
            (Some(name), id, Some(entry.clone()))
        }
    };
    let path = store.layout().blob(&id);
    let size = match store.blob_state(&id, None)? {
        BlobState::Present { size } => size,
        BlobState::Absent => {
            return Err(match &name {
                Some(n) => StoreError::BlobMissing {
                    name: n.clone(),
                    blob: id,
                    path: path.path(),
                }
                .into(),
                None => ShowError::NoSuchBlob { blob: id },
            })
        }
        BlobState::Damaged { problem } => {
            return Err(StoreError::DamagedBlob {
                path: path.path(),
                problem,
            }
            .into())
        }
    };
    let names = manifest
        .models
        .iter()
        .filter(|(n, e)| holds(n, e, id))
        .map(|(n, _)| n.clone())
        .collect();
    let mut entry = entry.unwrap_or_default();
    // A model of several files: the sources shown are the main file's.
    if let (Some(n), Some(files)) = (&name, &entry.files) {
        let main = entry.main_file(n);
        entry.urls = files
            .iter()
            .find(|f| f.path == main)
            .map(|f| f.urls.clone())
            .unwrap_or_default();
    }

    // Recorded as ONNX: the bytes must read as ONNX. Recorded as nothing: try, quietly.
    let claimed = entry.format.is_some() || !entry.urls.is_empty();
    let info = if claimed && !is_onnx(&entry) {
        None
    } else {
        let opened = crate::sys::fsx::open_read(&path).map_err(|e| ShowError::NotOnnx {
            what: target.to_owned(),
            source: e.into(),
        })?;
        match crate::onnx::inspect_file(opened, &path.path()) {
            Ok(info) => Some(info),
            Err(e @ InspectError::Io(_)) => {
                return Err(ShowError::NotOnnx {
                    what: target.to_owned(),
                    source: e,
                })
            }
            Err(e) if claimed => {
                return Err(ShowError::NotOnnx {
                    what: target.to_owned(),
                    source: e,
                })
            }
            Err(_) => None,
        }
    };
    let format = match (&info, entry.format) {
        (Some(_), _) => Some(Format::Onnx),
        (None, f) => f,
    };
    let Entry {
        urls,
        added,
        description,
        ..
    } = entry;
    let (inputs, outputs, opsets, producer, ir_version, metadata) = match info {
        Some(i) => (
            Some(i.inputs),
            Some(i.outputs),
            Some(i.opsets),
            Some(i.producer),
            Some(i.ir_version),
            Some(i.metadata),
        ),
        None => (None, None, None, None, None, None),
    };
    Ok(Shown {
        name,
        names,
        blake3: id,
        size,
        format,
        urls,
        added,
        description,
        inputs,
        outputs,
        opsets,
        producer,
        ir_version,
        metadata,
    })
}
