//! The digest index (`<store>/index/`): which blob an upstream sha256/md5 named.
//!
//! A catalogue entry that pins only `sha256`/`md5` (every entry of the bundled catalogue) has no
//! BLAKE3, so once its name is removed or re-pointed the store manifest no longer says which blob
//! the upstream digest meant. The index remembers it: `digest -> (BLAKE3, size)`. `gc --keep`
//! uses it to protect the blob of an upstream-only keep-entry, and the pull fast path to serve
//! such an entry with no network.
//!
//! # The rule: a digest enters the index only once it was computed from the bytes
//! A record is written ([`Store::index_record`]) only with digests this process computed from the
//! blob's bytes: `publish` after step 4 hashed the download with every pinned digest, and the
//! pull fast path after it hashed a present blob for a digest it did not know yet
//! (`crate::ops::pull::claims`). A digest a catalogue entry or a registry manifest merely *claims*
//! next to a BLAKE3 never goes in unchecked: it could name other bytes, and every later pull of
//! that digest would then be handed the wrong model.
//!
//! # On disk
//! One small file per digest, `index/sha256-<hex>` or `index/md5-<hex>`, holding one line:
//!
//! ```text
//! v2 md5 <32 hex> blake3 <64 hex> size <bytes> check <64 hex>\n
//! ```
//!
//! where `check` is the BLAKE3 of everything before ` check `. `v2` says "computed from the
//! bytes" (the rule above). `v1` records were written by beakers that also recorded digests a
//! catalogue only claimed: they still read back, as *unchecked* hints ([`Source::Unchecked`]),
//! which `gc --keep` may use (protecting too much is safe) and the pull fast path uses only after
//! hashing the blob once, which replaces the record by a `v2` one. A record is written to a temp
//! file in `tmp/`, fsynced and renamed over the path (then `index/` is fsynced), so a reader sees
//! the old record, the new one, or none — never a torn one — and a crash leaves at worst a stray
//! temp file that gc removes. The check line and the digest repeated inside the file guard against
//! what rename cannot: a damaged disk block, a hand edit, a file copied under another digest's
//! name. A record that does not read back exactly (wrong shape, wrong check, another digest, too
//! long, not a regular file) is treated as absent: it is never read as a mapping. Why files rather
//! than a cacache-style append log: no reader ever has to skip torn lines, no log needs
//! compacting, and gc drops one record by unlinking one file.
//!
//! Reads take no lock. `publish` writes records while it holds `gc.lock` shared, and gc drops
//! records under `gc.lock` exclusive. The pull fast path writes one after hashing a present blob,
//! without `gc.lock` (a long hash must not hold up gc): a gc in between may remove the blob and
//! leave the record, which then maps to an absent blob (ignored by every reader, dropped by the
//! next gc). A race costs a hint, never a blob.
//!
//! # A hint, never a proof
//! Invariant I1 never rests on the index. Whoever uses a mapping checks that the blob is present
//! with the recorded size; its bytes are named by their BLAKE3, so a present blob *is* the content
//! whose digest was computed when a `v2` record was written. The index is exactly as trusted as
//! the store manifest: any member of a group store can write either. Files are written with the
//! store's file mode (0664 in a group store, where `index/` is 2775 like every store directory)
//! so every member can add records; `index/` is created on demand, so stores made before it
//! existed gain it on first use.

use crate::sys::fsx::Rooted;
use std::collections::BTreeSet;
use std::io::Read;

use crate::model::digest::{Blake3, Md5, Sha256, Upstream};
use crate::model::entry::{Expect, Upstreams};
use crate::sys::error::IoError;
use crate::sys::fsx;

use super::inspect::BlobState;
use super::{GcExclusive, Store, StoreError};

/// Longest record a reader accepts; a valid one is under 200 bytes.
const MAX_RECORD: u64 = 512;

/// What the index says an upstream digest named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mapping {
    pub blake3: Blake3,
    pub size: u64,
}

/// Whether a record's digest is known to have been computed from its blob's bytes (see the
/// module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A `v2` record: written only with a digest computed from the bytes.
    Computed,
    /// A `v1` record, from a beaker that also recorded digests a catalogue only claimed: a hint
    /// to check against the blob before it decides what a pull hands out.
    Unchecked,
}

/// The version written now: "computed from the bytes".
const COMPUTED: &str = "v2";
/// The version older beakers wrote, read as [`Source::Unchecked`].
const UNCHECKED: &str = "v1";

/// What [`Store::sweep_index`] dropped (or, dry, would drop), and what it left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSwept {
    /// Records whose blob is gone, or that do not read back: names in `index/`.
    pub removed: Vec<String>,
    /// Entries of `index/` that are not records beaker writes (other names, not regular files).
    pub foreign: Vec<String>,
}

/// The exact bytes of the record `digest -> mapping`, as written now (`v2`: computed).
pub fn encode(digest: &Upstream, mapping: &Mapping) -> String {
    encode_as(COMPUTED, digest, mapping)
}

fn encode_as(version: &str, digest: &Upstream, mapping: &Mapping) -> String {
    let (algo, hex) = algo_hex(digest);
    let body = format!(
        "{version} {algo} {hex} blake3 {} size {}",
        mapping.blake3.to_hex(),
        mapping.size
    );
    let check = Blake3::of(body.as_bytes()).to_hex();
    format!("{body} check {check}\n")
}

/// Reads a record back, with what its version says about it; `None` unless it is exactly what
/// [`encode`] writes for `digest` (or what older beakers wrote, `v1`).
pub fn decode(digest: &Upstream, text: &str) -> Option<(Mapping, Source)> {
    let line = text.strip_suffix('\n')?;
    let (body, check) = line.rsplit_once(" check ")?;
    if Blake3::from_hex(check).ok()? != Blake3::of(body.as_bytes()) {
        return None;
    }
    let (algo, hex) = algo_hex(digest);
    let fields: Vec<&str> = body.split(' ').collect();
    let [version, a, h, "blake3", b3, "size", size] = fields.as_slice() else {
        return None;
    };
    let (version, source) = match *version {
        COMPUTED => (COMPUTED, Source::Computed),
        UNCHECKED => (UNCHECKED, Source::Unchecked),
        _ => return None,
    };
    if *a != algo || *h != hex {
        return None; // a record for another digest, copied or renamed here
    }
    let mapping = Mapping {
        blake3: Blake3::from_hex(b3).ok()?,
        size: size.parse().ok()?,
    };
    // Canonical spelling only (no leading zeros, no '+'): re-encoding gives the same bytes.
    (encode_as(version, digest, &mapping) == text).then_some((mapping, source))
}

fn algo_hex(digest: &Upstream) -> (&'static str, String) {
    match digest {
        Upstream::Sha256(d) => (Sha256::ALGO, d.to_hex()),
        Upstream::Md5(d) => (Md5::ALGO, d.to_hex()),
    }
}

/// Reads the record at `path`, without following a symlink or blocking on a FIFO.
fn read_record(path: &Rooted, digest: &Upstream) -> Option<(Mapping, Source)> {
    let file = fsx::open_read(path).ok()?;
    let meta = fsx::Meta::of(&file).ok()?;
    if !meta.is_file() || meta.len() > MAX_RECORD {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_RECORD + 1).read_to_string(&mut text).ok()?;
    decode(digest, &text)
}

impl Store {
    /// What the index maps `digest` to, if it holds a record that reads back, checked or not: a
    /// hint. Says nothing about whether that blob is still present.
    pub fn index_get(&self, digest: &Upstream) -> Option<Mapping> {
        self.index_read(digest).map(|(m, _)| m)
    }

    /// What the index maps `digest` to, only if the record says the digest was computed from the
    /// blob's bytes (`v2`). Says nothing about whether that blob is still present.
    pub fn index_computed(&self, digest: &Upstream) -> Option<Mapping> {
        self.index_read(digest)
            .filter(|(_, source)| *source == Source::Computed)
            .map(|(m, _)| m)
    }

    fn index_read(&self, digest: &Upstream) -> Option<(Mapping, Source)> {
        read_record(&self.layout().index_entry(digest), digest)
    }

    /// The blobs the index maps any upstream digest `entry` pins to and that are present with
    /// the recorded size (and with `entry`'s size, when it gives one). For `gc --keep`:
    /// protecting too much is safe, so each digest counts on its own.
    pub fn index_blobs(&self, entry: &Expect) -> Result<BTreeSet<Blake3>, StoreError> {
        let mut out = BTreeSet::new();
        for digest in entry.upstream.all() {
            if let Some(m) = self.index_get(&digest) {
                if self.index_blob_present(entry, &m)? {
                    out.insert(m.blake3);
                }
            }
        }
        Ok(out)
    }

    /// The blob that *every* upstream digest `entry` pins maps to, if they all have records, agree,
    /// and the blob is present with the recorded size (and `entry`'s size, when given), with
    /// [`Source::Computed`] only when every one of those records is. For the pull fast path,
    /// which hands the blob out as that entry's content only once each digest was computed from
    /// it (`crate::ops::pull::claims` hashes the blob for an unchecked one).
    pub fn index_resolve(&self, entry: &Expect) -> Result<Option<(Mapping, Source)>, StoreError> {
        let mut found: Option<(Mapping, Source)> = None;
        for digest in entry.upstream.all() {
            let Some((m, source)) = self.index_read(&digest) else {
                return Ok(None);
            };
            found = match found {
                Some((f, _)) if f != m => return Ok(None),
                Some((_, Source::Unchecked)) => Some((m, Source::Unchecked)),
                _ => Some((m, source)),
            };
        }
        match found {
            Some((m, source)) if self.index_blob_present(entry, &m)? => Ok(Some((m, source))),
            _ => Ok(None),
        }
    }

    fn index_blob_present(&self, entry: &Expect, m: &Mapping) -> Result<bool, StoreError> {
        if entry.size().is_some_and(|s| s != m.size) {
            return Ok(false);
        }
        Ok(matches!(
            self.blob_state(&m.blake3, Some(m.size))?,
            BlobState::Present { .. }
        ))
    }

    /// Records that every digest of `upstream` is the digest of the blob `blake3` of
    /// `size` bytes. Call it only with digests this process computed from (or compared with a
    /// digest it computed from) the blob's bytes, once the blob is durable: `publish` after step
    /// 4, the pull fast path after hashing a present blob. Never with a digest a catalogue or a
    /// registry only claims (see the module doc). A `v2` record already saying the same is left
    /// as it is; a `v1` one is replaced.
    ///
    /// # Errors
    /// The I/O error of creating `index/` or writing a record. Callers may ignore it: a missing
    /// record costs a re-download or a keep-entry reported as unmatched, never a blob.
    pub fn index_record(
        &self,
        upstream: &Upstreams,
        blake3: Blake3,
        size: u64,
    ) -> Result<(), IoError> {
        let layout = self.layout();
        let mapping = Mapping { blake3, size };
        for digest in upstream.all() {
            if self.index_computed(&digest) == Some(mapping) {
                continue;
            }
            // Created on demand: stores made before the index existed gain it here.
            self.make_dir(&layout.index(), self.config().dir_mode(), false)?;
            fsx::write_replace(
                &layout.tmp(),
                &layout.index_entry(&digest),
                encode(&digest, &mapping).as_bytes(),
                self.config().file_mode(),
            )?;
        }
        // The reverse, for registry pushes (`sums`): this blob's sha256 was just checked.
        if let Some(sha256) = &upstream.sha256 {
            self.remember_sha256(&blake3, size, sha256)?;
        }
        Ok(())
    }

    /// gc's part: drops the records whose blob is gone (absent, of another size, or in `going`:
    /// the blobs this gc removes, which a dry run has not actually removed) and the records that
    /// do not read back. Entries beaker did not write are left alone and reported.
    pub fn sweep_index(
        &self,
        _proof: &GcExclusive,
        going: &BTreeSet<Blake3>,
        dry_run: bool,
    ) -> Result<IndexSwept, StoreError> {
        let dir = self.layout().index();
        let mut swept = IndexSwept::default();
        for (name, _) in super::files_in(&dir)? {
            let path = dir.join(&name);
            let is_file = fsx::stat(&path).is_ok_and(|m| m.is_some_and(|m| m.is_file()));
            if let Some(id) = super::sums::blob_of_stem(&name).filter(|_| is_file) {
                // A remembered sha256 goes with its blob.
                let keep = !going.contains(&id)
                    && matches!(self.blob_state(&id, None)?, BlobState::Present { .. });
                if !keep {
                    if !dry_run {
                        fsx::remove_file_if_exists(&path)
                            .map_err(|e| StoreError::writing(self.root(), e))?;
                    }
                    swept.removed.push(name);
                }
                continue;
            }
            let Some(digest) = Upstream::from_stem(&name).filter(|_| is_file) else {
                swept.foreign.push(name);
                continue;
            };
            let keep = match read_record(&path, &digest) {
                Some((m, _)) => {
                    !going.contains(&m.blake3)
                        && matches!(
                            self.blob_state(&m.blake3, Some(m.size))?,
                            BlobState::Present { .. }
                        )
                }
                None => false,
            };
            if keep {
                continue;
            }
            if !dry_run {
                fsx::remove_file_if_exists(&path)
                    .map_err(|e| StoreError::writing(self.root(), e))?;
            }
            swept.removed.push(name);
        }
        if !dry_run && !swept.removed.is_empty() {
            fsx::sync_dir(&dir)?;
        }
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    // Tests plant blobs and damaged records with raw std::fs on purpose.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    fn md5() -> Upstream {
        Upstream::Md5(Md5::from_hex("f1e20fe90da342a7529c89f4d39b7ff9").unwrap())
    }

    fn mapping() -> Mapping {
        Mapping {
            blake3: Blake3::of(b"model"),
            size: 5,
        }
    }

    #[test]
    fn a_record_is_exactly_one_checked_line() {
        let text = encode(&md5(), &mapping());
        let body = format!(
            "v2 md5 f1e20fe90da342a7529c89f4d39b7ff9 blake3 {} size 5",
            Blake3::of(b"model").to_hex()
        );
        assert_eq!(
            text,
            format!("{body} check {}\n", Blake3::of(body.as_bytes()).to_hex())
        );
        assert_eq!(decode(&md5(), &text), Some((mapping(), Source::Computed)));
    }

    #[test]
    fn an_older_beakers_record_reads_back_as_unchecked_and_is_replaced() {
        let v1 = encode_as(UNCHECKED, &md5(), &mapping());
        assert!(v1.starts_with("v1 md5 "), "{v1}");
        assert_eq!(decode(&md5(), &v1), Some((mapping(), Source::Unchecked)));
        for other in ["v0", "v3", "V2"] {
            assert_eq!(decode(&md5(), &encode_as(other, &md5(), &mapping())), None);
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(&dir.path().join("s")).unwrap();
        let Upstream::Md5(m) = md5() else {
            unreachable!()
        };
        let entry = Expect {
            upstream: Upstreams {
                md5: Some(m),
                sha256: None,
            },
            ..Expect::default()
        };
        std::fs::create_dir_all(store.layout().index().path()).unwrap();
        std::fs::write(store.layout().index_entry(&md5()).path(), &v1).unwrap();
        let id = mapping().blake3;
        std::fs::write(store.layout().blob(&id).path(), b"model").unwrap();
        // A hint: gc --keep may use it, the fast path learns it is unchecked.
        assert_eq!(store.index_get(&md5()), Some(mapping()));
        assert_eq!(store.index_computed(&md5()), None);
        assert_eq!(
            store.index_resolve(&entry).unwrap(),
            Some((mapping(), Source::Unchecked))
        );
        // Recording the same mapping, now computed, replaces it.
        store.index_record(&entry.upstream, id, 5).unwrap();
        assert_eq!(store.index_computed(&md5()), Some(mapping()));
        assert_eq!(
            store.index_resolve(&entry).unwrap(),
            Some((mapping(), Source::Computed))
        );
    }

    #[test]
    fn torn_damaged_or_foreign_records_never_map() {
        let text = encode(&md5(), &mapping());
        // Every prefix (a torn write, were one possible) is refused.
        for cut in 0..text.len() {
            assert_eq!(decode(&md5(), &text[..cut]), None, "prefix of {cut} bytes");
        }
        // Any single changed byte is refused (the check, or the shape, catches it).
        for i in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] ^= 0x01;
            if let Ok(t) = String::from_utf8(bytes) {
                assert_eq!(decode(&md5(), &t), None, "byte {i} flipped: {t:?}");
            }
        }
        // A valid record of another digest, copied under this one's name, is refused.
        let other = Upstream::Sha256(Sha256::from_bytes([1; 32]));
        assert_eq!(decode(&other, &text), None);
        assert_eq!(decode(&md5(), &format!("{text}{text}")), None);
        assert_eq!(decode(&md5(), "garbage\n"), None);
    }

    #[test]
    fn record_then_resolve_needs_the_blob_present_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(&dir.path().join("s")).unwrap();
        let digest = md5();
        let Upstream::Md5(m) = digest else {
            unreachable!()
        };
        let entry = Expect {
            upstream: Upstreams {
                md5: Some(m),
                sha256: None,
            },
            ..Expect::default()
        };
        let id = Blake3::of(b"model");
        store.index_record(&entry.upstream, id, 5).unwrap();
        assert_eq!(store.index_get(&digest), Some(mapping()));
        // The blob is not there: nothing resolves, nothing is protected.
        assert_eq!(store.index_resolve(&entry).unwrap(), None);
        assert!(store.index_blobs(&entry).unwrap().is_empty());
        std::fs::write(store.layout().blob(&id).path(), b"model").unwrap();
        let computed = Some((mapping(), Source::Computed));
        assert_eq!(store.index_resolve(&entry).unwrap(), computed);
        assert_eq!(store.index_blobs(&entry).unwrap(), [id].into());
        // An entry that pins another size does not resolve to it.
        let sized = Expect {
            blob: crate::model::entry::Expected::Unpinned { size: Some(6) },
            ..entry
        };
        assert_eq!(store.index_resolve(&sized).unwrap(), None);
        // A garbage record at the path is ignored, and the next record replaces it.
        let path = store.layout().index_entry(&digest);
        std::fs::write(path.path(), b"v2 md5 nonsense\n").unwrap();
        assert_eq!(store.index_get(&digest), None);
        assert_eq!(store.index_resolve(&entry).unwrap(), None);
        store.index_record(&entry.upstream, id, 5).unwrap();
        assert_eq!(store.index_resolve(&entry).unwrap(), computed);
    }
}
