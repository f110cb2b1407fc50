//! One attempt at a `file://` or manifest-relative source (a mirror on a shared filesystem).
//!
//! The source is only read. Resuming is a seek to the bytes already in the temp blob; a source
//! shorter than that (it changed under us) starts the temp blob over. Correctness of the result
//! is still decided by hashing in `publish` (I1).

use std::io::{ErrorKind, Seek, SeekFrom};
use std::path::Path;

use super::{stream, FetchError};
use crate::store::publish::TempBlob;
use crate::sys::error::IoError;
use crate::sys::progress::Progress;

pub(super) fn attempt(
    path: &Path,
    temp: &mut TempBlob,
    limit: Option<u64>,
    progress: &mut dyn Progress,
) -> Result<(), FetchError> {
    // Regular files only, opened without blocking: a FIFO would otherwise hang this pull while it
    // holds the model's download lock, and a device like /dev/zero would never end.
    let mut file = crate::sys::fsx::user::open(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => FetchError::NoSuchFile {
            path: path.to_owned(),
        },
        ErrorKind::InvalidInput => FetchError::NotAFile(e),
        _ => FetchError::Read(e),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| FetchError::Read(IoError::new("inspect", path, e)))?;
    if let Some(limit) = limit.filter(|&l| meta.len() > l) {
        return Err(FetchError::TooLarge { limit });
    }
    if meta.len() < temp.len() {
        temp.restart()?;
        progress.restarted(0);
    }
    let start = temp.len();
    file.seek(SeekFrom::Start(start))
        .map_err(|e| FetchError::Read(IoError::new("seek", path, e)))?;
    stream(&mut file, temp, limit, progress, &|e| {
        FetchError::Read(IoError::new("read", path, e))
    })
}
