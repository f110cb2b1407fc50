//! The Unix system calls behind [`super`]'s functions: each one `*at` call on the directory
//! [`Rooted::split`] resolved, never following a symlink (the module doc of `beneath` says how).
//! Errors are the OS's own; `fsx` adds the action and the path.
#![allow(
    clippy::disallowed_methods,
    reason = "this is where fsx's raw calls are made"
)]
#![allow(
    unsafe_code,
    reason = "sync_file_range(2), signal(2), poll(2) and raise(3) have no safe wrapper"
)]

use std::fs::{File, Permissions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, RenameFlags};

use super::beneath::{self, Meta, Rooted, DIR_HANDLE};

/// A permission mode as the platform's `mode_t` (32 bits on Linux, 16 on macOS); only the
/// permission bits are kept.
#[allow(
    clippy::unnecessary_cast,
    reason = "mode_t is u32 on Linux, u16 on macOS"
)]
pub(crate) fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode((bits & 0o7777) as rustix::fs::RawMode)
}

/// `openat(O_CREAT|O_EXCL|O_NOFOLLOW)` read-write with `mode` (before the umask).
pub(super) fn create_new(at: &Rooted, mode: u32) -> io::Result<File> {
    let (dir, leaf) = at.split()?;
    beneath::open_leaf(
        dir.as_fd(),
        leaf,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
        self::mode(mode),
    )
    .map_err(Into::into)
}

/// Opens an existing file (`O_NOFOLLOW|O_NONBLOCK`), for reading or for both.
pub(super) fn open(at: &Rooted, write: bool) -> io::Result<File> {
    let (dir, leaf) = at.split()?;
    let flags = if write { OFlags::RDWR } else { OFlags::RDONLY };
    beneath::open_leaf(dir.as_fd(), leaf, flags, Mode::empty()).map_err(Into::into)
}

/// `fstatat(AT_SYMLINK_NOFOLLOW)` (`fstat` of the root); `None` if nothing is there.
pub(super) fn stat(at: &Rooted) -> io::Result<Option<Meta>> {
    if at.rel().as_os_str().is_empty() {
        let fd = at.open_dir_fd(DIR_HANDLE)?;
        return Meta::of(&fd).map(Some);
    }
    let (dir, leaf) = match at.split() {
        Ok(split) => split,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match beneath::stat_leaf(dir.as_fd(), leaf) {
        Ok(meta) => Ok(Some(meta)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `readlinkat`.
pub(super) fn read_link(at: &Rooted) -> io::Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let (dir, leaf) = at.split()?;
    let target = rfs::readlinkat(dir.as_fd(), leaf, Vec::new())?;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(
        target.into_bytes(),
    )))
}

/// `fchownat(AT_SYMLINK_NOFOLLOW)` to group `gid` (the root through its own descriptor).
pub(super) fn set_group(at: &Rooted, gid: u32) -> io::Result<()> {
    let group = Some(rfs::Gid::from_raw(gid));
    if at.rel().as_os_str().is_empty() {
        let fd = at.open_dir_fd(DIR_HANDLE)?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let changed = rfs::chownat(&fd, "", None, group, AtFlags::EMPTY_PATH);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let changed = rfs::fchown(&fd, None, group);
        return changed.map_err(Into::into);
    }
    let (dir, leaf) = at.split()?;
    rfs::chownat(dir.as_fd(), leaf, None, group, AtFlags::SYMLINK_NOFOLLOW).map_err(Into::into)
}

/// `fchmod` of the directory at `at`, opened without following a symlink.
pub(super) fn set_dir_mode(at: &Rooted, mode: u32) -> io::Result<()> {
    let fd = at.open_dir_fd(OFlags::RDONLY).map_err(not_a_dir)?;
    rfs::fchmod(&fd, self::mode(mode)).map_err(Into::into)
}

/// `ENOTDIR`/`ELOOP` from opening a directory, said for a person.
fn not_a_dir(e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ENOTDIR | libc::ELOOP) => io::Error::new(
            io::ErrorKind::AlreadyExists,
            "it is not a directory (or a symlink is on the way: beaker follows none inside a store)",
        ),
        _ => e,
    }
}

/// `fchmod` of an open file.
pub(super) fn set_file_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(Permissions::from_mode(mode))
}

/// `pwrite` of all of `bytes` at `offset`.
pub(super) fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

/// `pread` into `buf` at `offset`.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// `fsync` of the directory at `at`.
pub(super) fn sync_dir(at: &Rooted) -> io::Result<()> {
    let fd = at.open_dir_fd(OFlags::RDONLY)?;
    rfs::fsync(&fd).map_err(Into::into)
}

/// `renameat2(from, to)`, with `RENAME_NOREPLACE` when `noreplace`.
pub(super) fn rename(from: &Rooted, to: &Rooted, noreplace: bool) -> io::Result<()> {
    let flags = if noreplace {
        RenameFlags::NOREPLACE
    } else {
        RenameFlags::empty()
    };
    let (fdir, fleaf) = from.split()?;
    let (tdir, tleaf) = to.split()?;
    rfs::renameat_with(fdir.as_fd(), fleaf, tdir.as_fd(), tleaf, flags).map_err(Into::into)
}

/// Whether a `renameat2(RENAME_NOREPLACE)` error means the filesystem lacks it.
pub(super) fn lacks_noreplace(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS))
}

/// Whether a rename of a directory failed because a non-empty one is at the target.
pub(super) fn is_not_empty(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTEMPTY)
}

/// `linkat(from, to)` without `AT_SYMLINK_FOLLOW`: a symlink at `from` is linked as itself.
pub(super) fn link(from: &Rooted, to: &Rooted) -> io::Result<()> {
    let (fdir, fleaf) = from.split()?;
    let (tdir, tleaf) = to.split()?;
    rfs::linkat(fdir.as_fd(), fleaf, tdir.as_fd(), tleaf, AtFlags::empty()).map_err(Into::into)
}

/// `utimensat(AT_SYMLINK_NOFOLLOW)`: access and modification time to `to`, or to now.
pub(super) fn set_mtime(at: &Rooted, to: Option<std::time::SystemTime>) -> io::Result<()> {
    let time = match to {
        None => rfs::Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_NOW,
        },
        Some(t) => {
            let since = t
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or(std::time::Duration::ZERO);
            rfs::Timespec {
                tv_sec: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: since.subsec_nanos().into(),
            }
        }
    };
    let times = rfs::Timestamps {
        last_access: time,
        last_modification: time,
    };
    let (dir, leaf) = at.split()?;
    rfs::utimensat(dir.as_fd(), leaf, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(Into::into)
}

/// `FICLONE`.
pub(super) fn ficlone(dst: &File, src: &File) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return rustix::fs::ioctl_ficlone(dst.as_fd(), src.as_fd()).map_err(io::Error::from);
    // (macOS clones by path, `clonefile(2)`, not between open files: a copy there.)
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return {
        let _ = (dst, src);
        Err(io::ErrorKind::Unsupported.into())
    };
}

/// Whether `file` is on btrfs (`fstatfs`); `false` when that cannot be told.
pub(super) fn is_btrfs(file: &File) -> bool {
    const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;
    // `f_type` is i64 on some targets, u32 on others: compare its low 32 bits.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::fstatfs(file).is_ok_and(|s| (s.f_type as u64) & 0xffff_ffff == BTRFS_SUPER_MAGIC)
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)` where it exists; nothing elsewhere.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn start_writeback(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`; a filesystem without it is not an error.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
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

/// `unlinkat` of a file or symlink; `false` if nothing was there.
pub(super) fn unlink(at: &Rooted) -> io::Result<bool> {
    let (dir, leaf) = match at.split() {
        Ok(split) => split,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match rfs::unlinkat(dir.as_fd(), leaf, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes the tree at `at`, at most `depth` levels deep, following no symlink.
pub(super) fn remove_tree(at: &Rooted, depth: u32) -> io::Result<()> {
    let (dir, leaf) = at.split()?;
    beneath::remove_tree_leaf(dir.as_fd(), leaf, depth)
}

/// `mkdirat` with the permission bits of `mode` (before the umask).
pub(super) fn mkdir(at: &Rooted, mode: u32) -> io::Result<()> {
    let (dir, leaf) = at.split()?;
    rfs::mkdirat(dir.as_fd(), leaf, self::mode(mode & 0o777)).map_err(Into::into)
}

/// `symlinkat(target, at)`.
pub(super) fn symlink(target: &std::path::Path, at: &Rooted) -> io::Result<()> {
    let (dir, leaf) = at.split()?;
    rfs::symlinkat(target, dir.as_fd(), leaf).map_err(Into::into)
}

/// `faccessat(W_OK|X_OK, AT_EACCESS)` on the directory at `at`.
pub(super) fn may_write_in(at: &Rooted) -> io::Result<()> {
    let fd = at.open_dir_fd(DIR_HANDLE)?;
    rfs::accessat(
        &fd,
        ".",
        rfs::Access::WRITE_OK | rfs::Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .map_err(Into::into)
}

/// Hard-links the store file `existing` to the user's path `new` (`linkat`, never following a
/// symlink at `existing`).
pub(super) fn link_out(existing: &Rooted, new: &std::path::Path) -> io::Result<()> {
    let (dir, leaf) = existing.split()?;
    rfs::linkat(dir.as_fd(), leaf, rfs::CWD, new, AtFlags::empty()).map_err(Into::into)
}

/// `renameat2(RENAME_NOREPLACE)` between two user paths; `Unsupported` where the filesystem
/// lacks it.
pub(super) fn rename_noreplace_path(
    from: &std::path::Path,
    to: &std::path::Path,
) -> io::Result<()> {
    match rfs::renameat_with(rfs::CWD, from, rfs::CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            Err(io::ErrorKind::Unsupported.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Options for opening a user's file: never blocking on a FIFO, never inherited by a child,
/// and with `O_NOFOLLOW` when `nofollow`.
pub(super) fn user_open_options(nofollow: bool) -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    let extra = if nofollow { libc::O_NOFOLLOW } else { 0 };
    options.custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | extra);
    options
}

/// Options for creating a user's file exclusively with `mode` (`O_EXCL|O_NOFOLLOW`).
pub(super) fn user_create_options(mode: u32) -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options
        .write(true)
        .read(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    options
}

/// Sets `mode` on a user's file or directory by path.
pub(super) fn set_path_mode(path: &std::path::Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
}

/// `fsync` of a user's directory.
pub(super) fn sync_user_dir(dir: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?
        .sync_all()
}

/// What kind of special file `t` is, for messages; `None` for a file, directory or symlink.
pub(super) fn special_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
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

/// Whether nobody reads stdout any more: it is a pipe whose reading end is closed
/// (`beaker store ls | head -1` after `head` exits). SIGPIPE stays ignored, as Rust starts
/// programs, so writes to a closed pipe fail with EPIPE instead of killing the process —
/// which a credential helper that exits without reading its stdin relies on — and a
/// `println!` that meets EPIPE panics; the binary's panic hook asks this to end quietly then.
pub fn stdout_reader_gone() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a count of 1, no wait.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n == 1 && fd.revents & libc::POLLERR != 0
}

/// Ends the process as SIGPIPE's default action does (as `ls` ends when its reader goes):
/// no message, killed by the signal.
pub fn die_of_sigpipe() -> ! {
    // SAFETY: restoring one signal's default action and raising it have no memory-safety
    // preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}

/// On Ctrl-C (SIGINT), says on stderr that beaker was interrupted and what of its work is
/// kept, on a line of its own (after a progress bar), then dies of SIGINT as it would have:
/// the exit status a shell expects, and no destructor runs, so a partial download stays for
/// the next run. A SIGINT that is ignored (a background job) stays ignored.
pub fn say_on_interrupt() {
    extern "C" fn on_interrupt(sig: libc::c_int) {
        const MSG: &[u8] = b"\nbeaker: interrupted; a download in progress is kept, and the same command resumes it\n";
        // SAFETY: write(2), signal(2) and raise(3) are async-signal-safe; MSG is static.
        unsafe {
            libc::write(libc::STDERR_FILENO, MSG.as_ptr().cast(), MSG.len());
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
    // SAFETY: installing a handler that only calls async-signal-safe functions; the previous
    // disposition is read back first so an ignored SIGINT is left ignored.
    unsafe {
        let before = libc::signal(
            libc::SIGINT,
            on_interrupt as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t,
        );
        if before == libc::SIG_IGN {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
        }
    }
}

/// uid, gid and mode of a user's file.
pub(super) fn owner(meta: &std::fs::Metadata) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    (meta.uid(), meta.gid(), meta.mode())
}

/// Device and inode of the file at a user's path.
pub(super) fn file_id(path: &std::path::Path, follow: bool) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = if follow {
        std::fs::metadata(path)?
    } else {
        std::fs::symlink_metadata(path)?
    };
    Ok((meta.dev(), meta.ino()))
}

/// Unix refuses no open for want of a share mode: no other handle is needed.
pub(super) fn read_only_handle(_file: &File, _at: &Rooted) -> io::Result<Option<File>> {
    Ok(None)
}

/// `rename(from, to)`: a hard link at `to` is replaced like any name.
pub(super) fn replace_link_of(
    _blob: &Rooted,
    from: &std::path::Path,
    to: &std::path::Path,
) -> io::Result<()> {
    std::fs::rename(from, to)
}
