//! The store manifest as one file per name (store format 3): `names/<key>.toml` holds exactly
//! one entry, `[models.NAME]`, in the manifest format (docs/design.md#manifest-format), so recording, replacing or
//! looking up one name costs the same whatever the number of names (issue 14, P8), and every
//! record is readable TOML on its own. `<key>` is the name with `/` spelled `+`, as in `uses/`.
//!
//! Each record is written like the whole manifest was: to a temp file in `tmp/`, fsynced,
//! renamed over the old one, then `names/` fsynced; a removal is an unlink and an fsync of
//! `names/`. So a reader (who takes no lock) sees every record whole, and a crash loses at most
//! the edit in flight. Callers hold `locks/manifest.lock` for edits (see `refs`).
//!
//! Stores of format 1 and 2 keep their names in one `manifest.toml`; the first writer that opens
//! one moves every entry into a record, then writes `format = 3`, then deletes `manifest.toml`
//! ([`Store::upgrade_to_records`]). Readers read both (a record wins over the same name in
//! `manifest.toml`), so a store is read right before, during and after its upgrade.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use crate::model::entry::Record;
use crate::model::manifest::{Manifest, ManifestError};
use crate::model::name::ModelName;
use crate::sys::error::IoError;
use crate::sys::fsx::{self, Dir};

use super::{Store, StoreError};

/// What `names/` ends its records with.
const EXT: &str = ".toml";

impl Store {
    /// The record of `name`, if the store holds it: its file in `names/`, else (a store whose
    /// upgrade has not finished) its entry in `manifest.toml`.
    pub fn read_entry(&self, name: &ModelName) -> Result<Option<Record>, StoreError> {
        if let Some(entry) = self.read_record(name)? {
            return Ok(Some(entry));
        }
        match self.read_legacy()? {
            Some(mut legacy) => Ok(legacy.models.remove(name)),
            // No manifest.toml: either there never was one, or an upgrade deleted it after we
            // looked for the record, having written the record first. Look once more.
            None => self.read_record(name),
        }
    }

    /// `name`'s record in `names/`, if it has one; never reads `manifest.toml`.
    pub(super) fn read_record(&self, name: &ModelName) -> Result<Option<Record>, StoreError> {
        let path = self.layout().name_record(name);
        match fsx::read_to_string(&path) {
            Ok(text) => Ok(Some(parse_record(&text, &path.path(), name)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every name the store holds: the records in `names/`, over the entries of a
    /// `manifest.toml` left from format 1 or 2.
    pub(super) fn read_records(&self) -> Result<Manifest<Record>, StoreError> {
        let mut models = self.read_legacy()?.map(|m| m.models).unwrap_or_default();
        let listed = self.list_records()?;
        let read = read_in_parallel(&listed, |_: &mut (), name, entry| Ok((name.clone(), entry)))?;
        models.extend(read);
        Ok(Manifest { models })
    }

    /// The entries of `names/`, in directory order (which are records, and of which name, is
    /// worked out by [`read_in_parallel`], on every core).
    pub(super) fn list_records(&self) -> Result<Records, StoreError> {
        let Some(dir) = Dir::open(&self.layout().names())? else {
            return Ok(Records {
                dir: None,
                names: Vec::new(),
            });
        };
        let names = dir.names()?;
        Ok(Records {
            dir: Some(dir),
            names,
        })
    }

    /// `manifest.toml` of a format-1 or format-2 store (or a format-3 one whose upgrade was cut
    /// short before it was deleted), if there is one.
    pub(super) fn read_legacy(&self) -> Result<Option<Manifest<Record>>, StoreError> {
        let path = self.layout().manifest();
        match fsx::read_to_string(&path) {
            Ok(text) => Ok(Some(Manifest::parse(&text, &path.path())?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `name`'s record atomically (temp file, fsync, rename, fsync `names/`), after its
    /// blobs list it in `referrers/` (durably: the index may over-state, never under-state). The
    /// caller holds manifest.lock, and drops the markers an old entry no longer needs after.
    pub(super) fn write_record(&self, name: &ModelName, entry: &Record) -> Result<(), StoreError> {
        self.add_referrers([(name, entry)])?;
        let layout = self.layout();
        let path = layout.name_record(name);
        let one = Manifest {
            models: BTreeMap::from([(name.clone(), entry.clone())]),
        };
        let body = one
            .to_toml()
            .map_err(|e| IoError::new("write", &path, std::io::Error::other(e.to_string())))?;
        let text = format!(
            "# What this store holds under {name}. Written by beaker under locks/manifest.lock;\n\
             # every file here is a gc root. Use `beaker store rm` rather than editing by hand.\n{body}"
        );
        let mode = self.config().file_mode();
        let write = || fsx::write_replace(&layout.tmp(), &path, text.as_bytes(), mode);
        match write() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A store made before `names/` existed that no upgrade has touched yet.
                self.make_dir(&layout.names(), self.config().dir_mode(), false)
                    .map_err(|e| StoreError::writing(self.root(), e))?;
                write()
            }
            other => other,
        }
        .map_err(|e| StoreError::writing(self.root(), e))
    }

    /// Removes `name`'s record (and `names/` is fsynced); true if there was one. Its markers in
    /// `referrers/` are the caller's to drop, after this.
    pub(super) fn remove_record(&self, name: &ModelName) -> Result<bool, StoreError> {
        let path = self.layout().name_record(name);
        let removed =
            fsx::remove_file_if_exists(&path).map_err(|e| StoreError::writing(self.root(), e))?;
        if removed {
            fsx::sync_dir(&self.layout().names())?;
        }
        Ok(removed)
    }

    /// Moves the names of `manifest.toml` into records and deletes it; the caller holds
    /// manifest.lock and `store.toml` already says format 3 (so no beaker that reads only
    /// `manifest.toml` can open the store). Idempotent: a crash anywhere leaves names that read
    /// the same, and the next edit finishes the move.
    pub(super) fn finish_move(&self) -> Result<(), StoreError> {
        let Some(legacy) = self.read_legacy()? else {
            return Ok(());
        };
        self.records_from(&legacy)?;
        let path = self.layout().manifest();
        fsx::remove_file_if_exists(&path).map_err(|e| StoreError::writing(self.root(), e))?;
        fsx::sync_dir(&self.layout().top())?;
        Ok(())
    }

    /// Writes a record for every name of `legacy` that has none (a record wins: it was written
    /// later than `manifest.toml`'s entry), then makes `names/` durable (creating it if needed).
    pub(super) fn records_from(&self, legacy: &Manifest<Record>) -> Result<(), StoreError> {
        for (name, entry) in &legacy.models {
            if fsx::stat(&self.layout().name_record(name))?.is_none() {
                self.write_record(name, entry)?;
            }
        }
        self.make_dir(&self.layout().names(), self.config().dir_mode(), false)
            .map_err(|e| StoreError::writing(self.root(), e))?;
        Ok(fsx::sync_dir(&self.layout().names())?)
    }
}

/// The entries of `names/` as one listing: the directory (opened once, so each record is opened
/// relative to it) and the names in it, unsorted; no directory, no names.
pub(super) struct Records {
    dir: Option<Dir>,
    names: Vec<OsString>,
}

/// Reads and parses the records among `listed` (entries of `names/`) on every core (each is a
/// small file: the time is in the opens, reads and parsing, which the threads share evenly), and
/// hands each entry to `each` on the thread that read it, with that thread's `S` (e.g. what it
/// has already looked up), so per-name work is shared too. A record removed since it was listed
/// is skipped: the name is gone. Other files are ignored (beaker writes nothing else there;
/// `beaker store info` lists what it finds), as foreign files in `uses/` and `pins/` are.
pub(super) fn read_in_parallel<S: Default, T: Send>(
    records: &Records,
    each: impl Fn(&mut S, &ModelName, Record) -> Result<T, StoreError> + Sync,
) -> Result<Vec<T>, StoreError> {
    let Some(dir) = &records.dir else {
        return Ok(Vec::new());
    };
    let listed = records.names.as_slice();
    let read = |part: &[OsString]| -> Result<Vec<T>, StoreError> {
        let mut out = Vec::with_capacity(part.len());
        let mut state = S::default();
        let mut buf = Vec::new();
        for file in part {
            let Some(name) = file
                .to_str()
                .and_then(|f| f.strip_suffix(EXT))
                .and_then(super::layout::name_of_record)
            else {
                continue;
            };
            match read_small(dir, file, &mut buf) {
                Ok(text) => {
                    let entry = parse_record(text, &dir.join(file).path(), &name)?;
                    out.push(each(&mut state, &name, entry)?);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    };
    // Two threads per core: when the records are not in the page cache, a thread waiting for
    // the disk leaves its core to the other (20,000 records evicted from the cache: 1 s with one
    // thread per core, 0.6 s with two, on 2 cores); when they are, it costs about nothing.
    let threads = std::thread::available_parallelism().map_or(1, |n| (2 * n.get()).min(16));
    if threads < 2 || listed.len() < 256 {
        return read(listed);
    }
    let per = listed.len().div_ceil(threads);
    let parts: Vec<Result<Vec<T>, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = listed
            .chunks(per)
            .map(|part| s.spawn(move || read(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(IoError::new(
                        "read",
                        Path::new("names"),
                        std::io::Error::other("a thread reading the store manifest failed"),
                    )
                    .into())
                })
            })
            .collect()
    });
    let mut all = Vec::with_capacity(listed.len());
    for part in parts {
        all.extend(part?);
    }
    Ok(all)
}

/// Reads a record into `buf`, which is reused from one record to the next (it only grows, so it
/// is zeroed once): one `open`, one `read`, one `close` for a record that fits. (`read_to_string`
/// would also `fstat` and `lseek` each file for a size hint, and `read` again to see the end: half
/// the system calls of reading 20,000 records.) A regular file gives less than asked only at its
/// end, and a record is never written in place (a new one is renamed over it), so a short read
/// is the whole record.
fn read_small<'b>(
    dir: &Dir,
    name: &std::ffi::OsStr,
    buf: &'b mut Vec<u8>,
) -> Result<&'b str, IoError> {
    use std::io::Read;
    let path = || dir.join(name);
    let mut file = dir.open_read(name)?;
    if buf.is_empty() {
        buf.resize(4096, 0);
    }
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IoError::new("read", path(), e)),
        }
    }
    std::str::from_utf8(&buf[..len]).map_err(|_| {
        IoError::new(
            "read",
            path(),
            std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"),
        )
    })
}

/// Parses one record: a manifest with exactly the record of `name` (the name its file stands for).
/// The shapes beaker writes are read by [`super::record_text`] (a tenth of the time); anything
/// else, and every error, by the full parser.
fn parse_record(text: &str, path: &Path, name: &ModelName) -> Result<Record, StoreError> {
    if let Some(entry) = super::record_text::parse(text, name) {
        return Ok(entry);
    }
    let mut m = Manifest::parse(text, path)?;
    match (m.models.remove(name), m.models.is_empty()) {
        (Some(entry), true) => Ok(entry),
        _ => Err(ManifestError::Invalid {
            path: path.to_owned(),
            line: 1,
            column: 1,
            message: format!(
                "a record in names/ must hold exactly one entry, [models.{name}] (the name its file stands for); restore it with `beaker store add`/`pull` after `beaker store rm {name}`, or remove the file"
            ),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    // Tests turn stores back into format 2 and plant damaged records with raw std::fs.
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use crate::model::digest::Blake3;
    use crate::model::entry::{Expected, Model, Pin, Single};
    use crate::store::InitOptions;

    /// The record of `n`: one file of `seed`'s bytes, its name worked out from `n`.
    fn entry(n: &str, seed: &[u8]) -> Record {
        let single = Single {
            blob: Expected::Pinned(Pin {
                blake3: Blake3::of(seed),
                size: seed.len() as u64,
            }),
            ..Single::default()
        };
        let model = Model::single(&name(n), single).into_pinned().unwrap();
        Record::new(model)
    }

    fn name(n: &str) -> ModelName {
        ModelName::new(n).unwrap()
    }

    fn manifest(names: &[(&str, &[u8])]) -> Manifest<Record> {
        Manifest {
            models: names.iter().map(|(n, s)| (name(n), entry(n, s))).collect(),
        }
    }

    /// A store as a format-2 beaker left it: `manifest.toml` holding `names`, no `names/`.
    fn format_2_store(names: &[(&str, &[u8])]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        Store::init(&root, InitOptions::default()).unwrap();
        std::fs::remove_dir(root.join("names")).unwrap();
        std::fs::write(
            root.join("store.toml"),
            "format = 2\nmode = \"private\"\nlocking = \"flock\"\n",
        )
        .unwrap();
        std::fs::write(
            root.join("manifest.toml"),
            manifest(names).to_toml().unwrap(),
        )
        .unwrap();
        (dir, root)
    }

    fn record_files(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join("names"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_format_2_store_is_upgraded_in_place_to_one_record_per_name() {
        let names: &[(&str, &[u8])] = &[("a", b"1"), ("org/b", b"2"), ("c", b"1")];
        let (_dir, root) = format_2_store(names);
        let store = Store::open(&root).unwrap();
        // 2 → 3 (records) → 4 (their index, `referrers`).
        assert_eq!(store.config().format, crate::store::FORMAT);
        assert!(std::fs::read_to_string(root.join("store.toml"))
            .unwrap()
            .contains("format = 4"));
        assert!(!root.join("manifest.toml").exists());
        assert_eq!(record_files(&root), ["a.toml", "c.toml", "org+b.toml"]);
        assert_eq!(store.read_manifest().unwrap(), manifest(names));
        // Each record is a manifest of its one name, readable on its own.
        let text = std::fs::read_to_string(root.join("names/org+b.toml")).unwrap();
        let one = Manifest::parse(&text, Path::new("org+b.toml")).unwrap();
        assert_eq!(one, manifest(&[("org/b", b"2")]));
    }

    #[test]
    fn an_upgrade_cut_before_format_3_leaves_every_name_in_manifest_toml_and_is_redone() {
        let names: &[(&str, &[u8])] = &[("a", b"1"), ("b", b"2")];
        let (_dir, root) = format_2_store(names);
        // The upgrade wrote one record and died: store.toml still says 2, manifest.toml is whole.
        std::fs::create_dir(root.join("names")).unwrap();
        let one = Manifest {
            models: [(name("a"), entry("a", b"1"))].into(),
        };
        std::fs::write(root.join("names/a.toml"), one.to_toml().unwrap()).unwrap();
        let legacy = std::fs::read_to_string(root.join("manifest.toml")).unwrap();
        assert_eq!(
            Manifest::parse(&legacy, Path::new("m")).unwrap(),
            manifest(names)
        );
        // The next writer finishes it (and goes on to format 4, `referrers`).
        let store = Store::open(&root).unwrap();
        assert_eq!(store.config().format, crate::store::FORMAT);
        assert_eq!(record_files(&root), ["a.toml", "b.toml"]);
        assert!(!root.join("manifest.toml").exists());
        assert_eq!(store.read_manifest().unwrap(), manifest(names));
    }

    #[test]
    fn a_manifest_toml_left_after_format_3_is_read_and_moved_by_the_next_edit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let store = Store::init(&root, InitOptions::default()).unwrap();
        store.record(&name("new"), entry("new", b"3")).unwrap();
        // Died after `format = 3` and before deleting manifest.toml, which names `old` (not yet
        // a record) and an older `new` (a record wins).
        std::fs::write(
            root.join("manifest.toml"),
            manifest(&[("old", b"1"), ("new", b"2")]).to_toml().unwrap(),
        )
        .unwrap();
        let want = manifest(&[("old", b"1"), ("new", b"3")]);
        assert_eq!(store.read_manifest().unwrap(), want);
        assert_eq!(
            store.read_entry(&name("old")).unwrap(),
            Some(entry("old", b"1"))
        );
        assert_eq!(
            store.read_entry(&name("new")).unwrap(),
            Some(entry("new", b"3"))
        );
        store.record(&name("third"), entry("third", b"4")).unwrap();
        assert!(!root.join("manifest.toml").exists());
        assert_eq!(record_files(&root), ["new.toml", "old.toml", "third.toml"]);
        assert_eq!(
            store.read_manifest().unwrap(),
            manifest(&[("old", b"1"), ("new", b"3"), ("third", b"4")])
        );
    }

    #[test]
    fn recording_a_name_writes_its_record_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let store = Store::init(&root, InitOptions::default()).unwrap();
        store.record(&name("a"), entry("a", b"1")).unwrap();
        let a = root.join("names/a.toml");
        let inode = |p: &Path| crate::sys::fsx::user::file_id(p, true).unwrap();
        let before = inode(&a);
        store.record(&name("b"), entry("b", b"2")).unwrap();
        assert_eq!(inode(&a), before, "a's record was rewritten by b's add");
        // Replacing a name rewrites its record (atomically: a new file renamed over it).
        let replaced = store.record(&name("a"), entry("a", b"3")).unwrap();
        assert_eq!(replaced, Some(entry("a", b"1")));
        assert_ne!(inode(&a), before);
        assert!(!root.join("manifest.toml").exists());
        assert_eq!(
            store.read_manifest().unwrap(),
            manifest(&[("a", b"3"), ("b", b"2")])
        );
        // Nothing is left in tmp/.
        assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_record_that_names_another_model_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let store = Store::init(&root, InitOptions::default()).unwrap();
        store.record(&name("a"), entry("a", b"1")).unwrap();
        let wrong = manifest(&[("b", b"1")]).to_toml().unwrap();
        std::fs::write(root.join("names/a.toml"), wrong).unwrap();
        let e = store.read_manifest().unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "{}:1:1",
                Path::new("names").join("a.toml").display()
            )) && e.contains("[models.a]"),
            "{e}"
        );
        assert!(store.read_entry(&name("a")).is_err());
    }
}
