//! Power-cut mode: what is durable (the backing directory) and what is not yet (the operations
//! and writes the live copy has and the backing directory lacks). The rules are in the module
//! doc of [`super`]; this is their implementation.
//!
//! - The *live* directory is a private copy of the backing directory made at mount; the mount
//!   shows it and every operation applies to it at once.
//! - Each live inode (a [`Key`]) is held open (`O_PATH`) for as long as it matters, so its
//!   inode number is not reused, and is paired with its *durable* inode in the backing
//!   directory once it has one: from the copy at mount, from a replayed create, or — for a file
//!   fsynced before any name of it is durable — an `O_TMPFILE` inode with no name yet, which a
//!   later durable create links in (and which vanishes at a cut, as an orphan inode does).
//! - Namespace operations are logged ([`Op`]); a directory's fsync replays, in log order, the
//!   logged operations that name that directory and those they depend on (see
//!   [`Durable::closure`]) onto the backing directory, through the durable inodes' descriptors
//!   (never by path, so a durable rename of a directory does not disturb anything).
//! - A file's fsync copies its live bytes (and mode, owner, times) onto its durable inode.
//! - A cut forgets all of it: the log, the pairs, the held descriptors.

// The filesystem's own files are not a store: clippy.toml's ban on raw std::fs is for beaker's.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unnecessary_cast)] // Stat's field types differ between rustix's backends

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use fuser::Errno;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Stat};

use super::fs::{key_of, open_path, proc_path, reopen, Key};

/// A namespace operation applied to the live directory and not yet to the backing one. Keys
/// are live inodes; names are entries of the parent directory.
#[derive(Debug, Clone)]
pub enum Op {
    /// A new file, directory, symlink or special file `obj` named `name` in `parent`.
    Create {
        parent: Key,
        name: OsString,
        obj: Key,
    },
    /// A new name for `obj`.
    Link {
        obj: Key,
        parent: Key,
        name: OsString,
    },
    /// `name` (the inode `obj`) removed from `parent`: unlink, or rmdir when `dir`.
    Remove {
        parent: Key,
        name: OsString,
        obj: Key,
        dir: bool,
    },
    /// `from/from_name` renamed to `to/to_name`, replacing `replaced` (a directory when its
    /// flag says so) — or, with `exchange`, swapped with it.
    Rename {
        from: Key,
        from_name: OsString,
        to: Key,
        to_name: OsString,
        obj: Key,
        replaced: Option<(Key, bool)>,
        exchange: bool,
    },
}

impl Op {
    /// The directories whose entries it changes.
    fn parents(&self) -> Vec<Key> {
        match self {
            Op::Create { parent, .. } | Op::Link { parent, .. } | Op::Remove { parent, .. } => {
                vec![*parent]
            }
            Op::Rename { from, to, .. } => vec![*from, *to],
        }
    }

    /// The entries (directory, name) it changes.
    fn entries(&self) -> Vec<(Key, OsString)> {
        match self {
            Op::Create { parent, name, .. }
            | Op::Link { parent, name, .. }
            | Op::Remove { parent, name, .. } => vec![(*parent, name.clone())],
            Op::Rename {
                from,
                from_name,
                to,
                to_name,
                ..
            } => vec![(*from, from_name.clone()), (*to, to_name.clone())],
        }
    }

    /// The inodes it creates, names, unnames or moves.
    fn objects(&self) -> Vec<Key> {
        match self {
            Op::Create { obj, .. } | Op::Link { obj, .. } | Op::Remove { obj, .. } => vec![*obj],
            Op::Rename { obj, replaced, .. } => {
                let mut v = vec![*obj];
                v.extend(replaced.map(|(k, _)| k));
                v
            }
        }
    }

    /// A directory it removes (rmdir, or a rename over it): it must be durably empty first.
    fn emptied(&self) -> Option<Key> {
        match self {
            Op::Remove { obj, dir: true, .. } => Some(*obj),
            Op::Rename {
                replaced: Some((k, true)),
                exchange: false,
                ..
            } => Some(*k),
            _ => None,
        }
    }
}

/// The durable counterpart of a live inode.
struct Dur {
    /// `O_PATH` for an inode with a durable name; `O_RDWR` for an `O_TMPFILE` one.
    fd: OwnedFd,
    /// Whether it has (had) a durable name; an `O_TMPFILE` inode does not until linked.
    linked: bool,
}

/// What a mount in power-cut mode reports (see [`super::Mount::status`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Namespace operations not yet durable.
    pub pending_ops: usize,
    /// Files written (or whose attributes changed) since their last fsync.
    pub dirty_files: usize,
    /// Directory fsyncs (and syncs) that made something durable.
    pub commits: u64,
    /// Operations the model could not replay onto the backing directory: each is a bug of the
    /// model (or a full disk), never beaker's.
    pub errors: Vec<String>,
}

/// The power-cut state of one mount.
pub struct Durable {
    /// The backing directory (`O_PATH`): where `O_TMPFILE` inodes are made.
    root: OwnedFd,
    holds: HashMap<Key, OwnedFd>,
    durable: HashMap<Key, Dur>,
    log: Vec<Op>,
    dirty: HashSet<Key>,
    commits: u64,
    errors: Vec<String>,
}

type R<T> = std::result::Result<T, String>;

fn dup(fd: impl AsFd) -> OwnedFd {
    rustix::io::fcntl_dupfd_cloexec(fd, 0).expect("dup a descriptor")
}

fn kind(st: &Stat) -> rfs::FileType {
    rfs::FileType::from_raw_mode(st.st_mode as _)
}

/// Gives the file of `fd` (an `O_PATH` descriptor is fine) the owner, mode and times of `st`.
fn set_attrs(st: &Stat, fd: &OwnedFd) -> rustix::io::Result<()> {
    rfs::chownat(
        fd,
        "",
        Some(rfs::Uid::from_raw(st.st_uid)),
        Some(rfs::Gid::from_raw(st.st_gid)),
        AtFlags::EMPTY_PATH,
    )?;
    if kind(st) == rfs::FileType::Symlink {
        return Ok(());
    }
    rfs::chmodat(
        rfs::CWD,
        proc_path(fd),
        Mode::from_raw_mode((st.st_mode & 0o7777) as _),
        AtFlags::empty(),
    )?;
    let ts = |s: i64, ns: i64| rfs::Timespec {
        tv_sec: s as _,
        tv_nsec: ns as _,
    };
    rfs::utimensat(
        rfs::CWD,
        proc_path(fd),
        &rfs::Timestamps {
            last_access: ts(st.st_atime as i64, st.st_atime_nsec as i64),
            last_modification: ts(st.st_mtime as i64, st.st_mtime_nsec as i64),
        },
        AtFlags::empty(),
    )
}

/// Copies the bytes of the file of `from` over those of `to` (both any descriptor of a regular
/// file, `O_PATH` included).
fn copy_bytes(from: &OwnedFd, to: &OwnedFd) -> std::io::Result<()> {
    let mut src = File::from(reopen(from, OFlags::RDONLY)?);
    let mut dst = File::from(reopen(to, OFlags::WRONLY)?);
    dst.set_len(0)?;
    std::io::copy(&mut src, &mut dst)?;
    Ok(())
}

fn names(dir: &OwnedFd) -> rustix::io::Result<Vec<OsString>> {
    let mut d = rfs::Dir::new(reopen(dir, OFlags::RDONLY | OFlags::DIRECTORY)?)?;
    let mut out = Vec::new();
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_owned());
        }
    }
    Ok(out)
}

impl Durable {
    /// Copies `backing` into the empty directory `live` (hard links, symlinks, special files,
    /// owners, modes and times kept) and pairs each live inode with its backing one.
    pub fn load(backing: &Path, live: &Path) -> Result<Durable> {
        let open_dir = |p: &Path| {
            rfs::open(
                p,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("open {}", p.display()))
        };
        let broot = open_dir(backing)?;
        let lroot = open_dir(live)?;
        let mut d = Durable {
            root: dup(&broot),
            holds: HashMap::new(),
            durable: HashMap::new(),
            log: Vec::new(),
            dirty: HashSet::new(),
            commits: 0,
            errors: Vec::new(),
        };
        let mut seen = HashMap::new();
        d.copy_dir(&broot, &lroot, &mut seen).with_context(|| {
            format!(
                "copy {} to the live directory {}",
                backing.display(),
                live.display()
            )
        })?;
        set_attrs(&rfs::fstat(&broot)?, &lroot)?;
        let lkey = key_of(&rfs::fstat(&lroot)?);
        d.holds.insert(lkey, lroot);
        d.durable.insert(
            lkey,
            Dur {
                fd: broot,
                linked: true,
            },
        );
        Ok(d)
    }

    fn copy_dir(
        &mut self,
        bdir: &OwnedFd,
        ldir: &OwnedFd,
        seen: &mut HashMap<Key, Key>,
    ) -> Result<()> {
        for name in names(bdir)? {
            let bfd = open_path(bdir, &name)?;
            let bst = rfs::fstat(&bfd)?;
            let bkey = key_of(&bst);
            if let Some(lkey) = seen.get(&bkey) {
                // Another name of a file copied already: a hard link here too.
                rfs::linkat(&self.holds[lkey], "", ldir, &name, AtFlags::EMPTY_PATH)?;
                continue;
            }
            match kind(&bst) {
                rfs::FileType::Directory => {
                    rfs::mkdirat(ldir, &name, Mode::from_raw_mode(0o700))?;
                    let l = open_path(ldir, &name)?;
                    self.copy_dir(&bfd, &l, seen)?;
                }
                rfs::FileType::RegularFile => {
                    let l = rfs::openat(
                        ldir,
                        &name,
                        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )?;
                    copy_bytes(&bfd, &l)?;
                }
                rfs::FileType::Symlink => {
                    let target = rfs::readlinkat(&bfd, "", Vec::new())?;
                    rfs::symlinkat(target.as_c_str(), ldir, &name)?;
                }
                k => rfs::mknodat(ldir, &name, k, Mode::from_raw_mode(0o600), bst.st_rdev as _)?,
            }
            let lfd = open_path(ldir, &name)?;
            set_attrs(&bst, &lfd)?;
            let lkey = key_of(&rfs::fstat(&lfd)?);
            seen.insert(bkey, lkey);
            self.holds.insert(lkey, lfd);
            self.durable.insert(
                lkey,
                Dur {
                    fd: bfd,
                    linked: true,
                },
            );
        }
        Ok(())
    }

    /// Keeps the live inode `key` (whose `O_PATH` descriptor is `fd`) known.
    pub fn hold(&mut self, key: Key, fd: &OwnedFd) {
        self.holds.entry(key).or_insert_with(|| dup(fd));
    }

    pub fn record(&mut self, op: Op) {
        self.log.push(op);
    }

    pub fn dirty(&mut self, key: Key) {
        self.dirty.insert(key);
    }

    /// A file's fsync: its bytes, mode, owner and times become durable (on an `O_TMPFILE`
    /// inode when no name of it is durable yet).
    pub fn sync_file(&mut self, key: Key) -> std::result::Result<(), Errno> {
        self.sync_file_inner(key).map_err(|e| {
            self.errors.push(e);
            Errno::EIO
        })
    }

    fn sync_file_inner(&mut self, key: Key) -> R<()> {
        let Some(live) = self.holds.get(&key) else {
            return Ok(()); // no name of it is left, live or durable: nothing to keep
        };
        let st = rfs::fstat(live).map_err(|e| format!("fstat a live file: {e}"))?;
        if kind(&st) == rfs::FileType::RegularFile {
            if !self.durable.contains_key(&key) {
                let fd = rfs::openat(
                    &self.root,
                    ".",
                    OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| format!("O_TMPFILE in the backing directory: {e}"))?;
                self.durable.insert(key, Dur { fd, linked: false });
            }
            copy_bytes(live, &self.durable[&key].fd)
                .map_err(|e| format!("copy a file's bytes to its durable inode: {e}"))?;
        }
        self.sync_attrs(key)?;
        self.dirty.remove(&key);
        Ok(())
    }

    fn sync_attrs(&self, key: Key) -> R<()> {
        let (Some(live), Some(d)) = (self.holds.get(&key), self.durable.get(&key)) else {
            return Ok(());
        };
        let st = rfs::fstat(live).map_err(|e| format!("fstat a live inode: {e}"))?;
        if st.st_nlink == 0 && kind(&st) == rfs::FileType::Directory {
            return Ok(()); // removed: its durable twin may be gone too
        }
        set_attrs(&st, &d.fd).map_err(|e| format!("copy attributes to a durable inode: {e}"))
    }

    /// A directory's fsync: the entries of `dir` — creations, removals, renames in or out, new
    /// links — become durable, with what they depend on ([`Durable::closure`]).
    pub fn sync_dir(&mut self, dir: Key) {
        let sel = self.closure(|op| op.parents().contains(&dir));
        self.commit(&sel);
        if let Err(e) = self.sync_attrs(dir) {
            self.errors.push(e);
        }
    }

    /// Everything becomes durable: what a clean unmount does.
    pub fn sync_all(&mut self) {
        let sel = vec![true; self.log.len()];
        self.commit(&sel);
        let keys: Vec<Key> = self.holds.keys().copied().collect();
        for key in keys {
            let r = match self.holds.get(&key).map(rfs::fstat) {
                Some(Ok(st)) if st.st_nlink > 0 => {
                    if kind(&st) == rfs::FileType::RegularFile && self.dirty.contains(&key) {
                        self.sync_file_inner(key)
                    } else {
                        self.sync_attrs(key)
                    }
                }
                _ => Ok(()),
            };
            if let Err(e) = r {
                self.errors.push(e);
            }
        }
    }

    /// The power cut: nothing that is not durable survives; `O_TMPFILE` inodes vanish with
    /// their descriptors.
    pub fn cut(&mut self) {
        self.log.clear();
        self.durable.clear();
        self.holds.clear();
        self.dirty.clear();
    }

    pub fn status(&self) -> Status {
        Status {
            pending_ops: self.log.len(),
            dirty_files: self.dirty.len(),
            commits: self.commits,
            errors: self.errors.clone(),
        }
    }

    /// An error naming every operation the model failed to replay, if any.
    pub fn check(&self) -> Result<()> {
        if !self.errors.is_empty() {
            bail!(
                "the power-cut model failed to replay {} operation(s): {}",
                self.errors.len(),
                self.errors.join("; ")
            );
        }
        Ok(())
    }

    /// The operations a commit must replay: every one `start` picks, and, transitively, every
    /// earlier one that a picked one depends on — one that changes the same entry, creates,
    /// names, unnames or moves the same inode, or creates (or moves) a directory a picked one
    /// works in; and, for an rmdir or a rename over a directory, every earlier operation
    /// inside that directory (it must be durably empty first). Operations on other names of
    /// the same directories are not pulled in.
    fn closure(&self, start: impl Fn(&Op) -> bool) -> Vec<bool> {
        let mut sel = vec![false; self.log.len()];
        let mut entries: HashSet<(Key, OsString)> = HashSet::new();
        let mut objects: HashSet<Key> = HashSet::new();
        let mut parents: HashSet<Key> = HashSet::new();
        let mut emptied: HashSet<Key> = HashSet::new();
        for (i, op) in self.log.iter().enumerate().rev() {
            let pick = start(op)
                || op.entries().iter().any(|e| entries.contains(e))
                || op
                    .objects()
                    .iter()
                    .any(|o| objects.contains(o) || parents.contains(o))
                || op.parents().iter().any(|p| emptied.contains(p));
            if pick {
                sel[i] = true;
                entries.extend(op.entries());
                objects.extend(op.objects());
                parents.extend(op.parents());
                emptied.extend(op.emptied());
            }
        }
        sel
    }

    fn commit(&mut self, sel: &[bool]) {
        if !sel.iter().any(|s| *s) {
            return;
        }
        let log = std::mem::take(&mut self.log);
        let mut touched = Vec::new();
        for (op, picked) in log.into_iter().zip(sel) {
            if !*picked {
                self.log.push(op);
                continue;
            }
            if let Err(e) = self.replay(&op) {
                self.errors.push(format!("{op:?}: {e}"));
            }
            touched.extend(op.objects());
            touched.extend(op.parents());
        }
        for key in touched {
            if let Err(e) = self.sync_attrs(key) {
                self.errors.push(e);
            }
        }
        self.commits += 1;
        self.reap();
    }

    fn dir(&self, key: Key) -> R<&OwnedFd> {
        self.durable
            .get(&key)
            .map(|d| &d.fd)
            .ok_or_else(|| "its directory has no durable inode".to_owned())
    }

    fn replay(&mut self, op: &Op) -> R<()> {
        let e = |what: &str| {
            let what = what.to_owned();
            move |e: rustix::io::Errno| format!("{what}: {e}")
        };
        match op {
            Op::Create { parent, name, obj } => {
                let pd = &dup(self.dir(*parent)?);
                let live = self
                    .holds
                    .get(obj)
                    .ok_or_else(|| "the created inode is not held".to_owned())?;
                let st = rfs::fstat(live).map_err(e("fstat"))?;
                let fd = match kind(&st) {
                    rfs::FileType::RegularFile => match self.durable.get_mut(obj) {
                        Some(d) if !d.linked => {
                            rfs::linkat(&d.fd, "", pd, name, AtFlags::EMPTY_PATH)
                                .map_err(e("link an O_TMPFILE inode in"))?;
                            d.linked = true;
                            return Ok(());
                        }
                        Some(_) => return Err("created twice".to_owned()),
                        None => rfs::openat(
                            pd,
                            name,
                            OFlags::CREATE
                                | OFlags::EXCL
                                | OFlags::WRONLY
                                | OFlags::NOFOLLOW
                                | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o600),
                        )
                        .map_err(e("create"))?,
                    },
                    rfs::FileType::Directory => {
                        rfs::mkdirat(pd, name, Mode::from_raw_mode(0o700)).map_err(e("mkdir"))?;
                        open_path(pd, name).map_err(e("open"))?
                    }
                    rfs::FileType::Symlink => {
                        let target =
                            rfs::readlinkat(live, "", Vec::new()).map_err(e("readlink"))?;
                        rfs::symlinkat(target.as_c_str(), pd, name).map_err(e("symlink"))?;
                        open_path(pd, name).map_err(e("open"))?
                    }
                    k => {
                        rfs::mknodat(pd, name, k, Mode::from_raw_mode(0o600), st.st_rdev as _)
                            .map_err(e("mknod"))?;
                        open_path(pd, name).map_err(e("open"))?
                    }
                };
                self.durable.insert(*obj, Dur { fd, linked: true });
            }
            Op::Link { obj, parent, name } => {
                let pd = self.dir(*parent)?;
                let d = self
                    .durable
                    .get(obj)
                    .ok_or_else(|| "the linked inode has no durable inode".to_owned())?;
                rfs::linkat(&d.fd, "", pd, name, AtFlags::EMPTY_PATH).map_err(e("link"))?;
                self.durable.get_mut(obj).expect("present").linked = true;
            }
            Op::Remove {
                parent, name, dir, ..
            } => {
                let flags = if *dir {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                rfs::unlinkat(self.dir(*parent)?, name, flags).map_err(e("unlink"))?;
            }
            Op::Rename {
                from,
                from_name,
                to,
                to_name,
                exchange,
                ..
            } => {
                let flags = if *exchange {
                    rfs::RenameFlags::EXCHANGE
                } else {
                    rfs::RenameFlags::empty()
                };
                rfs::renameat_with(self.dir(*from)?, from_name, self.dir(*to)?, to_name, flags)
                    .map_err(e("rename"))?;
            }
        }
        Ok(())
    }

    /// Forgets live inodes that are gone (no live name left) and that no pending operation
    /// names: their durable twins have no name either.
    fn reap(&mut self) {
        let named: HashSet<Key> = self
            .log
            .iter()
            .flat_map(|op| op.objects().into_iter().chain(op.parents()))
            .collect();
        let mut gone = Vec::new();
        for (k, fd) in &self.holds {
            if !named.contains(k) && rfs::fstat(fd).is_ok_and(|st| st.st_nlink == 0) {
                gone.push(*k);
            }
        }
        for k in gone {
            self.holds.remove(&k);
            self.durable.remove(&k);
            self.dirty.remove(&k);
        }
    }
}
