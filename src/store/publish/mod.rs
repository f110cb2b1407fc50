//! The publish protocol (docs/design.md#publish, steps 3–5): the only way bytes enter `blobs/`.
//!
//! `add` and `pull` both write through a [`TempBlob`] (`temp`) and finish with [`publish`]. Each
//! step below says which crash or race it guards against. The invariants kept here:
//!
//! - **I1** a file in `blobs/` holds exactly the bytes whose BLAKE3 is its name: the name is the
//!   hash of what *we* wrote into a file only we could write (O_EXCL, 0600), computed while writing,
//!   checked against the file's size on disk, and the file is fsynced before it gets that name.
//!   No lock is needed for this.
//! - **I2** published blobs are never modified: they are 0444 before they are named, naming is
//!   no-clobber (an existing blob wins; "already there" is success), and a temp file that is also
//!   a blob's name is never resumed into ([`TempBlob::take_over`]).
//! - **I3** a manifest entry is written only after the blob and `blobs/` are fsynced — also on the
//!   fast path, where another process may have named the blob without syncing `blobs/` yet.
//! - **I4** `gc.lock` is held shared from before the blob is named until its entry is recorded, so
//!   gc (which holds it exclusively) never sees the blob unreferenced in between.
//!
//! Lock order (every path that takes more than one): blob/download lock → `gc.lock` →
//! `manifest.lock`. Publishing takes `gc.lock` here and `manifest.lock` inside `Store::record`.

mod temp;

use std::path::PathBuf;

pub use temp::TempBlob;

use crate::model::digest::Blake3;
use crate::model::entry::{Expect, Model, Pin, Record, Single, Upstreams};
use crate::model::name::ModelName;
use crate::store::snapshot::{self, ModelFile, TreeId};
use crate::store::{BlobState, GcShared, Store, StoreError, BLOB_MODE, TEMP_MODE};
use crate::sys::error::{Category, IoError};
use crate::sys::fsx;

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what} mismatch: expected {expected}, got {actual}; nothing was published")]
    Mismatch {
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{} changed under its writer: {counted} bytes were written through beaker but the file holds {on_disk}; nothing was published (another process wrote to beaker's temp file: check who can write to {})", path.display(), path.display())]
    TempChanged {
        path: PathBuf,
        counted: u64,
        on_disk: u64,
    },
    #[error("{} was replaced by another file before it was published (someone who can write the store's tmp/ renamed it); nothing was published: try again, and check who can write to {}", path.display(), path.display())]
    TempSwapped { path: PathBuf },
}

impl Error {
    pub fn category(&self) -> Category {
        match self {
            Error::Store(e) => e.category(),
            Error::Mismatch { .. } | Error::TempChanged { .. } | Error::TempSwapped { .. } => {
                Category::Failed
            }
        }
    }
}

/// A publish that failed, with the temp file handed back when it was never named and its bytes
/// are still good, so the caller can keep a finished download (e.g. for the next run) instead of
/// losing it (tempfile's `PersistError` does the same).
#[derive(Debug)]
pub struct Failed {
    pub error: Error,
    /// `Some` only when the failure came before the no-clobber rename (so the file is not a blob)
    /// and the bytes were not found wrong. Its mode is back to 0600: it can be resumed.
    pub temp: Option<Box<TempBlob>>,
}

impl From<Failed> for Error {
    fn from(f: Failed) -> Error {
        f.error // dropping `f.temp` deletes the file
    }
}

/// A model placed in the store: its snapshot directory, the main file in it, its files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placed {
    /// `snapshots/<tree>`.
    pub dir: PathBuf,
    /// The main file inside `dir` (what `beaker store path` prints).
    pub main: PathBuf,
    pub files: Vec<ModelFile>,
}

/// What [`publish`] (or the fast path) produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The main file's blob.
    pub blake3: Blake3,
    /// Bytes of all the model's files.
    pub size: u64,
    /// The model's snapshot.
    pub model: Placed,
    /// False when every blob was already there (dedup).
    pub created: bool,
    /// The record this name had before, when it pointed at other content.
    pub replaced: Option<Record>,
}

/// Steps 4–5 for a model of one file: checks the written bytes against what `file` expects,
/// makes them durable and read-only, names them by their hash without clobbering, builds the
/// model's snapshot, then records `name` as a model of that file, pinned by the bytes' BLAKE3
/// and size, its name written in (`file = …`), with its tree and the time. On a mismatch the
/// temp file is deleted (never resumed from bad bytes).
pub fn publish(
    store: &Store,
    temp: TempBlob,
    name: &ModelName,
    file: Single,
) -> Result<Published, Failed> {
    let expect = Expect {
        blob: file.blob,
        upstream: file.upstream,
    };
    let ready = prepare(store, temp, &expect)?;
    publish_ready(store, ready, name, file)
}

/// Steps 5c–6 of [`publish`] for a blob [`prepare`]d already (and checked meanwhile, as
/// `add --check` does): names it and records `name` as a model of that one file.
pub fn publish_ready(
    store: &Store,
    ready: Ready,
    name: &ModelName,
    file: Single,
) -> Result<Published, Failed> {
    // 5c. From naming to recording, gc must not judge this blob unreferenced (I4).
    //     Lock order (crate::sys::lock): after the caller's blob lock, before manifest.lock.
    let gc = match store.gc_shared() {
        Ok(gc) => gc,
        Err(e) => return Err(ready.hand_back(e.into())),
    };
    let fail = |error| Failed { error, temp: None };
    let blob = ready.name(store, &gc).map_err(fail)?;
    let pinned = Single {
        blob: Pin {
            blake3: blob.blake3,
            size: blob.size,
        },
        file: file.file,
        upstream: file.upstream,
        urls: file.urls,
        format: file.format,
    };
    let model = Model::single(name, pinned);
    let (model, replaced) = record_model(store, name, model, &gc).map_err(|e| fail(e.into()))?;
    Ok(Published {
        blake3: blob.blake3,
        size: blob.size,
        model,
        created: blob.created,
        replaced,
    })
}

/// A temp blob whose bytes passed step 4 and are durable and read-only (5a, 5b): ready to be
/// named. Dropped without [`Ready::name`], the file is deleted.
#[derive(Debug)]
#[must_use = "a Ready blob is deleted when dropped; name it"]
pub struct Ready {
    temp: TempBlob,
    id: Blake3,
    size: u64,
    /// The upstream digests step 4 checked, for the digest index.
    checked: Upstreams,
}

/// A blob in `blobs/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    pub blake3: Blake3,
    pub size: u64,
    /// False when an identical blob was already there.
    pub created: bool,
}

/// Steps 4, 5a and 5b: the bytes must be what `want` expects (size and every digest), then
/// they are fsynced and made read-only. No lock is taken. On an I/O failure the temp file is
/// handed back; on a mismatch it is deleted.
pub fn prepare(store: &Store, temp: TempBlob, want: &Expect) -> Result<Ready, Failed> {
    let Checked { id, size } = check(&temp, want).map_err(|error| Failed { error, temp: None })?;
    let durable = (|| {
        // 5a. Data on disk before the file gets its name: after a power cut, a named blob must
        //     not turn out empty or short (I1).
        fsx::sync_file(&temp.file, &temp.path).map_err(|e| StoreError::writing(store.root(), e))?;
        // 5b. Read-only before it is named, on the open file (I2): no window where a published
        //     blob is writable.
        fsx::set_mode(&temp.file, BLOB_MODE, &temp.path).map_err(StoreError::from)
    })();
    // Checks before naming may load the file in a program that refuses to share it with a
    // writer (ONNX Runtime on Windows): keep it open for reading only from here.
    let mut temp = temp;
    let durable = durable.and_then(|()| {
        if let Some(reading) = fsx::read_only_handle(&temp.file, &temp.path)? {
            temp.file = reading;
        }
        Ok(())
    });
    let ready = Ready {
        temp,
        id,
        size,
        checked: want.upstream,
    };
    match durable {
        Ok(()) => Ok(ready),
        Err(e) => Err(ready.hand_back(e.into())),
    }
}

impl Ready {
    pub fn blake3(&self) -> Blake3 {
        self.id
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The temp file holding the checked bytes (not a blob yet): what a check before naming
    /// loads, or links to ([`crate::store::snapshot::stage`]).
    pub fn path(&self) -> &fsx::Rooted {
        self.temp.path()
    }

    /// The failure of a blob that was never named: its temp file goes back to the caller as a
    /// resumable partial (mode 0600 again), or is deleted if even that fails.
    fn hand_back(self, error: Error) -> Failed {
        let temp = fsx::set_mode(&self.temp.file, TEMP_MODE, &self.temp.path)
            .ok()
            .map(|()| Box::new(self.temp));
        Failed { error, temp }
    }

    /// Whether the file at `at` is our temp file (same inode as the descriptor we wrote).
    fn is_at(&self, at: &fsx::Rooted) -> bool {
        let Ok(ours) = fsx::Meta::of(&self.temp.file) else {
            return false;
        };
        fsx::stat(at).is_ok_and(|m| m.is_some_and(|m| m.looks_same(&ours)))
    }

    /// Steps 5d–5e': names the blob by its hash without clobbering and makes `blobs/` durable.
    /// `_gc` proves gc.lock is held shared; keep holding it until the name is recorded (I4).
    pub fn name(mut self, store: &Store, _gc: &GcShared) -> Result<BlobRef, Error> {
        let (id, size) = (self.id, self.size);
        // 5d. Name it, never replacing an existing blob (I2). Someone else's identical blob is
        //     success.
        let dest = store.layout().blob(&id);
        let persisted = fsx::persist_noclobber(&self.temp.path, &dest);
        // Whatever happened, the temp file must not be deleted by its guard any more: after a
        // failed link+unlink fallback its path may be a second name of the blob. gc removes it if
        // it stays.
        self.temp.armed = false;
        let created =
            persisted.map_err(|e| StoreError::writing(store.root(), e))? == fsx::Persisted::Created;
        // 5d'. What was named must be the file we wrote: `tmp/` is writable by every member of
        //      a group store, so another may have swapped the name of our temp file for a file
        //      of theirs before the rename. The name goes again (never wrong bytes under it, I1).
        if created && !self.is_at(&dest) {
            let _ = fsx::remove_file_if_exists(&dest);
            return Err(Error::TempSwapped {
                path: self.temp.path.path(),
            });
        }
        if !created {
            if let BlobState::Damaged { problem } = store.blob_state(&id, Some(size))? {
                return Err(StoreError::DamagedBlob {
                    path: dest.path(),
                    problem,
                }
                .into());
            }
        }
        // 5e. The directory entry is durable before any manifest names it (I3).
        fsx::sync_dir(&store.layout().blobs())?;
        // 5e'. Remember which upstream digests these durable bytes were checked against (step
        //      4), for `gc --keep` and the fast path. Only a hint: failing to write it costs a
        //      re-download later, never this publish, so its error is not ours to return.
        let _ = store.index_record(&self.checked, id, size);
        Ok(BlobRef {
            blake3: id,
            size,
            created,
        })
    }
}

/// Steps 5e''–5f: builds (or finds) the snapshot of `model`'s files, then records `name ->
/// model` with its tree and the time. Every blob must be present and durable; `_gc` proves
/// gc.lock is held shared since they were checked or named (I3, I4).
///
/// Returns the model placed, and the record the name had before, if it pointed at other content.
pub fn record_model(
    store: &Store,
    name: &ModelName,
    model: Model<Pin>,
    _gc: &GcShared,
) -> Result<(Placed, Option<Record>), StoreError> {
    let (placed, record, fresh) = with_snapshot(store, Record::new(model))?;
    let replaced = store.record(name, record)?;
    if fresh {
        // Still under gc.lock shared, so no gc sees the name before its use (docs/design.md#eviction).
        crate::store::uses::record_now(store, name);
    }
    Ok((placed, replaced))
}

/// The format-1 upgrade's [`record_model`] (`crate::store::upgrade`): the same snapshot and
/// record, written without reading the whole store manifest again (the upgrade read it once for
/// every name), and only if the name has no record yet (`Store::record_unless_recorded`).
pub(crate) fn record_upgraded(
    store: &Store,
    name: &ModelName,
    record: Record,
    _gc: &GcShared,
) -> Result<(), StoreError> {
    let (_, record, fresh) = with_snapshot(store, record)?;
    if store.record_unless_recorded(name, &record)? && fresh {
        crate::store::uses::record_now(store, name);
    }
    Ok(())
}

/// Builds (or finds) the snapshot of `record`'s files and returns the model placed, the record
/// as it is written (its single file's name written in, its tree, and its time: a record without
/// `added` gets now), and whether it is a fresh name, which counts as used now (a record that
/// keeps its `added`, as the format-1 upgrade's do, keeps its use record).
fn with_snapshot(store: &Store, mut record: Record) -> Result<(Placed, Record, bool), StoreError> {
    record.model.name_the_file();
    let files = record.model.model_files();
    let dir = snapshot::ensure(store, &files)?;
    record.tree = Some(TreeId::of(&files));
    let fresh = record.added.is_none();
    if fresh {
        record.added = Some(crate::sys::who::now_rfc3339());
    }
    let main = record.model.main().path.beneath(&dir).path();
    let dir = dir.path();
    Ok((Placed { dir, main, files }, record, fresh))
}

/// What step 4 established about the bytes.
struct Checked {
    id: Blake3,
    size: u64,
}

/// Step 4: the bytes must be what the caller asked for. Never publish unexpected bytes.
fn check(temp: &TempBlob, want: &Expect) -> Result<Checked, Error> {
    let id = temp.blake3();
    let size = temp.len();
    // Only the writes we hashed may be in the file: a file that grew or shrank behind our back
    // (another writer, a hard link) does not hold the bytes `id` names.
    let on_disk = temp.size_on_disk().map_err(StoreError::from)?;
    if on_disk != size {
        return Err(Error::TempChanged {
            path: temp.path().path(),
            counted: size,
            on_disk,
        });
    }
    if let Some(pinned) = want.size().filter(|&s| s != size) {
        return Err(mismatch("size", pinned.to_string(), size.to_string()));
    }
    if let Some(pinned) = want.blake3().filter(|w| *w != id) {
        return Err(mismatch("blake3", pinned.to_hex(), id.to_hex()));
    }
    let not_computed = || "(not computed)".to_owned();
    if let Some(pinned) = want.upstream.sha256 {
        let got = temp.hashers.sha256();
        if got != Some(pinned) {
            let got = got.map_or_else(not_computed, |d| d.to_hex());
            return Err(mismatch("sha256", pinned.to_hex(), got));
        }
    }
    if let Some(pinned) = want.upstream.md5 {
        let got = temp.hashers.md5();
        if got != Some(pinned) {
            let got = got.map_or_else(not_computed, |d| d.to_hex());
            return Err(mismatch("md5", pinned.to_hex(), got));
        }
    }
    Ok(Checked { id, size })
}

fn mismatch(what: &'static str, expected: String, actual: String) -> Error {
    Error::Mismatch {
        what,
        expected,
        actual,
    }
}

/// The fast path (docs/design.md#publish step 1): if every blob of `model` is already present,
/// builds the snapshot if needed and records `name -> model` (when missing or different), with
/// no network and no re-hash. `None` when a blob is absent.
///
/// The presence check happens under `gc.lock` shared, so a concurrent gc or `rm` cannot delete
/// a blob between the check and the record (I4). `blobs/` is fsynced before the name is
/// recorded (I3): a blob may have just been named by a publisher that has not synced the
/// directory yet, and a name must never outlive a power cut that its blob does not.
pub fn reference_existing(
    store: &Store,
    name: &ModelName,
    model: Model<Pin>,
) -> Result<Option<Published>, StoreError> {
    let files = model.model_files();
    // Lock order (crate::sys::lock): gc.lock shared, then `record` takes manifest.lock.
    let gc = store.gc_shared()?;
    let mut sizes = Vec::with_capacity(files.len());
    for f in &files {
        match store.blob_state(&f.blake3, Some(f.size))? {
            BlobState::Present { size } => sizes.push(size),
            BlobState::Absent => return Ok(None),
            BlobState::Damaged { problem } => {
                return Err(damaged_or_mispinned(store, name, f, problem))
            }
        }
    }
    let tree = TreeId::of(&files);
    let already = store
        .read_entry(name)?
        .is_some_and(|e| e.tree == Some(tree) && e.model.model_files() == files);
    let dir = store.layout().snapshot(&tree);
    let main = model.main().blob.blake3;
    let (placed, replaced) =
        if already && snapshot::check(store, &files)? == snapshot::State::Complete {
            // A path handed out from what is already there: a use (at most one write a minute).
            crate::store::uses::touch(store, name);
            let main = model.main().path.beneath(&dir).path();
            (
                Placed {
                    dir: dir.path(),
                    main,
                    files,
                },
                None,
            )
        } else {
            fsx::sync_dir(&store.layout().blobs())?;
            record_model(store, name, model, &gc)?
        };
    Ok(Some(Published {
        blake3: main,
        size: sizes.iter().sum(),
        model: placed,
        created: false,
        replaced,
    }))
}

/// The error for a blob of `f`'s hash that is not what `f` pins (`problem`): when it is a regular
/// file of another size whose bytes hash to its name, the blob is healthy and the entry's size is
/// wrong ([`StoreError::SizeDisagrees`]); else the blob is damaged. Hashes the blob, only on
/// this error path.
fn damaged_or_mispinned(
    store: &Store,
    name: &ModelName,
    f: &ModelFile,
    problem: String,
) -> StoreError {
    let path = store.layout().blob(&f.blake3);
    if let Ok(BlobState::Present { size }) = store.blob_state(&f.blake3, None) {
        if size != f.size && hash_of(&path).is_ok_and(|h| h == f.blake3) {
            return StoreError::SizeDisagrees {
                name: name.clone(),
                blob: f.blake3,
                pinned: f.size,
                stored: size,
            };
        }
    }
    StoreError::DamagedBlob {
        path: path.path(),
        problem,
    }
}

/// The BLAKE3 of the file at `path` (opened without following a symlink), streamed.
fn hash_of(path: &fsx::Rooted) -> Result<Blake3, IoError> {
    use crate::sys::error::IoContext;
    let mut hasher = blake3::Hasher::new();
    let file = fsx::open_read(path)?;
    std::io::copy(
        &mut std::io::BufReader::with_capacity(1 << 20, file),
        &mut hasher,
    )
    .at("read", path)?;
    Ok(hasher.finalize().into())
}

/// An I/O error while publishing is a store error first (it keeps its path).
impl From<IoError> for Error {
    fn from(e: IoError) -> Error {
        Error::Store(e.into())
    }
}

#[cfg(test)]
mod tests {
    // Tests write behind the writer's back with raw std::fs on purpose.
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use std::io::Write;

    /// A fresh private store in a temp directory (also used by `temp`'s tests).
    pub(super) fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_create(&dir.path().join("s")).unwrap();
        (dir, s)
    }

    fn name(n: &str) -> ModelName {
        ModelName::new(n).unwrap()
    }

    #[test]
    fn a_temp_file_written_behind_the_writers_back_is_not_published() {
        let (_d, s) = store();
        let mut t = TempBlob::create(&s, "k").unwrap();
        t.write_all(b"counted").unwrap();
        // Another descriptor appends bytes the hashers never saw.
        let mut other = std::fs::OpenOptions::new()
            .append(true)
            .open(t.path().path())
            .unwrap();
        other.write_all(b" and more").unwrap();
        let err = publish(&s, t, &name("m"), Single::default()).unwrap_err();
        assert!(
            matches!(
                err.error,
                Error::TempChanged {
                    counted: 7,
                    on_disk: 16,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(s.read_manifest().unwrap().models.is_empty());
        assert_eq!(
            std::fs::read_dir(s.layout().blobs().path())
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_mismatch_deletes_the_temp_file_and_hands_nothing_back() {
        let (_d, s) = store();
        let mut t = TempBlob::create(&s, "k").unwrap();
        t.write_all(b"bytes").unwrap();
        let file = Single {
            blob: crate::model::entry::Expected::Unpinned { size: Some(99) },
            ..Single::default()
        };
        let err = publish(&s, t, &name("m"), file).unwrap_err();
        assert!(matches!(err.error, Error::Mismatch { what: "size", .. }));
        assert!(err.temp.is_none());
        drop(err);
        assert_eq!(
            std::fs::read_dir(s.layout().tmp().path()).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_temp_file_swapped_before_it_is_named_is_not_published() {
        let (_d, s) = store();
        let mut t = TempBlob::create(&s, "k").unwrap();
        t.write_all(b"our bytes").unwrap();
        let ready = prepare(&s, t, &Expect::default()).unwrap();
        // Another member renames our temp file away and puts theirs under its name.
        let ours = ready.temp.path.path();
        std::fs::rename(&ours, ours.with_extension("moved")).unwrap();
        std::fs::write(&ours, b"their bytes").unwrap();
        let gc = s.gc_shared().unwrap();
        let err = ready.name(&s, &gc).unwrap_err();
        assert!(matches!(err, Error::TempSwapped { .. }), "{err}");
        assert_eq!(
            std::fs::read_dir(s.layout().blobs().path())
                .unwrap()
                .count(),
            0
        );
    }
}
