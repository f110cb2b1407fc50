//! Read-only views of a store: `path`, `info`, and the row type of `ls` (made in `listing`).
//! Nothing here writes or waits; `info` only try-locks each lock file for an instant (never
//! recording a holder) to say whether it is held.

use std::path::PathBuf;

use serde::Serialize;

use crate::model::digest::Blake3;
use crate::model::name::ModelName;
use crate::sys::error::IoError;
use crate::sys::fsx::{self, Rooted};

use super::{Store, StoreError};

/// Where a name's model is (see [`Store::locate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    /// The main file in the snapshot (or the blob, with no snapshot).
    pub main: PathBuf,
    /// The snapshot directory.
    pub dir: Option<PathBuf>,
    /// The main file's blob.
    pub blob: PathBuf,
    /// The name records a snapshot that is not (completely) there.
    #[serde(skip)]
    pub snapshot_missing: bool,
}

/// What is at a blob's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobState {
    Absent,
    /// A regular file of the expected size (or any size when none is expected). Not re-hashed:
    /// that is `verify`'s job.
    Present {
        size: u64,
    },
    /// Something is there but it cannot be the blob: wrong type or wrong size.
    Damaged {
        problem: String,
    },
}

/// One row of `beaker store ls` (and its `--json` shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    pub name: ModelName,
    /// The main file's blob.
    pub blake3: Option<Blake3>,
    /// Bytes of all the model's files.
    pub size: Option<u64>,
    /// How many files the model has.
    pub files: usize,
    pub format: Option<String>,
    /// When the name was recorded, RFC 3339 UTC.
    pub added: Option<String>,
    pub description: Option<String>,
    /// Every file's blob is in the store.
    pub present: bool,
    /// When a path to it was last handed out (else when it was recorded), RFC 3339 UTC.
    pub last_used: Option<String>,
    /// Pinned names are never evicted.
    pub pinned: bool,
    /// The main file in the model's snapshot, as `store path` prints it (`null` for a record
    /// without a snapshot yet; `store path` builds it).
    pub path: Option<std::path::PathBuf>,
}

/// `beaker store info`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Info {
    pub path: PathBuf,
    pub format: i64,
    pub mode: String,
    pub locking: String,
    pub names: usize,
    pub blobs: Count,
    pub referenced: Count,
    pub unreferenced: Count,
    pub temp: Count,
    pub quarantine: Count,
    pub lock_files: usize,
    /// The lock files in `locks/`, with whether someone holds them.
    pub locks: Vec<LockFile>,
    /// Names whose blob is absent.
    pub missing: Vec<ModelName>,
    /// Files and directories that break the store's ownership/mode policy.
    pub problems: Vec<super::policy::Problem>,
    /// The budget from `store.toml` (`max_size`), bytes; `None`: no limit.
    pub max_size: Option<u64>,
    /// How full the store is against `max_size`: the bytes of all blobs, in percent.
    pub used_percent: Option<f64>,
    /// Names used more recently than this (seconds) are never evicted.
    pub min_age_secs: u64,
    /// Names pinned (never evicted).
    pub pinned: usize,
    /// What the filesystem under the store can do (`probe.toml`, probed again on another
    /// device); `None` when it could not be found out.
    pub filesystem: Option<super::probe::Capabilities>,
}

/// One file in `locks/`, as `info` saw it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LockFile {
    pub name: String,
    pub held: bool,
    /// The last exclusive holder's record, when held.
    pub holder: Option<crate::sys::lock::Holder>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Count {
    pub files: u64,
    pub bytes: u64,
}

impl Count {
    pub(super) fn add(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
    }
}

impl Store {
    /// Looks at `blobs/<id>` without following symlinks and without hashing.
    pub fn blob_state(
        &self,
        id: &Blake3,
        expected_size: Option<u64>,
    ) -> Result<BlobState, StoreError> {
        let Some(meta) = fsx::stat(&self.layout().blob(id))? else {
            return Ok(BlobState::Absent);
        };
        if !meta.is_file() {
            return Ok(BlobState::Damaged {
                problem: "not a regular file".into(),
            });
        }
        match expected_size {
            Some(want) if want != meta.len() => Ok(BlobState::Damaged {
                problem: format!("{} bytes, expected {want}", meta.len()),
            }),
            _ => Ok(BlobState::Present { size: meta.len() }),
        }
    }
}

/// The names of the entries of `dir`, sorted, without a `stat` of each (a sweep of thousands of
/// entries looks closer only at those it removes; one may be gone by then). A missing directory
/// has none; a symlink where the directory should be is an error, never listed through.
pub fn names_in(dir: &Rooted) -> Result<Vec<String>, IoError> {
    let mut out: Vec<String> = fsx::list(dir)?
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    out.sort();
    Ok(out)
}

/// Names and sizes of the entries of `dir` (no recursion, no symlinks followed). A missing
/// directory has none.
pub fn files_in(dir: &Rooted) -> Result<Vec<(String, u64)>, IoError> {
    let Some(opened) = fsx::Dir::open(dir)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in opened.names()? {
        let Some(meta) = opened.stat(&name)? else {
            continue; // raced with a removal
        };
        out.push((name.to_string_lossy().into_owned(), meta.len()));
    }
    out.sort();
    Ok(out)
}
