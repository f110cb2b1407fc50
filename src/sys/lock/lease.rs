//! Lease locks: one download at a time where flock does not work (docs/design.md#leases).
//!
//! On a store whose filesystem has no working flock (`locking = "none"`: Lustre without
//! `flock`, NFS mounted `nolock`, a FUSE mount where flock is a no-op) the download lock is a
//! **lease file** beside the lock file, `locks/<key>.lease`:
//!
//! - **Taken** by creating it with `O_EXCL` (which NFS and FUSE filesystems honour across
//!   machines) and writing the holder's record into it: pid, user, host, boot id, start, a random
//!   token, and, once known, the partial being written.
//! - **Kept alive** by its holder, whose thread sets its mtime every [`silence`] / 6.
//! - **Released** by its holder removing it (only if it still holds the holder's token).
//! - **Broken** by a waiter when its holder is provably gone or has gone silent:
//!   - a lease of this host from an earlier boot, or whose pid no longer exists: at once;
//!   - any lease (another machine's, one whose record cannot be read, one whose pid lives
//!     but may have been reused): when neither its bytes nor its mtime changed for
//!     [`silence`], measured by the waiter's own clock from when it first saw that state.
//!     Clocks of other machines (a skewed client, a server's mtime in the future) never enter
//!     the decision.
//!
//!   Breaking renames the lease aside to a unique name, then checks the renamed file is the
//!   very lease judged stale (same bytes and mtime). If another waiter replaced it in between,
//!   the fresh lease is put back (without clobbering); if that fails too, two downloads happen.
//!
//! A lease is best effort and never protects data: blobs are published with the no-clobber
//! protocol whatever the lease says (I1). So anything that keeps a lease from working — a
//! directory nobody may remove at its path, a `locks/` this user may not write, a rename
//! refused by a sticky `locks/` — makes the caller download without one, never fail or hang.
//! A symlink, FIFO or device at the path is removed, never opened or followed; a record is read
//! only up to 4 KiB.

use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::{Holder, LockError, Wait};
use crate::sys::error::IoError;
use crate::sys::fsx::{self, Meta, Rooted};

/// How long a lease of another machine (or one whose record cannot be read) may go without a
/// sign of life before a waiter breaks it: `BEAKER_LEASE_SILENCE` seconds (for tests and for
/// filesystems that publish mtimes late), else 30 s. Its holder refreshes it six times as often.
pub fn silence() -> Duration {
    std::env::var("BEAKER_LEASE_SILENCE")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_SILENCE, Duration::from_secs_f64)
}

const DEFAULT_SILENCE: Duration = Duration::from_secs(30);

/// The most of a lease's record that is read.
const RECORD_LIMIT: u64 = 4096;

/// A held lease; dropping it stops the refresher and removes the lease file.
#[derive(Debug)]
pub struct Lease {
    file: File,
    path: Rooted,
    token: String,
    stop: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Lease {
    /// Replaces the record in the lease file (keeping its token), as a flock holder's record is:
    /// waiters read the partial being written and the expected size from it.
    pub fn record(&self, holder: &Holder) {
        let mut holder = holder.clone();
        holder.token = Some(self.token.clone());
        if let Ok(text) = toml::to_string(&holder) {
            let _ = fsx::overwrite(&self.file, text.as_bytes(), &self.path);
        }
    }

    /// The lease file's path.
    pub fn path(&self) -> &Rooted {
        &self.path
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.stop.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
        // Only our own lease: if it was broken (we went silent) and someone else holds the
        // path now, theirs stays.
        if look(&self.path).is_some_and(|seen| holds_token(&seen.bytes, &self.token)) {
            let _ = fsx::remove_file_if_exists(&self.path);
        }
    }
}

/// Takes the lease at `path` (a file in `locks/`), waiting as `wait` says while someone else
/// holds it and calling `on_wait` about once a second with the holder's record, as
/// [`super::acquire`] does.
///
/// `Ok(None)`: no lease can be taken here (see the module: best effort); the caller goes on
/// without one.
///
/// # Errors
/// [`LockError::Timeout`] when the wait ran out; an I/O error when `locks/` itself is gone.
pub fn take(
    path: &Rooted,
    wait: Wait,
    file_mode: u32,
    silence: Duration,
    on_wait: &mut dyn FnMut(Option<Holder>),
) -> Result<Option<Lease>, LockError> {
    let start = Instant::now();
    let mut next_tell = Duration::from_secs(1);
    let mut pause = Duration::from_millis(1);
    // What the lease looked like when we last saw it change, and when that was (our clock).
    let mut seen: Option<(Seen, Instant)> = None;
    // Times the path changed under us without a wait (released, replaced, broken): bounded, so
    // only a process that keeps replacing it ends the loop, with an error. Waiting is not
    // counted: a holder may download for hours.
    let mut churn = 0;
    loop {
        if churn > super::MAX_ROUNDS {
            return Err(super::kept_changing(path).into());
        }
        churn += 1;
        match fsx::create_exclusive(path, file_mode) {
            Ok(file) => return Ok(Some(Lease::start(file, path.clone(), silence))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && !super::dir_is_there(path) => {
                return Err(e.into())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            // `locks/` not writable by us, or a filesystem that refuses: no lease here.
            Err(_) => return Ok(None),
        }
        let Some(meta) = fsx::stat(path)? else {
            continue; // released between our create and our look: try again at once
        };
        if !meta.is_file() {
            // A symlink, FIFO, device or directory is nobody's lease: removed, never opened.
            match super::replace_if_hostile(path) {
                Ok(_) => continue,
                Err(_) => return Ok(None),
            }
        }
        let Some(now_seen) = look(path) else {
            continue;
        };
        let holder = now_seen.holder();
        let now = Instant::now();
        // Gone for sure (this host, dead pid or earlier boot), or silent: a live holder
        // refreshes six times per silence, so silence also ends a lease whose pid was reused.
        let stale = holder.as_ref().and_then(gone_on_this_host) == Some(true)
            || match &seen {
                Some((before, since)) if *before == now_seen => {
                    now.duration_since(*since) >= silence
                }
                _ => {
                    seen = Some((now_seen.clone(), now));
                    false
                }
            };
        if stale {
            match break_lease(path, &now_seen) {
                Some(_) => {
                    seen = None;
                    continue;
                }
                None => return Ok(None),
            }
        }
        churn = 0;
        let waited = start.elapsed();
        let limit = match wait {
            Wait::NoWait => Some(Duration::ZERO),
            Wait::Forever => None,
            Wait::For(d) => Some(d),
        };
        if let Some(limit) = limit.filter(|d| waited >= *d) {
            return Err(LockError::Timeout {
                path: path.path(),
                waited: limit,
                holder: holder.map(Box::new),
            });
        }
        if waited >= next_tell {
            next_tell = waited + Duration::from_secs(1);
            on_wait(holder);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

impl Lease {
    /// Writes our record into the new lease file and starts its refresher.
    fn start(file: File, path: Rooted, silence: Duration) -> Lease {
        let token = format!("{:08x}{:08x}", fsx::nonce(), fsx::nonce());
        let mut lease = Lease {
            file,
            path,
            token,
            stop: None,
        };
        lease.record(&Holder::me());
        let every = (silence / 6).max(Duration::from_millis(50));
        let (tx, rx) = mpsc::channel::<()>();
        if let Ok(file) = lease.file.try_clone() {
            let thread = std::thread::Builder::new()
                .name("beaker-lease".into())
                .spawn(move || {
                    // A message or a dropped sender ends it; a timeout is the next refresh.
                    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                        let _ = file.set_modified(SystemTime::now());
                    }
                });
            if let Ok(thread) = thread {
                lease.stop = Some((tx, thread));
            }
        }
        lease
    }
}

/// Whether the holder of a lease of this host is gone: `Some(true)` if the host rebooted since
/// or its pid is gone, `Some(false)` if it is alive, `None` if it is another machine's (or its
/// record names no host).
fn gone_on_this_host(holder: &Holder) -> Option<bool> {
    if holder.host.is_empty() || holder.host != crate::sys::who::host() {
        return None;
    }
    let me = super::boot_id();
    if let (Some(theirs), Some(mine)) = (&holder.boot, &me) {
        if theirs != mine {
            return Some(true);
        }
    }
    Some(!crate::sys::who::process_exists(holder.pid))
}

/// A lease as a waiter sees it: what tells one lease, or one moment of it, from another.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    /// The first [`RECORD_LIMIT`] bytes; none when this user may not read the file (a member's
    /// 0600 plant): its size and mtime still say whether it changes.
    bytes: Vec<u8>,
    len: u64,
    mtime: SystemTime,
}

impl Seen {
    fn holder(&self) -> Option<Holder> {
        toml::from_str::<Holder>(&String::from_utf8_lossy(&self.bytes)).ok()
    }
}

/// The regular file at `path` as [`Seen`]; `None` if nothing, or no regular file, is there.
fn look(path: &Rooted) -> Option<Seen> {
    let meta = fsx::stat(path).ok()??;
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    if let Ok(file) = fsx::open_read(path) {
        if Meta::of(&file).is_ok_and(|m| m.is_file()) {
            let _ = file.take(RECORD_LIMIT).read_to_end(&mut bytes);
        }
    }
    Some(Seen {
        bytes,
        len: meta.len(),
        mtime: meta.modified(),
    })
}

fn holds_token(bytes: &[u8], token: &str) -> bool {
    toml::from_str::<Holder>(&String::from_utf8_lossy(bytes))
        .is_ok_and(|h| h.token.as_deref() == Some(token))
}

/// Breaks the lease at `path` that was `seen`: renames it aside and removes it if it is that
/// lease; puts back a fresh one renamed by mistake. `Some(())` when the path may be tried
/// again, `None` when the lease cannot be broken here (the rename is refused).
fn break_lease(path: &Rooted, seen: &Seen) -> Option<()> {
    let dir = path.parent()?;
    let stem = path.file_name()?.to_string_lossy().into_owned();
    let aside = fsx::unique_path(&dir, &format!(".{stem}"), "broken");
    match fsx::rename_exclusive(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(()),
        Err(_) => return None,
    }
    let same = look(&aside).is_some_and(|now| now == *seen);
    if !same {
        // A lease taken after the one we judged: give it back, unless yet another is there.
        if fsx::rename_exclusive(&aside, path).is_ok() {
            return Some(());
        }
    }
    let _ = fsx::remove_file_if_exists(&aside);
    Some(())
}

/// What a lease at `path` is, for `prune-locks` and `store info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Its holder is provably gone (this host, dead pid or earlier boot): safe to remove.
    Stale(Option<Holder>),
    /// Its holder is alive, or on another machine (only a waiter's silence can tell).
    Held(Option<Holder>),
    Gone,
}

/// Looks at the lease at `path` without waiting.
pub fn state(path: &Rooted) -> State {
    match look(path) {
        None => State::Gone,
        Some(seen) => {
            let holder = seen.holder();
            match holder.as_ref().and_then(gone_on_this_host) {
                Some(true) => State::Stale(holder),
                _ => State::Held(holder),
            }
        }
    }
}

/// Removes the lease at `path` if its holder is provably gone ([`State::Stale`]), as a waiter
/// would break it. Returns the state found.
///
/// # Errors
/// Never for the lease itself (best effort); `IoError` is kept for the caller's uniformity.
pub fn prune(path: &Rooted) -> Result<State, IoError> {
    let found = state(path);
    if let State::Stale(_) = &found {
        if let Some(seen) = look(path) {
            let _ = break_lease(path, &seen);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
