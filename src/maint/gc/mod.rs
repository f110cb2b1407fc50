//! `gc`: mark and sweep (docs/design.md#maintenance). Deletes blobs no root references, stale temp files and old
//! quarantine entries; `beaker store gc` and `cargo xtask gc` both call [`collect`].
//!
//! Keeps **I4**: everything happens under `locks/gc.lock` held exclusively ([`GcExclusive`]).
//! Publishers hold that lock shared from before they name a blob until its manifest entry is
//! written, so the roots read under it are complete: no blob can be named-but-unrecorded while
//! gc decides. A long download holds only its blob lock, never gc.lock, so it never blocks gc.
//!
//! Steps:
//! 1. Load the `--keep` catalogues (bad input fails before anything is locked or deleted).
//! 2. Check the store is writable, so a read-only store fails before any deletion, not midway.
//! 3. Take gc.lock exclusively; read the store manifest. If it does not parse, stop: without
//!    roots every blob would look unreferenced, so nothing is deleted and the file is named.
//!    Each keep-entry adds its blob to the roots: by its `blake3`, or, for an entry that pins
//!    only `sha256`/`md5`, every present blob the digest index maps one of them to
//!    ([`crate::store::index`]; read under gc.lock, so no publisher is between checking a blob
//!    and recording it). Keep-entries that match no blob in the store are reported.
//!    With a budget (`--max-size`, `--older-than`; docs/design.md#eviction), least recently used names that
//!    are neither pinned nor in use are evicted here: removed from the manifest like `rm` does
//!    ([`evict`]), so the sweep below frees exactly their unshared blobs.
//! 4. Sweep `blobs/` (the sweep `rm` uses too), then drop the digest-index records whose blob
//!    is gone (including the blobs just swept) or that do not read back, the `referrers/` lists
//!    of blobs no name uses (see `crate::store` `referrers`), and the use records and pins of
//!    names the manifest no longer holds.
//! 5. Under `locks/manifest.lock` (whose holders write the manifest's temp file in `tmp/`),
//!    delete temp files older than `tmp_age` whose writer is gone (see [`crate::store::partials`]).
//! 6. Delete quarantine entries older than [`QUARANTINE_AGE`].
//!
//! `dry_run` does all the looking, under the same locks, and deletes nothing: it reports exactly
//! the set a real run would delete at that moment.

pub mod evict;

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

use crate::model::digest::Blake3;
use crate::model::entry::Known;
use crate::model::manifest::{Manifest, ManifestError};
use crate::model::name::ModelName;
use crate::store::partials::{self, Writer};
use crate::store::{quarantined_at, BlobState, Candidates, GcExclusive, Store, StoreError};
use crate::sys::error::Category;
use crate::sys::fsx;
use crate::sys::lock::{Mode, Wait};
use crate::sys::progress::Progress;

/// Quarantined blobs are kept this long for inspection, then gc removes them.
pub const QUARANTINE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// `--tmp-age` default: a partial download untouched for a day is not coming back.
pub const DEFAULT_TMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// What to collect.
#[derive(Debug, Clone)]
pub struct Options {
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// Temp files untouched for at least this long (and not held by a live writer) are removed.
    pub tmp_age: Duration,
    /// Catalogues whose blobs count as roots too (`--keep`).
    pub keep: Vec<PathBuf>,
    /// Which names to evict first (`--max-size`, `--older-than`, `--min-age`); the default
    /// evicts nothing.
    pub budget: evict::Budget,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dry_run: false,
            tmp_age: DEFAULT_TMP_AGE,
            keep: Vec::new(),
            budget: evict::Budget::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("refusing to gc {}: its manifest cannot be read, so gc cannot tell which blobs are in use; nothing was deleted (fix or restore the manifest, then run gc again)", store.display())]
    Roots {
        store: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("cannot use --keep catalogue {}; nothing was deleted", path.display())]
    Keep {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
}

impl From<crate::sys::error::IoError> for Error {
    fn from(e: crate::sys::error::IoError) -> Self {
        Error::Store(e.into())
    }
}

impl Error {
    pub fn category(&self) -> Category {
        match self {
            Error::Store(e) | Error::Roots { source: e, .. } => e.category(),
            Error::Keep { source, .. } => source.category(),
        }
    }
}

/// What gc removed (or, with `dry_run`, would remove). Serializes to the `--json` shape of
/// docs/design.md#cli plus a few extra fields (docs/maint.md).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub dry_run: bool,
    /// Unreferenced blobs removed; JSON: a list of hex digests.
    #[serde(serialize_with = "ids_only")]
    pub removed_blobs: Vec<(Blake3, u64)>,
    /// Bytes freed by everything removed (blobs, temp files, quarantine).
    pub freed_bytes: u64,
    /// Temp files removed (names in `tmp/`).
    pub removed_partials: Vec<String>,
    /// Number of blobs kept because a root references them.
    pub kept_blobs: usize,
    /// Quarantine entries removed (names in `quarantine/`).
    pub removed_quarantine: Vec<String>,
    /// Temp files old enough to go but kept because a live process still writes them.
    pub live_partials: Vec<String>,
    /// Unreferenced blobs spared because they were just published into a lockless store.
    #[serde(serialize_with = "ids_only")]
    pub deferred_blobs: Vec<(Blake3, u64)>,
    /// Entries in `blobs/`, `tmp/`, `index/` that beaker did not make; left alone.
    pub foreign: Vec<String>,
    /// `--keep` entries (model names) that match no blob in the store: not pulled here, or pinned
    /// only by sha256/md5 that the digest index does not map to a present blob.
    pub keep_unmatched: Vec<String>,
    /// Snapshots (model directories) no recorded name uses, removed (tree ids).
    pub removed_snapshots: Vec<String>,
    /// Digest-index records dropped because their blob is gone or they do not read back (names in
    /// `index/`).
    pub removed_index: Vec<String>,
    /// Names evicted by the budget, least recently used first.
    pub evicted: Vec<evict::Evicted>,
    /// The `--max-size` in force, if any.
    pub max_size: Option<u64>,
    /// Bytes of the blobs that remain referenced after this run (with a budget).
    pub remaining_bytes: Option<u64>,
    /// How far the store stays over `max_size` because every name left is pinned or in use
    /// (0: the budget was met).
    pub over_budget: u64,
    /// Names spared by the budget because they are in use (used within `min_age`).
    pub spared_in_use: Vec<ModelName>,
    /// Names spared by the budget because they are pinned.
    pub spared_pinned: Vec<ModelName>,
    /// Use records and pins of names the store no longer holds (`uses/…`, `pins/…`).
    pub removed_records: Vec<String>,
}

/// `a, b` or `none`.
fn names(list: &[ModelName]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn ids_only<S: Serializer>(v: &[(Blake3, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|(id, _)| id))
}

/// Runs gc on `store`.
pub fn collect(
    store: &Store,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Outcome, Error> {
    // 1. Extra roots first: a typo in --keep must not cost blobs.
    let mut keep = Vec::with_capacity(opts.keep.len());
    for path in &opts.keep {
        keep.push(Manifest::load(path).map_err(|source| Error::Keep {
            path: path.clone(),
            source,
        })?);
    }
    // 2. A read-only store fails here, with nothing deleted.
    if !opts.dry_run {
        store.ensure_writable()?;
    }
    // 3. Roots under gc.lock exclusive (I4). Lock order (crate::sys::lock): gc.lock, then
    //    manifest.lock in sweep_temp; gc takes no blob lock.
    let mut told = false;
    let gc = store.gc_exclusive(&mut |holder| {
        if !std::mem::replace(&mut told, true) {
            progress.notice(&format!(
                "waiting for {} (held by {})",
                store.layout().gc_lock().display(),
                holder.map_or_else(|| "another process".into(), |h| h.to_string())
            ));
        }
    })?;
    collect_locked(store, &gc, opts, &keep, true)
}

/// Steps 3–6 with gc.lock already held exclusively (`gc`): eviction after a publish
/// ([`evict::after_publish`]) runs this with `tidy = false`, which leaves temp files and
/// quarantine alone (steps 5 and 6).
pub(crate) fn collect_locked(
    store: &Store,
    gc: &GcExclusive,
    opts: &Options,
    keep: &[Manifest],
    tidy: bool,
) -> Result<Outcome, Error> {
    let mut manifest = store.read_manifest().map_err(|source| Error::Roots {
        store: store.root().to_owned(),
        source,
    })?;
    let mut kept = BTreeSet::new();
    let keep_unmatched = keep_roots(store, keep, &mut kept)?;
    // 3b. Eviction: the names go from the manifest first (a dry run only pretends), so the
    //     sweep below sees their blobs unreferenced.
    let mut evicted = Vec::new();
    let mut budget = None;
    if opts.budget.evicts() {
        let plan = evict::plan(store, &manifest, &kept, &opts.budget)?;
        let going: Vec<ModelName> = if opts.dry_run {
            plan.evict.iter().map(|(e, _)| e.name.clone()).collect()
        } else {
            evict::apply(store, gc, &plan, opts.budget.min_age(store))?
        };
        for (e, _) in &plan.evict {
            if going.contains(&e.name) {
                manifest.models.remove(&e.name);
                evicted.push(e.clone());
            }
        }
        budget = Some(plan);
    }
    let mut roots = manifest.roots();
    roots.extend(kept);

    // 4. Snapshots no name uses, then blobs, then the index records of blobs that are gone.
    let snapshots = crate::store::snapshot::sweep(store, &manifest.trees(), gc, opts.dry_run)?;
    let swept = store.sweep_blobs(gc, &roots, Candidates::All, opts.dry_run)?;
    let going: BTreeSet<Blake3> = swept.removed.iter().map(|(id, _)| *id).collect();
    let index = store.sweep_index(gc, &going, opts.dry_run)?;
    // The reverse index's lists of blobs no name uses any more (stale markers only).
    store.sweep_referrers(gc, &manifest.roots(), opts.dry_run)?;
    let (removed_records, foreign_records) =
        crate::store::uses::sweep(store, &manifest, opts.dry_run)?;
    let mut out = Outcome {
        dry_run: opts.dry_run,
        kept_blobs: swept.kept,
        freed_bytes: swept.removed.iter().map(|(_, n)| n).sum(),
        removed_blobs: swept.removed,
        deferred_blobs: swept.deferred,
        foreign: swept
            .foreign
            .iter()
            .map(|n| format!("blobs/{n}"))
            .chain(index.foreign.iter().map(|n| format!("index/{n}")))
            .chain(snapshots.foreign.iter().map(|n| format!("snapshots/{n}")))
            .chain(foreign_records)
            .collect(),
        removed_snapshots: snapshots.removed.iter().map(|t| t.to_hex()).collect(),
        keep_unmatched,
        removed_index: index.removed,
        evicted,
        max_size: opts.budget.max_size,
        removed_records,
        ..Outcome::default()
    };
    if let Some(plan) = budget {
        out.remaining_bytes = Some(plan.remaining_bytes);
        out.over_budget = plan.over_budget;
        out.spared_in_use = plan.in_use;
        out.spared_pinned = plan.pinned;
    }
    if !tidy {
        return Ok(out);
    }
    // 5. Temp files.
    sweep_temp(store, gc, opts, &mut out)?;
    // 6. Quarantine.
    sweep_quarantine(store, opts.dry_run, &mut out)?;
    Ok(out)
}

/// Adds the blobs of every keep-entry to `roots` and returns the names of the entries that match
/// no blob in the store (sorted, each once).
fn keep_roots(
    store: &Store,
    keep: &[Manifest],
    roots: &mut BTreeSet<Blake3>,
) -> Result<Vec<String>, StoreError> {
    let mut unmatched = BTreeSet::new();
    for catalogue in keep {
        for (name, model) in &catalogue.models {
            // A model of several files is kept file by file; it matched if any file did.
            let mut matched = false;
            for file in model.files() {
                matched |= match file.blob.blake3() {
                    Some(id) => {
                        roots.insert(id);
                        matches!(store.blob_state(&id, None)?, BlobState::Present { .. })
                    }
                    None => {
                        let blobs = store.index_blobs(&file.expect())?;
                        let any = !blobs.is_empty();
                        roots.extend(blobs);
                        any
                    }
                };
            }
            if !matched {
                unmatched.insert(name.to_string());
            }
        }
    }
    Ok(unmatched.into_iter().collect())
}

fn sweep_temp(
    store: &Store,
    _gc: &GcExclusive,
    opts: &Options,
    out: &mut Outcome,
) -> Result<(), StoreError> {
    // Manifest writers keep their (unlocked) temp file in tmp/ while holding manifest.lock.
    // Lock order (crate::sys::lock): manifest.lock after the caller's gc.lock.
    let _manifest = store.lock(
        &store.layout().manifest_lock(),
        Mode::Exclusive,
        Wait::Forever,
        &mut |_| {},
    )?;
    let mut removed_any = false;
    for temp in partials::scan(store, opts.tmp_age)? {
        match temp.writer {
            Writer::Recent => {}
            Writer::Live => out.live_partials.push(temp.name),
            // A snapshot being built (`snap-….d`), a model staged for its check (`check-….d`) or a
            // damaged snapshot on its way out (`damaged-….d`):
            // a dead builder's directory goes once it is as old as a partial would be.
            Writer::NotAFile if is_snapshot_staging(&temp) => {
                if temp.age >= opts.tmp_age.max(partials::MIN_PROBE_AGE) {
                    if !opts.dry_run {
                        fsx::remove_tree(&temp.path)
                            .map_err(|e| StoreError::writing(store.root(), e))?;
                        removed_any = true;
                    }
                    out.removed_partials.push(temp.name);
                }
            }
            Writer::NotAFile => out.foreign.push(format!("tmp/{}", temp.name)),
            // Gone: we hold its flock, so no writer can take it over while we unlink it.
            Writer::Gone(_) | Writer::Unchecked => {
                if !opts.dry_run {
                    fsx::remove_file_if_exists(&temp.path)
                        .map_err(|e| StoreError::writing(store.root(), e))?;
                    removed_any = true;
                }
                out.freed_bytes += temp.size;
                out.removed_partials.push(temp.name);
            }
        }
    }
    if removed_any {
        fsx::sync_dir(&store.layout().tmp())?;
    }
    Ok(())
}

/// A directory in `tmp/` that `crate::store::snapshot` made (`snap-<tree>.<pid>.<nonce>.d`,
/// `damaged-<tree>.<pid>.<nonce>.d`, or `check-<tree>.<pid>.<nonce>.d` for a `--check` before
/// publishing), or a `referrers/` list being made (`refs-<blob>.….d`).
fn is_snapshot_staging(temp: &partials::TempFile) -> bool {
    ["snap-", "damaged-", "check-", "refs-"]
        .iter()
        .any(|p| temp.name.starts_with(p))
        && temp.name.ends_with(".d")
        && fsx::stat(&temp.path).is_ok_and(|m| m.is_some_and(|m| m.is_dir()))
}

fn sweep_quarantine(store: &Store, dry_run: bool, out: &mut Outcome) -> Result<(), StoreError> {
    let dir = store.layout().quarantine();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (name, _) in crate::store::files_in(&dir)? {
        let path = dir.join(&name);
        let Some(meta) = fsx::stat(&path)? else {
            continue;
        };
        // The name says when verify moved it there; anything else goes by its mtime.
        let since = quarantined_at(&name).or_else(|| u64::try_from(meta.mtime()).ok());
        // Distance in either direction: an entry dated in the future (clock skew) goes once it is
        // more than QUARANTINE_AGE ahead, as `partials::age` does for temp files.
        let old = since.is_some_and(|t| now.abs_diff(t) >= QUARANTINE_AGE.as_secs());
        if !old {
            continue;
        }
        if !dry_run {
            let removed = if meta.is_dir() {
                fsx::remove_tree(&path)
            } else {
                fsx::remove_file(&path)
            };
            removed.map_err(|e| StoreError::writing(store.root(), e))?;
        }
        out.freed_bytes += meta.len();
        out.removed_quarantine.push(name);
    }
    Ok(())
}

impl fmt::Display for Outcome {
    /// The human report: one line per thing removed, then a summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let size = |n: u64| humansize::format_size(n, humansize::BINARY);
        for e in &self.evicted {
            writeln!(
                f,
                "{} {} ({}, last used {})",
                if self.dry_run {
                    "would evict"
                } else {
                    "evicted"
                },
                e.name,
                size(e.size),
                e.last_used.as_deref().unwrap_or("never")
            )?;
        }
        for (id, n) in &self.removed_blobs {
            writeln!(f, "{verb} blob {} ({})", id.to_hex(), size(*n))?;
        }
        for name in &self.removed_partials {
            writeln!(f, "{verb} temp file tmp/{name}")?;
        }
        for name in &self.removed_quarantine {
            writeln!(f, "{verb} quarantine/{name}")?;
        }
        for name in &self.live_partials {
            writeln!(f, "kept tmp/{name}: a live process is writing it")?;
        }
        for (id, _) in &self.deferred_blobs {
            writeln!(
                f,
                "kept unreferenced blob {}: published within the last hour into a store without locks",
                id.to_hex()
            )?;
        }
        for name in &self.foreign {
            writeln!(f, "left alone {name}: not something beaker made")?;
        }
        for name in &self.removed_index {
            writeln!(
                f,
                "{verb} index/{name}: its blob is gone, or it does not read back"
            )?;
        }
        if !self.keep_unmatched.is_empty() {
            writeln!(
                f,
                "--keep: {} matched no blob in this store (not pulled here, or an md5/sha256 the digest index does not know): {}",
                self.keep_unmatched.len(),
                self.keep_unmatched.join(", ")
            )?;
        }
        if let (Some(max), Some(left)) = (self.max_size, self.remaining_bytes) {
            if self.over_budget > 0 {
                writeln!(
                    f,
                    "budget {} could not be met: {} stay referenced; every name left is in use (used within min_age: {}) or pinned ({})",
                    size(max),
                    size(left),
                    names(&self.spared_in_use),
                    names(&self.spared_pinned)
                )?;
            } else {
                writeln!(f, "within budget {}: {} referenced", size(max), size(left))?;
            }
        }
        write!(
            f,
            "{} {} ({} blobs, {} temp files, {} quarantined); kept {} referenced blobs",
            if self.dry_run { "would free" } else { "freed" },
            size(self.freed_bytes),
            self.removed_blobs.len(),
            self.removed_partials.len(),
            self.removed_quarantine.len(),
            self.kept_blobs
        )
    }
}
