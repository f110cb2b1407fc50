//! Hashing for `verify`: several files at once on a small pool of scoped threads, rayon inside
//! large files. Every file is opened with `O_NOFOLLOW` and judged by `fstat`; files of 64 KiB
//! and more are hashed through a SIGBUS-safe read-only map of that descriptor
//! ([`fsx::mapped`]), smaller ones streamed through a buffer. A mapped blob that faulted or
//! changed size while it was hashed is reported as such, never judged by the zeros read in
//! its place. Nothing here writes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::model::digest::Blake3;
use crate::sys::error::{os_error_is, IoError, Os};
use crate::sys::fsx::mapped::{map_read, Changed, Mapping};
use crate::sys::fsx::{self, Meta, Rooted};
use crate::sys::progress::Progress;

/// Files at least this large are hashed with rayon inside the file.
const LARGE: u64 = 4 << 20;
/// Read size, and the slice of a mapped file hashed at once: big enough to feed rayon's tree
/// hashing, small enough to be constant memory (a mapped slice's pages leave the resident set
/// once hashed).
const CHUNK: usize = 16 << 20;
/// Read size for small files.
const SMALL_CHUNK: usize = 256 << 10;
/// Most files hashed at once.
const MAX_WORKERS: usize = 8;

/// What hashing one blob found.
pub(super) enum Checked {
    Good { mode: u32 },
    Bad { problem: String, dev: u64, ino: u64 },
    Vanished,
    Unreadable(IoError),
}

/// Hashes `work` on a small pool of scoped threads; progress flows back over a channel because
/// the reporter lives on this thread.
pub(super) fn hash_all(
    work: &[(Blake3, Rooted, u64)],
    expected: &BTreeMap<Blake3, u64>,
    progress: &mut dyn Progress,
) -> Vec<Checked> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, MAX_WORKERS)
        .min(work.len().max(1));
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<u64>();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let tx = tx.clone();
                let next = &next;
                s.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((id, path, _)) = work.get(i) else {
                            break;
                        };
                        let checked = check(id, path, expected.get(id).copied(), &mut |n| {
                            let _ = tx.send(n);
                        });
                        done.push((i, checked));
                    }
                    done
                })
            })
            .collect();
        drop(tx);
        for n in rx {
            progress.advance(n);
        }
        let mut all: Vec<Option<Checked>> = (0..work.len()).map(|_| None).collect();
        for (i, checked) in handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
        {
            all[i] = Some(checked);
        }
        // A worker that panicked leaves holes: those blobs count as unreadable, never as ok.
        all.into_iter()
            .zip(work)
            .map(|(c, (_, path, _))| {
                c.unwrap_or_else(|| {
                    Checked::Unreadable(IoError::new(
                        "hash",
                        path,
                        std::io::Error::other("the hashing thread failed"),
                    ))
                })
            })
            .collect()
    })
}

/// Hashes the blob at `path` (opened with O_NOFOLLOW, judged by fstat) and compares.
pub(super) fn check(
    id: &Blake3,
    path: &Rooted,
    expected: Option<u64>,
    advance: &mut dyn FnMut(u64),
) -> Checked {
    let file = match fsx::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Checked::Vanished,
        Err(e) if os_error_is(&e.source, Os::SymlinkInTheWay) => {
            return not_regular(path, "a symlink")
        }
        Err(e) => return Checked::Unreadable(e),
    };
    let meta = match Meta::of(&file) {
        Ok(m) => m,
        Err(e) => return Checked::Unreadable(IoError::new("inspect", path, e)),
    };
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return not_regular(path, what);
    }
    let actual = match hash(file, path, meta.len(), advance) {
        Ok(h) => h,
        Err(Failed::Io(e)) => return Checked::Unreadable(e),
        Err(Failed::Changed(c)) => return changed(c, expected, &meta),
    };
    if actual == *id {
        return Checked::Good { mode: meta.mode() };
    }
    let problem = match expected {
        Some(want) if meta.len() < want => {
            format!("truncated: {} bytes, expected {want}", meta.len())
        }
        Some(want) if meta.len() > want => {
            format!("{} bytes, expected {want}", meta.len())
        }
        _ => format!("content hashes to {}", actual.to_hex()),
    };
    Checked::Bad {
        problem,
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

/// Judges a mapped blob that changed while it was hashed: smaller than mapped is a truncated
/// blob (damage, quarantined like any truncated blob); larger is damage too; the same size but a
/// fault (an I/O error under the mapping) is unreadable, as a failed read(2) would be.
fn changed(c: Changed, expected: Option<u64>, meta: &Meta) -> Checked {
    let want = expected.unwrap_or(c.mapped);
    let problem = match c.now {
        Some(now) if now < c.mapped => {
            format!("truncated: {now} bytes, expected {want} (changed while being read)")
        }
        Some(now) if now > c.mapped => {
            format!("{now} bytes, expected {want} (changed while being read)")
        }
        _ => {
            let path = c.path.clone();
            return Checked::Unreadable(IoError::new("read", path, std::io::Error::other(c)));
        }
    };
    Checked::Bad {
        problem,
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

fn not_regular(path: &Rooted, what: &str) -> Checked {
    match fsx::stat(path) {
        Ok(Some(m)) => Checked::Bad {
            problem: format!("{what}, not a blob file"),
            dev: m.dev(),
            ino: m.ino(),
        },
        _ => Checked::Vanished,
    }
}

/// Why a blob could not be hashed.
enum Failed {
    Io(IoError),
    Changed(Changed),
}

/// Hashes `file`: through a map when it is large enough ([`fsx::mapped::MIN_MAP_LEN`]), else
/// streamed; rayon inside large files either way.
fn hash(
    file: File,
    path: &Rooted,
    len: u64,
    advance: &mut dyn FnMut(u64),
) -> Result<Blake3, Failed> {
    let view = match map_read(file, &path.path()).map_err(Failed::Io)? {
        Mapping::Mapped(view) => view,
        Mapping::Unmapped(file) => {
            return stream(file, len, advance)
                .map_err(|e| Failed::Io(IoError::new("read", path, e)));
        }
    };
    let large = view.len() >= LARGE;
    let mut hasher = blake3::Hasher::new();
    view.for_each_chunk(CHUNK, |slice| {
        if large {
            hasher.update_rayon(slice);
        } else {
            hasher.update(slice);
        }
        advance(slice.len() as u64);
    });
    view.finish().map_err(Failed::Changed)?;
    Ok(hasher.finalize().into())
}

/// Streams `file` through the hasher, using rayon inside large files.
fn stream(mut file: File, len: u64, advance: &mut dyn FnMut(u64)) -> std::io::Result<Blake3> {
    let large = len >= LARGE;
    let mut buf = vec![0u8; if large { CHUNK } else { SMALL_CHUNK }];
    let mut hasher = blake3::Hasher::new();
    loop {
        let n = fill(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        if large {
            hasher.update_rayon(&buf[..n]);
        } else {
            hasher.update(&buf[..n]);
        }
        advance(n as u64);
    }
    Ok(hasher.finalize().into())
}

/// Reads until `buf` is full or the file ends (rayon wants big slices, `read` may return less).
fn fill(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
