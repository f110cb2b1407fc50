//! [`check`]: does ONNX Runtime load this model? The question `pull --check`, `add --check`,
//! `check = true` catalogue entries and `verify --deep` ask, answered by creating a real session
//! (graph validation, type inference, kernel lookup: what the application would do first).

use std::path::Path;

#[cfg(feature = "onnx")]
use super::runtime;
use super::runtime::RuntimeError;
use crate::model::entry::{Format, Model};
use crate::model::file_path::FilePath;
use crate::sys::error::Category;

/// Why a model was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// ONNX Runtime refused the model; `reason` is its own message.
    #[error("{what} does not load in ONNX Runtime: {reason}")]
    Load { what: String, reason: String },
    /// The same, found by the pre-publish check of `add`/`pull`: nothing was published.
    #[error("{what} is not a model ONNX Runtime can load, so it was not published: {reason}")]
    NotPublished { what: String, reason: String },
}

impl CheckError {
    pub fn category(&self) -> Category {
        Category::Failed
    }
}

/// Loads the model at `path` in an ONNX Runtime session (one thread) and drops it.
///
/// # Errors
/// [`CheckError::Runtime`] when no runtime loads (see [`runtime`]); [`CheckError::Load`] with
/// ONNX Runtime's reason when the model does not load. In messages the model is called by its
/// path; [`check_as`] names it otherwise (a URL, the file a user added).
pub fn check(path: &Path) -> Result<(), CheckError> {
    check_as(path, &path.display().to_string())
}

/// [`check`], calling the model `what` in the error (the temp file's name means nothing to a
/// user; the URL or the added file does).
pub fn check_as(path: &Path, what: &str) -> Result<(), CheckError> {
    load(path).map(drop).map_err(|e| match e {
        Refused::Runtime(e) => CheckError::Runtime(e),
        Refused::Model(reason) => CheckError::Load {
            what: what.to_owned(),
            reason,
        },
    })
}

/// Loads the runtime (once per process), or says why it cannot be.
pub(crate) fn runtime_ready() -> Result<(), RuntimeError> {
    #[cfg(feature = "onnx")]
    return runtime::environment().map(drop);
    #[cfg(not(feature = "onnx"))]
    return Err(not_built());
}

/// Without the `onnx` feature there is no runtime to load anything with.
#[cfg(not(feature = "onnx"))]
fn not_built() -> RuntimeError {
    RuntimeError {
        tried: vec!["nothing: this beaker was built without the `onnx` cargo feature; rebuild it with default features".into()],
    }
}

/// Why [`load`] gave no session.
#[cfg_attr(not(feature = "onnx"), allow(dead_code))]
pub(crate) enum Refused {
    Runtime(RuntimeError),
    Model(String),
}

/// A session on the model at `path`, or why not. ort is called under
/// [`runtime::quietly`], so a panic inside it becomes a reason too.
#[cfg(feature = "onnx")]
pub(crate) fn load(path: &Path) -> Result<ort::session::Session, Refused> {
    let env = runtime::environment().map_err(Refused::Runtime)?;
    runtime::quietly(|| {
        let mut builder = ort::session::Session::builder(env)
            .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
            .map_err(|e| format!("cannot set up a session: {e}"))?;
        builder
            .commit_from_file(path)
            .map_err(|e| without_path(e.message(), path))
    })
    .map_err(Refused::Model)
}

#[cfg(feature = "onnx")]
/// ONNX Runtime's reason without its "Load model from PATH failed:" preamble: the caller names
/// the model better (a temp file's path means nothing to a user).
fn without_path(message: &str, path: &Path) -> String {
    let preamble = format!("Load model from {} failed:", path.display());
    message
        .strip_prefix(&preamble)
        .unwrap_or(message)
        .trim()
        .to_owned()
}

#[cfg(not(feature = "onnx"))]
pub(crate) fn load(_path: &Path) -> Result<(), Refused> {
    Err(Refused::Runtime(not_built()))
}

/// The files of a model of several files (listed in `files`) that a check loads: every file
/// whose name ends in `.onnx` (an OCR pipeline has three graphs; a check of the main one alone
/// would pass with a broken recogniser), plus the main file when `format = "onnx"` names it
/// otherwise. None with another `format`, and none for a single-file model (see [`is_onnx`]).
pub fn onnx_files<B>(model: &Model<B>) -> Vec<FilePath> {
    if model.single_file().is_some() || model.format == Some(Format::Other) {
        return Vec::new();
    }
    let main = &model.main().path;
    model
        .files()
        .iter()
        .filter(|f| {
            f.path.as_str().to_ascii_lowercase().ends_with(".onnx")
                || (model.format == Some(Format::Onnx) && &f.path == main)
        })
        .map(|f| f.path.clone())
        .collect()
}

/// Whether a single-file model is an ONNX model that a check applies to: `format = "onnx"`, or
/// no format and a first URL ending in `.onnx` ([`looks_onnx`]). A model of several files is
/// checked by its [`onnx_files`] instead. Anything else is not checked (the caller says so).
pub fn is_onnx<B>(model: &Model<B>) -> bool {
    let urls = model.single_file().map_or(&[][..], |f| &f.urls[..]);
    looks_onnx(model.format, urls)
}

/// The rule of [`is_onnx`] on a format and a file's URLs: `onnx` is, `other` is not, and without
/// a format a first URL ending in `.onnx` is.
pub fn looks_onnx(format: Option<Format>, urls: &[String]) -> bool {
    match format {
        Some(Format::Onnx) => true,
        Some(Format::Other) => false,
        None => urls
            .first()
            .is_some_and(|u| u.to_ascii_lowercase().ends_with(".onnx")),
    }
}

#[cfg(all(test, feature = "onnx"))]
mod tests {
    use super::*;

    fn repo(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    /// Needs ONNX Runtime (`cargo xtask test` provides it); fails with the reason without one.
    #[test]
    fn check_loads_the_demo_models_and_gives_ort_s_reason_for_a_broken_one() {
        for m in ["tiny-add", "tiny-mul", "tiny-relu", "tiny-multi"] {
            let path = repo(&format!("manifests/demo/models/{m}.onnx"));
            if let Err(e) = check(&path) {
                panic!("{m}: {e}");
            }
        }
        let dangling = repo("tests/fixtures/onnx/dangling.onnx");
        match check_as(&dangling, "dangling") {
            Err(CheckError::Load { what, reason }) => {
                assert_eq!(what, "dangling");
                assert!(
                    reason.starts_with("Invalid model. Node input 'ghost'"),
                    "{reason}"
                );
            }
            other => panic!("expected a load error, got {other:?}"),
        }
    }
}
