//! `beaker store ls`: one [`Listing`] row per name, made on the thread that read the name's record
//! (issue 14, P8: 20,000 names in ≤ 150 ms).
//!
//! Besides its record, a row needs the name's use record (last use) and whether every file's
//! blob is in `blobs/`. Rather than one `lstat` by path per name for each, `uses/` and `blobs/`
//! are listed once, at the same time as `names/` (each on its own thread), and then only what a
//! listing found is `lstat`ed, through its listing (`fstatat` relative to the directory): a name
//! without a use record costs no failed lookup, and a blob is looked at once however many names
//! share it. The answers are those of [`crate::store::uses::last_used`] and `blob_state` (a
//! regular file, not followed if a symlink, of the recorded size):
//!
//! - a blob missing from the listing (published after it was made, or absent) or gone from it
//!   since is asked for by path, so a name recorded after its blob (invariant I3) is never shown
//!   absent because the listing came first;
//! - a use record missing from the listing counts as none: the row then says when the name was
//!   recorded, as it would have a moment earlier;
//! - a directory that cannot be listed (no read permission, which a lookup by path does not
//!   need) is asked by path, name by name, as before.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::hash::Hash;
use std::sync::OnceLock;

use crate::model::digest::Blake3;
use crate::model::entry::{Pin, Record};
use crate::model::name::ModelName;
use crate::sys::fsx::{self, Dir, Meta, Rooted};

use super::records::read_in_parallel;
use super::{
    files_in, name_of_record, BlobState, Config, Info, Listing, LockFile, Store, StoreError,
};

/// What one thread already knows of a blob: present (with this size) or not.
type Seen = HashMap<Pin, bool>;

/// What every row is made from, shared by the threads. A directory that could not be listed
/// (`None`) is asked by path, name by name, as before there were listings.
struct Lookups<'a> {
    store: &'a Store,
    blobs: Option<Listed<Blake3>>,
    uses: Option<Listed<ModelName>>,
    pinned: BTreeSet<ModelName>,
}

impl Store {
    /// `beaker store ls`: every name in the store manifest, sorted, with its main blob, size,
    /// whether all its blobs are present, its last use and whether it is pinned.
    pub fn list(&self) -> Result<Vec<Listing>, StoreError> {
        self.list_rows(true)
    }

    /// [`Store::list`], listing `uses/` and `blobs/` when `list_dirs` (else looking up every use
    /// record and blob by path, which the tests compare it with).
    fn list_rows(&self, list_dirs: bool) -> Result<Vec<Listing>, StoreError> {
        let legacy = self.read_legacy()?;
        let layout = self.layout();
        // The three listings at once (20,000 entries each take a few ms on one core).
        let (records, uses, blobs) = std::thread::scope(|s| {
            let uses = s.spawn(|| list_dirs.then(|| listing(&layout.uses(), name_of_record))?);
            let blobs = s.spawn(|| {
                list_dirs.then(|| listing(&layout.blobs(), |n| Blake3::from_hex(n).ok()))?
            });
            let records = self.list_records();
            // A listing thread that panicked leaves its directory to lookups by path.
            (
                records,
                uses.join().ok().flatten(),
                blobs.join().ok().flatten(),
            )
        });
        let lookups = Lookups {
            store: self,
            uses,
            blobs,
            pinned: crate::store::uses::pinned(self)?,
        };
        let records = records?;
        let mut rows = read_in_parallel(&records, |seen: &mut Seen, name, entry| {
            lookups.row(seen, name.clone(), entry)
        })?;
        // A store whose upgrade to records is unfinished: a record wins over manifest.toml.
        if let Some(legacy) = legacy {
            let recorded: HashSet<ModelName> = rows.iter().map(|r| r.name.clone()).collect();
            let mut seen = Seen::new();
            for (name, entry) in legacy.models {
                if !recorded.contains(&name) {
                    rows.push(lookups.row(&mut seen, name, entry)?);
                }
            }
        }
        rows.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(rows)
    }
}

impl Lookups<'_> {
    fn row(&self, seen: &mut Seen, name: ModelName, record: Record) -> Result<Listing, StoreError> {
        let model = &record.model;
        let mut present = true;
        for f in model.files() {
            if !self.present(seen, f.blob)? {
                present = false;
                break;
            }
        }
        let by_path;
        let use_record = match &self.uses {
            Some(uses) => uses.metadata(&name),
            None => {
                by_path = fsx::stat(&self.store.layout().use_record(&name))
                    .ok()
                    .flatten();
                by_path.as_ref()
            }
        };
        let last_used = crate::store::uses::last_used_of(use_record, record.added.as_deref())
            .map(crate::sys::who::rfc3339);
        let path = record.tree.as_ref().map(|tree| {
            self.store
                .layout()
                .snapshot(tree)
                .path()
                .join(model.main().path.as_str())
        });
        Ok(Listing {
            path,
            pinned: self.pinned.contains(&name),
            blake3: Some(model.main().blob.blake3),
            size: Some(model.bytes()),
            files: model.files().len(),
            format: model.format.map(|f| f.to_string()),
            added: record.added,
            description: record.model.description,
            name,
            present,
            last_used,
        })
    }

    /// Whether the blob `pin` names is in `blobs/` with its size.
    fn present(&self, seen: &mut Seen, pin: Pin) -> Result<bool, StoreError> {
        if let Some(&known) = seen.get(&pin) {
            return Ok(known);
        }
        let listed = self
            .blobs
            .as_ref()
            .and_then(|blobs| blobs.metadata(&pin.blake3));
        let here = match listed {
            Some(meta) => meta.is_file() && meta.len() == pin.size,
            // Not in the listing (or no listing), or gone since: its path says.
            None => matches!(
                self.store.blob_state(&pin.blake3, Some(pin.size))?,
                BlobState::Present { .. }
            ),
        };
        seen.insert(pin, here);
        Ok(here)
    }
}

/// One listing of a directory: its entries by key, and what `lstat` said of each, asked once for
/// all the threads (relative to the opened directory: `fstatat`).
struct Listed<K> {
    /// `None`: there is no such directory (so no entries).
    dir: Option<Dir>,
    entries: HashMap<K, (OsString, OnceLock<Option<Meta>>)>,
}

impl<K: Eq + Hash> Listed<K> {
    /// The `lstat` of the entry for `key` (`None`: not listed, gone, or cannot be looked at).
    fn metadata(&self, key: &K) -> Option<&Meta> {
        let (name, meta) = self.entries.get(key)?;
        let dir = self.dir.as_ref()?;
        meta.get_or_init(|| dir.stat(name).ok().flatten()).as_ref()
    }
}

/// The entries of `dir` whose file name `key` accepts, by key; a missing directory has none.
/// `None` when `dir` cannot be listed (no read permission, which a lookup by path does not
/// need, or any other error): the caller then looks each name up by path.
fn listing<K: Eq + Hash>(dir: &Rooted, key: impl Fn(&str) -> Option<K>) -> Option<Listed<K>> {
    let opened = match Dir::open(dir) {
        Ok(Some(d)) => d,
        Ok(None) => {
            return Some(Listed {
                dir: None,
                entries: HashMap::new(),
            })
        }
        Err(_) => return None,
    };
    let mut entries = HashMap::new();
    for name in opened.names().ok()? {
        if let Some(k) = name.to_str().and_then(&key) {
            entries.insert(k, (name, OnceLock::new()));
        }
    }
    Some(Listed {
        dir: Some(opened),
        entries,
    })
}

impl Store {
    /// Whether every file's blob of `record` is in `blobs/` with its size.
    fn all_present(&self, record: &Record) -> Result<bool, StoreError> {
        for f in record.model.files() {
            let Pin { blake3, size } = f.blob;
            if !matches!(
                self.blob_state(&blake3, Some(size))?,
                BlobState::Present { .. }
            ) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `beaker store info`: sizes by category and the lock files present.
    pub fn info(&self) -> Result<Info, StoreError> {
        let layout = self.layout();
        let manifest = self.read_manifest()?;
        let referenced = manifest.roots();
        let Config {
            format,
            mode,
            locking,
            max_size,
            ..
        } = *self.config();
        let mut info = Info {
            path: self.root().to_owned(),
            format,
            mode: format!("{mode:?}").to_lowercase(),
            locking: format!("{locking:?}").to_lowercase(),
            names: manifest.models.len(),
            max_size,
            min_age_secs: self.config().min_age().as_secs(),
            pinned: crate::store::uses::pinned(self)?.len(),
            ..Info::default()
        };
        for (name, bytes) in files_in(&layout.blobs())? {
            info.blobs.add(bytes);
            let is_ref = Blake3::from_hex(&name).is_ok_and(|id| referenced.contains(&id));
            if is_ref {
                info.referenced.add(bytes);
            } else {
                info.unreferenced.add(bytes);
            }
        }
        for (_, bytes) in files_in(&layout.tmp())? {
            info.temp.add(bytes);
        }
        for (_, bytes) in files_in(&layout.quarantine())? {
            info.quarantine.add(bytes);
        }
        for (name, _) in files_in(&layout.locks())? {
            let at = layout.locks().join(&name);
            if name.ends_with(".lease") {
                // A lease is held while its file is there, unless its holder is provably gone.
                let (held, holder) = match crate::sys::lock::lease::state(&at) {
                    crate::sys::lock::lease::State::Held(h) => (true, h),
                    crate::sys::lock::lease::State::Stale(h) => (false, h),
                    crate::sys::lock::lease::State::Gone => continue,
                };
                info.locks.push(LockFile { name, held, holder });
                continue;
            }
            let (held, holder) = match crate::sys::lock::state(&at) {
                Ok(crate::sys::lock::State::Held(h)) => (true, h),
                Ok(crate::sys::lock::State::Gone) => continue,
                // Free, or not lockable by us (e.g. not a regular file): not held as far as we can tell.
                Ok(crate::sys::lock::State::Free) | Err(_) => (false, None),
            };
            info.locks.push(LockFile { name, held, holder });
        }
        info.lock_files = info.locks.len();
        for (name, record) in &manifest.models {
            if !self.all_present(record)? {
                info.missing.push(name.clone());
            }
        }
        info.problems = super::policy::problems(layout, self.config())?;
        info.used_percent = max_size.map(|max| info.blobs.bytes as f64 * 100.0 / max as f64);
        info.filesystem = self.capabilities().ok();
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    // The test damages a store by hand with raw std::fs.
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use crate::model::entry::{Model, Single, Upstreams};
    use crate::model::file_path::FilePath;
    use crate::store::InitOptions;

    #[test]
    fn rows_from_the_listings_are_the_rows_from_lookups_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("s"), InitOptions::default()).unwrap();
        let mut entries = Vec::new();
        for i in 0..300u32 {
            let bytes = format!("blob {}", i % 7);
            let id = Blake3::of(bytes.as_bytes());
            let blob = store.layout().blob(&id);
            if !blob.path().exists() && i % 7 != 3 {
                std::fs::write(blob.path(), &bytes).unwrap();
            }
            let name = ModelName::new(&format!("m{i:03}")).unwrap();
            if i % 5 == 0 {
                crate::store::uses::record_now(&store, &name);
            }
            let single = Single {
                file: Some(FilePath::new("model.bin").unwrap()),
                blob: Pin {
                    blake3: id,
                    // Every eleventh name records another size for its blob.
                    size: bytes.len() as u64 + u64::from(i % 11 == 0),
                },
                upstream: Upstreams::default(),
                urls: Vec::new(),
                format: None,
            };
            let entry = Record {
                model: Model::single(&name, single),
                added: Some("2026-01-02T03:04:05Z".into()),
                tree: None,
            };
            entries.push((name, entry));
        }
        store
            .edit_manifest(|m| {
                m.models.extend(entries);
                Ok(())
            })
            .unwrap();
        let listed = store.list_rows(true).unwrap();
        assert_eq!(listed, store.list_rows(false).unwrap());
        assert_eq!(listed.len(), 300);
        // Every case is there: present, absent, another size; with and without a use record.
        for (i, row) in listed.iter().enumerate() {
            assert_eq!(row.present, i % 7 != 3 && i % 11 != 0, "{row:?}");
            let recorded = row.last_used.as_deref() != Some("2026-01-02T03:04:05Z");
            assert_eq!(recorded, i % 5 == 0, "{row:?}");
        }
    }
}
