//! `beaker store export NAME DIR`: a model's files under their real names in a directory of the
//! user's (the `--local-dir` of huggingface_hub), for tools that want a plain folder.
//!
//! Every target is checked before anything is written: a file already there with the same
//! content is left alone, and anything else at a target path — a different file, a symlink, a
//! directory — makes the whole export fail without writing (never overwrite what the user has).
//!
//! **Copies by default** ([`How::Copy`]): ordinary 0644 files of the user's, which they may edit
//! without touching the store. `std::io::copy` between files is `copy_file_range`, which
//! clones (a reflink: no extra space until one side changes) where the filesystem can (btrfs,
//! xfs). **Hard links only when asked** (`--link`, [`How::Link`]): a hard link *is* the blob (one
//! inode): whoever can write it — root, whom permission bits do not stop (every container), or
//! the blob's owner after a `chmod` — changes the stored model in place for every user of the
//! store. So a default export also turns a link an earlier `--link` export left into a copy.
//!
//! A copy is written to a temp name beside its target, fsynced and renamed into place (without
//! clobbering, except over a link to the blob itself), so an interrupted export leaves complete
//! files or none. The store is only read. A blob that is not there, or not whole, is told apart:
//! absent ([`StoreError::BlobMissing`]) or damaged ([`StoreError::DamagedBlob`]).

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::digest::Blake3;
use crate::model::name::ModelName;
use crate::store::snapshot::ModelFile;
use crate::store::{BlobState, Store, StoreError};
use crate::sys::error::{Category, IoContext, IoError};
use crate::sys::fsx::{self, Rooted};

/// How files get into the target directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum How {
    /// Hard links only (`--link`); fail where a link is impossible (another filesystem). The
    /// files are the blobs: see the module doc.
    Link,
    /// Copies (reflinks where the filesystem can): the default.
    #[default]
    Copy,
    /// Hard links where possible, else copies.
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
    #[error("{} is inside the store {}; nothing was exported (export puts a model's files outside the store: choose a directory elsewhere)", to.display(), store.display())]
    InsideStore { to: PathBuf, store: PathBuf },
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
            Error::Exists { .. } | Error::InsideStore { .. } => Category::BadInput,
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
    if inside_store(store, to) {
        return Err(Error::InsideStore {
            to: to.to_owned(),
            store: store.root().to_owned(),
        });
    }
    let files = store
        .read_entry(name)?
        .ok_or_else(|| StoreError::NotInStore {
            name: name.clone(),
            close: Vec::new(),
        })?
        .model
        .model_files();
    // Check everything first: nothing is written unless every target is free or already right.
    let mut todo = Vec::new();
    let mut out = Vec::new();
    for f in &files {
        let blob = store.layout().blob(&f.blake3);
        match store.blob_state(&f.blake3, Some(f.size))? {
            BlobState::Present { .. } => {}
            BlobState::Absent => {
                return Err(StoreError::BlobMissing {
                    name: name.clone(),
                    blob: f.blake3,
                    path: blob.path(),
                }
                .into())
            }
            BlobState::Damaged { problem } => {
                return Err(StoreError::DamagedBlob {
                    path: blob.path(),
                    problem,
                }
                .into())
            }
        }
        let target = f.path.under(to);
        match (same_content_at(&target, &blob, f)?, how) {
            (There::Nothing, _) => todo.push((f, blob, target, None)),
            // A link an earlier `--link` export left, where copies are asked for: replaced by one.
            (There::TheBlob(inode), How::Copy) => todo.push((f, blob, target, Some(inode))),
            (There::TheBlob(_) | There::SameBytes, _) => out.push(ExportedFile {
                path: target,
                how: "unchanged",
            }),
        }
    }
    let w = |error| Error::Write { error };
    for (f, blob, target, over_link) in todo {
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
            copy(&blob, &target, f, over_link)?;
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

/// What is at a target path already (anything else there is [`Error::Exists`]).
enum There {
    Nothing,
    /// The blob's own inode, `(dev, ino)` (a hard link).
    TheBlob((u64, u64)),
    /// A regular file of the user's with the same bytes.
    SameBytes,
}

/// Whether `target` already holds `f`'s content, and how (see [`There`]); anything else there
/// — other bytes, a symlink, a directory — is [`Error::Exists`].
fn same_content_at(target: &Path, blob: &Rooted, f: &ModelFile) -> Result<There, Error> {
    let meta = match fsx::user::symlink_metadata(target) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(There::Nothing),
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
    if let Some(id) = fsx::user::file_id(target, false) {
        if id == (blob_meta.dev(), blob_meta.ino()) {
            return Ok(There::TheBlob(id));
        }
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
        Ok(There::SameBytes)
    } else {
        Err(exists())
    }
}

/// The `(dev, ino)` of the regular file at `target` (a path of the user's), if it is one.
fn inode_at(target: &Path) -> Option<(u64, u64)> {
    fsx::user::symlink_metadata(target)
        .ok()
        .flatten()
        .filter(|m| m.is_file())
        .and_then(|_| fsx::user::file_id(target, false))
}

/// Copies `blob` to `target` through a temp file beside it, fsynced, renamed without clobbering;
/// `over_link`: `target` is a hard link to the blob (its `(dev, ino)`), which the copy replaces
/// if it still is one (anything else that appeared there meanwhile is not overwritten).
fn copy(
    blob: &Rooted,
    target: &Path,
    f: &ModelFile,
    over_link: Option<(u64, u64)>,
) -> Result<(), Error> {
    let w = |error| Error::Write { error };
    let dir = target.parent().unwrap_or(Path::new("."));
    let stem = format!(
        ".{}.beaker",
        f.path.as_str().rsplit('/').next().unwrap_or("file")
    );
    let (mut out, tmp) = fsx::user::create_unique(dir, &stem, "tmp", 0o644).map_err(w)?;
    let copied = (|| {
        {
            // Closed before the rename below: Windows (wine at least) replaces no open file.
            let mut src = fsx::open_read(blob)?;
            // std's copy uses copy_file_range between files: a reflink where the filesystem can.
            io::copy(&mut src, &mut out).at("copy into", &tmp)?;
        }
        fsx::sync_file(&out, &tmp)?;
        if over_link.is_some_and(|inode| inode_at(target) == Some(inode)) {
            fsx::user::replace_link_of(blob, &tmp, target)?;
            return Ok(true);
        }
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

/// Whether `to` (or the directory it would be created in) is the store's root or below it,
/// however it is spelled: some existing ancestor of `to` is the root's directory (same device
/// and inode, symlinks on the way followed: `to` is the user's path, not the store's).
fn inside_store(store: &Store, to: &Path) -> bool {
    let Some(root) = crate::sys::fsx::user::file_id(store.root(), true) else {
        return false;
    };
    let Ok(to) = std::path::absolute(to) else {
        return false;
    };
    to.ancestors()
        .any(|dir| crate::sys::fsx::user::file_id(dir, true) == Some(root))
}
