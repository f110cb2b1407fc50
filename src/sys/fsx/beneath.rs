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
//!
//! Windows has no `openat`: there ([`windows`]) every component on the way is inspected and
//! refused if it is a reparse point (a symlink or a junction) before the call by path, and the
//! last component is opened with `FILE_FLAG_OPEN_REPARSE_POINT`, so a link there is acted on as
//! itself; a link swapped in between the check and the call is not caught (docs/design.md#platforms).
#![allow(
    clippy::disallowed_methods,
    reason = "this module is where store paths meet the system calls"
)]

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

/// A store's root directory, opened once (on Unix `O_PATH`: it needs only search permission).
pub struct Root {
    #[cfg(unix)]
    fd: std::os::fd::OwnedFd,
    /// The path the root was opened by, for messages and handed-out paths.
    path: PathBuf,
    /// The absolute path calls are made on (`\\?\` form, so that long paths work).
    #[cfg(windows)]
    native: PathBuf,
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Root").field(&self.path).finish()
    }
}

impl Root {
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
}

impl Dir {
    /// Where this directory is.
    pub fn at(&self) -> &Rooted {
        &self.at
    }

    /// `self/name` as a path inside the store.
    pub fn join(&self, name: impl AsRef<Path>) -> Rooted {
        self.at.join(name)
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
/// Refuses a name that is not one plain path component (on Windows also one with `\\` or `:`,
/// which would name another directory or a stream there).
pub(crate) fn check_leaf(name: &OsStr) -> io::Result<()> {
    let bytes = name.as_encoded_bytes();
    let separator = |b: &u8| *b == b'/' || (cfg!(windows) && (*b == b'\\' || *b == b':'));
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.iter().any(separator) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a file name"),
        ));
    }
    Ok(())
}
