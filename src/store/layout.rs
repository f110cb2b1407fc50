//! Every path inside a store, computed in one place (docs/design.md, "On disk"; store format 4) — except the
//! names of files inside `tmp/` and the download locks of upstream-only entries, which
//! `crate::store::publish` and `crate::ops::pull::key` derive from a stem under [`Layout::tmp`] and
//! [`Layout::locks`].
//!
//! ```text
//! <store>/store.toml          format = 4, mode = "private" | "group", locking = "flock" | "none"
//! <store>/CACHEDIR.TAG        so backup tools skip the store
//! <store>/probe.toml          what the filesystem can do, with its device (see `probe`)
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
//!                             out (see `crate::store::uses`); <key> is the name with '/' spelled '+'
//! <store>/pins/<key>          present: the name is pinned, never evicted
//! <store>/referrers/<hex>/<key>  present: name <key> may use blob <hex> (format 4; the reverse
//!                             index `rm` reads, see `referrers`)
//! ```
//! Changing any of these names is a store format change: bump `config::FORMAT` together with it.
//! (`index/` was added within format 1: it is only a hint, created on demand, and a beaker that
//! does not know it ignores it, so stores from before it and after it read the same; `uses/` and
//! `pins/` were added within format 2, and `probe.toml` within format 4, on the same terms: a store without them is recreated with
//! them on open, and a beaker that does not know them never looks inside.)

use std::path::Path;
use std::sync::Arc;

use crate::model::digest::{Blake3, Upstream};
use crate::model::name::ModelName;
use crate::sys::fsx::{Root, Rooted};

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
pub const FILES: [&str; 4] = ["store.toml", "CACHEDIR.TAG", "manifest.toml", "probe.toml"];

/// Every path inside one store, each a [`Rooted`]: resolved from the store's root descriptor,
/// never through a symlink (`crate::sys::fsx::beneath`).
#[derive(Debug, Clone)]
pub struct Layout {
    root: Arc<Root>,
}

impl Layout {
    /// The layout of the store whose root directory is `root` (opened once, by the caller).
    pub fn new(root: Arc<Root>) -> Self {
        Layout { root }
    }

    /// The store's directory, as the user named it (for messages and the paths handed out).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `probe.toml`: what the filesystem under the store can do (`store::probe`).
    pub fn probe(&self) -> Rooted {
        self.top().join(super::probe::FILE)
    }

    /// The store's root directory itself, as a path inside the store.
    pub fn top(&self) -> Rooted {
        Rooted::top(&self.root)
    }

    fn at(&self, rel: &str) -> Rooted {
        self.top().join(rel)
    }

    pub fn config(&self) -> Rooted {
        self.at("store.toml")
    }

    pub fn cachedir_tag(&self) -> Rooted {
        self.at("CACHEDIR.TAG")
    }

    pub fn manifest(&self) -> Rooted {
        self.at("manifest.toml")
    }

    pub fn blobs(&self) -> Rooted {
        self.at("blobs")
    }

    /// The only place a digest becomes a path: `Blake3` is 64 lowercase hex by construction.
    pub fn blob(&self, id: &Blake3) -> Rooted {
        self.blobs().join(id.to_hex())
    }

    pub fn snapshots(&self) -> Rooted {
        self.at("snapshots")
    }

    /// A model's directory: `TreeId` is a BLAKE3 (64 lowercase hex) by construction.
    pub fn snapshot(&self, tree: &crate::model::tree::TreeId) -> Rooted {
        self.snapshots().join(tree.to_hex())
    }

    pub fn uses(&self) -> Rooted {
        self.at("uses")
    }

    /// `name`'s use record. A [`ModelName`] is `[a-z0-9._-]` with at most one `/` and no part
    /// starting with `.`: spelling the `/` as `+` (which no name contains) gives a plain file
    /// name, one per name and never the same for two names.
    pub fn use_record(&self, name: &ModelName) -> Rooted {
        self.uses().join(record_key(name))
    }

    /// The store manifest of format 3: one record per name (see `super::records`).
    pub fn names(&self) -> Rooted {
        self.at("names")
    }

    /// `name`'s record in the store manifest: `names/<key>.toml`, the key of
    /// [`Layout::use_record`].
    pub fn name_record(&self, name: &ModelName) -> Rooted {
        self.names().join(format!("{}.toml", record_key(name)))
    }

    /// The reverse index of `names/` (format 4, see `super::referrers`).
    pub fn referrers(&self) -> Rooted {
        self.at("referrers")
    }

    /// Present when the index is complete: written last when it was built (by the upgrade to
    /// format 4, `verify`, or an `rm` that read every record), gone with a `referrers/` that was
    /// deleted or a list that was found damaged (see `super::referrers`).
    pub fn referrers_complete(&self) -> Rooted {
        self.referrers().join(".complete")
    }

    /// The names that use blob `id`, one empty file each: `referrers/<hex>/`.
    pub fn referrers_of(&self, id: &Blake3) -> Rooted {
        self.referrers().join(id.to_hex())
    }

    /// `name`'s marker under blob `id`: `referrers/<hex>/<key>`, the key of [`Layout::use_record`].
    pub fn referrer(&self, id: &Blake3, name: &ModelName) -> Rooted {
        self.referrers_of(id).join(record_key(name))
    }

    pub fn pins(&self) -> Rooted {
        self.at("pins")
    }

    /// `name`'s pin: the same key as [`Layout::use_record`], under `pins/`.
    pub fn pin(&self, name: &ModelName) -> Rooted {
        self.pins().join(record_key(name))
    }

    pub fn tmp(&self) -> Rooted {
        self.at("tmp")
    }

    pub fn locks(&self) -> Rooted {
        self.at("locks")
    }

    pub fn blob_lock(&self, id: &Blake3) -> Rooted {
        self.locks().join(format!("{}.lock", id.to_hex()))
    }

    pub fn manifest_lock(&self) -> Rooted {
        self.locks().join("manifest.lock")
    }

    pub fn gc_lock(&self) -> Rooted {
        self.locks().join("gc.lock")
    }

    pub fn quarantine(&self) -> Rooted {
        self.at("quarantine")
    }

    pub fn index(&self) -> Rooted {
        self.at("index")
    }

    /// The sha256 remembered for blob `id` (for registry pushes): `index/blake3-<hex>`.
    pub fn index_sha256_of(&self, id: &Blake3) -> Rooted {
        self.index().join(format!("blake3-{}", id.to_hex()))
    }

    /// The digest index's record for `digest`: `index/sha256-<hex>` or `index/md5-<hex>`.
    pub fn index_entry(&self, digest: &Upstream) -> Rooted {
        self.index().join(digest.stem())
    }

    /// Where `verify` moves a corrupt blob: `quarantine/<hex>.<unix seconds>`, with `-<n>` added
    /// when the same blob was quarantined twice in one second. gc reads the time back with
    /// [`quarantined_at`] to expire entries after 7 days.
    pub fn quarantine_entry(&self, id: &Blake3, unix_secs: u64, attempt: u32) -> Rooted {
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

    fn layout() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(Root::open(dir.path()).unwrap());
        (dir, l)
    }

    #[test]
    fn paths_are_exactly_those_of_the_format() {
        let (_d, l) = layout();
        let id = Blake3::of(b"");
        let hex = id.to_hex();
        assert_eq!(l.blob(&id).rel(), Path::new(&format!("blobs/{hex}")));
        assert_eq!(
            l.blob_lock(&id).rel(),
            Path::new(&format!("locks/{hex}.lock"))
        );
        assert_eq!(l.gc_lock().rel(), Path::new("locks/gc.lock"));
        assert_eq!(l.manifest_lock().rel(), Path::new("locks/manifest.lock"));
        assert_eq!(l.manifest().rel(), Path::new("manifest.toml"));
        assert_eq!(l.config().rel(), Path::new("store.toml"));
        assert_eq!(l.tmp().rel(), Path::new("tmp"));
        assert_eq!(l.quarantine().rel(), Path::new("quarantine"));
        let md5 = crate::model::digest::Md5::from_hex("f1e20fe90da342a7529c89f4d39b7ff9").unwrap();
        assert_eq!(
            l.index_entry(&Upstream::Md5(md5)).rel(),
            Path::new("index/md5-f1e20fe90da342a7529c89f4d39b7ff9")
        );
        let q = l.quarantine_entry(&id, 1_795_635_220, 0);
        assert_eq!(q.rel(), Path::new(&format!("quarantine/{hex}.1795635220")));
        let q2 = l.quarantine_entry(&id, 7, 2);
        assert_eq!(q2.rel(), Path::new(&format!("quarantine/{hex}.7-2")));
        let name = |p: &Rooted| p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(quarantined_at(&name(&q)), Some(1_795_635_220));
        assert_eq!(quarantined_at(&name(&q2)), Some(7));
        assert_eq!(quarantined_at("notes.txt"), None);
        assert_eq!(quarantined_at(&format!("{hex}.x")), None);
    }

    #[test]
    fn use_records_and_pins_are_keyed_by_the_name_with_plus_for_slash() {
        let (_d, l) = layout();
        let plain = ModelName::new("bird-detector").unwrap();
        let org = ModelName::new("lab/bird.v2").unwrap();
        assert_eq!(l.use_record(&plain).rel(), Path::new("uses/bird-detector"));
        assert_eq!(l.use_record(&org).rel(), Path::new("uses/lab+bird.v2"));
        assert_eq!(l.pin(&org).rel(), Path::new("pins/lab+bird.v2"));
        assert_eq!(name_of_record("lab+bird.v2"), Some(org));
        assert_eq!(name_of_record("bird-detector"), Some(plain));
        assert_eq!(name_of_record("a+b+c"), None);
        assert_eq!(name_of_record(".hidden"), None);
        assert_eq!(name_of_record("x.tmp.1"), ModelName::new("x.tmp.1").ok());
    }
}
