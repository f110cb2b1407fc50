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
//!
//! Resume (DESIGN §5 step 3) also lives here, in [`TempBlob::take_over`]: a dead writer's partial
//! is claimed by flock + atomic rename and its bytes are re-hashed, so what is finally published is
//! still the hash of every byte in the file (I1), never a hash carried over from another process.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use md5::Digest as _;

use crate::digest::{Blake3, Md5, Sha256};
use crate::error::IoContext;
use crate::fsx;
use crate::lock::Mode;
use crate::manifest::Entry;
use crate::name::ModelName;
use crate::store::{BlobState, Locking, Store, StoreError, BLOB_MODE, TEMP_MODE};

/// A temp file in `<store>/tmp/` that only this process writes, hashed and counted as it grows.
///
/// BLAKE3 is always computed; SHA-256 and MD5 only when the entry it is created for pins them
/// (all in the same pass over the bytes). Dropped without [`publish`] or [`TempBlob::keep`], it
/// deletes itself.
#[must_use = "a TempBlob is deleted when dropped; publish it or keep it"]
pub struct TempBlob {
    file: File,
    path: PathBuf,
    store_root: PathBuf,
    hashers: Hashers,
    len: u64,
    armed: bool,
}

/// The digests computed while writing: BLAKE3 always, the upstream ones when pinned.
#[derive(Clone)]
struct Hashers {
    blake3: blake3::Hasher,
    sha256: Option<sha2::Sha256>,
    md5: Option<md5::Md5>,
}

impl Hashers {
    fn for_entry(entry: &Entry) -> Self {
        Hashers {
            blake3: blake3::Hasher::new(),
            sha256: entry.sha256.map(|_| sha2::Sha256::new()),
            md5: entry.md5.map(|_| md5::Md5::new()),
        }
    }

    fn update(&mut self, buf: &[u8]) {
        self.blake3.update(buf);
        if let Some(h) = &mut self.sha256 {
            h.update(buf);
        }
        if let Some(h) = &mut self.md5 {
            h.update(buf);
        }
    }

    fn reset(&mut self) {
        self.blake3.reset();
        if let Some(h) = &mut self.sha256 {
            *h = sha2::Sha256::new();
        }
        if let Some(h) = &mut self.md5 {
            *h = md5::Md5::new();
        }
    }
}

impl TempBlob {
    /// Step 3: creates `tmp/<stem>.<pid>.<nonce>.part` with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600,
    /// and holds a flock on it while writing (so gc and resume can tell a live writer from a dead one).
    pub fn create(store: &Store, stem: &str) -> Result<Self, StoreError> {
        Self::create_for(store, stem, &Entry::default())
    }

    /// Like [`TempBlob::create`], also computing every upstream digest `entry` pins, so that
    /// [`publish`] can check them (DESIGN §5 step 4).
    pub fn create_for(store: &Store, stem: &str, entry: &Entry) -> Result<Self, StoreError> {
        let (file, path) = fsx::create_unique(&store.layout().tmp(), stem, "part", TEMP_MODE)
            .map_err(|e| StoreError::writing(store.root(), e))?;
        if store.config().locking == Locking::Flock {
            // A brand-new file nobody else has opened: this cannot be contended.
            // (On a filesystem where flock fails, this names the remedy: `locking = "none"`.)
            if !crate::lock::try_exclusive(&file, &path)? {
                return Err(crate::error::IoError::new(
                    "lock",
                    &path,
                    std::io::Error::other("a brand-new temp file was already locked"),
                )
                .into());
            }
        }
        Ok(TempBlob {
            file,
            path,
            store_root: store.root().to_owned(),
            hashers: Hashers::for_entry(entry),
            len: 0,
            armed: true,
        })
    }

    /// Resume (DESIGN §5 step 3): takes over the partial at `partial` if its writer is gone, and
    /// returns it as this process's temp blob with every byte already in it re-hashed.
    ///
    /// `Ok(None)` means "not resumable, start afresh": the store runs without locks (a live
    /// writer cannot be told from a dead one), the file is not a regular file owned by this user,
    /// its flock is held (its writer is alive), another claimant won the race, or it is already
    /// longer than `entry.size` (then it is deleted: its bytes cannot be right).
    ///
    /// **Atomicity**: the claim is flock-then-`rename_exclusive` to a fresh name of our own, so of
    /// many claimants exactly one ends up with the file; the others find the flock held or the
    /// path gone. The claimed file keeps our flock until it is published, kept or dropped.
    pub fn take_over(
        store: &Store,
        partial: &Path,
        stem: &str,
        entry: &Entry,
    ) -> Result<Option<Self>, StoreError> {
        if store.config().locking != Locking::Flock {
            return Ok(None);
        }
        // Any failure to open (gone, another user's 0600 file, a symlink) means "not ours to take".
        let Ok(file) = fsx::open_read_write(partial) else {
            return Ok(None);
        };
        let meta = file.metadata().at("inspect", partial)?;
        let me = crate::who::euid();
        if !meta.file_type().is_file() || meta.uid() != me {
            return Ok(None);
        }
        if !crate::lock::try_exclusive(&file, partial)? {
            return Ok(None); // its writer is alive (or another claimant got here first)
        }
        let own = fsx::unique_path(&store.layout().tmp(), stem, "part");
        match fsx::rename_exclusive(partial, &own) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::writing(store.root(), e)),
        }
        // The file we locked must be the one now at our name (nothing swapped it in between).
        match std::fs::symlink_metadata(&own) {
            Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {}
            _ => return Ok(None),
        }
        let mut temp = TempBlob {
            file,
            path: own,
            store_root: store.root().to_owned(),
            hashers: Hashers::for_entry(entry),
            len: 0,
            armed: true,
        };
        // Re-hash what is there: never trust bytes we did not hash ourselves (I1).
        temp.file.seek(SeekFrom::Start(0)).at("seek", &temp.path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match temp.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(crate::error::IoError::new("read", &temp.path, e).into()),
            };
            temp.hashers.update(&buf[..n]);
            temp.len += n as u64;
            if entry.size.is_some_and(|size| temp.len > size) {
                return Ok(None); // dropping `temp` deletes it: too long to be the blob
            }
        }
        temp.file.seek(SeekFrom::End(0)).at("seek", &temp.path)?;
        Ok(Some(temp))
    }

    /// Empties the file and the hashes: the source could not continue where we stopped (a `200`
    /// answer to a `Range` request), so the download starts over.
    pub fn restart(&mut self) -> Result<(), StoreError> {
        fsx::truncate(&self.file, 0, &self.path)?;
        self.file.seek(SeekFrom::Start(0)).at("seek", &self.path)?;
        self.hashers.reset();
        self.len = 0;
        Ok(())
    }

    /// Appends `buf`, hashing it in the same pass.
    pub fn append(&mut self, buf: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all(buf)
            .at("write", &self.path)
            .map_err(|e| StoreError::writing(&self.store_root, e))?;
        self.hashers.update(buf);
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
        self.hashers.blake3.finalize().into()
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
    check_upstream(&temp.hashers, &entry)?;

    // 5a. Data on disk before the file gets its name: after a power cut, a named blob must not
    //     turn out empty or short (I1).
    fsx::sync_file(&temp.file, &temp.path)?;
    // 5b. Read-only before it is named, on the open file (I2): no window where a published blob
    //     is writable.
    fsx::set_mode(&temp.file, BLOB_MODE, &temp.path)?;
    // 5c. From naming to recording, gc must not judge this blob unreferenced (I4).
    //     Lock order (crate::lock): after the caller's blob lock, before manifest.lock.
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

/// Step 4 for the upstream digests: every one the entry pins must match what was computed while
/// writing. A pinned digest that was not computed is a mismatch too, never a silent skip.
fn check_upstream(hashers: &Hashers, entry: &Entry) -> Result<(), StoreError> {
    if let Some(want) = entry.sha256 {
        let got = hashers
            .sha256
            .clone()
            .map(|h| Sha256::from_bytes(h.finalize().into()).to_hex());
        if got.as_deref() != Some(want.to_hex().as_str()) {
            return Err(StoreError::Mismatch {
                what: "sha256",
                expected: want.to_hex(),
                actual: got.unwrap_or_else(|| "(not computed)".into()),
            });
        }
    }
    if let Some(want) = entry.md5 {
        let got = hashers
            .md5
            .clone()
            .map(|h| Md5::from_bytes(h.finalize().into()).to_hex());
        if got.as_deref() != Some(want.to_hex().as_str()) {
            return Err(StoreError::Mismatch {
                what: "md5",
                expected: want.to_hex(),
                actual: got.unwrap_or_else(|| "(not computed)".into()),
            });
        }
    }
    Ok(())
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
    // Lock order (crate::lock): gc.lock shared, then `record` takes manifest.lock.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_create(&dir.path().join("s")).unwrap();
        (dir, s)
    }

    #[test]
    fn take_over_claims_a_dead_partial_once_and_rehashes_it() {
        let (_d, s) = store();
        let mut t = TempBlob::create(&s, "k").unwrap();
        t.append(b"hello ").unwrap();
        let live = t.path().to_owned();
        // Its writer is alive (holds the flock): not claimable.
        assert!(TempBlob::take_over(&s, &live, "k", &Entry::default())
            .unwrap()
            .is_none());
        let dead = t.keep(); // the descriptor (and its flock) is gone, the file stays
        let mut claimed = TempBlob::take_over(&s, &dead, "k", &Entry::default())
            .unwrap()
            .expect("a dead partial is claimable");
        assert_ne!(claimed.path(), dead.as_path(), "renamed to our own name");
        assert!(!dead.exists());
        assert_eq!(claimed.len(), 6);
        // A second claimant finds nothing at the old path; the claimed one is held.
        assert!(TempBlob::take_over(&s, &dead, "k", &Entry::default())
            .unwrap()
            .is_none());
        let path = claimed.path().to_owned();
        assert!(TempBlob::take_over(&s, &path, "k", &Entry::default())
            .unwrap()
            .is_none());
        claimed.append(b"world").unwrap();
        assert_eq!(claimed.blake3(), Blake3::of(b"hello world"));
    }

    #[test]
    fn take_over_deletes_a_partial_longer_than_the_entry() {
        let (_d, s) = store();
        let mut t = TempBlob::create(&s, "k").unwrap();
        t.append(&[0u8; 10]).unwrap();
        let dead = t.keep();
        let entry = Entry {
            size: Some(4),
            ..Entry::default()
        };
        assert!(TempBlob::take_over(&s, &dead, "k", &entry)
            .unwrap()
            .is_none());
        assert_eq!(std::fs::read_dir(s.layout().tmp()).unwrap().count(), 0);
    }
}
