//! Every mutation of the disk, and every open of a file beaker did not create, in one place.
//!
//! No other module calls `std::fs::rename`, `remove_file`, `create_dir`, `set_permissions`,
//! `OpenOptions::open` and the like: `clippy.toml` bans them outside this file (`disallowed-methods`,
//! each with the wrapper to use instead), so the rule is checked by `cargo clippy`, not remembered.
//! Every error carries the path it happened on ([`IoError`]). Each function documents its
//! **Atomicity** and what it refuses, because the publish protocol (DESIGN §5) is only as strong as
//! these primitives:
//!
//! - files are created with `O_CREAT|O_EXCL|O_NOFOLLOW` and an explicit mode, so a planted file or
//!   symlink at the path is an error, never written through (DESIGN §8);
//! - every open carries `O_NONBLOCK`, so a FIFO planted where a file is expected cannot hang the
//!   process (it has no effect on regular files);
//! - [`persist_noclobber`] never replaces an existing blob (invariant I2); "already there" is reported,
//!   not treated as failure;
//! - [`replace_file`] + [`sync_dir`] give the atomic rewrite used for the store manifest (I3).
//!
//! The `unsafe` calls here are `renameat2(2)` and `utimensat(2)`, which std does not wrap;
//! [`mapped`] (a SIGBUS-safe read-only memory map, for verify) has its own.
#![allow(
    clippy::disallowed_methods,
    reason = "this is the module the raw std::fs mutations are confined to"
)]
#![allow(
    unsafe_code,
    reason = "renameat2(RENAME_NOREPLACE) and utimensat(AT_SYMLINK_NOFOLLOW) have no std wrapper"
)]

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{IoContext, IoError};

/// Flags every open inside a store carries: never follow a symlink, never leak into children, never
/// block on a FIFO planted where a file should be (`O_NONBLOCK` has no effect on regular files).
const OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;

/// Creates a new file for writing with `mode`, failing if *anything* is already at `path`
/// (including a dangling symlink).
///
/// # Security
/// `O_EXCL|O_NOFOLLOW`: a file or symlink planted at `path` by another user makes this fail with
/// `AlreadyExists`; it is never opened, truncated or written through. The mode is set again with
/// `fchmod` after creation because the umask may have removed bits we need.
pub fn create_exclusive(path: &Path, mode: u32) -> Result<File, IoError> {
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .at("create", path)?;
    set_mode(&file, mode, path)?;
    Ok(file)
}

/// Creates the file `path` with `mode` so that it appears with that mode already set: it is made
/// under a fresh hidden name beside `path` (`O_EXCL`, then `fchmod`, whatever the umask) and then
/// renamed into place without clobbering. Fails with `AlreadyExists` if anything is at `path`.
///
/// # Why
/// [`create_exclusive`] makes the file under its final name and then sets the mode, so for an
/// instant a file of a user with `umask 077` is 0600 at `path`, and another member of a group
/// store who opens it right then is refused (the fault campaign's two-user race found this on
/// `locks/gc.lock`). A file that others must open at once (a lock file) is created this way.
pub fn create_in_place(path: &Path, mode: u32) -> Result<File, IoError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = format!(
        ".{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let (file, tmp) = create_unique(dir, &stem, "new", mode)?;
    match persist_noclobber_keep(&tmp, path) {
        Ok(true) => Ok(file),
        Ok(false) => {
            let _ = remove_file(&tmp);
            Err(IoError::new(
                "create",
                path,
                io::Error::from(io::ErrorKind::AlreadyExists),
            ))
        }
        Err(e) => {
            let _ = remove_file(&tmp);
            Err(e)
        }
    }
}

/// Opens an existing file for reading without following a symlink at the last component.
///
/// `O_NONBLOCK` (in `OPEN_FLAGS`), so a FIFO planted where a file is expected cannot hang the
/// reader. The caller checks the file type if it needs a regular file.
pub fn open_read(path: &Path) -> Result<File, IoError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .at("open", path)
}

/// Opens a file the *user* named (a catalogue, a `file://` source) for reading: a symlink is
/// followed (the user chose it), but anything that is not a regular file — a FIFO, `/dev/zero`, a
/// directory — is refused with `InvalidInput` before a byte is read.
///
/// # Security
/// `O_NONBLOCK` makes opening a FIFO return at once instead of waiting for a writer (a pull holds
/// the model's download lock meanwhile); the `fstat` on the open descriptor then refuses it, so a
/// path swapped between a check and the open cannot slip a special file through.
pub fn open_user_file(path: &Path) -> Result<File, IoError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
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

/// Reads a user-named file ([`open_user_file`]) of at most `limit` bytes; a longer one is refused
/// with `FileTooLarge` rather than read into memory without bound.
pub fn read_user_file(path: &Path, limit: u64) -> Result<Vec<u8>, IoError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_user_file(path)?
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
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Reads a small text file inside a store (manifest, config) without following a symlink.
pub fn read_to_string(path: &Path) -> Result<String, IoError> {
    use std::io::Read;
    let mut text = String::new();
    open_read(path)?
        .read_to_string(&mut text)
        .at("read", path)?;
    Ok(text)
}

/// Gives `path` (not following a symlink) to group `gid`.
pub fn set_group(path: &Path, gid: u32) -> Result<(), IoError> {
    std::os::unix::fs::lchown(path, None, Some(gid)).at("change the group of", path)
}

/// Sets the mode of an existing directory (not following a symlink at `path`).
pub fn set_dir_mode(dir: &Path, mode: u32) -> Result<(), IoError> {
    let meta = fs::symlink_metadata(dir).at("inspect", dir)?;
    if !meta.is_dir() {
        return Err(IoError::new(
            "use as a directory",
            dir,
            io::Error::new(io::ErrorKind::AlreadyExists, "it is not a directory"),
        ));
    }
    fs::set_permissions(dir, Permissions::from_mode(mode)).at("set permissions on", dir)
}

/// Opens an existing file for reading and writing without following a symlink (`O_NONBLOCK`
/// too, like every open here). The caller checks the file type if it needs a regular file.
pub fn open_read_write(path: &Path) -> Result<File, IoError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .at("open", path)
}

/// `fchmod`: sets the mode on the open file, so it applies to what we created even if the path has
/// been swapped meanwhile.
pub fn set_mode(file: &File, mode: u32, path: &Path) -> Result<(), IoError> {
    file.set_permissions(Permissions::from_mode(mode))
        .at("set permissions on", path)
}

/// Sets the length of an open file (`ftruncate`): used to empty a temp blob that starts over.
pub fn truncate(file: &File, len: u64, path: &Path) -> Result<(), IoError> {
    file.set_len(len).at("truncate", path)
}

/// Replaces the content of an open file in place: truncate, then write `bytes` at offset 0.
///
/// **Atomicity**: none. A reader may see the file empty or partly written; used only for a lock
/// holder's record, which readers treat as best effort.
pub fn overwrite(file: &File, bytes: &[u8], path: &Path) -> Result<(), IoError> {
    use std::os::unix::fs::FileExt;
    file.set_len(0).at("truncate", path)?;
    file.write_all_at(bytes, 0).at("write", path)
}

/// Creates `dir` and its missing parents with the default (umask) modes: only for directories
/// *outside* a store (its parent, an export target), never inside one, where [`ensure_dir`] sets
/// modes explicitly.
pub fn create_dir_all(dir: &Path) -> Result<(), IoError> {
    fs::create_dir_all(dir).at("create directory", dir)
}

/// Flushes a file's data and metadata to stable storage.
pub fn sync_file(file: &File, path: &Path) -> Result<(), IoError> {
    file.sync_all().at("fsync", path)
}

/// Flushes a directory, making renames and links inside it durable.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | OPEN_FLAGS)
        .open(dir)
        .at("open directory", dir)?;
    d.sync_all().at("fsync directory", dir)
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
/// 0444 file for writing. After
/// `AlreadyExists` the source is removed: in a content-addressed store an existing `to` holds the
/// same bytes (invariant I1), so there is nothing to keep.
pub fn persist_noclobber(from: &Path, to: &Path) -> Result<Persisted, IoError> {
    match rename_noreplace(from, to) {
        Ok(()) => return Ok(Persisted::Created),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_file(from)?;
            return Ok(Persisted::AlreadyExists);
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {}
        Err(e) => return Err(IoError::new("publish into", to, e)),
    }
    match fs::hard_link(from, to) {
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

/// Whether `BEAKER_NO_RENAME_NOREPLACE=1` asks beaker to behave as on a filesystem without
/// `renameat2(RENAME_NOREPLACE)` (some NFS, older kernels): every no-clobber rename then takes
/// the `link(2)` + `unlink(2)` fallback. It exists so that the fallback, and the crash window
/// between its two calls, can be tested on ext4; it changes no result, only the system calls.
fn link_fallback_forced() -> bool {
    use std::sync::OnceLock;
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| std::env::var_os("BEAKER_NO_RENAME_NOREPLACE").is_some_and(|v| v == "1"))
}

#[cfg(target_os = "linux")]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    if link_fallback_forced() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
    };
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn rename_noreplace(_from: &Path, _to: &Path) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// Renames `from` over `to`, replacing it. **Atomicity**: readers see the old or the new file, never
/// a mix. Call [`sync_dir`] on the parent afterwards to make it durable.
pub fn replace_file(from: &Path, to: &Path) -> Result<(), IoError> {
    fs::rename(from, to).at("rename into place", to)
}

/// Moves `from` to `to` (same filesystem), replacing nothing: used for quarantine and for taking
/// over a partial file. Fails if `to` exists.
pub fn rename_exclusive(from: &Path, to: &Path) -> Result<(), IoError> {
    rename_noreplace(from, to)
        .or_else(|e| {
            if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
                fs::hard_link(from, to)?;
                fs::remove_file(from)
            } else {
                Err(e)
            }
        })
        .at("move to", to)
}

/// Sets the modification (and access) time of `path` without following a symlink there
/// (`utimensat(AT_SYMLINK_NOFOLLOW)`): to now when `to` is `None`, which any user with write
/// access to the file may do (a group store's use records rely on it); to `to` otherwise, which
/// only the owner (or root) may.
///
/// **Atomicity**: a single system call; readers see the old time or the new one. No data is
/// written and nothing is opened, so a FIFO at `path` cannot block it.
pub fn set_mtime(path: &Path, to: Option<std::time::SystemTime>) -> Result<(), IoError> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        IoError::new(
            "set the time of",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"),
        )
    })?;
    let time = match to {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(t) => {
            let since = t
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or(std::time::Duration::ZERO);
            libc::timespec {
                tv_sec: libc::time_t::try_from(since.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(since.subsec_nanos() as i32),
            }
        }
    };
    let times = [time, time];
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call and `times` is an array
    // of two initialised timespecs, as utimensat(2) requires.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(IoError::new(
            "set the time of",
            path,
            io::Error::last_os_error(),
        ))
    }
}

/// Starts writing `len` bytes of `file` from `offset` to disk and returns without waiting
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that the fsync ending a long write finds most
/// of the file written already: the disk works while the rest arrives. Not a durability point
/// (no metadata, no wait, no cache flush); only `sync_file` is. Where the call is not
/// supported it does nothing.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return Ok(());
    };
    // SAFETY: a plain system call on a descriptor we own; it reads no memory of ours.
    let rc = unsafe {
        libc::sync_file_range(
            std::os::fd::AsRawFd::as_raw_fd(file),
            offset,
            len,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    match io::Error::last_os_error() {
        e if matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS | libc::EINVAL | libc::ESPIPE)
        ) =>
        {
            Ok(())
        }
        e => Err(e),
    }
}

/// Removes the file (or symlink, never followed) at `path`.
pub fn remove_file(path: &Path) -> Result<(), IoError> {
    fs::remove_file(path).at("remove", path)
}

/// Removes a directory and everything in it, never following a symlink inside it (std's
/// `remove_dir_all` unlinks symlinks rather than descending into them). Used by gc for an old
/// directory in `quarantine/` (verify moves a directory found in `blobs/` there).
pub fn remove_tree(path: &Path) -> Result<(), IoError> {
    fs::remove_dir_all(path).at("remove", path)
}

/// Removes `path` if it exists; returns whether it did.
pub fn remove_file_if_exists(path: &Path) -> Result<bool, IoError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IoError::new("remove", path, e)),
    }
}

/// Creates `dir` if needed (its parent must exist: this never creates parents), then sets `mode`
/// on it explicitly (never trusting the umask). An existing directory is left as it is; a symlink
/// or a non-directory at `dir` is refused.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<(), IoError> {
    match fs::create_dir(dir) {
        Ok(()) => {
            fs::set_permissions(dir, Permissions::from_mode(mode)).at("set permissions on", dir)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(dir).at("inspect", dir)?;
            if meta.is_dir() {
                Ok(())
            } else {
                Err(IoError::new(
                    "use as a directory",
                    dir,
                    io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "something that is not a directory is in the way",
                    ),
                ))
            }
        }
        Err(e) => Err(IoError::new("create directory", dir, e)),
    }
}

/// Writes `bytes` to a fresh temp file in `tmp_dir`, fsyncs it, sets `mode`, and atomically renames
/// it over `dest`, then fsyncs `dest`'s directory.
///
/// **Atomicity**: a crash leaves either the old `dest` or the new one, plus at worst a stray temp
/// file that gc removes.
pub fn write_replace(tmp_dir: &Path, dest: &Path, bytes: &[u8], mode: u32) -> Result<(), IoError> {
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
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// A fresh `dir/<stem>.<pid>.<nonce>.<ext>` path for this process, *not* created: for
/// [`rename_exclusive`] targets (which refuse an existing file, so a clash is an error, never a
/// clobber).
pub fn unique_path(dir: &Path, stem: &str, ext: &str) -> std::path::PathBuf {
    dir.join(format!(
        "{stem}.{}.{:08x}.{ext}",
        std::process::id(),
        nonce()
    ))
}

/// Creates `dir/<stem>.<pid>.<nonce>.<ext>` exclusively, retrying on the (unlikely) name clash.
pub fn create_unique(
    dir: &Path,
    stem: &str,
    ext: &str,
    mode: u32,
) -> Result<(File, std::path::PathBuf), IoError> {
    let pid = std::process::id();
    let mut last = None;
    for _ in 0..16 {
        let path = dir.join(format!("{stem}.{pid}.{:08x}.{ext}", nonce()));
        match create_exclusive(&path, mode) {
            Ok(f) => return Ok((f, path)),
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
fn nonce() -> u32 {
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

/// Creates the directory `dir` with `mode` (set explicitly, never trusting the umask), failing if
/// anything is already at the path (`AlreadyExists`): a fresh directory only this process fills.
pub fn create_dir_exclusive(dir: &Path, mode: u32) -> Result<(), IoError> {
    fs::create_dir(dir).at("create directory", dir)?;
    fs::set_permissions(dir, Permissions::from_mode(mode)).at("set permissions on", dir)
}

/// `link(2)`: a second name for the file at `existing` (never follows a symlink at `existing`).
pub fn hard_link(existing: &Path, new: &Path) -> Result<(), IoError> {
    fs::hard_link(existing, new).at("link", new)
}

/// Creates a symlink at `link` pointing to `target` (written as given, typically relative).
pub fn symlink(target: &Path, link: &Path) -> Result<(), IoError> {
    std::os::unix::fs::symlink(target, link).at("create symlink", link)
}

/// Moves the directory `from` to `to` unless something is at `to`.
///
/// **Atomicity**: `to` is absent or complete at every instant. `renameat2(RENAME_NOREPLACE)`
/// where supported; else plain `rename(2)`, which for directories refuses to replace a
/// non-empty directory (`ENOTEMPTY`/`EEXIST`) — callers only move non-empty directories, so
/// that is no-clobber too (an *empty* directory at `to` would be replaced, losing nothing).
pub fn persist_dir_noclobber(from: &Path, to: &Path) -> Result<Persisted, IoError> {
    let taken = |e: &io::Error| {
        e.kind() == io::ErrorKind::AlreadyExists || e.raw_os_error() == Some(libc::ENOTEMPTY)
    };
    match rename_noreplace(from, to) {
        Ok(()) => return Ok(Persisted::Created),
        Err(e) if taken(&e) => return Ok(Persisted::AlreadyExists),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {}
        Err(e) => return Err(IoError::new("move into place", to, e)),
    }
    match fs::rename(from, to) {
        Ok(()) => Ok(Persisted::Created),
        Err(e) if taken(&e) => Ok(Persisted::AlreadyExists),
        Err(e) => Err(IoError::new("move into place", to, e)),
    }
}

/// Like [`persist_noclobber`], but when something already exists at `to` the source is left in
/// place (it is not known to hold the same bytes) and `false` is returned.
pub fn persist_noclobber_keep(from: &Path, to: &Path) -> Result<bool, IoError> {
    match rename_noreplace(from, to) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {}
        Err(e) => return Err(IoError::new("move into place", to, e)),
    }
    match fs::hard_link(from, to) {
        Ok(()) => remove_file(from).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(IoError::new("move into place", to, e)),
    }
}

/// Writes `bytes` to a file of the user's outside any store (a man page), replacing it: written
/// to a temp file beside it, fsynced, and renamed over it, so it is the old file or the new one.
pub fn write_user_file(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    write_replace(dir, path, bytes, 0o644)
}

/// Makes a write past `ulimit -f` fail with EFBIG instead of killing the process: the kernel's
/// SIGXFSZ default action is a silent kill (no message, no clean-up), so a program that writes
/// store files calls this once at start-up. Writers then report EFBIG like a full disk.
pub fn ignore_file_size_signal() {
    // SAFETY: installing SIG_IGN for one signal has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

pub mod mapped;

#[cfg(test)]
mod tests;
