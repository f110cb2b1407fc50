//! The last stage of `verify`: each selected name's snapshot (docs/design.md#snapshots) must hold exactly the
//! name's blobs. One that does not (a file deleted, replaced or added by hand; a file still
//! linking the inode of a blob this run just quarantined) is built again from the blobs when they
//! are all present, and taken out of use when one is missing, so `path` never hands out a file
//! that is not its blob. Looks without a lock; repairs under `gc.lock` shared, like a publish (no
//! gc removes the blobs a rebuild links). A store this user may not write is verified and its
//! damage reported (`not_repaired`), never refused.

use crate::model::name::ModelName;
use crate::store::snapshot::{self, ModelFile, State};
use crate::store::{BlobState, Store, StoreError};

use super::{Error, Outcome};

pub(super) fn check_and_repair(
    store: &Store,
    names: &[ModelName],
    out: &mut Outcome,
) -> Result<(), Error> {
    let manifest = store.read_manifest()?;
    // Look first, without a lock: a sound store (or one this user may only read) is verified
    // without writing anything, not even a lock file.
    let mut damaged = Vec::new();
    for name in names {
        let Some(record) = manifest.models.get(name) else {
            continue;
        };
        // Names recorded before snapshots existed (a format-1 store not upgraded) have none.
        if record.tree.is_none() {
            continue;
        }
        let files = record.model.model_files();
        out.snapshots_checked += 1;
        if !is_sound(store, &files)? {
            damaged.push((name, files));
        }
    }
    if damaged.is_empty() {
        return Ok(());
    }
    let gc = match store.gc_shared() {
        Ok(gc) => gc,
        Err(StoreError::NotWritable { .. }) => {
            for (name, _) in damaged {
                out.not_repaired.push(format!(
                    "the snapshot of {name} does not hold exactly its blobs"
                ));
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    for (name, files) in damaged {
        // Again under the lock: another process may have repaired it meanwhile.
        if is_sound(store, &files)? {
            continue;
        }
        if all_present(store, &files)? {
            snapshot::ensure(store, &files)?;
            out.snapshots_rebuilt.push(name.clone());
        } else {
            snapshot::retire(store, &files)?;
            out.snapshots_retired.push(name.clone());
        }
    }
    drop(gc);
    Ok(())
}

/// Every blob of the model is present with its size.
fn all_present(store: &Store, files: &[ModelFile]) -> Result<bool, StoreError> {
    for f in files {
        if !matches!(
            store.blob_state(&f.blake3, Some(f.size))?,
            BlobState::Present { .. }
        ) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every blob is present and the snapshot holds exactly them. (`check` compares a symlink
/// farm's links by target only: presence is checked first.)
fn is_sound(store: &Store, files: &[ModelFile]) -> Result<bool, StoreError> {
    Ok(all_present(store, files)? && snapshot::check(store, files)? == State::Complete)
}
