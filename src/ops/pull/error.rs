//! Why a pull failed: one line saying what, where, and what to do; mapped to exit codes through
//! [`PullError::category`] (docs/design.md#cli).

use crate::model::digest::Blake3;
use crate::model::name::ModelName;
use crate::ops::fetch::FetchError;
use crate::store::StoreError;
use crate::sys::error::Category;
use crate::sys::lock::LockError;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bytes arrived but could not be published (other than a mismatch, which is
    /// [`PullError::Mismatch`]).
    #[error(transparent)]
    Publish(#[from] crate::store::publish::Error),
    /// A bad setting (environment, `--ca-cert`), before any source was tried.
    #[error(transparent)]
    Setting(FetchError),

    #[error("{name} is not in the store and offline mode (--offline / BEAKER_OFFLINE) forbids downloading it; pull it once without --offline")]
    Offline { name: ModelName },
    #[error("{name} is not in the store and its catalogue entry ({catalogue}) has no urls to fetch it from; add `urls = [...]` to the entry, or `beaker store add FILE --name {name}`")]
    NoUrl { name: ModelName, catalogue: String },
    #[error("{name} has no digest in its catalogue entry ({catalogue}); add `blake3 = \"…\"` (or sha256/md5)")]
    NoDigest { name: ModelName, catalogue: String },
    #[error("{what} mismatch for {name} from {url}: expected {expected}, got {actual}; the download was discarded (nothing published, no partial kept). The source serves other bytes than were pinned (by the catalogue entry, or by --blake3/--sha256/--md5): try again later, try another mirror, or have the pin checked")]
    Mismatch {
        name: ModelName,
        url: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    /// The entry pins the BLAKE3 of a blob the store holds, and an upstream digest (md5, sha256)
    /// those bytes do not have: it names two different contents. Found on the fast path, by
    /// hashing the present blob; a fresh store reports the same mismatch after downloading.
    #[error("{what} mismatch for {label}: its entry pins blake3 {blake3}, which the store holds, and those bytes have {what} {actual}, not the {expected} the entry also pins; nothing was recorded. The entry names two different contents (a store without the blob would download it and refuse it the same way): have the catalogue entry or the registry manifest checked")]
    Contradicted {
        /// The name, and the file for a model of several.
        label: String,
        blake3: Blake3,
        what: &'static str,
        expected: String,
        actual: String,
    },
    // `error` is printed in the message, so it is deliberately not a `#[source]` (anyhow's `{:#}`
    // would print it twice).
    #[error("cannot fetch {name} from {url}: {error}{}", resumable(*kept))]
    Source {
        name: ModelName,
        url: String,
        error: Box<FetchError>,
        /// Bytes kept in `tmp/` for the next pull to resume from.
        kept: u64,
    },
    #[error("cannot fetch {name} from any of its {} sources: {}{}", failures.len(), failures.join("; "), resumable(*kept))]
    AllSources {
        name: ModelName,
        failures: Vec<String>,
        kept: u64,
        category: Category,
    },
}

fn resumable(kept: u64) -> String {
    if kept == 0 {
        String::new()
    } else {
        format!("; {kept} bytes are kept and the next pull resumes from there")
    }
}

impl PullError {
    pub fn category(&self) -> Category {
        match self {
            PullError::Store(e) => e.category(),
            PullError::Publish(e) => e.category(),
            PullError::Setting(e) => e.category(),
            PullError::Source { error, .. } => error.category(),
            PullError::NoUrl { .. } | PullError::NoDigest { .. } => Category::BadInput,
            PullError::Offline { .. }
            | PullError::Mismatch { .. }
            | PullError::Contradicted { .. } => Category::Failed,
            PullError::AllSources { category, .. } => *category,
        }
    }
}

impl From<LockError> for PullError {
    fn from(e: LockError) -> Self {
        PullError::Store(StoreError::Lock(e))
    }
}

/// One failed source, for the final error.
#[derive(Debug)]
pub(super) enum Failure {
    Fetch(String, FetchError),
    Mismatch {
        url: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
}

impl Failure {
    fn category(&self) -> Category {
        match self {
            Failure::Fetch(_, e) => e.category(),
            Failure::Mismatch { .. } => Category::Failed,
        }
    }

    fn line(&self) -> String {
        match self {
            Failure::Fetch(url, e) => format!("{url}: {e}"),
            Failure::Mismatch {
                url,
                what,
                expected,
                actual,
            } => format!("{url}: {what} mismatch (expected {expected}, got {actual}; discarded)"),
        }
    }

    /// The error for a pull whose every source failed.
    pub(super) fn into_error(mut failures: Vec<Failure>, name: &ModelName, kept: u64) -> PullError {
        if failures.len() == 1 {
            return match failures.remove(0) {
                Failure::Fetch(url, error) => PullError::Source {
                    name: name.clone(),
                    url,
                    error: Box::new(error),
                    kept,
                },
                Failure::Mismatch {
                    url,
                    what,
                    expected,
                    actual,
                } => PullError::Mismatch {
                    name: name.clone(),
                    url,
                    what,
                    expected,
                    actual,
                },
            };
        }
        let category = if failures.iter().all(|f| f.category() == Category::BadInput) {
            Category::BadInput
        } else {
            Category::Failed
        };
        PullError::AllSources {
            name: name.clone(),
            failures: failures.iter().map(Failure::line).collect(),
            kept,
            category,
        }
    }
}
