//! Read-only views of a store: `path`, `info`, and the row type of `ls` (made in `listing`).
//! Nothing here writes or waits; `info` only try-locks each lock file for an instant (never
//! recording a holder) to say whether it is held.

use std::path::PathBuf;

use serde::Serialize;

use crate::model::digest::Blake3;
use crate::model::name::ModelName;
use crate::sys::error::IoError;
use crate::sys::fsx::{self, Rooted};

use super::{Config, Store, StoreError};

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
    fn add(&mut self, bytes: u64) {
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

    /// `beaker store path NAME`: where a name the store holds is, if its main blob is there.
    ///
    /// `main` is the main file inside the model's snapshot, or the blob itself for a name
    /// recorded before snapshots existed (a format-1 store nobody could upgrade); `dir` is the
    /// snapshot when there is one. Read-only: a snapshot that is missing is reported as such
    /// ([`Located::snapshot_missing`]), not rebuilt here.
    pub fn locate(&self, name: &ModelName) -> Result<Located, StoreError> {
        let entry = self
            .read_entry(name)?
            .ok_or_else(|| StoreError::NotInStore { name: name.clone() })?;
        let entry = &entry;
        let main_file = entry.main_file(name);
        let mut main_blob = None;
        // Every file's blob must be there (a model is all its files), the main one first.
        let mut files = entry.files(name);
        files.sort_by_key(|f| f.path != main_file);
        for f in files {
            let Some(id) = f.blake3 else {
                return Err(StoreError::NotInStore { name: name.clone() });
            };
            let blob = self.layout().blob(&id);
            match self.blob_state(&id, f.size)? {
                BlobState::Present { .. } => {}
                BlobState::Absent => {
                    return Err(StoreError::BlobMissing {
                        name: name.clone(),
                        blob: id,
                        path: blob.path(),
                    })
                }
                BlobState::Damaged { problem } => {
                    return Err(StoreError::DamagedBlob {
                        path: blob.path(),
                        problem,
                    })
                }
            }
            main_blob.get_or_insert(blob);
        }
        let Some(blob) = main_blob else {
            return Err(StoreError::NotInStore { name: name.clone() });
        };
        let Some(tree) = entry.tree.map(crate::store::snapshot::TreeId) else {
            return Ok(Located {
                main: blob.path(),
                dir: None,
                blob: blob.path(),
                snapshot_missing: false,
            });
        };
        let dir = self.layout().snapshot(&tree);
        let main = main_file.beneath(&dir).path();
        // Every file must be its blob (same inode, or the symlink of a symlink farm) and nothing
        // else may be there: anything else is a snapshot that needs repair, never a path handed
        // out (a tool opens the other files by name next to the main one).
        let snapshot_missing = match entry.model_files(name) {
            Some(files) => {
                crate::store::snapshot::check(self, &files)?
                    != crate::store::snapshot::State::Complete
            }
            None => true,
        };
        Ok(Located {
            main,
            dir: Some(dir.path()),
            blob: blob.path(),
            snapshot_missing,
        })
    }

    /// Whether every file's blob is in `blobs/` with its size (a file without a BLAKE3 is not).
    fn all_present(&self, files: &[crate::model::manifest::FileEntry]) -> Result<bool, StoreError> {
        for f in files {
            let Some(id) = f.blake3 else {
                return Ok(false);
            };
            if !matches!(self.blob_state(&id, f.size)?, BlobState::Present { .. }) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `beaker store info`: sizes by category and the lock files present.
    pub fn info(&self) -> Result<Info, StoreError> {
        let layout = self.layout();
        let manifest = self.read_manifest()?;
        let referenced = manifest.roots();
        let Config {
            format,
            mode,
            locking,
            max_size,
            ..
        } = *self.config();
        let mut info = Info {
            path: self.root().to_owned(),
            format,
            mode: format!("{mode:?}").to_lowercase(),
            locking: format!("{locking:?}").to_lowercase(),
            names: manifest.models.len(),
            max_size,
            min_age_secs: crate::maint::gc::evict::Budget::default()
                .min_age(self)
                .as_secs(),
            pinned: crate::store::uses::pinned(self)?.len(),
            ..Info::default()
        };
        for (name, bytes) in files_in(&layout.blobs())? {
            info.blobs.add(bytes);
            let is_ref = Blake3::from_hex(&name).is_ok_and(|id| referenced.contains(&id));
            if is_ref {
                info.referenced.add(bytes);
            } else {
                info.unreferenced.add(bytes);
            }
        }
        for (_, bytes) in files_in(&layout.tmp())? {
            info.temp.add(bytes);
        }
        for (_, bytes) in files_in(&layout.quarantine())? {
            info.quarantine.add(bytes);
        }
        for (name, _) in files_in(&layout.locks())? {
            let (held, holder) = match crate::sys::lock::state(&layout.locks().join(&name)) {
                Ok(crate::sys::lock::State::Held(h)) => (true, h),
                Ok(crate::sys::lock::State::Gone) => continue,
                // Free, or not lockable by us (e.g. not a regular file): not held as far as we can tell.
                Ok(crate::sys::lock::State::Free) | Err(_) => (false, None),
            };
            info.locks.push(LockFile { name, held, holder });
        }
        info.lock_files = info.locks.len();
        for (name, entry) in &manifest.models {
            if !self.all_present(&entry.files(name))? {
                info.missing.push(name.clone());
            }
        }
        info.problems = super::policy::problems(layout, self.config())?;
        info.used_percent = max_size.map(|max| info.blobs.bytes as f64 * 100.0 / max as f64);
        Ok(info)
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
