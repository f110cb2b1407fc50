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
use crate::lock::{Holder, LockGuard, Mode, Wait};
use crate::name::ModelName;
use crate::progress::{Progress, Silent};
use crate::publish::{self, publish, Failed, Published, TempBlob};
use crate::store::Store;
use error::Failure;
use key::DownloadKey;

/// How pulls behave.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sources, timeouts, retries, offline mode.
    pub fetch: fetch::Config,
    /// How long to wait for another process downloading the same model.
    pub lock_wait: Wait,
}

impl Options {
    /// Defaults with the environment applied (see [`fetch::Config::from_env`]); waits for other
    /// downloads as long as they take.
    pub fn from_env() -> Result<Self, PullError> {
        Ok(Options {
            fetch: fetch::Config::from_env().map_err(PullError::Setting)?,
            lock_wait: Wait::Forever,
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
}

impl<'s> Puller<'s> {
    pub fn new(store: &'s Store, options: Options) -> Self {
        Puller {
            store,
            fetcher: Fetcher::new(options.fetch),
            lock_wait: options.lock_wait,
        }
    }

    /// Makes `model` present in the store under its name and returns where it is: fast path →
    /// lock and look again → start or resume → try each source → publish.
    pub fn pull(
        &mut self,
        model: &Resolved,
        progress: &mut dyn Progress,
    ) -> Result<Pulled, PullError> {
        let key = DownloadKey::of(&model.entry).ok_or_else(|| PullError::NoDigest {
            name: model.name.clone(),
            catalogue: model.manifest.display().to_string(),
        })?;
        // Step 1: already here?
        if let Some(p) = self.present(model)? {
            return Ok(p);
        }
        self.check_fetchable(model)?;
        // Step 2: one downloader per model; the others wait here, then find it published.
        let guard = self.store.lock(
            &key.lock_path(self.store.layout()),
            Mode::Exclusive,
            self.lock_wait,
            &mut |holder| progress.notice(&waiting(&model.name, holder)),
        )?;
        if let Some(p) = self.present(model)? {
            return Ok(p);
        }
        // Steps 3–5, with the progress bar finished however they end.
        let mut bar = Bar::new(progress);
        let temp = start_or_resume(self.store, model, &key.stem(), &mut bar)?;
        self.try_sources(model, &key.stem(), temp, &guard, &mut bar)
    }

    /// Step 1, the fast path: the content is present, so only the name is recorded.
    fn present(&self, model: &Resolved) -> Result<Option<Pulled>, PullError> {
        let found = key::fast_path(self.store, &model.name, &model.entry)?;
        Ok(found.map(|p| Pulled::new(&model.name, p, false)))
    }

    /// Whether this pull may download at all (not offline, somewhere to download from).
    fn check_fetchable(&self, model: &Resolved) -> Result<(), PullError> {
        if self.fetcher.config().offline {
            return Err(PullError::Offline {
                name: model.name.clone(),
            });
        }
        if model.entry.urls.is_empty() {
            return Err(PullError::NoUrl {
                name: model.name.clone(),
                catalogue: model.manifest.display().to_string(),
            });
        }
        Ok(())
    }

    /// Steps 3–5 for each URL in order, until one gives bytes that publish. A transport failure
    /// keeps the bytes for the next URL (or the next run); a mismatch discards them.
    fn try_sources(
        &mut self,
        model: &Resolved,
        stem: &str,
        mut temp: Option<TempBlob>,
        guard: &LockGuard,
        bar: &mut Bar<'_>,
    ) -> Result<Pulled, PullError> {
        let (store, name, entry) = (self.store, &model.name, &model.entry);
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
                None => TempBlob::create_for(store, stem, entry)?,
            };
            let mut holder = Holder::me();
            holder.partial = Some(blob.path().to_owned());
            holder.expected_size = entry.size;
            guard.record(&holder);

            if let Err(e) = self
                .fetcher
                .fetch(&source, &mut blob, entry.size, bar.get())
            {
                if e.is_fatal() {
                    let kept = keep_for_resume(blob, e.is_no_space());
                    return Err(PullError::Source {
                        name: name.clone(),
                        url: url.clone(),
                        error: Box::new(e),
                        kept,
                    });
                }
                if !e.discards_partial() {
                    temp = Some(blob); // the next mirror continues from here
                } // else dropping `blob` deletes it: its bytes are wrong, never resumed
                failures.push(Failure::Fetch(url.clone(), e));
                continue;
            }
            // Steps 4–5. A mismatch deletes the temp blob inside `publish`.
            match publish(store, blob, name, recorded(model)) {
                Ok(p) => return Ok(Pulled::new(name, p, true)),
                Err(Failed {
                    error:
                        publish::Error::Mismatch {
                            what,
                            expected,
                            actual,
                        },
                    ..
                }) => failures.push(Failure::Mismatch {
                    url: url.clone(),
                    what,
                    expected,
                    actual,
                }),
                Err(Failed { error, temp }) => {
                    // A finished download whose publish failed (e.g. gc.lock unavailable) is
                    // kept for the next run, which re-hashes it and publishes with no network.
                    let no_space = matches!(&error, publish::Error::Store(e) if e.is_no_space());
                    if let Some(t) = temp {
                        keep_for_resume(*t, no_space);
                    }
                    return Err(error.into());
                }
            }
        }
        let kept = temp.map_or(0, |t| keep_for_resume(t, false));
        Err(Failure::into_error(failures, name, kept))
    }
}

/// Step 3: continue the most advanced dead partial of this download, if there is one; the
/// first source creates a fresh temp blob otherwise.
fn start_or_resume(
    store: &Store,
    model: &Resolved,
    stem: &str,
    bar: &mut Bar<'_>,
) -> Result<Option<TempBlob>, PullError> {
    let temp = resume::claim(store, stem, &model.entry)?;
    let progress = bar.get();
    if let Some(t) = &temp {
        progress.notice(&format!("{}: resuming at byte {}", model.name, t.len()));
    }
    bar.start(model.name.as_str(), model.entry.size);
    if let Some(t) = &temp {
        bar.get().advance(t.len());
    }
    Ok(temp)
}

/// The progress receiver of one download: [`Progress::finish`] is called exactly once when the
/// download ends, on every path out of it (success, error, early return), if it was started.
struct Bar<'p> {
    progress: &'p mut dyn Progress,
    started: bool,
}

impl<'p> Bar<'p> {
    fn new(progress: &'p mut dyn Progress) -> Self {
        Bar {
            progress,
            started: false,
        }
    }

    fn start(&mut self, what: &str, total: Option<u64>) {
        self.progress.start(what, total);
        self.started = true;
    }

    fn get(&mut self) -> &mut dyn Progress {
        &mut *self.progress
    }
}

impl Drop for Bar<'_> {
    fn drop(&mut self) {
        if self.started {
            self.progress.finish();
        }
    }
}

/// The entry the store manifest records: the catalogue's, with relative URLs made absolute (they
/// were relative to the catalogue, not to the store).
fn recorded(model: &Resolved) -> crate::manifest::Entry {
    let mut entry = model.entry.clone();
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

/// Leaves a partial with bytes in `tmp/` for the next pull and returns how many bytes were kept.
/// An empty one is deleted, and so is one whose writer ran out of space (`no_space`): keeping it
/// would keep the disk full, and the space it frees is what the retry needs.
fn keep_for_resume(temp: TempBlob, no_space: bool) -> u64 {
    let len = temp.len();
    if len == 0 || no_space {
        return 0; // dropping `temp` deletes it
    }
    let _ = temp.keep();
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
