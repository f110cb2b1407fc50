//! [`session`]: an ONNX Runtime session for a catalogue name, pulling the model into the store
//! first if needed. What an application embeds instead of a model cache of its own.

use crate::model::catalogue::{Catalogue, UnknownName};
use crate::ops::pull::{self, PullError};
use crate::store::Store;
use crate::sys::error::Category;

use crate::onnx::check::{load, Refused};
use crate::onnx::runtime::RuntimeError;

/// Why [`session`] gave no session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    UnknownName(#[from] UnknownName),
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{name} ({}) does not load in ONNX Runtime: {reason}", path.display())]
    Load {
        name: String,
        path: std::path::PathBuf,
        reason: String,
    },
}

impl SessionError {
    pub fn category(&self) -> Category {
        match self {
            SessionError::UnknownName(_) => Category::BadInput,
            SessionError::Pull(e) => e.category(),
            SessionError::Runtime(_) | SessionError::Load { .. } => Category::Failed,
        }
    }
}

/// Resolves `name` through `catalogue`, pulls it into `store` unless it is there (the fast path:
/// no network, no re-hash), and opens an ONNX Runtime session on the store's read-only blob.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // Keep the doctest off the user's real cache, and point it at the demo catalogue. It needs
/// # // ONNX Runtime: `cargo xtask test` provides it (ORT_DYLIB_PATH).
/// # let scratch = tempfile::tempdir()?;
/// # std::env::set_var("BEAKER_STORE", scratch.path().join("store"));
/// # std::env::set_var("BEAKER_MANIFEST", concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/demo/demo.toml"));
/// use beaker::onnx::ort::{self, value::Tensor};
/// use beaker::{Catalogue, Store};
///
/// let store = Store::open_or_create(&Store::default_root().ok_or("set BEAKER_STORE")?)?;
/// let catalogue = Catalogue::load(&[], std::env::var_os("BEAKER_MANIFEST").as_deref())?;
/// let mut session = beaker::session::session(&store, &catalogue, "tiny-add")?;
///
/// let a = Tensor::from_array(([3usize], vec![1.0f32, 2.0, 3.0]))?;
/// let b = Tensor::from_array(([3usize], vec![10.0f32, 20.0, 30.0]))?;
/// let outputs = session.run(ort::inputs!["a" => a, "b" => b])?;
/// let (_, sum) = outputs["sum"].try_extract_tensor::<f32>()?;
/// assert_eq!(sum, [11.0, 22.0, 33.0]);
/// # Ok(())
/// # }
/// ```
pub fn session(
    store: &Store,
    catalogue: &Catalogue,
    name: &str,
) -> Result<ort::session::Session, SessionError> {
    let model = catalogue.get(name)?;
    let pulled = pull::pull(store, model)?;
    load(&pulled.path).map_err(|e| match e {
        Refused::Runtime(e) => SessionError::Runtime(e),
        Refused::Model(reason) => SessionError::Load {
            name: name.to_owned(),
            path: pulled.path,
            reason,
        },
    })
}
