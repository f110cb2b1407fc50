//! `beaker store add FILE --name NAME`: copy a local file into the store, hashing in the same pass.
//!
//! The source is read exactly once: bytes go into a [`TempBlob`] (which hashes them) and are then
//! published. If identical content is already in the store, the publish finds the existing blob
//! and only the name is recorded (dedup).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use crate::error::IoError;
use crate::manifest::{Entry, Format};
use crate::name::ModelName;
use crate::progress::Progress;
use crate::publish::{publish, Published, TempBlob};
use crate::store::{Store, StoreError};

/// Read size for copying: large enough for throughput, small enough to be constant memory.
const CHUNK: usize = 1 << 20;

/// Copies `src` into `store` and records it as `name`.
pub fn add_file(
    store: &Store,
    src: &Path,
    name: &ModelName,
    progress: &mut dyn Progress,
) -> Result<Published, StoreError> {
    add_file_checked(store, src, name, false, progress)
}

/// [`add_file`], and with `check` an ONNX model (a `.onnx` file) is first loaded in ONNX
/// Runtime from the temp file; one that does not load is not published (`add --check`).
pub fn add_file_checked(
    store: &Store,
    src: &Path,
    name: &ModelName,
    check: bool,
    progress: &mut dyn Progress,
) -> Result<Published, StoreError> {
    let mut input = open_source(src)?;
    let total = input.metadata().map(|m| m.len()).ok();
    let mut temp = TempBlob::create(store, "add")?;
    let mut buf = vec![0u8; CHUNK];
    progress.start(&format!("adding {name}"), total);
    let copied = (|| loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::Io(IoError::new("read", src, e))),
        };
        temp.append(&buf[..n])?;
        progress.advance(n as u64);
    })();
    progress.finish();
    copied?;
    let is_onnx = src
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let entry = Entry {
        format: is_onnx.then_some(Format::Onnx),
        ..Entry::default()
    };
    let what = src.display().to_string();
    crate::onnx::check_before_publish(temp.path(), &entry, check, &what, progress)?;
    publish(store, temp, Some(name), entry)
}

/// Opens the file to add, turning the usual mistakes into one clear line each.
fn open_source(src: &Path) -> Result<File, StoreError> {
    let bad = |reason: String| StoreError::BadSource {
        path: src.to_owned(),
        reason,
    };
    let meta = match std::fs::metadata(src) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(bad("no such file; check the path".into()))
        }
        Err(e) => return Err(bad(format!("cannot inspect it ({e})"))),
    };
    if meta.is_dir() {
        return Err(bad(
            "it is a directory; give the path of a model file".into()
        ));
    }
    if !meta.is_file() {
        return Err(bad("it is not a regular file".into()));
    }
    File::open(src).map_err(|e| match e.kind() {
        ErrorKind::PermissionDenied => bad(format!(
            "permission denied for user {}; check its permissions (ls -l)",
            crate::who::user()
        )),
        _ => bad(format!("cannot open it ({e})")),
    })
}
