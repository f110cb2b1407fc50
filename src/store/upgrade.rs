//! Opening a store brings it to the current format (docs/design.md#on-disk): every format
//! upgrade lives here, each done in place by the first process that opens the store with write
//! access, the work first and `store.toml`'s new format last, so a crash at any point leaves a
//! store that reads right and that the next writer finishes. A user who cannot write the store
//! reads it as it is.
//!
//! - format 1 → 2: a snapshot for every name ([`to_format_2`]);
//! - format 2 → 3: `manifest.toml` becomes one record per name in `names/` ([`to_format_3`]);
//! - format 3 → 4: the reverse index `referrers/`, marked complete ([`to_format_4`]).
//!
//! This is the top of the store's room: it builds on the records, snapshots and the publish
//! protocol, which know nothing of upgrades.

use std::path::Path;

use super::{inspect_root, lookup_group, InitOptions, RootState, Store, StoreError};
use crate::sys::fsx;

impl Store {
    /// Opens an existing store (never creates one) and brings it to the current format.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let mut store = Store::open_as_is(root)?;
        if store.config().format < 2 {
            to_format_2(&mut store)?;
        }
        if store.config().format == 2 {
            to_format_3(&mut store)?;
        }
        if store.config().format == 3 {
            to_format_4(&mut store)?;
        }
        // Reached through another mount than the one last probed (or probed never): probe again
        // and record it. Only a record: no operation depends on it (docs/design.md#filesystems),
        // so a failure here (a reader, a full disk) leaves the store usable as it was.
        let _ = store.capabilities();
        Ok(store)
    }

    /// Opens the store at `root`, creating a private one if there is none yet.
    pub fn open_or_create(root: &Path) -> Result<Store, StoreError> {
        match inspect_root(root)?.0 {
            RootState::Store => Store::open(root),
            RootState::Foreign => Err(StoreError::NotAStore { path: root.into() }),
            RootState::Missing | RootState::Empty | RootState::HalfMade => {
                Store::create(root, InitOptions::default())
            }
        }
    }

    /// `beaker store init`: creates a store with `opts`, or confirms an existing one with the same
    /// settings.
    pub fn init(root: &Path, opts: InitOptions) -> Result<Store, StoreError> {
        match inspect_root(root)?.0 {
            RootState::Foreign => Err(StoreError::NotAStore { path: root.into() }),
            RootState::Store => {
                if let Some(group) = &opts.group {
                    lookup_group(group)?;
                }
                let store = Store::open(root)?;
                if store.config().mode != opts.mode || store.config().locking != opts.locking {
                    return Err(StoreError::AlreadyInitialised {
                        path: root.into(),
                        existing: format!(
                            "{:?}, locking {:?}",
                            store.config().mode,
                            store.config().locking
                        )
                        .to_lowercase(),
                    });
                }
                Ok(store)
            }
            _ => Store::create(root, opts),
        }
    }
}

/// Upgrades a format-1 store to format 2 in place (docs/design.md#snapshots): builds the snapshot of every
/// recorded name whose blobs are all present and records its tree, then writes `format = 2` into
/// `store.toml` last. Idempotent and crash-safe: each name is recorded atomically, names that
/// already have a tree are skipped, and until `store.toml` says 2 the next writer redoes what is
/// left. Linear in the number of names: `manifest.toml` is parsed once, here, and each name is
/// recorded without reading it again (`publish::record_upgraded`; a name recorded meanwhile by
/// another process keeps its record). A name whose blob is missing is left as it is (it reads as missing; the next pull or add
/// records it with its snapshot). A user who cannot write the store keeps using it as format 1
/// (paths are then blob paths) and nothing changes.
fn to_format_2(store: &mut Store) -> Result<(), StoreError> {
    let done = (|| {
        let gc = store.gc_shared()?;
        let manifest = store.read_manifest()?;
        for (name, record) in manifest.models {
            if record.tree.is_some() {
                continue;
            }
            let mut present = true;
            for f in record.model.files() {
                present &= matches!(
                    store.blob_state(&f.blob.blake3, Some(f.blob.size))?,
                    crate::store::BlobState::Present { .. }
                );
            }
            if !present {
                continue;
            }
            crate::store::publish::record_upgraded(store, &name, record, &gc)?;
        }
        drop(gc);
        store.set_format(2)
    })();
    unless_read_only(done)
}

/// Upgrades a format-2 store to format 3 in place: under manifest.lock, every name of
/// `manifest.toml` becomes a record, `names/` is fsynced, `store.toml` says 3, and only then
/// is `manifest.toml` deleted. A crash before `format = 3` leaves a format-2 store whose
/// `manifest.toml` still names everything (a beaker of format 2 reads it as before); after
/// it, the records name everything and the next edit deletes what is left. A user who cannot
/// write the store keeps reading it as it is.
fn to_format_3(store: &mut Store) -> Result<(), StoreError> {
    unless_read_only((|| {
        let _guard = store.manifest_lock()?;
        store.records_from(&store.read_legacy()?.unwrap_or_default())?;
        store.set_format(3)?;
        store.finish_move()
    })())
}

/// Upgrades a format-3 store to format 4: under manifest.lock, every name's markers are
/// written (durably), then `referrers/.complete`, and only then does `store.toml` say 4. A
/// crash before that leaves a format-3 store with some markers, which a beaker of format 3
/// ignores and the next upgrade completes. A user who cannot write the store keeps reading
/// it as it is.
fn to_format_4(store: &mut Store) -> Result<(), StoreError> {
    unless_read_only((|| {
        let _guard = store.manifest_lock()?;
        store.settle()?;
        let manifest = store.read_manifest()?;
        store
            .make_dir(
                &store.layout().referrers(),
                store.config().dir_mode(),
                false,
            )
            .map_err(|e| StoreError::writing(store.root(), e))?;
        store.add_referrers(&manifest.models)?;
        store.mark_referrers_complete()?;
        fsx::sync_dir(&store.layout().top())?;
        store.set_format(super::FORMAT)
    })())
}

/// The end of a format upgrade: a store this user may not write is not an error (the upgrade is
/// left to a user who can; this one reads the store as it is), every other failure is.
pub(crate) fn unless_read_only(done: Result<(), StoreError>) -> Result<(), StoreError> {
    match done {
        Err(StoreError::NotWritable { .. }) => Ok(()),
        other => other,
    }
}
