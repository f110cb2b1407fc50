//! A model as beaker holds it in memory, parsed and validated once: what a catalogue's entry
//! describes ([`Model`]) and what a store keeps under a name ([`Record`]). Their TOML form is
//! [`crate::model::manifest`]'s; everything above takes these values, never a name to rebuild a
//! file list from (docs/design.md#manifest-format).
//!
//! A [`Model`] is its files (at least one, at most [`MAX_FILES`], distinct paths, none inside
//! another), the one `store path` prints ([`Model::main`]), its format, description and `check`.
//! A single-file entry's file name is worked out once, when the model is made
//! ([`Model::single`]).
//!
//! **Pinned or not.** A model is generic over what is known of each file's bytes:
//!
//! - [`Expected`] (`Model`, a catalogue's): a file may have no BLAKE3 yet. An upstream entry pins
//!   only `sha256`/`md5` (and maybe its size): the store learns the BLAKE3 while downloading. A
//!   URL pulled with `--name` may pin nothing at all (trust on first use), or only the BLAKE3
//!   given on the command line.
//! - [`Pin`] (`Model<Pin>`): every file is pinned by BLAKE3 and size. A [`Record`] holds one: a
//!   store names a model only once all its bytes are in `blobs/`.
//!
//! A type parameter, not an `Option<Blake3>` on each file, because the two are different facts:
//! store code (snapshots, gc roots, `rm`, verify, push, export) can then never meet an unpinned
//! file, and the pull, the one place a catalogue's model becomes a record, does it in one step
//! ([`Model::pinned`]), with the BLAKE3 and size of the bytes it has. [`Known`] is what both
//! kinds answer (a BLAKE3 and a size, when known).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::digest::{Blake3, Md5, Sha256, Upstream};
use crate::model::file_path::FilePath;
use crate::model::name::ModelName;
use crate::model::tree::{ModelFile, TreeId};

/// The most files one model may have: each file being assembled holds a few descriptors until
/// the model is recorded, so this keeps a pull well inside the usual limit of open files.
pub const MAX_FILES: usize = 256;

/// A model's format (`format = "onnx" | "other"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Onnx,
    Other,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Onnx => "onnx",
            Format::Other => "other",
        })
    }
}

/// A blob's content address and size: what a store files a file's bytes under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pin {
    pub blake3: Blake3,
    pub size: u64,
}

/// What is known of a file's bytes before they are in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// BLAKE3 and size: the blob's address is known before any download (a catalogue's
    /// `blake3`, a registry layer's `dev.beaker.blake3`).
    Pinned(Pin),
    /// Only a BLAKE3 (`pull URL --blake3 H`, which gives no size): the bytes must hash to it.
    Blake3(Blake3),
    /// No BLAKE3 until the bytes are downloaded: the store files them under the BLAKE3 computed
    /// while they stream. `size`, when given, is checked.
    Unpinned { size: Option<u64> },
}

impl Default for Expected {
    /// Nothing known (what `add` checks its bytes against).
    fn default() -> Self {
        Expected::Unpinned { size: None }
    }
}

/// What is known of a file's bytes: a BLAKE3 and a size, each when known. [`Pin`] knows both.
pub trait Known: Copy {
    /// The BLAKE3 the bytes must have, when known.
    fn blake3(&self) -> Option<Blake3>;
    /// How many bytes there are, when known.
    fn size(&self) -> Option<u64>;
    /// The same knowledge as an [`Expected`].
    fn expected(&self) -> Expected;
}

impl Known for Pin {
    fn blake3(&self) -> Option<Blake3> {
        Some(self.blake3)
    }

    fn size(&self) -> Option<u64> {
        Some(self.size)
    }

    fn expected(&self) -> Expected {
        Expected::Pinned(*self)
    }
}

impl Known for Expected {
    fn blake3(&self) -> Option<Blake3> {
        match self {
            Expected::Pinned(p) => Some(p.blake3),
            Expected::Blake3(b) => Some(*b),
            Expected::Unpinned { .. } => None,
        }
    }

    fn size(&self) -> Option<u64> {
        match self {
            Expected::Pinned(p) => Some(p.size),
            Expected::Blake3(_) => None,
            Expected::Unpinned { size } => *size,
        }
    }

    fn expected(&self) -> Expected {
        *self
    }
}

impl Expected {
    /// The BLAKE3 and size, when both are known.
    pub fn pin(&self) -> Option<Pin> {
        match self {
            Expected::Pinned(p) => Some(*p),
            _ => None,
        }
    }
}

/// The upstream digests a file pins besides BLAKE3: checked while the bytes stream, and recorded
/// (in the name's record and the digest index) only once computed from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Upstreams {
    pub sha256: Option<Sha256>,
    pub md5: Option<Md5>,
}

impl Upstreams {
    /// Every digest pinned, strongest first.
    pub fn all(&self) -> Vec<Upstream> {
        Upstream::all(self.sha256, self.md5)
    }

    /// Whether any is pinned.
    pub fn any(&self) -> bool {
        self.sha256.is_some() || self.md5.is_some()
    }
}

/// What one blob's bytes must be: what a download, a resumed partial and a publish are checked
/// against. The default expects nothing (an `add`): the bytes are named by their own BLAKE3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expect {
    pub blob: Expected,
    pub upstream: Upstreams,
}

impl Expect {
    /// The BLAKE3 the bytes must have, when known.
    pub fn blake3(&self) -> Option<Blake3> {
        self.blob.blake3()
    }

    /// How many bytes there must be, when known.
    pub fn size(&self) -> Option<u64> {
        self.blob.size()
    }
}

/// One file of a model: its path in the snapshot, what is known of its bytes, its upstream
/// digests and where to fetch it (tried in order; a catalogue's relative URL is relative to the
/// catalogue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File<B = Expected> {
    pub path: FilePath,
    pub blob: B,
    pub upstream: Upstreams,
    pub urls: Vec<String>,
}

impl<B: Known> File<B> {
    /// What this file's bytes must be.
    pub fn expect(&self) -> Expect {
        Expect {
            blob: self.blob.expected(),
            upstream: self.upstream,
        }
    }

    /// Whether both files are the same bytes under the same path (the fields that pin content
    /// agree; URLs may differ).
    fn same_content<C: Known>(&self, other: &File<C>) -> bool {
        self.path == other.path
            && self.blob.blake3() == other.blob.blake3()
            && self.blob.size() == other.blob.size()
            && self.upstream == other.upstream
    }
}

impl File<Pin> {
    /// The file as a snapshot holds it.
    pub fn model_file(&self) -> ModelFile {
        ModelFile {
            path: self.path.clone(),
            blake3: self.blob.blake3,
            size: self.blob.size,
        }
    }
}

/// How the entry a model was read from spells its files, so that it is written back as it was
/// read (a record's text never changes under a read and a write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spelling {
    /// A single-file entry (no `files`); `file`: its name is given by `file = …` rather than
    /// worked out from the URL, format and model name.
    Single { file: bool },
    /// `[[models.X.files]]`; `main`: `main = …` is given rather than meaning the first file.
    Listed { main: bool },
}

/// A single-file model before it is made ([`Model::single`]): its file without a path yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Single<B = Expected> {
    /// The file's name in the snapshot (`file = …`); `None`: worked out by [`Model::single`].
    pub file: Option<FilePath>,
    pub blob: B,
    pub upstream: Upstreams,
    pub urls: Vec<String>,
    pub format: Option<Format>,
}

/// A model: its files, the main one, and what the catalogue says of it (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model<B = Expected> {
    /// Never empty; distinct paths, none inside another.
    files: Vec<File<B>>,
    /// Index of the main file in `files`.
    main: usize,
    spelling: Spelling,
    /// `onnx`, `other`, or not said. (A single file's name was worked out with the format the
    /// model was made with; setting another later does not rename it.)
    pub format: Option<Format>,
    /// What the catalogue says the model is.
    pub description: Option<String>,
    /// Load the model in ONNX Runtime before publishing it, as `pull --check` does (an
    /// instruction of a catalogue, not a fact about a stored model). Ignored for other formats.
    pub check: bool,
}

/// A list of files that cannot be a model (the message names the model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("model {name} lists {count} files; a model may have at most {MAX_FILES}")]
    TooMany { name: ModelName, count: usize },
    #[error("model {name} has an empty `files` list; list at least one file, or use a single-file entry")]
    Empty { name: ModelName },
    #[error("model {name} lists the file {path} twice")]
    Twice { name: ModelName, path: FilePath },
    #[error("model {name} has a file {dir} and a file inside it ({path}); a path cannot be both")]
    Nested {
        name: ModelName,
        dir: FilePath,
        path: FilePath,
    },
    #[error("model {name}: main = {main:?} is not one of its files")]
    NotAFile { name: ModelName, main: FilePath },
}

impl<B> Model<B> {
    /// A model of one file. Its name in the snapshot is `file`, else the last segment of its
    /// first URL, else `NAME.onnx` for ONNX, else `NAME` (the last part of an `org/name`);
    /// worked out here, once.
    pub fn single(name: &ModelName, s: Single<B>) -> Self {
        let path = single_file_name(name, s.file.as_ref(), &s.urls, s.format);
        Model {
            files: vec![File {
                path,
                blob: s.blob,
                upstream: s.upstream,
                urls: s.urls,
            }],
            main: 0,
            spelling: Spelling::Single {
                file: s.file.is_some(),
            },
            format: s.format,
            description: None,
            check: false,
        }
    }

    /// A model of the files listed (`[[models.NAME.files]]`), whose main file is `main`, else the
    /// first.
    ///
    /// # Errors
    /// [`Invalid`]: no file or more than [`MAX_FILES`], a path twice, a file inside another,
    /// `main` not one of them.
    pub fn listed(
        name: &ModelName,
        files: Vec<File<B>>,
        main: Option<FilePath>,
    ) -> Result<Self, Invalid> {
        Self::listed_checking(name, files, main, |_| Ok::<(), Invalid>(()))
    }

    /// [`Model::listed`], running `each` on every file in list order right after its path is
    /// found new, so a format's own rules for one file are reported in the order of the list,
    /// among these (the manifest's digest and URL rules).
    pub(crate) fn listed_checking<E: From<Invalid>>(
        name: &ModelName,
        files: Vec<File<B>>,
        main: Option<FilePath>,
        mut each: impl FnMut(&File<B>) -> Result<(), E>,
    ) -> Result<Self, E> {
        let name = || name.clone();
        if files.len() > MAX_FILES {
            return Err(Invalid::TooMany {
                name: name(),
                count: files.len(),
            }
            .into());
        }
        if files.is_empty() {
            return Err(Invalid::Empty { name: name() }.into());
        }
        let mut seen = BTreeSet::new();
        for f in &files {
            if !seen.insert(&f.path) {
                return Err(Invalid::Twice {
                    name: name(),
                    path: f.path.clone(),
                }
                .into());
            }
            each(f)?;
        }
        // A file may not also be a directory of another (`a` and `a/b`): a snapshot cannot hold
        // both.
        for f in &files {
            if let Some(dir) = f.path.parents().into_iter().find(|p| seen.contains(p)) {
                return Err(Invalid::Nested {
                    name: name(),
                    dir,
                    path: f.path.clone(),
                }
                .into());
            }
        }
        let index = match &main {
            None => 0,
            Some(m) => {
                files
                    .iter()
                    .position(|f| &f.path == m)
                    .ok_or_else(|| Invalid::NotAFile {
                        name: name(),
                        main: m.clone(),
                    })?
            }
        };
        Ok(Model {
            files,
            main: index,
            spelling: Spelling::Listed {
                main: main.is_some(),
            },
            format: None,
            description: None,
            check: false,
        })
    }

    /// Every file, in the order listed.
    pub fn files(&self) -> &[File<B>] {
        &self.files
    }

    /// The file `beaker store path` prints: `main`, else the first.
    pub fn main(&self) -> &File<B> {
        &self.files[self.main]
    }

    /// The one file of a single-file entry (one spelled without `files`); `None` for a model
    /// whose files are listed, even when the list has one file.
    pub fn single_file(&self) -> Option<&File<B>> {
        match self.spelling {
            Spelling::Single { .. } => self.files.first(),
            Spelling::Listed { .. } => None,
        }
    }

    /// Whether the entry names its single file with `file = …` (true for a listed model).
    pub(crate) fn names_its_file(&self) -> bool {
        !matches!(self.spelling, Spelling::Single { file: false })
    }

    /// Whether the entry names its main file with `main = …` (false for a single-file model).
    pub(crate) fn names_its_main(&self) -> bool {
        matches!(self.spelling, Spelling::Listed { main: true })
    }

    /// Writes a single file's name into the entry (`file = …`), as a store records it: the name
    /// then no longer depends on the URLs, the format or the model's name.
    pub(crate) fn name_the_file(&mut self) {
        if let Spelling::Single { file } = &mut self.spelling {
            *file = true;
        }
    }

    /// Applies `f` to every URL of every file (e.g. to make a catalogue's relative URLs absolute).
    pub fn for_each_url(&mut self, mut f: impl FnMut(&mut String)) {
        for file in &mut self.files {
            file.urls.iter_mut().for_each(&mut f);
        }
    }

    /// Adds the absolute URLs of `other`, a single-file model of the same content from a later
    /// catalogue, as mirrors of this one's file. A relative URL of `other` would be relative to
    /// another catalogue, so it is not taken; listed models keep their own URLs.
    pub fn add_mirrors<C>(&mut self, other: &Model<C>) {
        if self.single_file().is_none() {
            return;
        }
        let (Some(theirs), Some(ours)) = (other.single_file(), self.files.first_mut()) else {
            return;
        };
        for url in &theirs.urls {
            if url.contains("://") && !ours.urls.contains(url) {
                ours.urls.push(url.clone());
            }
        }
    }

    /// This model with each file's blob `f(file)`, or the first error.
    fn try_map<C, E>(self, mut f: impl FnMut(&File<B>) -> Result<C, E>) -> Result<Model<C>, E> {
        let mut files = Vec::with_capacity(self.files.len());
        for file in self.files {
            let blob = f(&file)?;
            files.push(File {
                blob,
                path: file.path,
                upstream: file.upstream,
                urls: file.urls,
            });
        }
        Ok(Model {
            files,
            main: self.main,
            spelling: self.spelling,
            format: self.format,
            description: self.description,
            check: self.check,
        })
    }
}

impl<B: Known> Model<B> {
    /// True when both describe the same bytes: the same files, in the same order, under the same
    /// paths, with the same pinned digests and sizes (URLs may differ).
    pub fn same_content<C: Known>(&self, other: &Model<C>) -> bool {
        self.files.len() == other.files.len()
            && self
                .files
                .iter()
                .zip(&other.files)
                .all(|(a, b)| a.same_content(b))
    }

    /// The BLAKE3 of every file that has one.
    pub fn blobs(&self) -> impl Iterator<Item = Blake3> + '_ {
        self.files.iter().filter_map(|f| f.blob.blake3())
    }

    /// Bytes of all the files, when every size is known.
    pub fn size(&self) -> Option<u64> {
        self.files.iter().map(|f| f.blob.size()).sum()
    }
}

impl Model<Expected> {
    /// This model with its files pinned by `pins`, one per file in order (the BLAKE3 and size of
    /// the bytes the store has for each); `None` unless there is exactly one per file.
    pub fn pinned(self, pins: &[Pin]) -> Option<Model<Pin>> {
        if pins.len() != self.files.len() {
            return None;
        }
        let mut pins = pins.iter();
        self.try_map(|_| pins.next().copied().ok_or(())).ok()
    }

    /// This model as a store records it, when every file is pinned by BLAKE3 and size; else the
    /// first file that is not.
    pub fn into_pinned(self) -> Result<Model<Pin>, FilePath> {
        self.try_map(|f| f.blob.pin().ok_or_else(|| f.path.clone()))
    }
}

impl Model<Pin> {
    /// The snapshot's file list.
    pub fn model_files(&self) -> Vec<ModelFile> {
        self.files.iter().map(File::model_file).collect()
    }

    /// Bytes of all the files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.blob.size).sum()
    }
}

/// What a store holds under a name (`names/<key>.toml`): the model, every file pinned, with when
/// it was recorded and the tree of its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub model: Model<Pin>,
    /// When the store recorded the name, RFC 3339 UTC (`None` only in records older stores wrote
    /// by hand or lost; a fresh record gets it when written).
    pub added: Option<String>,
    /// The snapshot the store built for this name, recorded after it exists (`None`: a name of a
    /// format-1 store not upgraded yet, whose path is its blob).
    pub tree: Option<TreeId>,
}

impl Record {
    /// A record of `model` not written yet: the publish gives it its time and tree.
    pub fn new(model: Model<Pin>) -> Self {
        Record {
            model,
            added: None,
            tree: None,
        }
    }

    /// The blobs its files are stored as.
    pub fn blobs(&self) -> BTreeSet<Blake3> {
        self.model.blobs().collect()
    }

    /// True when both describe the same bytes ([`Model::same_content`]).
    pub fn same_content(&self, other: &Record) -> bool {
        self.model.same_content(&other.model)
    }
}

/// The file name of a single-file model (see [`Model::single`]).
fn single_file_name(
    name: &ModelName,
    file: Option<&FilePath>,
    urls: &[String],
    format: Option<Format>,
) -> FilePath {
    if let Some(file) = file {
        return file.clone();
    }
    // (Not from an oci:// URL: its tail is `repo:tag` or `repo@sha256:…`, no file name.)
    if let Some(p) = urls
        .first()
        .filter(|u| !u.get(..3).is_some_and(|s| s.eq_ignore_ascii_case("oci")))
        .and_then(|u| FilePath::from_url_tail(u))
    {
        return p;
    }
    let base = name.as_str().rsplit('/').next().unwrap_or(name.as_str());
    let file = match format {
        Some(Format::Onnx) if !base.ends_with(".onnx") => format!("{base}.onnx"),
        _ => base.to_owned(),
    };
    // A valid model name is a valid single-part file path, but maybe not one Windows can hold
    // (`con`, `v1.`): then the file is called `model`.
    FilePath::new_portable(&file).unwrap_or_else(|_| FilePath::new("model").expect("a valid path"))
}

#[cfg(test)]
mod tests;
