//! The FUSE filesystem: a passthrough over a *live* directory (the backing directory itself, or
//! in power-cut mode a private copy of it, see [`super::power`]) that applies the switches of
//! [`Options`]. Every kernel inode ("node") holds an `O_PATH` descriptor of its file, so the
//! passthrough works on descriptors (`*at` calls, `/proc/self/fd` reopens), never by path, and a
//! node follows its file through renames.

// The filesystem's own files are not a store: clippy.toml's ban on raw std::fs is for beaker's.
#![allow(clippy::disallowed_methods)]
// `Stat`'s field types differ between rustix's backends (libc / linux_raw): the casts are
// needed on one and not on the other.
#![allow(clippy::unnecessary_cast)]

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Stat};

use super::options::{InoNumbers, Locks, Nodes, Options};
use super::power::{Durable, Op, Status};

/// The control file in the mount's root: write `cut` (power cut), `sync` (make everything
/// durable); read: the status. Not listed by readdir.
pub const CONTROL: &str = ".beaker-testfs";
const CONTROL_ID: u64 = 2;
const FIRST_NODE: u64 = 16;
/// Entries and attributes are never cached by the kernel: every lookup and stat reaches the
/// filesystem, so what a switch says is what every caller sees.
const TTL: Duration = Duration::ZERO;

/// A live inode: `(st_dev, st_ino)` in the live directory.
pub type Key = (u64, u64);

pub fn key_of(st: &Stat) -> Key {
    (st.st_dev as u64, st.st_ino as u64)
}

type R<T> = Result<T, Errno>;

fn er(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

fn eio(e: io::Error) -> Errno {
    Errno::from(e)
}

/// `/proc/self/fd/N` of a descriptor: how an `O_PATH` descriptor is reopened for I/O.
pub fn proc_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Reopens the file of `fd` (any kind of descriptor, `O_PATH` included) with `flags`.
pub fn reopen(fd: &impl AsRawFd, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rfs::open(proc_path(fd), flags | OFlags::CLOEXEC, Mode::empty())
}

/// An `O_PATH` descriptor of `name` in `dir`, not following a symlink.
pub fn open_path(dir: impl AsFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    let nsecs = nsecs.clamp(0, 999_999_999) as u32;
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nsecs)
    }
}

fn kind_of(mode: u32) -> FileType {
    match rfs::FileType::from_raw_mode(mode as _) {
        rfs::FileType::Directory => FileType::Directory,
        rfs::FileType::Symlink => FileType::Symlink,
        rfs::FileType::Fifo => FileType::NamedPipe,
        rfs::FileType::Socket => FileType::Socket,
        rfs::FileType::CharacterDevice => FileType::CharDevice,
        rfs::FileType::BlockDevice => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

struct Node {
    fd: Arc<OwnedFd>,
    key: Key,
    nlookup: u64,
    /// Under [`Nodes::PerName`]: the name the node stands for.
    name: Option<(u64, OsString)>,
    /// Under `stale_nlink`: the link count reported until it is older than the window.
    nlink: Option<(u32, Instant)>,
}

#[derive(Default)]
struct NodeTable {
    map: HashMap<u64, Node>,
    by_key: HashMap<Key, u64>,
    by_name: HashMap<(u64, OsString), u64>,
    next: u64,
}

enum Handle {
    File { file: Arc<File>, key: Key },
    Control { text: Vec<u8> },
}

struct DirEntry {
    ino: u64,
    kind: FileType,
    name: OsString,
}

/// What the mount and its API share: the filesystem's whole state.
pub struct Inner {
    pub opts: Options,
    pub mountpoint: PathBuf,
    root: Arc<OwnedFd>,
    root_key: Key,
    nodes: Mutex<NodeTable>,
    handles: Mutex<HashMap<u64, Handle>>,
    dirs: Mutex<HashMap<u64, Vec<DirEntry>>>,
    next_fh: AtomicU64,
    /// Power-cut mode: what is durable, and the operations that are not yet.
    power: Option<Mutex<Durable>>,
    /// After a power cut or a shutdown: every call fails with EIO.
    dead: AtomicBool,
    /// Power-cut mode: the private live copy, removed at shutdown.
    live_dir: Mutex<Option<tempfile::TempDir>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// The state for a mount of `backing` at `mountpoint`: in power-cut mode the backing
    /// directory is copied to a private live directory first.
    pub fn new(backing: &Path, mountpoint: &Path, opts: &Options) -> anyhow::Result<Inner> {
        use anyhow::Context;
        let (live, live_dir, power) = if opts.power_cut {
            let dir = tempfile::Builder::new()
                .prefix("beaker-testfs-live-")
                .tempdir()
                .context("a temp directory for the power-cut mode's live copy")?;
            let durable = Durable::load(backing, dir.path())?;
            (dir.path().to_owned(), Some(dir), Some(Mutex::new(durable)))
        } else {
            (backing.to_owned(), None, None)
        };
        let root = rfs::open(
            &live,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("open {}", live.display()))?;
        let root_key = key_of(&rfs::fstat(&root)?);
        Ok(Inner {
            opts: opts.clone(),
            mountpoint: mountpoint.to_owned(),
            root: Arc::new(root),
            root_key,
            nodes: Mutex::new(NodeTable {
                next: FIRST_NODE,
                ..NodeTable::default()
            }),
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            power,
            dead: AtomicBool::new(false),
            live_dir: Mutex::new(live_dir),
        })
    }

    fn dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    fn power(&self) -> Option<MutexGuard<'_, Durable>> {
        self.power.as_ref().map(lock)
    }

    /// The power cut: every call fails from now on, and what was not durable is gone.
    pub fn cut(&self) {
        self.dead.store(true, Ordering::SeqCst);
        if let Some(mut p) = self.power() {
            p.cut();
        }
        lock(&self.handles).clear();
        lock(&self.dirs).clear();
    }

    /// Makes everything durable (no-op outside power-cut mode).
    pub fn sync_all(&self) -> anyhow::Result<()> {
        if let Some(mut p) = self.power() {
            p.sync_all();
            p.check()?;
        }
        Ok(())
    }

    /// A clean shutdown: everything becomes durable, then every call fails.
    pub fn shut_down(&self) -> anyhow::Result<()> {
        let synced = if self.dead.swap(true, Ordering::SeqCst) {
            Ok(())
        } else {
            self.sync_all()
        };
        lock(&self.handles).clear();
        lock(&self.dirs).clear();
        synced
    }

    /// Removes the power-cut mode's live copy (after the session ended).
    pub fn remove_live_copy(&self) {
        lock(&self.live_dir).take();
    }

    pub fn status(&self) -> Status {
        self.power().map(|p| p.status()).unwrap_or_default()
    }

    fn node(&self, id: INodeNo) -> R<(Arc<OwnedFd>, Key)> {
        if id == INodeNo::ROOT {
            return Ok((self.root.clone(), self.root_key));
        }
        let t = lock(&self.nodes);
        let n = t.map.get(&id.0).ok_or(Errno::ESTALE)?;
        Ok((n.fd.clone(), n.key))
    }

    /// Registers one more lookup of `name` in `parent`, whose `O_PATH` descriptor is `fd`;
    /// returns its node id.
    fn remember(&self, parent: u64, name: &OsStr, fd: OwnedFd, st: &Stat) -> u64 {
        let key = key_of(st);
        if key == self.root_key {
            return INodeNo::ROOT.0;
        }
        let mut t = lock(&self.nodes);
        let name_key = (parent, name.to_owned());
        let existing = match self.opts.nodes {
            Nodes::PerInode => t.by_key.get(&key).copied(),
            Nodes::PerName => t
                .by_name
                .get(&name_key)
                .copied()
                .filter(|id| t.map.get(id).is_some_and(|n| n.key == key)),
        };
        if let Some(id) = existing {
            if let Some(n) = t.map.get_mut(&id) {
                n.nlookup += 1;
            }
            return id;
        }
        let id = t.next;
        t.next += 1;
        let per_name = self.opts.nodes == Nodes::PerName;
        t.map.insert(
            id,
            Node {
                fd: Arc::new(fd),
                key,
                nlookup: 1,
                name: per_name.then(|| name_key.clone()),
                nlink: None,
            },
        );
        if per_name {
            t.by_name.insert(name_key, id);
        } else {
            t.by_key.insert(key, id);
        }
        id
    }

    fn forget_node(&self, id: u64, n: u64) {
        if id == INodeNo::ROOT.0 || id == CONTROL_ID {
            return;
        }
        let mut t = lock(&self.nodes);
        let Some(node) = t.map.get_mut(&id) else {
            return;
        };
        node.nlookup = node.nlookup.saturating_sub(n);
        if node.nlookup > 0 {
            return;
        }
        let node = t.map.remove(&id).expect("present");
        if t.by_key.get(&node.key) == Some(&id) {
            t.by_key.remove(&node.key);
        }
        if let Some(nk) = node.name {
            if t.by_name.get(&nk) == Some(&id) {
                t.by_name.remove(&nk);
            }
        }
    }

    /// Under [`Nodes::PerName`]: the name `(parent, name)` is gone (unlinked, or replaced).
    fn drop_name(&self, parent: u64, name: &OsStr) {
        lock(&self.nodes).by_name.remove(&(parent, name.to_owned()));
    }

    /// Under [`Nodes::PerName`]: the name moved (rename), or two names swapped (exchange).
    fn move_name(&self, from: (u64, &OsStr), to: (u64, &OsStr), exchange: bool) {
        let mut t = lock(&self.nodes);
        let fk = (from.0, from.1.to_owned());
        let tk = (to.0, to.1.to_owned());
        let a = t.by_name.remove(&fk);
        let b = t.by_name.remove(&tk);
        for (id, k) in [(a, &tk), (b.filter(|_| exchange), &fk)] {
            if let Some(id) = id {
                t.by_name.insert(k.clone(), id);
                if let Some(n) = t.map.get_mut(&id) {
                    n.name = Some(k.clone());
                }
            }
        }
    }

    fn nlink(&self, id: u64, real: u32) -> u32 {
        let Some(window) = self.opts.stale_nlink else {
            return real;
        };
        let mut t = lock(&self.nodes);
        let Some(n) = t.map.get_mut(&id) else {
            return real;
        };
        match n.nlink {
            Some((v, at)) if at.elapsed() < window => v,
            _ => {
                n.nlink = Some((real, Instant::now()));
                real
            }
        }
    }

    fn resample_nlink(&self, id: u64, fd: &OwnedFd) {
        if self.opts.stale_nlink.is_none() {
            return;
        }
        let Ok(st) = rfs::fstat(fd) else { return };
        if let Some(n) = lock(&self.nodes).map.get_mut(&id) {
            n.nlink = Some((st.st_nlink as u32, Instant::now()));
        }
    }

    /// The attributes a caller sees for node `id`. `entry`: for a lookup-style reply, whose
    /// `ino` is the node id (fuser sends `attr.ino` as the node id); stat then asks again
    /// (nothing is cached) and gets [`InoNumbers`]' number.
    fn attr(&self, id: u64, st: &Stat, entry: bool) -> FileAttr {
        let ino = if entry {
            id
        } else {
            match self.opts.ino {
                InoNumbers::Passthrough => st.st_ino as u64,
                InoNumbers::PerPath => id,
            }
        };
        FileAttr {
            ino: INodeNo(ino),
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            atime: time(st.st_atime as i64, st.st_atime_nsec as i64),
            mtime: time(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: time(st.st_ctime as i64, st.st_ctime_nsec as i64),
            crtime: UNIX_EPOCH,
            kind: kind_of(st.st_mode as u32),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: self.nlink(id, st.st_nlink as u32),
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
            flags: 0,
        }
    }

    fn control_attr(&self) -> FileAttr {
        FileAttr {
            ino: INodeNo(CONTROL_ID),
            size: 0,
            blocks: 0,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind: FileType::RegularFile,
            perm: 0o600,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn is_control(parent: INodeNo, name: &OsStr) -> bool {
        parent == INodeNo::ROOT && name == CONTROL
    }

    /// Looks `name` up in `parent` and registers it: the entry reply's attributes.
    fn enter(&self, parent: INodeNo, name: &OsStr, pfd: &OwnedFd) -> R<FileAttr> {
        let fd = open_path(pfd, name).map_err(er)?;
        let st = rfs::fstat(&fd).map_err(er)?;
        if let Some(mut p) = self.power() {
            p.hold(key_of(&st), &fd);
        }
        let id = self.remember(parent.0, name, fd, &st);
        Ok(self.attr(id, &st, true))
    }

    /// Gives a new entry its owner, group and mode the way the kernel would for the caller:
    /// the caller's uid; the directory's group where it is setgid (and, for a directory, its
    /// setgid bit) unless `setgid=no`; the caller's group otherwise; `mode` exactly (the kernel
    /// applied the caller's umask already; this process's umask must not apply again).
    fn own(&self, req: &Request, parent: &Stat, fd: &OwnedFd, mode: u32) -> R<()> {
        let st = rfs::fstat(fd).map_err(er)?;
        let kind = kind_of(st.st_mode as u32);
        let inherit = self.opts.setgid_inherit && parent.st_mode as u32 & libc::S_ISGID != 0;
        let gid = if inherit { parent.st_gid } else { req.gid() };
        rfs::chownat(
            fd,
            "",
            Some(rfs::Uid::from_raw(req.uid())),
            Some(rfs::Gid::from_raw(gid)),
            AtFlags::EMPTY_PATH,
        )
        .map_err(er)?;
        if kind == FileType::Symlink {
            return Ok(());
        }
        let mut mode = mode & 0o7777;
        if kind == FileType::Directory {
            mode &= !libc::S_ISGID;
            if inherit {
                mode |= libc::S_ISGID;
            }
        }
        rfs::chmodat(
            rfs::CWD,
            proc_path(fd),
            Mode::from_raw_mode(mode as _),
            AtFlags::empty(),
        )
        .map_err(er)
    }

    /// A new entry made by `make` in `parent`: owned, registered, recorded (power-cut mode);
    /// returns the entry reply's attributes and the `O_PATH` descriptor.
    fn make(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: Option<u32>,
        make: impl FnOnce(&OwnedFd) -> R<()>,
    ) -> R<FileAttr> {
        if Self::is_control(parent, name) {
            return Err(Errno::EEXIST);
        }
        let (pfd, pkey) = self.node(parent)?;
        let pst = rfs::fstat(&*pfd).map_err(er)?;
        let mut power = self.power();
        make(&pfd)?;
        let fd = open_path(&*pfd, name).map_err(er)?;
        let owned = match mode {
            Some(m) => self.own(req, &pst, &fd, m),
            None => self.own(req, &pst, &fd, 0),
        };
        if let Err(e) = owned {
            let _ = rfs::unlinkat(
                &*pfd,
                name,
                if mode.is_some_and(|m| m & libc::S_IFMT == libc::S_IFDIR) {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                },
            );
            return Err(e);
        }
        let st = rfs::fstat(&fd).map_err(er)?;
        if let Some(p) = power.as_mut() {
            p.hold(key_of(&st), &fd);
            p.record(Op::Create {
                parent: pkey,
                name: name.to_owned(),
                obj: key_of(&st),
            });
        }
        drop(power);
        let id = self.remember(parent.0, name, fd, &st);
        Ok(self.attr(id, &st, true))
    }

    fn new_fh(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::SeqCst);
        lock(&self.handles).insert(fh, h);
        fh
    }

    fn file(&self, fh: FileHandle) -> R<(Arc<File>, Key)> {
        match lock(&self.handles).get(&fh.0) {
            Some(Handle::File { file, key }) => Ok((file.clone(), *key)),
            _ => Err(Errno::EBADF),
        }
    }

    fn dirty(&self, key: Key) {
        if let Some(mut p) = self.power() {
            p.dirty(key);
        }
    }

    fn control_command(&self, data: &[u8]) -> R<()> {
        match String::from_utf8_lossy(data).trim() {
            "cut" => {
                self.cut();
                // Unmount once this write has been answered; the session then ends.
                let mnt = self.mountpoint.clone();
                std::thread::spawn(move || {
                    let _ = rustix::mount::unmount(&mnt, rustix::mount::UnmountFlags::DETACH);
                });
                Ok(())
            }
            "sync" => self.sync_all().map_err(|_| Errno::EIO),
            _ => Err(Errno::EINVAL),
        }
    }

    fn status_text(&self) -> Vec<u8> {
        let s = self.status();
        let mut t = format!(
            "profile {}\npower-cut {}\npending-ops {}\ndirty-files {}\ncommits {}\nreplay-errors {}\n",
            self.opts.name,
            self.opts.power_cut,
            s.pending_ops,
            s.dirty_files,
            s.commits,
            s.errors.len()
        );
        for e in &s.errors {
            t.push_str(&format!("error {e}\n"));
        }
        t.into_bytes()
    }

    fn list(&self, fd: &OwnedFd) -> R<Vec<DirEntry>> {
        let dfd = reopen(fd, OFlags::RDONLY | OFlags::DIRECTORY).map_err(er)?;
        let mut dir = rfs::Dir::new(dfd).map_err(er)?;
        let mut out = Vec::new();
        while let Some(e) = dir.read() {
            let e = e.map_err(er)?;
            let name = OsStr::from_bytes(e.file_name().to_bytes()).to_owned();
            let kind = match e.file_type() {
                rfs::FileType::Unknown => rfs::statat(fd, &name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| kind_of(st.st_mode as u32))
                    .unwrap_or(FileType::RegularFile),
                t => kind_of(t.as_raw_mode() as u32),
            };
            out.push(DirEntry {
                ino: e.ino(),
                kind,
                name,
            });
        }
        Ok(out)
    }
}

/// The [`Filesystem`] the session runs: [`Inner`] behind an `Arc` the mount's API shares.
pub struct Fs(pub Arc<Inner>);

macro_rules! alive {
    ($self:ident, $reply:ident) => {
        if $self.0.dead() {
            $reply.error(Errno::EIO);
            return;
        }
    };
}

impl Filesystem for Fs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // flock reaches the filesystem only if it asks for it; otherwise the kernel keeps
        // flocks itself, per kernel inode (Locks::PerMount).
        if self.0.opts.locks != Locks::PerMount {
            config
                .add_capabilities(InitFlags::FUSE_FLOCK_LOCKS)
                .map_err(|_| io::Error::other("this kernel's FUSE has no FUSE_FLOCK_LOCKS"))?;
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        alive!(self, reply);
        if Inner::is_control(parent, name) {
            return reply.entry(&TTL, &self.0.control_attr(), Generation(0));
        }
        let r = self
            .0
            .node(parent)
            .and_then(|(pfd, _)| self.0.enter(parent, name, &pfd));
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        };
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.0.forget_node(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        alive!(self, reply);
        if ino.0 == CONTROL_ID {
            return reply.attr(&TTL, &self.0.control_attr());
        }
        let r = (|| {
            let st = match fh.map(|fh| self.0.file(fh)) {
                Some(Ok((file, _))) => rfs::fstat(&*file).map_err(er)?,
                _ => rfs::fstat(&*self.0.node(ino)?.0).map_err(er)?,
            };
            Ok(self.0.attr(ino.0, &st, false))
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        };
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        alive!(self, reply);
        if ino.0 == CONTROL_ID {
            return reply.attr(&TTL, &self.0.control_attr());
        }
        let r = (|| {
            let (fd, key) = self.0.node(ino)?;
            let st = rfs::fstat(&*fd).map_err(er)?;
            let symlink = kind_of(st.st_mode as u32) == FileType::Symlink;
            if uid.is_some() || gid.is_some() {
                rfs::chownat(
                    &*fd,
                    "",
                    uid.map(rfs::Uid::from_raw),
                    gid.map(rfs::Gid::from_raw),
                    AtFlags::EMPTY_PATH,
                )
                .map_err(er)?;
            }
            if let Some(m) = mode {
                if symlink {
                    return Err(Errno::from_i32(libc::EOPNOTSUPP));
                }
                rfs::chmodat(
                    rfs::CWD,
                    proc_path(&*fd),
                    Mode::from_raw_mode((m & 0o7777) as _),
                    AtFlags::empty(),
                )
                .map_err(er)?;
            }
            if let Some(len) = size {
                match fh.map(|fh| self.0.file(fh)) {
                    Some(Ok((file, _))) => file.set_len(len).map_err(eio)?,
                    _ => {
                        let w = reopen(&*fd, OFlags::WRONLY).map_err(er)?;
                        rfs::ftruncate(&w, len).map_err(er)?;
                    }
                }
            }
            if (atime.is_some() || mtime.is_some()) && !symlink {
                let spec = |t: Option<TimeOrNow>| match t {
                    None => rfs::Timespec {
                        tv_sec: 0,
                        tv_nsec: rfs::UTIME_OMIT,
                    },
                    Some(TimeOrNow::Now) => rfs::Timespec {
                        tv_sec: 0,
                        tv_nsec: rfs::UTIME_NOW,
                    },
                    Some(TimeOrNow::SpecificTime(t)) => {
                        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                        rfs::Timespec {
                            tv_sec: d.as_secs() as _,
                            tv_nsec: d.subsec_nanos() as _,
                        }
                    }
                };
                let times = rfs::Timestamps {
                    last_access: spec(atime),
                    last_modification: spec(mtime),
                };
                rfs::utimensat(rfs::CWD, proc_path(&*fd), &times, AtFlags::empty()).map_err(er)?;
            }
            self.0.dirty(key);
            let st = rfs::fstat(&*fd).map_err(er)?;
            Ok(self.0.attr(ino.0, &st, false))
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        };
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        alive!(self, reply);
        let r = self
            .0
            .node(ino)
            .and_then(|(fd, _)| rfs::readlinkat(&*fd, "", Vec::new()).map_err(er));
        match r {
            Ok(t) => reply.data(t.as_bytes()),
            Err(e) => reply.error(e),
        };
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        alive!(self, reply);
        let r = self.0.make(req, parent, name, Some(mode), |pfd| {
            rfs::mknodat(
                pfd,
                name,
                rfs::FileType::from_raw_mode(mode as _),
                Mode::from_raw_mode(0o600),
                rdev as _,
            )
            .map_err(er)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        };
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        alive!(self, reply);
        let r = self
            .0
            .make(req, parent, name, Some(mode | libc::S_IFDIR), |pfd| {
                rfs::mkdirat(pfd, name, Mode::from_raw_mode(0o700)).map_err(er)
            });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        };
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        alive!(self, reply);
        let r = self.remove(parent, name, false);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        };
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        alive!(self, reply);
        let r = self.remove(parent, name, true);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        };
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        alive!(self, reply);
        let r = self.0.make(req, parent, link_name, None, |pfd| {
            rfs::symlinkat(target, pfd, link_name).map_err(er)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        };
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        alive!(self, reply);
        let r = (|| {
            if Inner::is_control(parent, name) || Inner::is_control(newparent, newname) {
                return Err(Errno::EPERM);
            }
            if !flags.is_empty() && !self.0.opts.rename_flags {
                return Err(Errno::EINVAL);
            }
            let (pfd, pkey) = self.0.node(parent)?;
            let (nfd, nkey) = self.0.node(newparent)?;
            let mut power = self.0.power();
            let obj = rfs::statat(&*pfd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(er)?;
            let replaced = rfs::statat(&*nfd, newname, AtFlags::SYMLINK_NOFOLLOW).ok();
            let rflags = rfs::RenameFlags::from_bits_retain(flags.bits());
            rfs::renameat_with(&*pfd, name, &*nfd, newname, rflags).map_err(er)?;
            let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
            if let Some(p) = power.as_mut() {
                p.record(Op::Rename {
                    from: pkey,
                    from_name: name.to_owned(),
                    to: nkey,
                    to_name: newname.to_owned(),
                    obj: key_of(&obj),
                    replaced: replaced.as_ref().map(|st| {
                        (
                            key_of(st),
                            kind_of(st.st_mode as u32) == FileType::Directory,
                        )
                    }),
                    exchange,
                });
            }
            drop(power);
            if self.0.opts.nodes == Nodes::PerName {
                self.0
                    .move_name((parent.0, name), (newparent.0, newname), exchange);
            }
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        };
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        alive!(self, reply);
        let r = (|| {
            if !self.0.opts.hard_links {
                return Err(Errno::EPERM);
            }
            if Inner::is_control(newparent, newname) || ino.0 == CONTROL_ID {
                return Err(Errno::EPERM);
            }
            let (fd, key) = self.0.node(ino)?;
            let (nfd, nkey) = self.0.node(newparent)?;
            let mut power = self.0.power();
            rfs::linkat(&*fd, "", &*nfd, newname, AtFlags::EMPTY_PATH).map_err(er)?;
            if let Some(p) = power.as_mut() {
                p.record(Op::Link {
                    obj: key,
                    parent: nkey,
                    name: newname.to_owned(),
                });
            }
            drop(power);
            let attr = self.0.enter(newparent, newname, &nfd)?;
            // `stale_nlink`: the count is sampled at link time (2 for a new second name) and
            // kept, however soon the other name goes.
            self.0.resample_nlink(attr.ino.0, &fd);
            Ok(attr)
        })();
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        };
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        alive!(self, reply);
        if ino.0 == CONTROL_ID {
            let fh = self.0.new_fh(Handle::Control {
                text: self.0.status_text(),
            });
            return reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
        }
        let r = (|| {
            let (fd, key) = self.0.node(ino)?;
            let keep = libc::O_ACCMODE | libc::O_APPEND | libc::O_TRUNC | libc::O_NONBLOCK;
            let of = OFlags::from_bits_retain((flags.0 & keep) as _);
            let file = File::from(reopen(&*fd, of).map_err(er)?);
            if flags.0 & libc::O_TRUNC != 0 {
                self.0.dirty(key);
            }
            Ok(self.0.new_fh(Handle::File {
                file: Arc::new(file),
                key,
            }))
        })();
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        };
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        alive!(self, reply);
        if let Some(Handle::Control { text }) = lock(&self.0.handles).get(&fh.0) {
            let start = (offset as usize).min(text.len());
            let end = (start + size as usize).min(text.len());
            return reply.data(&text[start..end]);
        }
        let r = (|| {
            let (file, _) = self.0.file(fh)?;
            let mut buf = vec![0u8; size as usize];
            let mut got = 0;
            while got < buf.len() {
                match rustix::io::pread(&*file, &mut buf[got..], offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(er(e)),
                }
            }
            buf.truncate(got);
            Ok(buf)
        })();
        match r {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        };
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        alive!(self, reply);
        if matches!(
            lock(&self.0.handles).get(&fh.0),
            Some(Handle::Control { .. })
        ) {
            let r = self.0.control_command(data);
            return match r {
                Ok(()) => reply.written(data.len() as u32),
                Err(e) => reply.error(e),
            };
        }
        let r = (|| {
            let (file, key) = self.0.file(fh)?;
            let mut done_ = 0;
            while done_ < data.len() {
                match rustix::io::pwrite(&*file, &data[done_..], offset + done_ as u64) {
                    Ok(n) => done_ += n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(er(e)),
                }
            }
            self.0.dirty(key);
            Ok(data.len() as u32)
        })();
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        };
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Closing the descriptor drops a `Locks::Shared` flock taken through it.
        lock(&self.0.handles).remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        alive!(self, reply);
        if matches!(
            lock(&self.0.handles).get(&fh.0),
            Some(Handle::Control { .. })
        ) {
            return reply.ok();
        }
        let r = (|| {
            let (file, key) = self.0.file(fh)?;
            match self.0.power() {
                Some(mut p) => p.sync_file(key),
                None if datasync => rfs::fdatasync(&*file).map_err(er),
                None => rfs::fsync(&*file).map_err(er),
            }
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        };
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        alive!(self, reply);
        let r = self.0.node(ino).and_then(|(fd, _)| {
            let entries = self.0.list(&fd)?;
            let fh = self.0.next_fh.fetch_add(1, Ordering::SeqCst);
            lock(&self.0.dirs).insert(fh, entries);
            Ok(fh)
        });
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        };
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        alive!(self, reply);
        if offset == 0 {
            // A rewind: list again.
            match self.0.node(ino).and_then(|(fd, _)| self.0.list(&fd)) {
                Ok(entries) => {
                    lock(&self.0.dirs).insert(fh.0, entries);
                }
                Err(e) => return reply.error(e),
            }
        }
        let dirs = lock(&self.0.dirs);
        let Some(entries) = dirs.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e.ino), i as u64 + 1, e.kind, &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.0.dirs).remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        alive!(self, reply);
        let r = self.0.node(ino).and_then(|(fd, key)| match self.0.power() {
            Some(mut p) => {
                p.sync_dir(key);
                Ok(())
            }
            None => {
                let d = reopen(&*fd, OFlags::RDONLY | OFlags::DIRECTORY).map_err(er)?;
                rfs::fsync(&d).map_err(er)
            }
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        };
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        alive!(self, reply);
        match rfs::fstatvfs(&*self.0.root) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(er(e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // `default_permissions`: the kernel checks permissions itself.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        alive!(self, reply);
        let r = (|| {
            if Inner::is_control(parent, name) {
                return Err(Errno::EEXIST);
            }
            let (pfd, pkey) = self.0.node(parent)?;
            let pst = rfs::fstat(&*pfd).map_err(er)?;
            let keep = libc::O_ACCMODE | libc::O_APPEND | libc::O_NONBLOCK;
            let of = OFlags::from_bits_retain((flags & keep) as _) | OFlags::CLOEXEC;
            let mut power = self.0.power();
            let (file, created) = match rfs::openat(
                &*pfd,
                name,
                of | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(f) => (f, true),
                Err(rustix::io::Errno::EXIST) if flags & libc::O_EXCL == 0 => {
                    let f = rfs::openat(&*pfd, name, of | OFlags::NOFOLLOW, Mode::empty())
                        .map_err(er)?;
                    if flags & libc::O_TRUNC != 0 {
                        rfs::ftruncate(&f, 0).map_err(er)?;
                    }
                    (f, false)
                }
                Err(e) => return Err(er(e)),
            };
            let fd = open_path(&*pfd, name).map_err(er)?;
            if created {
                if let Err(e) = self.0.own(req, &pst, &fd, mode) {
                    let _ = rfs::unlinkat(&*pfd, name, AtFlags::empty());
                    return Err(e);
                }
            }
            let st = rfs::fstat(&fd).map_err(er)?;
            let key = key_of(&st);
            if let Some(p) = power.as_mut() {
                p.hold(key, &fd);
                if created {
                    p.record(Op::Create {
                        parent: pkey,
                        name: name.to_owned(),
                        obj: key,
                    });
                } else {
                    p.dirty(key);
                }
            }
            drop(power);
            let id = self.0.remember(parent.0, name, fd, &st);
            let fh = self.0.new_fh(Handle::File {
                file: Arc::new(File::from(file)),
                key,
            });
            Ok((self.0.attr(id, &st, true), fh))
        })();
        match r {
            Ok((a, fh)) => {
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        };
    }

    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        typ: i32,
        _pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        alive!(self, reply);
        // Only flock(2) comes here (FUSE_FLOCK_LOCKS without FUSE_POSIX_LOCKS: fcntl locks
        // stay the kernel's).
        match self.0.opts.locks {
            Locks::Noop => return reply.ok(),
            Locks::Enosys | Locks::PerMount => return reply.error(Errno::ENOSYS),
            Locks::Shared => {}
        }
        let file = match self.0.file(fh) {
            Ok((f, _)) => f,
            Err(e) => return reply.error(e),
        };
        use rfs::FlockOperation as F;
        let op = match (typ, sleep) {
            (libc::F_UNLCK, _) => F::Unlock,
            (libc::F_RDLCK, false) => F::NonBlockingLockShared,
            (libc::F_RDLCK, true) => F::LockShared,
            (libc::F_WRLCK, false) => F::NonBlockingLockExclusive,
            (libc::F_WRLCK, true) => F::LockExclusive,
            _ => return reply.error(Errno::EINVAL),
        };
        if !sleep || op == F::Unlock {
            return match rfs::flock(&*file, op) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(er(e)),
            };
        }
        // A blocking flock must not hold a worker: wait on a thread of its own.
        let inner = self.0.clone();
        std::thread::spawn(move || {
            let r = loop {
                match rfs::flock(&*file, op) {
                    Err(rustix::io::Errno::INTR) => continue,
                    r => break r,
                }
            };
            match r {
                Ok(()) if inner.dead() => {
                    let _ = rfs::flock(&*file, F::Unlock);
                    reply.error(Errno::EIO)
                }
                Ok(()) => reply.ok(),
                Err(e) => reply.error(er(e)),
            }
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        alive!(self, reply);
        let r = self.0.file(fh).and_then(|(file, key)| {
            rfs::fallocate(
                &*file,
                rfs::FallocateFlags::from_bits_retain(mode as _),
                offset,
                length,
            )
            .map_err(er)?;
            self.0.dirty(key);
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        };
    }
}

impl Fs {
    fn remove(&self, parent: INodeNo, name: &OsStr, dir: bool) -> R<()> {
        if Inner::is_control(parent, name) {
            return Err(Errno::EPERM);
        }
        let (pfd, pkey) = self.0.node(parent)?;
        let mut power = self.0.power();
        let obj = rfs::statat(&*pfd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(er)?;
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rfs::unlinkat(&*pfd, name, flags).map_err(er)?;
        if let Some(p) = power.as_mut() {
            p.record(Op::Remove {
                parent: pkey,
                name: name.to_owned(),
                obj: key_of(&obj),
                dir,
            });
        }
        drop(power);
        if self.0.opts.nodes == Nodes::PerName {
            self.0.drop_name(parent.0, name);
        }
        Ok(())
    }
}
