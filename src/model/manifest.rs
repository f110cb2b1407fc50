//! The manifest format of docs/design.md#manifest-format (version 1): parse, validate, serialize.
//!
//! The same format serves two roles: *catalogues* (what models exist and where to fetch them) and
//! the store's records (`names/<key>.toml`, and the `manifest.toml` of older stores: what the
//! store holds under which name, the gc roots). Parsing is strict — unknown keys, a wrong
//! version, a bad name or digest are errors — and every error names the file, line and column,
//! because a typo in a catalogue should never turn into a silent download of the wrong thing.
//!
//! A `[models.NAME]` table is read as a [`RawEntry`] (every key optional, as TOML spells it) and
//! validated once into what it stands for ([`Table`]): a catalogue's [`Model`], or a store's
//! [`Record`], whose files must all be pinned by BLAKE3 and size. Writing goes back through the
//! raw form, so a record reads back exactly as it was written, and is written exactly as it was
//! read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::digest::{Blake3, Md5, Sha256};
use crate::model::entry::{Expected, File, Invalid, Known, Model, Pin, Record, Single, Upstreams};
use crate::model::file_path::FilePath;
use crate::model::name::ModelName;
use crate::model::tree::TreeId;
use crate::sys::error::{line_col, Category, IoError};

pub use crate::model::entry::Format;

/// The manifest format version this beaker reads and writes.
pub const VERSION: i64 = 1;

/// The largest catalogue [`Manifest::load`] reads (16 MiB; a thousand entries are ~300 KiB), so a
/// path to a huge file or a device cannot make beaker read without end.
pub const MAX_CATALOGUE_BYTES: u64 = 16 << 20;

/// `[models.NAME]` as TOML spells it: every key a catalogue entry or a store record may have,
/// each optional. [`Manifest::parse`] validates it into a [`Model`] or a [`Record`]; nothing
/// else should hold one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
// What serde's messages call it (`expected struct Entry`), as before the raw form had its own
// name.
#[serde(deny_unknown_fields, expecting = "struct Entry")]
pub struct RawEntry {
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
    /// Catalogue only: load the model in ONNX Runtime before publishing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
    /// When the store recorded this name (records only), RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<String>,
    /// A single-file model's file name in its snapshot (default: see [`Model::single`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FilePath>,
    /// A model of several files (docs/design.md#snapshots): each one a blob with its own digests
    /// and urls. Such an entry has no top-level `blake3`/`size`/`urls`/`sha256`/`md5`/`file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<RawFile>>,
    /// The file `beaker store path` prints (default: the first file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<FilePath>,
    /// The snapshot the store built for this name (records only): the tree id of its files,
    /// recorded after the snapshot exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<Blake3>,
}

/// One `[[models.NAME.files]]` table as TOML spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "struct FileEntry")]
pub struct RawFile {
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

impl<B: Known> From<&File<B>> for RawFile {
    fn from(f: &File<B>) -> Self {
        RawFile {
            path: f.path.clone(),
            blake3: f.blob.blake3(),
            size: f.blob.size(),
            urls: f.urls.clone(),
            sha256: f.upstream.sha256,
            md5: f.upstream.md5,
        }
    }
}

/// A file serializes as its `[[models.NAME.files]]` table (`catalogue show --json` lists them so).
impl<B: Known> Serialize for File<B> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawFile::from(self).serialize(s)
    }
}

/// What a `[models.NAME]` table is validated into: a catalogue's [`Model`] or a store's
/// [`Record`].
pub trait Table: Sized {
    /// Validates `raw`, the table of `name` (docs/design.md#manifest-format).
    ///
    /// # Errors
    /// The rule it breaks, and the URL it is about when there is one.
    fn from_raw(name: &ModelName, raw: RawEntry) -> Result<Self, Problem>;

    /// The table that reads back as this value.
    fn to_raw(&self) -> RawEntry;
}

/// Why a table is not a valid entry: the message, and the URL it is about (so the error can
/// point at it in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub url: Option<String>,
}

impl From<Invalid> for Problem {
    fn from(e: Invalid) -> Self {
        Problem {
            message: e.to_string(),
            url: None,
        }
    }
}

/// A catalogue's entry: its `added` and `tree`, which only a store's records mean anything by,
/// are read and left out.
impl Table for Model {
    fn from_raw(name: &ModelName, raw: RawEntry) -> Result<Self, Problem> {
        let model = model_of(name, raw)?;
        // A catalogue names only files every platform can hold (a record, read with
        // `Table for Record`, is what an earlier beaker wrote).
        for f in model.files() {
            f.path.check_portable().map_err(|e| Problem {
                message: format!("model {name}: {e}"),
                url: None,
            })?;
        }
        Ok(model)
    }

    fn to_raw(&self) -> RawEntry {
        raw_of(self)
    }
}

/// A store's record: every file must be pinned by BLAKE3 and size (the store records a model only
/// once its bytes are in `blobs/`).
impl Table for Record {
    fn from_raw(name: &ModelName, raw: RawEntry) -> Result<Self, Problem> {
        let added = raw.added.clone();
        let tree = raw.tree.map(TreeId);
        let model = model_of(name, raw)?;
        let single = model.single_file().is_some();
        let model = model.into_pinned().map_err(|path| {
            let what = match single {
                true => format!("model {name}"),
                false => format!("model {name}, file {path}"),
            };
            Problem {
                message: format!(
                    "{what} has no blake3: a store records a model only with every file pinned by its BLAKE3 and size; remove the entry (a record in names/ is the whole file), then pull or add the model again"
                ),
                url: None,
            }
        })?;
        Ok(Record { model, added, tree })
    }

    fn to_raw(&self) -> RawEntry {
        RawEntry {
            added: self.added.clone(),
            tree: self.tree.map(|t| t.0),
            ..raw_of(&self.model)
        }
    }
}

/// The raw table of `m` (without `added` and `tree`).
fn raw_of<B: Known>(m: &Model<B>) -> RawEntry {
    let mut raw = RawEntry {
        format: m.format,
        description: m.description.clone(),
        check: m.check,
        ..RawEntry::default()
    };
    match m.single_file() {
        Some(f) => {
            raw.blake3 = f.blob.blake3();
            raw.size = f.blob.size();
            raw.urls = f.urls.clone();
            raw.sha256 = f.upstream.sha256;
            raw.md5 = f.upstream.md5;
            raw.file = m.names_its_file().then(|| f.path.clone());
        }
        None => {
            raw.files = Some(m.files().iter().map(RawFile::from).collect());
            raw.main = m.names_its_main().then(|| m.main().path.clone());
        }
    }
    raw
}

/// What a file's `blake3` and `size` say of its bytes.
fn expected(blake3: Option<Blake3>, size: Option<u64>) -> Expected {
    match (blake3, size) {
        (Some(blake3), Some(size)) => Expected::Pinned(Pin { blake3, size }),
        (Some(blake3), None) => Expected::Blake3(blake3),
        (None, size) => Expected::Unpinned { size },
    }
}

/// docs/design.md#manifest-format: validates `raw` into the model it describes, with the rules
/// serde cannot express (the model's own, [`Model::listed`], and those of the format: where the
/// digests go, that each file has one and a size with its `blake3`, the URL forms).
fn model_of(name: &ModelName, raw: RawEntry) -> Result<Model, Problem> {
    let RawEntry {
        blake3,
        size,
        urls,
        format,
        description,
        sha256,
        md5,
        check,
        added: _,
        file,
        files,
        main,
        tree: _,
    } = raw;
    let plain = |message: String| Problem { message, url: None };
    let mut model = match files {
        None => {
            if main.is_some() {
                return Err(plain(format!(
                    "model {name} has `main` but no `files`; `main` names one of a model's several files"
                )));
            }
            let single = Single {
                file,
                blob: expected(blake3, size),
                upstream: Upstreams { sha256, md5 },
                urls,
                format,
            };
            let model = Model::single(name, single);
            check_file(&format!("model {name}"), model.main())?;
            model
        }
        Some(files) => {
            if blake3.is_some()
                || size.is_some()
                || !urls.is_empty()
                || sha256.is_some()
                || md5.is_some()
                || file.is_some()
            {
                return Err(plain(format!(
                    "model {name} lists `files`, so blake3, size, urls, sha256, md5 and file belong to each file, not to the model"
                )));
            }
            let files = files
                .into_iter()
                .map(|f| File {
                    path: f.path,
                    blob: expected(f.blake3, f.size),
                    upstream: Upstreams {
                        sha256: f.sha256,
                        md5: f.md5,
                    },
                    urls: f.urls,
                })
                .collect();
            Model::listed_checking(name, files, main, |f| {
                check_file(&format!("model {name}, file {}", f.path), f)
            })?
        }
    };
    model.format = format;
    model.description = description;
    model.check = check;
    Ok(model)
}

/// The digest, size and URL rules for one file (`what` names it in messages).
fn check_file(what: &str, f: &File) -> Result<(), Problem> {
    let plain = |message: String| Problem { message, url: None };
    match f.blob {
        Expected::Unpinned { .. } if !f.upstream.any() => {
            return Err(plain(format!(
                "{what} has no digest; add `blake3 = \"<64 hex>\"` (or `sha256`/`md5` if upstream publishes only those)"
            )))
        }
        Expected::Blake3(_) => {
            return Err(plain(format!(
                "{what} has no size; add `size = <bytes>` (only upstream entries pinned by sha256/md5 alone may omit it)"
            )))
        }
        _ => {}
    }
    for url in &f.urls {
        check_url(url).map_err(|why| Problem {
            message: format!("{what}: url {url:?} {why}"),
            url: Some(url.clone()),
        })?;
    }
    Ok(())
}

/// A parsed, validated manifest: a catalogue's models (`Manifest`, of [`Model`]s) or a store's
/// records (`Manifest<Record>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest<E = Model> {
    pub models: BTreeMap<ModelName, E>,
}

impl<E> Default for Manifest<E> {
    fn default() -> Self {
        Manifest {
            models: BTreeMap::new(),
        }
    }
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
    models: BTreeMap<toml::Spanned<ModelName>, RawEntry>,
}

#[derive(Serialize)]
struct DocumentOut<'a> {
    version: i64,
    models: BTreeMap<&'a ModelName, RawEntry>,
}

impl<E: Table> Manifest<E> {
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
            let mut message = e.message().trim().replace('\n', "; ");
            message.push_str(&toml_hint(text, offset, &message));
            at(offset, message)
        };

        // One parse when all is well (the store reads one record per name, so this is on the
        // path of `ls` and gc): the document with the right version. Anything else takes the
        // path below, which gives each error its message and position.
        if let Ok(doc) = toml::from_str::<Document>(text) {
            if doc.version.as_integer() == Some(VERSION) {
                let mut models = BTreeMap::new();
                let mut valid = true;
                for (spanned, raw) in doc.models {
                    let name = spanned.into_inner();
                    match E::from_raw(&name, raw) {
                        Ok(entry) => models.insert(name, entry),
                        Err(_) => {
                            valid = false;
                            break;
                        }
                    };
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
        for (spanned, raw) in doc.models {
            let offset = spanned.span().start;
            let name = spanned.into_inner();
            let entry = E::from_raw(&name, raw).map_err(|Problem { message, url }| {
                // Point at the offending URL when it can be found in the entry, else the entry.
                let here = url
                    .and_then(|u| text[offset..].find(u.as_str()).map(|i| offset + i))
                    .unwrap_or(offset);
                at(here, message)
            })?;
            models.insert(name, entry);
        }
        Ok(Manifest { models })
    }

    /// Serializes to TOML; `parse(to_toml()?)` gives back an equal manifest.
    ///
    /// # Errors
    /// Only for values TOML cannot hold: a `size` above `i64::MAX` (no real file is that large).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let doc = DocumentOut {
            version: VERSION,
            models: self.models.iter().map(|(n, e)| (n, e.to_raw())).collect(),
        };
        toml::to_string(&doc)
    }
}

impl<E> Manifest<E> {
    /// The names of `names` this manifest does not hold (for "all or nothing" commands).
    pub fn unknown(&self, names: &[ModelName]) -> Vec<String> {
        names
            .iter()
            .filter(|n| !self.models.contains_key(*n))
            .map(ToString::to_string)
            .collect()
    }
}

impl Manifest<Record> {
    /// The blobs the store's names reference (every file of every name): the gc roots.
    pub fn roots(&self) -> BTreeSet<Blake3> {
        self.models.values().flat_map(|r| r.model.blobs()).collect()
    }

    /// The snapshots the store's names use.
    pub fn trees(&self) -> BTreeSet<TreeId> {
        self.models.values().filter_map(|r| r.tree).collect()
    }
}

/// A URL is one of the forms of [`crate::model::url`]; anything else (`data:`, `javascript:`, a port out
/// of range…) is an error here, not a relative path.
fn check_url(url: &str) -> Result<(), String> {
    crate::model::url::classify(url)
        .map(|_| ())
        .map_err(|p| p.to_string())
}

/// What to do about a TOML syntax error that beaker's own habits lead to: an `org/name` table
/// header left unquoted, a second `version` line (a `beaker catalogue entry` pasted under the
/// first), a `version` inside a model's table.
fn toml_hint(text: &str, offset: usize, message: &str) -> String {
    let line = text
        .get(..offset.min(text.len()))
        .and_then(|before| {
            text[before.rfind('\n').map_or(0, |i| i + 1)..]
                .lines()
                .next()
        })
        .unwrap_or("");
    if message.starts_with("invalid table header") && line.contains('/') {
        let name = line
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_start_matches("models.");
        return format!("; a name with `/` is quoted in a table header: [models.\"{name}\"]");
    }
    if message.starts_with("duplicate key `version`")
        || message.starts_with("unknown field `version`")
    {
        return "; a catalogue has one `version = 1`, at the top: delete this one (it came \
                with an entry pasted from `beaker catalogue entry`?)"
            .into();
    }
    String::new()
}

#[cfg(test)]
mod tests;
