//! The errors of store operations, each saying what happened, where, and what to do.

use std::path::PathBuf;

use crate::model::digest::Blake3;
use crate::model::manifest::ManifestError;
use crate::model::name::ModelName;
use crate::sys::error::{Category, IoError};
use crate::sys::lock::LockError;

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
    #[error("{} has store format {found}, this beaker understands formats up to {expected}; use a newer beaker (or another --store)", path.display())]
    UnknownFormat {
        path: PathBuf,
        found: String,
        expected: i64,
    },
    #[error("{}:{line}:{column}: {message}; fix or restore the file (valid keys: format, mode, locking, max_size, min_age)", path.display())]
    InvalidConfig {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("store {} already exists as {existing}; its mode cannot be changed by init", path.display())]
    AlreadyInitialised { path: PathBuf, existing: String },
    /// Permission denied or a read-only filesystem while writing into the store; `error` keeps
    /// the exact file (one unwritable lock file is not "the whole store is read-only").
    #[error("the store at {} is not writable by {} here; ask its owner for access (or fix the file's permissions), or use another --store", store.display(), crate::sys::who::user())]
    NotWritable {
        store: PathBuf,
        #[source]
        error: IoError,
    },

    #[error("{} {problem} ({found}); to fix: {remedy}", path.display())]
    Unsafe {
        path: PathBuf,
        found: String,
        problem: String,
        remedy: String,
    },
    #[error("cannot make a store at {}: the filesystem under it {why}; nothing was published (the half-made directory can be removed)", path.display())]
    Unsuitable { path: PathBuf, why: String },
    #[error("no group named {group:?} on this machine; create it (groupadd {group}) or pick another with --group")]
    UnknownGroup { group: String },
    #[error("{user} is not a member of group {group}, so cannot create a store for it; ask an administrator: usermod -aG {group} {user}")]
    NotInGroup { group: String, user: String },

    #[error("{name} is not in the store{}", not_held_hint(name, close))]
    NotInStore {
        name: ModelName,
        /// Names the store holds that are close to `name` (a typo), closest first.
        close: Vec<String>,
    },
    #[error("not in the store: {}; nothing was removed (`beaker store ls` lists what it holds)", names.join(", "))]
    UnknownNames { names: Vec<String> },
    #[error("cannot pin what the store does not hold: {}; nothing was pinned (`beaker store pull NAME` first; `beaker store ls` lists what it holds)", names.join(", "))]
    PinAbsent { names: Vec<String> },
    #[error("{name} is recorded as blob {blob} but {} is missing (deleted, or moved to quarantine/ by `beaker store verify` because its bytes were not its hash); `beaker store pull {name}` restores it if a catalogue lists {name}, else `beaker store add` its file again", path.display())]
    BlobMissing {
        name: ModelName,
        blob: Blake3,
        path: PathBuf,
    },
    /// ENOSPC, EDQUOT or EFBIG while writing into the store; `error` keeps the exact file.
    #[error("no space left for the store at {} ({}); free space — `beaker store gc --tmp-age 0` removes blobs no name uses and every abandoned download — or raise the limit, then try again", store.display(), limit_hint(error))]
    NoSpace {
        store: PathBuf,
        #[source]
        error: IoError,
    },
    #[error("cannot build the snapshot: its file {path} needs blob {blob}, which is not in the store; pull or add the model again")]
    SnapshotBlobMissing { path: String, blob: Blake3 },
    #[error("the snapshot of {name} ({}) is missing or damaged; `beaker store verify {name}` rebuilds it from the blobs", dir.display())]
    SnapshotMissing { name: ModelName, dir: PathBuf },
    #[error("blob {} exists but is damaged ({problem}); run `beaker store verify` to quarantine it, then try again", path.display())]
    DamagedBlob { path: PathBuf, problem: String },
    /// The entry of a pull pins a size that the stored blob of that hash does not have, and the
    /// blob's bytes hash to its name: the entry is wrong, not the store.
    #[error("{name}: the entry pins blob {blob} at {pinned} bytes, but the store holds that blob with {stored} bytes, and they hash to its name: the stored blob is healthy and the entry's size is wrong; correct `size` (to {stored}) in the catalogue that lists {name}, then pull again")]
    SizeDisagrees {
        name: ModelName,
        blob: Blake3,
        pinned: u64,
        stored: u64,
    },
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
            | StoreError::SnapshotBlobMissing { .. }
            | StoreError::SnapshotMissing { .. }
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
            | StoreError::Unsafe { .. }
            | StoreError::UnknownGroup { .. }
            | StoreError::NotInGroup { .. }
            | StoreError::SizeDisagrees { .. }
            | StoreError::Unsuitable { .. } => Category::BadInput,
            // A name the store does not hold is exit 3 for every command (`path`, `show`,
            // `pin`, `rm`, `verify NAME`).
            StoreError::NotInStore { .. }
            | StoreError::UnknownNames { .. }
            | StoreError::BlobMissing { .. }
            | StoreError::PinAbsent { .. } => Category::NotPresent,
        }
    }

    /// Turns "permission denied / read-only filesystem" and "disk full / quota / file size
    /// limit" while writing into the store into [`StoreError::NotWritable`] and
    /// [`StoreError::NoSpace`], keeping the exact file in the error; other errors stay I/O errors.
    pub(crate) fn writing(root: &std::path::Path, e: IoError) -> StoreError {
        use crate::sys::error::{os_error_is, Os};
        use std::io::ErrorKind;
        if os_error_is(&e.source, Os::NoSpace) {
            return StoreError::NoSpace {
                store: root.to_owned(),
                error: e,
            };
        }
        if e.kind() == ErrorKind::PermissionDenied || os_error_is(&e.source, Os::ReadOnlyFilesystem)
        {
            StoreError::NotWritable {
                store: root.to_owned(),
                error: e,
            }
        } else {
            StoreError::Io(e)
        }
    }

    /// Whether this is the disk (or quota, or `ulimit -f`) running out: a partial written when
    /// it happened is not worth keeping, it only keeps the disk full.
    pub fn is_no_space(&self) -> bool {
        matches!(self, StoreError::NoSpace { .. })
    }
}

/// What ran out, in words: the disk, the quota, or the process's file size limit.
fn limit_hint(e: &IoError) -> &'static str {
    use crate::sys::error::{os_error_is, Os};
    if os_error_is(&e.source, Os::Quota) {
        "disk quota exceeded"
    } else if os_error_is(&e.source, Os::FileSizeLimit) {
        "file size limit exceeded: see `ulimit -f`"
    } else {
        "the disk is full"
    }
}

/// The end of [`StoreError::NotInStore`]'s message: the names close to `name`, if any, else
/// where to look and how to fetch it.
fn not_held_hint(name: &ModelName, close: &[String]) -> String {
    if close.is_empty() {
        format!("; `beaker store ls` lists what it holds, `beaker store pull {name}` fetches it")
    } else {
        format!(
            "; did you mean {}? (`beaker store ls` lists what it holds)",
            close.join(", ")
        )
    }
}
