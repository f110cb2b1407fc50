//! Advisory file locks (flock via fs2) that stay safe while lock files are pruned (docs/design.md#locks).
//!
//! Locks only de-duplicate work: correctness of the store never rests on them (invariant I1 holds
//! with `locking = "none"`). What this module guarantees:
//!
//! - **Safe acquire.** Open (create if missing, `O_NOFOLLOW`), lock, then check that the open file is
//!   still the one at the path (same device and inode). If a pruner unlinked it meanwhile, the lock
//!   we hold is on an orphan that nobody else can find, so we drop it and start over. Two processes
//!   can therefore never both believe they hold the lock at one path.
//! - **Safe prune.** [`prune`] try-locks exclusively without blocking and unlinks *while holding* the
//!   lock; a held lock is reported with its holder and never removed.
//! - **Holder info.** An exclusive holder writes pid, user, host and start time (and, for a
//!   download, the partial file and expected size) into the lock file, so a waiter can say who it
//!   is waiting for.
//! - A process that dies releases its locks (the kernel drops flocks), so a killed process never
//!   blocks the next run; its lock *file* stays until `prune-locks`.
//! - Anything that is not a regular file at a lock path (a symlink, a FIFO, a device, a directory —
//!   planted in a shared store or left by a bug) is removed and replaced by a real lock file; it is
//!   never opened, followed or locked.
//!
//! # Lock order
//!
//! A process that holds several store locks takes them in this order, and only in this order, so
//! two processes can never wait for each other in a cycle:
//!
//! 1. `locks/<hex>.lock` (or `sha256-<hex>.lock` / `md5-<hex>.lock`) — one download's lock,
//!    exclusive, held by pull from the re-check until the name is recorded;
//! 2. `locks/gc.lock` — shared by publishers around "publish + record the name", exclusive by gc,
//!    verify's quarantine and `rm`'s sweep (invariant I4);
//! 3. `locks/manifest.lock` — exclusive around each read-modify-write of the store manifest.
//!
//! Any step may be skipped (`add` and `rm` take no blob lock, `rm` and gc take 2 then 3), but a
//! lock is never taken while a later one in the list is held. Each place that takes one says so.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sys::error::{os_error_is, Category, IoError, Os};
use crate::sys::fsx::{self, Meta, Rooted};

/// How long to wait for a lock held by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fail at once with [`LockError::Timeout`] if the lock is held.
    NoWait,
    /// Wait as long as it takes.
    Forever,
    /// Wait at most this long.
    For(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Exclusive,
    Shared,
}

/// What a lock holder writes into its lock file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub user: String,
    pub host: String,
    pub since: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_size: Option<u64>,
    /// The holder machine's boot id (`/proc/sys/kernel/random/boot_id`): a lease of this host
    /// from an earlier boot is stale at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// A lease's own random token: tells this lease from a later one at the same path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Holder {
    /// This process, now.
    pub fn me() -> Self {
        Holder {
            pid: std::process::id(),
            user: crate::sys::who::user(),
            host: crate::sys::who::host(),
            since: crate::sys::who::now_rfc3339(),
            partial: None,
            expected_size: None,
            boot: boot_id(),
            token: None,
        }
    }

    /// Reads the holder recorded in a lock file, if it has a readable record.
    pub fn read(path: &Rooted) -> Option<Holder> {
        let mut text = String::new();
        fsx::open_read(path)
            .ok()?
            .take(4096)
            .read_to_string(&mut text)
            .ok()?;
        toml::from_str(&text).ok()
    }
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`, Linux), if the system has one: a lease
/// record of this host with another boot id is from before a reboot.
pub fn boot_id() -> Option<String> {
    let path = std::path::Path::new("/proc/sys/kernel/random/boot_id");
    let bytes = fsx::user::read(path, 64).ok()?;
    let id = String::from_utf8_lossy(&bytes).trim().to_owned();
    (!id.is_empty()).then_some(id)
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} ({}@{}) since {}",
            self.pid, self.user, self.host, self.since
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Io(#[from] IoError),
    /// `waited` is the limit that was set (what the user typed), not the clock's reading.
    #[error("timed out after {waited:?} waiting for lock {}{}; is another beaker still running? Wait longer with --lock-timeout (no flag: as long as it takes)", path.display(), holder.as_ref().map(|h| format!(" held by {h}")).unwrap_or_default())]
    Timeout {
        path: PathBuf,
        waited: Duration,
        holder: Option<Box<Holder>>,
    },
    #[error("file locks do not work on the filesystem of {}; set `locking = \"none\"` in the store's store.toml (or `beaker store init --locking none`) to run with lease files in locks/ instead", path.display())]
    Unsupported {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LockError {
    pub fn category(&self) -> Category {
        Category::Failed
    }
}

/// A held lock; dropping it releases the lock (closing the descriptor drops the flock).
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard {
    held: Option<(File, Rooted, bool)>,
    lease: Option<lease::Lease>,
}

impl LockGuard {
    /// A guard that holds nothing: used by stores with `locking = "none"`.
    pub fn disabled() -> Self {
        LockGuard {
            held: None,
            lease: None,
        }
    }

    /// This guard, also holding `lease` (released with it).
    pub fn with_lease(mut self, lease: Option<lease::Lease>) -> Self {
        self.lease = lease;
        self
    }

    /// Whether a lease is held with the lock.
    pub fn has_lease(&self) -> bool {
        self.lease.is_some()
    }

    /// Replaces the holder record in the lock file (best effort: a read-only lock file, opened by a
    /// user who may lock but not write it, keeps its old record).
    pub fn record(&self, holder: &Holder) {
        if let Some((file, path, true)) = &self.held {
            if let Ok(text) = toml::to_string(holder) {
                let _ = fsx::overwrite(file, text.as_bytes(), path);
            }
        }
        if let Some(lease) = &self.lease {
            lease.record(holder);
        }
    }
}

/// Takes the lock at `path`, creating the lock file (with `file_mode`) if needed.
///
/// `on_wait` is called about a second into a wait, and then about once a second while it lasts,
/// each time with the holder's record read afresh, so the caller can tell the user who it is
/// waiting for and how far that holder is (a live progress bar of its download).
pub fn acquire(
    path: &Rooted,
    mode: Mode,
    wait: Wait,
    file_mode: u32,
    on_wait: &mut dyn FnMut(Option<Holder>),
) -> Result<LockGuard, LockError> {
    let start = Instant::now();
    let mut next_tell = Duration::from_secs(1);
    for _ in 0..MAX_ROUNDS {
        let (file, writable) = open_lock_file(path, file_mode)?;
        let mut pause = Duration::from_millis(1);
        loop {
            match try_lock(&file, mode) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(lock_failed(path, e)),
            }
            let waited = start.elapsed();
            let deadline = match wait {
                Wait::NoWait => Some(Duration::ZERO),
                Wait::Forever => None,
                Wait::For(d) => Some(d),
            };
            if let Some(limit) = deadline.filter(|d| waited >= *d) {
                return Err(LockError::Timeout {
                    path: path.path(),
                    waited: limit,
                    holder: Holder::read(path).map(Box::new),
                });
            }
            if waited >= next_tell {
                next_tell = waited + Duration::from_secs(1);
                on_wait(Holder::read(path));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        if still_at_path(&file, path)? {
            let guard = LockGuard {
                held: Some((file, path.clone(), writable)),
                lease: None,
            };
            if mode == Mode::Exclusive {
                guard.record(&Holder::me());
            }
            return Ok(guard);
        }
        // The file was pruned (or replaced) between our open and our lock: the lock we hold is
        // on a file nobody else can find. Drop it and lock whatever is at the path now.
    }
    Err(kept_changing(path).into())
}

/// What [`prune`] did with one lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pruned {
    Removed,
    /// Someone holds it; it was left alone.
    Held(Option<Holder>),
    /// Nothing was there any more.
    Gone,
}

/// Removes the lock file at `path` if nobody holds it (docs/design.md#locks safe prune).
pub fn prune(path: &Rooted) -> Result<Pruned, LockError> {
    // A symlink or special file is nobody's lock: remove it without opening it.
    if replace_if_hostile(path)? {
        return Ok(Pruned::Removed);
    }
    let file = match fsx::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Pruned::Gone),
        Err(e) => return Err(e.into()),
    };
    match try_lock(&file, Mode::Exclusive) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return Ok(Pruned::Held(Holder::read(path)))
        }
        Err(e) => return Err(lock_failed(path, e)),
    }
    if !still_at_path(&file, path)? {
        return Ok(Pruned::Gone);
    }
    // Unlink while holding: a waiter that gets this lock next sees the path changed and retries.
    // Gone meanwhile is fine: a lock file being made is renamed from a new hidden name to its
    // own (`fsx::create_in_place`), and a scan of `locks/` may have caught the new name.
    match fsx::remove_file_if_exists(path)? {
        true => Ok(Pruned::Removed),
        false => Ok(Pruned::Gone),
    }
}

/// Whether a lock file is held, seen without waiting and without writing a holder record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Free,
    /// Someone holds it (shared or exclusive). The record is the last *exclusive* holder's, so
    /// for a shared holder it may name an earlier process.
    Held(Option<Holder>),
    Gone,
}

/// Looks at the lock file at `path`: try-locks it exclusively for an instant (never blocking,
/// never recording), then releases. Used by `info` and by maintenance reports. Something that is
/// not a regular file at the path is nobody's lock: an error, never flocked.
pub fn state(path: &Rooted) -> Result<State, LockError> {
    let file = match fsx::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::Gone),
        Err(e) => return Err(e.into()),
    };
    let meta = Meta::of(&file).map_err(|e| IoError::new("inspect lock file", path, e))?;
    if !meta.is_file() {
        return Err(LockError::Io(IoError::new(
            "use as a lock file",
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("it is a {}", meta.kind()),
            ),
        )));
    }
    Ok(if try_exclusive(&file, path)? {
        State::Free
    } else {
        State::Held(Holder::read(path))
    })
}

/// Try-locks an open file exclusively without blocking: `true` if we now hold it (until `file`
/// is closed), `false` if someone else does. Used on temp files, whose writer holds a flock while
/// writing (docs/design.md#publish step 3), to tell a live writer from a dead one.
pub fn try_exclusive(file: &File, path: impl crate::sys::error::Place) -> Result<bool, LockError> {
    match try_lock(file, Mode::Exclusive) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(lock_failed(path, e)),
    }
}

/// Whether `file` is still the file at `path` (same device and inode): after locking a file
/// found by path, the caller must check this before acting on the path.
pub fn is_at_path(file: &File, path: &Rooted) -> Result<bool, IoError> {
    still_at_path(file, path)
}

/// Checks that locks work in `dir`: two descriptors of one file in one process must conflict
/// (flock locks belong to the open file description, so they do — unless flock is a no-op here).
pub fn probe(dir: &Rooted) -> Result<(), LockError> {
    let (a, path) = fsx::create_unique(dir, "probe", "lock", 0o600)?;
    let result = probe_file(&a, &path).map_err(|e| match e {
        LockError::Unsupported { source, .. } => LockError::Unsupported {
            path: dir.path(),
            source,
        },
        other => other,
    });
    let _ = fsx::remove_file(&path);
    result
}

/// [`probe`] on the file `a` (at `path`), opened a second time: the two descriptors must
/// exclude each other. Leaves `a` unlocked.
pub fn probe_file(a: &File, path: &Rooted) -> Result<(), LockError> {
    let b = fsx::open_read(path)?;
    try_lock(a, Mode::Exclusive).map_err(|e| lock_failed(path, e))?;
    let result = match try_lock(&b, Mode::Exclusive) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(lock_failed(path, e)),
        Ok(()) => Err(LockError::Unsupported {
            path: path.path(),
            source: io::Error::other("two descriptors could lock the same file at once"),
        }),
    };
    let _ = fs2::FileExt::unlock(a);
    result
}

/// Whether an exclusive flock on `a` keeps one on `b` out (two opens of the same file, e.g. by
/// two names of it). Leaves both unlocked.
pub fn exclude_each_other(a: &File, b: &File) -> bool {
    if try_lock(a, Mode::Exclusive).is_err() {
        return false;
    }
    let excluded =
        matches!(try_lock(b, Mode::Exclusive), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    let _ = fs2::FileExt::unlock(a);
    let _ = fs2::FileExt::unlock(b);
    excluded
}

/// Takes the lock without waiting; a lock held elsewhere is `WouldBlock` on every platform
/// (Windows says `ERROR_LOCK_VIOLATION`, which std does not map to it).
fn try_lock(file: &File, mode: Mode) -> io::Result<()> {
    let taken = match mode {
        Mode::Exclusive => fs2::FileExt::try_lock_exclusive(file),
        Mode::Shared => fs2::FileExt::try_lock_shared(file),
    };
    taken.map_err(|e| {
        if e.raw_os_error().is_some()
            && e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
        {
            io::ErrorKind::WouldBlock.into()
        } else {
            e
        }
    })
}

fn lock_failed(path: impl crate::sys::error::Place, e: io::Error) -> LockError {
    match e.raw_os_error() {
        _ if os_error_is(&e, Os::NoLocks) => LockError::Unsupported {
            path: path.place(),
            source: e,
        },
        _ => LockError::Io(IoError::new("lock", path, e)),
    }
}

/// Opens the lock file, creating it with `mode` if absent. Falls back to read-only when the file
/// exists but is not writable by us (flock needs no write access), returning whether it is writable.
fn open_lock_file(path: &Rooted, mode: u32) -> Result<(File, bool), IoError> {
    for _ in 0..MAX_ROUNDS {
        // With its mode from the first instant: another user must be able to open it at once.
        match fsx::create_in_place(path, mode) {
            // Made under a hidden name and renamed (or linked) into place: its descriptor may be
            // another inode than the one the lock's path now names (high-level FUSE filesystems
            // such as bindfs give a name made by link(2) its own kernel inode, so a flock through
            // one never meets a flock through the other). The lock is always taken on the file
            // opened through its final name, below.
            Ok(created) => drop(created),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            // The directory is gone (the store deleted, or its `locks/` removed): retrying
            // cannot help; the caller says so (or makes `locks/` again).
            Err(e) if e.kind() == io::ErrorKind::NotFound && !dir_is_there(path) => return Err(e),
            // `prune-locks` removed our not-yet-named new file (it looks like a free lock file):
            // make another.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            // A user who may not create files in `locks/` can still lock an existing lock file.
            Err(e)
                if e.kind() == io::ErrorKind::PermissionDenied
                    && fsx::stat(path).is_ok_and(|m| m.is_some()) => {}
            Err(e) => return Err(e),
        }
        if replace_if_hostile(path)? {
            continue;
        }
        // O_NOFOLLOW|O_NONBLOCK (fsx): a symlink or FIFO swapped in after the check can neither
        // be followed nor hang us; the type check below then refuses it.
        let opened = match fsx::open_read_write(path) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => match fsx::open_read(path) {
                Ok(f) => (f, false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            },
            // Pruned between our create attempt and this open: try again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            // A symlink swapped in after our check: replace it on the next round.
            Err(e) if os_error_is(&e.source, Os::SymlinkInTheWay) => continue,
            // A directory swapped in after our check (opening one for writing fails with EISDIR):
            // replace it on the next round.
            Err(e) if os_error_is(&e.source, Os::IsADirectory) => continue,
            Err(e) => return Err(e),
        };
        // Swapped for a FIFO, device or directory after the check: never lock a special file
        // (the next round's `replace_if_hostile` removes it).
        if Meta::of(&opened.0).is_ok_and(|m| m.is_file()) {
            return Ok(opened);
        }
    }
    Err(kept_changing(path))
}

/// How many times taking one lock starts over because its file changed under it (pruned,
/// replaced, swapped for something else) before giving up: far more than any honest race needs,
/// so only a process that keeps replacing the file on purpose, or a directory that is gone, ends
/// the loop, with an error rather than a spin.
const MAX_ROUNDS: u32 = 1000;

fn kept_changing(path: &Rooted) -> IoError {
    IoError::new(
        "lock",
        path,
        io::Error::other(format!(
            "the lock file changed under beaker {MAX_ROUNDS} times in a row (is another process \
             removing or replacing it?)"
        )),
    )
}

/// Whether the directory holding `path` is (still) a directory.
fn dir_is_there(path: &Rooted) -> bool {
    path.parent()
        .is_some_and(|dir| fsx::stat(&dir).is_ok_and(|m| m.is_some_and(|m| m.is_dir())))
}

/// A lock path holding a symlink, a special file or a directory (planted in a shared store, or
/// left by a bug) is removed so a real lock file can be created; it is never opened or followed
/// (a directory is removed with everything in it, symlinks inside unlinked, never followed).
/// Returns whether something was removed. A regular file, whoever owns it, is a lock file and is
/// kept.
fn replace_if_hostile(path: &Rooted) -> Result<bool, IoError> {
    match fsx::stat(path)? {
        Some(m) if m.is_dir() => match fsx::remove_tree(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        },
        Some(m) if !m.is_file() => fsx::remove_file_if_exists(path),
        Some(_) | None => Ok(false),
    }
}

/// Whether `file` is still the file at `path` (same device and inode).
fn still_at_path(file: &File, path: &Rooted) -> Result<bool, IoError> {
    let open = Meta::of(file).map_err(|e| IoError::new("inspect lock file", path, e))?;
    Ok(fsx::stat(path)?.is_some_and(|now| now.same_file(&open)))
}

pub mod lease;

#[cfg(test)]
mod tests;
