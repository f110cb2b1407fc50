//! The errors of store operations, each saying what happened, where, and what to do.

use std::path::PathBuf;

use crate::digest::Blake3;
use crate::error::{Category, IoError};
use crate::lock::LockError;
use crate::manifest::ManifestError;
use crate::name::ModelName;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),

    #[error("store path {} exists but is not a directory; point --store (or BEAKER_STORE) at a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{} is not a beaker store (no store.toml) and is not empty; point --store at a new or empty directory, or an existing store", path.display())]
    NotAStore { path: PathBuf },
    #[error("no beaker store at {} (no store.toml); create one with `beaker store init --store {}` or any `add`/`pull`", path.display(), path.display())]
    NoStore { path: PathBuf },
    #[error("{} has store format {found}, this beaker understands format {expected}; use a newer beaker (or another --store)", path.display())]
    UnknownFormat {
        path: PathBuf,
        found: String,
        expected: i64,
    },
    #[error("{}:{line}:{column}: {message}; fix or restore the file (valid keys: format, mode, locking)", path.display())]
    InvalidConfig {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("store {} already exists as {existing}; its mode cannot be changed by init", path.display())]
    AlreadyInitialised { path: PathBuf, existing: String },
    #[error("the store at {} is not writable by {user} ({source}); ask its owner for access, or use another --store", path.display())]
    NotWritable {
        path: PathBuf,
        user: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{} {problem} ({found}); to fix: {remedy}", path.display())]
    Unsafe {
        path: PathBuf,
        found: String,
        problem: String,
        remedy: String,
    },
    #[error("no group named {group:?} on this machine; create it (groupadd {group}) or pick another with --group")]
    UnknownGroup { group: String },
    #[error("{user} is not a member of group {group}, so cannot create a store for it; ask an administrator: usermod -aG {group} {user}")]
    NotInGroup { group: String, user: String },

    #[error("cannot add {}: {reason}", path.display())]
    BadSource { path: PathBuf, reason: String },
    #[error("{name} is not in the store; `beaker store ls` lists what it holds, `beaker store pull {name}` fetches it")]
    NotInStore { name: ModelName },
    #[error("not in the store: {}; nothing was removed (`beaker store ls` lists what it holds)", names.join(", "))]
    UnknownNames { names: Vec<String> },
    #[error("{name} is recorded as blob {blob} but {} is missing; `beaker store pull {name}` or `add` restores it", path.display())]
    BlobMissing {
        name: ModelName,
        blob: Blake3,
        path: PathBuf,
    },
    #[error("{what} mismatch: expected {expected}, got {actual}; nothing was published")]
    Mismatch {
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("no space left on the disk holding {} ({source}); free space (e.g. `beaker store gc`) and try again", path.display())]
    NoSpace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("blob {} exists but is damaged ({problem}); run `beaker store verify` to quarantine it, then try again", path.display())]
    DamagedBlob { path: PathBuf, problem: String },
    /// `--check` / `check = true`: the model did not load in ONNX Runtime (or no runtime did).
    #[error(transparent)]
    Check(#[from] crate::onnx::CheckError),
}

impl StoreError {
    pub fn category(&self) -> Category {
        match self {
            StoreError::Io(_)
            | StoreError::NotWritable { .. }
            | StoreError::DamagedBlob { .. }
            | StoreError::Mismatch { .. }
            | StoreError::NoSpace { .. } => Category::Failed,
            StoreError::Lock(e) => e.category(),
            StoreError::Check(e) => e.category(),
            StoreError::Manifest(e) => e.category(),
            StoreError::NotADirectory { .. }
            | StoreError::NotAStore { .. }
            | StoreError::NoStore { .. }
            | StoreError::UnknownFormat { .. }
            | StoreError::InvalidConfig { .. }
            | StoreError::AlreadyInitialised { .. }
            | StoreError::BadSource { .. }
            | StoreError::Unsafe { .. }
            | StoreError::UnknownGroup { .. }
            | StoreError::NotInGroup { .. }
            | StoreError::UnknownNames { .. } => Category::BadInput,
            StoreError::NotInStore { .. } | StoreError::BlobMissing { .. } => Category::NotPresent,
        }
    }

    /// Turns "permission denied / read-only filesystem" while writing into the store into the
    /// friendlier [`StoreError::NotWritable`].
    pub(crate) fn writing(root: &std::path::Path, e: IoError) -> StoreError {
        use std::io::ErrorKind;
        let read_only = e.source.raw_os_error() == Some(libc::EROFS);
        if matches!(e.source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
            return StoreError::NoSpace {
                path: root.to_owned(),
                source: e.source,
            };
        }
        if e.kind() == ErrorKind::PermissionDenied || read_only {
            StoreError::NotWritable {
                path: root.to_owned(),
                user: crate::who::user(),
                source: e.source,
            }
        } else {
            StoreError::Io(e)
        }
    }
}
