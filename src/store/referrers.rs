//! The reverse index of the store manifest (store format 4): `referrers/<blob>/<key>`, an empty
//! file for each name whose record lists that blob (`<key>` is the name with `/` spelled `+`, as
//! in `names/`). It lets `rm` decide which blobs and snapshots its names leave unused by reading
//! the records of the few names that share them, instead of every record in the store (issue 14,
//! P8: `rm` at 20,000 names).
//!
//! **It may over-state, never under-state** (in a store with locks). A marker is made durable
//! (file created, its directory fsynced) *before* the record that needs it is written, and removed
//! only *after* the record that needed it is gone or changed; a crash in between leaves a marker
//! without a record, never a record without its markers. So the names listed under a blob are a
//! superset of the names that use it, and a reader checks each against its record (dropping the
//! stale ones) before believing it. Nothing but `rm` trusts the index: gc, verify and eviction
//! read every record as before.
//!
//! **Where it is not trusted.** With `locking = "none"` writers are not ordered against `rm`, so
//! `rm` reads every record there, as before format 4. A store upgraded from format 3 gets its
//! index built by the first writer that opens it ([`Store::upgrade_to_referrers`]), under
//! `manifest.lock`, before `store.toml` says 4; a beaker of format 3 refuses a store of format 4,
//! so from then on every writer keeps the index.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use crate::model::digest::Blake3;
use crate::model::entry::Record;
use crate::model::name::ModelName;
use crate::model::tree::TreeId;
use crate::sys::error::{os_error_is, IoError, Os};
use crate::sys::fsx::{self, Rooted};

use super::{Locking, Store, StoreError};

/// Whether an I/O error says that something on the way is not a directory: a list (or
/// `referrers/` itself) replaced by a symlink or a file, which is never followed.
fn not_a_dir(e: &IoError) -> bool {
    os_error_is(&e.source, Os::SymlinkInTheWay) || os_error_is(&e.source, Os::NotADirectory)
}

/// The blobs, and the trees (as their ids), that names other than those removed still use.
pub(super) type Used = (BTreeSet<Blake3>, BTreeSet<TreeId>);

impl Store {
    /// Whether `rm` may trust the index: the store is of format 4 or later (every writer keeps
    /// it), has locks (writers are ordered against `rm` by gc.lock and manifest.lock), and the
    /// index says it is complete (`referrers/.complete`, written last when it was built, and
    /// gone with a `referrers/` that was deleted or a list that was damaged).
    pub(super) fn referrers_trusted(&self) -> bool {
        self.config().format >= 4
            && self.config().locking != Locking::None
            && fsx::stat(&self.layout().referrers_complete())
                .is_ok_and(|m| m.is_some_and(|m| m.is_file()))
    }

    /// Writes `referrers/.complete` (durably): every name of the store is listed under each of
    /// its blobs. The caller holds manifest.lock and has just made that so.
    pub(super) fn mark_referrers_complete(&self) -> Result<(), StoreError> {
        let at = self.layout().referrers_complete();
        match fsx::create_exclusive(&at, self.config().file_mode()) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::writing(self.root(), e)),
        }
        Ok(fsx::sync_dir(&self.layout().referrers())?)
    }

    /// The index lost markers (a list that was not a directory was replaced): until it is
    /// rebuilt (by the next `rm`, which then reads every record, or by `verify`), `rm` does not
    /// trust it. Best effort: a marker that cannot be removed leaves `rm` trusting the lists it
    /// can read, which each fail safe (an unreadable list is not trusted).
    fn mark_referrers_incomplete(&self) {
        let _ = fsx::remove_file_if_exists(&self.layout().referrers_complete());
    }

    /// Makes sure each blob of each entry lists its name, durably, before the records are written:
    /// creates the missing markers (and their blob's directory), then fsyncs every directory it
    /// changed once. A marker already there costs one failed `open`. A list that is not a
    /// directory (a symlink or a file a member planted) is removed, never followed, and made
    /// anew; the index is then no longer trusted as complete until it is rebuilt.
    pub(super) fn add_referrers<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a ModelName, &'a Record)>,
    ) -> Result<(), StoreError> {
        let layout = self.layout();
        let (dir_mode, file_mode) = (self.config().dir_mode(), self.config().file_mode());
        let w = |e| StoreError::writing(self.root(), e);
        let mut changed: BTreeSet<Rooted> = BTreeSet::new();
        for (name, entry) in entries {
            for id in entry.blobs() {
                let marker = layout.referrer(&id, name);
                match fsx::create_exclusive(&marker, file_mode) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) if e.kind() == io::ErrorKind::NotFound || not_a_dir(&e) => {
                        // First name of this blob, a store whose referrers/ was deleted, or a
                        // list (or referrers/ itself) that is not a directory.
                        self.repair_dirs(&id)?;
                        self.make_dir(&layout.referrers(), dir_mode, false)
                            .map_err(w)?;
                        self.create_list(&id, &marker)?;
                        changed.insert(layout.referrers());
                    }
                    Err(e) => return Err(w(e)),
                }
                changed.insert(layout.referrers_of(&id));
            }
        }
        for dir in &changed {
            fsx::sync_dir(dir)?;
        }
        Ok(())
    }

    /// Removes what stands where `referrers/` or blob `id`'s list should be a directory (a
    /// symlink or a file: unlinked, never followed), and marks the index incomplete if it did.
    fn repair_dirs(&self, id: &Blake3) -> Result<(), StoreError> {
        for at in [self.layout().referrers(), self.layout().referrers_of(id)] {
            match fsx::stat(&at) {
                Ok(Some(m)) if m.is_dir() => {}
                Ok(None) => {}
                Ok(Some(_)) => {
                    self.mark_referrers_incomplete();
                    fsx::remove_file_if_exists(&at)
                        .map_err(|e| StoreError::writing(self.root(), e))?;
                }
                Err(e) => return Err(StoreError::writing(self.root(), e)),
            }
        }
        Ok(())
    }

    /// Creates blob `id`'s list holding `marker`, so that it appears with its mode and its first
    /// marker already there: built in `tmp/` (`refs-<hex>.….d`, swept by gc if left), fsynced,
    /// then moved into place without clobbering. (A list made in place would be, for an instant,
    /// a directory of the umask's mode that another member of a group store cannot write in.)
    /// If another process made the list meanwhile, the marker goes into that one.
    fn create_list(&self, id: &Blake3, marker: &Rooted) -> Result<(), StoreError> {
        let layout = self.layout();
        let (dir_mode, file_mode) = (self.config().dir_mode(), self.config().file_mode());
        let w = |e| StoreError::writing(self.root(), e);
        let key = marker.file_name().unwrap_or_default();
        let staging = fsx::unique_path(&layout.tmp(), &format!("refs-{}", id.to_hex()), "d");
        self.make_dir(&staging, dir_mode, true).map_err(w)?;
        let built = fsx::create_exclusive(&staging.join(key), file_mode)
            .and_then(|_| fsx::sync_dir(&staging))
            .and_then(|()| fsx::persist_dir_noclobber(&staging, &layout.referrers_of(id)));
        match built {
            Ok(fsx::Persisted::Created) => Ok(()),
            Ok(fsx::Persisted::AlreadyExists) => {
                let _ = fsx::remove_tree(&staging);
                match fsx::create_exclusive(marker, file_mode) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                    Err(e) => Err(w(e)),
                }
            }
            Err(e) => {
                let _ = fsx::remove_tree(&staging);
                Err(w(e))
            }
        }
    }

    /// Drops `name` from the lists of the blobs in `blobs`, after its record no longer uses them.
    /// Best effort: a marker left behind only over-states, and the next `rm` of a name sharing
    /// the blob drops it.
    pub(super) fn drop_referrers<'a>(
        &self,
        name: &ModelName,
        blobs: impl IntoIterator<Item = &'a Blake3>,
    ) {
        for id in blobs {
            let _ = fsx::remove_file_if_exists(&self.layout().referrer(id, name));
        }
    }

    /// The names whose markers say they use blob `id` (a superset of those that do: check each
    /// against its record); `None` when the list is not a directory (a symlink or a file where
    /// it should be): it is not read through, and the caller does not trust the index for this
    /// blob. Entries that are not a name's key are ignored, like foreign files in `names/`.
    pub(super) fn listed_referrers(
        &self,
        id: &Blake3,
    ) -> Result<Option<Vec<ModelName>>, StoreError> {
        let names = match fsx::list(&self.layout().referrers_of(id)) {
            Ok(names) => names.unwrap_or_default(),
            Err(e) if not_a_dir(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(
            names
                .iter()
                .filter_map(|n| n.to_str().and_then(super::name_of_record))
                .collect(),
        ))
    }

    /// Which of `blobs` and `trees` a name other than those in `removed` still uses, read from
    /// the index: for each blob, the records of the names listed under it. A listed name whose
    /// record no longer uses the blob is dropped from its list when `tidy` (the caller holds
    /// manifest.lock). Only where [`Store::referrers_trusted`]; `None` when a list turns out not
    /// to be a directory (then the caller reads every record).
    pub(super) fn still_used(
        &self,
        removed: &BTreeSet<ModelName>,
        blobs: &BTreeSet<Blake3>,
        tidy: bool,
    ) -> Result<Option<Used>, StoreError> {
        let mut records: BTreeMap<ModelName, Option<Record>> = BTreeMap::new();
        let (mut used_blobs, mut used_trees) = (BTreeSet::new(), BTreeSet::new());
        for id in blobs {
            let Some(listed) = self.listed_referrers(id)? else {
                return Ok(None);
            };
            for name in listed {
                if removed.contains(&name) {
                    continue;
                }
                let entry = match records.get(&name) {
                    Some(e) => e.clone(),
                    None => {
                        let e = self.read_entry(&name)?;
                        records.insert(name.clone(), e.clone());
                        e
                    }
                };
                match entry {
                    Some(e) if e.model.blobs().any(|b| b == *id) => {
                        used_blobs.insert(*id);
                        used_trees.extend(e.tree);
                    }
                    _ if tidy => self.drop_referrers(&name, [id]),
                    _ => {}
                }
            }
        }
        Ok(Some((used_blobs, used_trees)))
    }

    /// Removes the lists of blobs that were deleted (their markers can only be stale).
    pub(super) fn forget_referrers(&self, blobs: impl IntoIterator<Item = Blake3>) {
        for id in blobs {
            let _ = fsx::remove_tree(&self.layout().referrers_of(&id));
        }
    }

    /// gc: removes the lists of blobs no name uses (`roots` is every blob a record lists, read
    /// under gc.lock held exclusively): their markers are stale or their blob is gone. Returns how
    /// many lists went. Not in a lockless store, where a writer may be adding a marker right now.
    pub(crate) fn sweep_referrers(
        &self,
        _proof: &super::GcExclusive,
        roots: &BTreeSet<Blake3>,
        dry_run: bool,
    ) -> Result<usize, StoreError> {
        if dry_run || self.config().locking == Locking::None {
            return Ok(0);
        }
        let dir = self.layout().referrers();
        let mut gone = 0;
        for name in super::inspect::names_in(&dir)? {
            let Ok(id) = Blake3::from_hex(&name) else {
                continue;
            };
            if !roots.contains(&id) {
                match fsx::remove_tree(&dir.join(&name)) {
                    Ok(()) => gone += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::writing(self.root(), e)),
                }
            }
        }
        Ok(gone)
    }

    /// verify: lists every name of `names` again under each blob its record uses where the index
    /// lost it (an index that under-states would let `rm` delete a blob another name uses), and
    /// replaces a list that is not a directory; returns `"NAME BLAKE3"` for each. When `names`
    /// is every name of the store, the index is then complete and says so
    /// (`referrers/.complete`). Looks without a lock and takes manifest.lock only to repair, so
    /// a store this user may only read is verified, not refused. Nothing to do before format 4.
    pub fn repair_referrers(
        &self,
        names: &[ModelName],
        all: bool,
    ) -> Result<Vec<String>, StoreError> {
        if self.config().format < 4 {
            return Ok(Vec::new());
        }
        if self.lost_referrers(names)?.is_empty() && (!all || self.referrers_trusted()) {
            return Ok(Vec::new());
        }
        let _guard = self.manifest_lock()?;
        let lost = self.lost_referrers(names)?;
        let said = lost
            .iter()
            .flat_map(|(name, _, ids)| ids.iter().map(move |id| format!("{name} {id}")))
            .collect();
        self.add_referrers(lost.iter().map(|(n, e, _)| (n, e)))?;
        if all && self.config().locking != Locking::None {
            self.mark_referrers_complete()?;
        }
        Ok(said)
    }

    /// `"NAME BLAKE3"` for each name of `names` that the list of a blob it uses does not hold
    /// (what [`Store::repair_referrers`] would repair), looked at without a lock.
    pub fn referrers_lost(&self, names: &[ModelName]) -> Result<Vec<String>, StoreError> {
        if self.config().format < 4 {
            return Ok(Vec::new());
        }
        Ok(self
            .lost_referrers(names)?
            .iter()
            .flat_map(|(name, _, ids)| ids.iter().map(move |id| format!("{name} {id}")))
            .collect())
    }

    /// The names of `names` (with their records) missing from the list of a blob they use, and
    /// those blobs.
    #[allow(clippy::type_complexity)]
    fn lost_referrers(
        &self,
        names: &[ModelName],
    ) -> Result<Vec<(ModelName, Record, Vec<Blake3>)>, StoreError> {
        let mut lost = Vec::new();
        for name in names {
            let Some(entry) = self.read_entry(name)? else {
                continue;
            };
            let mut missing = Vec::new();
            for id in entry.blobs() {
                match fsx::stat(&self.layout().referrer(&id, name)) {
                    Ok(Some(_)) => {}
                    Ok(None) => missing.push(id),
                    Err(e) if not_a_dir(&e) => missing.push(id),
                    Err(e) => return Err(e.into()),
                }
            }
            if !missing.is_empty() {
                lost.push((name.clone(), entry, missing));
            }
        }
        Ok(lost)
    }

    /// `rm` found the index untrusted and read every record (`manifest`, read under
    /// manifest.lock, which the caller holds): lists every name again where it is missing, then
    /// marks the index complete, so the next `rm` reads only what it needs. Only in a store with
    /// locks (elsewhere the index is never trusted).
    pub(super) fn rebuild_referrers(
        &self,
        manifest: &crate::model::manifest::Manifest<Record>,
    ) -> Result<(), StoreError> {
        if self.config().format < 4 || self.config().locking == Locking::None {
            return Ok(());
        }
        let names: Vec<ModelName> = manifest.models.keys().cloned().collect();
        let lost = self.lost_referrers(&names)?;
        self.add_referrers(lost.iter().map(|(n, e, _)| (n, e)))?;
        self.mark_referrers_complete()
    }
}

#[cfg(test)]
mod tests {
    // Tests plant and inspect index files and turn stores back into format 3 with raw std::fs.
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use crate::store::{Config, InitOptions};
    use crate::sys::progress::Silent;
    use std::path::{Path, PathBuf};

    fn name(n: &str) -> ModelName {
        ModelName::new(n).unwrap()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        store: Store,
    }

    fn store() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let store = Store::init(&root, InitOptions::default()).unwrap();
        Fixture {
            _dir: dir,
            root,
            store,
        }
    }

    impl Fixture {
        /// Adds a file holding `bytes` as `n` (file name `f.bin`), the way `store add` does.
        fn add(&self, n: &str, bytes: &[u8]) -> Blake3 {
            let src = self._dir.path().join("f.bin");
            std::fs::write(&src, bytes).unwrap();
            crate::ops::add::add(&self.store, &src, &name(n), false, &mut Silent).unwrap();
            Blake3::of(bytes)
        }

        fn listed(&self, id: &Blake3) -> Vec<String> {
            let mut v: Vec<String> =
                match std::fs::read_dir(self.root.join("referrers").join(id.to_hex())) {
                    Ok(d) => d
                        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .collect(),
                    Err(_) => Vec::new(),
                };
            v.sort();
            v
        }

        fn has_blob(&self, id: &Blake3) -> bool {
            self.root.join("blobs").join(id.to_hex()).exists()
        }

        /// What a format-3 beaker leaves: no referrers/, `format = 3`.
        fn back_to_format_3(&self) {
            std::fs::remove_dir_all(self.root.join("referrers")).unwrap();
            let toml = std::fs::read_to_string(self.root.join("store.toml")).unwrap();
            std::fs::write(
                self.root.join("store.toml"),
                toml.replace("format = 4", "format = 3"),
            )
            .unwrap();
        }

        fn snapshots(&self) -> usize {
            std::fs::read_dir(self.root.join("snapshots"))
                .unwrap()
                .count()
        }
    }

    #[test]
    fn recording_a_name_lists_it_under_each_of_its_blobs_and_re_pointing_moves_it() {
        let f = store();
        let x = f.add("a", b"x");
        f.add("org/b", b"x");
        assert_eq!(f.listed(&x), ["a", "org+b"]);
        let y = f.add("a", b"y");
        assert_eq!(f.listed(&x), ["org+b"], "a no longer uses x");
        assert_eq!(f.listed(&y), ["a"]);
    }

    #[test]
    fn rm_frees_a_blob_only_when_its_last_name_goes_and_cleans_the_index() {
        let f = store();
        let x = f.add("a", b"x");
        f.add("b", b"x");
        let y = f.add("c", b"y");
        assert_eq!(f.snapshots(), 2, "a and b share one snapshot");
        let r = f.store.remove(&[name("a")]).unwrap();
        assert!(r.freed.is_empty(), "b still uses x: {r:?}");
        assert!(f.has_blob(&x));
        assert_eq!(f.snapshots(), 2, "b still uses the snapshot");
        assert_eq!(f.listed(&x), ["b"]);
        let r = f.store.remove(&[name("b")]).unwrap();
        assert_eq!(r.freed, vec![(x, 1)]);
        assert!(!f.has_blob(&x));
        assert_eq!(f.snapshots(), 1, "only c's snapshot is left");
        assert!(!f.root.join("referrers").join(x.to_hex()).exists());
        assert!(f.has_blob(&y) && f.listed(&y) == ["c"]);
    }

    #[test]
    fn rm_keeps_a_blob_another_model_uses_under_another_file_name() {
        let f = store();
        let x = f.add("a", b"x");
        // The same bytes as a second file of a two-file model: another tree, the same blob.
        let dir = f._dir.path().join("two");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("w.bin"), b"x").unwrap();
        std::fs::write(dir.join("m.bin"), b"m").unwrap();
        crate::ops::add::add(&f.store, &dir, &name("two"), false, &mut Silent).unwrap();
        assert_eq!(f.snapshots(), 2);
        let r = f.store.remove(&[name("a")]).unwrap();
        assert!(r.freed.is_empty(), "{r:?}");
        assert!(f.has_blob(&x));
        assert_eq!(f.snapshots(), 1, "a's snapshot went, two's stayed");
        assert_eq!(
            std::fs::read(
                f.store
                    .locate(&name("two"))
                    .unwrap()
                    .dir
                    .unwrap()
                    .join("w.bin")
            )
            .unwrap(),
            b"x"
        );
    }

    #[test]
    fn a_stale_marker_keeps_nothing_and_is_dropped_by_rm() {
        let f = store();
        let x = f.add("a", b"x");
        f.add("b", b"y");
        // b listed under x although its record uses y: what a crash between "record
        // re-pointed" and "old marker dropped" leaves.
        std::fs::write(f.root.join("referrers").join(x.to_hex()).join("b"), b"").unwrap();
        let r = f.store.remove(&[name("a")]).unwrap();
        assert_eq!(r.freed, vec![(x, 1)]);
        assert!(!f.has_blob(&x));
        assert!(!f.root.join("referrers").join(x.to_hex()).exists());
    }

    #[test]
    fn rm_reads_only_the_records_of_the_names_that_share_its_blobs() {
        let f = store();
        let x = f.add("a", b"x");
        f.add("b", b"y");
        // An unrelated record that does not parse: rm of a does not need it, so it works
        // (gc, which reads every record, still refuses the store).
        std::fs::write(f.root.join("names/b.toml"), "not toml [").unwrap();
        let r = f.store.remove(&[name("a")]).unwrap();
        assert_eq!(r.freed, vec![(x, 1)]);
        // A record that does not parse *and* shares the blob is needed: rm refuses, and
        // changes nothing.
        let z = f.add("c", b"z");
        f.add("d", b"z");
        std::fs::write(f.root.join("names/d.toml"), "not toml [").unwrap();
        let e = f.store.remove(&[name("c")]).unwrap_err().to_string();
        let d = std::path::Path::new("names").join("d.toml");
        assert!(e.contains(&d.display().to_string()), "{e}");
        assert!(f.has_blob(&z));
    }

    #[test]
    fn a_format_3_store_gets_its_index_on_open_before_it_says_format_4() {
        let f = store();
        let x = f.add("a", b"x");
        f.add("b", b"x");
        f.back_to_format_3();
        let store = Store::open(&f.root).unwrap();
        assert_eq!(store.config().format, 4);
        assert!(std::fs::read_to_string(f.root.join("store.toml"))
            .unwrap()
            .contains("format = 4"));
        assert_eq!(f.listed(&x), ["a", "b"]);
        let r = store.remove(&[name("a")]).unwrap();
        assert!(r.freed.is_empty(), "b still uses x: {r:?}");
        assert!(f.has_blob(&x));
    }

    #[test]
    fn a_read_only_format_3_store_is_read_as_it_is_and_rm_reads_every_record() {
        let f = store();
        f.add("a", b"x");
        f.back_to_format_3();
        // Without the index, the plan comes from every record (format 3's way).
        let config = Config {
            format: 3,
            ..*f.store.config()
        };
        let old = Store {
            layout: f.store.layout().clone(),
            config,
            group: None,
        };
        assert!(!old.referrers_trusted());
        let plan = old.plan_remove(&[name("a")]).unwrap();
        assert_eq!(plan.freed.len(), 1);
        assert!(!Path::new(&f.root.join("referrers")).exists());
    }

    #[test]
    fn verify_lists_again_a_name_the_index_lost_so_rm_keeps_its_blob() {
        let f = store();
        let x = f.add("a", b"x");
        f.add("b", b"x");
        std::fs::remove_file(f.root.join("referrers").join(x.to_hex()).join("b")).unwrap();
        let out = crate::maint::verify::run(&f.store, &Default::default(), &mut Silent).unwrap();
        assert_eq!(out.referrers_repaired, vec![format!("b {x}")]);
        assert_eq!(f.listed(&x), ["a", "b"]);
        f.store.remove(&[name("a")]).unwrap();
        assert!(f.has_blob(&x), "b still uses x");
        let again = crate::maint::verify::run(&f.store, &Default::default(), &mut Silent).unwrap();
        assert!(again.referrers_repaired.is_empty());
    }

    #[test]
    fn gc_drops_the_lists_of_blobs_no_name_uses() {
        let f = store();
        let x = f.add("a", b"x");
        // A list left for a blob no name uses (a crash before rm dropped it).
        let y = Blake3::of(b"gone");
        std::fs::create_dir(f.root.join("referrers").join(y.to_hex())).unwrap();
        std::fs::write(f.root.join("referrers").join(y.to_hex()).join("a"), b"").unwrap();
        crate::maint::gc::collect(&f.store, &crate::maint::gc::Options::default(), &mut Silent)
            .unwrap();
        assert!(!f.root.join("referrers").join(y.to_hex()).exists());
        assert_eq!(f.listed(&x), ["a"]);
    }
}
