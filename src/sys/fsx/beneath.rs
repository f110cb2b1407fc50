//! Paths inside a store, reached only from the store's root directory descriptor and never
//! through a symlink: the one way into a store (issue 18, [trust]).
//!
//! Every directory inside a store is written by other users and other processes, so a path such
//! as `referrers/<blob>/<name>` is untrusted input: a member may have replaced `referrers/<blob>`
//! by a symlink to their home or to `/etc`. A path-based call (`unlink`, `opendir`, `open`)
//! follows such a link in every component but the last, and `O_NOFOLLOW` guards only the last.
//! Here the store's root is opened once ([`Root::open`]) and every path below it is a [`Rooted`]:
//! a relative path of plain components resolved from that descriptor with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` where the kernel has
//! it (Linux 5.6), else one component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)`. The last
//! component is then acted on with the `*at` call of its operation, which does not follow a
//! symlink either (`unlinkat`, `openat(O_NOFOLLOW)`, `fstatat(AT_SYMLINK_NOFOLLOW)`,
//! `renameat2`, `linkat` without `AT_SYMLINK_FOLLOW`, …). So no operation on a [`Rooted`] can
//! reach a file outside the store, or a file of the store through a second path, whatever is
//! planted in it: a symlink anywhere on the way fails the call with `ELOOP`.
//!
//! A [`Rooted`] is not a `Path` (it has no `AsRef<Path>`), so it cannot be handed to `std::fs`
//! by mistake; [`Rooted::path`] gives the absolute path for messages and for the paths beaker
//! hands out (which a tool opens by path: what beaker checked at that instant is what it hands
//! out). [`Dir`] is an opened directory for loops over its entries (a sweep of thousands of
//! blobs resolves `blobs/` once, not once per blob).
//!
//! The store's root itself is opened by path and follows a symlink there: the user chose it
//! (`--store` may point through a link to a bigger disk). Renaming or deleting the store while a
//! process works in it leaves that process working in the directory it opened (or failing with
//! "not found" when it was deleted), never in whatever appears at the old path.
#![allow(
    clippy::disallowed_methods,
    reason = "this module is where store paths meet the system calls"
)]

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};

use crate::sys::error::IoError;

/// A store's root directory, opened once (`O_PATH`: it needs only search permission).
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Root").field(&self.path).finish()
    }
}

impl Root {
    /// Opens the directory at `path` (following a symlink there, which the user chose).
    pub fn open(path: &Path) -> Result<Arc<Root>, IoError> {
        let fd = rfs::open(
            path,
            super::DIR_HANDLE | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| IoError::new("open directory", path, e.into()))?;
        Ok(Arc::new(Root {
            fd,
            path: path.to_owned(),
        }))
    }

    /// The path the root was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A path inside a store: plain components below a [`Root`], resolved without following any
/// symlink (see the module doc). Cheap to clone (the root is shared).
#[derive(Clone)]
pub struct Rooted {
    root: Arc<Root>,
    rel: PathBuf,
}

impl fmt::Debug for Rooted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.path(), f)
    }
}

impl PartialEq for Rooted {
    fn eq(&self, other: &Self) -> bool {
        self.rel == other.rel
            && (Arc::ptr_eq(&self.root, &other.root) || self.root.path == other.root.path)
    }
}

impl Eq for Rooted {}

impl PartialOrd for Rooted {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rooted {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.root.path, &self.rel).cmp(&(&other.root.path, &other.rel))
    }
}

impl std::hash::Hash for Rooted {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.root.path.hash(state);
        self.rel.hash(state);
    }
}

impl Rooted {
    /// The root directory itself.
    pub fn top(root: &Arc<Root>) -> Rooted {
        Rooted {
            root: Arc::clone(root),
            rel: PathBuf::new(),
        }
    }

    /// `self/part`. `part` must be relative and made of plain components (no `..`, no `.`, not
    /// absolute); one that is not makes every operation on the result fail with
    /// `InvalidInput`, never reach outside.
    pub fn join(&self, part: impl AsRef<Path>) -> Rooted {
        Rooted {
            root: Arc::clone(&self.root),
            rel: self.rel.join(part),
        }
    }

    /// The absolute path, for messages and for the paths beaker hands out.
    pub fn path(&self) -> PathBuf {
        if self.rel.as_os_str().is_empty() {
            self.root.path.clone()
        } else {
            self.root.path.join(&self.rel)
        }
    }

    /// The absolute path, for messages.
    pub fn display(&self) -> String {
        self.path().display().to_string()
    }

    /// The path relative to the store's root.
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// The last component.
    pub fn file_name(&self) -> Option<&OsStr> {
        self.rel.file_name()
    }

    /// The directory holding this one (`None` for the root).
    pub fn parent(&self) -> Option<Rooted> {
        let parent = self.rel.parent()?;
        Some(Rooted {
            root: Arc::clone(&self.root),
            rel: parent.to_owned(),
        })
    }

    /// The same directory with another last component.
    pub fn with_file_name(&self, name: impl AsRef<OsStr>) -> Rooted {
        Rooted {
            root: Arc::clone(&self.root),
            rel: self.rel.with_file_name(name),
        }
    }

    /// The root this path is below.
    pub fn root(&self) -> &Arc<Root> {
        &self.root
    }

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
        let fd = resolve_dir(&self.root, parent, super::DIR_HANDLE)?;
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

impl crate::sys::error::Place for Rooted {
    fn place(&self) -> PathBuf {
        self.path()
    }
}

impl crate::sys::error::Place for &Rooted {
    fn place(&self) -> PathBuf {
        self.path()
    }
}

impl fmt::Display for Rooted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.path().display(), f)
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

/// Refuses a relative path with anything but plain components.
fn check_plain(rel: &Path) -> io::Result<()> {
    for c in rel.components() {
        match c {
            Component::Normal(_) => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a plain path inside the store", rel.display()),
                ))
            }
        }
    }
    Ok(())
}

/// Refuses a name that is not one plain path component.
pub(crate) fn check_leaf(name: &OsStr) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a file name"),
        ));
    }
    Ok(())
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
            super::DIR_HANDLE | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
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
    at: Rooted,
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

    /// Where this directory is.
    pub fn at(&self) -> &Rooted {
        &self.at
    }

    /// `self/name` as a path inside the store.
    pub fn join(&self, name: impl AsRef<Path>) -> Rooted {
        self.at.join(name)
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
mod tests;
