//! `beaker store add FILE --name NAME`: copy a local file into the store, hashing in the same pass.
//!
//! The source is read exactly once: bytes are copied (`io::copy`) into a [`TempBlob`], which
//! hashes them as they are written, and are then published. If identical content is already in
//! the store, the publish finds the existing blob and only the name is recorded (dedup).
//!
//! The source is opened `O_NONBLOCK`, and whatever is at the path when it is *opened* is checked
//! with `fstat`, so a FIFO or device swapped in after a `stat` can neither
//! hang the copy nor feed it endless bytes.

use std::fs::File;
use std::io::{self, BufReader, ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Category, IoError};
use crate::manifest::{Entry, Format};
use crate::name::ModelName;
use crate::progress::Progress;
use crate::publish::{self, publish, Published, TempBlob};
use crate::store::{Store, StoreError};

/// Why an add did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot add {}: {reason}", path.display())]
    BadSource { path: PathBuf, reason: String },
    #[error("cannot add {}: reading it failed", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Publish(#[from] publish::Error),
}

impl Error {
    pub fn category(&self) -> Category {
        match self {
            Error::BadSource { .. } => Category::BadInput,
            Error::Read { .. } => Category::Failed,
            Error::Publish(e) => e.category(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::Publish(e.into())
    }
}

/// Copy buffer: large enough for throughput, small enough to be constant memory.
const CHUNK: usize = 1 << 20;

/// Copies `src` into `store` and records it as `name`.
pub fn add_file(
    store: &Store,
    src: &Path,
    name: &ModelName,
    progress: &mut dyn Progress,
) -> Result<Published, Error> {
    let (input, total) = open_source(src)?;
    let mut temp = TempBlob::create(store, "add")?;
    progress.start(&format!("adding {name}"), Some(total));
    let mut reader = BufReader::with_capacity(
        CHUNK,
        Reading {
            inner: input,
            progress,
            failed: false,
        },
    );
    // io::copy from a BufReader writes each filled CHUNK straight into the temp blob (large
    // writes, which the hashers like).
    let copied = io::copy(&mut reader, &mut temp);
    let reader = reader.into_inner();
    reader.progress.finish();
    if let Err(e) = copied {
        return Err(if reader.failed {
            Error::Read {
                path: src.to_owned(),
                source: e,
            }
        } else {
            let at = IoError::new("write", temp.path(), e);
            StoreError::writing(store.root(), at).into()
        });
    }
    let is_onnx = src
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let entry = Entry {
        format: is_onnx.then_some(Format::Onnx),
        ..Entry::default()
    };
    Ok(publish(store, temp, name, entry).map_err(publish::Error::from)?)
}

/// The source being copied: reports progress, and remembers whether a failure was the read's
/// (the source's fault) rather than the write's (the store's).
struct Reading<'p> {
    inner: File,
    progress: &'p mut dyn Progress,
    failed: bool,
}

impl Read for Reading<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.progress.advance(n as u64);
                Ok(n)
            }
            Err(e) => {
                self.failed = e.kind() != ErrorKind::Interrupted;
                Err(e)
            }
        }
    }
}

/// Opens the file to add and returns it with its size, turning the usual mistakes into one clear
/// line each. The checks are made on the opened file (`fstat`), never on the path alone.
fn open_source(src: &Path) -> Result<(File, u64), Error> {
    let bad = |reason: String| Error::BadSource {
        path: src.to_owned(),
        reason,
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(src)
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => bad("no such file; check the path".into()),
            ErrorKind::PermissionDenied => bad(format!(
                "permission denied for user {}; check its permissions (ls -l)",
                crate::who::user()
            )),
            _ if e.raw_os_error() == Some(libc::EISDIR) => {
                bad("it is a directory; give the path of a model file".into())
            }
            _ => bad(format!("cannot open it ({e})")),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| bad(format!("cannot inspect it ({e})")))?;
    if meta.is_dir() {
        return Err(bad(
            "it is a directory; give the path of a model file".into()
        ));
    }
    if !meta.is_file() {
        return Err(bad(
            "it is not a regular file (a FIFO, device or socket); copy the model to a file first"
                .into(),
        ));
    }
    clear_nonblock(&file).map_err(|e| bad(format!("cannot read it ({e})")))?;
    Ok((file, meta.len()))
}

/// Back to blocking reads once the file is known to be a regular file (where O_NONBLOCK has no
/// effect anyway; this keeps reads plain on filesystems that might honour it).
fn clear_nonblock(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
