//! `beaker store export NAME DIR`: a model's files under their real names in a directory of the
//! user's (the `--local-dir` of huggingface_hub), for tools that want a plain folder.
//!
//! Every target is checked before anything is written: a file already there with the same
//! content (the blob's inode, or the same bytes) is left alone, and anything else at a target
//! path — a different file, a symlink, a directory — makes the whole export fail without
//! writing (never overwrite what the user has). Files are hard links to the blobs where the
//! directory is on the store's filesystem (no space, but 0444 and shared with the store: never
//! edit them in place), else copies (`--copy` forces copies: ordinary 0644 files of the user's).
//! A copy is written to a temp name beside its target, fsynced and renamed into place without
//! clobbering, so an interrupted export leaves complete files or none. The store is only read.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::Blake3;
use crate::error::{Category, IoContext, IoError};
use crate::fsx::{self, Rooted};
use crate::name::ModelName;
use crate::snapshot::ModelFile;
use crate::store::{BlobState, Store, StoreError};

/// How files get into the target directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Hard links only; fail where a link is impossible (another filesystem).
    Link,
    /// Copies only.
    Copy,
    /// Hard links where possible, else copies (the default).
    LinkOrCopy,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{} already exists with other content; nothing was exported (move it away, or export to another directory)", path.display())]
    Exists { path: PathBuf },
    #[error("cannot hard-link {} into {} ({source}); it is on another filesystem than the store, or links are not allowed: drop --link to copy instead", blob.display(), to.display())]
    CannotLink {
        blob: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot export into {}", error.path.display())]
    Write {
        #[source]
        error: IoError,
    },
}

impl Error {
    pub fn category(&self) -> Category {
        match self {
            Error::Store(e) => e.category(),
            Error::Exists { .. } => Category::BadInput,
            Error::CannotLink { .. } | Error::Write { .. } => Category::Failed,
        }
    }
}

/// What [`export`] did (the `--json` of `beaker store export`).
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub name: ModelName,
    pub dir: PathBuf,
    pub files: Vec<ExportedFile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportedFile {
    pub path: PathBuf,
    /// `linked`, `copied` or `unchanged` (the same content was already there).
    pub how: &'static str,
}

/// Puts `name`'s files under `to` (created if missing), by `how`.
pub fn export(store: &Store, name: &ModelName, to: &Path, how: How) -> Result<Exported, Error> {
    let files = store
        .read_entry(name)?
        .and_then(|e| e.model_files(name))
        .ok_or_else(|| StoreError::NotInStore { name: name.clone() })?;
    // Check everything first: nothing is written unless every target is free or already right.
    let mut todo = Vec::new();
    let mut out = Vec::new();
    for f in &files {
        let blob = store.layout().blob(&f.blake3);
        if store.blob_state(&f.blake3, Some(f.size))? != (BlobState::Present { size: f.size }) {
            return Err(StoreError::BlobMissing {
                name: name.clone(),
                blob: f.blake3,
                path: blob.path(),
            }
            .into());
        }
        let target = f.path.under(to);
        if same_content_at(&target, &blob, f)? {
            out.push(ExportedFile {
                path: target,
                how: "unchanged",
            });
        } else {
            todo.push((f, blob, target));
        }
    }
    let w = |error| Error::Write { error };
    for (f, blob, target) in todo {
        if let Some(parent) = target.parent() {
            fsx::user::create_dir_all(parent).map_err(w)?;
        }
        let linked = match how {
            How::Copy => false,
            How::Link | How::LinkOrCopy => match fsx::user::link_from_store(&blob, &target) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(Error::Exists { path: target })
                }
                Err(e) if how == How::Link => {
                    return Err(Error::CannotLink {
                        blob: blob.path(),
                        to: target,
                        source: e.source,
                    })
                }
                Err(_) => false,
            },
        };
        if !linked {
            copy(&blob, &target, f)?;
        }
        out.push(ExportedFile {
            path: target,
            how: if linked { "linked" } else { "copied" },
        });
    }
    Ok(Exported {
        name: name.clone(),
        dir: to.to_owned(),
        files: out,
    })
}

/// Whether `target` already holds `f`'s content: nothing there is `false`; the blob's inode or
/// a regular file with the same bytes is `true`; anything else is [`Error::Exists`].
fn same_content_at(target: &Path, blob: &Rooted, f: &ModelFile) -> Result<bool, Error> {
    let meta = match fsx::user::symlink_metadata(target) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(false),
        Err(error) => return Err(Error::Write { error }),
    };
    let exists = || Error::Exists {
        path: target.to_owned(),
    };
    if !meta.is_file() || meta.len() != f.size {
        return Err(exists());
    }
    let blob_meta = fsx::stat(blob).map_err(StoreError::from)?.ok_or_else(|| {
        StoreError::from(IoError::new(
            "inspect",
            blob,
            io::ErrorKind::NotFound.into(),
        ))
    })?;
    if blob_meta.dev() == meta.dev() && blob_meta.ino() == meta.ino() {
        return Ok(true);
    }
    let mut hasher = blake3::Hasher::new();
    let file = fsx::user::open_nofollow(target).map_err(|error| Error::Write { error })?;
    io::copy(
        &mut io::BufReader::with_capacity(1 << 20, file),
        &mut hasher,
    )
    .at("read", target)
    .map_err(|error| Error::Write { error })?;
    if Blake3::from(hasher.finalize()) == f.blake3 {
        Ok(true)
    } else {
        Err(exists())
    }
}

/// Copies `blob` to `target` through a temp file beside it, fsynced, renamed without clobbering.
fn copy(blob: &Rooted, target: &Path, f: &ModelFile) -> Result<(), Error> {
    let w = |error| Error::Write { error };
    let dir = target.parent().unwrap_or(Path::new("."));
    let stem = format!(
        ".{}.beaker",
        f.path.as_str().rsplit('/').next().unwrap_or("file")
    );
    let (mut out, tmp) = fsx::user::create_unique(dir, &stem, "tmp", 0o644).map_err(w)?;
    let copied = (|| {
        let mut src = fsx::open_read(blob)?;
        // std's copy uses copy_file_range between files: a reflink where the filesystem can.
        io::copy(&mut src, &mut out).at("copy into", &tmp)?;
        fsx::sync_file(&out, &tmp)?;
        fsx::user::persist_noclobber_keep(&tmp, target)
    })();
    match copied {
        Ok(true) => Ok(()),
        Ok(false) => {
            let _ = fsx::user::remove_file(&tmp);
            Err(Error::Exists {
                path: target.to_owned(),
            })
        }
        Err(e) => {
            let _ = fsx::user::remove_file(&tmp);
            Err(w(e))
        }
    }
}
