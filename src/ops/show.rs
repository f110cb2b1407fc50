//! `beaker store show NAME|BLAKE3`: what the store knows about a model, and for an ONNX model
//! what it takes and gives ([`crate::onnx::inspect`], read from the blob; no runtime needed).
//!
//! Read-only: takes no lock and changes nothing. A name resolves through the store manifest; a
//! 64-hex BLAKE3 names a blob directly (with every name that records it, possibly none), and
//! so does the start of one (8 hex digits or more, as `ls` prints them) when no name is that.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::digest::Blake3;
use crate::model::entry::{Format, Record};
use crate::model::name::ModelName;
use crate::onnx::info::{Opset, Producer, Tensor};
use crate::onnx::{looks_onnx, InspectError};
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
    #[error("no blob in the store starts with {prefix}, and no name is {prefix}; `beaker store ls` lists what it holds")]
    NoBlobWithPrefix { prefix: String },
    #[error("{prefix} is the start of {} blobs: {}; give more of the hash", candidates.len(), candidates.iter().take(10).map(|b| b.to_hex()).collect::<Vec<_>>().join(", "))]
    AmbiguousPrefix {
        prefix: String,
        candidates: Vec<Blake3>,
    },
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
            ShowError::NoSuchBlob { .. } | ShowError::NoBlobWithPrefix { .. } => {
                Category::NotPresent
            }
            ShowError::AmbiguousPrefix { .. } => Category::BadInput,
            ShowError::NotOnnx { source, .. } => source.category(),
        }
    }
}

/// The BLAKE3 of `record`'s main file (the one `store path` prints; for ONNX, the graph).
fn main_blob(record: &Record) -> Blake3 {
    record.model.main().blob.blake3
}

/// Whether any file of `record` is the blob `id`.
fn holds(record: &Record, id: Blake3) -> bool {
    record.model.blobs().any(|b| b == id)
}

/// The fewest hex digits of a BLAKE3 that [`show`] takes as the start of one (`ls` prints 12).
pub const MIN_PREFIX: usize = 8;

/// The blob whose BLAKE3 starts with `prefix` (at least [`MIN_PREFIX`] hex digits, any case),
/// among the blobs in `blobs/` and those `manifest` records; `None` when `prefix` is not such a
/// prefix. None found, or more than one: an error naming them.
fn by_prefix(
    store: &Store,
    manifest: &crate::model::manifest::Manifest<Record>,
    prefix: &str,
) -> Result<Option<Blake3>, ShowError> {
    let prefix = prefix.to_ascii_lowercase();
    if !(MIN_PREFIX..64).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let stored = crate::store::names_in(&store.layout().blobs())
        .map_err(StoreError::from)?
        .into_iter()
        .filter_map(|n: String| Blake3::from_hex(&n).ok());
    let recorded = manifest.models.values().flat_map(|r| r.model.blobs());
    let candidates: std::collections::BTreeSet<Blake3> = stored
        .chain(recorded)
        .filter(|b| b.to_hex().starts_with(&prefix))
        .collect();
    let mut candidates: Vec<Blake3> = candidates.into_iter().collect();
    match candidates.len() {
        0 => Err(ShowError::NoBlobWithPrefix { prefix }),
        1 => Ok(candidates.pop()),
        _ => Err(ShowError::AmbiguousPrefix { prefix, candidates }),
    }
}

/// Shows `target`: a model name the store holds (its main file), a blob's BLAKE3 (64 hex), or,
/// when no name is `target`, the start of one blob's BLAKE3 (at least [`MIN_PREFIX`] hex
/// digits, as `ls` prints them).
pub fn show(store: &Store, target: &str) -> Result<Shown, ShowError> {
    let manifest = store.read_manifest()?;
    let is_name = ModelName::new(target).is_ok_and(|n| manifest.models.contains_key(&n));
    let full = match Blake3::from_hex(target) {
        Ok(id) => Ok(id),
        Err(e) if is_name => Err(e),
        Err(e) => by_prefix(store, &manifest, target)?.ok_or(e),
    };
    let (name, id, record) = match full {
        Ok(id) => {
            let found = manifest
                .models
                .iter()
                .find(|(_, r)| main_blob(r) == id)
                .or_else(|| manifest.models.iter().find(|(_, r)| holds(r, id)));
            let name = found.map(|(n, _)| n.clone());
            (name, id, found.map(|(_, r)| r.clone()))
        }
        Err(_) => {
            let name = ModelName::new(target)?;
            let record = manifest
                .models
                .get(&name)
                .ok_or_else(|| StoreError::NotInStore { name: name.clone() })?;
            (Some(name), main_blob(record), Some(record.clone()))
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
        .filter(|(_, r)| holds(r, id))
        .map(|(n, _)| n.clone())
        .collect();
    // What the record says (nothing for a blob no name records); the sources shown are the main
    // file's.
    let (format, urls, added, description) = match record {
        Some(r) => (
            r.model.format,
            r.model.main().urls.clone(),
            r.added,
            r.model.description,
        ),
        None => (None, Vec::new(), None, None),
    };

    // Recorded as ONNX: the bytes must read as ONNX. Recorded as nothing: try, quietly.
    let claimed = format.is_some() || !urls.is_empty();
    let info = if claimed && !looks_onnx(format, &urls) {
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
    let format = match (&info, format) {
        (Some(_), _) => Some(Format::Onnx),
        (None, f) => f,
    };
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
