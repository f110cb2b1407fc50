//! The blob sweep shared by `rm` and `gc`: deletes the blobs in `blobs/` that no root references.
//!
//! Keeps **I4** (gc never deletes a blob that is referenced or about to be): a sweep needs a
//! [`GcExclusive`], the proof that `locks/gc.lock` is held exclusively. Publishers hold that lock
//! *shared* from before they name a blob until its manifest entry is written (`crate::store::publish`),
//! and the fast path checks presence and records the name under it too, so while the sweep runs
//! no blob can be "named but not yet recorded", and the roots the caller read under the same lock
//! are complete.
//!
//! With `locking = "none"` the lock is a no-op and that argument does not hold. The sweep then
//! keeps unreferenced blobs whose inode changed in the last [`LOCKLESS_GRACE`] (a publish renames
//! and chmods the blob, which sets its ctime), which covers a fresh publish racing the sweep. A
//! publish that finds an *old* unreferenced blob already there and only records its name can
//! still lose the race; `verify` then reports the name as missing and the next add/pull restores
//! the blob (I1 is never at stake: nothing is ever written into `blobs/` without hashing).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::model::digest::Blake3;
use crate::sys::fsx;
use crate::sys::lock::{Holder, LockGuard, Mode, Wait};

use super::{Locking, Store, StoreError};

/// How recently a blob must have been published to be spared by a sweep in a lockless store.
pub const LOCKLESS_GRACE: Duration = Duration::from_secs(3600);

/// Proof that `locks/gc.lock` is held exclusively (or that the store runs without locks).
#[must_use = "gc.lock is released when this is dropped; sweep while holding it"]
#[derive(Debug)]
pub struct GcExclusive {
    _guard: LockGuard,
}

/// Proof that `locks/gc.lock` is held shared (or that the store runs without locks): what a
/// publisher holds from naming a blob until its name is recorded (I4).
#[must_use = "gc.lock is released when this is dropped; record the name while holding it"]
#[derive(Debug)]
pub struct GcShared {
    _guard: LockGuard,
}

/// Which blobs a sweep looks at.
#[derive(Debug, Clone, Copy)]
pub enum Candidates<'a> {
    /// Everything in `blobs/` (gc).
    All,
    /// Only these (rm: the blobs of the names it removed).
    Only(&'a [Blake3]),
}

/// What a sweep did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Unreferenced blobs deleted (or that would be, in a dry run), with their sizes.
    pub removed: Vec<(Blake3, u64)>,
    /// Blobs looked at and kept because a root references them.
    pub kept: usize,
    /// Unreferenced but published within [`LOCKLESS_GRACE`] in a lockless store: left for later.
    pub deferred: Vec<(Blake3, u64)>,
    /// Entries of `blobs/` whose name is not a BLAKE3 hex digest, or that are directories: not
    /// ours to judge, left alone.
    pub foreign: Vec<String>,
}

impl Store {
    /// Takes `locks/gc.lock` shared: publishers hold it from naming a blob until its name is
    /// recorded, so gc (exclusive) never sees the blob unreferenced in between (I4).
    pub fn gc_shared(&self) -> Result<GcShared, StoreError> {
        let guard = self.lock(
            &self.layout().gc_lock(),
            Mode::Shared,
            Wait::Forever,
            &mut |_| {},
        )?;
        Ok(GcShared { _guard: guard })
    }

    /// Takes `locks/gc.lock` exclusively, waiting for publishers in flight (they hold it shared
    /// for milliseconds). `on_wait` hears, about a second in, who holds it. Lock order
    /// (crate::sys::lock): never while holding manifest.lock; a blob lock may be held.
    pub fn gc_exclusive(
        &self,
        on_wait: &mut dyn FnMut(Option<Holder>),
    ) -> Result<GcExclusive, StoreError> {
        let guard = self.lock(
            &self.layout().gc_lock(),
            Mode::Exclusive,
            Wait::Forever,
            on_wait,
        )?;
        Ok(GcExclusive { _guard: guard })
    }

    /// Takes `locks/gc.lock` exclusively if it is free right now; `None` if anyone holds it (a
    /// publisher or another gc). Used by eviction after a publish, which must never wait.
    pub fn try_gc_exclusive(&self) -> Result<Option<GcExclusive>, StoreError> {
        match self.lock(
            &self.layout().gc_lock(),
            Mode::Exclusive,
            Wait::NoWait,
            &mut |_| {},
        ) {
            Ok(guard) => Ok(Some(GcExclusive { _guard: guard })),
            Err(StoreError::Lock(crate::sys::lock::LockError::Timeout { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the `candidates` that are not in `roots`. With `dry_run` nothing is deleted and
    /// the same set is reported.
    ///
    /// The caller reads `roots` while holding `proof` (so no publish can slip in between).
    pub fn sweep_blobs(
        &self,
        _proof: &GcExclusive,
        roots: &BTreeSet<Blake3>,
        candidates: Candidates<'_>,
        dry_run: bool,
    ) -> Result<Swept, StoreError> {
        let mut swept = Swept::default();
        let ids: Vec<Blake3> = match candidates {
            Candidates::Only(ids) => {
                let unique: BTreeSet<Blake3> = ids.iter().copied().collect();
                unique.into_iter().collect()
            }
            Candidates::All => {
                let mut ids = Vec::new();
                for name in super::inspect::names_in(&self.layout().blobs())? {
                    match Blake3::from_hex(&name) {
                        Ok(id) => ids.push(id),
                        Err(_) => swept.foreign.push(name),
                    }
                }
                ids
            }
        };
        let ids_len = ids.len();
        let lockless = self.config().locking == Locking::None;
        let dead: Vec<Blake3> = ids.into_iter().filter(|id| !roots.contains(id)).collect();
        swept.kept = ids_len - dead.len();
        // lstat + unlink of each dead blob, on the cores: ext4 serialises the directory update,
        // but frees each inode and its pages after it, in parallel (P6: gc of 2,500 blobs). On an
        // error the other thread finishes its part: what it deleted is then missing from the
        // report (only unreferenced blobs; the next gc drops their index records).
        // `blobs/` opened once: each blob is then one `fstatat` and one `unlinkat` on it.
        let Some(blobs) = fsx::Dir::open(&self.layout().blobs())? else {
            return Ok(swept);
        };
        let judged = crate::sys::par::map(&dead, 256, |id| {
            self.sweep_one(&blobs, id, lockless, dry_run)
        })?;
        for (id, verdict) in dead.into_iter().zip(judged) {
            match verdict {
                Verdict::Gone => {}
                Verdict::Foreign => swept.foreign.push(id.to_hex()),
                Verdict::Deferred(size) => swept.deferred.push((id, size)),
                Verdict::Removed(size) => swept.removed.push((id, size)),
            }
        }
        if !dry_run && !swept.removed.is_empty() {
            blobs.sync()?;
        }
        Ok(swept)
    }

    /// Deletes one unreferenced blob (or, dry, says it would): what the sweep found at its path.
    fn sweep_one(
        &self,
        blobs: &fsx::Dir,
        id: &Blake3,
        lockless: bool,
        dry_run: bool,
    ) -> Result<Verdict, StoreError> {
        let name = std::ffi::OsString::from(id.to_hex());
        let Some(meta) = blobs.stat(&name)? else {
            return Ok(Verdict::Gone);
        };
        if meta.is_dir() {
            // Not something publish makes; verify quarantines it, the sweep never recurses.
            return Ok(Verdict::Foreign);
        }
        if lockless && changed_within(&meta, LOCKLESS_GRACE) {
            return Ok(Verdict::Deferred(meta.len()));
        }
        if dry_run
            || blobs
                .remove_file(&name)
                .map_err(|e| StoreError::writing(self.root(), e))?
        {
            Ok(Verdict::Removed(meta.len()))
        } else {
            Ok(Verdict::Gone)
        }
    }
}

/// What [`Store::sweep_one`] found and did.
enum Verdict {
    /// Nothing there any more (another sweep was first).
    Gone,
    /// A directory: left alone.
    Foreign,
    /// Published within the lockless grace: left for later, with its size.
    Deferred(u64),
    /// Deleted (or, dry, would be), with its size.
    Removed(u64),
}

impl Store {
    /// Fails with [`StoreError::NotWritable`] unless this process may create and delete entries
    /// in every directory of the store, so maintenance refuses a read-only store up front rather
    /// than stopping halfway through its deletions.
    pub fn ensure_writable(&self) -> Result<(), StoreError> {
        let l = self.layout();
        for dir in [
            l.blobs(),
            l.tmp(),
            l.locks(),
            l.quarantine(),
            l.index(),
            l.snapshots(),
            l.uses(),
            l.pins(),
            l.referrers(),
        ] {
            if let Err(e) = fsx::may_write_in(&dir) {
                if e.kind() == std::io::ErrorKind::NotFound {
                    continue; // created on demand
                }
                return Err(StoreError::writing(
                    self.root(),
                    crate::sys::error::IoError::new("write into", &dir, e),
                ));
            }
        }
        Ok(())
    }
}

/// Whether the inode changed less than `window` ago. A ctime in the future (clock skew) counts by
/// its distance from now, as `partials::age` does for temp files, so it cannot defer a blob forever.
fn changed_within(meta: &fsx::Meta, window: Duration) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    now.abs_diff(meta.ctime()) < window.as_secs()
}
