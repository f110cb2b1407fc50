//! Every path inside a store, computed in one place (DESIGN §4, store format 1) — except the
//! names of files inside `tmp/` and the download locks of upstream-only entries, which
//! `crate::publish` and `crate::pull::key` derive from a stem under [`Layout::tmp`] and
//! [`Layout::locks`].
//!
//! ```text
//! <store>/store.toml          format = 1, mode = "private" | "group", locking = "flock" | "none"
//! <store>/CACHEDIR.TAG        so backup tools skip the store
//! <store>/names/<key>.toml    name -> entry, one record per name: what the store holds (the gc
//!                             roots; format 3); <key> is the name with '/' spelled '+'
//! <store>/manifest.toml       the same for all names in one file (formats 1 and 2; moved into
//!                             names/ by the upgrade to format 3)
//! <store>/blobs/<hex>         immutable content, mode 0444, name = BLAKE3 of the content
//! <store>/tmp/                one temp file per writer (O_EXCL, 0600), resumable download partials
//! <store>/locks/<hex>.lock    one download's lock (sha256-<hex>.lock / md5-<hex>.lock for an
//!                             upstream-only entry); manifest.lock; gc.lock
//! <store>/quarantine/         blobs that failed verify, removed by gc after 7 days
//! <store>/index/<algo>-<hex>  digest index: upstream sha256/md5 -> BLAKE3 + size (see `index`)
//! <store>/index/blake3-<hex>  its reverse for pushes: BLAKE3 -> sha256 + size (see `sums`)
//! <store>/snapshots/<tree>/…  each model's files under their real names, links to blobs (format 2)
//! <store>/uses/<key>          a name's use record: its mtime is when a path to it was last handed
//!                             out (see `crate::uses`); <key> is the name with '/' spelled '+'
//! <store>/pins/<key>          present: the name is pinned, never evicted
//! <store>/referrers/<hex>/<key>  present: name <key> may use blob <hex> (format 4; the reverse
//!                             index `rm` reads, see `referrers`)
//! ```
//! Changing any of these names is a store format change: bump `config::FORMAT` together with it.
//! (`index/` was added within format 1: it is only a hint, created on demand, and a beaker that
//! does not know it ignores it, so stores from before it and after it read the same; `uses/` and
//! `pins/` were added within format 2 on the same terms: a store without them is recreated with
//! them on open, and a beaker that does not know them never looks inside.)

use std::path::{Path, PathBuf};

use crate::digest::{Blake3, Upstream};
use crate::name::ModelName;

/// The directories a store consists of, relative to its root (created by `init`).
pub const DIRS: [&str; 10] = [
    "blobs",
    "tmp",
    "locks",
    "quarantine",
    "index",
    "snapshots",
    "uses",
    "pins",
    "names",
    "referrers",
];
/// Files at the root of a store; with [`DIRS`], everything a store (even a half-initialised one)
/// may contain.
pub const FILES: [&str; 3] = ["store.toml", "CACHEDIR.TAG", "manifest.toml"];

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("store.toml")
    }

    pub fn cachedir_tag(&self) -> PathBuf {
        self.root.join("CACHEDIR.TAG")
    }

    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.toml")
    }

    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The only place a digest becomes a path: `Blake3` is 64 lowercase hex by construction.
    pub fn blob(&self, id: &Blake3) -> PathBuf {
        self.blobs().join(id.to_hex())
    }

    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// A model's directory: `TreeId` is a BLAKE3 (64 lowercase hex) by construction.
    pub fn snapshot(&self, tree: &crate::snapshot::TreeId) -> PathBuf {
        self.snapshots().join(tree.to_hex())
    }

    pub fn uses(&self) -> PathBuf {
        self.root.join("uses")
    }

    /// `name`'s use record. A [`ModelName`] is `[a-z0-9._-]` with at most one `/` and no part
    /// starting with `.`: spelling the `/` as `+` (which no name contains) gives a plain file
    /// name, one per name and never the same for two names.
    pub fn use_record(&self, name: &ModelName) -> PathBuf {
        self.uses().join(record_key(name))
    }

    /// The store manifest of format 3: one record per name (see `super::records`).
    pub fn names(&self) -> PathBuf {
        self.root.join("names")
    }

    /// `name`'s record in the store manifest: `names/<key>.toml`, the key of
    /// [`Layout::use_record`].
    pub fn name_record(&self, name: &ModelName) -> PathBuf {
        self.names().join(format!("{}.toml", record_key(name)))
    }

    /// The reverse index of `names/` (format 4, see `super::referrers`).
    pub fn referrers(&self) -> PathBuf {
        self.root.join("referrers")
    }

    /// The names that use blob `id`, one empty file each: `referrers/<hex>/`.
    pub fn referrers_of(&self, id: &Blake3) -> PathBuf {
        self.referrers().join(id.to_hex())
    }

    /// `name`'s marker under blob `id`: `referrers/<hex>/<key>`, the key of [`Layout::use_record`].
    pub fn referrer(&self, id: &Blake3, name: &ModelName) -> PathBuf {
        self.referrers_of(id).join(record_key(name))
    }

    pub fn pins(&self) -> PathBuf {
        self.root.join("pins")
    }

    /// `name`'s pin: the same key as [`Layout::use_record`], under `pins/`.
    pub fn pin(&self, name: &ModelName) -> PathBuf {
        self.pins().join(record_key(name))
    }

    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn locks(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub fn blob_lock(&self, id: &Blake3) -> PathBuf {
        self.locks().join(format!("{}.lock", id.to_hex()))
    }

    pub fn manifest_lock(&self) -> PathBuf {
        self.locks().join("manifest.lock")
    }

    pub fn gc_lock(&self) -> PathBuf {
        self.locks().join("gc.lock")
    }

    pub fn quarantine(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    pub fn index(&self) -> PathBuf {
        self.root.join("index")
    }

    /// The sha256 remembered for blob `id` (for registry pushes): `index/blake3-<hex>`.
    pub fn index_sha256_of(&self, id: &Blake3) -> PathBuf {
        self.index().join(format!("blake3-{}", id.to_hex()))
    }

    /// The digest index's record for `digest`: `index/sha256-<hex>` or `index/md5-<hex>`.
    pub fn index_entry(&self, digest: &Upstream) -> PathBuf {
        self.index().join(digest.stem())
    }

    /// Where `verify` moves a corrupt blob: `quarantine/<hex>.<unix seconds>`, with `-<n>` added
    /// when the same blob was quarantined twice in one second. gc reads the time back with
    /// [`quarantined_at`] to expire entries after 7 days.
    pub fn quarantine_entry(&self, id: &Blake3, unix_secs: u64, attempt: u32) -> PathBuf {
        let name = match attempt {
            0 => format!("{}.{unix_secs}", id.to_hex()),
            n => format!("{}.{unix_secs}-{n}", id.to_hex()),
        };
        self.quarantine().join(name)
    }
}

/// The file name of `name`'s use record and pin: the name with `/` spelled `+`.
fn record_key(name: &ModelName) -> String {
    name.as_str().replace('/', "+")
}

/// The name a use record or pin file stands for ([`Layout::use_record`]), if it is one.
pub fn name_of_record(key: &str) -> Option<ModelName> {
    if key.contains('/') {
        return None;
    }
    ModelName::new(&key.replace('+', "/")).ok()
}

/// The time (unix seconds) in a quarantine entry's name, if it has the shape
/// [`Layout::quarantine_entry`] gives.
pub fn quarantined_at(name: &str) -> Option<u64> {
    let (hex, rest) = name.split_once('.')?;
    Blake3::from_hex(hex).ok()?;
    let secs = rest.split_once('-').map_or(rest, |(s, _)| s);
    secs.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_exactly_format_1() {
        let l = Layout::new("/s");
        let id = Blake3::of(b"");
        let hex = id.to_hex();
        assert_eq!(l.blob(&id), Path::new(&format!("/s/blobs/{hex}")));
        assert_eq!(l.blob_lock(&id), Path::new(&format!("/s/locks/{hex}.lock")));
        assert_eq!(l.gc_lock(), Path::new("/s/locks/gc.lock"));
        assert_eq!(l.manifest_lock(), Path::new("/s/locks/manifest.lock"));
        assert_eq!(l.manifest(), Path::new("/s/manifest.toml"));
        assert_eq!(l.config(), Path::new("/s/store.toml"));
        assert_eq!(l.tmp(), Path::new("/s/tmp"));
        assert_eq!(l.quarantine(), Path::new("/s/quarantine"));
        let md5 = crate::digest::Md5::from_hex("f1e20fe90da342a7529c89f4d39b7ff9").unwrap();
        assert_eq!(
            l.index_entry(&Upstream::Md5(md5)),
            Path::new("/s/index/md5-f1e20fe90da342a7529c89f4d39b7ff9")
        );
        let q = l.quarantine_entry(&id, 1_795_635_220, 0);
        assert_eq!(q, Path::new(&format!("/s/quarantine/{hex}.1795635220")));
        let q2 = l.quarantine_entry(&id, 7, 2);
        assert_eq!(q2, Path::new(&format!("/s/quarantine/{hex}.7-2")));
        let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(quarantined_at(&name(&q)), Some(1_795_635_220));
        assert_eq!(quarantined_at(&name(&q2)), Some(7));
        assert_eq!(quarantined_at("notes.txt"), None);
        assert_eq!(quarantined_at(&format!("{hex}.x")), None);
    }

    #[test]
    fn use_records_and_pins_are_keyed_by_the_name_with_plus_for_slash() {
        let l = Layout::new("/s");
        let plain = ModelName::new("bird-detector").unwrap();
        let org = ModelName::new("lab/bird.v2").unwrap();
        assert_eq!(l.use_record(&plain), Path::new("/s/uses/bird-detector"));
        assert_eq!(l.use_record(&org), Path::new("/s/uses/lab+bird.v2"));
        assert_eq!(l.pin(&org), Path::new("/s/pins/lab+bird.v2"));
        assert_eq!(name_of_record("lab+bird.v2"), Some(org));
        assert_eq!(name_of_record("bird-detector"), Some(plain));
        assert_eq!(name_of_record("a+b+c"), None);
        assert_eq!(name_of_record(".hidden"), None);
        assert_eq!(name_of_record("x.tmp.1"), ModelName::new("x.tmp.1").ok());
    }
}
