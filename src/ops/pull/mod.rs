//! `beaker store pull`: get a catalogue model into the store, downloading it at most once however
//! many processes ask at the same moment (docs/design.md#publish with a network or file source).
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
//! 1. Fast path ([`key::fast_path`]): every file of the model present → build its snapshot if
//!    needed and record the name, no network (I3, I4 via `gc.lock`). An upstream digest the entry
//!    pins next to a present blob is recorded only once computed from its bytes ([`claims`]).
//! 2. For each file not in the store: take its download lock (`key`), bounded by
//!    `--lock-timeout`; while waiting, follow the holder's progress; then look again: the holder
//!    has usually published it.
//! 3. Resume the most advanced dead partial ([`resume`]) or create a temp blob; record it in the
//!    lock file for waiters; fetch from each URL in order ([`crate::ops::fetch`]).
//! 4. [`prepare`]: size and every pinned digest are checked, the bytes made durable and
//!    read-only. A mismatch deletes them and the next URL starts afresh; a transport failure
//!    keeps them for the next URL or the next run.
//! 5. `--check` of a model of several files: every ONNX file is loaded from a staged directory
//!    of all its files, before any is named; one that fails publishes nothing (so it fails
//!    again next time). Then, under one hold of `gc.lock` shared: every new blob is named without
//!    clobbering (I1, I2), `blobs/` synced, the snapshot built, and only then the name recorded
//!    (I3, I4). A model never appears half there.

mod claims;
mod error;
pub mod key;
pub mod registry;
pub mod resume;

use std::path::PathBuf;

use humansize::{format_size, BINARY};

pub use error::PullError;

use crate::model::catalogue::Resolved;
use crate::model::digest::Blake3;
use crate::model::entry::{File, Model, Pin};
use crate::model::name::ModelName;
use crate::ops::fetch::{self, Fetcher, Source};
use crate::store::publish::{
    self, prepare, reference_existing, Failed, Published, Ready, TempBlob,
};
use crate::store::{BlobState, Store, StoreError};
use crate::sys::lock::{Holder, LockGuard, Wait};
use crate::sys::progress::{Progress, Silent};
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
    /// The main file's BLAKE3.
    pub blake3: Blake3,
    /// Bytes of all the model's files.
    pub size: u64,
    /// The main file in the model's snapshot: what a tool opens.
    pub path: PathBuf,
    /// The snapshot directory, holding every file under its real name.
    pub dir: PathBuf,
    /// False when the store already had it (fast path, or another process downloaded it).
    pub downloaded: bool,
    /// The main file's BLAKE3 the name pointed at before this pull re-pointed it, if it pointed
    /// at other content.
    pub replaced: Option<Blake3>,
}

impl Pulled {
    fn new(name: &ModelName, p: Published, downloaded: bool) -> Self {
        Pulled {
            name: name.clone(),
            blake3: p.blake3,
            size: p.size,
            path: p.model.main,
            dir: p.model.dir,
            downloaded,
            replaced: p.replaced.map(|r| r.model.main().blob.blake3),
        }
    }
}

/// Pulls one model with [`Options::from_env`] and no progress reporting.
pub fn pull(store: &Store, model: &Resolved) -> Result<Pulled, PullError> {
    Puller::new(store, Options::from_env()?).pull(model, &mut Silent)
}

/// How many times a model of several files is assembled before giving up: a gc between
/// downloading one file and recording the name may remove a file that was already there.
const ASSEMBLY_ATTEMPTS: usize = 3;

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

    /// Makes `model` present in the store under its name and returns where it is: fast path →
    /// for each file not in the store: lock, look again, start or resume, try each source,
    /// check → under `gc.lock` shared: name every new blob, build the snapshot, record the name.
    /// The name is recorded only when every file is in `blobs/` and the snapshot exists.
    pub fn pull(
        &mut self,
        model: &Resolved,
        progress: &mut dyn Progress,
    ) -> Result<Pulled, PullError> {
        let name = &model.name;
        // Step 1: already here?
        if let Some(p) = key::fast_path(self.store, name, &model.model)? {
            return Ok(Pulled::new(name, p, false));
        }
        if self.fetcher.config().offline {
            return Err(PullError::Offline { name: name.clone() });
        }
        // --check needs ONNX Runtime: find out before downloading anything.
        crate::onnx::ready_to_check(&model.model, self.check).map_err(StoreError::from)?;
        let files = model.model.files();
        let mut last_missing = None;
        for _ in 0..ASSEMBLY_ATTEMPTS {
            let mut fetched = Vec::new();
            let mut pins = Vec::with_capacity(files.len());
            let mut bar = Bar::new(progress);
            for (n, f) in files.iter().enumerate() {
                let job = Job::new(model, f, n, files.len());
                match self.fetch_file(&job, &mut bar)? {
                    Fetched::Present(pin) => {
                        // Counted like the others, so a model's files read 1/4 … 4/4.
                        if job.of > 1 {
                            bar.get()
                                .notice(&format!("{}: already in the store", job.label));
                        }
                        pins.push(pin);
                    }
                    Fetched::Ready(ready, lock) => {
                        pins.push(Pin {
                            blake3: ready.blake3(),
                            size: ready.size(),
                        });
                        fetched.push((ready, lock));
                    }
                }
            }
            drop(bar);
            let downloaded = !fetched.is_empty();
            if files.len() > 1 && downloaded {
                self.check_staged(model, files, &pins, &fetched, progress)?;
            }
            // Steps 5c–5f: every blob named and present, the snapshot built, the name recorded,
            // all under one hold of gc.lock shared (I4).
            let gc = self.store.gc_shared()?;
            for (ready, _lock) in fetched {
                ready.name(self.store, &gc)?;
            }
            // One pin per file, in order, by construction of `pins`.
            let published = match recorded(model).pinned(&pins) {
                Some(pinned) => reference_existing(self.store, name, pinned)?,
                None => None,
            };
            match published {
                Some(p) => {
                    drop(gc);
                    return Ok(Pulled::new(name, p, downloaded));
                }
                // A file that was already here went away before the lock (gc, rm): again.
                None => last_missing = Some(name.clone()),
            }
        }
        Err(PullError::Store(StoreError::NotInStore {
            name: last_missing.unwrap_or_else(|| name.clone()),
            close: Vec::new(),
        }))
    }

    /// `--check` (or `check = true`) of a model of several files, before any of its new blobs is
    /// named: every file is staged under its name in a private directory in `tmp/` (hard links
    /// to the checked temp blobs and to the blobs already present), and every ONNX file of the
    /// model is loaded from there, so the files it opens by name (ONNX external data) are next to
    /// it. A model that does not load publishes nothing: its temp blobs are deleted when
    /// `fetched` is dropped, and the same pull fails the same way next time (a blob named before
    /// the check would let the next run's fast path hand the model out unchecked). Under a crash
    /// mid-check the temp blobs and the staging directory are left to gc, and nothing is named.
    /// Other processes pulling the same files wait on their download locks, held until then.
    fn check_staged(
        &self,
        model: &Resolved,
        files: &[File],
        pins: &[Pin],
        fetched: &[(Box<Ready>, LockGuard)],
        progress: &mut dyn Progress,
    ) -> Result<(), PullError> {
        if !(self.check || model.model.check) {
            return Ok(());
        }
        let mut sources = Vec::with_capacity(files.len());
        let mut listed = Vec::with_capacity(files.len());
        for (f, &Pin { blake3: id, size }) in files.iter().zip(pins) {
            let source = fetched
                .iter()
                .find(|(ready, _)| ready.blake3() == id)
                .map_or_else(
                    || self.store.layout().blob(&id),
                    |(r, _)| r.path().to_owned(),
                );
            sources.push((f.path.clone(), source));
            listed.push(crate::store::snapshot::ModelFile {
                path: f.path.clone(),
                blake3: id,
                size,
            });
        }
        let tree = crate::store::snapshot::TreeId::of(&listed);
        let staged = crate::store::snapshot::stage(self.store, &tree, &sources)?;
        crate::onnx::check_dir_before_publish(
            &staged.dir(),
            &model.model,
            self.check,
            model.name.as_str(),
            progress,
        )
        .map_err(StoreError::from)?;
        Ok(())
    }

    /// One file: present already (by pin and presence), or downloaded into a checked, durable,
    /// read-only temp blob while holding its download lock (steps 2–5b).
    fn fetch_file(&mut self, job: &Job<'_>, bar: &mut Bar<'_>) -> Result<Fetched, PullError> {
        let store = self.store;
        if let Some(id) = present(store, job)? {
            return Ok(Fetched::Present(id));
        }
        let key = DownloadKey::of(job.file).ok_or_else(|| PullError::NoDigest {
            name: job.name.clone(),
            catalogue: job.catalogue(),
        })?;
        if job.file.urls.is_empty() {
            return Err(PullError::NoUrl {
                name: job.name.clone(),
                catalogue: job.catalogue(),
            });
        }
        // Step 2: one downloader per file; the others wait here, then find it published.
        // Lock order (crate::sys::lock): this blob lock first; gc.lock, then manifest.lock, are taken
        // while it is held.
        // While another process downloads it: who it is, then a live bar of its progress, read
        // from the record it keeps in the lock file (refreshed about once a second).
        let mut shown: Option<u64> = None;
        let lock = store.download_lock(
            &key.lock_path(store.layout()),
            self.lock_wait,
            &mut |holder| {
                let got = holder
                    .as_ref()
                    .and_then(|h| partial_len(store, h))
                    .unwrap_or(0);
                match shown {
                    None => {
                        let total = holder.as_ref().and_then(|h| h.expected_size);
                        bar.get().notice(&waiting(store, &job.label, holder));
                        bar.start(&format!("{} (another process)", job.label), total);
                        bar.get().resumed(got);
                    }
                    Some(before) if got > before => bar.get().advance(got - before),
                    Some(_) => {}
                }
                shown = Some(got.max(shown.unwrap_or(0)));
            },
        )?;
        if let Some(id) = present(store, job)? {
            return Ok(Fetched::Present(id));
        }
        // Steps 3–5b.
        let temp = start_or_resume(store, job, &key.stem(), bar)?;
        let ready = self.try_sources(job, &key.stem(), temp, &lock, bar)?;
        Ok(Fetched::Ready(Box::new(ready), lock))
    }

    /// Steps 3–5b for each URL in order, until one gives bytes that check out. A transport
    /// failure keeps the bytes for the next URL (or the next run); a mismatch discards them.
    fn try_sources(
        &mut self,
        job: &Job<'_>,
        stem: &str,
        mut temp: Option<TempBlob>,
        lock: &LockGuard,
        bar: &mut Bar<'_>,
    ) -> Result<Ready, PullError> {
        let (store, name, urls, want) = (self.store, job.name, &job.file.urls, job.file.expect());
        let mut failures = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let more_sources = i + 1 < urls.len();
            // A tag (`oci://…:TAG`) becomes the blob of this file in its manifest, checked
            // against the pins first.
            let source = match Source::parse(url, job.base_dir, job.manifest)
                .and_then(|s| self.fetcher.by_tag(s, &job.file.path, &want))
            {
                Ok(s) => s,
                Err(e) => {
                    failures.push(Failure::Fetch(url.clone(), e));
                    continue;
                }
            };
            let mut blob = match temp.take() {
                Some(t) => t,
                None => TempBlob::create_for(store, stem, &want)?,
            };
            // Where this source starts: after a source whose bytes were discarded, at 0 again.
            bar.get().restarted(blob.len());
            let mut holder = Holder::me();
            holder.partial = Some(blob.path().path());
            holder.expected_size = want.size();
            lock.record(&holder);

            if let Err(e) =
                self.fetcher
                    .fetch_from(&source, &mut blob, want.size(), more_sources, bar.get())
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
                if more_sources {
                    bar.get()
                        .notice(&format!("{}: {url}: {e}; trying the next URL", job.label));
                }
                if !e.discards_partial() {
                    temp = Some(blob); // the next mirror continues from here
                } // else dropping `blob` deletes it: its bytes are wrong, never resumed
                failures.push(Failure::Fetch(url.clone(), e));
                continue;
            }
            // Steps 4–5b. A mismatch deletes the temp blob inside `prepare`.
            match prepare(store, blob, &want) {
                Ok(ready) => {
                    // Pre-publish check of a single-file model (--check, `check = true`), on
                    // bytes that passed step 4 (so are the pinned content) and are open for
                    // reading only (ONNX Runtime on Windows shares no file with a writer): a
                    // model that does not load is deleted (dropping `ready`), and no other URL
                    // can serve other pinned bytes. A model of several files is checked once all
                    // are here, before any is named (`check_staged`).
                    if job.of == 1 {
                        let what = format!("{name} from {url}");
                        let checked = crate::onnx::check_before_publish(
                            &ready.path().path(),
                            job.model,
                            self.check,
                            &what,
                            bar.get(),
                        );
                        if let Err(e) = checked {
                            drop(ready);
                            return Err(StoreError::from(e).into());
                        }
                    }
                    return Ok(ready);
                }
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
                    // A finished download that could not be made durable is kept for the next
                    // run (which re-hashes it), unless the disk is full.
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

/// One file of a pull, with what messages need to name it.
struct Job<'a> {
    name: &'a ModelName,
    /// The whole model (its format and `check` decide the pre-publish check).
    model: &'a Model,
    file: &'a File,
    /// How many files the model has.
    of: usize,
    /// `name` for a single-file model, `name (2/3: model.onnx.data)` for one of several.
    label: String,
    base_dir: Option<&'a std::path::Path>,
    manifest: &'a std::path::Path,
}

impl<'a> Job<'a> {
    fn new(model: &'a Resolved, file: &'a File, n: usize, of: usize) -> Self {
        let label = if of == 1 {
            model.name.to_string()
        } else {
            format!("{} ({}/{of}: {})", model.name, n + 1, file.path)
        };
        Job {
            name: &model.name,
            model: &model.model,
            file,
            of,
            label,
            base_dir: model.base_dir(),
            manifest: &model.manifest,
        }
    }

    fn catalogue(&self) -> String {
        self.manifest.display().to_string()
    }
}

/// What [`Puller::fetch_file`] got.
enum Fetched {
    /// The blob is in the store already.
    Present(Pin),
    /// Downloaded and checked; named later under gc.lock. The download lock is held until then,
    /// so another process pulling the same file waits and then finds it published.
    Ready(Box<Ready>, LockGuard),
}

/// The file's BLAKE3 and size if its blob is in `blobs/` now (checked again under gc.lock
/// before the name is recorded), and every upstream digest the file pins is that blob's
/// ([`key::checked_pin`]).
fn present(store: &Store, job: &Job<'_>) -> Result<Option<Pin>, PullError> {
    let Some(pin) = key::checked_pin(store, job.name, job.file, job.of)? else {
        return Ok(None);
    };
    Ok(match store.blob_state(&pin.blake3, Some(pin.size))? {
        BlobState::Present { .. } => Some(pin),
        _ => None,
    })
}

/// Step 3: continue the most advanced dead partial of this download, if there is one; the
/// first source creates a fresh temp blob otherwise.
fn start_or_resume(
    store: &Store,
    job: &Job<'_>,
    stem: &str,
    bar: &mut Bar<'_>,
) -> Result<Option<TempBlob>, PullError> {
    let want = job.file.expect();
    let temp = resume::claim(store, stem, &want)?;
    if let Some(t) = &temp {
        bar.get().notice(&format!(
            "{}: taking over the partial download of a process that is gone: resuming at {}",
            job.label,
            crate::sys::progress::at_byte(t.len(), want.size())
        ));
    }
    bar.start(&job.label, want.size());
    if let Some(t) = &temp {
        bar.get().resumed(t.len());
    }
    Ok(temp)
}

/// The progress receiver of one pull: [`Progress::finish`] is called once for every
/// [`Bar::start`], on every path out (success, error, early return).
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
        if self.started {
            self.progress.finish();
        }
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

/// The model the store records: the catalogue's, with relative URLs made absolute (they were
/// relative to the catalogue, not to the store), and no `check` (an instruction to pull, not a
/// fact about the stored model).
fn recorded(model: &Resolved) -> Model {
    let mut recorded = model.model.clone();
    recorded.check = false;
    let Some(base) = model.base_dir() else {
        return recorded;
    };
    recorded.for_each_url(|url| {
        if !url.contains("://") && !std::path::Path::new(url.as_str()).is_absolute() {
            let abs = std::path::absolute(base.join(url.as_str()))
                .unwrap_or_else(|_| base.join(url.as_str()));
            *url = abs.display().to_string();
        }
    });
    recorded
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

/// How many bytes the partial a lock holder names holds so far. The record is another process's
/// (any member may write a lock file), so only its file name is used, and only inside `tmp/`:
/// a record naming any other path says nothing.
fn partial_len(store: &Store, holder: &Holder) -> Option<u64> {
    let name = holder.partial.as_ref()?.file_name()?;
    if !crate::sys::fsx::is_leaf(name) {
        return None;
    }
    let meta = crate::sys::fsx::stat(&store.layout().tmp().join(name)).ok()??;
    meta.is_file().then(|| meta.len())
}

/// "waiting for NAME: pid 4242 (ana@host) since …, 12 MiB of 40 MiB so far".
fn waiting(store: &Store, name: &str, holder: Option<Holder>) -> String {
    let Some(h) = holder else {
        return format!("waiting for another process that is downloading {name}");
    };
    let got = partial_len(store, &h);
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
