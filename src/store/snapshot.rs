//! Snapshots (docs/design.md#snapshots): a model's files under their real names, as a directory tools can open.
//!
//! ```text
//! <store>/snapshots/<tree>/model.onnx        hard link to blobs/<blake3 of model.onnx>
//! <store>/snapshots/<tree>/model.onnx.data   hard link to blobs/<blake3 of the weights>
//! ```
//!
//! `<tree>` is the [`TreeId`]: the BLAKE3 of the canonical file list, one line per file sorted by
//! path, `"<path>\0<blake3 hex>\0<size>\n"`. Every name with the same files shares one snapshot.
//!
//! **Building** ([`ensure`]) happens in a fresh directory under `tmp/` (created exclusively, so
//! nobody else writes into it): the parent directories, then one hard link per file to its blob
//! (same inode: no extra space, mode 0444), every directory fsynced, then the whole directory is
//! renamed to `snapshots/<tree>` without clobbering. So a snapshot that exists is complete, and a
//! crash leaves at worst a build directory in `tmp/` that gc removes. Where a hard link is
//! impossible — `fs.protected_hardlinks` forbids linking another user's 0444 blob in a group
//! store (EPERM), or a filesystem without links — the file becomes a relative symlink to
//! `../…/blobs/<hex>` instead (a symlink farm only there).
//!
//! **Checking** ([`check`]) is cheap: each file must be the blob's inode, or a symlink with the
//! expected target; nothing else may be in the directory. Comparing bytes of a file that is a
//! different inode is `verify`'s job (it re-hashes). A damaged snapshot is moved out of the way
//! and built again from the blobs ([`ensure`] does both).
//!
//! **Staging** ([`stage`]) lays a model's files out the same way in a private directory under
//! `tmp/` (`check-<tree>.<pid>.<nonce>.d`) *before* they are published, from temp blobs and
//! present blobs, so `--check` can load every ONNX file of the model with its neighbours (external
//! data) and nothing of a model that fails is ever named. It is deleted when the check is done; a
//! crash leaves it for gc, like a snapshot being built.
//!
//! Invariants: a snapshot is built only from blobs that are present (so from bytes named by their
//! hash, I1), it never modifies a blob (links only, I2), and `publish`'s callers record a name's
//! tree only after [`ensure`] returned (I3 extended: a name never points at half a model).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::model::digest::Blake3;
use crate::model::file_path::FilePath;
use crate::model::name::ModelName;
use crate::store::{BlobState, Located, Store, StoreError};
use crate::sys::error::{os_error_is, IoError, Os};
use crate::sys::fsx::{self, Rooted};

/// The mode of a snapshot's directories while they are being filled: only the builder may enter
/// them, and (setgid) every directory made inside one takes its group, which in a group store is
/// the store's (the staging directory inherits it from `tmp/`), so that the snapshot keeps the
/// store's group once it is made the store's directory mode and moved into place.
const PRIVATE_DIR: u32 = 0o2700;

pub use crate::model::tree::{ModelFile, TreeId};

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Every file is its blob (same inode, or the expected symlink), nothing else is there.
    Complete,
    Missing,
    /// Something is wrong; the string says what, for messages.
    Damaged(String),
}

/// Makes `snapshots/<tree>` exist and hold exactly `files` as their blobs, and returns its path.
/// Every blob must be present. A damaged snapshot (a file that is not its blob any more, e.g.
/// after `verify` quarantined a blob and it was published again) is moved aside and built anew.
/// The caller holds `gc.lock` shared (so no gc removes the blobs meanwhile).
pub fn ensure(store: &Store, files: &[ModelFile]) -> Result<Rooted, StoreError> {
    let tree = TreeId::of(files);
    let dest = store.layout().snapshot(&tree);
    match check(store, files)? {
        State::Complete => return Ok(dest),
        State::Missing => {}
        State::Damaged(_) => move_aside(store, &tree)?,
    }
    build(store, &tree, files)?;
    Ok(dest)
}

/// A model's files under their names in a private directory under `tmp/` ([`stage`]); deleted
/// (links only) when dropped.
#[derive(Debug)]
pub struct Staged {
    dir: Rooted,
}

impl Staged {
    /// The directory, for the runtime that loads the model by path: `path.under(dir)` is the
    /// staged file `path`.
    pub fn dir(&self) -> PathBuf {
        self.dir.path()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Links only; what stays after a failure is a `check-….d` directory that gc removes.
        let _ = fsx::remove_tree(&self.dir);
    }
}

/// Lays out `files` (the model's path of each, and the file holding its bytes: a temp blob not
/// yet named, or a present blob) under their names in a fresh private (0700) directory
/// `tmp/check-<tree>.<pid>.<nonce>.d`, for loading the model before anything of it is published.
/// Each is a hard link to its source, so what is loaded is the inode that will be named; where a
/// link is refused (another user's 0444 blob under `fs.protected_hardlinks`, a filesystem without
/// links) a symlink to the source's absolute path.
pub fn stage(
    store: &Store,
    tree: &TreeId,
    files: &[(FilePath, Rooted)],
) -> Result<Staged, StoreError> {
    let w = |e| StoreError::writing(store.root(), e);
    let dir = fsx::unique_path(
        &store.layout().tmp(),
        &format!("check-{}", tree.to_hex()),
        "d",
    );
    store.make_dir(&dir, PRIVATE_DIR, true).map_err(w)?;
    let staged = Staged { dir };
    let mut dirs: BTreeSet<FilePath> = BTreeSet::new();
    for (path, _) in files {
        dirs.extend(path.parents());
    }
    for d in &dirs {
        store
            .make_dir(&d.beneath(&staged.dir), PRIVATE_DIR, true)
            .map_err(w)?;
    }
    for (path, source) in files {
        let at = path.beneath(&staged.dir);
        match fsx::hard_link(source, &at) {
            Ok(()) => {}
            Err(e) if os_error_is(&e.source, Os::NoHardLink) => {
                fsx::symlink(&source.path(), &at).map_err(w)?;
            }
            Err(e) => return Err(w(e)),
        }
    }
    Ok(staged)
}

/// Moves `snapshots/<tree>` into `tmp/` and deletes it there (links only: no blob is touched).
/// Gone already is fine (another process did it).
fn move_aside(store: &Store, tree: &TreeId) -> Result<(), StoreError> {
    let dir = store.layout().snapshot(tree);
    let aside = fsx::unique_path(
        &store.layout().tmp(),
        &format!("damaged-{}", tree.to_hex()),
        "d",
    );
    match fsx::rename_exclusive(&dir, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::writing(store.root(), e)),
    }
    let _ = fsx::remove_tree(&aside);
    Ok(())
}

/// Builds the snapshot in `tmp/` and renames it into place (see the module doc).
fn build(store: &Store, tree: &TreeId, files: &[ModelFile]) -> Result<(), StoreError> {
    let layout = store.layout();
    let w = |e| StoreError::writing(store.root(), e);
    let mode = store.config().dir_mode();
    let staging = fsx::unique_path(&layout.tmp(), &format!("snap-{}", tree.to_hex()), "d");
    // Private while it is filled (0700: in a group store no other member can slip a file in or
    // swap a link); the store's directory mode is set just before it is renamed into place.
    store.make_dir(&staging, PRIVATE_DIR, true).map_err(w)?;
    let built = (|| {
        let mut dirs: BTreeSet<FilePath> = BTreeSet::new();
        for f in files {
            dirs.extend(f.path.parents());
        }
        for d in &dirs {
            store
                .make_dir(&d.beneath(&staging), PRIVATE_DIR, true)
                .map_err(w)?;
        }
        for f in files {
            let blob = layout.blob(&f.blake3);
            match store.blob_state(&f.blake3, Some(f.size))? {
                crate::store::BlobState::Present { .. } => {}
                crate::store::BlobState::Absent => {
                    return Err(StoreError::SnapshotBlobMissing {
                        path: f.path.to_string(),
                        blob: f.blake3,
                    })
                }
                crate::store::BlobState::Damaged { problem } => {
                    return Err(StoreError::DamagedBlob {
                        path: blob.path(),
                        problem,
                    })
                }
            }
            link_or_symlink(&blob, &f.path, &f.path.beneath(&staging)).map_err(w)?;
        }
        for d in dirs.iter().rev() {
            fsx::set_dir_mode(&d.beneath(&staging), mode).map_err(w)?;
            fsx::sync_dir(&d.beneath(&staging))?;
        }
        fsx::set_dir_mode(&staging, mode).map_err(w)?;
        fsx::sync_dir(&staging)?;
        store
            .make_dir(&layout.snapshots(), mode, false)
            .map_err(w)?;
        fsx::persist_dir_noclobber(&staging, &layout.snapshot(tree)).map_err(w)
    })();
    match built {
        Ok(fsx::Persisted::Created) => fsx::sync_dir(&layout.snapshots()).map_err(Into::into),
        Ok(fsx::Persisted::AlreadyExists) => {
            // Another process built the same snapshot first: theirs stands, ours goes.
            let _ = fsx::remove_tree(&staging);
            Ok(())
        }
        Err(e) => {
            let _ = fsx::remove_tree(&staging);
            Err(e)
        }
    }
}

/// A hard link to `blob` at `at`; a relative symlink where the filesystem or the kernel's
/// `protected_hardlinks` refuses the link.
fn link_or_symlink(blob: &Rooted, path: &FilePath, at: &Rooted) -> Result<(), IoError> {
    match fsx::hard_link(blob, at) {
        Ok(()) => Ok(()),
        Err(e) if os_error_is(&e.source, Os::NoHardLink) => {
            fsx::symlink(&symlink_target(blob, path), at)
        }
        Err(e) => Err(e),
    }
}

/// `../../blobs/<hex>` from `snapshots/<tree>/<path>`: one `..` per directory between the link
/// and the store root.
fn symlink_target(blob: &Rooted, path: &FilePath) -> PathBuf {
    let mut target = PathBuf::new();
    for _ in 0..path.depth() + 1 {
        target.push("..");
    }
    target.push("blobs");
    if let Some(name) = blob.file_name() {
        target.push(name);
    }
    target
}

/// Whether `snapshots/<tree>` holds exactly `files` as their blobs (see the module doc).
///
/// Everything in the snapshot is looked at relative to the store's root without following a
/// symlink: a directory of the snapshot replaced by a symlink (to a directory a member owns, or
/// elsewhere in the store) is damage, never followed, so a path handed out never leads through
/// it.
pub fn check(store: &Store, files: &[ModelFile]) -> Result<State, StoreError> {
    let dir = store.layout().snapshot(&TreeId::of(files));
    match fsx::stat(&dir)? {
        Some(m) if m.is_dir() => {}
        Some(m) => return Ok(State::Damaged(format!("a {}, not a directory", m.kind()))),
        None => return Ok(State::Missing),
    }
    let mut expected: BTreeSet<PathBuf> = BTreeSet::new();
    for f in files {
        expected.insert(PathBuf::from(f.path.as_str()));
        expected.extend(f.path.parents().iter().map(|p| PathBuf::from(p.as_str())));
        match check_file(store, &dir, f) {
            Ok(None) => {}
            Ok(Some(problem)) => return Ok(State::Damaged(format!("{}: {problem}", f.path))),
            Err(e) if symlink_in_the_way(&e) => {
                return Ok(State::Damaged(format!(
                    "{}: a symlink or a file is where a directory of the model should be",
                    f.path
                )))
            }
            Err(e) => return Err(e),
        }
    }
    let mut unexpected = None;
    // Each entry's type was judged above (a directory where the model has a file, or the other
    // way round, is damage found by `check_file`); here only its name.
    walk(&dir, Path::new(""), 0, &mut |rel| {
        if expected.contains(rel) {
            return true;
        }
        unexpected = Some(rel.to_owned());
        false
    })?;
    Ok(match unexpected {
        Some(rel) => State::Damaged(format!("{} is not one of the model's files", rel.display())),
        None => State::Complete,
    })
}

/// Whether an error of a lookup inside a snapshot means that a component on the way is a
/// symlink or not a directory (what a planted link gives), which is damage, not a failure.
fn symlink_in_the_way(e: &StoreError) -> bool {
    matches!(e, StoreError::Io(io) if on_the_way(&io.source))
}

/// Whether an OS error says a symlink or a non-directory is on the way.
fn on_the_way(e: &std::io::Error) -> bool {
    os_error_is(e, Os::SymlinkInTheWay) || os_error_is(e, Os::NotADirectory)
}

/// How deep [`walk`] looks: a model's files are never deeper (file paths are at most 16 parts).
const MAX_DEPTH: usize = 32;

/// Calls `each(relative path)` for every entry under `dir`, directories before their contents,
/// never following a symlink (a symlink is an entry, not entered); stops when `each` says
/// `false`. Nothing deeper than [`MAX_DEPTH`] is entered.
fn walk(
    dir: &Rooted,
    rel: &Path,
    depth: usize,
    each: &mut dyn FnMut(&Path) -> bool,
) -> Result<bool, StoreError> {
    let Some(opened) = fsx::Dir::open(&dir.join(rel)).or_else(|e| {
        if on_the_way(&e.source) {
            Ok(None)
        } else {
            Err(e)
        }
    })?
    else {
        return Ok(true);
    };
    for name in opened.names()? {
        let path = rel.join(&name);
        if !each(&path) {
            return Ok(false);
        }
        let is_dir = opened.stat(&name)?.is_some_and(|m| m.is_dir());
        if is_dir && (depth >= MAX_DEPTH || !walk(dir, &path, depth + 1, each)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `None` when the snapshot's `f` is its blob; else what is wrong with it.
fn check_file(store: &Store, dir: &Rooted, f: &ModelFile) -> Result<Option<String>, StoreError> {
    let at = f.path.beneath(dir);
    let Some(meta) = fsx::stat(&at)? else {
        return Ok(Some("missing".into()));
    };
    let blob = store.layout().blob(&f.blake3);
    if meta.is_symlink() {
        let target = fsx::read_link(&at)?;
        return Ok((target != symlink_target(&blob, &f.path))
            .then(|| format!("a symlink to {}, not to its blob", target.display())));
    }
    if !meta.is_file() {
        return Ok(Some("not a regular file".into()));
    }
    match fsx::stat(&blob)? {
        Some(b) if b.looks_same(&meta) => Ok(None),
        Some(_) => Ok(Some("not a link to its blob".into())),
        None => Ok(Some("its blob is missing".into())),
    }
}

impl Store {
    /// `beaker store path NAME`: where a name the store holds is, if its main blob is there.
    ///
    /// `main` is the main file inside the model's snapshot, or the blob itself for a name
    /// recorded before snapshots existed (a format-1 store nobody could upgrade); `dir` is the
    /// snapshot when there is one. Read-only: a snapshot that is missing is reported as such
    /// ([`Located::snapshot_missing`]), not rebuilt here.
    pub fn locate(&self, name: &ModelName) -> Result<Located, StoreError> {
        let Some(record) = self.read_entry(name)? else {
            // Only on this error path: the names held, for a "did you mean".
            let held: Vec<ModelName> = self
                .read_manifest()
                .map(|m| m.models.into_keys().collect())
                .unwrap_or_default();
            return Err(StoreError::NotInStore {
                name: name.clone(),
                close: crate::model::catalogue::close_matches(
                    name.as_str(),
                    held.iter().map(ModelName::as_str),
                ),
            });
        };
        let model = &record.model;
        // Every file's blob must be there (a model is all its files), the main one first.
        let main_file = model.main();
        let others = model.files().iter().filter(|f| f.path != main_file.path);
        for f in std::iter::once(main_file).chain(others) {
            let id = f.blob.blake3;
            let blob = self.layout().blob(&id);
            match self.blob_state(&id, Some(f.blob.size))? {
                BlobState::Present { .. } => {}
                BlobState::Absent => {
                    return Err(StoreError::BlobMissing {
                        name: name.clone(),
                        blob: id,
                        path: blob.path(),
                    })
                }
                BlobState::Damaged { problem } => {
                    return Err(StoreError::DamagedBlob {
                        path: blob.path(),
                        problem,
                    })
                }
            }
        }
        let blob = self.layout().blob(&main_file.blob.blake3);
        let Some(tree) = record.tree else {
            return Ok(Located {
                main: blob.path(),
                dir: None,
                blob: blob.path(),
                snapshot_missing: false,
            });
        };
        let dir = self.layout().snapshot(&tree);
        let main = main_file.path.beneath(&dir).path();
        // Every file must be its blob (same inode, or the symlink of a symlink farm) and nothing
        // else may be there: anything else is a snapshot that needs repair, never a path handed
        // out (a tool opens the other files by name next to the main one).
        let snapshot_missing = crate::store::snapshot::check(self, &model.model_files())?
            != crate::store::snapshot::State::Complete;
        Ok(Located {
            main,
            dir: Some(dir.path()),
            blob: blob.path(),
            snapshot_missing,
        })
    }
}

/// Takes a snapshot out of use: for a model one of whose blobs went to quarantine, so no path
/// to the bad bytes stays in the store. The next pull or add builds it again.
pub fn retire(store: &Store, files: &[ModelFile]) -> Result<(), StoreError> {
    move_aside(store, &TreeId::of(files))
}

/// Where `name`'s model is, (re)building its snapshot first when the name records one that is
/// missing or damaged (deleted by hand, or a blob quarantined and published again) and every blob
/// is present. The repair writes (under `gc.lock` shared); a user who cannot write the store gets
/// [`StoreError::SnapshotMissing`], which names the command that repairs it.
pub fn locate(store: &Store, name: &crate::ModelName) -> Result<crate::store::Located, StoreError> {
    let located = store.locate(name)?;
    if !located.snapshot_missing {
        // A path handed out: a use (at most one write a minute, never a wait, never a failure).
        crate::store::uses::touch(store, name);
        return Ok(located);
    }
    let files = store
        .read_entry(name)?
        .ok_or_else(|| StoreError::NotInStore {
            name: name.clone(),
            close: Vec::new(),
        })?
        .model
        .model_files();
    let repaired = (|| {
        let _gc = store.gc_shared()?;
        ensure(store, &files)?;
        store.locate(name)
    })();
    if repaired.is_ok() {
        crate::store::uses::touch(store, name);
    }
    repaired.map_err(|e| match e {
        StoreError::NotWritable { .. } => StoreError::SnapshotMissing {
            name: name.clone(),
            dir: store.layout().snapshot(&TreeId::of(&files)).path(),
        },
        other => other,
    })
}

/// gc and `rm`: removes every snapshot whose tree is not in `keep` (links only; the blobs are
/// the blob sweep's business) and returns them; with `dry_run` only reports. Entries of
/// `snapshots/` that are not tree ids are returned as foreign and left alone.
pub fn sweep(
    store: &Store,
    keep: &BTreeSet<TreeId>,
    _gc: &crate::store::GcExclusive,
    dry_run: bool,
) -> Result<Swept, StoreError> {
    let mut out = Swept::default();
    for name in crate::store::names_in(&store.layout().snapshots())? {
        let Ok(id) = Blake3::from_hex(&name) else {
            out.foreign.push(name);
            continue;
        };
        let tree = TreeId(id);
        if keep.contains(&tree) {
            continue;
        }
        if !dry_run {
            remove(store, &tree)?;
        }
        out.removed.push(tree);
    }
    if !out.removed.is_empty() && !dry_run {
        fsx::sync_dir(&store.layout().snapshots())?;
    }
    Ok(out)
}

/// `rm`: removes the snapshots of `trees`, which no remaining name uses (the caller found that
/// under gc.lock, which it still holds), then fsyncs `snapshots/`.
pub fn remove_unused(
    store: &Store,
    trees: &BTreeSet<TreeId>,
    _gc: &crate::store::GcExclusive,
) -> Result<(), StoreError> {
    for tree in trees {
        remove(store, tree)?;
    }
    if !trees.is_empty() {
        fsx::sync_dir(&store.layout().snapshots())?;
    }
    Ok(())
}

/// What [`sweep`] removed (or would).
#[derive(Debug, Clone, Default)]
pub struct Swept {
    pub removed: Vec<TreeId>,
    pub foreign: Vec<String>,
}

/// Removes `snapshots/<tree>` (links only: the blobs stay).
fn remove(store: &Store, tree: &TreeId) -> Result<(), StoreError> {
    let dir = store.layout().snapshot(tree);
    match fsx::remove_tree(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(|e| StoreError::writing(store.root(), e)),
    }
}

#[cfg(test)]
mod tests {
    // Tests build stores by hand.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn symlink_targets_climb_to_the_store_root() {
        let dir = tempfile::tempdir().unwrap();
        let blob = Rooted::top(&fsx::Root::open(dir.path()).unwrap()).join("blobs/abc");
        let t = |p| symlink_target(&blob, &FilePath::new(p).unwrap());
        assert_eq!(t("m.onnx"), Path::new("../../blobs/abc"));
        assert_eq!(t("a/b/m.onnx"), Path::new("../../../../blobs/abc"));
    }
}
