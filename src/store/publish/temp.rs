//! [`TempBlob`]: the temp file in `<store>/tmp/` that bytes are written into before they are
//! published, hashed and counted as they are written (docs/design.md#publish step 3), and its resume.
//!
//! What this file guarantees, for the publish protocol in `super`:
//!
//! - only this process writes the file: it is created `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600, and
//!   flocked by its writer for as long as it lives;
//! - the digests are of exactly the bytes that went through [`TempBlob`]'s `Write`, in order
//!   (`write` hashes the bytes the file accepted, no more), and `len` counts them;
//! - a resumed partial ([`TempBlob::take_over`]) is re-hashed from its first byte, and is never a
//!   file that is also a published blob (`nlink == 1` — see the **Security** note there).

use std::fs::File;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use md5::Digest as _;

use crate::model::digest::{Md5, Sha256};
use crate::model::entry::Expect;
use crate::store::{Locking, Store, StoreError, BLOB_MODE, TEMP_MODE};
use crate::sys::error::{IoContext, IoError};
use crate::sys::fsx::{self, Meta, Rooted};
use crate::Blake3;

/// A temp file in `<store>/tmp/` that only this process writes, hashed and counted as it grows.
///
/// BLAKE3 is always computed; SHA-256 and MD5 only when the entry it is created for pins them
/// (all in the same pass over the bytes). Write to it with [`Write`] (e.g. `io::copy`) or
/// [`TempBlob::append`]. Dropped without being published or [kept](TempBlob::keep), it deletes
/// itself.
#[must_use = "a TempBlob is deleted when dropped; publish it or keep it"]
pub struct TempBlob {
    pub(super) file: File,
    pub(super) path: Rooted,
    store_root: PathBuf,
    pub(super) hashers: Hashers,
    pub(super) len: u64,
    /// Where the writeback started by [`fsx::start_writeback`] has reached (see `write`).
    written_back: u64,
    /// Whether writeback is started as the file grows: not on btrfs, where each
    /// `sync_file_range` costs milliseconds and a pull was 4–12% slower with it (P10).
    early_writeback: bool,
    pub(super) armed: bool,
}

/// How many bytes a temp file gathers before [`TempBlob`] starts writing them to disk.
const WRITEBACK_STEP: u64 = 8 << 20;

impl std::fmt::Debug for TempBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempBlob")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// The digests computed while writing: BLAKE3 always, the upstream ones when pinned.
#[derive(Clone)]
pub(super) struct Hashers {
    blake3: blake3::Hasher,
    sha256: Option<sha2::Sha256>,
    md5: Option<md5::Md5>,
}

impl Hashers {
    fn for_entry(entry: &Expect) -> Self {
        Hashers {
            blake3: blake3::Hasher::new(),
            sha256: entry.upstream.sha256.map(|_| sha2::Sha256::new()),
            md5: entry.upstream.md5.map(|_| md5::Md5::new()),
        }
    }

    fn update(&mut self, buf: &[u8]) {
        self.blake3.update(buf);
        if let Some(h) = &mut self.sha256 {
            h.update(buf);
        }
        if let Some(h) = &mut self.md5 {
            h.update(buf);
        }
    }

    fn reset(&mut self) {
        self.blake3.reset();
        if let Some(h) = &mut self.sha256 {
            *h = sha2::Sha256::new();
        }
        if let Some(h) = &mut self.md5 {
            *h = md5::Md5::new();
        }
    }

    pub(super) fn blake3(&self) -> Blake3 {
        self.blake3.finalize().into()
    }

    /// The SHA-256 computed, if the entry pinned one.
    pub(super) fn sha256(&self) -> Option<Sha256> {
        self.sha256
            .clone()
            .map(|h| Sha256::from_bytes(h.finalize().into()))
    }

    /// The MD5 computed, if the entry pinned one.
    pub(super) fn md5(&self) -> Option<Md5> {
        self.md5
            .clone()
            .map(|h| Md5::from_bytes(h.finalize().into()))
    }
}

/// A `Write` that only hashes and counts: what a resumed partial's existing bytes go through.
struct HashOnly<'a> {
    hashers: &'a mut Hashers,
    len: &'a mut u64,
}

impl Write for HashOnly<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hashers.update(buf);
        *self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TempBlob {
    /// Creates `tmp/<stem>.<pid>.<nonce>.part` with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, and
    /// holds a flock on it while writing (so gc and resume can tell a live writer from a dead
    /// one). Computes BLAKE3 only.
    pub fn create(store: &Store, stem: &str) -> Result<Self, StoreError> {
        Self::create_for(store, stem, &Expect::default())
    }

    /// Like [`TempBlob::create`], also computing every upstream digest `entry` pins, so that
    /// publishing can check them (docs/design.md#publish step 4).
    pub fn create_for(store: &Store, stem: &str, entry: &Expect) -> Result<Self, StoreError> {
        let (file, path) =
            fsx::create_unique(&store.layout().tmp(), &own_stem(stem), "part", TEMP_MODE)
                .map_err(|e| StoreError::writing(store.root(), e))?;
        if store.config().locking == Locking::Flock {
            // A brand-new file nobody else has opened: this cannot be contended.
            // (On a filesystem where flock fails, this names the remedy: `locking = "none"`.)
            if !crate::sys::lock::try_exclusive(&file, &path)? {
                return Err(IoError::new(
                    "lock",
                    &path,
                    io::Error::other("a brand-new temp file was already locked"),
                )
                .into());
            }
        }
        Ok(TempBlob {
            early_writeback: early_writeback(&file),
            file,
            path,
            store_root: store.root().to_owned(),
            hashers: Hashers::for_entry(entry),
            len: 0,
            written_back: 0,
            armed: true,
        })
    }

    /// Resume (docs/design.md#publish step 3): takes over the partial at `partial` if its writer is gone, and
    /// returns it as this process's temp blob with every byte already in it re-hashed.
    ///
    /// `Ok(None)` means "not resumable, start afresh": the store runs without locks (a live
    /// writer cannot be told from a dead one), the file is not a regular 0600 file owned by this
    /// user with exactly one link, its flock is held (its writer is alive), another claimant won
    /// the race, or it is already longer than `entry`'s size (then it is deleted: its bytes cannot
    /// be right).
    ///
    /// **Atomicity**: the claim is flock-then-`rename_exclusive` to a fresh name of our own, so of
    /// many claimants exactly one ends up with the file; the others find the flock held or the
    /// path gone. The claimed file keeps our flock until it is published, kept or dropped.
    ///
    /// # Security
    /// A `.part` may be a second hard link to a *published* blob: the link+unlink fallback of
    /// `fsx::persist_noclobber` leaves exactly that when killed between its two calls. Root can
    /// open such a 0444 file for writing, and resuming into it would rewrite a published blob
    /// (I2). So the claimed file must have exactly one link (`nlink == 1`: no name in `blobs/`),
    /// and mode 0600 (being written) or 0444 (checked and made read-only by `prepare`, then
    /// killed before it was named: complete bytes worth keeping), read with `fstat` after the
    /// flock is ours, when no live writer can change them. The file is claimed through a
    /// read-only descriptor (which holds the flock), renamed to our own name, checked to be the
    /// same inode, made 0600 again, and only then opened for writing — and that descriptor must
    /// name the same inode too, takes the flock over (the read-only one is closed) and must
    /// find the file with a single name.
    pub fn take_over(
        store: &Store,
        partial: &Rooted,
        stem: &str,
        entry: &Expect,
    ) -> Result<Option<Self>, StoreError> {
        if store.config().locking != Locking::Flock {
            return Ok(None);
        }
        // Any failure to open (gone, another user's 0600 file, a symlink) means "not ours to take".
        let Ok(claim) = fsx::open_read(partial) else {
            return Ok(None);
        };
        // Free now, or its writer of this host is dead and the release is still in flight.
        let locked = crate::sys::lock::try_exclusive(&claim, partial)?
            || (writer_gone_from_this_host(partial) && lock_within(&claim, partial, RELEASE_WAIT)?);
        if !locked {
            return Ok(None); // its writer is alive (or another claimant got here first)
        }
        if writer_may_be_alive(partial) {
            return Ok(None);
        }
        let meta = Meta::of(&claim).at("inspect", partial)?;
        if !resumable(&meta) {
            return Ok(None);
        }
        let own = fsx::unique_path(&store.layout().tmp(), &own_stem(stem), "part");
        match fsx::rename_exclusive(partial, &own) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::writing(store.root(), e)),
        }
        // The file we locked must be the one now at our name (nothing swapped it in between).
        // Compared with the locked descriptor's attributes *now*: where a rename is a link +
        // unlink (no RENAME_NOREPLACE) it changed the inode's ctime, and where inode numbers
        // are per path (sshfs) the new name has another one.
        let is_claimed = |now: &Meta| Meta::of(&claim).is_ok_and(|c| now.looks_same(&c));
        if !fsx::stat(&own).is_ok_and(|now| now.is_some_and(|now| is_claimed(&now))) {
            return Ok(None);
        }
        if meta.mode() & 0o7777 != TEMP_MODE {
            fsx::set_mode(&claim, TEMP_MODE, &own)?;
        }
        let Ok(file) = fsx::open_read_write(&own) else {
            return Ok(None);
        };
        if !Meta::of(&file).is_ok_and(|now| is_claimed(&now)) {
            return Ok(None);
        }
        // From here the descriptor of our own name holds the flock that marks us alive, and
        // the one of the old name goes: where unlinking an open file only hides it (libfuse's
        // `.fuse_hidden*`: bindfs, sshfs) the file has two names until it is closed. A process
        // of this host that locks it in between finds our live pid in its name and lets go
        // (one of another host waits for 60 s without a write, as before); if it holds the
        // lock at the instant we take it, we leave the file: a download again.
        drop(claim);
        if !crate::sys::lock::try_exclusive(&file, &own)? {
            return Ok(None);
        }
        if !one_name(&file) {
            return Ok(None);
        }
        let mut temp = TempBlob {
            early_writeback: early_writeback(&file),
            file,
            path: own,
            store_root: store.root().to_owned(),
            hashers: Hashers::for_entry(entry),
            len: 0,
            written_back: 0,
            armed: true,
        };
        // Re-hash what is there: never trust bytes we did not hash ourselves (I1). Read at most
        // one byte past the entry's size: a longer partial cannot be the blob.
        temp.file.seek(SeekFrom::Start(0)).at("seek", &temp.path)?;
        let cap = entry.size().map_or(u64::MAX, |s| s.saturating_add(1));
        let mut sink = HashOnly {
            hashers: &mut temp.hashers,
            len: &mut temp.len,
        };
        io::copy(&mut (&temp.file).take(cap), &mut sink).at("read", &temp.path)?;
        if entry.size().is_some_and(|size| temp.len > size) {
            return Ok(None); // dropping `temp` deletes it: too long to be the blob
        }
        // Continue exactly after the bytes we hashed (not at the end of whatever the file is now).
        temp.file
            .seek(SeekFrom::Start(temp.len))
            .at("seek", &temp.path)?;
        Ok(Some(temp))
    }

    /// Empties the file and the hashes: the source could not continue where we stopped (a `200`
    /// answer to a `Range` request), so the download starts over.
    pub fn restart(&mut self) -> Result<(), StoreError> {
        fsx::truncate(&self.file, 0, &self.path)?;
        self.file.seek(SeekFrom::Start(0)).at("seek", &self.path)?;
        self.hashers.reset();
        self.len = 0;
        self.written_back = 0;
        Ok(())
    }

    /// Makes this (empty) temp file a clone of `src` where the filesystem can (`FICLONE`: btrfs,
    /// xfs), then hashes the *clone*, read back from this file, so what is published is what was
    /// hashed whatever happens to `src` meanwhile (the clone shares extents with it, copied on
    /// write). `Ok(false)`: no clone was made (another filesystem, none that clones, a non-empty
    /// temp file) and the caller copies.
    pub fn clone_from(
        &mut self,
        src: &File,
        progress: &mut dyn crate::sys::progress::Progress,
    ) -> Result<bool, StoreError> {
        if self.len != 0 || fsx::clone_file(&self.file, src).is_err() {
            return Ok(false);
        }
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        loop {
            let n = match crate::sys::fsx::read_at(&self.file, &mut buf, at) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(IoError::new("read", &self.path, e).into()),
            };
            if n == 0 {
                break;
            }
            self.hashers.update(&buf[..n]);
            at += n as u64;
            progress.advance(n as u64);
        }
        self.len = at;
        // Nothing of ours to write back: the extents are the source's.
        self.written_back = at;
        self.file.seek(SeekFrom::End(0)).at("seek", &self.path)?;
        Ok(true)
    }

    /// Appends all of `buf`, hashing it in the same pass; a failed write names the file and says
    /// whether the disk is full or the store not writable.
    pub fn append(&mut self, buf: &[u8]) -> Result<(), StoreError> {
        self.write_all(buf)
            .at("write", &self.path)
            .map_err(|e| StoreError::writing(&self.store_root, e))
    }

    /// Bytes written (and hashed) so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Rooted {
        &self.path
    }

    /// The BLAKE3 of everything written so far.
    pub fn blake3(&self) -> Blake3 {
        self.hashers.blake3()
    }

    /// The size of the file on disk (`fstat`), which equals [`TempBlob::len`] unless something
    /// other than this `TempBlob` wrote to it.
    pub(super) fn size_on_disk(&self) -> Result<u64, IoError> {
        Ok(Meta::of(&self.file).at("inspect", &self.path)?.len())
    }

    /// Leaves the file in `tmp/` (a resumable partial) and returns its path.
    pub fn keep(mut self) -> Rooted {
        self.armed = false;
        self.path.clone()
    }
}

/// The stem of this process's temp files: `<stem>@<host>`, so that the name says on which
/// machine its writer ran (`<stem>@<host>.<pid>.<nonce>.part`, see [`writer_may_be_alive`]).
fn own_stem(stem: &str) -> String {
    format!("{stem}@{}", crate::sys::who::host_token())
}

/// Whether the writer a partial's name names may still be writing it, although its flock was
/// free to us. A flock excludes only processes whose locks meet: on a filesystem that keeps
/// flocks per mount (two mounts of one export, a FUSE filesystem) or per machine, a live writer
/// elsewhere holds its flock in vain. So a partial of this machine whose writer's pid still
/// exists is never taken over (at worst its bytes are downloaded again); one whose name says
/// nothing of its writer (before names carried the host) goes by the flock alone, as before;
/// one of another machine is taken over only when its flock is free and it has been silent for
/// [`SILENCE`] (a live writer writes, or gives up within the stall timeout).
fn writer_may_be_alive(partial: &Rooted) -> bool {
    let Some((host, pid)) = writer_of(partial) else {
        return false;
    };
    if host == crate::sys::who::host_token() {
        return pid.parse().is_ok_and(|pid: u32| {
            pid != std::process::id() && crate::sys::who::process_exists(pid)
        });
    }
    let now = crate::sys::who::now_secs();
    !fsx::stat(partial).is_ok_and(|m| {
        m.is_some_and(|m| {
            now.saturating_sub(u64::try_from(m.mtime()).unwrap_or(0)) >= SILENCE.as_secs()
        })
    })
}

/// The host token and pid a partial's name (`<stem>@<host>.<pid>.<nonce>.part`) gives its
/// writer; `None` for a name that says nothing of its writer.
fn writer_of(partial: &Rooted) -> Option<(&str, &str)> {
    let name = partial.file_name().and_then(|n| n.to_str())?;
    let mut parts = name.rsplitn(4, '.');
    let (Some(_ext), Some(_nonce), Some(pid), Some(stem)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let (_, host) = stem.rsplit_once('@')?;
    Some((host, pid))
}

/// Whether a partial's name says its writer was a process of this host that no longer exists.
fn writer_gone_from_this_host(partial: &Rooted) -> bool {
    writer_of(partial).is_some_and(|(host, pid)| {
        host == crate::sys::who::host_token()
            && pid
                .parse()
                .is_ok_and(|pid: u32| !crate::sys::who::process_exists(pid))
    })
}

/// How long a dead writer's flock may still be held: on FUSE filesystems the kernel sends the
/// release of a killed process's descriptor to the filesystem asynchronously, so its flock
/// outlives it for a moment (R8 saw it on the kit's test filesystem).
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Try-locks `file` exclusively until `limit` has passed: `true` once it is ours.
fn lock_within(file: &File, path: &Rooted, limit: std::time::Duration) -> Result<bool, StoreError> {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
        if crate::sys::lock::try_exclusive(file, path)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// How long a partial of another machine must have been left unwritten before it is taken
/// over: twice the default stall timeout.
const SILENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a claimed partial may be resumed: a regular file of ours with one link, mode 0600
/// (being written) or 0444 (prepared, never named); see `take_over`'s **Security** note.
fn resumable(meta: &Meta) -> bool {
    meta.is_file()
        && meta.uid() == crate::sys::who::euid()
        && meta.nlink() == 1
        && matches!(meta.mode(), TEMP_MODE | BLOB_MODE)
}

impl Write for TempBlob {
    /// Writes to the file and hashes exactly the bytes the file accepted.
    ///
    /// Every [`WRITEBACK_STEP`] bytes it asks the kernel to start writing them to disk, so that
    /// the fsync at publish finds the file mostly written: a pull or add of a large model then
    /// overlaps the disk with the network or the source (issue 14, P1/P3).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hashers.update(&buf[..n]);
        self.len += n as u64;
        self.written_back = self.written_back.min(self.len);
        if self.early_writeback && self.len - self.written_back >= WRITEBACK_STEP {
            // Only a hint: an error here is the final fsync's to report.
            let _ =
                fsx::start_writeback(&self.file, self.written_back, self.len - self.written_back);
            self.written_back = self.len;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Whether `file` has a single name, so nobody else can reach the partial just claimed. Where
/// the filesystem reports a cached link count (bindfs: after the link + unlink of a rename
/// without RENAME_NOREPLACE the new name says 2 for up to its attribute timeout, about a
/// second), asks again for up to 3 s.
fn one_name(file: &File) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match Meta::of(file) {
            Ok(m) if m.nlink() == 1 => return true,
            Ok(_) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            _ => return false,
        }
    }
}

/// Whether a [`TempBlob`] in `file` starts writeback as it writes: yes, but not on btrfs (see
/// `early_writeback` in it), nor with `BEAKER_NO_EARLY_WRITEBACK` set (benchmarks compare).
fn early_writeback(file: &File) -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !*OFF.get_or_init(|| std::env::var_os("BEAKER_NO_EARLY_WRITEBACK").is_some())
        && !fsx::is_btrfs(file)
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if self.armed {
            let _ = fsx::remove_file_if_exists(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests plant partials, hard links and modes with raw std::fs on purpose.
    #![allow(clippy::disallowed_methods)]
    use super::super::tests::store;
    use super::*;

    #[test]
    fn take_over_claims_a_dead_partial_once_and_rehashes_it() {
        let (_d, s) = store();
        let mut t = TempBlob::create(&s, "k").unwrap();
        t.append(b"hello ").unwrap();
        let live = t.path().to_owned();
        // Its writer is alive (holds the flock): not claimable.
        assert!(TempBlob::take_over(&s, &live, "k", &Expect::default())
            .unwrap()
            .is_none());
        let dead = t.keep(); // the descriptor (and its flock) is gone, the file stays
        let mut claimed = TempBlob::take_over(&s, &dead, "k", &Expect::default())
            .unwrap()
            .expect("a dead partial is claimable");
        assert_ne!(claimed.path(), &dead, "renamed to our own name");
        assert!(!dead.path().exists());
        assert_eq!(claimed.len(), 6);
        // A second claimant finds nothing at the old path; the claimed one is held.
        assert!(TempBlob::take_over(&s, &dead, "k", &Expect::default())
            .unwrap()
            .is_none());
        let path = claimed.path().to_owned();
        assert!(TempBlob::take_over(&s, &path, "k", &Expect::default())
            .unwrap()
            .is_none());
        claimed.append(b"world").unwrap();
        assert_eq!(claimed.blake3(), Blake3::of(b"hello world"));
    }

    #[test]
    fn take_over_deletes_a_partial_longer_than_the_entry() {
        let (_d, s) = store();
        let mut t = TempBlob::create(&s, "k").unwrap();
        t.append(&[0u8; 10]).unwrap();
        let dead = t.keep();
        let entry = Expect {
            blob: crate::model::entry::Expected::Unpinned { size: Some(4) },
            ..Expect::default()
        };
        assert!(TempBlob::take_over(&s, &dead, "k", &entry)
            .unwrap()
            .is_none());
        assert_eq!(
            std::fs::read_dir(s.layout().tmp().path()).unwrap().count(),
            0
        );
    }

    /// The state a SIGKILL between `link` and `unlink` of the no-clobber fallback leaves: a
    /// `.part` that is a second name of a published blob. It must never be resumed into.
    #[cfg(unix)]
    #[test]
    fn take_over_refuses_a_partial_hard_linked_to_a_published_blob() {
        let (_d, s) = store();
        let blob = s.layout().blobs().join("published");
        std::fs::write(blob.path(), b"published bytes").unwrap();
        let partial = s.layout().tmp().join("k.1.00000000.part");
        std::fs::hard_link(blob.path(), partial.path()).unwrap();
        for mode in [TEMP_MODE, 0o444] {
            std::fs::set_permissions(
                blob.path(),
                std::os::unix::fs::PermissionsExt::from_mode(mode),
            )
            .unwrap();
            assert!(
                TempBlob::take_over(&s, &partial, "k", &Expect::default())
                    .unwrap()
                    .is_none(),
                "nlink 2, mode {mode:o}: not resumable"
            );
        }
        assert!(partial.path().exists(), "left for gc, not renamed");
        assert_eq!(std::fs::read(blob.path()).unwrap(), b"published bytes");
    }

    #[cfg(unix)]
    #[test]
    fn take_over_resumes_a_prepared_partial_and_refuses_other_modes() {
        let (_d, s) = store();
        let mut t = TempBlob::create(&s, "k").unwrap();
        t.append(b"complete").unwrap();
        let dead = t.keep();
        let chmod = |mode| {
            std::fs::set_permissions(
                dead.path(),
                std::os::unix::fs::PermissionsExt::from_mode(mode),
            )
            .unwrap()
        };
        chmod(0o644);
        assert!(TempBlob::take_over(&s, &dead, "k", &Expect::default())
            .unwrap()
            .is_none());
        // 0444 with one link: checked by `prepare`, killed before it was named.
        chmod(0o444);
        let mut claimed = TempBlob::take_over(&s, &dead, "k", &Expect::default())
            .unwrap()
            .expect("a prepared, never named partial is resumed");
        assert_eq!(claimed.len(), 8);
        let mode = Meta::of(&std::fs::File::open(claimed.path().path()).unwrap())
            .unwrap()
            .mode();
        assert_eq!(mode, TEMP_MODE, "writable by its writer again");
        claimed.append(b"!").unwrap();
        assert_eq!(std::fs::read(claimed.path().path()).unwrap(), b"complete!");
        // Claimed: a second claimant finds its flock held.
        let path = claimed.path().to_owned();
        assert!(TempBlob::take_over(&s, &path, "k", &Expect::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn take_over_continues_after_the_hashed_bytes() {
        let (_d, s) = store();
        let mut t = TempBlob::create(&s, "k").unwrap();
        t.append(b"abc").unwrap();
        let dead = t.keep();
        let mut claimed = TempBlob::take_over(&s, &dead, "k", &Expect::default())
            .unwrap()
            .unwrap();
        claimed.append(b"def").unwrap();
        assert_eq!(std::fs::read(claimed.path().path()).unwrap(), b"abcdef");
        assert_eq!(claimed.size_on_disk().unwrap(), claimed.len());
    }

    #[test]
    fn io_copy_into_a_temp_blob_hashes_every_byte() {
        let (_d, s) = store();
        let mut t = TempBlob::create(&s, "k").unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        io::copy(&mut data.as_slice(), &mut t).unwrap();
        assert_eq!(t.len(), data.len() as u64);
        assert_eq!(t.blake3(), Blake3::of(&data));
    }

    #[test]
    fn a_temp_blob_larger_than_the_writeback_step_holds_and_hashes_every_byte() {
        // Writes that cross WRITEBACK_STEP start the file's writeback; the bytes, their hash and
        // a restart must be as without it.
        let (_d, s) = store();
        let mut t = TempBlob::create(&s, "k").unwrap();
        let data: Vec<u8> = (0..(2 * WRITEBACK_STEP + 12_345) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for piece in data.chunks(999_983) {
            t.append(piece).unwrap();
        }
        // Started once, at the first piece that made 8 MiB: the ninth (the next would be at 16 MiB
        // past it, beyond the end).
        assert_eq!(t.written_back, 9 * 999_983);
        assert_eq!(t.blake3(), Blake3::of(&data));
        assert_eq!(std::fs::read(t.path().path()).unwrap(), data);
        t.restart().unwrap();
        assert_eq!(t.written_back, 0);
        t.append(b"after").unwrap();
        assert_eq!(std::fs::read(t.path().path()).unwrap(), b"after");
    }
}
