//! `beaker store pull`: get a catalogue model into the store, downloading it at most once however
//! many processes ask at the same moment (DESIGN §5 with a network or file source).
//!
//! # Embedding
//! A tool that needs a model opens the default store, resolves the name through the catalogues,
//! pulls, and uses the path — the CLI does exactly this:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // Keep the doctest off the user's real cache, and point it at the demo catalogue.
//! # let scratch = tempfile::tempdir()?;
//! # std::env::set_var("BEAKER_STORE", scratch.path().join("store"));
//! # std::env::set_var("BEAKER_MANIFEST", concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/demo/demo.toml"));
//! use beaker::{pull, Catalogue, Store};
//!
//! let root = Store::default_root().ok_or("no cache directory; set BEAKER_STORE")?;
//! let store = Store::open_or_create(&root)?;
//! let catalogue = Catalogue::load(&[], std::env::var_os("BEAKER_MANIFEST").as_deref())?;
//! let model = pull::pull(&store, catalogue.get("tiny-add")?)?;
//! println!("tiny-add is at {}", model.path.display());
//! # assert!(model.downloaded && model.path.is_file());
//! # assert!(!pull::pull(&store, catalogue.get("tiny-add")?)?.downloaded, "second pull is the fast path");
//! # Ok(())
//! # }
//! ```
//!
//! [`Puller`] is the same with explicit [`Options`] (offline, lock wait, timeouts) and a
//! [`Progress`] receiver.
//!
//! # Protocol, and the invariants it keeps
//! 1. Fast path ([`key::fast_path`]): content present → record the name, no network (I4 via
//!    `gc.lock`).
//! 2. Take the download lock (`key`), bounded by `--lock-timeout`; after ~1 s tell the user who
//!    holds it and how far they are; then look again: the holder has usually published it.
//! 3. Resume the most advanced dead partial ([`resume`]) or create a temp blob; record it in the
//!    lock file for waiters; fetch from each URL in order ([`crate::fetch`]).
//! 4. [`publish`]: size and every pinned digest are checked, then the blob is made durable,
//!    read-only and named without clobbering (I1–I3). A mismatch deletes the bytes and the next
//!    URL starts afresh; a transport failure keeps them for the next URL or the next run.

mod error;
pub mod key;
pub mod resume;

use std::path::PathBuf;

use humansize::{format_size, BINARY};

pub use error::PullError;

use crate::catalogue::Resolved;
use crate::digest::Blake3;
use crate::fetch::{self, Fetcher, Source};
use crate::lock::{Holder, Mode, Wait};
use crate::name::ModelName;
use crate::progress::{Progress, Silent};
use crate::publish::{publish, Published, TempBlob};
use crate::store::{Store, StoreError};
use error::Failure;
use key::DownloadKey;

/// How pulls behave.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sources, timeouts, retries, offline mode.
    pub fetch: fetch::Config,
    /// How long to wait for another process downloading the same model.
    pub lock_wait: Wait,
    /// Load ONNX models in ONNX Runtime before publishing them (`pull --check`); entries with
    /// `check = true` are checked either way.
    pub check: bool,
}

impl Options {
    /// Defaults with the environment applied (see [`fetch::Config::from_env`]); waits for other
    /// downloads as long as they take.
    pub fn from_env() -> Result<Self, PullError> {
        Ok(Options {
            fetch: fetch::Config::from_env().map_err(PullError::Setting)?,
            lock_wait: Wait::Forever,
            check: false,
        })
    }
}

/// A model that is in the store (the `--json` row of `pull`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pulled {
    pub name: ModelName,
    pub blake3: Blake3,
    pub size: u64,
    pub path: PathBuf,
    /// False when the store already had it (fast path, or another process downloaded it).
    pub downloaded: bool,
}

impl Pulled {
    fn new(name: &ModelName, p: Published, downloaded: bool) -> Self {
        Pulled {
            name: name.clone(),
            blake3: p.blake3,
            size: p.size,
            path: p.path,
            downloaded,
        }
    }
}

/// Pulls one model with [`Options::from_env`] and no progress reporting.
pub fn pull(store: &Store, model: &Resolved) -> Result<Pulled, PullError> {
    Puller::new(store, Options::from_env()?).pull(model, &mut Silent)
}

/// Pulls models into one store, sharing one HTTP client.
pub struct Puller<'s> {
    store: &'s Store,
    fetcher: Fetcher,
    lock_wait: Wait,
    check: bool,
}

impl<'s> Puller<'s> {
    pub fn new(store: &'s Store, options: Options) -> Self {
        Puller {
            store,
            fetcher: Fetcher::new(options.fetch),
            lock_wait: options.lock_wait,
            check: options.check,
        }
    }

    /// Makes `model` present in the store under its name and returns where it is.
    pub fn pull(
        &mut self,
        model: &Resolved,
        progress: &mut dyn Progress,
    ) -> Result<Pulled, PullError> {
        let (store, name, entry) = (self.store, &model.name, &model.entry);
        let catalogue = || model.manifest.display().to_string();
        let key = DownloadKey::of(entry).ok_or_else(|| PullError::NoDigest {
            name: name.clone(),
            catalogue: catalogue(),
        })?;

        // Step 1: already here?
        if let Some(p) = key::fast_path(store, name, entry)? {
            return Ok(Pulled::new(name, p, false));
        }
        if self.fetcher.config().offline {
            return Err(PullError::Offline { name: name.clone() });
        }
        if entry.urls.is_empty() {
            return Err(PullError::NoUrl {
                name: name.clone(),
                catalogue: catalogue(),
            });
        }
        // --check needs ONNX Runtime: find out before downloading anything.
        crate::onnx::ready_to_check(entry, self.check).map_err(StoreError::from)?;

        // Step 2: one downloader per model; the others wait here, then find it published.
        let guard = store.lock(
            &key.lock_path(store.layout()),
            Mode::Exclusive,
            self.lock_wait,
            &mut |holder| progress.notice(&waiting(name, holder)),
        )?;
        if let Some(p) = key::fast_path(store, name, entry)? {
            return Ok(Pulled::new(name, p, false));
        }

        // Step 3: continue a dead download, or start one.
        let stem = key.stem();
        let mut temp = match resume::claim(store, &stem, entry)? {
            Some(t) => {
                progress.notice(&format!("{name}: resuming at byte {}", t.len()));
                Some(t)
            }
            None => None,
        };
        progress.start(name.as_str(), entry.size);
        if let Some(t) = &temp {
            progress.advance(t.len());
        }
        let mut failures = Vec::new();
        for url in &entry.urls {
            let source = match Source::parse(url, model.base_dir(), &model.manifest) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(Failure::Fetch(url.clone(), e));
                    continue;
                }
            };
            let mut blob = match temp.take() {
                Some(t) => t,
                None => TempBlob::create_for(store, &stem, entry)?,
            };
            let mut holder = Holder::me();
            holder.partial = Some(blob.path().to_owned());
            holder.expected_size = entry.size;
            guard.record(&holder);

            match self.fetcher.fetch(&source, &mut blob, entry.size, progress) {
                Ok(()) => {}
                Err(e) if e.is_fatal() => {
                    progress.finish();
                    let kept = keep_for_resume(blob);
                    return Err(PullError::Source {
                        name: name.clone(),
                        url: url.clone(),
                        error: Box::new(e),
                        kept,
                    });
                }
                Err(e) => {
                    if e.discards_partial() {
                        drop(blob); // its bytes are wrong: deleted, never resumed
                    } else {
                        temp = Some(blob); // the next mirror continues from here
                    }
                    failures.push(Failure::Fetch(url.clone(), e));
                    continue;
                }
            }
            // Pre-publish check (--check, `check = true`), on bytes that are the pinned content
            // (others are left to publish's mismatch report and the next URL): a model that
            // does not load is deleted, and no other URL can serve different pinned bytes.
            if entry.blake3.is_none_or(|b| b == blob.blake3()) {
                let what = format!("{name} from {url}");
                let checked = crate::onnx::check_before_publish(
                    blob.path(),
                    entry,
                    self.check,
                    &what,
                    progress,
                );
                if let Err(e) = checked {
                    progress.finish();
                    drop(blob);
                    return Err(StoreError::from(e).into());
                }
            }
            // Steps 4–5. A mismatch drops (deletes) the temp blob inside `publish`.
            match publish(store, blob, Some(name), recorded(model)) {
                Ok(p) => {
                    progress.finish();
                    return Ok(Pulled::new(name, p, true));
                }
                Err(StoreError::Mismatch {
                    what,
                    expected,
                    actual,
                }) => failures.push(Failure::Mismatch {
                    url: url.clone(),
                    what,
                    expected,
                    actual,
                }),
                Err(e) => {
                    progress.finish();
                    return Err(e.into());
                }
            }
        }
        progress.finish();
        let kept = temp.map_or(0, keep_for_resume);
        drop(guard);
        Err(Failure::into_error(failures, name, kept))
    }
}

/// The entry the store manifest records: the catalogue's, with relative URLs made absolute (they
/// were relative to the catalogue, not to the store).
fn recorded(model: &Resolved) -> crate::manifest::Entry {
    let mut entry = model.entry.clone();
    entry.check = false; // an instruction to pull, not a fact about the stored model
    if let Some(base) = model.base_dir() {
        for url in &mut entry.urls {
            if !url.contains("://") && !std::path::Path::new(url.as_str()).is_absolute() {
                let abs = std::path::absolute(base.join(url.as_str()))
                    .unwrap_or_else(|_| base.join(url.as_str()));
                *url = abs.display().to_string();
            }
        }
    }
    entry
}

/// Leaves a partial with bytes in `tmp/` for the next pull (an empty one is deleted); returns how
/// many bytes were kept.
fn keep_for_resume(temp: TempBlob) -> u64 {
    let len = temp.len();
    if len > 0 {
        let _ = temp.keep();
    }
    len
}

/// "waiting for NAME: pid 4242 (ana@host) since …, 12 MiB of 40 MiB so far".
fn waiting(name: &ModelName, holder: Option<Holder>) -> String {
    let Some(h) = holder else {
        return format!("waiting for another process that is downloading {name}");
    };
    let got = h
        .partial
        .as_ref()
        .and_then(|p| std::fs::symlink_metadata(p).ok())
        .map(|m| m.len());
    let progress = match (got, h.expected_size) {
        (Some(got), Some(total)) => format!(
            ", {} of {} so far",
            format_size(got, BINARY),
            format_size(total, BINARY)
        ),
        (Some(got), None) => format!(", {} so far", format_size(got, BINARY)),
        _ => String::new(),
    };
    format!("waiting for {name}: {h} is downloading it{progress}")
}
