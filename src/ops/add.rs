//! `beaker store add FILE --name NAME`: copy a local file into the store, hashing in the same pass.
//!
//! The source is read exactly once: bytes are copied (`io::copy`) into a [`TempBlob`], which
//! hashes them as they are written, and are then published. If identical content is already in
//! the store, the publish finds the existing blob and only the name is recorded (dedup).
//!
//! The source is opened `O_NONBLOCK`, and whatever is at the path when it is *opened* is checked
//! with `fstat`, so a FIFO or device swapped in after a `stat` can neither
//! hang the copy nor feed it endless bytes.

use std::fs::File;
use std::io::{self, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use crate::model::entry::{self, Expect, Format, Model, Pin, Single, Upstreams, MAX_FILES};
use crate::model::file_path::FilePath;
use crate::model::name::ModelName;
use crate::store::publish::{self, Published, TempBlob};
use crate::store::{Store, StoreError};
use crate::sys::error::{Category, IoError};
use crate::sys::progress::Progress;

/// Why an add did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot add {}: {reason}", path.display())]
    BadSource { path: PathBuf, reason: String },
    #[error("cannot add {}: reading it failed", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Publish(#[from] publish::Error),
}

impl Error {
    pub fn category(&self) -> Category {
        match self {
            Error::BadSource { .. } => Category::BadInput,
            Error::Read { .. } => Category::Failed,
            Error::Publish(e) => e.category(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::Publish(e.into())
    }
}

/// Copy buffer: large enough for throughput, small enough to be constant memory.
const CHUNK: usize = 1 << 20;

/// Adds `src` as `name`: a file (see [`add_file`]) or a directory of files (see [`add_dir`]).
///
/// With `check` (`add --check`), an ONNX model is loaded in ONNX Runtime before it is published
/// (a single file: from its temp file; a directory: every `.onnx` file, from a staged directory of
/// all its files); one that does not load is refused and nothing of it is published.
pub fn add(
    store: &Store,
    src: &Path,
    name: &ModelName,
    check: bool,
    progress: &mut dyn Progress,
) -> Result<Published, Error> {
    // The path the user gave may be a symlink to a directory; what is inside may not.
    let added = match crate::sys::fsx::user::metadata(src) {
        Ok(Some(m)) if m.is_dir() => add_dir(store, src, name, check, progress),
        _ => add_file(store, src, name, check, progress),
    }?;
    Ok(added)
}

/// Copies `src` into `store` and records it as `name` (see [`add`] for `check`).
pub fn add_file(
    store: &Store,
    src: &Path,
    name: &ModelName,
    check: bool,
    progress: &mut dyn Progress,
) -> Result<Published, Error> {
    let (input, total) = open_source(src)?;
    let mut temp = TempBlob::create(store, "add")?;
    progress.start(&format!("adding {name}"), Some(total));
    clone_or_copy(input, src, &mut temp, store, progress)?;
    let is_onnx = src
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    // The snapshot keeps the file's own name (tools open models by name), when it is a valid one.
    let file = src
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| FilePath::new_portable(n).ok());
    let single = Single {
        format: is_onnx.then_some(Format::Onnx),
        file,
        ..Single::default()
    };
    let what = src.display().to_string();
    let model = Model::single(name, single.clone());
    // Prepared (durable, read-only, and on Windows no longer open for writing, which ONNX
    // Runtime would refuse to share) before it is loaded; dropped unnamed if it does not load.
    let expect = Expect {
        blob: single.blob,
        upstream: single.upstream,
    };
    let ready = publish::prepare(store, temp, &expect).map_err(publish::Error::from)?;
    crate::onnx::check_before_publish(&ready.path().path(), &model, check, &what, progress)
        .map_err(StoreError::from)?;
    Ok(publish::publish_ready(store, ready, name, single).map_err(publish::Error::from)?)
}

/// Adds every regular file under the directory `src` as one model of several files, under their
/// paths relative to `src` (docs/design.md#snapshots). A symlink, FIFO, device or socket anywhere inside is
/// refused before anything is written (exit 2), as is a directory with no files. With `check`,
/// every ONNX file is loaded before any file is named. The name is recorded only after every file
/// is a blob and the snapshot exists.
pub fn add_dir(
    store: &Store,
    src: &Path,
    name: &ModelName,
    check: bool,
    progress: &mut dyn Progress,
) -> Result<Published, Error> {
    let files = list_dir(src)?;
    let mut ready = Vec::with_capacity(files.len());
    for (path, rel) in &files {
        let (input, total) = open_source(path)?;
        let mut temp = TempBlob::create(store, "add")?;
        progress.start(&format!("adding {name}/{rel}"), Some(total));
        clone_or_copy(input, path, &mut temp, store, progress)?;
        ready
            .push(publish::prepare(store, temp, &Expect::default()).map_err(publish::Error::from)?);
    }
    let listed: Vec<entry::File<Pin>> = ready
        .iter()
        .zip(&files)
        .map(|(r, (_, rel))| entry::File {
            path: rel.clone(),
            blob: Pin {
                blake3: r.blake3(),
                size: r.size(),
            },
            upstream: Upstreams::default(),
            urls: Vec::new(),
        })
        .collect();
    let onnx = listed
        .iter()
        .find(|f| f.path.as_str().ends_with(".onnx"))
        .map(|f| f.path.clone());
    let format = onnx.is_some().then_some(Format::Onnx);
    let mut model = Model::listed(name, listed, onnx).map_err(|e| Error::BadSource {
        path: src.to_owned(),
        reason: e.to_string(),
    })?;
    model.format = format;
    if check {
        check_staged(store, &model, &ready, src, progress)?;
    }
    let gc = store.gc_shared()?;
    let mut created = false;
    for r in ready {
        created |= r.name(store, &gc)?.created;
    }
    let (blake3, size) = (model.main().blob.blake3, model.bytes());
    let (placed, replaced) = publish::record_model(store, name, model, &gc)?;
    Ok(Published {
        blake3,
        size,
        model: placed,
        created,
        replaced,
    })
}

/// `add --check` of a directory, before any file is named: stages the checked temp blobs under
/// their names in a private directory in `tmp/` (so each ONNX file finds the files next to it,
/// e.g. external data) and loads every ONNX file from there. A model that does not load
/// publishes nothing: dropping `ready` deletes its temp blobs.
fn check_staged(
    store: &Store,
    model: &Model<Pin>,
    ready: &[publish::Ready],
    src: &Path,
    progress: &mut dyn Progress,
) -> Result<(), Error> {
    let files = model.model_files();
    let sources: Vec<_> = files
        .iter()
        .zip(ready)
        .map(|(f, r)| (f.path.clone(), r.path().to_owned()))
        .collect();
    let staged = crate::store::snapshot::stage(
        store,
        &crate::store::snapshot::TreeId::of(&files),
        &sources,
    )?;
    let what = src.display().to_string();
    crate::onnx::check_dir_before_publish(&staged.dir(), model, true, &what, progress)
        .map_err(StoreError::from)?;
    Ok(())
}

/// The regular files under `dir` with their model paths, sorted; refuses anything else inside.
#[allow(
    clippy::disallowed_methods,
    reason = "walks the user's own directory being added (outside any store); a symlink in it is refused, never followed"
)]
fn list_dir(dir: &Path) -> Result<Vec<(PathBuf, FilePath)>, Error> {
    let bad = |reason: String| Error::BadSource {
        path: dir.to_owned(),
        reason,
    };
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| bad(format!("cannot list it ({e})")))?;
        let kind = entry.file_type();
        if kind.is_dir() {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        if !kind.is_file() {
            let what = if kind.is_symlink() {
                "a symlink"
            } else {
                "a special file"
            };
            return Err(bad(format!(
                "{} is {what}; a model directory may hold only regular files (copy the target in)",
                rel.display()
            )));
        }
        // A model's file paths are '/'-separated on every platform.
        let text = rel
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(format!("{} is not valid UTF-8", rel.display())))?
            .join("/");
        let path = FilePath::new_portable(&text).map_err(|e| bad(e.to_string()))?;
        out.push((entry.path().to_owned(), path));
    }
    if out.is_empty() {
        return Err(bad("it holds no files".into()));
    }
    if out.len() > MAX_FILES {
        return Err(bad(format!(
            "it holds {} files; a model may have at most {MAX_FILES}",
            out.len(),
        )));
    }
    Ok(out)
}

/// Clones `input` into `temp` where the filesystem can (btrfs, xfs: no bytes copied, only
/// hashed), else copies it ([`copy_into`]).
fn clone_or_copy(
    input: File,
    path: &Path,
    temp: &mut TempBlob,
    store: &Store,
    progress: &mut dyn Progress,
) -> Result<(), Error> {
    if temp.clone_from(&input, progress)? {
        progress.finish();
        return Ok(());
    }
    copy_into(input, path, temp, store, progress)
}

/// Copies `input` (the file at `path`) into `temp` through a large read buffer, reporting
/// progress; a failure says whether reading the source or writing the store failed.
fn copy_into(
    input: File,
    path: &Path,
    temp: &mut TempBlob,
    store: &Store,
    progress: &mut dyn Progress,
) -> Result<(), Error> {
    let mut reader = BufReader::with_capacity(
        CHUNK,
        Reading {
            inner: input,
            progress,
            failed: false,
        },
    );
    // io::copy from a BufReader writes each filled CHUNK straight into the temp blob (large
    // writes, which the hashers like).
    let copied = io::copy(&mut reader, temp);
    let reader = reader.into_inner();
    reader.progress.finish();
    match copied {
        Ok(_) => Ok(()),
        Err(e) if reader.failed => Err(Error::Read {
            path: path.to_owned(),
            source: e,
        }),
        Err(e) => {
            let at = IoError::new("write", temp.path(), e);
            Err(StoreError::writing(store.root(), at).into())
        }
    }
}

/// The source being copied: reports progress, and remembers whether a failure was the read's
/// (the source's fault) rather than the write's (the store's).
struct Reading<'p> {
    inner: File,
    progress: &'p mut dyn Progress,
    failed: bool,
}

impl Read for Reading<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.progress.advance(n as u64);
                Ok(n)
            }
            Err(e) => {
                self.failed = e.kind() != ErrorKind::Interrupted;
                Err(e)
            }
        }
    }
}

/// Opens the file to add and returns it with its size, turning the usual mistakes into one clear
/// line each. `fsx::user::open` opens non-blocking and checks the *opened* file, so a FIFO or
/// device (even one swapped in after a `stat`) can neither hang the copy nor feed it endless bytes.
fn open_source(src: &Path) -> Result<(File, u64), Error> {
    let bad = |reason: String| Error::BadSource {
        path: src.to_owned(),
        reason,
    };
    let file = crate::sys::fsx::user::open(src).map_err(|e| match e.kind() {
        ErrorKind::NotFound => bad("no such file; check the path".into()),
        ErrorKind::PermissionDenied => bad(format!(
            "permission denied for user {}; check its permissions (ls -l)",
            crate::sys::who::user()
        )),
        ErrorKind::InvalidInput => bad(format!(
            "{}; give the path of a model file (a FIFO or device cannot be added)",
            e.source
        )),
        _ => bad(format!("cannot open it ({})", e.source)),
    })?;
    let len = file
        .metadata()
        .map_err(|e| bad(format!("cannot inspect it ({e})")))?
        .len();
    Ok((file, len))
}
