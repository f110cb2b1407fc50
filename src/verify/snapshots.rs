//! The last stage of `verify`: each selected name's snapshot (DESIGN §13) must hold exactly the
//! name's blobs. One that does not (a file deleted, replaced or added by hand; a file still
//! linking the inode of a blob this run just quarantined) is built again from the blobs when they
//! are all present, and taken out of use when one is missing, so `path` never hands out a file
//! that is not its blob. Runs under `gc.lock` shared, like a publish: no gc removes the blobs a
//! rebuild links.

use crate::name::ModelName;
use crate::snapshot::{self, State};
use crate::store::{BlobState, Store};

use super::{Error, Outcome};

pub(super) fn check_and_repair(
    store: &Store,
    names: &[ModelName],
    out: &mut Outcome,
) -> Result<(), Error> {
    let manifest = store.read_manifest()?;
    let gc = store.gc_shared()?;
    for name in names {
        let Some(entry) = manifest.models.get(name) else {
            continue;
        };
        // Names recorded before snapshots existed (a format-1 store not upgraded) have none.
        if entry.tree.is_none() {
            continue;
        }
        let Some(files) = entry.model_files(name) else {
            continue;
        };
        out.snapshots_checked += 1;
        let mut present = true;
        for f in &files {
            present &= matches!(
                store.blob_state(&f.blake3, Some(f.size))?,
                BlobState::Present { .. }
            );
        }
        // `check` compares a symlink farm's links by target only: presence is checked above.
        if present && snapshot::check(store, &files)? == State::Complete {
            continue;
        }
        if present {
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
