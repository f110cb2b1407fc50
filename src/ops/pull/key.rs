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
use crate::model::entry::{Expect, Expected, File, Model, Pin};
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
    /// `blake3`, else `sha256`, else `md5`, else (a file with no digest, which manifest
    /// validation refuses; only `pull URL --name` makes one) its first URL; `None` without any.
    pub fn of(file: &File) -> Option<Self> {
        let want = file.expect();
        want.blake3()
            .map(DownloadKey::Blake3)
            .or(want.upstream.sha256.map(DownloadKey::Sha256))
            .or(want.upstream.md5.map(DownloadKey::Md5))
            .or_else(|| {
                let url = file.urls.first()?;
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
/// the model pins an upstream digest for that the store has not computed from it yet, once
/// ([`super::claims`]); a model whose digests contradict the blob it pins is refused
/// ([`PullError::Contradicted`]).
pub fn fast_path(
    store: &Store,
    name: &ModelName,
    model: &Model,
) -> Result<Option<Published>, PullError> {
    let files = model.files();
    let mut pins = Vec::with_capacity(files.len());
    for f in files {
        match checked_pin(store, name, f, files.len())? {
            Some(pin) => pins.push(pin),
            None => return Ok(None),
        }
    }
    let Some(pinned) = model.clone().pinned(&pins) else {
        return Ok(None);
    };
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
    file: &File,
    of: usize,
) -> Result<Option<Pin>, PullError> {
    let Some(Found { pin: p, from }) = pin(store, file)? else {
        return Ok(None);
    };
    if from == Origin::ComputedIndex {
        return Ok(Some(p)); // every digest maps to this blob in a `v2` record
    }
    match claims::check(store, &file.upstream, p.blake3, p.size)? {
        Verdict::Holds => Ok(Some(p)),
        Verdict::Absent => Ok(None),
        Verdict::Contradicted { .. } if from == Origin::Hint => Ok(None),
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
            blake3: p.blake3,
            what,
            expected,
            actual,
        }),
    }
}

/// Whether every file of `model` is in the store now (pinned, and its blob present), recording
/// nothing: for listings (`beaker catalogue ls`), never for handing out paths.
pub fn is_present(store: &Store, model: &Model) -> Result<bool, StoreError> {
    for f in model.files() {
        let Some(Found { pin: p, .. }) = pin(store, f)? else {
            return Ok(false);
        };
        if !matches!(
            store.blob_state(&p.blake3, Some(p.size))?,
            crate::store::BlobState::Present { .. }
        ) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What a store holds of a catalogue's model, for listings (`beaker catalogue ls|show`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holding {
    /// Every file's bytes are in the store ([`is_present`]).
    pub bytes: bool,
    /// The names the store records with exactly these files (same paths, same blobs).
    pub names: Vec<crate::model::name::ModelName>,
}

/// What `store` holds of `model`: its bytes, and under which names (reading every record once;
/// `records` is the store's manifest, read by the caller for a whole listing).
pub fn holding(
    store: &Store,
    records: &crate::model::manifest::Manifest<crate::model::entry::Record>,
    model: &Model,
) -> Result<Holding, StoreError> {
    let mut pins = Vec::with_capacity(model.files().len());
    for f in model.files() {
        let Some(Found { pin: p, .. }) = pin(store, f)? else {
            return Ok(Holding::default());
        };
        if !matches!(
            store.blob_state(&p.blake3, Some(p.size))?,
            crate::store::BlobState::Present { .. }
        ) {
            return Ok(Holding::default());
        }
        pins.push((f.path.clone(), p.blake3));
    }
    let names = records
        .models
        .iter()
        .filter(|(_, r)| {
            let files = r.model.files();
            files.len() == pins.len()
                && files
                    .iter()
                    .zip(&pins)
                    .all(|(f, (path, id))| f.path == *path && f.blob.blake3 == *id)
        })
        .map(|(n, _)| n.clone())
        .collect();
    Ok(Holding { bytes: true, names })
}

/// A file's blob as [`pin`] found it, and where its BLAKE3 came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    pub pin: Pin,
    pub from: Origin,
}

/// Where a [`Found`] blob's BLAKE3 came from: what decides how the file's upstream digests are checked.
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
pub(super) fn pin(store: &Store, f: &File) -> Result<Option<Found>, StoreError> {
    let hint = |pin: Pin| {
        Some(Found {
            pin,
            from: Origin::Hint,
        })
    };
    if let Expected::Pinned(pin) = f.blob {
        return Ok(Some(Found {
            pin,
            from: Origin::Entry,
        }));
    }
    let wanted = f.expect();
    if wanted.blake3().is_none() && !f.upstream.any() {
        // Trust on first use (`pull URL --name N`): what the store recorded for the same URLs.
        let recorded = store.read_manifest()?;
        for have in recorded.models.values() {
            for file in have.model.files() {
                if !f.urls.is_empty() && file.urls == f.urls {
                    return Ok(hint(file.blob));
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
        return Ok(Some(Found {
            pin: Pin {
                blake3: m.blake3,
                size: m.size,
            },
            from,
        }));
    }
    let recorded = store.read_manifest()?;
    for have in recorded.models.values() {
        for file in have.model.files() {
            if same_upstream(&wanted, &file.expect()) {
                return Ok(hint(file.blob));
            }
        }
    }
    Ok(None)
}

/// `have` pins every upstream digest `want` pins, with the same values (and the same size when
/// `want` gives one).
fn same_upstream(want: &Expect, have: &Expect) -> bool {
    let (want_up, have_up) = (&want.upstream, &have.upstream);
    want_up.any()
        && want_up.sha256.is_none_or(|d| have_up.sha256 == Some(d))
        && want_up.md5.is_none_or(|d| have_up.md5 == Some(d))
        && want.size().is_none_or(|s| have.size() == Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entry::Upstreams;

    #[test]
    fn keys_and_their_paths() {
        let md5 = Md5::from_hex("f1e20fe90da342a7529c89f4d39b7ff9").unwrap();
        let file = File {
            path: crate::model::file_path::FilePath::new("m").unwrap(),
            blob: Expected::default(),
            upstream: Upstreams {
                md5: Some(md5),
                sha256: None,
            },
            urls: vec!["https://h/m".into()],
        };
        let key = DownloadKey::of(&file).unwrap();
        assert_eq!(key.stem(), "md5-f1e20fe90da342a7529c89f4d39b7ff9");
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(crate::sys::fsx::Root::open(dir.path()).unwrap());
        assert_eq!(
            key.lock_path(&layout).rel(),
            std::path::Path::new("locks/md5-f1e20fe90da342a7529c89f4d39b7ff9.lock")
        );
        let id = Blake3::of(b"x");
        let with_blake3 = File {
            blob: Expected::Blake3(id),
            ..file.clone()
        };
        let key = DownloadKey::of(&with_blake3).unwrap();
        assert_eq!(key.lock_path(&layout), layout.blob_lock(&id));
        // No digest: the URL, else nothing.
        let tofu = File {
            upstream: Upstreams::default(),
            ..file
        };
        let key = DownloadKey::of(&tofu).unwrap();
        assert_eq!(key, DownloadKey::Unpinned(Blake3::of(b"https://h/m")));
        assert!(key.stem().starts_with("url-"));
        assert_eq!(
            DownloadKey::of(&File {
                urls: Vec::new(),
                ..tofu
            }),
            None
        );
    }

    #[test]
    fn upstream_match_needs_every_pinned_digest() {
        let md5 = Md5::from_hex("f1e20fe90da342a7529c89f4d39b7ff9").unwrap();
        let sha = Sha256::from_bytes([7; 32]);
        let want = Expect {
            upstream: Upstreams {
                md5: Some(md5),
                sha256: Some(sha),
            },
            ..Expect::default()
        };
        let only_md5 = Expect {
            upstream: Upstreams {
                md5: Some(md5),
                sha256: None,
            },
            ..Expect::default()
        };
        assert!(!same_upstream(&want, &only_md5));
        assert!(same_upstream(&only_md5, &want));
        assert!(!same_upstream(&Expect::default(), &want));
    }
}
