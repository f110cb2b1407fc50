//! The store manifest: which names the store holds, i.e. the gc roots. Stored as one record per
//! name (`names/<key>.toml`, see `records`), so recording one name costs the same at any size.
//!
//! Every edit is made under `locks/manifest.lock`; each record is written to a temp file, fsynced
//! and renamed over the old one, then `names/` is fsynced, so readers (who take no lock) always
//! see complete records and a crash loses at most the edit in flight (invariant I3 is kept by the
//! callers: they add an entry only after the blob is durable). Before a record is written, its
//! blobs list its name in `referrers/` (see `referrers`); `rm` reads that index to learn which
//! blobs other names still use.
//!
//! With `locking = "none"` there is no manifest lock: concurrent edits of one name are
//! last-writer-wins, so an entry can be lost (never a blob, never a wrong blob). Callers re-check and re-apply their own
//! entry after writing; see README "Deviations".

use std::collections::BTreeSet;

use super::referrers::blobs_of;
use super::sweep::Candidates;
use crate::model::digest::Blake3;
use crate::model::manifest::{Entry, Manifest};
use crate::model::name::ModelName;
use crate::store::snapshot::TreeId;
use crate::sys::lock::{Mode, Wait};

use super::{Store, StoreError};

/// What `rm` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub names: Vec<(ModelName, Entry)>,
    /// Blobs that no name references any more and were deleted, with their sizes.
    pub freed: Vec<(Blake3, u64)>,
}

impl Store {
    /// Every name the store holds (see `records`: one file per name in `names/`, plus the
    /// `manifest.toml` of a store whose upgrade to format 3 has not finished); a store that has
    /// never recorded a name has none.
    pub fn read_manifest(&self) -> Result<Manifest, StoreError> {
        self.read_records()
    }

    /// Takes `locks/manifest.lock`. Lock order: it is the last lock taken (after a blob lock and
    /// gc.lock, if the caller holds them); nothing is locked while it is held.
    pub(super) fn manifest_lock(&self) -> Result<crate::sys::lock::LockGuard, StoreError> {
        self.lock(
            &self.layout().manifest_lock(),
            Mode::Exclusive,
            Wait::Forever,
            &mut |_| {},
        )
    }

    /// Under manifest.lock, a format-3 store whose upgrade was cut short (its `manifest.toml`
    /// still there) is finished first, so edits only ever touch records.
    pub(super) fn settle(&self) -> Result<(), StoreError> {
        if self.config().format >= 3 {
            self.finish_move()?;
        }
        Ok(())
    }

    /// Applies `edit` to the whole store manifest under `locks/manifest.lock`, then writes the
    /// records of the names it added or changed and removes those of the names it dropped (each
    /// atomically). Reads every record: for edits of one name, [`Store::record`] costs the same
    /// at any number of names.
    pub fn edit_manifest<T>(
        &self,
        edit: impl FnOnce(&mut Manifest) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _guard = self.manifest_lock()?;
        self.settle()?;
        let mut manifest = self.read_manifest()?;
        let before = manifest.clone();
        let out = edit(&mut manifest)?;
        let changed: Vec<(&ModelName, &Entry)> = manifest
            .models
            .iter()
            .filter(|(name, entry)| before.models.get(*name) != Some(*entry))
            .collect();
        // All the markers first, each directory fsynced once (one name at a time would fsync
        // per name: an edit of thousands of names).
        self.add_referrers(changed.iter().copied())?;
        for (name, entry) in changed {
            self.write_record(name, entry)?;
            if let Some(old) = before.models.get(name) {
                self.drop_stale_referrers(name, old, entry);
            }
        }
        for (name, old) in &before.models {
            if !manifest.models.contains_key(name) {
                self.remove_record(name)?;
                self.drop_referrers(name, &blobs_of(name, old));
            }
        }
        Ok(out)
    }

    /// Records `name -> entry`: one record written, whatever the number of names. The caller
    /// must hold `gc.lock` shared and have made the blob durable first (invariants I3, I4).
    pub(crate) fn record(
        &self,
        name: &ModelName,
        entry: Entry,
    ) -> Result<Option<Entry>, StoreError> {
        let previous = {
            let _guard = self.manifest_lock()?;
            self.settle()?;
            let previous = self.read_entry(name)?;
            if previous.as_ref() != Some(&entry) {
                self.write_record(name, &entry)?;
                if let Some(old) = &previous {
                    self.drop_stale_referrers(name, old, &entry);
                }
            }
            previous
        };
        if self.config().locking == super::Locking::None {
            // No manifest lock: a concurrent writer of the same name may have replaced our
            // record. Re-apply until a read-back shows it (bounded; each round is one small file).
            for _ in 0..8 {
                if self
                    .read_entry(name)?
                    .is_some_and(|e| e.tree == entry.tree && e.same_content(&entry, name))
                {
                    break;
                }
                self.write_record(name, &entry)?;
            }
        }
        Ok(previous.filter(|p| !p.same_content(&entry, name)))
    }

    /// The format-1 upgrade's record of `name -> entry` (`crate::store::snapshot::upgrade`): like
    /// [`Store::record`], but it never reads `manifest.toml`, so upgrading N names writes N
    /// records instead of parsing all N names N times. A name that has a record already keeps
    /// it (one written by an earlier run of the upgrade, or by an add or pull since: a record is
    /// newer than `manifest.toml`'s entry and wins, as in `upgrade_to_records`). Returns whether
    /// it wrote one. The caller holds `gc.lock` shared and the blobs are durable (I3, I4).
    pub(crate) fn record_unless_recorded(
        &self,
        name: &ModelName,
        entry: &Entry,
    ) -> Result<bool, StoreError> {
        let _guard = self.manifest_lock()?;
        self.settle()?;
        if self.read_record(name)?.is_some() {
            return Ok(false);
        }
        self.write_record(name, entry)?;
        Ok(true)
    }

    /// The markers of blobs `old` used and `new` does not (a name re-pointed to other content).
    fn drop_stale_referrers(&self, name: &ModelName, old: &Entry, new: &Entry) {
        let now = blobs_of(name, new);
        let stale: Vec<Blake3> = blobs_of(name, old).difference(&now).copied().collect();
        self.drop_referrers(name, &stale);
    }

    /// The records of `names` (each once, in order); [`StoreError::UnknownNames`] lists those the
    /// store does not hold. Reads only these records.
    fn entries_of(&self, names: &[ModelName]) -> Result<Vec<(ModelName, Entry)>, StoreError> {
        let mut found: Vec<(ModelName, Entry)> = Vec::with_capacity(names.len());
        let mut unknown = Vec::new();
        for n in names {
            if found.iter().any(|(f, _)| f == n) {
                continue;
            }
            match self.read_entry(n)? {
                Some(e) => found.push((n.clone(), e)),
                None => unknown.push(n.to_string()),
            }
        }
        if !unknown.is_empty() {
            return Err(StoreError::UnknownNames { names: unknown });
        }
        Ok(found)
    }

    /// The blobs and snapshots of `removed` that no other name uses. From the index where it is
    /// trusted (reading only the records of names that share a blob; `tidy` drops stale markers
    /// on the way, under manifest.lock), else from every record (and then, when `tidy`, the
    /// index is rebuilt from them).
    fn orphans(&self, removed: &[(ModelName, Entry)], tidy: bool) -> Result<Orphans, StoreError> {
        let names: BTreeSet<ModelName> = removed.iter().map(|(n, _)| n.clone()).collect();
        let blobs: BTreeSet<Blake3> = removed.iter().flat_map(|(n, e)| blobs_of(n, e)).collect();
        let trees: BTreeSet<Blake3> = removed.iter().filter_map(|(_, e)| e.tree).collect();
        let from_index = match self.referrers_trusted() {
            true => self.still_used(&names, &blobs, tidy)?,
            false => None,
        };
        let (used_blobs, used_trees) = match from_index {
            Some(used) => used,
            None => {
                let mut rest = self.read_manifest()?;
                rest.models.retain(|n, _| !names.contains(n));
                if tidy {
                    // Every record is read anyway: make the index whole again (and say so), so
                    // the next `rm` reads only the records it needs.
                    self.rebuild_referrers(&rest)?;
                }
                let trees = rest.trees().into_iter().map(|t| t.0).collect();
                (rest.roots(), trees)
            }
        };
        Ok(Orphans {
            blobs: blobs.difference(&used_blobs).copied().collect(),
            trees: trees.difference(&used_trees).map(|t| TreeId(*t)).collect(),
        })
    }

    /// `beaker store rm --dry-run`: what [`Store::remove`] would remove now (the names, and the
    /// blobs no remaining name uses, with their sizes), changing nothing. Unknown names are the
    /// same error as for `remove`.
    pub fn plan_remove(&self, names: &[ModelName]) -> Result<Removed, StoreError> {
        let removed = self.entries_of(names)?;
        let orphans = self.orphans(&removed, false)?;
        let mut freed = Vec::new();
        for id in orphans.blobs {
            if let super::BlobState::Present { size } = self.blob_state(&id, None)? {
                freed.push((id, size));
            }
        }
        Ok(Removed {
            names: removed,
            freed,
        })
    }

    /// `beaker store rm`: removes the names (all or nothing: an unknown name changes nothing), then
    /// deletes the snapshots and blobs no remaining name uses. Reads the records of the names
    /// given and of the names that share their blobs (`referrers`), not every record.
    pub fn remove(&self, names: &[ModelName]) -> Result<Removed, StoreError> {
        // A name that is not recorded now fails before any lock is taken, so a typo leaves the
        // store byte-for-byte unchanged (taking a lock rewrites its holder record). The check
        // under the lock below stays: a concurrent rm may remove the name in between.
        self.entries_of(names)?;
        // gc.lock exclusive for the whole operation: no publisher can be between "blob is
        // there" and "name recorded" while we decide which blobs are unreferenced (I4).
        let gc = self.gc_exclusive(&mut |_| {})?;
        let (removed, orphans) = {
            let _guard = self.manifest_lock()?;
            self.settle()?;
            let found = self.entries_of(names)?;
            for (n, _) in &found {
                self.remove_record(n)?;
            }
            let orphans = self.orphans(&found, true)?;
            for (n, e) in &found {
                self.drop_referrers(n, &blobs_of(n, e));
            }
            (found, orphans)
        };
        crate::store::snapshot::remove_unused(self, &orphans.trees, &gc)?;
        let candidates: Vec<Blake3> = orphans.blobs.into_iter().collect();
        let swept =
            self.sweep_blobs(&gc, &BTreeSet::new(), Candidates::Only(&candidates), false)?;
        self.forget_referrers(swept.removed.iter().map(|(id, _)| *id));
        let gone: Vec<ModelName> = removed.iter().map(|(n, _)| n.clone()).collect();
        crate::store::uses::forget(self, &gone);
        Ok(Removed {
            names: removed,
            freed: swept.removed,
        })
    }
}

/// What removing some names leaves unused.
struct Orphans {
    blobs: BTreeSet<Blake3>,
    trees: BTreeSet<TreeId>,
}
