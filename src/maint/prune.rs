//! `prune-locks`: the safe prune of docs/design.md#locks over `locks/`, plus a report of stale temp files.
//! `beaker store prune-locks` and `cargo xtask prune-locks` both call [`run`].
//!
//! Lock files are only ever removed by [`lock::prune`]: try-lock exclusively without blocking,
//! unlink *while holding*, release. A held lock is reported with its holder and never removed. A
//! process that had opened the file before the unlink and locks it afterwards finds (by the
//! inode re-check of safe acquire) that the path no longer names its file and retries on a fresh
//! one, so two processes never both hold "the" lock at one path. Locks never protect data (I1
//! holds without them), so pruning cannot endanger a blob; it only keeps `locks/` tidy.
//!
//! Temp files whose writer is gone are *reported*, not removed: deleting them is gc's job, under
//! gc's age threshold (a dead writer's partial is what a resumed pull continues from).

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::store::partials::{self, Writer};
use crate::store::{Store, StoreError};
use crate::sys::error::Category;
use crate::sys::lock::{self, Holder, Pruned};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("refusing to prune locks in {}: its manifest cannot be read; nothing was removed (fix or restore the manifest first)", store.display())]
    Damaged {
        store: PathBuf,
        #[source]
        source: StoreError,
    },
}

impl From<crate::sys::error::IoError> for Error {
    fn from(e: crate::sys::error::IoError) -> Self {
        Error::Store(e.into())
    }
}

impl Error {
    pub fn category(&self) -> Category {
        match self {
            Error::Store(e) | Error::Damaged { source: e, .. } => e.category(),
        }
    }
}

/// What prune-locks did. Serializes as its `--json` output (docs/maint.md).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Lock files removed (names in `locks/`).
    pub removed: Vec<String>,
    /// Lock files kept because someone holds them.
    pub held: Vec<HeldLock>,
    /// Entries of `locks/` that are not regular files: left alone.
    pub foreign: Vec<String>,
    /// Lock files that could not be examined (permission denied), with why.
    pub skipped: Vec<String>,
    /// Temp files in `tmp/` whose writer is gone (gc removes them after `--tmp-age`).
    pub stale_temp: Vec<TempReport>,
    /// Temp files a live process is writing.
    pub live_temp: Vec<TempReport>,
    /// Temp files whose writer cannot be known (store without locks) or that changed within the
    /// last minute.
    pub unchecked_temp: Vec<TempReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeldLock {
    pub name: String,
    /// The last exclusive holder's record (a shared holder writes none).
    pub holder: Option<Holder>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TempReport {
    pub name: String,
    pub size: u64,
    pub age_secs: u64,
    pub pid: Option<u32>,
}

/// Prunes the lock files nobody holds and reports temp files.
pub fn run(store: &Store) -> Result<Outcome, Error> {
    // Like gc and verify, refuse a store whose manifest is damaged: it wants a human first.
    store.read_manifest().map_err(|source| Error::Damaged {
        store: store.root().to_owned(),
        source,
    })?;
    store.ensure_writable()?;
    let mut out = Outcome::default();
    let dir = store.layout().locks();
    for (name, _) in crate::store::files_in(&dir)? {
        let path = dir.join(&name);
        match crate::sys::fsx::stat(&path) {
            Ok(Some(m)) if m.is_file() => {}
            Ok(Some(_)) => {
                out.foreign.push(name);
                continue;
            }
            _ => continue,
        }
        if name.ends_with(".lease") {
            // A lease is removed only when its holder is provably gone (this host: dead pid or
            // an earlier boot); another machine's is left to waiters, who time its silence.
            match lock::lease::prune(&path)? {
                lock::lease::State::Stale(_) => out.removed.push(name),
                lock::lease::State::Held(holder) => out.held.push(HeldLock { name, holder }),
                lock::lease::State::Gone => {}
            }
            continue;
        }
        if name.ends_with(".broken") && name.starts_with('.') {
            // A lease a waiter renamed aside to break it, left by a crash: nobody's.
            if crate::sys::fsx::remove_file_if_exists(&path)? {
                out.removed.push(name);
            }
            continue;
        }
        match lock::prune(&path) {
            Ok(Pruned::Removed) => out.removed.push(name),
            Ok(Pruned::Held(holder)) => out.held.push(HeldLock { name, holder }),
            Ok(Pruned::Gone) => {}
            // One lock file we may not open (another user's, in a store it shares badly) must
            // not stop the rest; it is reported.
            Err(lock::LockError::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                out.skipped.push(format!("{name}: {e}: {}", e.source));
            }
            Err(e) => return Err(StoreError::from(e).into()),
        }
    }
    if !out.removed.is_empty() {
        crate::sys::fsx::sync_dir(&dir)?;
    }
    for t in partials::scan(store, partials::MIN_PROBE_AGE)? {
        let report = TempReport {
            name: t.name,
            size: t.size,
            age_secs: t.age.as_secs(),
            pid: t.pid,
        };
        match t.writer {
            Writer::Gone(_) => out.stale_temp.push(report),
            Writer::Live => out.live_temp.push(report),
            Writer::Recent | Writer::Unchecked => out.unchecked_temp.push(report),
            Writer::NotAFile => out.foreign.push(format!("tmp/{}", report.name)),
        }
    }
    Ok(out)
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |n: u64| humansize::format_size(n, humansize::BINARY);
        for name in &self.removed {
            writeln!(f, "removed locks/{name} (nobody held it)")?;
        }
        for h in &self.held {
            match &h.holder {
                Some(holder) => writeln!(f, "kept locks/{}: held (last holder: {holder})", h.name)?,
                None => writeln!(f, "kept locks/{}: held", h.name)?,
            }
        }
        for t in &self.stale_temp {
            writeln!(
                f,
                "stale temp file tmp/{} ({}, untouched for {}s, writer {} gone): `beaker store gc` removes it",
                t.name,
                size(t.size),
                t.age_secs,
                t.pid.map_or_else(|| "?".into(), |p| format!("pid {p}"))
            )?;
        }
        for t in &self.live_temp {
            writeln!(
                f,
                "temp file tmp/{} is being written ({})",
                t.name,
                size(t.size)
            )?;
        }
        for t in &self.unchecked_temp {
            writeln!(
                f,
                "temp file tmp/{} ({}): writer not checked",
                t.name,
                size(t.size)
            )?;
        }
        for n in &self.foreign {
            writeln!(f, "left alone {n}: not a regular file")?;
        }
        for n in &self.skipped {
            writeln!(f, "skipped locks/{n}")?;
        }
        write!(
            f,
            "removed {} lock files, kept {} held; {} stale temp files",
            self.removed.len(),
            self.held.len(),
            self.stale_temp.len()
        )
    }
}
