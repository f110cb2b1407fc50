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
//! entry after writing; see docs/design.md#lockless-stores.

use crate::model::digest::Blake3;
use crate::model::entry::Record;
use crate::model::manifest::Manifest;
use crate::model::name::ModelName;
use crate::sys::lock::{Mode, Wait};

use super::{Store, StoreError};

impl Store {
    /// Every name the store holds (see `records`: one file per name in `names/`, plus the
    /// `manifest.toml` of a store whose upgrade to format 3 has not finished); a store that has
    /// never recorded a name has none.
    pub fn read_manifest(&self) -> Result<Manifest<Record>, StoreError> {
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
        edit: impl FnOnce(&mut Manifest<Record>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _guard = self.manifest_lock()?;
        self.settle()?;
        let mut manifest = self.read_manifest()?;
        let before = manifest.clone();
        let out = edit(&mut manifest)?;
        let changed: Vec<(&ModelName, &Record)> = manifest
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
                self.drop_referrers(name, &old.blobs());
            }
        }
        Ok(out)
    }

    /// Records `name -> entry`: one record written, whatever the number of names. The caller
    /// must hold `gc.lock` shared and have made the blob durable first (invariants I3, I4).
    pub(crate) fn record(
        &self,
        name: &ModelName,
        entry: Record,
    ) -> Result<Option<Record>, StoreError> {
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
                    .is_some_and(|e| e.tree == entry.tree && e.same_content(&entry))
                {
                    break;
                }
                self.write_record(name, &entry)?;
            }
        }
        Ok(previous.filter(|p| !p.same_content(&entry)))
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
        entry: &Record,
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
    fn drop_stale_referrers(&self, name: &ModelName, old: &Record, new: &Record) {
        let now = new.blobs();
        let stale: Vec<Blake3> = old.blobs().difference(&now).copied().collect();
        self.drop_referrers(name, &stale);
    }
}
