//! Every mutation of the disk, and every open of a file beaker did not create, in one place.
//!
//! Inside a store, every path is a [`Rooted`]: resolved from the store's root descriptor with no
//! symlink followed in any component ([`beneath`]), so no call here can act on a file outside
//! the store, whatever a member planted in it. Files outside any store (catalogues, sources,
//! export targets, configuration) are reached by path through [`user`], whose functions say
//! so in their names and refuse what a user-named file must not be (a FIFO, a device).
//!
//! No other module calls `std::fs::rename`, `remove_file`, `create_dir`, `read_dir`,
//! `symlink_metadata`, `OpenOptions::open` and the like: `clippy.toml` bans them outside this
//! module (`disallowed-methods`, each with the wrapper to use instead), so the rule is checked by
//! `cargo clippy`, not remembered. Every error carries the path it happened on ([`IoError`]).
//! Each function documents its **Atomicity** and what it refuses, because the publish protocol
//! (docs/design.md, "Publish") is only as strong as these primitives:
//!
//! - files are created with `O_CREAT|O_EXCL|O_NOFOLLOW` and an explicit mode, so a planted file or
//!   symlink at the path is an error, never written through;
//! - every open carries `O_NONBLOCK`, so a FIFO planted where a file is expected cannot hang the
//!   process (it has no effect on regular files);
//! - [`persist_noclobber`] never replaces an existing blob (invariant I2); "already there" is reported,
//!   not treated as failure;
//! - [`replace_file`] + [`sync_dir`] give the atomic rewrite used for the store's records (I3).
//!
//! The system calls are made in one module per platform (`fsx/unix.rs`: `rustix`'s safe wrappers,
//! and `unsafe` for `sync_file_range(2)` and the signal calls; `fsx/windows.rs`: std and
//! `windows-sys`); this file holds what is the same everywhere. [`mapped`] (a SIGBUS-safe
//! read-only memory map, for verify) has its own.
#![allow(
    clippy::disallowed_methods,
    reason = "this is the module the raw std::fs calls are confined to"
)]

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::sys::error::{IoContext, IoError, Place};

pub mod beneath;
pub mod mapped;
pub mod user;

/// The system calls behind the functions here, one module per platform (each with the same
/// functions): `*at` calls on Unix, calls by checked path on Windows (docs/design.md#platforms).
#[cfg(unix)]
#[path = "fsx/unix.rs"]
mod os;
#[cfg(windows)]
#[path = "fsx/windows.rs"]
mod os;

pub use beneath::{Dir, Meta, Root, Rooted};
pub(crate) use os::read_at;
pub use os::{die_of_sigpipe, ignore_file_size_signal, say_on_interrupt, stdout_reader_gone};

/// Creates a new file for writing with `mode`, failing if *anything* is already at `at`
/// (including a dangling symlink).
///
/// # Security
/// `O_EXCL|O_NOFOLLOW` on the last component, and no symlink followed before it: a file or
/// symlink planted at `at` by another user makes this fail with `AlreadyExists`; it is never
/// opened, truncated or written through. The mode is set again with `fchmod` after creation
/// because the umask may have removed bits we need.
pub fn create_exclusive(at: &Rooted, mode: u32) -> Result<File, IoError> {
    let file = os::create_new(at, mode).at("create", at)?;
    set_mode(&file, mode, at)?;
    Ok(file)
}

/// Creates the file `at` with `mode` so that it appears with that mode already set: it is made
/// under a fresh hidden name beside `at` (`O_EXCL`, then `fchmod`, whatever the umask) and then
/// renamed into place without clobbering. Fails with `AlreadyExists` if anything is at `at`.
///
/// # Why
/// [`create_exclusive`] makes the file under its final name and then sets the mode, so for an
/// instant a file of a user with `umask 077` is 0600 at `at`, and another member of a group
/// store who opens it right then is refused (the fault campaign's two-user race found this on
/// `locks/gc.lock`). A file that others must open at once (a lock file) is created this way.
pub fn create_in_place(at: &Rooted, mode: u32) -> Result<File, IoError> {
    let Some(dir) = at.parent() else {
        return Err(IoError::new(
            "create",
            at,
            io::ErrorKind::InvalidInput.into(),
        ));
    };
    let stem = format!(
        ".{}",
        at.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let (file, tmp) = create_unique(&dir, &stem, "new", mode)?;
    match persist_noclobber_keep(&tmp, at) {
        Ok(true) => Ok(file),
        Ok(false) => {
            let _ = remove_file(&tmp);
            Err(IoError::new(
                "create",
                at,
                io::Error::from(io::ErrorKind::AlreadyExists),
            ))
        }
        Err(e) => {
            let _ = remove_file(&tmp);
            Err(e)
        }
    }
}

/// Opens an existing file for reading without following a symlink anywhere on the way.
///
/// `O_NONBLOCK`, so a FIFO planted where a file is expected cannot hang the reader. The caller
/// checks the file type if it needs a regular file.
pub fn open_read(at: &Rooted) -> Result<File, IoError> {
    os::open(at, false).at("open", at)
}

/// Opens an existing file for reading and writing, as [`open_read`] does.
pub fn open_read_write(at: &Rooted) -> Result<File, IoError> {
    os::open(at, true).at("open", at)
}

/// Reads a small text file inside a store (a record, a config) without following a symlink.
pub fn read_to_string(at: &Rooted) -> Result<String, IoError> {
    use std::io::Read;
    let mut text = String::new();
    open_read(at)?.read_to_string(&mut text).at("read", at)?;
    Ok(text)
}

/// What is at `at`, not following a symlink there (`fstatat(AT_SYMLINK_NOFOLLOW)`); `Ok(None)`
/// if nothing is. A symlink or non-directory *on the way* is an error (`ELOOP`/`ENOTDIR`).
pub fn stat(at: &Rooted) -> Result<Option<Meta>, IoError> {
    os::stat(at).at("inspect", at)
}

/// The target of the symlink at `at` (never followed).
pub fn read_link(at: &Rooted) -> Result<PathBuf, IoError> {
    os::read_link(at).at("read link", at)
}

/// Gives `at` (not following a symlink) to group `gid`.
pub fn set_group(at: &Rooted, gid: u32) -> Result<(), IoError> {
    os::set_group(at, gid).at("change the group of", at)
}

/// Sets the mode of an existing directory; a symlink or anything else at `at` is refused.
pub fn set_dir_mode(at: &Rooted, mode: u32) -> Result<(), IoError> {
    os::set_dir_mode(at, mode).at("set permissions on", at)
}

/// `fchmod`: sets the mode on the open file, so it applies to what we created even if the path has
/// been swapped meanwhile.
pub fn set_mode(file: &File, mode: u32, path: impl Place) -> Result<(), IoError> {
    os::set_file_mode(file, mode).at("set permissions on", path)
}

/// A handle to `file` (open at `at`) without write access to its data, to use instead of it:
/// on Windows a reopen for reading (and setting attributes), checked to be the same file, so
/// that another program may open it for reading with a share mode that refuses writers (ONNX
/// Runtime does). `None` on Unix, where no open is refused for that: keep `file`.
pub fn read_only_handle(file: &File, at: &Rooted) -> Result<Option<File>, IoError> {
    os::read_only_handle(file, at).at("reopen for reading", at)
}

/// Sets the length of an open file (`ftruncate`): used to empty a temp blob that starts over.
pub fn truncate(file: &File, len: u64, path: impl Place) -> Result<(), IoError> {
    file.set_len(len).at("truncate", path)
}

/// Replaces the content of an open file in place: truncate, then write `bytes` at offset 0.
///
/// **Atomicity**: none. A reader may see the file empty or partly written; used only for a lock
/// holder's record, which readers treat as best effort.
pub fn overwrite(file: &File, bytes: &[u8], path: impl Place) -> Result<(), IoError> {
    let path = path.place();
    file.set_len(0).at("truncate", &path)?;
    os::write_at(file, bytes, 0).at("write", &path)
}

/// Flushes a file's data and metadata to stable storage.
pub fn sync_file(file: &File, path: impl Place) -> Result<(), IoError> {
    file.sync_all().at("fsync", path)
}

/// Flushes a directory, making renames and links inside it durable.
pub fn sync_dir(at: &Rooted) -> Result<(), IoError> {
    os::sync_dir(at).at("fsync directory", at)
}

/// What [`persist_noclobber`] found at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persisted {
    /// `from` now lives at `to`.
    Created,
    /// Something already existed at `to`; it was left untouched and `from` was removed.
    AlreadyExists,
}

/// Moves `from` to `to` unless `to` exists.
///
/// **Atomicity**: at every instant `to` is either absent or a complete file (the one that was
/// already there, or `from`). Uses `renameat2(RENAME_NOREPLACE)` and falls back to `link(2)` +
/// `unlink(2)` on filesystems that do not support it (both refuse to replace).
///
/// **Crash window of the fallback**: a crash between `link` and `unlink` leaves `from` as a
/// second hard link to the published file (same inode, so also mode 0444). Whoever later opens a
/// file in `tmp/` for writing must refuse one with more than one link — see
/// `TempBlob::take_over`, which checks `nlink == 1` and the temp mode, because root can open a
/// 0444 file for writing. After `AlreadyExists` the source is removed: in a content-addressed
/// store an existing `to` holds the same bytes (invariant I1), so there is nothing to keep.
pub fn persist_noclobber(from: &Rooted, to: &Rooted) -> Result<Persisted, IoError> {
    match rename_noreplace(from, to) {
        Ok(()) => return Ok(Persisted::Created),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_file(from)?;
            return Ok(Persisted::AlreadyExists);
        }
        Err(e) if no_noreplace(&e) => {}
        Err(e) => return Err(IoError::new("publish into", to, e)),
    }
    match os::link(from, to) {
        Ok(()) => {
            remove_file(from)?;
            Ok(Persisted::Created)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_file(from)?;
            Ok(Persisted::AlreadyExists)
        }
        Err(e) => Err(IoError::new("publish into", to, e)),
    }
}

/// Whether a no-clobber rename failed because the filesystem lacks it (or
/// `BEAKER_NO_RENAME_NOREPLACE=1` says to behave as if it did).
fn no_noreplace(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported || os::lacks_noreplace(e)
}

/// Whether `BEAKER_NO_RENAME_NOREPLACE=1` asks beaker to behave as on a filesystem without
/// `renameat2(RENAME_NOREPLACE)` (some NFS, older kernels): every no-clobber rename then takes
/// the `link(2)` + `unlink(2)` fallback. It exists so that the fallback, and the crash window
/// between its two calls, can be tested on ext4; it changes no result, only the system calls.
fn link_fallback_forced() -> bool {
    use std::sync::OnceLock;
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| std::env::var_os("BEAKER_NO_RENAME_NOREPLACE").is_some_and(|v| v == "1"))
}

fn rename_noreplace(from: &Rooted, to: &Rooted) -> io::Result<()> {
    if link_fallback_forced() {
        return Err(io::ErrorKind::Unsupported.into());
    }
    os::rename(from, to, true)
}

/// `renameat2(from, to, RENAME_NOREPLACE)` alone, with no fallback: how the capability probe
/// asks whether the filesystem has it.
pub fn rename_exclusive_no_fallback(from: &Rooted, to: &Rooted) -> Result<(), IoError> {
    rename_noreplace(from, to).at("move to", to)
}

/// Renames `from` over `to`, replacing it. **Atomicity**: readers see the old or the new file, never
/// a mix. Call [`sync_dir`] on the parent afterwards to make it durable.
pub fn replace_file(from: &Rooted, to: &Rooted) -> Result<(), IoError> {
    os::rename(from, to, false).at("rename into place", to)
}

/// Moves `from` to `to` (same filesystem), replacing nothing: used for quarantine and for taking
/// over a partial file. Fails if `to` exists. Where `RENAME_NOREPLACE` is missing a *file* is
/// linked and unlinked; a directory is renamed with plain `rename(2)`, which replaces only an
/// empty directory (callers move directories to fresh names of their own).
pub fn rename_exclusive(from: &Rooted, to: &Rooted) -> Result<(), IoError> {
    rename_noreplace(from, to)
        .or_else(|e| {
            if !no_noreplace(&e) {
                return Err(e);
            }
            if stat(from).ok().flatten().is_some_and(|m| m.is_dir()) {
                return os::rename(from, to, false);
            }
            os::link(from, to)?;
            os::unlink(from).map(drop)
        })
        .at("move to", to)
}

/// Sets the modification (and access) time of `at` without following a symlink there
/// (`utimensat(AT_SYMLINK_NOFOLLOW)`): to now when `to` is `None`, which any user with write
/// access to the file may do (a group store's use records rely on it); to `to` otherwise, which
/// only the owner (or root) may.
///
/// **Atomicity**: a single system call; readers see the old time or the new one. No data is
/// written and nothing is opened, so a FIFO at `at` cannot block it.
pub fn set_mtime(at: &Rooted, to: Option<std::time::SystemTime>) -> Result<(), IoError> {
    os::set_mtime(at, to).at("set the time of", at)
}

/// Makes `dst` (empty) a clone of all of `src` without copying its bytes (`FICLONE`: btrfs, xfs
/// with reflink, bcachefs); the two share extents until either is written (copy on write).
/// Fails where the filesystem cannot (`EOPNOTSUPP`, `EXDEV` across filesystems, `EINVAL`), and
/// is never tried when `BEAKER_NO_REFLINK` is set (benchmarks compare the copy with it).
pub fn clone_file(dst: &File, src: &File) -> io::Result<()> {
    if std::env::var_os("BEAKER_NO_REFLINK").is_some() {
        return Err(io::ErrorKind::Unsupported.into());
    }
    ficlone(dst, src)
}

/// `FICLONE` itself, whatever `BEAKER_NO_REFLINK` says (the filesystem probe asks the
/// filesystem, not the setting).
pub fn ficlone(dst: &File, src: &File) -> io::Result<()> {
    os::ficlone(dst, src)
}

/// Whether `file` is on btrfs (`fstatfs`); `false` when that cannot be told.
pub fn is_btrfs(file: &File) -> bool {
    os::is_btrfs(file)
}

/// Starts writing `len` bytes of `file` from `offset` to disk and returns without waiting
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that the fsync ending a long write finds most
/// of the file written already: the disk works while the rest arrives. Not a durability point
/// (no metadata, no wait, no cache flush); only `sync_file` is. Where the call is not
/// supported it does nothing.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    os::start_writeback(file, offset, len)
}

/// Removes the file (or symlink, never followed) at `at`.
pub fn remove_file(at: &Rooted) -> Result<(), IoError> {
    match remove_file_if_exists(at) {
        Ok(true) => Ok(()),
        Ok(false) => Err(IoError::new("remove", at, io::ErrorKind::NotFound.into())),
        Err(e) => Err(e),
    }
}

/// Removes `at` if it exists; returns whether it did.
pub fn remove_file_if_exists(at: &Rooted) -> Result<bool, IoError> {
    os::unlink(at).at("remove", at)
}

/// How deep [`remove_tree`] goes: deeper than any model's file paths (a planted tree deeper than
/// this is refused, not recursed into without bound).
const MAX_TREE_DEPTH: u32 = 64;

/// Removes a directory and everything in it, never following a symlink (one inside is unlinked,
/// not descended into; one on the way to `at` fails the call). A file or symlink at `at` is
/// unlinked. Used for snapshots, staging directories and old quarantine.
pub fn remove_tree(at: &Rooted) -> Result<(), IoError> {
    os::remove_tree(at, MAX_TREE_DEPTH).at("remove", at)
}

/// Creates `at` if needed (its parent must exist: this never creates parents), then sets `mode`
/// on it explicitly (never trusting the umask). An existing directory is left as it is; a symlink
/// or a non-directory at `at` is refused.
pub fn ensure_dir(at: &Rooted, mode: u32) -> Result<(), IoError> {
    match mkdir(at, mode) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match stat(at)? {
            Some(meta) if meta.is_dir() => Ok(()),
            _ => Err(IoError::new(
                "use as a directory",
                at,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "something that is not a directory is in the way",
                ),
            )),
        },
        Err(e) => Err(e),
    }
}

/// Creates the directory `at` with `mode` (set explicitly, never trusting the umask), failing if
/// anything is already at the path (`AlreadyExists`): a fresh directory only this process fills.
pub fn create_dir_exclusive(at: &Rooted, mode: u32) -> Result<(), IoError> {
    mkdir(at, mode)
}

fn mkdir(at: &Rooted, mode: u32) -> Result<(), IoError> {
    os::mkdir(at, mode).at("create directory", at)?;
    set_dir_mode(at, mode)
}

/// Writes `bytes` to a fresh temp file in `tmp_dir`, fsyncs it, sets `mode`, and atomically renames
/// it over `dest`, then fsyncs `dest`'s directory.
///
/// **Atomicity**: a crash leaves either the old `dest` or the new one, plus at worst a stray temp
/// file that gc removes.
pub fn write_replace(
    tmp_dir: &Rooted,
    dest: &Rooted,
    bytes: &[u8],
    mode: u32,
) -> Result<(), IoError> {
    let stem = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mut file, tmp) = create_unique(tmp_dir, &stem, "tmp", mode)?;
    let result = (|| {
        file.write_all(bytes).at("write", &tmp)?;
        sync_file(&file, &tmp)?;
        replace_file(&tmp, dest)
    })();
    if result.is_err() {
        let _ = remove_file_if_exists(&tmp);
    }
    result?;
    if let Some(parent) = dest.parent() {
        sync_dir(&parent)?;
    }
    Ok(())
}

/// A fresh `dir/<stem>.<pid>.<nonce>.<ext>` path for this process, *not* created: for
/// [`rename_exclusive`] targets (which refuse an existing file, so a clash is an error, never a
/// clobber).
pub fn unique_path(dir: &Rooted, stem: &str, ext: &str) -> Rooted {
    dir.join(unique_name(stem, ext))
}

/// `<stem>.<pid>.<nonce>.<ext>`.
pub(crate) fn unique_name(stem: &str, ext: &str) -> String {
    format!("{stem}.{}.{:08x}.{ext}", std::process::id(), nonce())
}

/// Creates `dir/<stem>.<pid>.<nonce>.<ext>` exclusively, retrying on the (unlikely) name clash.
pub fn create_unique(
    dir: &Rooted,
    stem: &str,
    ext: &str,
    mode: u32,
) -> Result<(File, Rooted), IoError> {
    let mut last = None;
    for _ in 0..16 {
        let at = dir.join(unique_name(stem, ext));
        match create_exclusive(&at, mode) {
            Ok(f) => return Ok((f, at)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        IoError::new(
            "create a temp file in",
            dir,
            io::Error::other("no free name"),
        )
    }))
}

/// A per-process-unique 32-bit value: time, a counter and the pid mixed through BLAKE3.
pub(crate) fn nonce() -> u32 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = blake3::Hasher::new();
    h.update(&nanos.to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    let b = h.finalize();
    u32::from_le_bytes([
        b.as_bytes()[0],
        b.as_bytes()[1],
        b.as_bytes()[2],
        b.as_bytes()[3],
    ])
}

/// `link(2)`: a second name for the file at `existing` (never follows a symlink at `existing`).
pub fn hard_link(existing: &Rooted, new: &Rooted) -> Result<(), IoError> {
    os::link(existing, new).at("link", new)
}

/// Creates a symlink at `at` pointing to `target` (written as given, typically relative).
pub fn symlink(target: &Path, at: &Rooted) -> Result<(), IoError> {
    os::symlink(target, at).at("create symlink", at)
}

/// Moves the directory `from` to `to` unless something is at `to`.
///
/// **Atomicity**: `to` is absent or complete at every instant. `renameat2(RENAME_NOREPLACE)`
/// where supported; else plain `rename(2)`, which for directories refuses to replace a
/// non-empty directory (`ENOTEMPTY`/`EEXIST`) — callers only move non-empty directories, so
/// that is no-clobber too (an *empty* directory at `to` would be replaced, losing nothing).
pub fn persist_dir_noclobber(from: &Rooted, to: &Rooted) -> Result<Persisted, IoError> {
    let taken = |e: &io::Error| e.kind() == io::ErrorKind::AlreadyExists || os::is_not_empty(e);
    match rename_noreplace(from, to) {
        Ok(()) => return Ok(Persisted::Created),
        Err(e) if taken(&e) => return Ok(Persisted::AlreadyExists),
        Err(e) if no_noreplace(&e) => {}
        Err(e) => return Err(IoError::new("move into place", to, e)),
    }
    match os::rename(from, to, false) {
        Ok(()) => Ok(Persisted::Created),
        Err(e) if taken(&e) => Ok(Persisted::AlreadyExists),
        Err(e) => Err(IoError::new("move into place", to, e)),
    }
}

/// Like [`persist_noclobber`], but when something already exists at `to` the source is left in
/// place (it is not known to hold the same bytes) and `false` is returned.
pub fn persist_noclobber_keep(from: &Rooted, to: &Rooted) -> Result<bool, IoError> {
    match rename_noreplace(from, to) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) if no_noreplace(&e) => {}
        Err(e) => return Err(IoError::new("move into place", to, e)),
    }
    match os::link(from, to) {
        Ok(()) => remove_file(from).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(IoError::new("move into place", to, e)),
    }
}

/// Whether this process, with its *effective* ids, may create and delete entries in the
/// directory `at` (`faccessat(W_OK|X_OK, AT_EACCESS)`): `Ok` if so, else the OS's reason
/// (`NotFound` if it does not exist).
pub fn may_write_in(at: &Rooted) -> io::Result<()> {
    os::may_write_in(at)
}

/// The names in the directory `at`, unsorted; `Ok(None)` if there is no such directory. A
/// symlink at `at` or on the way is an error, never listed through.
pub fn list(at: &Rooted) -> Result<Option<Vec<std::ffi::OsString>>, IoError> {
    match Dir::open(at)? {
        Some(dir) => dir.names().map(Some),
        None => Ok(None),
    }
}

/// Whether `name` is one plain path component (not empty, `.`, `..`, and without `/`).
pub fn is_leaf(name: &OsStr) -> bool {
    beneath::check_leaf(name).is_ok()
}

#[cfg(test)]
mod tests;
