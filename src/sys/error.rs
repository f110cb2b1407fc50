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
