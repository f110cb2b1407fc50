//! What a download is keyed by, and the fast path that avoids one (docs/design.md#publish step 1).
//!
//! An entry with a `blake3` is keyed by it: its lock is `locks/<hex>.lock` and its partials are
//! `tmp/<hex>.<pid>.<nonce>.part`. An upstream entry that pins only `sha256`/`md5` has no BLAKE3
//! until it is downloaded, so it is keyed by its strongest pinned digest, with the algorithm as
//! a prefix so the name can never be mistaken for a blob address: `locks/sha256-<hex>.lock`
//! (else `locks/md5-<hex>.lock`) and `tmp/sha256-<hex>.….part`. Every process pulling the same
//! upstream entry therefore meets on the same lock, and a later run finds the same partials.
//!
//! The fast path keeps I4 through [`reference_existing`] (presence is checked under `gc.lock`),
//! and records an upstream digest (md5, sha256) only once it was computed from the present
//! blob's bytes ([`super::claims`]).

use crate::model::digest::{Blake3, Md5, Sha256, Upstream};
use crate::model::manifest::{Entry, FileEntry};
use crate::model::name::ModelName;
use crate::store::index::Source;
use crate::store::publish::{reference_existing, Published};
use crate::store::{Layout, Store, StoreError};

use super::claims::{self, Verdict};
use super::PullError;

/// The key a download of one entry locks and names its partials by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadKey {
    Blake3(Blake3),
    Sha256(Sha256),
    Md5(Md5),
    /// A URL pulled with no digest at all (trust on first use, `pull URL --name N`): keyed by
    /// the BLAKE3 of the URL's text, spelled `url-<hex>`, so processes pulling it meet too.
    Unpinned(Blake3),
}

impl DownloadKey {
    /// `blake3`, else `sha256`, else `md5`, else (an entry with no digest, which manifest
    /// validation refuses; only `pull URL --name` makes one) its first URL; `None` without any.
    pub fn of(entry: &Entry) -> Option<Self> {
        entry
            .blake3
            .map(DownloadKey::Blake3)
            .or(entry.sha256.map(DownloadKey::Sha256))
            .or(entry.md5.map(DownloadKey::Md5))
            .or_else(|| {
                let url = entry.urls.first()?;
                Some(DownloadKey::Unpinned(Blake3::of(url.as_bytes())))
            })
    }

    /// The file-name stem: `<hex>`, `sha256-<hex>` or `md5-<hex>` (validated hex only).
    pub fn stem(&self) -> String {
        match self {
            DownloadKey::Blake3(id) => id.to_hex(),
            // The digest index's spelling too (`index/md5-<hex>`): one name per upstream digest.
            DownloadKey::Sha256(d) => Upstream::Sha256(*d).stem(),
            DownloadKey::Md5(d) => Upstream::Md5(*d).stem(),
            DownloadKey::Unpinned(u) => format!("url-{}", u.to_hex()),
        }
    }

    /// The per-download lock file.
    pub fn lock_path(&self, layout: &Layout) -> crate::sys::fsx::Rooted {
        match self {
            DownloadKey::Blake3(id) => layout.blob_lock(id),
            _ => layout.locks().join(format!("{}.lock", self.stem())),
        }
    }
}

/// Step 1: when every file of the model is already in the store, builds its snapshot and records
/// `name` (if needed) and returns it, with no network. Nothing is re-hashed, except a present blob
/// the entry pins an upstream digest for that the store has not computed from it yet, once
/// ([`super::claims`]); an entry whose digests contradict the blob it pins is refused
/// ([`PullError::Contradicted`]).
pub fn fast_path(
    store: &Store,
    name: &ModelName,
    entry: &Entry,
) -> Result<Option<Published>, PullError> {
    let mut pinned = entry.clone();
    let files = entry.files(name);
    let mut ids = Vec::with_capacity(files.len());
    for f in &files {
        match checked_pin(store, name, f, files.len())? {
            Some(id) => ids.push(id),
            None => return Ok(None),
        }
    }
    set_pins(&mut pinned, &ids);
    Ok(reference_existing(store, name, pinned)?)
}

/// The BLAKE3 and size of `file`'s blob ([`pin`]) once every upstream digest the file pins is
/// known to be that blob's ([`claims::check`]; `of`: how many files the model has, for the
/// error). `None` when the store cannot tell, or the blob is absent when it has to be hashed, or a
/// hint (not the entry itself) named a blob whose bytes contradict the file's digests: the caller
/// downloads and checks. Presence is not checked otherwise: [`reference_existing`] does that
/// under `gc.lock`.
pub(super) fn checked_pin(
    store: &Store,
    name: &ModelName,
    file: &FileEntry,
    of: usize,
) -> Result<Option<(Blake3, u64)>, PullError> {
    let Some(p) = pin(store, file)? else {
        return Ok(None);
    };
    if p.from == Origin::ComputedIndex {
        return Ok(Some((p.id, p.size))); // every digest maps to this blob in a `v2` record
    }
    match claims::check(store, file, p.id, p.size)? {
        Verdict::Holds => Ok(Some((p.id, p.size))),
        Verdict::Absent => Ok(None),
        Verdict::Contradicted { .. } if p.from == Origin::Hint => Ok(None),
        Verdict::Contradicted {
            what,
            expected,
            actual,
        } => Err(PullError::Contradicted {
            label: if of == 1 {
                name.to_string()
            } else {
                format!("{name} ({})", file.path)
            },
            blake3: p.id,
            what,
            expected,
            actual,
        }),
    }
}

/// Whether every file of `entry` is in the store now (pinned, and its blob present), recording
/// nothing: for listings (`beaker catalogue ls`), never for handing out paths.
pub fn is_present(store: &Store, name: &ModelName, entry: &Entry) -> Result<bool, StoreError> {
    for f in entry.files(name) {
        let Some(Pin { id, size, .. }) = pin(store, &f)? else {
            return Ok(false);
        };
        if !matches!(
            store.blob_state(&id, Some(size))?,
            crate::store::BlobState::Present { .. }
        ) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes the BLAKE3 and size of each file (in `entry.files(name)` order) into `entry`.
pub(super) fn set_pins(entry: &mut Entry, ids: &[(Blake3, u64)]) {
    match &mut entry.files {
        Some(files) => {
            for (f, (id, size)) in files.iter_mut().zip(ids) {
                f.blake3 = Some(*id);
                f.size = Some(*size);
            }
        }
        None => {
            if let Some((id, size)) = ids.first() {
                entry.blake3 = Some(*id);
                entry.size = Some(*size);
            }
        }
    }
}

/// A file's blob as [`pin`] found it, and where its BLAKE3 came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pin {
    pub id: Blake3,
    pub size: u64,
    pub from: Origin,
}

/// Where a [`Pin`]'s BLAKE3 came from: what decides how the file's upstream digests are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// The entry itself pins it (a catalogue's `blake3`, a registry's `dev.beaker.blake3`).
    Entry,
    /// Every upstream digest of the file maps to it in a `v2` index record: computed from the
    /// bytes, nothing left to check.
    ComputedIndex,
    /// A `v1` index record, another name's record, or (no digest at all) the same URLs: a hint,
    /// to check against the blob's bytes.
    Hint,
}

/// The BLAKE3 and size a file's blob has, when the store can tell without downloading: pinned in
/// the catalogue, or, for an upstream-only file, found through the store's digest index
/// ([`crate::store::index`]) or a store manifest entry recorded with the *same* pinned upstream
/// digests. Only the first two are more than hints; [`checked_pin`] checks the rest.
/// Presence is not checked here: [`reference_existing`] does that under `gc.lock`.
pub(super) fn pin(store: &Store, f: &FileEntry) -> Result<Option<Pin>, StoreError> {
    let hint = |id, size| {
        Some(Pin {
            id,
            size,
            from: Origin::Hint,
        })
    };
    if let (Some(id), Some(size)) = (f.blake3, f.size) {
        return Ok(Some(Pin {
            id,
            size,
            from: Origin::Entry,
        }));
    }
    let wanted = f.as_entry();
    if f.blake3.is_none() && f.sha256.is_none() && f.md5.is_none() {
        // Trust on first use (`pull URL --name N`): what the store recorded for the same URLs.
        let recorded = store.read_manifest()?;
        for (name, have) in &recorded.models {
            for file in have.files(name) {
                if let (Some(id), Some(size)) = (file.blake3, file.size) {
                    if !f.urls.is_empty() && file.urls == f.urls {
                        return Ok(hint(id, size));
                    }
                }
            }
        }
        return Ok(None);
    }
    if let Some((m, source)) = store.index_resolve(&wanted)? {
        let from = match source {
            Source::Computed => Origin::ComputedIndex,
            Source::Unchecked => Origin::Hint,
        };
        return Ok(Some(Pin {
            id: m.blake3,
            size: m.size,
            from,
        }));
    }
    let recorded = store.read_manifest()?;
    for (name, have) in &recorded.models {
        for file in have.files(name) {
            if let (Some(id), Some(size)) = (file.blake3, file.size) {
                if same_upstream(&wanted, &file.as_entry()) {
                    return Ok(hint(id, size));
                }
            }
        }
    }
    Ok(None)
}

/// `have` pins every upstream digest `want` pins, with the same values (and the same size when
/// `want` gives one).
fn same_upstream(want: &Entry, have: &Entry) -> bool {
    let pinned = want.sha256.is_some() || want.md5.is_some();
    pinned
        && want.sha256.is_none_or(|d| have.sha256 == Some(d))
        && want.md5.is_none_or(|d| have.md5 == Some(d))
        && want.size.is_none_or(|s| have.size == Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_their_paths() {
        let md5 = Md5::from_hex("f1e20fe90da342a7529c89f4d39b7ff9").unwrap();
        let entry = Entry {
            md5: Some(md5),
            ..Entry::default()
        };
        let key = DownloadKey::of(&entry).unwrap();
        assert_eq!(key.stem(), "md5-f1e20fe90da342a7529c89f4d39b7ff9");
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(crate::sys::fsx::Root::open(dir.path()).unwrap());
        assert_eq!(
            key.lock_path(&layout).rel(),
            std::path::Path::new("locks/md5-f1e20fe90da342a7529c89f4d39b7ff9.lock")
        );
        let id = Blake3::of(b"x");
        let with_blake3 = Entry {
            blake3: Some(id),
            ..entry
        };
        let key = DownloadKey::of(&with_blake3).unwrap();
        assert_eq!(key.lock_path(&layout), layout.blob_lock(&id));
        assert_eq!(DownloadKey::of(&Entry::default()), None);
    }

    #[test]
    fn upstream_match_needs_every_pinned_digest() {
        let md5 = Md5::from_hex("f1e20fe90da342a7529c89f4d39b7ff9").unwrap();
        let sha = Sha256::from_bytes([7; 32]);
        let want = Entry {
            md5: Some(md5),
            sha256: Some(sha),
            ..Entry::default()
        };
        let only_md5 = Entry {
            md5: Some(md5),
            ..Entry::default()
        };
        assert!(!same_upstream(&want, &only_md5));
        assert!(same_upstream(&only_md5, &want));
        assert!(!same_upstream(&Entry::default(), &want));
    }
}
