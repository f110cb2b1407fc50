//! The store manifest: which names the store holds, i.e. the gc roots. Stored as one record per
//! name (`names/<key>.toml`, see `records`), so recording one name costs the same at any size.
//!
//! Every edit is made under `locks/manifest.lock`; each record is written to a temp file, fsynced
//! and renamed over the old one, then `names/` is fsynced, so readers (who take no lock) always
//! see complete records and a crash loses at most the edit in flight (invariant I3 is kept by the
//! callers: they add an entry only after the blob is durable).
//!
//! With `locking = "none"` there is no manifest lock: concurrent edits of one name are
//! last-writer-wins, so an entry can be lost (never a blob, never a wrong blob). Callers re-check and re-apply their own
//! entry after writing; see README "Deviations".

use super::sweep::Candidates;
use crate::digest::Blake3;
use crate::lock::{Mode, Wait};
use crate::manifest::{Entry, Manifest};
use crate::name::ModelName;

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
    pub(super) fn manifest_lock(&self) -> Result<crate::lock::LockGuard, StoreError> {
        self.lock(
            &self.layout().manifest_lock(),
            Mode::Exclusive,
            Wait::Forever,
            &mut |_| {},
        )
    }

    /// Under manifest.lock, a format-3 store whose upgrade was cut short (its `manifest.toml`
    /// still there) is finished first, so edits only ever touch records.
    fn settle(&self) -> Result<(), StoreError> {
        if self.config().format >= super::FORMAT {
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
        for (name, entry) in &manifest.models {
            if before.models.get(name) != Some(entry) {
                self.write_record(name, entry)?;
            }
        }
        for name in before.models.keys() {
            if !manifest.models.contains_key(name) {
                self.remove_record(name)?;
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

    /// `beaker store rm --dry-run`: what [`Store::remove`] would remove now (the names, and the
    /// blobs no remaining name uses, with their sizes), changing nothing. Unknown names are the
    /// same error as for `remove`.
    pub fn plan_remove(&self, names: &[ModelName]) -> Result<Removed, StoreError> {
        let mut manifest = self.read_manifest()?;
        let unknown = manifest.unknown(names);
        if !unknown.is_empty() {
            return Err(StoreError::UnknownNames { names: unknown });
        }
        let removed: Vec<(ModelName, Entry)> = names
            .iter()
            .filter_map(|n| manifest.models.remove(n).map(|e| (n.clone(), e)))
            .collect();
        let roots = manifest.roots();
        let mut freed = std::collections::BTreeMap::new();
        for (name, entry) in &removed {
            for f in entry.files(name) {
                let Some(id) = f.blake3.filter(|id| !roots.contains(id)) else {
                    continue;
                };
                if let super::BlobState::Present { size } = self.blob_state(&id, None)? {
                    freed.insert(id, size);
                }
            }
        }
        Ok(Removed {
            names: removed,
            freed: freed.into_iter().collect(),
        })
    }

    /// `beaker store rm`: removes the names (all or nothing: an unknown name changes nothing), then
    /// deletes the blobs no remaining name references, with the same sweep gc uses.
    pub fn remove(&self, names: &[ModelName]) -> Result<Removed, StoreError> {
        // A name that is not recorded now fails before any lock is taken, so a typo leaves the
        // store byte-for-byte unchanged (taking a lock rewrites its holder record). The check
        // under the lock below stays: a concurrent rm may remove the name in between.
        self.plan_remove(names)?;
        // gc.lock exclusive for the whole operation: no publisher can be between "blob is
        // there" and "name recorded" while we decide which blobs are unreferenced (I4).
        let gc = self.gc_exclusive(&mut |_| {})?;
        let removed = {
            let _guard = self.manifest_lock()?;
            self.settle()?;
            let mut found = Vec::with_capacity(names.len());
            let mut unknown = Vec::new();
            for n in names {
                match self.read_entry(n)? {
                    Some(e) => found.push((n.clone(), e)),
                    None => unknown.push(n.to_string()),
                }
            }
            if !unknown.is_empty() {
                return Err(StoreError::UnknownNames { names: unknown });
            }
            found.dedup_by(|a, b| a.0 == b.0);
            for (n, _) in &found {
                self.remove_record(n)?;
            }
            found
        };
        let now = self.read_manifest()?;
        let roots = now.roots();
        crate::snapshot::sweep(self, &now.trees(), &gc, false)?;
        let candidates: Vec<Blake3> = removed
            .iter()
            .flat_map(|(n, e)| e.files(n))
            .filter_map(|f| f.blake3)
            .collect();
        let swept = self.sweep_blobs(&gc, &roots, Candidates::Only(&candidates), false)?;
        let gone: Vec<ModelName> = removed.iter().map(|(n, _)| n.clone()).collect();
        crate::uses::forget(self, &gone);
        Ok(Removed {
            names: removed,
            freed: swept.removed,
        })
    }
}
