//! The Unix mapping and its SIGBUS handler (the module doc of `mapped` says how it works).
#![allow(
    unsafe_code,
    reason = "mmap/munmap/madvise, sigaction and a SIGBUS handler have no std wrapper"
)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

use super::{Changed, Mapping, MIN_MAP_LEN};
use crate::sys::error::IoError;

/// Most mappings alive at once in the process (verify keeps at most 8).
const SLOTS: usize = 32;

/// One registered mapping. `seq` is odd while the slot describes a live mapping; `start` and
/// `len` are only written while it is even, so a reader that sees the same odd `seq` before and
/// after reading them has read one consistent mapping.
struct Slot {
    claimed: AtomicBool,
    seq: AtomicUsize,
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(
    clippy::declare_interior_mutable_const,
    reason = "used only to initialise the SLOTS array, each element its own atomics"
)]
const FREE: Slot = Slot {
    claimed: AtomicBool::new(false),
    seq: AtomicUsize::new(0),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};

static REGISTRY: [Slot; SLOTS] = [FREE; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
/// The SIGBUS action in place before ours, put back for a SIGBUS that is not ours.
static PREVIOUS: OnceLock<SigAction> = OnceLock::new();
/// Whether our handler is installed (installation can fail; then nothing is mapped).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// `libc::sigaction` holds plain integers and function addresses; it is shared read-only.
struct SigAction(libc::sigaction);
// SAFETY: the wrapped struct is written once (before the handler is installed) and only read after.
unsafe impl Sync for SigAction {}
// SAFETY: as above; it owns no pointers to memory.
unsafe impl Send for SigAction {}

/// A file's bytes mapped read-only (`PROT_READ`, `MAP_PRIVATE`) and registered with the SIGBUS
/// handler. Drop unregisters, then unmaps.
#[must_use = "finish() says whether the bytes read were the file's"]
pub struct MappedFile {
    file: File,
    path: PathBuf,
    ptr: *mut libc::c_void,
    len: usize,
    slot: usize,
}

/// Maps `file` (opened by an fsx opener, so `O_NOFOLLOW|O_CLOEXEC`: no symlink was followed)
/// read-only. `fstat` judges it: it must be a regular file. Files under [`MIN_MAP_LEN`] (and
/// so every empty file) are handed back unmapped, as they are when the registry is full or the
/// SIGBUS handler could not be installed. `path` is for messages only.
pub fn map_read(file: File, path: &Path) -> Result<Mapping, IoError> {
    let meta = super::regular_file(&file, path)?;
    let Ok(len) = usize::try_from(meta.len()) else {
        return Ok(Mapping::Unmapped(file));
    };
    if meta.len() < MIN_MAP_LEN || !install() {
        return Ok(Mapping::Unmapped(file));
    }
    let Some(slot) = claim() else {
        return Ok(Mapping::Unmapped(file));
    };
    // SAFETY: a fresh read-only private mapping chosen by the kernel (no MAP_FIXED), of an open
    // descriptor, touching no existing memory.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        REGISTRY[slot].claimed.store(false, Ordering::Release);
        return Err(IoError::new("map", path, e));
    }
    publish(slot, ptr as usize, len);
    Ok(Mapping::Mapped(MappedFile {
        file,
        path: path.to_owned(),
        ptr,
        len,
        slot,
    }))
}

impl MappedFile {
    /// The mapped length (the file's size when mapped).
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// Whether nothing is mapped (never: empty files are not mapped).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `each` on consecutive slices of at most `chunk` bytes, in order, and drops each
    /// slice's pages from this process's page tables afterwards (`MADV_DONTNEED`: they stay in
    /// the page cache), so hashing a large file does not grow the resident set by its size.
    /// A slice may read zeros where the file was truncated meanwhile: [`Self::finish`] says so.
    pub fn for_each_chunk(&self, chunk: usize, mut each: impl FnMut(&[u8])) {
        let chunk = chunk.max(1);
        let mut at = 0;
        while at < self.len {
            let n = chunk.min(self.len - at);
            // SAFETY: `at + n <= len` lies inside the live mapping, which outlives the slice (it
            // is only unmapped in drop). Reading it cannot kill the process: a SIGBUS there is
            // answered with zero pages by the handler. Another process may change the bytes
            // while they are read (as with read(2)); `finish` reports a change of size.
            let slice = unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>().add(at), n) };
            each(slice);
            // SAFETY: the range lies inside our private read-only mapping and no slice into it
            // is alive any more; DONTNEED only drops our page-table entries (re-reading would
            // fault the file's pages back in, or zeros where the handler replaced them).
            unsafe {
                libc::madvise(self.ptr.cast::<u8>().add(at).cast(), n, libc::MADV_DONTNEED);
            }
            at += n;
        }
    }

    /// Ends the read: an error when a read through the mapping faulted or the file's size is no
    /// longer the size mapped, i.e. what was read is not the file as it was mapped.
    pub fn finish(self) -> Result<(), Changed> {
        let faulted = REGISTRY[self.slot].faulted.load(Ordering::Acquire);
        let now = self.file.metadata().ok().map(|m| m.len());
        if faulted || now != Some(self.len as u64) {
            return Err(Changed {
                path: self.path.clone(),
                mapped: self.len as u64,
                now,
                faulted,
            });
        }
        Ok(())
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        unpublish(self.slot);
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map_read` (the handler may have
        // replaced part of it with anonymous pages; munmap removes whatever is in the range),
        // and no slice into it outlives `for_each_chunk`.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// Installs the SIGBUS handler once per process; false when that failed.
fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let Ok(page) = usize::try_from(page) else {
            return;
        };
        if page == 0 || !page.is_power_of_two() {
            return;
        }
        PAGE.store(page, Ordering::Relaxed);
        // SAFETY: zeroed sigaction structs are valid "empty" values; querying (null new action)
        // and then installing a handler with the signature SA_SIGINFO requires are the documented
        // uses of sigaction(2). The previous action is stored before ours can run.
        unsafe {
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) != 0 {
                return;
            }
            if PREVIOUS.set(SigAction(previous)).is_err() {
                return;
            }
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = on_sigbus as *const () as usize;
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
            libc::sigemptyset(&mut ours.sa_mask);
            if libc::sigaction(libc::SIGBUS, &ours, std::ptr::null_mut()) != 0 {
                return;
            }
        }
        INSTALLED.store(true, Ordering::Release);
    });
    INSTALLED.load(Ordering::Acquire)
}

/// Takes a free slot, or none when all are in use.
fn claim() -> Option<usize> {
    REGISTRY.iter().position(|s| {
        s.claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

/// Fills a claimed slot and makes it visible to the handler (`seq` becomes odd).
fn publish(slot: usize, start: usize, len: usize) {
    let s = &REGISTRY[slot];
    s.start.store(start, Ordering::Relaxed);
    s.len.store(len, Ordering::Relaxed);
    s.faulted.store(false, Ordering::Relaxed);
    s.seq.fetch_add(1, Ordering::Release);
}

/// Hides a slot from the handler (`seq` becomes even), then frees it.
fn unpublish(slot: usize) {
    let s = &REGISTRY[slot];
    s.seq.fetch_add(1, Ordering::AcqRel);
    s.claimed.store(false, Ordering::Release);
}

/// The registered mapping `addr` lies in: its slot, start and length.
fn find(addr: usize) -> Option<(usize, usize, usize)> {
    for (i, s) in REGISTRY.iter().enumerate() {
        let before = s.seq.load(Ordering::Acquire);
        if before % 2 == 0 {
            continue;
        }
        let start = s.start.load(Ordering::Relaxed);
        let len = s.len.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if s.seq.load(Ordering::Relaxed) != before {
            continue;
        }
        if addr >= start && addr - start < len {
            return Some((i, start, len));
        }
    }
    None
}

/// This thread's `errno` (`__errno_location` on Linux, `__error` on macOS).
///
/// # Safety
/// The pointer is valid for this thread only, for as long as the thread lives.
unsafe fn errno_location() -> *mut libc::c_int {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: libc's accessor of this thread's errno.
    return unsafe { libc::__errno_location() };
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    // SAFETY: as above, under its Apple name.
    return unsafe { libc::__error() };
}

/// The SIGBUS handler. Async-signal-safe: atomics, `mmap(2)`, `sigaction(2)`, `raise(3)`.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: errno is this thread's; reading and restoring it is what a handler must do.
    let errno = unsafe { *errno_location() };
    // SAFETY: the kernel passes a valid siginfo_t with SA_SIGINFO. si_code > 0 means the kernel
    // raised it for a fault (si_addr is then the faulting address), not kill(2)/sigqueue(3).
    let (from_fault, addr) = unsafe {
        if info.is_null() {
            (false, 0)
        } else {
            ((*info).si_code > 0, (*info).si_addr() as usize)
        }
    };
    if from_fault {
        if let Some((slot, start, len)) = find(addr) {
            let page = PAGE.load(Ordering::Relaxed);
            let from = addr & !(page - 1);
            let end = (start + len).div_ceil(page) * page;
            // SAFETY: [from, end) lies inside the registered mapping (rounded to whole pages, as
            // the kernel maps it), which its owner keeps alive while it reads it; replacing it
            // with zero pages changes only what those reads see.
            let zeros = unsafe {
                libc::mmap(
                    from as *mut libc::c_void,
                    end - from,
                    libc::PROT_READ,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if zeros != libc::MAP_FAILED {
                REGISTRY[slot].faulted.store(true, Ordering::Release);
                // SAFETY: as above.
                unsafe { *errno_location() = errno };
                return;
            }
        }
    }
    // Not ours: put back the previous action (default when unknown) and let the signal happen
    // again under it. A fault re-executes the instruction on return; a sent signal is re-raised
    // (it stays pending while this handler runs and is delivered on return).
    // SAFETY: sigaction with a fully initialised struct, and raise, are async-signal-safe.
    unsafe {
        match PREVIOUS.get() {
            Some(previous) => libc::sigaction(sig, &previous.0, std::ptr::null_mut()),
            None => {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &default, std::ptr::null_mut())
            }
        };
        if !from_fault {
            libc::raise(sig);
        }
        *errno_location() = errno;
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
