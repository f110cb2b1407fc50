//! A read-only memory map of an open file that survives the file being truncated under it.
//!
//! Reading a mapped page that lies past the end of a file truncated meanwhile (or whose read
//! fails with an I/O error) raises SIGBUS, whose default action kills the process. verify maps
//! blobs to hash them without the page-cache copy of `read(2)`, and a truncated blob is exactly
//! the damage it must survive, so this module makes that fault recoverable:
//!
//! - a process-wide SIGBUS handler (`sigaction`, `SA_SIGINFO`), installed once;
//! - a fixed, lock-free registry of live mappings ([`SLOTS`] slots of atomics, each published
//!   with a sequence number so the handler never acts on a half-written slot);
//! - on a fault whose `si_addr` lies inside a registered mapping, the handler maps anonymous
//!   zero pages (`MAP_FIXED`) from the faulting page to the mapping's end, sets the slot's
//!   `faulted` flag and returns: the faulting instruction is retried and reads zeros;
//! - any other SIGBUS (outside every mapping, or sent with kill(2)) restores the action that
//!   was in place before ours and lets the signal happen again, so it behaves exactly as if the
//!   handler had never been installed. The handler is never put back afterwards: its owner,
//!   usually the process, is about to die of that signal.
//!
//! The zeros are never taken for content: [`MappedFile::finish`] reports a view that faulted, or
//! whose file's size no longer matches the mapped size, as [`Changed`]. The handler only touches
//! atomics and makes the `mmap(2)` system call (saving and restoring `errno`).
//!
//! Limits: a file *rewritten in place* (same size) while mapped is read as it is at each moment,
//! as `read(2)` would; blobs are 0444 and never written, so that is damage either way. When all
//! slots are in use, [`map_read`] returns the file unmapped and the caller reads it instead.
//!
//! Windows maps nothing ([`windows`]): every file is read. A mapped view there would keep the
//! file from being deleted or truncated while it is open, and a read error through it is an
//! exception, not a signal; reading is what it does instead.

use std::fs::File;
use std::path::PathBuf;

use crate::sys::error::IoError;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::{map_read, MappedFile};
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{map_read, MappedFile};

/// The metadata of `file`, which must be a regular file (`path` is for messages).
fn regular_file(file: &File, path: &std::path::Path) -> Result<std::fs::Metadata, IoError> {
    let meta = file
        .metadata()
        .map_err(|e| IoError::new("inspect", path, e))?;
    if !meta.is_file() {
        return Err(IoError::new(
            "map",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    Ok(meta)
}

/// Files smaller than this are not mapped: the read path costs less than mmap + munmap there.
pub const MIN_MAP_LEN: u64 = 64 << 10;

/// The file changed while it was mapped: it faulted (truncated, or an I/O error) or its size
/// differs from the size mapped. What was read is not the file's content.
#[derive(Debug, thiserror::Error)]
#[error("{} changed while being read (truncated?): mapped {mapped} bytes, it now has {}{}", path.display(), now.map_or_else(|| "an unknown size".to_string(), |n| format!("{n} bytes")), if *faulted { "; reading it past its end faulted" } else { "" })]
pub struct Changed {
    pub path: PathBuf,
    /// The size mapped (the file's size when it was mapped).
    pub mapped: u64,
    /// The file's size after reading (`fstat`), if it could be read.
    pub now: Option<u64>,
    /// Whether a read through the mapping faulted and was answered with zeros.
    pub faulted: bool,
}

/// What [`map_read`] made of a file.
pub enum Mapping {
    Mapped(MappedFile),
    /// Too small to be worth mapping, or every registry slot busy: read the file instead.
    Unmapped(File),
}
