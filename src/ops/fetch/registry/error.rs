//! Why a registry operation failed, naming the reference and what to do.

use std::path::PathBuf;

use crate::ops::fetch::FetchError;
use crate::store::StoreError;
use crate::sys::error::{Category, IoError};

use crate::model::reference::BadReference;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    Reference(#[from] BadReference),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] IoError),
    /// An environment setting that does not parse.
    #[error(transparent)]
    Setting(FetchError),
    /// The connection, TLS or a timeout: nothing the registry said.
    #[error("{reference}: {error}")]
    Transport {
        reference: String,
        error: FetchError,
    },
    /// An answer beaker did not expect (404, 500, a refused upload, …).
    #[error("{reference}: {what}: the registry answered HTTP {status}{detail}")]
    Status {
        reference: String,
        what: String,
        status: u16,
        detail: String,
    },
    /// `login` is what `beaker registry login` takes for this registry (`http://HOST` for a
    /// plain-HTTP one).
    #[error("{reference}: the registry refused the credentials{detail}; check them with `beaker registry login {login}` (or BEAKER_REGISTRY_USER/BEAKER_REGISTRY_PASSWORD)")]
    Unauthorized {
        reference: String,
        login: String,
        detail: String,
    },
    #[error("{reference}: the registry asks for credentials and none are set for {registry}; run `beaker registry login {login}` or set BEAKER_REGISTRY_USER and BEAKER_REGISTRY_PASSWORD")]
    NoCredentials {
        reference: String,
        registry: String,
        login: String,
    },
    #[error("{reference}: the token service at {realm} failed: {detail}")]
    Token {
        reference: String,
        realm: String,
        detail: String,
    },
    /// The manifest is not a beaker-readable model (not JSON, an index, a layer without a title, …).
    #[error("{reference}: {detail}")]
    BadManifest { reference: String, detail: String },
    /// The registry's answer contradicts what was asked or announced (digest or size).
    #[error("{reference}: {detail}; nothing was published")]
    Mismatch { reference: String, detail: String },
    #[error("{reference}: {detail}")]
    BadPush { reference: String, detail: String },
    #[error("cannot read registry credentials from {}: {detail}", path.display())]
    Credentials { path: PathBuf, detail: String },
    #[error("credential helper docker-credential-{helper} failed for {registry}: {detail}")]
    Helper {
        helper: String,
        registry: String,
        detail: String,
    },
}

impl OciError {
    pub fn category(&self) -> Category {
        match self {
            OciError::Reference(_) | OciError::Credentials { .. } => Category::BadInput,
            OciError::Store(e) => e.category(),
            OciError::Transport { error, .. } | OciError::Setting(error) => error.category(),
            _ => Category::Failed,
        }
    }
}

/// What `beaker registry login` takes for `registry`: the host, or `http://HOST` where the
/// registry speaks plain HTTP (login accepts the scheme in front).
pub fn login_arg(registry: &str, https: bool) -> String {
    if https {
        registry.to_owned()
    } else {
        format!("http://{registry}")
    }
}
