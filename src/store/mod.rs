//! The store: a directory of blobs named by their BLAKE3 hash plus a manifest of names (docs/design.md#on-disk).
//!
//! This module owns opening and creating stores; `refs` owns the store manifest (kept by `records`
//! as one file per name), `index` the digest index (upstream sha256/md5 -> BLAKE3), `inspect` the
//! read-only views (`ls`, `info`, `path`), and `crate::store::publish` the only way bytes enter `blobs/`.
//!
//! Creation is race-safe and crash-safe: many processes may create the same store at once (each
//! step tolerates "already there"), and `store.toml` is published last with no-clobber, so a store
//! is either fully initialised or looks like a half-made one that the next run simply finishes.

mod config;
mod error;
pub mod index;
mod inspect;
mod layout;

pub mod partials;
pub mod policy;
pub mod probe;
pub mod publish;
mod record_text;
mod records;
mod referrers;
mod refs;
pub mod rm;
pub mod snapshot;
pub mod sums;
mod sweep;
pub mod upgrade;
pub mod uses;
pub mod views;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::{
    duration_text, size_text, Config, Locking, Sharing, BLOB_MODE, DEFAULT_MIN_AGE, FORMAT,
    TEMP_MODE,
};
pub use error::StoreError;
pub use index::{IndexSwept, Mapping};
pub use inspect::{files_in, names_in, BlobState, Count, Info, Listing, Located, LockFile};
pub use layout::{name_of_record, quarantined_at, Layout};
pub use rm::Removed;
pub use sweep::{Candidates, GcExclusive, GcShared, Swept, LOCKLESS_GRACE};

use crate::sys::error::{os_error_is, IoContext, IoError, Os};
use crate::sys::fsx;
use crate::sys::lock::{self, LockGuard, Mode, Wait};

/// An open store.
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
    config: Config,
    /// A group store's group (its root's): every directory beaker makes is given it explicitly,
    /// since some filesystems (fuse-overlayfs) do not pass a setgid directory's group on.
    group: Option<u32>,
}

/// How `init` should set a store up.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    pub mode: Sharing,
    pub locking: Locking,
    /// For a group store: the group to give it (default: the group the directory gets anyway).
    pub group: Option<String>,
}

impl Store {
    /// The default store directory: `BEAKER_STORE`, else `<platform cache dir>/beaker/store`
    /// (`$XDG_CACHE_HOME/beaker/store`, `~/.cache/beaker/store` on Linux).
    pub fn default_root() -> Option<PathBuf> {
        match std::env::var_os("BEAKER_STORE") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => dirs::cache_dir().map(|d| d.join("beaker").join("store")),
        }
    }

    /// Opens the existing store at `root` as it is, in whatever format it has (the store's
    /// directory opened once; `store.toml` and the store's directories checked against the
    /// policy). [`Store::open`] is this and then the format upgrades (`upgrade`).
    pub(super) fn open_as_is(root: &Path) -> Result<Store, StoreError> {
        let dir = match inspect_root(root)? {
            (RootState::Store, Some(dir)) => dir,
            (RootState::Foreign, _) => return Err(StoreError::NotAStore { path: root.into() }),
            _ => return Err(StoreError::NoStore { path: root.into() }),
        };
        let layout = Layout::new(dir);
        policy::check_config_file(&layout)?;
        let config = read_config(&layout)?;
        policy::check_on_open(&layout, &config)?;
        let group = match config.mode {
            Sharing::Group => fsx::stat(&layout.top())?.map(|m| m.gid()),
            Sharing::Private => None,
        };
        Ok(Store {
            layout,
            config,
            group,
        })
    }

    /// Marks the store as upgraded to `format` (after `upgrade` did the work):
    /// rewrites `store.toml` atomically, the last step, so a crash before it leaves the old format
    /// and the next writer finishes the upgrade.
    pub(crate) fn set_format(&mut self, format: i64) -> Result<(), StoreError> {
        let config = Config {
            format,
            ..self.config
        };
        fsx::write_replace(
            &self.layout.tmp(),
            &self.layout.config(),
            config.to_toml().as_bytes(),
            config.file_mode(),
        )
        .map_err(|e| StoreError::writing(self.root(), e))?;
        self.config = config;
        Ok(())
    }

    pub(super) fn create(root: &Path, opts: InitOptions) -> Result<Store, StoreError> {
        let config = Config {
            format: FORMAT,
            mode: opts.mode,
            locking: opts.locking,
            ..Config::default()
        };
        let w = |e| StoreError::writing(root, e);
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsx::user::create_dir_all(parent).map_err(w)?;
        }
        let gid = opts.group.as_deref().map(lookup_group).transpose()?;
        policy::check_parent(root)?;
        fsx::user::ensure_dir(root, config.dir_mode()).map_err(w)?;
        let layout = Layout::new(fsx::Root::open(root)?);
        let top = layout.top();
        if config.mode == Sharing::Group {
            // The root may have existed (an admin's empty directory): give it the group and the
            // mode explicitly, before anything is created inside, so everything inherits the group.
            if let Some(gid) = gid {
                fsx::set_group(&top, gid).map_err(w)?;
            }
            fsx::set_dir_mode(&top, config.dir_mode()).map_err(w)?;
        }
        // The group every directory gets: given explicitly, not left to setgid inheritance,
        // which some filesystems (fuse-overlayfs) do not do.
        let group = match config.mode {
            Sharing::Group => fsx::stat(&top)?.map(|m| m.gid()),
            Sharing::Private => None,
        };
        for d in layout::DIRS {
            fsx::ensure_dir(&top.join(d), config.dir_mode()).map_err(w)?;
            if let Some(g) = group {
                fsx::set_group(&top.join(d), g).map_err(w)?;
            }
        }
        if config.locking == Locking::Flock {
            lock::probe(&layout.locks())?;
        }
        // What the filesystem can do, tried before anything else is written: a filesystem beaker
        // cannot publish on is refused here, with what it lacks, not at the first add.
        let device = fsx::stat(&top)?.map_or(0, |m| m.dev());
        let found = probe::probe(&layout.tmp(), device, group).map_err(w)?;
        if let Some(why) = found.cannot_publish() {
            return Err(StoreError::Unsuitable {
                path: root.into(),
                why,
            });
        }
        fsx::write_replace(
            &layout.tmp(),
            &layout.probe(),
            found.to_toml().as_bytes(),
            config.file_mode(),
        )
        .map_err(w)?;
        // A new store's `referrers/` is complete: it lists every name (there is none).
        match fsx::create_exclusive(&layout.referrers_complete(), config.file_mode()) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(w(e)),
            _ => {}
        }
        write_new(
            &layout,
            &layout.cachedir_tag(),
            CACHEDIR_TAG.as_bytes(),
            config.file_mode(),
        )?;
        // store.toml last: its presence marks a complete store. If another process won the race,
        // its config stands.
        write_new(
            &layout,
            &layout.config(),
            config.to_toml().as_bytes(),
            config.file_mode(),
        )?;
        Store::open_as_is(root)
    }

    /// Creates the directory `at` with `mode` (if `exclusive`, failing when anything is there;
    /// else accepting a directory already there), and in a group store gives it the store's
    /// group explicitly.
    pub(crate) fn make_dir(
        &self,
        at: &fsx::Rooted,
        mode: u32,
        exclusive: bool,
    ) -> Result<(), IoError> {
        if exclusive {
            fsx::create_dir_exclusive(at, mode)?;
        } else {
            fsx::ensure_dir(at, mode)?;
        }
        match self.group {
            // Only where it is not so yet: a directory another member made is theirs to chown.
            Some(g) if fsx::stat(at)?.is_some_and(|m| m.gid() != g) => fsx::set_group(at, g),
            _ => Ok(()),
        }
    }

    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Takes a lock in `locks/`, honouring the store's locking policy (`none` → a no-op guard).
    ///
    /// Callers keep the lock order of [`crate::sys::lock`]: blob lock → `gc.lock` → `manifest.lock`.
    ///
    /// A `locks/` that a member removed is made again (once), as `init` made it; a store that
    /// is gone altogether (deleted while this process works in it) is an error, never a wait.
    pub fn lock(
        &self,
        path: &fsx::Rooted,
        mode: Mode,
        wait: Wait,
        on_wait: &mut dyn FnMut(Option<lock::Holder>),
    ) -> Result<LockGuard, StoreError> {
        if self.config.locking == Locking::None {
            return Ok(LockGuard::disabled());
        }
        let take = |on_wait: &mut dyn FnMut(Option<lock::Holder>)| {
            lock::acquire(path, mode, wait, self.config.file_mode(), on_wait)
        };
        let taken = match take(on_wait) {
            Err(lock::LockError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                let locks = self.layout.locks();
                self.make_dir(&locks, self.config.dir_mode(), false)
                    .map_err(|e| StoreError::writing(self.root(), e))?;
                take(on_wait)
            }
            other => other,
        };
        taken.map_err(|e| match e {
            lock::LockError::Io(io) => StoreError::writing(self.root(), io),
            other => StoreError::Lock(other),
        })
    }

    /// Takes a download lock (`locks/<key>.lock`, exclusive): the flock where flock works, and a
    /// lease (`locks/<key>.lease`, [`lock::lease`]) where it does not (`locking = "none"`, or a
    /// probe that found flock a no-op on this mount), so that pulls on machines without working
    /// locks still download a file once. A lease that cannot be taken is done without (it only
    /// saves downloads); `on_wait` hears of either holder.
    pub fn download_lock(
        &self,
        path: &fsx::Rooted,
        wait: Wait,
        on_wait: &mut dyn FnMut(Option<lock::Holder>),
    ) -> Result<LockGuard, StoreError> {
        let flock_works =
            self.config.locking == Locking::Flock && self.capabilities().map_or(true, |c| c.flock);
        let guard = self.lock(path, Mode::Exclusive, wait, on_wait)?;
        if flock_works {
            return Ok(guard);
        }
        let lease = lock::lease::take(
            &lease_path(path),
            wait,
            self.config.file_mode(),
            lock::lease::silence(),
            on_wait,
        )
        .map_err(|e| match e {
            lock::LockError::Io(io) => StoreError::writing(self.root(), io),
            other => StoreError::Lock(other),
        })?;
        Ok(guard.with_lease(lease))
    }
}

/// `locks/<key>.lease` for the lock file `locks/<key>.lock`.
pub fn lease_path(lock: &fsx::Rooted) -> fsx::Rooted {
    let name = lock
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".lock").unwrap_or(&name);
    lock.with_file_name(format!("{stem}.lease"))
}

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by beaker (a model store).\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// Writes a file that should exist exactly once: temp + no-clobber publish, "already there" is fine.
fn write_new(
    layout: &Layout,
    dest: &fsx::Rooted,
    bytes: &[u8],
    mode: u32,
) -> Result<(), StoreError> {
    use std::io::Write;
    let w = |e| StoreError::writing(layout.root(), e);
    let (mut f, tmp) = fsx::create_unique(&layout.tmp(), "init", "tmp", mode).map_err(w)?;
    f.write_all(bytes).at("write", &tmp)?;
    fsx::sync_file(&f, &tmp)?;
    fsx::persist_noclobber(&tmp, dest)?;
    fsx::sync_dir(&layout.top())?;
    Ok(())
}

/// The gid of `group`, if it exists and this user may create a store for it.
pub(super) fn lookup_group(group: &str) -> Result<u32, StoreError> {
    let gid = crate::sys::who::group_id(group).ok_or_else(|| StoreError::UnknownGroup {
        group: group.to_owned(),
    })?;
    if !crate::sys::who::is_root() && !crate::sys::who::in_group(gid) {
        return Err(StoreError::NotInGroup {
            group: group.to_owned(),
            user: crate::sys::who::user(),
        });
    }
    Ok(gid)
}

fn read_config(layout: &Layout) -> Result<Config, StoreError> {
    let path = layout.config();
    let text = fsx::read_to_string(&path)?;
    Config::parse(&text).map_err(|p| match p {
        config::ConfigProblem::UnknownFormat(found) => StoreError::UnknownFormat {
            path: path.path(),
            found,
            expected: FORMAT,
        },
        config::ConfigProblem::Invalid {
            line,
            column,
            message,
        } => StoreError::InvalidConfig {
            path: path.path(),
            line,
            column,
            message,
        },
    })
}

pub(super) enum RootState {
    Missing,
    Empty,
    /// Only store entries, no store.toml: a crash during init. Finishing it is safe.
    HalfMade,
    Store,
    /// A directory with other things in it: refuse to turn someone's folder into a store.
    Foreign,
}

/// What is at `root`, and its directory opened (once: everything below it is reached from that
/// descriptor) when there is one.
pub(super) fn inspect_root(root: &Path) -> Result<(RootState, Option<Arc<fsx::Root>>), StoreError> {
    // The root itself may be a symlink the user chose (e.g. to a bigger disk): follow it here.
    // Inside the store nothing is followed.
    let dir = match fsx::Root::open(root) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((RootState::Missing, None)),
        Err(e) if os_error_is(&e.source, Os::NotADirectory) => {
            return Err(StoreError::NotADirectory { path: root.into() })
        }
        Err(e) => return Err(IoError::new("inspect store", root, e.source).into()),
    };
    let top = fsx::Rooted::top(&dir);
    if fsx::stat(&top.join("store.toml"))?.is_some() {
        return Ok((RootState::Store, Some(dir)));
    }
    let names = fsx::list(&top)?.unwrap_or_default();
    let known = |name: &std::ffi::OsStr| {
        layout::DIRS
            .iter()
            .chain(layout::FILES.iter())
            .any(|k| name == *k)
    };
    let state = if names.is_empty() {
        RootState::Empty
    } else if names.iter().all(|n| known(n)) {
        RootState::HalfMade
    } else {
        RootState::Foreign
    };
    Ok((state, Some(dir)))
}
