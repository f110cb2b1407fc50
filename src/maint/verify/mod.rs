//! `verify`: re-hash blobs, quarantine the ones whose bytes are not their name (docs/design.md#maintenance).
//! `beaker store verify` and `cargo xtask verify` both call [`run`].
//!
//! Detects a breach of **I1** (a blob holds exactly the bytes its name says) caused from outside
//! beaker — a disk error, a user who chmodded a blob and edited it — and repairs the store's view:
//! the bad blob moves to `quarantine/<hex>.<unix seconds>`, so its names read as absent (`path`
//! exits 3) and the next add/pull publishes good bytes again. Quarantine is a no-clobber rename
//! (`fsx::rename_exclusive`), never a delete: the bytes stay for inspection until gc expires them.
//!
//! **Hashing** runs several files at once (a small pool of scoped threads), and large files in
//! parallel internally (`blake3::Hasher::update_rayon` on 16 MiB slices). Files are opened with
//! `O_NOFOLLOW` and judged by `fstat`. Files of 64 KiB and more are memory-mapped from that
//! descriptor ([`crate::sys::fsx::mapped`]), which saves the kernel's copy into a read buffer; not with
//! blake3's `update_mmap_rayon`, which opens the path following symlinks and dies of SIGBUS when
//! the file is truncated while mapped — exactly the damage verify exists to survive. Our map
//! answers such a fault with zeros and reports the blob as changed while being read: truncated
//! (quarantined) when it shrank, unreadable when it only faulted. Smaller files are streamed.
//!
//! **Quarantine and concurrency.** Hashing runs with no lock (it can take minutes and must not
//! stall publishers). Moving a corrupt blob takes `locks/gc.lock` *exclusively*, not the blob's
//! own `locks/<hex>.lock`: `add` and the fast path of `pull` never take the blob lock, but every
//! publish holds gc.lock shared from naming a blob to recording it, and gc/rm hold it
//! exclusively. Under gc.lock exclusive nothing can remove or re-create `blobs/<hex>`, so after
//! checking that the path still names the inode we hashed (gc + a fresh publish could have
//! replaced it with good bytes meanwhile; then it is re-hashed), the rename moves exactly the bad
//! file. The hold lasts milliseconds per corrupt blob, and only when something is corrupt.

pub mod deep;
mod hash;
mod snapshots;

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::model::digest::Blake3;
use crate::model::name::ModelName;
use crate::store::{BlobState, Store, StoreError, BLOB_MODE};
use crate::sys::error::Category;
use crate::sys::fsx::{self, Rooted};
use crate::sys::progress::Progress;

use hash::{check, hash_all, Checked};

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only the blobs of these names; empty = every blob in the store.
    pub names: Vec<ModelName>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("not in the store: {}; nothing was verified (`beaker store ls` lists what it holds)", names.join(", "))]
    UnknownNames { names: Vec<String> },
    /// The run completed and found damage (exit 1); the outcome has the details.
    #[error("verify found {corrupt} corrupt, {missing} missing and {unreadable} unreadable blobs in {}{}", store.display(), unrepaired_note(*not_repaired))]
    Found {
        store: std::path::PathBuf,
        corrupt: usize,
        missing: usize,
        unreadable: usize,
        not_repaired: usize,
    },
}

/// ", and N problems it could not repair" when there are any.
fn unrepaired_note(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(", and {n} problems it could not repair (no write access)"),
    }
}

impl From<crate::sys::error::IoError> for Error {
    fn from(e: crate::sys::error::IoError) -> Self {
        Error::Store(e.into())
    }
}

impl Error {
    pub fn category(&self) -> Category {
        match self {
            Error::Store(e) => e.category(),
            Error::UnknownNames { .. } => Category::NotPresent,
            Error::Found { .. } => Category::Failed,
        }
    }
}

/// The result of a verify run; serializes to the `--json` shape of docs/design.md#cli plus extra fields
/// (docs/maint.md).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Blobs hashed.
    pub checked: usize,
    /// Blobs whose bytes match their name.
    pub ok: usize,
    pub corrupt: Vec<Corrupt>,
    /// Names whose blob is absent.
    pub missing: Vec<ModelName>,
    /// Blobs with the right bytes but not mode 0444 (anyone with write access could change them).
    pub wrong_mode: Vec<WrongMode>,
    /// Blobs that could not be read at all (left in place).
    pub unreadable: Vec<Unreadable>,
    pub bytes_hashed: u64,
    /// Snapshots (model directories) looked at.
    pub snapshots_checked: usize,
    /// Names whose snapshot did not hold exactly their blobs and was built again from them.
    pub snapshots_rebuilt: Vec<ModelName>,
    /// Names with a blob missing (or just quarantined) whose snapshot was taken out of use, so no
    /// path to bad or partial content remains; the next pull or add builds it again.
    pub snapshots_retired: Vec<ModelName>,
    /// Names that `referrers/` (the index `rm` reads) did not list under a blob their record
    /// uses, listed again: `"NAME BLAKE3"`. An index that under-states would let `rm` delete a
    /// blob another name still uses; beaker never leaves one, so any entry here means the
    /// index was damaged (by hand, or by a beaker older than format 4 still running).
    pub referrers_repaired: Vec<String>,
    /// Damage found that this user could not repair (the store is read-only here, or not
    /// writable by them): run `verify` again with write access.
    pub not_repaired: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Corrupt {
    pub blake3: Blake3,
    /// Where the bad file went; `None` if it could not be moved (see `quarantine_error`).
    pub quarantined_to: Option<PathBuf>,
    pub problem: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WrongMode {
    pub blake3: Blake3,
    pub mode: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub blake3: Blake3,
    pub error: String,
}

impl Outcome {
    /// Nothing corrupt, missing or unreadable (exit 0).
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
            && self.missing.is_empty()
            && self.unreadable.is_empty()
            && self.not_repaired.is_empty()
    }

    /// `Ok` when clean, else the [`Error::Found`] every front end reports (exit 1).
    pub fn into_result_for(&self, store: &Store) -> Result<(), Error> {
        if self.is_clean() {
            return Ok(());
        }
        Err(Error::Found {
            store: store.root().to_owned(),
            corrupt: self.corrupt.len(),
            missing: self.missing.len(),
            unreadable: self.unreadable.len(),
            not_repaired: self.not_repaired.len(),
        })
    }
}

/// Verifies `store` (or the blobs of `opts.names`), quarantining what is corrupt: select what to
/// check → hash it (no lock) → judge the results and quarantine the bad.
pub fn run(store: &Store, opts: &Options, progress: &mut dyn Progress) -> Result<Outcome, Error> {
    let selection = select(store, &opts.names)?;
    let total: u64 = selection.work.iter().map(|w| w.2).sum();
    progress.start(
        &format!("verifying {} blobs", selection.work.len()),
        Some(total),
    );
    let results = hash_all(&selection.work, &selection.expected, progress);
    progress.finish();
    let names = selection.names.clone();
    let mut out = judge(store, selection, results);
    // After the blobs (a quarantined blob makes its snapshots stale): the model directories.
    snapshots::check_and_repair(store, &names, &mut out)?;
    match store.repair_referrers(&names, opts.names.is_empty()) {
        Ok(repaired) => out.referrers_repaired = repaired,
        Err(StoreError::NotWritable { .. }) => {
            for lost in store.referrers_lost(&names)? {
                out.not_repaired
                    .push(format!("referrers/ does not list {lost} (name, blob)"));
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(out)
}

/// What one run checks.
struct Selection {
    /// What each blob should be, by the manifest (for "truncated" messages).
    expected: BTreeMap<Blake3, u64>,
    /// The blobs to hash, with their paths and sizes, largest first (so one big file does not
    /// start last and finish alone).
    work: Vec<(Blake3, Rooted, u64)>,
    /// Selected names whose blob is absent.
    missing: Vec<ModelName>,
    /// The names whose snapshots are checked after the blobs.
    names: Vec<ModelName>,
}

/// Every blob in `blobs/` (or only those of `names`), and which selected names miss their blob.
fn select(store: &Store, names: &[ModelName]) -> Result<Selection, Error> {
    let manifest = store.read_manifest()?;
    let expected: BTreeMap<Blake3, u64> = manifest
        .models
        .values()
        .flat_map(|r| r.model.files())
        .map(|f| (f.blob.blake3, f.blob.size))
        .collect();
    let (names, targets): (Vec<&ModelName>, BTreeSet<Blake3>) = if names.is_empty() {
        let mut ids = BTreeSet::new();
        for (file, _) in crate::store::files_in(&store.layout().blobs())? {
            if let Ok(id) = Blake3::from_hex(&file) {
                ids.insert(id);
            }
        }
        (manifest.models.keys().collect(), ids)
    } else {
        let unknown = manifest.unknown(names);
        if !unknown.is_empty() {
            return Err(Error::UnknownNames { names: unknown });
        }
        let ids = names
            .iter()
            .filter_map(|n| manifest.models.get(n))
            .flat_map(|r| r.blobs())
            .collect();
        (names.iter().collect(), ids)
    };
    let mut missing = Vec::new();
    for name in &names {
        let Some(record) = manifest.models.get(*name) else {
            continue;
        };
        for id in record.model.blobs() {
            if store.blob_state(&id, None)? == BlobState::Absent && !missing.contains(*name) {
                missing.push((*name).clone());
            }
        }
    }
    let mut work: Vec<(Blake3, Rooted, u64)> = Vec::new();
    for id in targets {
        let path = store.layout().blob(&id);
        if let Some(m) = fsx::stat(&path).map_err(StoreError::from)? {
            work.push((id, path, m.len()));
        }
    }
    work.sort_by_key(|w| std::cmp::Reverse(w.2));
    Ok(Selection {
        expected,
        work,
        missing,
        names: names.into_iter().cloned().collect(),
    })
}

/// Turns the hash results into the outcome, quarantining the bad blobs.
fn judge(store: &Store, selection: Selection, results: Vec<Checked>) -> Outcome {
    let mut out = Outcome {
        missing: selection.missing,
        ..Outcome::default()
    };
    let mut bad = Vec::new();
    for ((id, _, len), checked) in selection.work.iter().zip(results) {
        match checked {
            Checked::Vanished => continue, // removed by gc/rm meanwhile: nothing to judge
            Checked::Good { mode } => {
                out.ok += 1;
                if mode & 0o7777 != BLOB_MODE {
                    out.wrong_mode.push(WrongMode {
                        blake3: *id,
                        mode: format!("{:04o}", mode & 0o7777),
                    });
                }
            }
            Checked::Bad { problem, dev, ino } => bad.push((*id, problem, dev, ino)),
            Checked::Unreadable(e) => out.unreadable.push(Unreadable {
                blake3: *id,
                error: format!("{e}: {}", e.source),
            }),
        }
        out.checked += 1;
        out.bytes_hashed += len;
    }
    if !bad.is_empty() {
        quarantine_all(store, bad, &selection.expected, &mut out);
    }
    out
}

/// Moves each bad blob into quarantine under gc.lock exclusive (see the module doc).
fn quarantine_all(
    store: &Store,
    bad: Vec<(Blake3, String, u64, u64)>,
    expected: &BTreeMap<Blake3, u64>,
    out: &mut Outcome,
) {
    // Lock order (crate::sys::lock): gc.lock only; verify takes no blob or manifest lock.
    let guard = store.gc_exclusive(&mut |_| {});
    for (id, problem, dev, ino) in bad {
        let mut record = Corrupt {
            blake3: id,
            quarantined_to: None,
            problem,
            quarantine_error: None,
        };
        if let Err(e) = &guard {
            record.quarantine_error = Some(format!("{e}"));
            out.corrupt.push(record);
            continue;
        }
        let path = store.layout().blob(&id);
        let same = match fsx::stat(&path) {
            Ok(Some(m)) => m.dev() == dev && m.ino() == ino,
            _ => {
                out.checked -= 1; // gone meanwhile (gc/rm): nothing left to judge
                continue;
            }
        };
        if !same {
            // Replaced since we hashed it (removed, then published afresh): judge the new file.
            match check(&id, &path, expected.get(&id).copied(), &mut |_| {}) {
                Checked::Good { .. } => {
                    out.ok += 1;
                    continue;
                }
                Checked::Bad { problem, .. } => record.problem = problem,
                Checked::Vanished => {
                    out.checked -= 1;
                    continue;
                }
                Checked::Unreadable(e) => {
                    out.unreadable.push(Unreadable {
                        blake3: id,
                        error: format!("{e}: {}", e.source),
                    });
                    continue;
                }
            }
        }
        match move_to_quarantine(store, &id, &path) {
            Ok(to) => record.quarantined_to = Some(to),
            Err(e) => record.quarantine_error = Some(format!("{e}")),
        }
        out.corrupt.push(record);
    }
}

/// No-clobber rename of `path` to a fresh `quarantine/<hex>.<secs>[-n]`, then fsync both dirs.
fn move_to_quarantine(store: &Store, id: &Blake3, path: &Rooted) -> Result<PathBuf, StoreError> {
    let layout = store.layout();
    let w = |e| StoreError::writing(store.root(), e);
    store
        .make_dir(&layout.quarantine(), store.config().dir_mode(), false)
        .map_err(w)?;
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut attempt = 0;
    let to = loop {
        let to = layout.quarantine_entry(id, secs, attempt);
        match fsx::rename_exclusive(path, &to) {
            Ok(()) => break to,
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 1000 => attempt += 1,
            Err(e) => return Err(w(e)),
        }
    };
    fsx::sync_dir(&layout.quarantine())?;
    fsx::sync_dir(&layout.blobs())?;
    Ok(to.path())
}

impl std::fmt::Display for Outcome {
    /// The human report: every problem on its own line, then a summary.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.corrupt {
            match (&c.quarantined_to, &c.quarantine_error) {
                (Some(to), _) => writeln!(
                    f,
                    "corrupt blob {} ({}): moved to {}; the next add/pull restores it",
                    c.blake3.to_hex(),
                    c.problem,
                    to.display()
                )?,
                (None, e) => writeln!(
                    f,
                    "corrupt blob {} ({}): could not quarantine it: {}",
                    c.blake3.to_hex(),
                    c.problem,
                    e.as_deref().unwrap_or("unknown error")
                )?,
            }
        }
        for u in &self.unreadable {
            writeln!(f, "unreadable blob {}: {}", u.blake3.to_hex(), u.error)?;
        }
        for n in &self.missing {
            writeln!(
                f,
                "missing: {n} (its blob is absent; `beaker store pull {n}` or add restores it)"
            )?;
        }
        for n in &self.snapshots_rebuilt {
            writeln!(
                f,
                "snapshot of {n} did not hold exactly its blobs: rebuilt from them"
            )?;
        }
        for n in &self.snapshots_retired {
            writeln!(
                f,
                "snapshot of {n} taken out of use (a blob of it is missing, or was corrupt and is now in quarantine/); `beaker store pull {n}` or add restores it"
            )?;
        }
        for r in &self.referrers_repaired {
            writeln!(
                f,
                "referrers/ did not list {r} (name, blob): listed again, so `rm` keeps that blob"
            )?;
        }
        for n in &self.not_repaired {
            writeln!(
                f,
                "{n}: not repaired, this user cannot write the store here; run `beaker store verify` with write access"
            )?;
        }
        for w in &self.wrong_mode {
            writeln!(
                f,
                "blob {} has mode {} instead of 0444 (content is correct; `chmod 0444` it)",
                w.blake3.to_hex(),
                w.mode
            )?;
        }
        write!(
            f,
            "checked {} blobs ({}): {} ok, {} corrupt, {} missing",
            self.checked,
            humansize::format_size(self.bytes_hashed, humansize::BINARY),
            self.ok,
            self.corrupt.len(),
            self.missing.len()
        )
    }
}
