//! The Windows calls behind [`super`]'s functions. Each acts on the `\\?\` path
//! [`Rooted::native`] checked (no link on the way) and never follows a link at the last
//! component. What Windows lacks, and what stands in for it:
//!
//! - no modes: a mode without write bits becomes the read-only attribute (published blobs);
//!   the rest of a mode, and groups, are the directory's ACL's business and set nothing;
//! - no directory fsync: renames are made with `MOVEFILE_WRITE_THROUGH` instead;
//! - a file another process has open without `FILE_SHARE_DELETE` (a virus scanner, an indexer)
//!   cannot be renamed or deleted for a moment: those calls are retried for up to a second;
//! - no signals: nothing to ignore for SIGXFSZ or SIGPIPE, and Ctrl-C ends the process as
//!   Windows ends it.
#![allow(
    clippy::disallowed_methods,
    reason = "this is where fsx's raw calls are made"
)]
#![allow(
    unsafe_code,
    reason = "MoveFileExW without replace and a POSIX-semantics delete have no std wrapper"
)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use windows_sys::Win32::Storage::FileSystem::{
    MoveFileExW, FILE_ATTRIBUTE_READONLY, FILE_READ_ATTRIBUTES, FILE_WRITE_ATTRIBUTES,
    MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH,
};

use super::beneath::{self, Meta, Rooted, SHARE_ALL};

/// `ERROR_SHARING_VIOLATION`, `ERROR_LOCK_VIOLATION`, `ERROR_ACCESS_DENIED` (also what a file
/// whose deletion is pending gives): what another process holding a file open causes.
const BUSY: [i32; 3] = [32, 33, 5];
/// `ERROR_DIR_NOT_EMPTY`.
const DIR_NOT_EMPTY: i32 = 145;

/// Runs `call` again while it fails because another process has the file open, for up to a
/// second in all (a scanner or an indexer lets go in milliseconds).
fn retry_busy<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut wait = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    loop {
        match call() {
            Err(e)
                if e.raw_os_error().is_some_and(|c| BUSY.contains(&c))
                    && waited < Duration::from_secs(1) =>
            {
                std::thread::sleep(wait);
                waited += wait;
                wait = (wait * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// A NUL-terminated UTF-16 copy of `path`, for the wide Win32 calls.
fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str().encode_wide().chain([0]).collect()
}

/// `MoveFileExW(from, to)`, replacing `to` unless `noreplace`, written through to the disk.
fn move_file(from: &Path, to: &Path, noreplace: bool) -> io::Result<()> {
    let (from, to) = (wide(from), wide(to));
    let mut flags = MOVEFILE_WRITE_THROUGH;
    if !noreplace {
        flags |= MOVEFILE_REPLACE_EXISTING;
    }
    retry_busy(|| {
        // SAFETY: two NUL-terminated wide strings that live across the call.
        let ok = unsafe { MoveFileExW(from.as_ptr(), to.as_ptr(), flags) };
        if ok == 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    })
}

/// Creates the file at `at` (nothing may be there, not even a link), for reading and writing.
/// A name whose file is being deleted while another process still has it open refuses the
/// create for that moment (where deletes are not POSIX ones): retried like a busy file.
pub(super) fn create_new(at: &Rooted, mode: u32) -> io::Result<File> {
    let path = at.native()?;
    let file = retry_busy(|| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .share_mode(SHARE_ALL)
            .open(&path)
    })?;
    set_file_mode(&file, mode)?;
    Ok(file)
}

/// Opens an existing file (not a link) for reading, or for both. A file being deleted while
/// another process has it open refuses the open for that moment (where deletes are not POSIX
/// ones): retried, so that it is then gone (`NotFound`), as on Unix.
pub(super) fn open(at: &Rooted, write: bool) -> io::Result<File> {
    let mut options = beneath::open_options();
    options.read(true).write(write);
    retry_busy(|| beneath::open_leaf(at, &options))
}

/// What is at `at`, not following a link there; `None` if nothing is.
pub(super) fn stat(at: &Rooted) -> io::Result<Option<Meta>> {
    match Meta::at(at) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The target of the link at `at`.
pub(super) fn read_link(at: &Rooted) -> io::Result<PathBuf> {
    std::fs::read_link(at.native()?)
}

/// Windows has no file groups: a shared store relies on its directory's ACL.
pub(super) fn set_group(at: &Rooted, _gid: u32) -> io::Result<()> {
    at.native().map(drop)
}

/// Windows directories have no mode: checks that a directory (not a link) is there.
pub(super) fn set_dir_mode(at: &Rooted, _mode: u32) -> io::Result<()> {
    at.native_dir().map(drop)
}

/// The read-only attribute when `mode` has no write bit; cleared otherwise.
pub(super) fn set_file_mode(file: &File, mode: u32) -> io::Result<()> {
    let mut perms = file.metadata()?.permissions();
    perms.set_readonly(mode & 0o222 == 0);
    file.set_permissions(perms)
}

/// Writes all of `bytes` at `offset`.
pub(super) fn write_at(file: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        let n = file.seek_write(bytes, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Reads into `buf` at `offset` (the file position moves, unlike `pread`; callers do not use it).
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::windows::fs::FileExt;
    match file.seek_read(buf, offset) {
        // Reading at or past the end fails with ERROR_HANDLE_EOF, where pread returns 0.
        Err(e) if e.raw_os_error() == Some(38) => Ok(0),
        other => other,
    }
}

/// Windows cannot flush a directory: renames are written through instead.
pub(super) fn sync_dir(at: &Rooted) -> io::Result<()> {
    at.native_dir().map(drop)
}

/// Renames `from` to `to`, replacing `to` unless `noreplace`.
pub(super) fn rename(from: &Rooted, to: &Rooted, noreplace: bool) -> io::Result<()> {
    move_file(&from.native()?, &to.native()?, noreplace)
}

/// `MoveFileExW` without `MOVEFILE_REPLACE_EXISTING` always refuses to replace.
pub(super) fn lacks_noreplace(_e: &io::Error) -> bool {
    false
}

/// Whether a rename of a directory failed because a non-empty one is at the target.
pub(super) fn is_not_empty(e: &io::Error) -> bool {
    e.raw_os_error() == Some(DIR_NOT_EMPTY)
}

/// `CreateHardLinkW`: a second name for the file at `from` (a link there is linked as itself);
/// retried while `from` is being deleted by another process, as [`open`] is.
pub(super) fn link(from: &Rooted, to: &Rooted) -> io::Result<()> {
    let (from, to) = (from.native()?, to.native()?);
    retry_busy(|| std::fs::hard_link(&from, &to))
}

/// Sets the last write (and access) time of `at`, not following a link there.
pub(super) fn set_mtime(at: &Rooted, to: Option<std::time::SystemTime>) -> io::Result<()> {
    let mut options = beneath::open_options();
    options.access_mode(FILE_WRITE_ATTRIBUTES);
    let file = beneath::open_leaf(at, &options)?;
    let when = to.unwrap_or_else(std::time::SystemTime::now);
    file.set_times(
        std::fs::FileTimes::new()
            .set_accessed(when)
            .set_modified(when),
    )
}

/// Block cloning (ReFS) is not used: a copy.
pub(super) fn ficlone(_dst: &File, _src: &File) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// There is no btrfs on Windows.
pub(super) fn is_btrfs(_file: &File) -> bool {
    false
}

/// No early writeback call: `sync_file` does it all.
pub(super) fn start_writeback(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

/// Deletes the file or link at `at`, never following a link there; `false` if nothing was
/// there. Asked with POSIX semantics (Windows 10 1709 and later, on NTFS): the name goes at once
/// even while another process has the file open, as `unlink` does, and the read-only attribute
/// a blob has does not stand in the way. Where that is refused (older Windows, FAT, wine), a
/// plain delete after clearing the read-only attribute: then the name stays until the last
/// handle to the file is closed.
pub(super) fn unlink(at: &Rooted) -> io::Result<bool> {
    let path = match at.native() {
        Ok(path) => path,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let removed = retry_busy(|| {
        if delete_posix(&path)? {
            return Ok(());
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && clear_readonly(&path) => {
                std::fs::remove_file(&path)
            }
            other => other,
        }
    });
    match removed {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// `DELETE` access right.
const DELETE: u32 = 0x0001_0000;

/// Deletes `path` (as itself, not following a link) with `FILE_DISPOSITION_POSIX_SEMANTICS`;
/// `Ok(false)` where the system or filesystem does not offer it.
fn delete_posix(path: &Path) -> io::Result<bool> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Storage::FileSystem::{
        FileDispositionInfoEx, SetFileInformationByHandle, FILE_DISPOSITION_FLAG_DELETE,
        FILE_DISPOSITION_FLAG_IGNORE_READONLY_ATTRIBUTE, FILE_DISPOSITION_FLAG_POSIX_SEMANTICS,
        FILE_DISPOSITION_INFO_EX,
    };
    let mut options = beneath::open_options();
    options.access_mode(DELETE);
    let file = options.open(path)?;
    let info = FILE_DISPOSITION_INFO_EX {
        Flags: FILE_DISPOSITION_FLAG_DELETE
            | FILE_DISPOSITION_FLAG_POSIX_SEMANTICS
            | FILE_DISPOSITION_FLAG_IGNORE_READONLY_ATTRIBUTE,
    };
    // SAFETY: an open handle with DELETE access, and the struct this class takes, with its size.
    let ok = unsafe {
        SetFileInformationByHandle(
            file.as_raw_handle(),
            FileDispositionInfoEx,
            (&info as *const FILE_DISPOSITION_INFO_EX).cast(),
            std::mem::size_of::<FILE_DISPOSITION_INFO_EX>() as u32,
        )
    };
    if ok != 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    // ERROR_INVALID_FUNCTION, ERROR_NOT_SUPPORTED, ERROR_INVALID_PARAMETER: not offered here.
    if matches!(e.raw_os_error(), Some(1 | 50 | 87)) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Clears the read-only attribute of the file (not a link) at `path`; whether it was set.
fn clear_readonly(path: &Path) -> bool {
    let mut options = beneath::open_options();
    options.access_mode(FILE_WRITE_ATTRIBUTES | FILE_READ_ATTRIBUTES);
    let Ok(file) = options.open(path) else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    use std::os::windows::fs::MetadataExt;
    if meta.file_attributes() & FILE_ATTRIBUTE_READONLY == 0 {
        return false;
    }
    let mut perms = meta.permissions();
    #[allow(
        clippy::permissions_set_readonly_false,
        reason = "on Windows this clears the attribute; there is no world to open it to"
    )]
    perms.set_readonly(false);
    file.set_permissions(perms).is_ok()
}

/// Removes the tree at `at` (at most `depth` levels deep), never following a link inside: a
/// link is deleted as itself.
pub(super) fn remove_tree(at: &Rooted, depth: u32) -> io::Result<()> {
    let meta = Meta::at(at)?;
    if !meta.is_dir() {
        if meta.is_symlink() && meta.attrs_dir() {
            // A directory link (a junction, or a symlink to a directory) is removed as a directory.
            return retry_busy(|| std::fs::remove_dir(at.native()?));
        }
        return unlink(at).map(drop);
    }
    if depth == 0 {
        return Err(io::Error::from_raw_os_error(beneath::STOPPED_ON_SYMLINK));
    }
    for name in std::fs::read_dir(at.native_dir()?)? {
        let child = at.join(name?.file_name());
        match remove_tree(&child, depth - 1) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    retry_busy(|| std::fs::remove_dir(at.native_dir()?))
}

/// Creates the directory `at` (modes do not apply).
pub(super) fn mkdir(at: &Rooted, _mode: u32) -> io::Result<()> {
    std::fs::create_dir(at.native()?)
}

/// Creates a file symlink at `at` (which needs Developer Mode or the privilege to create them).
pub(super) fn symlink(target: &Path, at: &Rooted) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, at.native()?)
}

/// Whether entries may be made in the directory at `at`: Windows says so only by trying, so
/// this checks that the directory is there and not read-only.
pub(super) fn may_write_in(at: &Rooted) -> io::Result<()> {
    let path = at.native_dir()?;
    if std::fs::metadata(path)?.permissions().readonly() {
        return Err(io::ErrorKind::PermissionDenied.into());
    }
    Ok(())
}

/// Hard-links the store file `existing` to the user's path `new`.
pub(super) fn link_out(existing: &Rooted, new: &Path) -> io::Result<()> {
    std::fs::hard_link(existing.native()?, new)
}

/// `MoveFileExW` without replace between two user paths.
pub(super) fn rename_noreplace_path(from: &Path, to: &Path) -> io::Result<()> {
    move_file(from, to, true)
}

/// Options for opening a user's file; with `nofollow`, a link at the path is opened as itself
/// (and then is not a regular file, which callers refuse).
pub(super) fn user_open_options(nofollow: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.share_mode(SHARE_ALL);
    if nofollow {
        options.custom_flags(windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT);
    }
    options
}

/// Options for creating a user's file exclusively (the read-only attribute is set after).
pub(super) fn user_create_options(_mode: u32) -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .read(true)
        .create_new(true)
        .share_mode(SHARE_ALL);
    options
}

/// Windows directories and files have no mode to set by path.
pub(super) fn set_path_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Windows cannot flush a directory.
pub(super) fn sync_user_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Windows has no FIFOs or device files in its directories.
pub(super) fn special_kind(_t: &std::fs::FileType) -> &'static str {
    "special file"
}

/// Windows has no SIGXFSZ.
pub fn ignore_file_size_signal() {}

/// Whether nobody reads stdout any more: Windows reports a closed pipe as an error of the
/// write itself, which `println!` turns into a panic the binary's hook sees.
pub fn stdout_reader_gone() -> bool {
    false
}

/// Ends the process as a closed pipe would end `ls`: quietly, with failure.
pub fn die_of_sigpipe() -> ! {
    std::process::exit(141)
}

/// Windows ends a process on Ctrl-C without a handler; a partial download stays all the same.
pub fn say_on_interrupt() {}

/// This user, no group, and the mode [`Meta::mode`] gives.
pub(super) fn owner(meta: &std::fs::Metadata) -> (u32, u32, u32) {
    let mode = if meta.is_dir() {
        0o755
    } else if meta.permissions().readonly() {
        0o444
    } else {
        0o600
    };
    (crate::sys::who::euid(), 0, mode)
}

/// Volume serial and file index of the file at a user's path.
pub(super) fn file_id(path: &Path, follow: bool) -> io::Result<(u64, u64)> {
    let mut options = user_open_options(!follow);
    options
        .access_mode(windows_sys::Win32::Storage::FileSystem::FILE_READ_ATTRIBUTES)
        .custom_flags(
            windows_sys::Win32::Storage::FileSystem::FILE_FLAG_BACKUP_SEMANTICS
                | if follow {
                    0
                } else {
                    windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT
                },
        );
    let meta = Meta::of(&options.open(path)?)?;
    Ok((meta.dev(), meta.ino()))
}

/// Reopens the file at `at` for reading and setting attributes (its mode), and gives that
/// handle instead of `file` once it is known to be the same file.
pub(super) fn read_only_handle(file: &File, at: &Rooted) -> io::Result<Option<File>> {
    let mut options = beneath::open_options();
    options.access_mode(windows_sys::Win32::Foundation::GENERIC_READ | FILE_WRITE_ATTRIBUTES);
    let reopened = beneath::open_leaf(at, &options)?;
    if !Meta::of(&reopened)?.same_file(&Meta::of(file)?) {
        return Err(io::Error::other(
            "another file took its name while it was open (tmp/ is written by others)",
        ));
    }
    Ok(Some(reopened))
}

/// Replaces `to`, a hard link of the store's read-only `blob`, by `from`: the blob's read-only
/// attribute is cleared for the rename (Windows replaces no read-only file) and set again.
pub(super) fn replace_link_of(blob: &Rooted, from: &Path, to: &Path) -> io::Result<()> {
    let attributes = || {
        let mut options = beneath::open_options();
        options.access_mode(FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES);
        beneath::open_leaf(blob, &options)
    };
    // (Each handle is closed before the rename: wine replaces no file that is open.)
    let was_read_only = {
        let handle = attributes()?;
        let read_only = handle.metadata()?.permissions().readonly();
        if read_only {
            set_file_mode(&handle, 0o644)?;
        }
        read_only
    };
    let moved = move_file(from, to, false);
    if was_read_only {
        set_file_mode(&attributes()?, 0o444)?;
    }
    moved
}
