//! The manifest format of docs/design.md#manifest-format (version 1): parse, validate, serialize.
//!
//! The same format serves two roles: *catalogues* (what models exist and where to fetch them) and
//! the store's own `manifest.toml` (what the store holds under which name: the gc roots). Parsing
//! is strict — unknown keys, a wrong version, a bad name or digest are errors — and every error
//! names the file, line and column, because a typo in a catalogue should never turn into a silent
//! download of the wrong thing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::digest::{Blake3, Md5, Sha256};
use crate::model::file_path::FilePath;
use crate::model::name::ModelName;
use crate::sys::error::{line_col, Category, IoError};

pub use crate::model::entry::{Format, MAX_FILES};

/// The manifest format version this beaker reads and writes.
pub const VERSION: i64 = 1;

/// The largest catalogue [`Manifest::load`] reads (16 MiB; a thousand entries are ~300 KiB), so a
/// path to a huge file or a device cannot make beaker read without end.
pub const MAX_CATALOGUE_BYTES: u64 = 16 << 20;

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
    /// A single-file model's file name in its snapshot (default: see [`Entry::files`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FilePath>,
    /// A model of several files (docs/design.md#snapshots): each one a blob with its own digests and urls.
    /// Such an entry has no top-level `blake3`/`size`/`urls`/`sha256`/`md5`/`file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileEntry>>,
    /// The file `beaker store path` prints (default: the first file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<FilePath>,
    /// The snapshot the store built for this name (store manifest only): the tree id of its
    /// files, recorded after the snapshot exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<Blake3>,
}

/// One file of a model of several files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: FilePath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<Blake3>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<Md5>,
}

impl Entry {
    /// Every upstream digest this entry pins, strongest first.
    pub fn upstream(&self) -> Vec<crate::model::digest::Upstream> {
        crate::model::digest::Upstream::all(self.sha256, self.md5)
    }

    /// A single-file entry's content fields, as a [`FileEntry`].
    fn as_file(&self, name: &ModelName) -> FileEntry {
        self.files(name).remove(0)
    }
}

impl FileEntry {
    /// This file as a single-file entry: what one blob is downloaded, checked and published by.
    pub fn as_entry(&self) -> Entry {
        Entry {
            blake3: self.blake3,
            size: self.size,
            urls: self.urls.clone(),
            sha256: self.sha256,
            md5: self.md5,
            ..Entry::default()
        }
    }
}

impl Entry {
    /// True when both entries describe the same bytes (the fields that pin content agree, file
    /// by file, with the same file names).
    pub fn same_content(&self, other: &Entry, name: &ModelName) -> bool {
        let (a, b) = (self.files(name), other.files(name));
        a.len() == b.len()
            && a.iter().zip(&b).all(|(x, y)| {
                x.path == y.path
                    && x.blake3 == y.blake3
                    && x.size == y.size
                    && x.sha256 == y.sha256
                    && x.md5 == y.md5
            })
    }

    /// The model's files: `files` as listed, or the one file of a single-file entry, named by
    /// `file`, else the last segment of its first URL, else `NAME.onnx` for ONNX, else `NAME`
    /// (the last part of an `org/name`).
    pub fn files(&self, name: &ModelName) -> Vec<FileEntry> {
        if let Some(files) = &self.files {
            return files.clone();
        }
        vec![FileEntry {
            path: self.single_file_name(name),
            blake3: self.blake3,
            size: self.size,
            urls: self.urls.clone(),
            sha256: self.sha256,
            md5: self.md5,
        }]
    }

    /// The file name of a single-file entry (see [`Entry::files`]).
    pub fn single_file_name(&self, name: &ModelName) -> FilePath {
        if let Some(file) = &self.file {
            return file.clone();
        }
        if let Some(p) = self.urls.first().and_then(|u| FilePath::from_url_tail(u)) {
            return p;
        }
        let base = name.as_str().rsplit('/').next().unwrap_or(name.as_str());
        let file = match self.format {
            Some(Format::Onnx) if !base.ends_with(".onnx") => format!("{base}.onnx"),
            _ => base.to_owned(),
        };
        // A valid model name is always a valid single-part file path.
        FilePath::new(&file).unwrap_or_else(|_| FilePath::new("model").expect("a valid path"))
    }

    /// The path `beaker store path` prints, relative to the snapshot: `main`, else the first file.
    pub fn main_file(&self, name: &ModelName) -> FilePath {
        self.main
            .clone()
            .unwrap_or_else(|| self.files(name)[0].path.clone())
    }

    /// Whether every file's BLAKE3 and size are known (what a recorded entry always has).
    pub fn is_pinned(&self, name: &ModelName) -> bool {
        self.files(name)
            .iter()
            .all(|f| f.blake3.is_some() && f.size.is_some())
    }

    /// The snapshot's file list, when every file is pinned by BLAKE3 and size.
    pub fn model_files(&self, name: &ModelName) -> Option<Vec<crate::model::tree::ModelFile>> {
        self.files(name)
            .into_iter()
            .map(|f| {
                Some(crate::model::tree::ModelFile {
                    path: f.path,
                    blake3: f.blake3?,
                    size: f.size?,
                })
            })
            .collect()
    }
}

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub models: BTreeMap<ModelName, Entry>,
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The catalogue file could not be read: missing, unreadable, not a regular file (a FIFO,
    /// a device, a directory), larger than [`MAX_CATALOGUE_BYTES`] or not UTF-8. Bad input: the
    /// user named a file that is not a catalogue.
    #[error("{0}: {src}; give the path of a catalogue file (TOML)", src = .0.source)]
    Unreadable(IoError),
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
            ManifestError::Unreadable(_)
            | ManifestError::Invalid { .. }
            | ManifestError::Conflict { .. } => Category::BadInput,
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
    /// Spans on the keys, not the tables: toml cannot give a span for a table that only exists
    /// through a header like `[[models.m.files]]`, but every key has one.
    #[serde(default)]
    models: BTreeMap<toml::Spanned<ModelName>, Entry>,
}

#[derive(Serialize)]
struct DocumentOut<'a> {
    version: i64,
    models: &'a BTreeMap<ModelName, Entry>,
}

impl Manifest {
    /// Reads and parses the catalogue at `path` (a symlink is followed: the user named it).
    ///
    /// # Errors
    /// [`ManifestError::Unreadable`] without blocking for anything but a regular file of at most
    /// [`MAX_CATALOGUE_BYTES`] (a FIFO or `/dev/zero` is refused, never read).
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let bytes = crate::sys::fsx::user::read(path, MAX_CATALOGUE_BYTES)
            .map_err(ManifestError::Unreadable)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            ManifestError::Unreadable(IoError::new(
                "read",
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"),
            ))
        })?;
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

        // One parse when all is well (the store reads one record per name, so this is on the
        // path of `ls` and gc): the document with the right version. Anything else takes the
        // path below, which gives each error its message and position.
        if let Ok(doc) = toml::from_str::<Document>(text) {
            if doc.version.as_integer() == Some(VERSION) {
                let mut models = BTreeMap::new();
                let mut valid = true;
                for (spanned, entry) in doc.models {
                    let name = spanned.into_inner();
                    if validate_entry(&name, &entry).is_err() {
                        valid = false;
                        break;
                    }
                    models.insert(name, entry);
                }
                if valid {
                    return Ok(Manifest { models });
                }
            }
        }

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
        for (spanned, entry) in doc.models {
            let offset = spanned.span().start;
            let name = spanned.into_inner();
            validate_entry(&name, &entry).map_err(|(m, url)| {
                // Point at the offending URL when it can be found in the entry, else the entry.
                let here = url
                    .and_then(|u| text[offset..].find(u.as_str()).map(|i| offset + i))
                    .unwrap_or(offset);
                at(here, m)
            })?;
            models.insert(name, entry);
        }
        Ok(Manifest { models })
    }

    /// The blobs this manifest references (every file of every model): the gc roots when it is
    /// the store manifest, extra roots when it is a `--keep` catalogue.
    pub fn roots(&self) -> std::collections::BTreeSet<Blake3> {
        self.models
            .iter()
            .flat_map(|(name, e)| e.files(name))
            .filter_map(|f| f.blake3)
            .collect()
    }

    /// The names of `names` this manifest does not hold (for "all or nothing" commands).
    pub fn unknown(&self, names: &[ModelName]) -> Vec<String> {
        names
            .iter()
            .filter(|n| !self.models.contains_key(*n))
            .map(ToString::to_string)
            .collect()
    }

    /// The pinned files of `name`'s model, if the manifest holds it with every file pinned.
    pub fn model_files_of(&self, name: &ModelName) -> Option<Vec<crate::model::tree::ModelFile>> {
        self.models.get(name).and_then(|e| e.model_files(name))
    }

    /// The snapshots this manifest's names use (store manifest).
    pub fn trees(&self) -> std::collections::BTreeSet<crate::model::tree::TreeId> {
        self.models
            .values()
            .filter_map(|e| e.tree.map(crate::model::tree::TreeId))
            .collect()
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

/// docs/design.md#manifest-format and §13 rules that serde cannot express.
/// The error carries the URL it is about, if any, so the message can point at it.
pub(crate) fn validate_entry(name: &ModelName, e: &Entry) -> Result<(), (String, Option<String>)> {
    let plain = |m: String| (m, None);
    let Some(files) = &e.files else {
        if e.main.is_some() {
            return Err(plain(format!(
                "model {name} has `main` but no `files`; `main` names one of a model's several files"
            )));
        }
        return validate_file(&format!("model {name}"), &e.as_file(name));
    };
    if e.blake3.is_some()
        || e.size.is_some()
        || !e.urls.is_empty()
        || e.sha256.is_some()
        || e.md5.is_some()
        || e.file.is_some()
    {
        return Err(plain(format!(
            "model {name} lists `files`, so blake3, size, urls, sha256, md5 and file belong to each file, not to the model"
        )));
    }
    if files.len() > MAX_FILES {
        return Err(plain(format!(
            "model {name} lists {} files; a model may have at most {MAX_FILES}",
            files.len()
        )));
    }
    if files.is_empty() {
        return Err(plain(format!(
            "model {name} has an empty `files` list; list at least one file, or use a single-file entry"
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in files {
        if !seen.insert(&f.path) {
            return Err(plain(format!(
                "model {name} lists the file {} twice",
                f.path
            )));
        }
        validate_file(&format!("model {name}, file {}", f.path), f)?;
    }
    // A file may not also be a directory of another (`a` and `a/b`): the snapshot cannot hold both.
    for f in files {
        if let Some(dir) = f.path.parents().iter().find(|p| seen.contains(p)) {
            return Err(plain(format!(
                "model {name} has a file {dir} and a file inside it ({}); a path cannot be both",
                f.path
            )));
        }
    }
    if let Some(main) = &e.main {
        if !seen.contains(main) {
            return Err(plain(format!(
                "model {name}: main = {main:?} is not one of its files"
            )));
        }
    }
    Ok(())
}

/// The digest, size and URL rules for one file (`what` names it in messages).
fn validate_file(what: &str, f: &FileEntry) -> Result<(), (String, Option<String>)> {
    let upstream = f.sha256.is_some() || f.md5.is_some();
    if f.blake3.is_none() && !upstream {
        return Err((format!(
            "{what} has no digest; add `blake3 = \"<64 hex>\"` (or `sha256`/`md5` if upstream publishes only those)"
        ), None));
    }
    if f.size.is_none() && f.blake3.is_some() {
        return Err((format!(
            "{what} has no size; add `size = <bytes>` (only upstream entries pinned by sha256/md5 alone may omit it)"
        ), None));
    }
    for url in &f.urls {
        check_url(url).map_err(|why| (format!("{what}: url {url:?} {why}"), Some(url.clone())))?;
    }
    Ok(())
}

/// A URL is one of the forms of [`crate::model::url`]; anything else (`data:`, `javascript:`, a port out
/// of range…) is an error here, not a relative path.
fn check_url(url: &str) -> Result<(), String> {
    crate::model::url::classify(url)
        .map(|_| ())
        .map_err(|p| p.to_string())
}

#[cfg(test)]
mod tests;
