//! The test filesystem: a FUSE passthrough over a backing directory, mounted in this process
//! (fuser's pure-Rust mount: as root it needs only `/dev/fuse`), with switches that make it
//! behave like the weak filesystems shared stores live on, and a power-cut mode that keeps what
//! was not fsynced out of the backing directory until it is, and drops it on command.
//!
//! It lives in the kit (not a crate of its own) because what uses it — tests/, `cargo xtask
//! torture` — already depends on the kit, and it runs on threads of the process that mounts it,
//! so no test has to find a binary built by another package. The binary `beaker-testfs` (this
//! crate's `src/bin`) is the same filesystem from a shell.
//!
//! # Profiles
//!
//! [`Options::parse`] takes a profile name, switches, or both (`bindfs,power-cut`):
//!
//! | profile | switches | what it plays |
//! |---|---|---|
//! | `passthrough` | (none) | a local filesystem |
//! | `flock-noop` | `flock=noop` | flock succeeds for every caller (some Lustre/GPFS/NFS) |
//! | `flock-enosys` | `flock=enosys` | flock fails with ENOSYS (Lustre without flock) |
//! | `per-mount-locks` | `flock=per-mount` | two mounts of one directory: two machines whose locks never meet |
//! | `no-hardlinks` | `hardlinks=no` | `link(2)` fails with EPERM (exFAT, rclone) |
//! | `link-inodes` | `nodes=per-name,flock=per-mount` | a name made by `link(2)` is another inode: flocks through two names of one file do not meet |
//! | `per-path-ino` | `nodes=per-name,ino=per-path` | inode numbers per path: a hard link's `st_ino` differs from its target's |
//! | `stale-nlink` | `stale-nlink=2` | `st_nlink` up to 2 s old: after link + unlink the new name still says 2 |
//! | `no-noreplace` | `rename-flags=no` | `renameat2(RENAME_NOREPLACE)` fails with EINVAL |
//! | `no-setgid` | `setgid=no` | a setgid directory's new entries take the creator's group |
//! | `bindfs` | `link-inodes` + `no-noreplace` + `stale-nlink` | what bindfs did here |
//! | `sshfs` | `per-path-ino` + `flock=per-mount` + `no-noreplace` | what sshfs and unionfs-fuse did here |
//! | `exfat` | `hardlinks=no` + `no-noreplace` | what exfat-fuse and rclone did here |
//! | `fuse-overlayfs` | `setgid=no` | what fuse-overlayfs did here |
//! | `power-cut` | `power-cut` | a local filesystem that can lose power |
//!
//! How each switch is made:
//!
//! - `flock=shared` (default): the filesystem asks the kernel for flock requests
//!   (`FUSE_FLOCK_LOCKS`) and takes them with `flock(2)` on its own descriptor of the file, one
//!   per open, so they meet across names, mounts and direct access (a blocking request waits
//!   on a thread of its own). `per-mount`: it does not ask, so the kernel keeps flocks on its
//!   own inodes of this mount. `noop`: every request succeeds. `enosys`: every request fails
//!   with ENOSYS. `fcntl` locks are always the kernel's (per mount).
//! - `nodes=per-name`: lookups are keyed by (directory, name) instead of by inode, and
//!   `link(2)` answers with a new node, as high-level libfuse does; kernel-side state (per-mount
//!   flocks, caches) is then per name.
//! - `ino=per-path`: `st_ino` is the node id (per name, renewed when the kernel forgets the
//!   name); otherwise the inode number underneath. Nothing is cached by the kernel (TTL 0), so
//!   every `stat` asks the filesystem. readdir's `d_ino` is always the number underneath.
//! - `hardlinks=no`: `link` → EPERM. `rename-flags=no`: any `renameat2` flag → EINVAL.
//! - `setgid=no`: new entries get the caller's group and directories no setgid bit. The
//!   filesystem runs as root and gives every new entry the caller's uid, the group the setgid
//!   rule says, and exactly the mode asked for; permissions are the kernel's
//!   (`default_permissions`), and the mount is open to every user (`allow_other`).
//! - `stale-nlink=S`: each node reports the link count it sampled when it was made or linked
//!   to, until the sample is older than S seconds.
//!
//! # The power-cut model (`power-cut`)
//!
//! The mount shows a private copy of the backing directory (made at mount) and applies every
//! operation to it at once; the backing directory is the disk, and receives only what fsync
//! made durable:
//!
//! - **A file's fsync** (or fdatasync) makes its bytes durable — with its mode, owner and times
//!   — on its durable inode: the one its durable names point to, or, if no name of it is
//!   durable yet, an unnamed one (`O_TMPFILE`) that a later durable create links in. Data never
//!   fsynced is not durable: a file whose name became durable holds the bytes of its last fsync,
//!   or none.
//! - **A directory's fsync** makes its entries durable: every pending create, mkdir, symlink,
//!   mknod, link, unlink, rmdir and rename whose directory (either one, for a rename) it is, is
//!   replayed on the backing directory in order, together with the earlier pending operations
//!   they depend on: those on the same entry; those that create, name, unname or move the same
//!   inode (so a rename is durable as a whole — its source side too — as journaling
//!   filesystems make it, and a link is never durable without the create of its file); the
//!   mkdir (or rename) of a directory a picked operation works in; and, for an rmdir or a rename
//!   over a directory, the operations inside that directory. Operations on other names of the
//!   same directory are not pulled in.
//! - **Attributes** (mode, owner, times) are not logged: they travel with the inode, copied from
//!   the live one whenever it is made durable (its fsync, or a commit that touches it).
//! - **A clean unmount** ([`Mount::unmount`], drop, `umount`) makes everything durable, as a
//!   real unmount does. [`Mount::sync`] (or `sync` to the control file) does it while mounted.
//!   `sync(2)`/`syncfs(2)` do nothing.
//! - **The cut** ([`Mount::cut_power`], `cut` to the control file `.beaker-testfs` in the
//!   mount's root, or killing the `beaker-testfs` process, which leaves its live copy in
//!   `$TMPDIR` and the mount to `umount -l`): every later call on the mount
//!   fails with EIO, what was not durable is dropped (the unnamed inodes vanish with their
//!   descriptors), and the mount is detached; mounting the backing directory again shows only
//!   what was durable.
//!
//! What beaker must make durable, and when, is docs/design.md#durability.
//!
//! Simplified against a real disk: durability is per operation, never torn (a fsync's copy is
//! all or nothing; no sector of a write half-lands); the dependency rules above make more
//! durable than strict POSIX (a directory fsync also commits its own pending mkdir, as ext4
//! and xfs do), never less; `O_SYNC` writes are not fsyncs; extended attributes are not
//! supported; the live copy holds every file removed during the mount until it is unmounted
//! (its space comes back then).
//!
//! # Use
//!
//! [`TestFs::new`] mounts a fresh backing directory in a temp dir; [`TestFs::path`] is the
//! mount, [`TestFs::cut_power`] and [`TestFs::remount`] the power cycle, and
//! [`TestFs::mount_another`] a second mount of the same directory ("another machine"). A test
//! that mounts calls [`fuse_only`] first (root only; a missing `/dev/fuse` fails as root).

// The temp dirs and the /dev/fuse check use raw std::fs: they are outside any store.
#![allow(clippy::disallowed_methods)]

mod fs;
mod options;
mod power;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub use fs::CONTROL;
pub use options::{InoNumbers, Locks, Nodes, Options, PROFILES, STALE_NLINK};
pub use power::Status;

/// How long a clean unmount waits for the kernel to end the session (a process that still has
/// a file open in the mount keeps it alive) before making everything durable anyway.
const SESSION_END: Duration = Duration::from_secs(20);
/// How long a power cut waits for it: the processes of a machine that lost power are killed
/// by the caller, after the cut.
const CUT_GRACE: Duration = Duration::from_secs(1);

/// Raises this process's limit of open descriptors to its hard limit: the power-cut model
/// holds one per live inode that matters (see `power`), which a long campaign of stores on
/// one mount takes past the usual soft limit of 1024.
fn raise_open_files() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// `/dev/fuse`, which every mount needs.
pub const DEV_FUSE: &str = "/dev/fuse";

/// Whether a mount can be tried here: root, and `/dev/fuse`.
pub fn available() -> Result<()> {
    if !beaker::who::is_root() {
        bail!("mounting the test filesystem needs root");
    }
    if !Path::new(DEV_FUSE).exists() {
        bail!("{DEV_FUSE} is missing: the kernel's FUSE module is not loaded or the device is not in this container (docker: --device /dev/fuse --cap-add SYS_ADMIN)");
    }
    Ok(())
}

/// For a test that mounts the test filesystem: `true` when it can run. Not root: "not run"
/// and `false` (a failure under `BEAKER_TEST_REQUIRE_ROOT=1`), as [`crate::users::root_only`].
/// Root without `/dev/fuse`: panics — a test assertion by design, so CI never skips silently.
pub fn fuse_only() -> bool {
    if !crate::users::root_only("mounts the FUSE test filesystem") {
        return false;
    }
    if let Err(e) = available() {
        panic!("{e:#}");
    }
    true
}

/// One mount of the test filesystem, served by threads of this process; unmounted (cleanly:
/// everything made durable) on drop.
pub struct Mount {
    inner: Arc<fs::Inner>,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

impl Mount {
    /// Mounts `backing` at `mountpoint` (an existing empty directory) with `options`.
    pub fn new(backing: &Path, mountpoint: &Path, options: &Options) -> Result<Mount> {
        available()?;
        raise_open_files();
        let inner = Arc::new(fs::Inner::new(backing, mountpoint, options)?);
        let tag: String = options
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName(format!("beaker-testfs:{tag}")),
            fuser::MountOption::DefaultPermissions,
            fuser::MountOption::Dev,
            fuser::MountOption::Suid,
        ];
        config.acl = fuser::SessionACL::All;
        config.n_threads = Some(4);
        config.clone_fd = true;
        let session = fuser::Session::new(fs::Fs(inner.clone()), mountpoint, &config)
            .with_context(|| {
                format!(
                    "mount the test filesystem ({}) of {} at {}",
                    options.name,
                    backing.display(),
                    mountpoint.display()
                )
            })?;
        let session = session
            .spawn()
            .context("start the test filesystem's session")?;
        Ok(Mount {
            inner,
            session: Some(session),
            mountpoint: mountpoint.to_owned(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    /// Power-cut mode: what is pending, and any operation the model failed to replay.
    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// Power-cut mode: makes everything durable now (what a clean unmount does).
    pub fn sync(&self) -> Result<()> {
        self.inner.sync_all()
    }

    /// Cuts the power: what was not durable is lost, every call on the mount fails (EIO) from
    /// now on, and the mount is detached when this returns (processes that still have files
    /// open in it keep its session until they let go: kill them).
    pub fn cut_power(mut self) -> Result<()> {
        self.end(true)
    }

    /// Unmounts cleanly: everything written becomes durable first.
    pub fn unmount(mut self) -> Result<()> {
        self.end(false)
    }

    /// Serves until the mount goes away (`umount`, or a cut through the control file), then
    /// makes everything durable unless the power was cut (what `beaker-testfs` does).
    pub fn wait(mut self) -> Result<()> {
        if let Some(s) = self.session.take() {
            let _ = s.join();
        }
        let r = self.inner.shut_down();
        self.inner.remove_live_copy();
        r
    }

    fn end(&mut self, cut: bool) -> Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if cut {
            self.inner.cut();
        }
        // Detach: the kernel ends the session once nothing in the mount is in use. EINVAL:
        // unmounted already (a cut through the control file, or `umount`).
        let _ = rustix::mount::unmount(&self.mountpoint, rustix::mount::UnmountFlags::DETACH);
        let deadline = Instant::now() + if cut { CUT_GRACE } else { SESSION_END };
        while !session.guard.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let ended = session.guard.is_finished();
        if ended {
            let _ = session.join();
        } else {
            // A process still has a file open in the detached mount; every call of it fails
            // (EIO) and the session ends when it lets go. Never drop the session: its own
            // unmount could hit a later mount at the same path.
            std::mem::forget(session);
        }
        let r = if cut { Ok(()) } else { self.inner.shut_down() };
        self.inner.remove_live_copy();
        r?;
        if !ended && !cut {
            bail!(
                "the test filesystem at {} was busy: made durable and detached, but a process still has a file open in it after {SESSION_END:?}",
                self.mountpoint.display()
            );
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.end(false) {
            eprintln!("beaker-testfs: {e:#}");
        }
    }
}

/// A backing directory in a temp dir of its own, mounted at `<dir>/mnt` (both mode 0755); the
/// power cycle and further mounts of the same directory. Removed on drop (after unmounting).
pub struct TestFs {
    mount: Option<Mount>,
    options: Options,
    dir: tempfile::TempDir,
}

impl TestFs {
    /// Mounts an empty backing directory with `options`.
    pub fn new(options: &Options) -> Result<TestFs> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("beaker-testfs-")
            .tempdir()
            .context("a temp directory for the test filesystem")?;
        for d in [dir.path().to_owned(), dir.path().join("backing")] {
            if d != dir.path() {
                std::fs::create_dir(&d).with_context(|| format!("mkdir {}", d.display()))?;
            }
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("chmod {}", d.display()))?;
        }
        let mut fs = TestFs {
            mount: None,
            options: options.clone(),
            dir,
        };
        fs.remount()?;
        Ok(fs)
    }

    /// The mount point: where the files are.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// The backing directory: what is durable (read it only while unmounted, or for files
    /// fsynced with their directories, in power-cut mode).
    pub fn backing(&self) -> PathBuf {
        self.dir.path().join("backing")
    }

    /// The current mount (none after a cut or unmount until [`TestFs::remount`]).
    pub fn mount(&self) -> Option<&Mount> {
        self.mount.as_ref()
    }

    /// [`Mount::cut_power`].
    pub fn cut_power(&mut self) -> Result<()> {
        match self.mount.take() {
            Some(m) => m.cut_power(),
            None => bail!("not mounted"),
        }
    }

    /// [`Mount::unmount`].
    pub fn unmount(&mut self) -> Result<()> {
        match self.mount.take() {
            Some(m) => m.unmount(),
            None => bail!("not mounted"),
        }
    }

    /// Mounts the backing directory again at [`TestFs::path`], with the same options.
    pub fn remount(&mut self) -> Result<()> {
        if self.mount.is_some() {
            bail!("mounted already");
        }
        let mnt = self.path();
        if !mnt.exists() {
            std::fs::create_dir(&mnt).with_context(|| format!("mkdir {}", mnt.display()))?;
        }
        self.mount = Some(Mount::new(&self.backing(), &mnt, &self.options)?);
        Ok(())
    }

    /// Another mount of the same backing directory, at `<dir>/NAME`, with `options` (another
    /// "machine" on the same share, in `per-mount` lock mode).
    pub fn mount_another(&self, name: &str, options: &Options) -> Result<Mount> {
        let mnt = self.dir.path().join(name);
        std::fs::create_dir(&mnt).with_context(|| format!("mkdir {}", mnt.display()))?;
        Mount::new(&self.backing(), &mnt, options)
    }
}

impl Drop for TestFs {
    fn drop(&mut self) {
        // Unmount before the temp dir goes.
        self.mount.take();
    }
}
