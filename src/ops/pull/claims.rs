//! The upstream digests (md5, sha256) a file of a catalogue entry or a registry manifest pins,
//! checked against a blob the store already holds before the pull records them or hands the blob
//! out for them.
//!
//! A download is checked against every pinned digest while it streams (`publish` step 4). A file
//! whose blob is already present is not downloaded, so its pinned digests have not been computed
//! by anyone: they are *claims*. An entry may pin the BLAKE3 of one blob and the md5 of another
//! (a typo, a stale catalogue, a registry manifest whose `dev.beaker.blake3` annotation names
//! other bytes than its layer digest). Recorded unchecked, that md5 would map to the wrong blob
//! in the name's record and in the digest index, and every later md5-only pull of the real model
//! would be handed the other blob.
//!
//! **The rule: an upstream digest enters a record or the index only after this process computed
//! it from the bytes.** [`check`] applies it, and keeps the fast path fast:
//!
//! - a file that pins no upstream digest has nothing to check (no I/O at all);
//! - a digest the index already maps to this blob with a `v2` record ("computed from the bytes",
//!   [`crate::store::index`]) is known: one small file read, no hashing. For sha256 the blob's
//!   remembered sha256 ([`crate::store::sums`]) counts too;
//! - otherwise the blob is hashed once (BLAKE3 and the unknown digests in one pass), and the
//!   digests are recorded in the index, so the next pull of the same entry hashes nothing (a
//!   user who cannot write the store's `index/` hashes on every such pull: correct, slower).
//!
//! A claim the bytes contradict is refused when the BLAKE3 came from the entry itself (the entry
//! pins two contents: the same "md5 mismatch" a fresh store reports after downloading the bytes),
//! and ignored when the BLAKE3 came from a hint (a `v1` index record or another name's record,
//! which could have been written unchecked by an older beaker): the pull then downloads and
//! checks the bytes as if the store did not have them. The alternative, recording claims but not
//! trusting them, would leave every reader to re-hash; refusing to record them at all would make
//! md5-only entries re-download every time. Hashing once, when a claim is new, is the only choice
//! that keeps both the index truthful and the hot path free of hashing.

use std::io::Read;

use md5::Digest as _;

use crate::model::digest::{Blake3, Md5, Sha256, Upstream};
use crate::model::entry::Upstreams;
use crate::store::index::Mapping;
use crate::store::{Store, StoreError};
use crate::sys::fsx;

/// Read buffer of the one pass over a present blob.
const CHUNK: usize = 1 << 20;

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Every upstream digest the file pins is the blob's: known from a `v2` index record, or
    /// computed from the blob just now (and recorded).
    Holds,
    /// The blob is not in the store (any more): nothing was checked.
    Absent,
    /// The blob's bytes have another digest than the file pins.
    Contradicted {
        what: &'static str,
        expected: String,
        actual: String,
    },
}

/// Checks every upstream digest a file pins (`upstream`) against blob `id` of `size` bytes (see
/// the module doc); hashes the blob only for digests the index does not already know for it.
///
/// # Errors
/// The I/O error of reading the blob, or [`StoreError::DamagedBlob`] when its bytes are not the
/// ones its name says (then `beaker store verify` quarantines it).
pub(super) fn check(
    store: &Store,
    upstream: &Upstreams,
    id: Blake3,
    size: u64,
) -> Result<Verdict, StoreError> {
    let mapping = Mapping { blake3: id, size };
    let unknown: Vec<Upstream> = upstream
        .all()
        .into_iter()
        .filter(|d| !known(store, d, &mapping))
        .collect();
    if unknown.is_empty() {
        return Ok(Verdict::Holds);
    }
    let Some(computed) = hash_blob(store, &unknown, id, size)? else {
        return Ok(Verdict::Absent);
    };
    for digest in &unknown {
        let (what, expected, actual) = match digest {
            Upstream::Md5(want) => ("md5", want.to_hex(), computed.md5.map(|d| d.to_hex())),
            Upstream::Sha256(want) => {
                ("sha256", want.to_hex(), computed.sha256.map(|d| d.to_hex()))
            }
        };
        let actual = actual.unwrap_or_default();
        if actual != expected {
            return Ok(Verdict::Contradicted {
                what,
                expected,
                actual,
            });
        }
    }
    // Every digest was just computed from the bytes: the index may now say so. A hint only:
    // failing to write it costs one more hash next time, never this pull.
    let _ = store.index_record(upstream, id, size);
    Ok(Verdict::Holds)
}

/// Whether `digest` is known to be the digest of the blob `mapping` names: a `v2` index record
/// says so, or (sha256) the blob's remembered sha256 does.
fn known(store: &Store, digest: &Upstream, mapping: &Mapping) -> bool {
    if store.index_computed(digest) == Some(*mapping) {
        return true;
    }
    match digest {
        Upstream::Sha256(d) => store.sha256_of(&mapping.blake3, mapping.size) == Some(*d),
        Upstream::Md5(_) => false,
    }
}

/// The digests computed in [`hash_blob`]'s one pass.
struct Computed {
    md5: Option<Md5>,
    sha256: Option<Sha256>,
}

/// One pass over `blobs/<id>`: BLAKE3 (to be sure these are the bytes the name says) and each
/// digest in `wanted`. `None` when the blob is absent.
fn hash_blob(
    store: &Store,
    wanted: &[Upstream],
    id: Blake3,
    size: u64,
) -> Result<Option<Computed>, StoreError> {
    let path = store.layout().blob(&id);
    let mut file = match fsx::open_read(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let damaged = |problem: String| StoreError::DamagedBlob {
        path: path.path(),
        problem,
    };
    let meta = crate::sys::fsx::Meta::of(&file)
        .map_err(|e| crate::sys::error::IoError::new("inspect", &path, e))?;
    if !meta.is_file() {
        return Err(damaged("not a regular file".into()));
    }
    let mut blake3 = blake3::Hasher::new();
    let mut md5 = wanted
        .iter()
        .any(|d| matches!(d, Upstream::Md5(_)))
        .then(md5::Md5::new);
    let mut sha256 = wanted
        .iter()
        .any(|d| matches!(d, Upstream::Sha256(_)))
        .then(sha2::Sha256::new);
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(crate::sys::error::IoError::new("read", &path, e).into()),
        };
        let chunk = &buf[..n];
        blake3.update(chunk);
        if let Some(h) = &mut md5 {
            h.update(chunk);
        }
        if let Some(h) = &mut sha256 {
            h.update(chunk);
        }
        len += n as u64;
    }
    if len != size {
        return Err(damaged(format!("{len} bytes, {size} expected")));
    }
    let got = Blake3::from(blake3.finalize());
    if got != id {
        return Err(damaged(format!("its bytes hash to {got}")));
    }
    Ok(Some(Computed {
        md5: md5.map(|h| Md5::from_bytes(h.finalize().into())),
        sha256: sha256.map(|h| Sha256::from_bytes(h.finalize().into())),
    }))
}

#[cfg(test)]
mod tests {
    // Tests plant blobs and records with raw std::fs on purpose.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_create(&dir.path().join("s")).unwrap();
        (dir, s)
    }

    fn plant(store: &Store, bytes: &[u8]) -> Blake3 {
        let id = Blake3::of(bytes);
        std::fs::write(store.layout().blob(&id).path(), bytes).unwrap();
        id
    }

    fn md5_of(bytes: &[u8]) -> Md5 {
        Md5::from_bytes(md5::Md5::digest(bytes).into())
    }

    fn file(md5: Option<Md5>, sha256: Option<Sha256>) -> Upstreams {
        Upstreams { sha256, md5 }
    }

    #[test]
    fn a_right_claim_is_hashed_once_then_known_from_the_index() {
        let (_d, s) = store();
        let id = plant(&s, b"model");
        let sha = Sha256::from_bytes(sha2::Sha256::digest(b"model").into());
        let f = file(Some(md5_of(b"model")), Some(sha));
        assert_eq!(check(&s, &f, id, 5).unwrap(), Verdict::Holds);
        let m = Mapping {
            blake3: id,
            size: 5,
        };
        assert_eq!(s.index_computed(&Upstream::Md5(md5_of(b"model"))), Some(m));
        assert_eq!(s.sha256_of(&id, 5), Some(sha));
        // Known now: even a blob that went away is not read again.
        std::fs::remove_file(s.layout().blob(&id).path()).unwrap();
        assert_eq!(check(&s, &f, id, 5).unwrap(), Verdict::Holds);
    }

    #[test]
    fn a_wrong_claim_is_contradicted_and_recorded_nowhere() {
        let (_d, s) = store();
        let id = plant(&s, b"model");
        let lie = md5_of(b"other");
        let f = file(Some(lie), None);
        assert_eq!(
            check(&s, &f, id, 5).unwrap(),
            Verdict::Contradicted {
                what: "md5",
                expected: lie.to_hex(),
                actual: md5_of(b"model").to_hex(),
            }
        );
        assert_eq!(s.index_get(&Upstream::Md5(lie)), None);
        // No claim: nothing to check, nothing read.
        assert_eq!(check(&s, &file(None, None), id, 5).unwrap(), Verdict::Holds);
    }

    #[test]
    fn an_absent_or_damaged_blob_is_never_taken_for_the_claim() {
        let (_d, s) = store();
        let f = file(Some(md5_of(b"model")), None);
        assert_eq!(
            check(&s, &f, Blake3::of(b"model"), 5).unwrap(),
            Verdict::Absent
        );
        // Bytes that are not the blob's name (bit rot): an error, not a verdict on the claim.
        let id = Blake3::of(b"model");
        std::fs::write(s.layout().blob(&id).path(), b"modem").unwrap();
        let e = check(&s, &f, id, 5).unwrap_err();
        assert!(matches!(e, StoreError::DamagedBlob { .. }), "{e}");
        assert_eq!(s.index_get(&Upstream::Md5(md5_of(b"model"))), None);
    }
}
