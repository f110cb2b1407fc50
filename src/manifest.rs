//! The manifest format of DESIGN §3 (version 1): parse, validate, serialize.
//!
//! The same format serves two roles: *catalogues* (what models exist and where to fetch them) and
//! the store's own `manifest.toml` (what the store holds under which name: the gc roots). Parsing
//! is strict — unknown keys, a wrong version, a bad name or digest are errors — and every error
//! names the file, line and column, because a typo in a catalogue should never turn into a silent
//! download of the wrong thing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Blake3, Md5, Sha256};
use crate::error::{line_col, Category, IoError};
use crate::name::ModelName;

/// The manifest format version this beaker reads and writes.
pub const VERSION: i64 = 1;

/// One model: its content address, size and where to get it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The content address. Absent only for upstream entries that pin `sha256`/`md5` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<Blake3>,
    /// Size in bytes. May be absent only when `blake3` is absent too (upstream-pinned entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Sources, tried in order; a relative path is relative to the manifest's directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<Md5>,
    /// Catalogue only: load the model in ONNX Runtime before publishing it, as `pull --check`
    /// does (an ONNX model that does not load is never published). Ignored for other formats.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
    /// When the store recorded this name (store manifest only), RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<String>,
}

impl Entry {
    /// True when both entries describe the same bytes (the fields that pin content agree).
    pub fn same_content(&self, other: &Entry) -> bool {
        self.blake3 == other.blake3
            && self.size == other.size
            && self.sha256 == other.sha256
            && self.md5 == other.md5
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Onnx,
    Other,
}

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub models: BTreeMap<ModelName, Entry>,
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Io(#[from] IoError),
    /// Syntax or validation error at a place in the file.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The same name pins different content in two catalogues.
    #[error("model {name} is defined differently in {} and {}; remove one or give it another name", first.display(), second.display())]
    Conflict {
        name: ModelName,
        first: PathBuf,
        second: PathBuf,
    },
}

impl ManifestError {
    pub fn category(&self) -> Category {
        match self {
            ManifestError::Io(_) => Category::Failed,
            ManifestError::Invalid { .. } | ManifestError::Conflict { .. } => Category::BadInput,
        }
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    version: Option<toml::Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[allow(dead_code)] // checked by VersionProbe first, declared so it is not an unknown key
    version: toml::Value,
    #[serde(default)]
    models: BTreeMap<ModelName, toml::Spanned<Entry>>,
}

#[derive(Serialize)]
struct DocumentOut<'a> {
    version: i64,
    models: &'a BTreeMap<ModelName, Entry>,
}

impl Manifest {
    /// Reads and parses the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| IoError::new("read manifest", path, e))?;
        Self::parse(&text, path)
    }

    /// Parses manifest text; `path` is used only in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let at = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            ManifestError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let from_toml = |e: toml::de::Error| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().trim().replace('\n', "; "))
        };

        let probe: VersionProbe = toml::from_str(text).map_err(from_toml)?;
        match probe.version {
            None => return Err(at(0, format!("missing `version = {VERSION}` at the top"))),
            Some(v) => match v.get_ref().as_integer() {
                Some(VERSION) => {}
                Some(n) if n > VERSION => {
                    return Err(at(
                        v.span().start,
                        format!("manifest version {n} is newer than this beaker understands ({VERSION}); upgrade beaker"),
                    ))
                }
                _ => {
                    return Err(at(
                        v.span().start,
                        format!("unsupported manifest version {}; this beaker reads version {VERSION}", v.get_ref()),
                    ))
                }
            },
        }

        let doc: Document = toml::from_str(text).map_err(from_toml)?;
        let mut models = BTreeMap::new();
        for (name, spanned) in doc.models {
            let offset = spanned.span().start;
            let entry = spanned.into_inner();
            validate_entry(&name, &entry).map_err(|m| at(offset, m))?;
            models.insert(name, entry);
        }
        Ok(Manifest { models })
    }

    /// The blobs this manifest references: the gc roots when it is the store manifest, extra
    /// roots when it is a `--keep` catalogue.
    pub fn roots(&self) -> std::collections::BTreeSet<Blake3> {
        self.models.values().filter_map(|e| e.blake3).collect()
    }

    /// Serializes to TOML; `parse(to_toml()?)` gives back an equal manifest.
    ///
    /// # Errors
    /// Only for values TOML cannot hold: a `size` above `i64::MAX` (no real file is that large).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let doc = DocumentOut {
            version: VERSION,
            models: &self.models,
        };
        toml::to_string(&doc)
    }
}

/// DESIGN §3 rules that serde cannot express.
fn validate_entry(name: &ModelName, e: &Entry) -> Result<(), String> {
    let upstream = e.sha256.is_some() || e.md5.is_some();
    if e.blake3.is_none() && !upstream {
        return Err(format!(
            "model {name} has no digest; add `blake3 = \"<64 hex>\"` (or `sha256`/`md5` if upstream publishes only those)"
        ));
    }
    if e.size.is_none() && e.blake3.is_some() {
        return Err(format!(
            "model {name} has no size; add `size = <bytes>` (only upstream entries pinned by sha256/md5 alone may omit it)"
        ));
    }
    for url in &e.urls {
        check_url(url).map_err(|why| format!("model {name}: url {url:?} {why}"))?;
    }
    Ok(())
}

/// A URL is `https://`, `http://`, `file://` or a relative path (no scheme, not absolute).
fn check_url(url: &str) -> Result<(), String> {
    if url.trim().is_empty() {
        return Err("is empty".into());
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return match scheme {
            "https" | "http" | "file" => Ok(()),
            other => Err(format!(
                "has unsupported scheme {other:?}; use https://, http://, file:// or a path relative to the manifest"
            )),
        };
    }
    Ok(())
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Onnx => "onnx",
            Format::Other => "other",
        })
    }
}

#[cfg(test)]
mod tests;
