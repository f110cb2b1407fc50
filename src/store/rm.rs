//! `beaker store rm`: removes names, then the snapshots and blobs no remaining name uses
//! (docs/design.md#maintenance). Which blobs and trees other names still use comes from the
//! reverse index `referrers/` where it is trusted (reading only the records of the names that
//! share a blob), else from every record (and then the index is rebuilt).
//!
//! Keeps **I4**: the decision and the sweep happen under `gc.lock` held exclusively, so no
//! publisher is between "blob is there" and "name recorded" meanwhile.

use std::collections::BTreeSet;

use super::sweep::Candidates;
use super::{Store, StoreError};
use crate::model::digest::Blake3;
use crate::model::entry::Record;
use crate::model::name::ModelName;
use crate::model::tree::TreeId;

/// What `rm` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub names: Vec<(ModelName, Record)>,
    /// Blobs that no name references any more and were deleted, with their sizes.
    pub freed: Vec<(Blake3, u64)>,
}

impl Store {
    /// The records of `names` (each once, in order); [`StoreError::UnknownNames`] lists those the
    /// store does not hold. Reads only these records.
    fn entries_of(&self, names: &[ModelName]) -> Result<Vec<(ModelName, Record)>, StoreError> {
        let mut found: Vec<(ModelName, Record)> = Vec::with_capacity(names.len());
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
    fn orphans(&self, removed: &[(ModelName, Record)], tidy: bool) -> Result<Orphans, StoreError> {
        let names: BTreeSet<ModelName> = removed.iter().map(|(n, _)| n.clone()).collect();
        let blobs: BTreeSet<Blake3> = removed.iter().flat_map(|(_, e)| e.blobs()).collect();
        let trees: BTreeSet<TreeId> = removed.iter().filter_map(|(_, e)| e.tree).collect();
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
                (rest.roots(), rest.trees())
            }
        };
        Ok(Orphans {
            blobs: blobs.difference(&used_blobs).copied().collect(),
            trees: trees.difference(&used_trees).copied().collect(),
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
                self.drop_referrers(n, &e.blobs());
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
