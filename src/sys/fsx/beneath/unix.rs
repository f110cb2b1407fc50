//! The Unix resolution of store paths: `openat2`, else a walk of `openat(O_NOFOLLOW)` calls,
//! and the `*at` calls on the last component (the module doc of `beneath` says why).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};

use super::{check_leaf, check_plain, Root, Rooted};
use crate::sys::error::IoError;

/// How a directory is opened to be named, inspected or used as a base: `O_PATH` on Linux (no
/// read permission needed, nothing read); a read-only open where there is no `O_PATH` (macOS).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const DIR_HANDLE: OFlags = OFlags::PATH;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const DIR_HANDLE: OFlags = OFlags::RDONLY;

impl Root {
    /// Opens the directory at `path` (following a symlink there, which the user chose).
    pub fn open(path: &Path) -> Result<Arc<Root>, IoError> {
        let fd = rfs::open(
            path,
            DIR_HANDLE | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| IoError::new("open directory", path, e.into()))?;
        Ok(Arc::new(Root {
            fd,
            path: path.to_owned(),
        }))
    }
}

impl Rooted {
    /// Resolves the directory holding the last component and returns it with that component:
    /// what every `*at` operation takes.
    pub(crate) fn split(&self) -> io::Result<(DirFd<'_>, &OsStr)> {
        check_plain(&self.rel)?;
        let leaf = self.rel.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the store's root has no parent inside the store",
            )
        })?;
        let parent = self.rel.parent().unwrap_or(Path::new(""));
        if parent.as_os_str().is_empty() {
            return Ok((DirFd::Borrowed(self.root.fd.as_fd()), leaf));
        }
        let fd = resolve_dir(&self.root, parent, DIR_HANDLE)?;
        Ok((DirFd::Owned(fd), leaf))
    }

    /// Opens this path as a directory with `flags` (`O_RDONLY` to list or fsync it, `O_PATH` to
    /// act on its entries), refusing a symlink anywhere on the way, the last component included.
    pub(crate) fn open_dir_fd(&self, flags: OFlags) -> io::Result<OwnedFd> {
        check_plain(&self.rel)?;
        if self.rel.as_os_str().is_empty() {
            return rfs::openat(
                &self.root.fd,
                ".",
                flags | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(Into::into);
        }
        resolve_dir(&self.root, &self.rel, flags)
    }
}

/// A directory descriptor: the root's (borrowed) or one opened for an operation.
pub(crate) enum DirFd<'a> {
    Borrowed(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl AsFd for DirFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DirFd::Borrowed(fd) => *fd,
            DirFd::Owned(fd) => fd.as_fd(),
        }
    }
}

/// Whether `openat2` is known to work (1), known not to (2), or not tried yet (0).
#[cfg(any(target_os = "linux", target_os = "android"))]
static OPENAT2: AtomicU8 = AtomicU8::new(0);

/// Whether `BEAKER_NO_OPENAT2=1` asks for the per-component walk even where `openat2` works: it
/// exists so that the walk, the resolution of kernels before 5.6 and of other systems, is tested
/// on this machine. It changes no result, only the system calls.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn walk_forced() -> bool {
    use std::sync::OnceLock;
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| std::env::var_os("BEAKER_NO_OPENAT2").is_some_and(|v| v == "1"))
}

/// Opens the directory `rel` (plain components, not empty) below `root` with `flags`, following
/// no symlink in any component.
fn resolve_dir(root: &Root, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if !walk_forced() && OPENAT2.load(Ordering::Relaxed) != 2 {
        let how = rfs::ResolveFlags::BENEATH
            | rfs::ResolveFlags::NO_SYMLINKS
            | rfs::ResolveFlags::NO_MAGICLINKS;
        for _ in 0..8 {
            match rfs::openat2(&root.fd, rel, flags, Mode::empty(), how) {
                Ok(fd) => {
                    OPENAT2.store(1, Ordering::Relaxed);
                    return Ok(fd);
                }
                // A rename elsewhere on the filesystem raced the lookup: the kernel asks to retry.
                Err(rustix::io::Errno::AGAIN) => continue,
                // No openat2 (kernel before 5.6, or a seccomp filter that refuses it): walk.
                Err(
                    rustix::io::Errno::NOSYS | rustix::io::Errno::PERM | rustix::io::Errno::TOOBIG,
                ) if OPENAT2.load(Ordering::Relaxed) != 1 => {
                    OPENAT2.store(2, Ordering::Relaxed);
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    walk(root, rel, flags)
}

/// The resolution without `openat2`: one `openat(O_NOFOLLOW | O_DIRECTORY)` per component, each
/// from the descriptor of the one before. A symlink in any component fails with `ELOOP`, as
/// `RESOLVE_NO_SYMLINKS` does.
fn walk(root: &Root, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let mut parts = rel.components().peekable();
    let mut cur: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        let Component::Normal(name) = part else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        let step = if parts.peek().is_some() {
            DIR_HANDLE | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        } else {
            flags
        };
        let dir = cur.as_ref().map_or(root.fd.as_fd(), |fd| fd.as_fd());
        let next = match rfs::openat(dir, name, step, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOTDIR) => {
                // `O_DIRECTORY | O_NOFOLLOW` on a symlink says "not a directory": say what the
                // kernel's own resolution says for one.
                let is_link = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
                    rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Symlink
                });
                return Err(if is_link {
                    rustix::io::Errno::LOOP.into()
                } else {
                    rustix::io::Errno::NOTDIR.into()
                });
            }
            Err(e) => return Err(e.into()),
        };
        cur = Some(next);
    }
    cur.ok_or_else(|| io::ErrorKind::InvalidInput.into())
}

/// What `fstatat(AT_SYMLINK_NOFOLLOW)` or `fstat` says of a file.
#[derive(Clone, Copy)]
pub struct Meta {
    st: rfs::Stat,
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meta")
            .field("kind", &self.kind())
            .field("len", &self.len())
            .field("mode", &format_args!("{:o}", self.mode()))
            .finish_non_exhaustive()
    }
}

#[allow(
    clippy::unnecessary_cast,
    reason = "the types of `struct stat`'s fields differ between targets"
)]
impl Meta {
    /// The `fstat` of an open file.
    pub fn of(file: &impl AsFd) -> io::Result<Meta> {
        Ok(Meta {
            st: rfs::fstat(file)?,
        })
    }

    fn file_type(&self) -> rfs::FileType {
        rfs::FileType::from_raw_mode(self.st.st_mode)
    }

    pub fn is_file(&self) -> bool {
        self.file_type() == rfs::FileType::RegularFile
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == rfs::FileType::Directory
    }

    pub fn is_symlink(&self) -> bool {
        self.file_type() == rfs::FileType::Symlink
    }

    /// What kind of file it is, for messages ("a FIFO", "a directory").
    pub fn kind(&self) -> &'static str {
        match self.file_type() {
            rfs::FileType::Symlink => "symlink",
            rfs::FileType::Directory => "directory",
            rfs::FileType::RegularFile => "regular file",
            rfs::FileType::Fifo => "FIFO",
            rfs::FileType::CharacterDevice | rfs::FileType::BlockDevice => "device",
            rfs::FileType::Socket => "socket",
            _ => "special file",
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        u64::try_from(self.st.st_size).unwrap_or(0)
    }

    /// Whether it is zero bytes long.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The permission bits (with setuid, setgid and sticky): `st_mode & 0o7777`.
    #[allow(
        clippy::unnecessary_cast,
        reason = "st_mode is u32 on Linux, u16 on macOS"
    )]
    pub fn mode(&self) -> u32 {
        (self.st.st_mode as u32) & 0o7777
    }

    pub fn uid(&self) -> u32 {
        self.st.st_uid
    }

    pub fn gid(&self) -> u32 {
        self.st.st_gid
    }

    pub fn dev(&self) -> u64 {
        self.st.st_dev as u64
    }

    pub fn ino(&self) -> u64 {
        self.st.st_ino as u64
    }

    pub fn nlink(&self) -> u64 {
        self.st.st_nlink as u64
    }

    /// Last modification, in seconds since the epoch (may be negative, or in the future).
    pub fn mtime(&self) -> i64 {
        self.st.st_mtime as i64
    }

    /// Last inode change, in seconds since the epoch.
    pub fn ctime(&self) -> i64 {
        self.st.st_ctime as i64
    }

    /// Last modification as a `SystemTime`.
    pub fn modified(&self) -> std::time::SystemTime {
        let nanos = u32::try_from(self.st.st_mtime_nsec).unwrap_or(0);
        match u64::try_from(self.mtime()) {
            Ok(secs) => std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos),
            Err(_) => {
                std::time::UNIX_EPOCH - std::time::Duration::from_secs(self.mtime().unsigned_abs())
            }
        }
    }

    /// Whether `other` is, as far as `stat` can tell, the same file: the same device and inode;
    /// or, on a filesystem that numbers inodes per path (sshfs, unionfs-fuse: a hard link there
    /// has another inode number than its target), the same size, modification time and
    /// inode-change time to the nanosecond. The change time cannot be set by anyone, so a
    /// different file that passes is one made in the same nanosecond with the same size.
    pub fn looks_same(&self, other: &Meta) -> bool {
        self.same_file(other)
            || (self.dev() == other.dev()
                && self.len() == other.len()
                && (self.st.st_mtime, self.st.st_mtime_nsec)
                    == (other.st.st_mtime, other.st.st_mtime_nsec)
                && (self.st.st_ctime, self.st.st_ctime_nsec)
                    == (other.st.st_ctime, other.st.st_ctime_nsec))
    }

    /// Whether `other` is the same file (device and inode).
    pub fn same_file(&self, other: &Meta) -> bool {
        self.dev() == other.dev() && self.ino() == other.ino()
    }
}

/// An opened directory inside a store, for loops over its entries: each operation takes one
/// entry's name (a single component) and is one `*at` system call on this descriptor.
pub struct Dir {
    fd: OwnedFd,
    pub(super) at: Rooted,
}

impl fmt::Debug for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Dir").field(&self.at).finish()
    }
}

impl Dir {
    /// Opens the directory `at` for reading (listing, fsync, its entries). `Ok(None)` if there
    /// is nothing at `at`; a symlink or anything but a directory there is an error.
    pub fn open(at: &Rooted) -> Result<Option<Dir>, IoError> {
        match at.open_dir_fd(OFlags::RDONLY) {
            Ok(fd) => Ok(Some(Dir { fd, at: at.clone() })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IoError::new("open directory", at.path(), e)),
        }
    }

    /// The names of the entries (not `.` and `..`), in the order the filesystem gives them.
    pub fn names(&self) -> Result<Vec<OsString>, IoError> {
        let err = |e: rustix::io::Errno| IoError::new("list", self.at.path(), e.into());
        let mut out = Vec::new();
        for entry in rfs::Dir::read_from(&self.fd).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(OsStr::from_bytes(name).to_owned());
            }
        }
        Ok(out)
    }

    /// `fstatat(name, AT_SYMLINK_NOFOLLOW)`; `Ok(None)` if nothing is there.
    pub fn stat(&self, name: &OsStr) -> Result<Option<Meta>, IoError> {
        let err = |e: io::Error| IoError::new("inspect", self.at.join(name).path(), e);
        check_leaf(name).map_err(err)?;
        match rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Meta { st })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(err(e.into())),
        }
    }

    /// Removes the entry `name` (a file or a symlink, never followed); `false` if it was gone.
    pub fn remove_file(&self, name: &OsStr) -> Result<bool, IoError> {
        let err = |e: io::Error| IoError::new("remove", self.at.join(name).path(), e);
        check_leaf(name).map_err(err)?;
        match rfs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(err(e.into())),
        }
    }

    /// Opens the entry `name` for reading (`O_NOFOLLOW | O_NONBLOCK`).
    pub fn open_read(&self, name: &OsStr) -> Result<File, IoError> {
        let err = |e: io::Error| IoError::new("open", self.at.join(name).path(), e);
        check_leaf(name).map_err(err)?;
        open_leaf(self.fd.as_fd(), name, OFlags::RDONLY, Mode::empty()).map_err(|e| err(e.into()))
    }

    /// Flushes the directory (its entries' renames, links and unlinks) to stable storage.
    pub fn sync(&self) -> Result<(), IoError> {
        rfs::fsync(&self.fd).map_err(|e| IoError::new("fsync directory", self.at.path(), e.into()))
    }
}

/// `openat(dir, leaf, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode)` as a `File`: a symlink
/// at `leaf` is never followed, and a FIFO there cannot block the opener.
pub(crate) fn open_leaf(
    dir: BorrowedFd<'_>,
    leaf: &OsStr,
    flags: OFlags,
    mode: Mode,
) -> rustix::io::Result<File> {
    rfs::openat(
        dir,
        leaf,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        mode,
    )
    .map(File::from)
}

/// `fstatat(dir, leaf, AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn stat_leaf(dir: BorrowedFd<'_>, leaf: &OsStr) -> rustix::io::Result<Meta> {
    rfs::statat(dir, leaf, AtFlags::SYMLINK_NOFOLLOW).map(|st| Meta { st })
}

/// Removes the directory `leaf` of `dir` and everything in it, never following a symlink (one
/// inside is unlinked, not descended into). A file or symlink at `leaf` is unlinked. At most
/// `depth` levels deep: a deeper tree (planted, since beaker makes none) is refused with
/// `ELOOP` rather than recursed into without bound.
pub(crate) fn remove_tree_leaf(dir: BorrowedFd<'_>, leaf: &OsStr, depth: u32) -> io::Result<()> {
    match rfs::unlinkat(dir, leaf, AtFlags::REMOVEDIR) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST) => {}
        Err(rustix::io::Errno::NOTDIR) => {
            return rfs::unlinkat(dir, leaf, AtFlags::empty()).map_err(Into::into)
        }
        Err(e) => return Err(e.into()),
    }
    if depth == 0 {
        return Err(rustix::io::Errno::LOOP.into());
    }
    let sub = match rfs::openat(
        dir,
        leaf,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // Replaced by a file or a symlink since: remove that instead.
        Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
            return rfs::unlinkat(dir, leaf, AtFlags::empty()).map_err(Into::into)
        }
        Err(e) => return Err(e.into()),
    };
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(&sub)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push((OsStr::from_bytes(name).to_owned(), entry.file_type()));
        }
    }
    for (name, kind) in names {
        let is_dir = match kind {
            rfs::FileType::Directory => true,
            rfs::FileType::Unknown => stat_leaf(sub.as_fd(), &name).is_ok_and(|m| m.is_dir()),
            _ => false,
        };
        let removed = if is_dir {
            remove_tree_leaf(sub.as_fd(), &name, depth - 1)
        } else {
            rfs::unlinkat(&sub, name.as_os_str(), AtFlags::empty()).map_err(Into::into)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    rfs::unlinkat(dir, leaf, AtFlags::REMOVEDIR).map_err(Into::into)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
