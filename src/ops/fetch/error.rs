//! Why a fetch from one source failed, in one line a user can act on.
//!
//! Each error also says whether another attempt at the same URL can help ([`FetchError::is_transient`])
//! and whether the bytes written so far must be thrown away ([`FetchError::discards_partial`]):
//! the retry loop and the pull driver decide from these, not from message text. No invariant is
//! kept here; keeping bad bytes out of `blobs/` is the publish protocol's job.

use std::path::PathBuf;
use std::time::Duration;

use crate::store::StoreError;
use crate::sys::error::{Category, IoError};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Writing into the store failed (disk full, permissions): no other source can help.
    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("unsupported URL {url:?}: beaker fetches https://, http://, file://, oci:// and paths relative to the manifest")]
    UnsupportedScheme { url: String },
    #[error("invalid URL {url:?}: {detail}")]
    BadUrl { url: String, detail: String },
    #[error("relative URL {url:?} in {catalogue}, which has no directory to resolve it against; use an absolute https:// or file:// URL")]
    RelativeWithoutBase { url: String, catalogue: String },
    #[error("{setting}={value:?} is invalid: {reason}")]
    BadSetting {
        setting: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot use CA certificates from {}: {reason}; --ca-cert / SSL_CERT_FILE must name a PEM file of CA certificates", path.display())]
    CaCert { path: PathBuf, reason: String },

    #[error("HTTP {status}{}", reason_phrase(*status))]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("cannot resolve host {host:?} (DNS failure); check the URL and your network or proxy settings")]
    Dns { host: String },
    #[error("TLS failure talking to {host}: {detail}; if the server uses a private CA, pass --ca-cert FILE or set SSL_CERT_FILE to its PEM certificate")]
    Tls { host: String, detail: String },
    #[error("too many redirects (a redirect loop?); check the URL")]
    RedirectLoop,
    #[error("no data for {:?} (stall timeout, BEAKER_STALL_TIMEOUT)", after)]
    Stalled { after: Duration },
    #[error("could not connect within {:?} (BEAKER_CONNECT_TIMEOUT)", after)]
    ConnectTimeout { after: Duration },
    #[error("connection failed: {detail}")]
    Connection { detail: String },
    #[error("the response ended after {got} of {expected} bytes")]
    ShortBody { got: u64, expected: u64 },
    #[error("the server answered {detail}")]
    BadResponse { detail: String },
    #[error("received more than the {limit} bytes the catalogue gives for this model; the download was discarded")]
    TooLarge { limit: u64 },
    #[error("no such file {}", path.display())]
    NoSuchFile { path: PathBuf },
    /// A `file://` or relative source that is a FIFO, a device or a directory: refused before a
    /// byte is read (bad input: the catalogue points at something that is not a model file).
    #[error("{0}: {src}; a file source must be a regular file", src = .0.source)]
    NotAFile(IoError),
    #[error(transparent)]
    Read(IoError),
    /// An `oci://` source whose registry refused or failed (credentials, token service).
    #[error(transparent)]
    Registry(Box<crate::ops::fetch::registry::OciError>),
}

impl FetchError {
    /// Whether trying the same URL again (resuming) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status == 429 || (500..600).contains(status),
            FetchError::Stalled { .. }
            | FetchError::ConnectTimeout { .. }
            | FetchError::Connection { .. }
            | FetchError::ShortBody { .. } => true,
            _ => false,
        }
    }

    /// Whether the server could not be reached at all (the connection was refused, or not made in
    /// time): another mirror is worth trying before this one again.
    pub fn is_unreachable(&self) -> bool {
        match self {
            FetchError::ConnectTimeout { .. } => true,
            FetchError::Connection { detail } => {
                let d = detail.to_ascii_lowercase();
                d.contains("refused")
                    || d.contains("unreachable")
                    || d.contains("connection failed")
            }
            _ => false,
        }
    }

    /// Whether the bytes written so far are known bad and must not be resumed from.
    pub fn discards_partial(&self) -> bool {
        matches!(self, FetchError::TooLarge { .. })
    }

    /// Errors that no other URL can fix (the store itself or the configuration is the problem).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            FetchError::Store(_) | FetchError::BadSetting { .. } | FetchError::CaCert { .. }
        )
    }

    /// Whether the store's disk (or quota, or file size limit) ran out while writing.
    pub fn is_no_space(&self) -> bool {
        matches!(self, FetchError::Store(e) if e.is_no_space())
    }

    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn category(&self) -> Category {
        match self {
            FetchError::Store(e) => e.category(),
            FetchError::Registry(e) => e.category(),
            FetchError::UnsupportedScheme { .. }
            | FetchError::BadUrl { .. }
            | FetchError::RelativeWithoutBase { .. }
            | FetchError::NotAFile(_)
            | FetchError::BadSetting { .. }
            | FetchError::CaCert { .. } => Category::BadInput,
            _ => Category::Failed,
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        401 => " Unauthorized",
        403 => " Forbidden",
        404 => " Not Found",
        410 => " Gone",
        416 => " Range Not Satisfiable",
        429 => " Too Many Requests",
        500 => " Internal Server Error",
        502 => " Bad Gateway",
        503 => " Service Unavailable",
        504 => " Gateway Timeout",
        _ => "",
    }
}
