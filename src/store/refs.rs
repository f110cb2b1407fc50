//! The store manifest (`<store>/manifest.toml`): which names the store holds, i.e. the gc roots.
//!
//! Every edit is read-modify-write under `locks/manifest.lock`, written to a temp file, fsynced and
//! renamed over the old one, then the directory is fsynced, so readers (who take no lock) always see
//! a complete manifest and a crash loses at most the edit in flight (invariant I3 is kept by the
//! callers: they add an entry only after the blob is durable).
//!
//! With `locking = "none"` there is no manifest lock: concurrent edits are last-writer-wins, so an
//! entry can be lost (never a blob, never a wrong blob). Callers re-check and re-apply their own
//! entry after writing; see README "Deviations".

use super::sweep::Candidates;
use crate::digest::Blake3;
use crate::error::IoError;
use crate::fsx;
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
    /// Reads the store manifest; a store that has never recorded a name has an empty one.
    pub fn read_manifest(&self) -> Result<Manifest, StoreError> {
        let path = self.layout().manifest();
        match fsx::read_to_string(&path) {
            Ok(text) => Ok(Manifest::parse(&text, &path)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies `edit` to the store manifest under `locks/manifest.lock` and writes it back
    /// atomically if it changed.
    pub fn edit_manifest<T>(
        &self,
        edit: impl FnOnce(&mut Manifest) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Lock order: manifest.lock is the last lock taken (after a blob lock and gc.lock, if
        // the caller holds them); `edit` must take no lock.
        let _guard = self.lock(
            &self.layout().manifest_lock(),
            Mode::Exclusive,
            Wait::Forever,
            &mut |_| {},
        )?;
        let mut manifest = self.read_manifest()?;
        let before = manifest.clone();
        let out = edit(&mut manifest)?;
        if manifest != before {
            self.write_manifest(&manifest)?;
        }
        Ok(out)
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let layout = self.layout();
        let body = manifest.to_toml().map_err(|e| {
            IoError::new(
                "write",
                layout.manifest(),
                std::io::Error::other(e.to_string()),
            )
        })?;
        let text = format!(
            "# What this store holds: name -> blob. Written by beaker under locks/manifest.lock;\n\
             # these entries are the gc roots. Use `beaker store rm` rather than editing by hand.\n{body}"
        );
        fsx::write_replace(
            &layout.tmp(),
            &layout.manifest(),
            text.as_bytes(),
            self.config().file_mode(),
        )
        .map_err(|e| StoreError::writing(self.root(), e))
    }

    /// Records `name -> entry`. The caller must hold `gc.lock` shared and have made the blob
    /// durable first (invariants I3, I4).
    pub(crate) fn record(
        &self,
        name: &ModelName,
        entry: Entry,
    ) -> Result<Option<Entry>, StoreError> {
        let previous = self.edit_manifest(|m| Ok(m.models.insert(name.clone(), entry.clone())))?;
        if self.config().locking == super::Locking::None {
            // No manifest lock: a concurrent writer may have overwritten our edit. Re-apply until
            // a read-back shows it (bounded; each round is one small file rewrite).
            for _ in 0..8 {
                let now = self.read_manifest()?;
                if now
                    .models
                    .get(name)
                    .is_some_and(|e| e.tree == entry.tree && e.same_content(&entry, name))
                {
                    break;
                }
                self.edit_manifest(|m| Ok(m.models.insert(name.clone(), entry.clone())))?;
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
        let removed = self.edit_manifest(|m| {
            let unknown = m.unknown(names);
            if !unknown.is_empty() {
                return Err(StoreError::UnknownNames { names: unknown });
            }
            Ok(names
                .iter()
                .filter_map(|n| m.models.remove(n).map(|e| (n.clone(), e)))
                .collect::<Vec<_>>())
        })?;
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
