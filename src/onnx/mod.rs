//! ONNX models: what they take and give, and whether ONNX Runtime loads them (docs/design.md#onnx).
//!
//! - [`inspect`] reads a model's inputs, outputs, opsets, producer, IR version and metadata from
//!   the file itself ([`info`], over the small protobuf reader of `wire`): no runtime needed, so
//!   `beaker store show` works anywhere.
//! - [`check`] loads a model in an ONNX Runtime session; `pull --check`, `add --check` and
//!   catalogue entries with `check = true` run it on the temp file *before* publish, so a model
//!   that does not load is never published ([`check_before_publish`]); a model of several files
//!   has each of its ONNX files ([`onnx_files`]) loaded from a directory holding all its files
//!   under their names, before any of them is published ([`check_dir_before_publish`]).
//! - [`deep::verify_deep`] is the `verify --deep` pass; [`session`] gives an application a
//!   session for a catalogue name, pulling it first.
//! - [`runtime`] finds ONNX Runtime (`--ort-lib`, `ORT_DYLIB_PATH`, python3's onnxruntime, the
//!   checkout's `.ort/`) and loads it once per process.
//!
//! Built with the cargo feature `onnx` (default). Without it, everything that needs the runtime
//! fails with a [`runtime::RuntimeError`] saying so; [`inspect`] still works.

pub mod check;
pub mod info;
pub mod runtime;
mod wire;

use std::path::Path;

pub use check::{check, check_as, is_onnx, looks_onnx, onnx_files, CheckError};
pub use info::{inspect, inspect_file, InspectError, ModelInfo};
/// The `ort` crate beaker is built with (`=2.0.0-rc.15`), for running the sessions [`session`]
/// returns without pinning a second copy: `use beaker::onnx::ort;`.
#[cfg(feature = "onnx")]
pub use ort;

use crate::model::entry::Model;
use crate::sys::progress::Progress;

/// The ONNX Runtime `--check` and `verify --deep` use, loading it now (once per process): where
/// it was found and its path, or why there is none (every place tried).
pub fn runtime_found() -> Result<(String, std::path::PathBuf), String> {
    check::runtime_ready().map_err(|e| e.to_string())?;
    #[cfg(feature = "onnx")]
    return runtime::loaded_library()
        .map(|(origin, path)| (origin.to_string(), path.to_owned()))
        .ok_or_else(|| "loaded, but its path was not recorded".to_owned());
    #[cfg(not(feature = "onnx"))]
    return Err("this beaker was built without ONNX support".to_owned());
}

/// Whether [`check_before_publish`] will be able to run: when a check is wanted for an ONNX
/// model, loads the runtime now, so a missing one is reported before a download starts.
pub fn ready_to_check<B>(model: &Model<B>, wanted: bool) -> Result<(), CheckError> {
    if (wanted || model.check) && (is_onnx(model) || !onnx_files(model).is_empty()) {
        check::runtime_ready()?;
    }
    Ok(())
}

/// The pre-publish hook of `add` and `pull`: when `wanted` (`--check`, or the entry's
/// `check = true`) and the model is an ONNX model, loads the temp file at `temp` in ONNX Runtime;
/// an error means "do not publish". `what` names the model for the user (the URL or the added
/// file). A format that is not ONNX is not checked, and a notice says so.
pub fn check_before_publish<B>(
    temp: &Path,
    model: &Model<B>,
    wanted: bool,
    what: &str,
    progress: &mut dyn Progress,
) -> Result<(), CheckError> {
    if !(wanted || model.check) {
        return Ok(());
    }
    if !is_onnx(model) {
        let format = model
            .format
            .map_or_else(|| "unknown".to_owned(), |f| f.to_string());
        progress.notice(&format!(
            "{what}: not checked: its format is {format}, and only ONNX models are loaded"
        ));
        return Ok(());
    }
    check_as(temp, what).map_err(|e| match e {
        CheckError::Load { what, reason } => CheckError::NotPublished { what, reason },
        e => e,
    })
}

/// The pre-publish hook of a model of several files (listed in `files`): when `wanted` (or the
/// model's `check = true`), loads every one of its ONNX files ([`onnx_files`]) in ONNX Runtime
/// from `dir`, which holds all the model's files under their names (so external data next to a
/// graph resolves); the first that does not load is the error, and nothing may be published.
/// `model` names the model for the user (its name, or the directory added); a file is called
/// `model (path)`. A model with no ONNX file is not checked, and a notice says so.
pub fn check_dir_before_publish<B>(
    dir: &Path,
    entry: &Model<B>,
    wanted: bool,
    model: &str,
    progress: &mut dyn Progress,
) -> Result<(), CheckError> {
    if !(wanted || entry.check) {
        return Ok(());
    }
    let files = onnx_files(entry);
    if files.is_empty() {
        let format = entry
            .format
            .map_or_else(|| "unknown".to_owned(), |f| f.to_string());
        progress.notice(&format!(
            "{model}: not checked: its format is {format}, and only ONNX files are loaded"
        ));
        return Ok(());
    }
    for file in &files {
        check_as(&file.under(dir), &format!("{model} ({file})")).map_err(|e| match e {
            CheckError::Load { what, reason } => CheckError::NotPublished { what, reason },
            e => e,
        })?;
    }
    Ok(())
}
