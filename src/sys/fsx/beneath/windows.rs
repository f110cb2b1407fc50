//! The Windows resolution of store paths. Windows has no `openat`, so a [`Rooted`] becomes an
//! absolute `\\?\` path (no length limit, no `/` or `..` interpretation) after a check of every
//! directory on the way: each must be a plain directory, not a reparse point (a symlink or a
//! junction, which any user may make). The last component is then opened with
//! `FILE_FLAG_OPEN_REPARSE_POINT`, so a link there is acted on as itself, never followed.
//!
//! What this does not give, and `openat` does: a directory swapped for a junction *between* the
//! check and the call is followed. docs/design.md#platforms says so.
#![allow(
    unsafe_code,
    reason = "GetFileInformationByHandle has no std wrapper (file identity, link count)"
)]

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use windows_sys::Win32::Storage::FileSystem::{
    GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION, FILE_ATTRIBUTE_DIRECTORY,
    FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_BACKUP_SEMANTICS,
    FILE_FLAG_OPEN_REPARSE_POINT, FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE, FILE_SHARE_READ,
    FILE_SHARE_WRITE,
};

use super::{check_leaf, check_plain, Root, Rooted};
use crate::sys::error::IoError;

/// `ERROR_STOPPED_ON_SYMLINK`: what a reparse point on the way gives (`ELOOP` on Unix).
pub(crate) const STOPPED_ON_SYMLINK: i32 = 681;
/// `ERROR_DIRECTORY`: a file where a directory is needed (`ENOTDIR` on Unix).
pub(crate) const NOT_A_DIRECTORY: i32 = 267;

/// Every share mode: another process may read, write, rename and delete a file beaker has open,
/// as on Unix.
pub(crate) const SHARE_ALL: u32 = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

impl Root {
    /// Opens the directory at `path` (following a link there, which the user chose): its
    /// absolute `\\?\` form is what every call below it starts from.
    pub fn open(path: &Path) -> Result<Arc<Root>, IoError> {
        let err = |e| IoError::new("open directory", path, e);
        let native = std::fs::canonicalize(path).map_err(err)?;
        let meta = std::fs::metadata(&native).map_err(err)?;
        if !meta.is_dir() {
            return Err(err(io::Error::from_raw_os_error(NOT_A_DIRECTORY)));
        }
        Ok(Arc::new(Root {
            path: path.to_owned(),
            native,
        }))
    }
}

impl Rooted {
    /// The `\\?\` path of this one, after checking that no directory on the way (the last
    /// component excluded) is a link or a file. The last component is the caller's to open
    /// without following ([`open_options`]).
    pub(crate) fn native(&self) -> io::Result<PathBuf> {
        check_plain(&self.rel)?;
        let mut path = self.root.native.clone();
        let mut parts = self.rel.components().peekable();
        while let Some(part) = parts.next() {
            path.push(part);
            if parts.peek().is_some() {
                check_dir_on_the_way(&path)?;
            }
        }
        Ok(path)
    }

    /// The `\\?\` path of this directory, every component checked, the last one included.
    pub(crate) fn native_dir(&self) -> io::Result<PathBuf> {
        let path = self.native()?;
        if !self.rel.as_os_str().is_empty() {
            check_dir_on_the_way(&path)?;
        }
        Ok(path)
    }
}

/// Refuses a reparse point or a non-directory at `path` (a directory on the way).
fn check_dir_on_the_way(path: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    use std::os::windows::fs::MetadataExt;
    let attrs = meta.file_attributes();
    if attrs & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        return Err(io::Error::from_raw_os_error(STOPPED_ON_SYMLINK));
    }
    if attrs & FILE_ATTRIBUTE_DIRECTORY == 0 {
        return Err(io::Error::from_raw_os_error(NOT_A_DIRECTORY));
    }
    Ok(())
}

/// Options that open the last component as itself: a reparse point is not followed, a
/// directory may be opened (to inspect it), and other processes may still read, write,
/// rename or delete it.
pub(crate) fn open_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS);
    options
}

/// Opens the last component of `at` as itself with `options` ([`open_options`] and an access):
/// a file opened is a file; a reparse point there is refused (`ERROR_STOPPED_ON_SYMLINK`).
pub(crate) fn open_leaf(at: &Rooted, options: &OpenOptions) -> io::Result<File> {
    let path = at.native()?;
    let file = options.open(&path)?;
    // The handle says whether it is a reparse point; the path is asked too, for a system
    // (wine) whose handle opened with FILE_FLAG_OPEN_REPARSE_POINT does not say so.
    if Meta::of(&file)?.is_symlink() || is_link(&path) {
        return Err(io::Error::from_raw_os_error(STOPPED_ON_SYMLINK));
    }
    Ok(file)
}

/// Whether `path` itself is a reparse point (a symlink or a junction).
fn is_link(path: &Path) -> bool {
    use std::os::windows::fs::MetadataExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        m.file_type().is_symlink() || m.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0
    })
}

/// What `GetFileInformationByHandle` says of a file, in Unix terms where they exist.
#[derive(Clone, Copy)]
pub struct Meta {
    attrs: u32,
    len: u64,
    /// Last write and creation, in 100 ns ticks since 1601 (`FILETIME`).
    written: u64,
    created: u64,
    volume: u64,
    index: u64,
    links: u64,
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

/// 100 ns ticks from 1601-01-01 to 1970-01-01.
const EPOCH_TICKS: u64 = 116_444_736_000_000_000;

/// Seconds since the Unix epoch of a `FILETIME` tick count.
fn unix_secs(ticks: u64) -> i64 {
    (ticks as i128 - EPOCH_TICKS as i128).div_euclid(10_000_000) as i64
}

impl Meta {
    /// `GetFileInformationByHandle` of an open file.
    pub fn of(file: &File) -> io::Result<Meta> {
        // SAFETY: zeroed is a valid value of this plain struct; the handle is open for the
        // call's duration (borrowed from `file`) and the struct is ours to fill.
        let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
        let ok = unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        let wide = |hi: u32, lo: u32| (u64::from(hi) << 32) | u64::from(lo);
        Ok(Meta {
            attrs: info.dwFileAttributes,
            len: wide(info.nFileSizeHigh, info.nFileSizeLow),
            written: wide(
                info.ftLastWriteTime.dwHighDateTime,
                info.ftLastWriteTime.dwLowDateTime,
            ),
            created: wide(
                info.ftCreationTime.dwHighDateTime,
                info.ftCreationTime.dwLowDateTime,
            ),
            volume: u64::from(info.dwVolumeSerialNumber),
            index: wide(info.nFileIndexHigh, info.nFileIndexLow),
            links: u64::from(info.nNumberOfLinks),
        })
    }

    /// The metadata of the last component of `at`, not following a link there.
    pub(crate) fn at(at: &Rooted) -> io::Result<Meta> {
        Meta::at_path(&at.native()?)
    }

    /// The metadata of `path` itself: a reparse point there is described, not followed (from
    /// its directory entry: it has no identity that matters), anything else from a handle.
    fn at_path(path: &Path) -> io::Result<Meta> {
        use std::os::windows::fs::MetadataExt;
        let entry = std::fs::symlink_metadata(path)?;
        if entry.file_type().is_symlink()
            || entry.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0
        {
            return Ok(Meta {
                attrs: entry.file_attributes() | FILE_ATTRIBUTE_REPARSE_POINT,
                len: entry.file_size(),
                written: entry.last_write_time(),
                created: entry.creation_time(),
                volume: 0,
                index: 0,
                links: 1,
            });
        }
        let mut options = open_options();
        options.access_mode(FILE_READ_ATTRIBUTES);
        Meta::of(&options.open(path)?)
    }

    pub fn is_file(&self) -> bool {
        !self.is_dir() && !self.is_symlink()
    }

    pub fn is_dir(&self) -> bool {
        self.attrs & FILE_ATTRIBUTE_DIRECTORY != 0 && !self.is_symlink()
    }

    /// Whether the directory attribute is set (also on a junction or a directory symlink).
    pub(crate) fn attrs_dir(&self) -> bool {
        self.attrs & FILE_ATTRIBUTE_DIRECTORY != 0
    }

    /// A reparse point: a symlink or a junction.
    pub fn is_symlink(&self) -> bool {
        self.attrs & FILE_ATTRIBUTE_REPARSE_POINT != 0
    }

    /// What kind of file it is, for messages.
    pub fn kind(&self) -> &'static str {
        if self.is_symlink() {
            "symlink"
        } else if self.is_dir() {
            "directory"
        } else {
            "regular file"
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Permission bits as Unix would show them: Windows has an ACL, not a mode, and beaker
    /// sets only the read-only attribute (what a mode without write bits becomes). So a
    /// read-only file is 0444, another file 0600 (only its owner's ACL, by default), a
    /// directory 0755.
    pub fn mode(&self) -> u32 {
        if self.is_dir() {
            0o755
        } else if self.attrs & FILE_ATTRIBUTE_READONLY != 0 {
            0o444
        } else {
            0o600
        }
    }

    /// Every file is this process's user's (Windows has no uid: see `who::euid`).
    pub fn uid(&self) -> u32 {
        crate::sys::who::euid()
    }

    /// Windows has no file groups.
    pub fn gid(&self) -> u32 {
        0
    }

    /// The volume's serial number.
    pub fn dev(&self) -> u64 {
        self.volume
    }

    /// The file index on its volume.
    pub fn ino(&self) -> u64 {
        self.index
    }

    pub fn nlink(&self) -> u64 {
        self.links
    }

    /// Last write, in seconds since the epoch.
    pub fn mtime(&self) -> i64 {
        unix_secs(self.written)
    }

    /// Creation, in seconds since the epoch: Windows keeps no change time in this record.
    pub fn ctime(&self) -> i64 {
        unix_secs(self.created)
    }

    /// Last write as a `SystemTime`.
    pub fn modified(&self) -> std::time::SystemTime {
        let ticks = |t: u64| std::time::Duration::from_nanos(t.saturating_mul(100));
        match self.written.checked_sub(EPOCH_TICKS) {
            Some(after) => std::time::UNIX_EPOCH + ticks(after),
            None => std::time::UNIX_EPOCH - ticks(EPOCH_TICKS - self.written),
        }
    }

    /// Whether `other` is the same file (volume and file index), or one that looks exactly
    /// like it (size and times to the tick) on the same volume.
    pub fn looks_same(&self, other: &Meta) -> bool {
        self.same_file(other)
            || (self.volume == other.volume
                && self.len == other.len
                && self.written == other.written
                && self.created == other.created)
    }

    /// Whether `other` is the same file (volume and file index). A volume serial of 0 (what
    /// wine reports for a handle that created its file) matches any: two files of one store are
    /// on one volume, since no reparse point inside a store is followed.
    pub fn same_file(&self, other: &Meta) -> bool {
        let volume = self.volume == other.volume || self.volume == 0 || other.volume == 0;
        volume && self.index == other.index
    }
}

/// An opened directory inside a store: its path, checked once; each operation on an entry is
/// one call on `<dir>\<name>`.
pub struct Dir {
    native: PathBuf,
    pub(super) at: Rooted,
}

impl fmt::Debug for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Dir").field(&self.at).finish()
    }
}

impl Dir {
    /// Opens the directory `at`. `Ok(None)` if there is nothing at `at`; a link or anything but
    /// a directory there is an error.
    pub fn open(at: &Rooted) -> Result<Option<Dir>, IoError> {
        match at.native_dir() {
            Ok(native) => Ok(Some(Dir {
                native,
                at: at.clone(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IoError::new("open directory", at.path(), e)),
        }
    }

    /// The names of the entries, in the order the filesystem gives them.
    pub fn names(&self) -> Result<Vec<OsString>, IoError> {
        let err = |e| IoError::new("list", self.at.path(), e);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.native).map_err(err)? {
            out.push(entry.map_err(err)?.file_name());
        }
        Ok(out)
    }

    /// What is at `name`, not following a link; `Ok(None)` if nothing is there.
    pub fn stat(&self, name: &OsStr) -> Result<Option<Meta>, IoError> {
        let err = |e: io::Error| IoError::new("inspect", self.at.join(name).path(), e);
        check_leaf(name).map_err(err)?;
        match Meta::at_path(&self.native.join(name)) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Removes the entry `name` (a file or a link, never followed); `false` if it was gone.
    pub fn remove_file(&self, name: &OsStr) -> Result<bool, IoError> {
        let at = self.at.join(name);
        let err = |e: io::Error| IoError::new("remove", at.path(), e);
        check_leaf(name).map_err(err)?;
        crate::sys::fsx::remove_file_if_exists(&at)
    }

    /// Opens the entry `name` for reading, not following a link there.
    pub fn open_read(&self, name: &OsStr) -> Result<File, IoError> {
        let at = self.at.join(name);
        let err = |e: io::Error| IoError::new("open", at.path(), e);
        check_leaf(name).map_err(err)?;
        let mut options = open_options();
        options.read(true);
        open_leaf(&at, &options).map_err(err)
    }

    /// Windows cannot flush a directory; its renames are made with `MOVEFILE_WRITE_THROUGH`.
    pub fn sync(&self) -> Result<(), IoError> {
        Ok(())
    }
}
