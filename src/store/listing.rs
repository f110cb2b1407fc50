//! `beaker store ls`: one [`Listing`] row per name, made on the thread that read the name's record
//! (issue 14, P8: 20,000 names in ≤ 150 ms).
//!
//! Besides its record, a row needs the name's use record (last use) and whether every file's
//! blob is in `blobs/`. Rather than one `lstat` by path per name for each, `uses/` and `blobs/`
//! are listed once, at the same time as `names/` (each on its own thread), and then only what a
//! listing found is `lstat`ed, through its listing (`fstatat` relative to the directory): a name
//! without a use record costs no failed lookup, and a blob is looked at once per thread however
//! many names share it. The answers are those of [`crate::uses::last_used`] and `blob_state` (a
//! regular file, not followed if a symlink, of the recorded size):
//!
//! - a blob missing from the listing (published after it was made, or absent) or gone from it
//!   since is asked for by path, so a name recorded after its blob (invariant I3) is never shown
//!   absent because the listing came first;
//! - a use record missing from the listing counts as none: the row then says when the name was
//!   recorded, as it would have a moment earlier.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::DirEntry;
use std::hash::Hash;
use std::path::Path;

use crate::digest::Blake3;
use crate::error::IoError;
use crate::manifest::{Entry, FileEntry};
use crate::name::ModelName;

use super::records::read_in_parallel;
use super::{name_of_record, BlobState, Listing, Store, StoreError};

/// What one thread already knows of a blob: present (with this size) or not.
type Seen = HashMap<(Blake3, Option<u64>), bool>;

/// What every row is made from, shared by the cores.
struct Lookups<'a> {
    store: &'a Store,
    blobs: HashMap<Blake3, DirEntry>,
    uses: HashMap<ModelName, DirEntry>,
    pinned: BTreeSet<ModelName>,
}

impl Store {
    /// `beaker store ls`: every name in the store manifest, sorted, with its main blob, size,
    /// whether all its blobs are present, its last use and whether it is pinned.
    pub fn list(&self) -> Result<Vec<Listing>, StoreError> {
        let legacy = self.read_legacy()?;
        let layout = self.layout();
        // The three listings at once (20,000 entries each take a few ms on one core).
        let (records, uses, blobs) = std::thread::scope(|s| {
            let uses = s.spawn(|| listing(&layout.uses(), name_of_record));
            let blobs = s.spawn(|| listing(&layout.blobs(), |n| Blake3::from_hex(n).ok()));
            let records = self.list_records();
            (
                records,
                joined(uses, &layout.uses()),
                joined(blobs, &layout.blobs()),
            )
        });
        let lookups = Lookups {
            store: self,
            uses: uses?,
            blobs: blobs?,
            pinned: crate::uses::pinned(self)?,
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
    fn row(&self, seen: &mut Seen, name: ModelName, entry: Entry) -> Result<Listing, StoreError> {
        let files = entry.files(&name);
        let main = entry.main.as_ref().or(files.first().map(|f| &f.path));
        let mut present = true;
        for f in &files {
            if !self.present(seen, f)? {
                present = false;
                break;
            }
        }
        let record = self.uses.get(&name).and_then(|e| e.metadata().ok());
        let last_used = crate::uses::last_used_of(record, &entry).map(crate::who::rfc3339);
        Ok(Listing {
            pinned: self.pinned.contains(&name),
            blake3: files
                .iter()
                .find(|f| Some(&f.path) == main)
                .and_then(|f| f.blake3),
            size: files.iter().map(|f| f.size).sum(),
            files: files.len(),
            format: entry.format.map(|f| f.to_string()),
            added: entry.added,
            description: entry.description,
            name,
            present,
            last_used,
        })
    }

    /// Whether `f`'s blob is in `blobs/` with its size (a file without a BLAKE3 is not).
    fn present(&self, seen: &mut Seen, f: &FileEntry) -> Result<bool, StoreError> {
        let Some(id) = f.blake3 else {
            return Ok(false);
        };
        if let Some(&known) = seen.get(&(id, f.size)) {
            return Ok(known);
        }
        let here = match self.blobs.get(&id).map(DirEntry::metadata) {
            Some(Ok(meta)) => meta.is_file() && f.size.is_none_or(|want| want == meta.len()),
            // Not in the listing, or gone since: its path says.
            None | Some(Err(_)) => matches!(
                self.store.blob_state(&id, f.size)?,
                BlobState::Present { .. }
            ),
        };
        seen.insert((id, f.size), here);
        Ok(here)
    }
}

/// What a thread listing `dir` returned (a thread that panicked is an error about `dir`).
fn joined<T>(
    thread: std::thread::ScopedJoinHandle<'_, Result<T, IoError>>,
    dir: &Path,
) -> Result<T, IoError> {
    thread.join().unwrap_or_else(|_| {
        Err(IoError::new(
            "list",
            dir,
            std::io::Error::other("the thread listing it failed"),
        ))
    })
}

/// The entries of `dir` whose file name `key` accepts, by key; a missing directory has none.
fn listing<K: Eq + Hash>(
    dir: &Path,
    key: impl Fn(&str) -> Option<K>,
) -> Result<HashMap<K, DirEntry>, IoError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(IoError::new("list", dir, e)),
    };
    let mut out = HashMap::new();
    for item in entries {
        let item = item.map_err(|e| IoError::new("list", dir, e))?;
        if let Some(k) = item.file_name().to_str().and_then(&key) {
            out.insert(k, item);
        }
    }
    Ok(out)
}
