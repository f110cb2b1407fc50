//! The publish protocol (DESIGN §5, steps 3–5): the only way bytes enter `blobs/`.
//!
//! `add` and `pull` both write through a [`TempBlob`] and finish with [`publish`]. Each step below
//! says which crash or race it guards against. The invariants kept here:
//!
//! - **I1** a file in `blobs/` holds exactly the bytes whose BLAKE3 is its name: the name is the
//!   hash of what *we* wrote into a file only we could write (O_EXCL, 0600), computed while writing,
//!   and the file is fsynced before it gets that name. No lock is needed for this.
//! - **I2** published blobs are never modified: they are 0444 before they are named, and naming is
//!   no-clobber (an existing blob wins; "already there" is success).
//! - **I3** a manifest entry is written only after the blob and `blobs/` are fsynced.
//! - **I4** `gc.lock` is held shared from before the blob is named until its entry is recorded, so
//!   gc (which holds it exclusively) never sees the blob unreferenced in between.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::digest::Blake3;
use crate::error::IoContext;
use crate::fsx;
use crate::lock::Mode;
use crate::manifest::Entry;
use crate::name::ModelName;
use crate::store::{BlobState, Locking, Store, StoreError, BLOB_MODE, TEMP_MODE};

/// A temp file in `<store>/tmp/` that only this process writes, hashed and counted as it grows.
///
/// Dropped without [`publish`] or [`TempBlob::keep`], it deletes itself.
#[must_use = "a TempBlob is deleted when dropped; publish it or keep it"]
pub struct TempBlob {
    file: File,
    path: PathBuf,
    store_root: PathBuf,
    hasher: blake3::Hasher,
    len: u64,
    armed: bool,
}

impl TempBlob {
    /// Step 3: creates `tmp/<stem>.<pid>.<nonce>.part` with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600,
    /// and holds a flock on it while writing (so gc and resume can tell a live writer from a dead one).
    pub fn create(store: &Store, stem: &str) -> Result<Self, StoreError> {
        let (file, path) = fsx::create_unique(&store.layout().tmp(), stem, "part", TEMP_MODE)
            .map_err(|e| StoreError::writing(store.root(), e))?;
        if store.config().locking == Locking::Flock {
            // A brand-new file nobody else has opened: this cannot be contended.
            fs2::FileExt::try_lock_exclusive(&file).at("lock", &path)?;
        }
        Ok(TempBlob {
            file,
            path,
            store_root: store.root().to_owned(),
            hasher: blake3::Hasher::new(),
            len: 0,
            armed: true,
        })
    }

    /// Appends `buf`, hashing it in the same pass.
    pub fn append(&mut self, buf: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all(buf)
            .at("write", &self.path)
            .map_err(|e| StoreError::writing(&self.store_root, e))?;
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The BLAKE3 of everything appended so far.
    pub fn blake3(&self) -> Blake3 {
        self.hasher.finalize().into()
    }

    /// Leaves the file in `tmp/` (a resumable partial) and returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.armed = false;
        std::mem::take(&mut self.path)
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if self.armed {
            let _ = fsx::remove_file_if_exists(&self.path);
        }
    }
}

/// What [`publish`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub blake3: Blake3,
    pub size: u64,
    pub path: PathBuf,
    /// False when an identical blob was already there (dedup).
    pub created: bool,
    /// The entry this name had before, when it pointed at other content.
    pub replaced: Option<Entry>,
}

/// Steps 4–5: checks the written bytes against what the caller expects, makes them durable and
/// read-only, names them by their hash without clobbering, then records `name` (if any).
///
/// `entry` is the manifest entry to record; its `blake3`, `size` and `added` are filled in here.
pub fn publish(
    store: &Store,
    mut temp: TempBlob,
    name: Option<&ModelName>,
    mut entry: Entry,
) -> Result<Published, StoreError> {
    let id = temp.blake3();
    let size = temp.len;

    // Step 4: the bytes must be what the caller asked for. Never publish unexpected bytes.
    if let Some(want) = entry.size.filter(|&s| s != size) {
        return Err(StoreError::Mismatch {
            what: "size",
            expected: want.to_string(),
            actual: size.to_string(),
        });
    }
    if let Some(want) = entry.blake3.filter(|w| *w != id) {
        return Err(StoreError::Mismatch {
            what: "blake3",
            expected: want.to_hex(),
            actual: id.to_hex(),
        });
    }

    // 5a. Data on disk before the file gets its name: after a power cut, a named blob must not
    //     turn out empty or short (I1).
    fsx::sync_file(&temp.file, &temp.path)?;
    // 5b. Read-only before it is named, on the open file (I2): no window where a published blob
    //     is writable.
    fsx::set_mode(&temp.file, BLOB_MODE, &temp.path)?;
    // 5c. From naming to recording, gc must not judge this blob unreferenced (I4).
    let gc_guard = store.gc_lock(Mode::Shared)?;
    // 5d. Name it, never replacing an existing blob (I2). Someone else's identical blob is success.
    let dest = store.layout().blob(&id);
    let created = match fsx::persist_noclobber(&temp.path, &dest) {
        Ok(p) => p == fsx::Persisted::Created,
        Err(e) => return Err(StoreError::writing(store.root(), e)),
    };
    temp.armed = false; // the temp path no longer exists either way
    if !created {
        if let BlobState::Damaged { problem } = store.blob_state(&id, Some(size))? {
            return Err(StoreError::DamagedBlob {
                path: dest,
                problem,
            });
        }
    }
    // 5e. The directory entry is durable before any manifest names it (I3).
    fsx::sync_dir(&store.layout().blobs())?;
    // 5f. Record the name. gc.lock is still held shared (I4).
    entry.blake3 = Some(id);
    entry.size = Some(size);
    entry.added = Some(crate::who::now_rfc3339());
    let replaced = match name {
        Some(name) => store.record(name, entry)?,
        None => None,
    };
    drop(gc_guard);
    Ok(Published {
        blake3: id,
        size,
        path: dest,
        created,
        replaced,
    })
}

/// The fast path (DESIGN §5 step 1): if the blob is already present, records `name -> entry` (when
/// missing or different) and returns it, with no network and no re-hash. `None` when absent.
///
/// The presence check happens under `gc.lock` shared, so a concurrent gc or `rm` cannot delete
/// the blob between the check and the record (I4).
pub fn reference_existing(
    store: &Store,
    name: &ModelName,
    id: &Blake3,
    mut entry: Entry,
) -> Result<Option<Published>, StoreError> {
    let _gc = store.gc_lock(Mode::Shared)?;
    let size = match store.blob_state(id, entry.size)? {
        BlobState::Present { size } => size,
        BlobState::Absent => return Ok(None),
        BlobState::Damaged { problem } => {
            return Err(StoreError::DamagedBlob {
                path: store.layout().blob(id),
                problem,
            })
        }
    };
    let recorded = store.read_manifest()?;
    let already = recorded
        .models
        .get(name)
        .is_some_and(|e| e.blake3 == Some(*id) && e.size == Some(size));
    let replaced = if already {
        None
    } else {
        entry.blake3 = Some(*id);
        entry.size = Some(size);
        entry.added = Some(crate::who::now_rfc3339());
        store.record(name, entry)?
    };
    Ok(Some(Published {
        blake3: *id,
        size,
        path: store.layout().blob(id),
        created: false,
        replaced,
    }))
}
