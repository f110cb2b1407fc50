//! Shared error pieces: the I/O error that always carries its path, and the [`Category`] every
//! library error maps to, which the CLI turns into the exit codes of docs/design.md#cli.

use std::io;
use std::path::{Path, PathBuf};

/// How a failure should be reported to a script (docs/design.md#cli exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The operation failed: network, integrity, I/O, corruption found. Exit 1.
    Failed,
    /// The user asked for something invalid: unknown name, bad manifest, bad argument. Exit 2.
    BadInput,
    /// `path` of a name the store does not hold. Exit 3.
    NotPresent,
}

/// An I/O error with the operation and the path it happened on.
///
/// `Display` says what was attempted and where; the OS's own words are the `source`, so
/// `{:#}` (anyhow) reads "cannot open /s/blobs/ab…: Permission denied (os error 13)".
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}", path.display())]
pub struct IoError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl IoError {
    pub fn new(action: &'static str, path: impl Place, source: io::Error) -> Self {
        Self {
            action,
            path: path.place(),
            source,
        }
    }

    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

/// Where an error happened, for its message: a path, or a path inside a store
/// (`fsx::Rooted`, which is not a `Path` so that it never reaches a path-based call; its impl
/// is in `fsx`).
pub trait Place {
    /// The absolute path to name in the message.
    fn place(&self) -> PathBuf;
}

impl<T: AsRef<Path> + ?Sized> Place for T {
    fn place(&self) -> PathBuf {
        self.as_ref().to_owned()
    }
}

/// `result.at("open", path)?` — attach the action and path to a raw `io::Error`.
pub trait IoContext<T> {
    fn at(self, action: &'static str, path: impl Place) -> Result<T, IoError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: impl Place) -> Result<T, IoError> {
        self.map_err(|e| IoError::new(action, path, e))
    }
}

/// 1-based line and column (in characters) of a byte offset in `text`, for file:line:col messages.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// What an OS error code means to beaker, named once for every platform (the codes differ:
/// `ELOOP` on Unix is `ERROR_STOPPED_ON_SYMLINK` on Windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// A symlink where beaker follows none (`ELOOP`).
    SymlinkInTheWay,
    /// A component on the way is not a directory (`ENOTDIR`).
    NotADirectory,
    /// A directory where a file was expected (`EISDIR`).
    IsADirectory,
    /// No space left, or the user's quota or file size limit reached.
    NoSpace,
    /// The user's disk quota is reached (`EDQUOT`).
    Quota,
    /// The process's file size limit is reached (`EFBIG`, `ulimit -f`).
    FileSizeLimit,
    /// The filesystem is mounted read-only (`EROFS`).
    ReadOnlyFilesystem,
    /// A hard link cannot be made here (another filesystem, too many links, not supported, or
    /// not permitted).
    NoHardLink,
    /// The filesystem has no locks (`ENOLCK`, `EOPNOTSUPP`, `ENOSYS`).
    NoLocks,
    /// The resolver found no such host (Windows sockets say so with a code; the Unix resolver's
    /// failure has none, its text says it).
    HostNotFound,
}

/// Whether the OS error `e` is `what`.
pub fn os_error_is(e: &io::Error, what: Os) -> bool {
    let Some(code) = e.raw_os_error() else {
        return false;
    };
    codes(what).contains(&code)
}

#[cfg(unix)]
fn codes(what: Os) -> &'static [i32] {
    match what {
        Os::SymlinkInTheWay => &[libc::ELOOP],
        Os::NotADirectory => &[libc::ENOTDIR],
        Os::IsADirectory => &[libc::EISDIR],
        Os::NoSpace => &[libc::ENOSPC, libc::EDQUOT, libc::EFBIG],
        Os::Quota => &[libc::EDQUOT],
        Os::FileSizeLimit => &[libc::EFBIG],
        Os::ReadOnlyFilesystem => &[libc::EROFS],
        Os::NoHardLink => &[libc::EPERM, libc::EXDEV, libc::EMLINK, libc::EOPNOTSUPP],
        Os::NoLocks => &[libc::ENOLCK, libc::EOPNOTSUPP, libc::ENOSYS],
        Os::HostNotFound => &[],
    }
}

/// The Win32 error codes (winerror.h) that mean the same.
#[cfg(windows)]
fn codes(what: Os) -> &'static [i32] {
    match what {
        // ERROR_STOPPED_ON_SYMLINK, ERROR_CANT_RESOLVE_FILENAME
        Os::SymlinkInTheWay => &[681, 1921],
        // ERROR_DIRECTORY
        Os::NotADirectory => &[267],
        // ERROR_DIRECTORY_NOT_SUPPORTED
        Os::IsADirectory => &[336],
        // ERROR_HANDLE_DISK_FULL, ERROR_DISK_FULL, ERROR_FILE_TOO_LARGE, ERROR_DISK_QUOTA_EXCEEDED
        Os::NoSpace => &[39, 112, 223, 1295],
        Os::Quota => &[1295],
        Os::FileSizeLimit => &[223],
        // ERROR_WRITE_PROTECT
        Os::ReadOnlyFilesystem => &[19],
        // ERROR_INVALID_FUNCTION, ERROR_ACCESS_DENIED, ERROR_NOT_SAME_DEVICE,
        // ERROR_NOT_SUPPORTED, ERROR_TOO_MANY_LINKS
        Os::NoHardLink => &[1, 5, 17, 50, 1142],
        // ERROR_INVALID_FUNCTION, ERROR_NOT_SUPPORTED
        Os::NoLocks => &[1, 50],
        // WSAHOST_NOT_FOUND, WSATRY_AGAIN, WSANO_DATA
        Os::HostNotFound => &[11001, 11002, 11004],
    }
}
