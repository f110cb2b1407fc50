//! The sha256 of each blob, remembered (`<store>/index/blake3-<hex>`): a registry names blobs by
//! sha256, so a push needs it, and hashing a large model again on every push is what this avoids
//! (a second push of the same model hashes nothing).
//!
//! The record is the digest index's reverse, with the same safety ([`super::index`]): one line,
//!
//! ```text
//! v2 blake3 <64 hex> sha256 <64 hex> size <bytes> check <64 hex>\n
//! ```
//!
//! `check` being the BLAKE3 of everything before ` check `, written to `tmp/`, fsynced and
//! renamed into place with the store's file mode (so every member of a group store can add one),
//! read back only when it is exactly what would be written for that blob. It is written only when
//! this process has hashed the blob's bytes with sha256 (the index's rule: a digest enters only
//! once it was computed from the bytes): a push that computed it, a pull that checked a pinned
//! sha256 while downloading, or the pull fast path that hashed a present blob for a claimed one
//! ([`Store::index_record`]). `v1` records come from beakers that could also record a sha256 a
//! catalogue only claimed; they read as absent, so the next push computes the sha256 once and
//! writes a `v2` record. Like the index it is a hint: the registry hashes what it receives, so a
//! wrong record makes a push fail (the registry refuses the digest), never makes it upload wrong
//! bytes under a right name. gc drops the record with its blob.

use std::io::Read;

use crate::model::digest::{Blake3, Sha256};
use crate::sys::error::IoError;
use crate::sys::fsx;

use super::Store;

const MAX_RECORD: u64 = 512;

/// The exact bytes of the record for blob `id`.
pub fn encode(id: &Blake3, sha256: &Sha256, size: u64) -> String {
    let body = format!(
        "v2 blake3 {} sha256 {} size {size}",
        id.to_hex(),
        sha256.to_hex()
    );
    let check = Blake3::of(body.as_bytes()).to_hex();
    format!("{body} check {check}\n")
}

/// The sha256 and size a record for `id` holds; `None` unless it is exactly what [`encode`] writes.
pub fn decode(id: &Blake3, text: &str) -> Option<(Sha256, u64)> {
    let line = text.strip_suffix('\n')?;
    let (body, check) = line.rsplit_once(" check ")?;
    if Blake3::from_hex(check).ok()? != Blake3::of(body.as_bytes()) {
        return None;
    }
    let fields: Vec<&str> = body.split(' ').collect();
    let ["v2", "blake3", b3, "sha256", sha, "size", size] = fields.as_slice() else {
        return None;
    };
    if Blake3::from_hex(b3).ok()? != *id {
        return None;
    }
    let out = (Sha256::from_hex(sha).ok()?, size.parse().ok()?);
    (encode(id, &out.0, out.1) == text).then_some(out)
}

impl Store {
    /// The sha256 remembered for blob `id` of `size` bytes, if a record reads back.
    pub fn sha256_of(&self, id: &Blake3, size: u64) -> Option<Sha256> {
        let file = fsx::open_read(&self.layout().index_sha256_of(id)).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.file_type().is_file() || meta.len() > MAX_RECORD {
            return None;
        }
        let mut text = String::new();
        file.take(MAX_RECORD + 1).read_to_string(&mut text).ok()?;
        decode(id, &text)
            .filter(|(_, s)| *s == size)
            .map(|(d, _)| d)
    }

    /// Remembers that blob `id` of `size` bytes hashes to `sha256`. Call it only with a sha256
    /// this process computed from (or compared with one it computed from) the blob's bytes.
    pub fn remember_sha256(&self, id: &Blake3, size: u64, sha256: &Sha256) -> Result<(), IoError> {
        if self.sha256_of(id, size) == Some(*sha256) {
            return Ok(());
        }
        let layout = self.layout();
        self.make_dir(&layout.index(), self.config().dir_mode(), false)?;
        fsx::write_replace(
            &layout.tmp(),
            &layout.index_sha256_of(id),
            encode(id, sha256, size).as_bytes(),
            self.config().file_mode(),
        )
    }
}

/// The blob a record's file name (`blake3-<hex>`) is about, for gc.
pub fn blob_of_stem(stem: &str) -> Option<Blake3> {
    Blake3::from_hex(stem.strip_prefix("blake3-")?).ok()
}

#[cfg(test)]
mod tests {
    // Tests plant damaged records with raw std::fs on purpose.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn a_record_reads_back_only_for_its_blob_and_size() {
        let id = Blake3::of(b"model");
        let sha = Sha256::from_bytes([3; 32]);
        let text = encode(&id, &sha, 5);
        assert_eq!(decode(&id, &text), Some((sha, 5)));
        assert_eq!(decode(&Blake3::of(b"other"), &text), None);
        for cut in 0..text.len() {
            assert_eq!(decode(&id, &text[..cut]), None);
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_or_create(&dir.path().join("s")).unwrap();
        assert_eq!(store.sha256_of(&id, 5), None);
        store.remember_sha256(&id, 5, &sha).unwrap();
        assert_eq!(store.sha256_of(&id, 5), Some(sha));
        assert_eq!(
            store.sha256_of(&id, 6),
            None,
            "another size is another blob"
        );
        std::fs::write(store.layout().index_sha256_of(&id).path(), "v1 garbage\n").unwrap();
        assert_eq!(store.sha256_of(&id, 5), None);
        assert_eq!(blob_of_stem(&format!("blake3-{}", id.to_hex())), Some(id));
        // A record of an older beaker (`v1`, possibly a sha256 it never computed) reads as absent.
        let v1 = encode(&id, &sha, 5).replacen("v2 ", "v1 ", 1);
        let body = v1.rsplit_once(" check ").unwrap().0.to_owned();
        let v1 = format!("{body} check {}\n", Blake3::of(body.as_bytes()).to_hex());
        assert_eq!(decode(&id, &v1), None);
    }
}
