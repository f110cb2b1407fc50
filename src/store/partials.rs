//! The temp files in `<store>/tmp/` and whether their writer is still alive (docs/design.md#publish step 3).
//!
//! A writer creates its temp file with O_EXCL and holds a flock on it for as long as it writes, so
//! "can I lock it?" tells a live writer (held: leave it alone) from a dead one (free: a stale
//! partial that gc may delete and `prune-locks` reports). Two windows need care, and both are
//! covered by never probing a file modified in the last [`MIN_PROBE_AGE`]:
//!
//! - between a writer's `open(O_EXCL)` and its `flock` the file exists unlocked; a probe that
//!   locked it there would make the writer's own lock attempt fail;
//! - a resuming pull renames a dead writer's partial to its own name and then locks it.
//!
//! A probe that wins the lock keeps holding it (in [`Writer::Gone`]) so the caller can delete the
//! file *while holding* the lock, after checking the path still names the same inode; a writer
//! that comes along after that sees the file gone. Nothing here keeps I1–I4 directly: temp files
//! are never blobs, and publish re-hashes everything it names.
//!
//! A file dated in the future counts as old by its distance from now ([`age`]), so clock skew
//! cannot pin a dead writer's file in `tmp/` forever.
//!
//! With `locking = "none"` writers take no flock, so the writer's state is [`Writer::Unchecked`]
//! and only the file's age speaks for it.

use std::fs::File;
use std::time::{Duration, SystemTime};

use crate::store::{Locking, Store, StoreError};
use crate::sys::fsx::{self, Meta, Rooted};
use crate::sys::lock;

/// Files modified more recently than this are never probed (see the module doc).
pub const MIN_PROBE_AGE: Duration = Duration::from_secs(60);

/// One entry of `tmp/`.
#[derive(Debug)]
pub struct TempFile {
    pub name: String,
    pub path: Rooted,
    pub size: u64,
    /// Time since its last modification (or until it, for a file dated in the future: see [`age`]).
    pub age: Duration,
    /// The writer's pid, from the name beaker gives temp files (`<stem>.<pid>.<nonce>.<ext>`).
    pub pid: Option<u32>,
    pub writer: Writer,
}

/// What is known about the process writing a temp file.
#[derive(Debug)]
pub enum Writer {
    /// Modified within the probe threshold: not looked at.
    Recent,
    /// Someone holds its flock: a live writer.
    Live,
    /// Nobody held its flock; *we* hold it now, until this is dropped.
    Gone(File),
    /// The store runs without locks, or the file is another user's and unreadable to us: the
    /// writer's state cannot be known, only the file's age.
    Unchecked,
    /// Not a regular file (a symlink or directory someone put there): never touched.
    NotAFile,
}

/// Lists `tmp/`, probing the writer of each regular file older than `probe_after` (at least
/// [`MIN_PROBE_AGE`]).
pub fn scan(store: &Store, probe_after: Duration) -> Result<Vec<TempFile>, StoreError> {
    let dir = store.layout().tmp();
    let threshold = probe_after.max(MIN_PROBE_AGE);
    let now = SystemTime::now();
    let mut out = Vec::new();
    let Some(listing) = fsx::Dir::open(&dir)? else {
        return Ok(out);
    };
    let mut names = listing.names()?;
    names.sort();
    for file in names {
        let Some(meta) = listing.stat(&file)? else {
            continue; // gone meanwhile
        };
        let path = dir.join(&file);
        let name = file.to_string_lossy().into_owned();
        let age = age(meta.modified(), now);
        let writer = if !meta.is_file() {
            Writer::NotAFile
        } else if age < threshold {
            Writer::Recent
        } else if store.config().locking == Locking::None {
            Writer::Unchecked
        } else {
            match probe(&path, meta.ino())? {
                Some(w) => w,
                None => continue, // gone or replaced meanwhile
            }
        };
        out.push(TempFile {
            pid: writer_pid(&name),
            name,
            path,
            size: meta.len(),
            age,
            writer,
        });
    }
    Ok(out)
}

/// How old a file dated `mtime` counts as at `now`: the distance between the two, in either
/// direction.
///
/// A date in the future (a writer on a host whose clock runs ahead, a file copied in with its
/// dates, `touch -d`) would otherwise never grow old, and gc would keep it forever. Counting the
/// distance instead makes a file dated more than the age limit *ahead* as old as one dated that
/// far behind; a little skew (seconds, minutes) still reads as recent. That alone never removes
/// a file someone is writing: gc removes a temp file only when its flock is free too.
pub fn age(mtime: SystemTime, now: SystemTime) -> Duration {
    match now.duration_since(mtime) {
        Ok(past) => past,
        Err(future) => future.duration(),
    }
}

/// Try-locks the temp file at `path`; `None` if it vanished or is no longer inode `ino`.
fn probe(path: &Rooted, ino: u64) -> Result<Option<Writer>, StoreError> {
    let file = match fsx::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // Another user's temp file (0600) in a group store: its flock cannot be tried, only its
        // age speaks for it, as in a store without locks.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Ok(Some(Writer::Unchecked))
        }
        Err(e) => return Err(e.into()),
    };
    let same = Meta::of(&file).is_ok_and(|m| m.ino() == ino);
    if !same {
        return Ok(None);
    }
    if !lock::try_exclusive(&file, path)? {
        return Ok(Some(Writer::Live));
    }
    if !lock::is_at_path(&file, path)? {
        return Ok(None);
    }
    Ok(Some(Writer::Gone(file)))
}

/// `add.123.0badf00d.part` → 123.
fn writer_pid(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(4, '.');
    let (_ext, _nonce, pid) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_date_ages_by_its_distance_from_now() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert_eq!(age(now - hour, now), hour);
        assert_eq!(age(now + hour, now), hour);
        assert_eq!(age(now, now), Duration::ZERO);
    }

    #[test]
    fn pid_comes_from_the_temp_name() {
        assert_eq!(writer_pid("add.123.0badf00d.part"), Some(123));
        assert_eq!(
            writer_pid("manifest.toml.77.0000abcd.tmp"),
            Some(77),
            "stems may contain dots"
        );
        assert_eq!(writer_pid("junk"), None);
        assert_eq!(writer_pid("a.b.c.d"), None);
    }
}
