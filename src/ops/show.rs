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
use crate::model::kind::{self, FileKind};
use crate::model::name::ModelName;
use crate::onnx::info::{Opset, Producer, Tensor};
use crate::onnx::InspectError;
use crate::store::{BlobState, Store, StoreError};
use crate::sys::error::Category;

/// `show --json`: `{name, blake3, size, format, path, files, total_size, inputs, outputs,
/// opsets, producer, ir_version, metadata}` plus what the store records (`names`, `urls`,
/// `added`, `description`). The fields before `files` are the shown file's: a model's main
/// file, or the file a BLAKE3 names. The ONNX fields are `null` for a file that is not ONNX.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// The name asked for, or the first name recording the blob (`null` if none does).
    pub name: Option<ModelName>,
    /// Every name in the store that records this blob.
    pub names: Vec<ModelName>,
    pub blake3: Blake3,
    pub size: u64,
    /// The shown file's kind ([`FileKind`]: `onnx`, `onnx-data`, `safetensors`, `json`, …).
    pub format: FileKind,
    /// The shown file's path in its model (`null` for a blob no name records).
    pub path: Option<String>,
    /// Every file of the model (empty for a blob no name records).
    pub files: Vec<ShownFile>,
    /// Bytes of all the model's files (the shown blob's for a blob no name records).
    pub total_size: u64,
    /// The shown file's sources.
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

/// One file of a shown model.
#[derive(Debug, Clone, Serialize)]
pub struct ShownFile {
    pub path: String,
    pub size: u64,
    pub format: FileKind,
    pub blake3: Blake3,
    /// Whether this is the file `store path` prints.
    pub main: bool,
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
                .ok_or_else(|| StoreError::NotInStore {
                    name: name.clone(),
                    close: Vec::new(),
                })?;
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
    // The file shown: the main one for a name; for a BLAKE3, the main file if it is that blob,
    // else the first file that is.
    let file = record.as_ref().and_then(|r| {
        let main = r.model.main();
        if main.blob.blake3 == id {
            Some(main.clone())
        } else {
            r.model
                .files()
                .iter()
                .find(|f| f.blob.blake3 == id)
                .cloned()
        }
    });
    let is_main = record
        .as_ref()
        .zip(file.as_ref())
        .is_some_and(|(r, f)| r.model.main().path == f.path);
    let model_format = record.as_ref().and_then(|r| r.model.format);
    let (urls, added, description) = match &record {
        Some(r) => (
            file.as_ref().map(|f| f.urls.clone()).unwrap_or_default(),
            r.added.clone(),
            r.model.description.clone(),
        ),
        None => (Vec::new(), None, None),
    };
    let file_name = file.as_ref().map(|f| f.path.as_str().to_owned());
    let mut format = kind_of(store, id, file_name.as_deref().unwrap_or(""), size)?;
    // The record's word for its main file: an ONNX model's main file is its graph.
    match (is_main, model_format) {
        (true, Some(Format::Onnx)) => format = FileKind::Onnx,
        (true, Some(Format::Other)) if format == FileKind::Onnx => format = FileKind::Other,
        _ => {}
    }
    // Claimed ONNX (by the record or the file's name): the bytes must read as ONNX. Otherwise
    // bytes that may be a protobuf (field 1, a varint) are tried, quietly.
    let claimed = format == FileKind::Onnx;
    let maybe = format == FileKind::Other && model_format != Some(Format::Other) && {
        let head = head_of(store, id)?;
        head.first() == Some(&0x08)
    };
    let info = if claimed || maybe {
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
    } else {
        None
    };
    if info.is_some() {
        format = FileKind::Onnx;
    }
    let files = match &record {
        Some(r) => r
            .model
            .files()
            .iter()
            .map(|f| {
                let main = r.model.main().path == f.path;
                let mut format = if Some(&f.path) == file.as_ref().map(|s| &s.path) {
                    format
                } else {
                    kind_of(store, f.blob.blake3, f.path.as_str(), f.blob.size)?
                };
                if main && model_format == Some(Format::Onnx) {
                    format = FileKind::Onnx;
                }
                Ok(ShownFile {
                    path: f.path.as_str().to_owned(),
                    size: f.blob.size,
                    format,
                    blake3: f.blob.blake3,
                    main,
                })
            })
            .collect::<Result<Vec<_>, ShowError>>()?,
        None => Vec::new(),
    };
    let total_size = if files.is_empty() {
        size
    } else {
        files.iter().map(|f| f.size).sum()
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
        path: file_name,
        files,
        total_size,
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

/// The first [`kind::HEAD`] bytes of the blob `id` (fewer if it is shorter; none if it is gone).
fn head_of(store: &Store, id: Blake3) -> Result<Vec<u8>, ShowError> {
    use std::io::Read;
    let at = store.layout().blob(&id);
    let Ok(file) = crate::sys::fsx::open_read(&at) else {
        return Ok(Vec::new());
    };
    let mut head = Vec::with_capacity(kind::HEAD);
    file.take(kind::HEAD as u64)
        .read_to_end(&mut head)
        .map_err(|e| StoreError::from(crate::sys::error::IoError::new("read", &at, e)))?;
    Ok(head)
}

/// The kind of the file `name` of a model, whose bytes are the blob `id` of `size` bytes.
fn kind_of(store: &Store, id: Blake3, name: &str, size: u64) -> Result<FileKind, ShowError> {
    Ok(FileKind::sniff(name, &head_of(store, id)?, size))
}
