//! Files outside any store, named by the user (a catalogue, a `file://` source, a file to add,
//! an export target, a configuration file, a man page): reached by path, following a symlink
//! the user chose, but never blocking on a FIFO or reading a device as if it were a model.
//!
//! A path inside a store never comes here: it is a [`super::Rooted`], which is not a `Path`.
#![allow(
    clippy::disallowed_methods,
    reason = "the path-based std::fs calls, for files outside any store"
)]

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::os;
use crate::sys::error::{IoContext, IoError};

/// Opens a file the *user* named for reading: a symlink is followed (the user chose it), but
/// anything that is not a regular file — a FIFO, `/dev/zero`, a directory — is refused with
/// `InvalidInput` before a byte is read.
///
/// # Security
/// `O_NONBLOCK` makes opening a FIFO return at once instead of waiting for a writer (a pull holds
/// the model's download lock meanwhile); the `fstat` on the open descriptor then refuses it, so a
/// path swapped between a check and the open cannot slip a special file through.
pub fn open(path: &Path) -> Result<File, IoError> {
    let file = os::user_open_options(false)
        .read(true)
        .open(path)
        .at("open", path)?;
    let meta = file.metadata().at("inspect", path)?;
    if !meta.is_file() {
        return Err(IoError::new(
            "read",
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("it is a {}, not a regular file", kind_of(&meta)),
            ),
        ));
    }
    Ok(file)
}

/// Reads a user-named file ([`open`]) of at most `limit` bytes; a longer one is refused with
/// `FileTooLarge` rather than read into memory without bound.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, IoError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .at("read", path)?;
    if bytes.len() as u64 > limit {
        return Err(IoError::new(
            "read",
            path,
            io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("it is larger than {limit} bytes, the most beaker reads from such a file"),
            ),
        ));
    }
    Ok(bytes)
}

/// What kind of file `meta` describes, for messages ("a FIFO", "a directory").
pub fn kind_of(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else {
        os::special_kind(&t)
    }
}

/// `stat` of a user-named path, following a symlink (the user chose it); `Ok(None)` if nothing is
/// there.
pub fn metadata(path: &Path) -> Result<Option<fs::Metadata>, IoError> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoError::new("inspect", path, e)),
    }
}

/// `lstat` of a user-named path (a symlink there is reported as one); `Ok(None)` if nothing is
/// there.
pub fn symlink_metadata(path: &Path) -> Result<Option<fs::Metadata>, IoError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoError::new("inspect", path, e)),
    }
}

/// The entries of a user's directory (paths, unsorted).
pub fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, IoError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at("list", dir)? {
        out.push(entry.at("list", dir)?.path());
    }
    Ok(out)
}

/// Creates `dir` and its missing parents with the default (umask) modes: only for directories
/// *outside* a store (its parent, an export target), never inside one.
pub fn create_dir_all(dir: &Path) -> Result<(), IoError> {
    fs::create_dir_all(dir).at("create directory", dir)
}

/// Writes `bytes` to a user's file, replacing it: written to a fresh temp file beside it
/// (`O_EXCL`, `mode`), fsynced, and renamed over it, so it is the old file or the new one.
pub fn write_replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IoError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mut file, tmp) = create_unique(dir, &stem, "tmp", mode)?;
    let result = (|| {
        file.write_all(bytes).at("write", &tmp)?;
        file.sync_all().at("fsync", &tmp)?;
        fs::rename(&tmp, path).at("rename into place", path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    os::sync_user_dir(dir).at("fsync directory", dir)
}

/// Writes `bytes` to a file of the user's outside any store (a man page, a report), replacing it
/// ([`write_replace`], mode 0644).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_replace(path, bytes, 0o644)
}

/// Creates `dir/<stem>.<pid>.<nonce>.<ext>` exclusively (`O_EXCL|O_NOFOLLOW`, `mode`, whatever
/// the umask) in a user's directory, retrying on the (unlikely) name clash.
pub fn create_unique(
    dir: &Path,
    stem: &str,
    ext: &str,
    mode: u32,
) -> Result<(File, PathBuf), IoError> {
    for _ in 0..16 {
        let path = dir.join(super::unique_name(stem, ext));
        match os::user_create_options(mode).open(&path) {
            Ok(f) => {
                os::set_file_mode(&f, mode).at("set permissions on", &path)?;
                return Ok((f, path));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(IoError::new("create", &path, e)),
        }
    }
    Err(IoError::new(
        "create a temp file in",
        dir,
        io::Error::other("no free name"),
    ))
}

/// Moves the user's file `from` to `to` unless something is at `to` (`renameat2` with
/// `RENAME_NOREPLACE`, else `link` + `unlink`); `false` when `to` was taken (then `from` stays).
pub fn persist_noclobber_keep(from: &Path, to: &Path) -> Result<bool, IoError> {
    match os::rename_noreplace_path(from, to) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
        Err(e) => return Err(IoError::new("move into place", to, e)),
    }
    match fs::hard_link(from, to) {
        Ok(()) => fs::remove_file(from).at("remove", from).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(IoError::new("move into place", to, e)),
    }
}

/// Removes a user's file (a temp file of ours beside an export target).
pub fn remove_file(path: &Path) -> Result<(), IoError> {
    fs::remove_file(path).at("remove", path)
}

/// Opens a file of the user's for reading *without* following a symlink at `path` (an export
/// target beaker wrote earlier, compared before it is replaced).
pub fn open_nofollow(path: &Path) -> Result<File, IoError> {
    os::user_open_options(true)
        .read(true)
        .open(path)
        .at("open", path)
}

/// Hard-links the store file `existing` (resolved inside its store without following a symlink)
/// to the user's path `new` (`linkat`, never following a symlink at `existing`).
pub fn link_from_store(existing: &super::Rooted, new: &Path) -> Result<(), IoError> {
    os::link_out(existing, new).at("link", new)
}

/// Creates the directory `dir` (its parent must exist) with `mode` set explicitly, or accepts
/// the directory already there (a symlink to one counts: the user chose it); anything else in
/// the way is refused. For a store's root, which the user names.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<(), IoError> {
    match fs::create_dir(dir) {
        Ok(()) => os::set_path_mode(dir, mode).at("set permissions on", dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(IoError::new(
                "use as a directory",
                dir,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "something that is not a directory is in the way",
                ),
            )),
        },
        Err(e) => Err(IoError::new("create directory", dir, e)),
    }
}

/// Removes a directory of the user's and everything in it (a symlink inside is unlinked, never
/// followed); a missing one is fine.
pub fn remove_tree(path: &Path) -> Result<(), IoError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(IoError::new("remove", path, e)),
        _ => Ok(()),
    }
}

/// Removes a user's file if it exists; returns whether it did.
pub fn remove_file_if_exists(path: &Path) -> Result<bool, IoError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IoError::new("remove", path, e)),
    }
}

/// Creates a new file of the user's (`O_EXCL|O_NOFOLLOW`, `mode` whatever the umask).
pub fn create_new(path: &Path, mode: u32) -> Result<File, IoError> {
    let f = os::user_create_options(mode)
        .open(path)
        .at("create", path)?;
    os::set_file_mode(&f, mode).at("set permissions on", path)?;
    Ok(f)
}

/// Opens a user's existing file for reading and writing (never blocking on a FIFO).
pub fn open_read_write(path: &Path) -> Result<File, IoError> {
    os::user_open_options(false)
        .read(true)
        .write(true)
        .open(path)
        .at("open", path)
}

/// Reads a small text file the user or the system names (`/proc/cpuinfo`, a log), following a
/// symlink there, never blocking on a FIFO.
pub fn read_to_string(path: &Path) -> Result<String, IoError> {
    use std::io::Read;
    let mut text = String::new();
    os::user_open_options(false)
        .read(true)
        .open(path)
        .at("open", path)?
        .read_to_string(&mut text)
        .at("read", path)?;
    Ok(text)
}

/// A fresh `dir/<stem>.<pid>.<nonce>.<ext>` path, not created.
pub fn unique_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    dir.join(super::unique_name(stem, ext))
}

/// Whether anything is at the user's `path` (a symlink there is followed).
pub fn exists(path: &Path) -> bool {
    fs::metadata(path).is_ok()
}

/// Renames the user's file `from` over `to`, a hard link of the store's `blob`, replacing it
/// (readers see the old file or the new). On Windows a read-only file cannot be replaced and the
/// attribute belongs to the file, not the name: the blob's is cleared for the rename and set
/// again after it, so for that moment the blob is not read-only (its bytes do not change).
pub fn replace_link_of(blob: &super::Rooted, from: &Path, to: &Path) -> Result<(), IoError> {
    os::replace_link_of(blob, from, to).at("rename into place", to)
}

/// Owner, group and permission bits of a user's file in Unix terms, on every platform: on
/// Windows this user, no group, and the read-only attribute as the mode (as
/// [`super::Meta::mode`] reads it).
pub trait Owner {
    fn uid(&self) -> u32;
    fn gid(&self) -> u32;
    fn mode(&self) -> u32;
}

impl Owner for fs::Metadata {
    fn uid(&self) -> u32 {
        os::owner(self).0
    }

    fn gid(&self) -> u32 {
        os::owner(self).1
    }

    fn mode(&self) -> u32 {
        os::owner(self).2
    }
}

/// The identity of the file at a user's path (device and inode; on Windows volume and file
/// index), following a symlink there when `follow`; `None` if nothing can be inspected there.
pub fn file_id(path: &Path, follow: bool) -> Option<(u64, u64)> {
    os::file_id(path, follow).ok()
}
