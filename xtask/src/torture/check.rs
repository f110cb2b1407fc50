//! The invariants every case checks after every trial, read straight from the disk:
//!
//! - **I1/I2** every entry of `blobs/` is a regular file of mode 0444 whose BLAKE3, computed by a
//!   *second implementation* (PyPI's `blake3`, installed into a venv under `target/` at first
//!   use), is its name;
//! - the store opens and its manifest parses (with the library's own parser);
//! - **I3** every recorded name is complete: each file's blob is present with the recorded size,
//!   and its snapshot directory holds each file as that blob's inode (or a symlink);
//! - **I4**, as `rm` relies on it: in a store of format 4 with locks, `referrers/` lists every
//!   recorded name under each of its blobs (the index may over-state, never under-state).
//!
//! And, for the digest-claims case ([`check_digests`]):
//!
//! - **I5** every upstream digest the store holds for a present blob is that blob's: each md5 and
//!   sha256 a name's record pins next to a file's BLAKE3, each digest-index record
//!   (`index/md5-…`, `index/sha256-…`) that beaker would read back, and each remembered sha256
//!   (`index/blake3-…`), compared with md5 and sha256 computed by a *second implementation*
//!   (Python's `hashlib`, in the same venv) from the blob's bytes.
//!
//! The checker proves it can fail before a campaign trusts it ([`Oracle::self_test`]).

// Reads and stats of a store under test, and the planted bad blob of the self-test, use raw
// std::fs: the checker must see the disk as it is, not through beaker's wrappers.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The PyPI package that is the second BLAKE3 implementation (Python bindings of its own build).
const PYPI_BLAKE3: &str = "blake3==1.0.11";

/// Hashes each path given on stdin (one a line) and prints its hex digest, one a line.
const HASH_SCRIPT: &str = r#"
import sys, blake3
for line in sys.stdin:
    p = line.rstrip("\n")
    h = blake3.blake3()
    with open(p, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    print(h.hexdigest())
"#;

/// Prints `<md5 hex> <sha256 hex>` of each path given on stdin (one a line), one a line.
const DIGEST_SCRIPT: &str = r#"
import sys, hashlib
for line in sys.stdin:
    p = line.rstrip("\n")
    m, s = hashlib.md5(), hashlib.sha256()
    with open(p, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            m.update(b)
            s.update(b)
    print(m.hexdigest(), s.hexdigest())
"#;

/// The second BLAKE3 implementation: a python3 with the `blake3` package.
pub struct Oracle {
    python: PathBuf,
}

impl Oracle {
    /// The venv's python under `target/torture-venv`, created and filled on first use.
    pub fn install(target: &Path) -> Result<Oracle> {
        let venv = target.join("torture-venv");
        let python = venv.join("bin").join("python3");
        let has = |py: &Path| {
            Command::new(py)
                .args(["-c", "import blake3"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !has(&python) {
            eprintln!(
                "torture: installing {PYPI_BLAKE3} (the second BLAKE3 implementation) into {}",
                venv.display()
            );
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .context(
                    "cannot run python3; install Python 3 (apt-get install python3 python3-venv)",
                )?;
            let pip = made.success()
                && Command::new(venv.join("bin").join("pip"))
                    .args(["install", "--quiet", PYPI_BLAKE3])
                    .env("PIP_ROOT_USER_ACTION", "ignore")
                    .status()
                    .is_ok_and(|s| s.success());
            if !pip || !has(&python) {
                bail!("could not install {PYPI_BLAKE3} into {} (is python3-venv installed and PyPI reachable?)", venv.display());
            }
        }
        let oracle = Oracle { python };
        oracle.self_test()?;
        Ok(oracle)
    }

    /// The hex BLAKE3 of each file, in order.
    pub fn hash_files(&self, paths: &[PathBuf]) -> Result<Vec<String>> {
        self.run_script(HASH_SCRIPT, paths)
    }

    /// The hex md5 and sha256 of each file, in order (Python's `hashlib`).
    pub fn digest_files(&self, paths: &[PathBuf]) -> Result<Vec<(String, String)>> {
        self.run_script(DIGEST_SCRIPT, paths)?
            .into_iter()
            .map(|line| match line.split_once(' ') {
                Some((md5, sha256)) => Ok((md5.to_owned(), sha256.to_owned())),
                None => bail!("the second md5/sha256 implementation printed {line:?}"),
            })
            .collect()
    }

    /// Runs `script` with one path a line on stdin; one output line per path.
    fn run_script(&self, script: &str, paths: &[PathBuf]) -> Result<Vec<String>> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let mut child = Command::new(&self.python)
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run the second BLAKE3 implementation")?;
        let mut list = String::new();
        for p in paths {
            list.push_str(&p.to_string_lossy());
            list.push('\n');
        }
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(list.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "the second BLAKE3 implementation failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let hexes: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        if hexes.len() != paths.len() {
            bail!(
                "the second hash implementation hashed {} of {} files",
                hexes.len(),
                paths.len()
            );
        }
        Ok(hexes)
    }

    /// Known answers (BLAKE3's own test vectors), and a planted bad blob must be reported.
    fn self_test(&self) -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (empty, abc) = (dir.path().join("empty"), dir.path().join("abc"));
        std::fs::write(&empty, b"")?;
        std::fs::write(&abc, b"abc")?;
        let got = self.hash_files(&[empty, abc])?;
        let want = [
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
        ];
        if got != want {
            bail!("the second BLAKE3 implementation gives wrong answers: {got:?}");
        }
        let blobs = dir.path().join("store").join("blobs");
        std::fs::create_dir_all(&blobs)?;
        let bad = blobs.join(want[1]);
        std::fs::write(&bad, b"abd")?;
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o644))?;
        let found = check_blobs(&dir.path().join("store"), self)?;
        if found.len() != 2 {
            bail!("the invariant checker missed a planted bad blob: {found:?}");
        }
        // A sound store with one name, then the name's marker in referrers/ deleted: exactly
        // that must be reported.
        let root = dir.path().join("indexed");
        let store = beaker::Store::init(&root, beaker::store::InitOptions::default())?;
        let name = beaker::name::ModelName::new("m")?;
        beaker::add::add(
            &store,
            &abc_source(dir.path())?,
            &name,
            false,
            &mut beaker::progress::Silent,
        )?;
        let sound = check_store(&root, self)?;
        if !sound.is_empty() {
            bail!("the invariant checker reports a sound store: {sound:?}");
        }
        std::fs::remove_file(
            store
                .layout()
                .referrer(&beaker::digest::Blake3::of(b"abc"), &name)
                .path(),
        )?;
        let found = check_store(&root, self)?;
        if found.len() != 1 || !found[0].contains("referrers/") {
            bail!("the invariant checker missed a name the referrers/ index lost: {found:?}");
        }
        // The name's snapshot file replaced by a file of other bytes, then by a symlink to a
        // copy of the right bytes outside the store: each must be reported.
        let tree = beaker::snapshot::TreeId::of(&[beaker::snapshot::ModelFile {
            path: beaker::file_path::FilePath::new("abc.bin")?,
            blake3: beaker::digest::Blake3::of(b"abc"),
            size: 3,
        }]);
        let snap = store.layout().snapshot(&tree).path().to_owned();
        let file = snap.join("abc.bin");
        let outside = dir.path().join("outside.bin");
        std::fs::write(&outside, b"abc")?;
        std::fs::set_permissions(&snap, std::fs::Permissions::from_mode(0o755))?;
        for plant in ["other bytes", "a symlink out"] {
            std::fs::remove_file(&file)?;
            if plant == "other bytes" {
                std::fs::write(&file, b"abd")?;
            } else {
                std::os::unix::fs::symlink(&outside, &file)?;
            }
            let found = check_store(&root, self)?;
            if !found.iter().any(|f| f.contains("is not blob")) {
                bail!(
                    "the invariant checker missed a snapshot file replaced by {plant}: {found:?}"
                );
            }
        }
        self.self_test_digests(dir.path())
    }

    /// I5's checker: known md5/sha256 answers, then a store holding right digests (an index
    /// record, a remembered sha256, a record's md5) must pass, and each of a planted wrong index
    /// record, a wrong remembered sha256 and a record pinning a wrong md5 must be reported.
    fn self_test_digests(&self, dir: &Path) -> Result<()> {
        let abc = abc_source(dir)?;
        let got = self.digest_files(std::slice::from_ref(&abc))?;
        let want = (
            "900150983cd24fb0d6963f7d28e17f72".to_owned(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_owned(),
        );
        if got != [want.clone()] {
            bail!("the second md5/sha256 implementation gives wrong answers: {got:?}");
        }
        let (md5_abc, sha_abc) = want;
        let md5_abd = "e2f4d9ea9a82e1bb2bd2cd0e3e9f2d84"; // any md5 that is not abc's
        let root = dir.join("digests");
        let store = beaker::Store::init(&root, beaker::store::InitOptions::default())?;
        let name = beaker::name::ModelName::new("m")?;
        beaker::add::add(&store, &abc, &name, false, &mut beaker::progress::Silent)?;
        let id = beaker::digest::Blake3::of(b"abc").to_hex();
        let index = root.join("index");
        std::fs::create_dir_all(&index)?;
        let plant = |file: &str, body: String| {
            let check = beaker::digest::Blake3::of(body.as_bytes()).to_hex();
            std::fs::write(index.join(file), format!("{body} check {check}\n"))
        };
        plant(
            &format!("md5-{md5_abc}"),
            format!("v2 md5 {md5_abc} blake3 {id} size 3"),
        )?;
        plant(
            &format!("blake3-{id}"),
            format!("v2 blake3 {id} sha256 {sha_abc} size 3"),
        )?;
        let record = store.layout().name_record(&name);
        let text = std::fs::read_to_string(record.path())?;
        let with_md5 = |md5: &str| {
            text.lines()
                .flat_map(|l| {
                    let extra = l
                        .starts_with("blake3 = ")
                        .then(|| format!("md5 = \"{md5}\""));
                    std::iter::once(l.to_owned()).chain(extra)
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        };
        std::fs::write(record.path(), with_md5(&md5_abc))?;
        let (sound, checked) = check_digests(&root, self)?;
        if !sound.is_empty() || checked != 3 {
            bail!("the digest checker reports a sound store, or missed its digests ({checked} of 3 checked): {sound:?}");
        }
        // Each wrong digest on its own, then put right again.
        let report = |what: &str| -> Result<()> {
            let (found, _) = check_digests(&root, self)?;
            if found.len() != 1 || !found[0].contains(what) {
                bail!("the digest checker missed a wrong digest in {what}…: {found:?}");
            }
            Ok(())
        };
        let wrong_md5 = format!("md5-{md5_abd}");
        plant(&wrong_md5, format!("v2 md5 {md5_abd} blake3 {id} size 3"))?;
        report("index/md5-")?;
        std::fs::remove_file(index.join(&wrong_md5))?;
        let sums = format!("blake3-{id}");
        plant(
            &sums,
            format!("v2 blake3 {id} sha256 {} size 3", "ab".repeat(32)),
        )?;
        report("index/blake3-")?;
        plant(&sums, format!("v2 blake3 {id} sha256 {sha_abc} size 3"))?;
        std::fs::write(record.path(), with_md5(md5_abd))?;
        report("names/m")?;
        Ok(())
    }
}

/// A file holding `abc` for the self-test's store.
fn abc_source(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("abc.bin");
    std::fs::write(&path, b"abc")?;
    Ok(path)
}

/// I1/I2 over `blobs/`: one violation per bad entry.
pub fn check_blobs(store: &Path, oracle: &Oracle) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    let mut files = Vec::new();
    let dir = store.join("blobs");
    let entries = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(bad),
        Err(e) => return Err(e).with_context(|| format!("list {}", dir.display())),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(e.path())?;
        if !meta.file_type().is_file() {
            bad.push(format!("I1: blobs/{name} is not a regular file"));
            continue;
        }
        if meta.permissions().mode() & 0o7777 != 0o444 {
            bad.push(format!(
                "I2: blobs/{name} has mode {:o}, not 0444",
                meta.permissions().mode() & 0o7777
            ));
        }
        files.push((name, e.path()));
    }
    let paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
    for ((name, _), hex) in files.iter().zip(oracle.hash_files(&paths)?) {
        if *name != hex {
            bad.push(format!(
                "I1: blobs/{name} holds bytes whose BLAKE3 is {hex}"
            ));
        }
    }
    Ok(bad)
}

/// Every invariant of the module doc; the violations found (empty: the store is sound).
pub fn check_store(store: &Path, oracle: &Oracle) -> Result<Vec<String>> {
    let mut bad = check_blobs(store, oracle)?;
    if !store.join("store.toml").exists() {
        return Ok(bad);
    }
    let opened = match beaker::Store::open(store) {
        Ok(s) => s,
        Err(e) => {
            bad.push(format!("the store does not open: {e}"));
            return Ok(bad);
        }
    };
    let manifest = match opened.read_manifest() {
        Ok(m) => m,
        Err(e) => {
            bad.push(format!("the store manifest does not parse: {e}"));
            return Ok(bad);
        }
    };
    // A record without a BLAKE3 and size per file does not parse: reported above.
    for (name, record) in &manifest.models {
        let files = record.model.model_files();
        let snap = opened
            .layout()
            .snapshot(&beaker::snapshot::TreeId::of(&files));
        for f in &files {
            let blob = opened.layout().blob(&f.blake3);
            let Ok(meta) = std::fs::symlink_metadata(blob.path()) else {
                bad.push(format!(
                    "I3: {name} is recorded but blob {} is absent",
                    f.blake3
                ));
                continue;
            };
            if meta.len() != f.size {
                bad.push(format!(
                    "I3: {name}: blob {} has {} bytes, recorded {}",
                    f.blake3,
                    meta.len(),
                    f.size
                ));
            }
            // The reverse index `rm` trusts (store format 4, with locks, and marked complete)
            // must list the name under each of its blobs: an index that under-states lets `rm`
            // delete a blob in use. One not marked complete is not trusted (rm reads every
            // record), so it may lack entries.
            let indexed = opened.config().format >= 4
                && opened.config().locking != beaker::store::Locking::None
                && std::fs::symlink_metadata(opened.layout().referrers_complete().path()).is_ok();
            if indexed
                && std::fs::symlink_metadata(opened.layout().referrer(&f.blake3, name).path())
                    .is_err()
            {
                bad.push(format!(
                    "I4: {name} is recorded but referrers/ does not list it under blob {}",
                    f.blake3
                ));
            }
            let in_snap = snap.join(f.path.as_str());
            // The snapshot's file is the blob: its hard link (same inode; where inode numbers
            // are per path, same bytes), or a symlink that resolves to it.
            let is_blob = |m: &std::fs::Metadata| {
                if m.file_type().is_symlink() {
                    let target = std::fs::canonicalize(in_snap.path()).ok();
                    target.is_some() && target == std::fs::canonicalize(blob.path()).ok()
                } else {
                    (m.dev(), m.ino()) == (meta.dev(), meta.ino())
                        || (m.is_file()
                            && m.len() == meta.len()
                            && std::fs::read(in_snap.path()).ok()
                                == std::fs::read(blob.path()).ok())
                }
            };
            match std::fs::symlink_metadata(in_snap.path()) {
                Ok(m) if is_blob(&m) => {}
                Ok(_) => bad.push(format!(
                    "I3: {name}: {} is not blob {}",
                    in_snap.display(),
                    f.blake3
                )),
                Err(_) => bad.push(format!(
                    "I3: {name} is recorded but {} is absent",
                    in_snap.display()
                )),
            }
        }
    }
    Ok(bad)
}

/// One digest the store holds for a blob: where it is, the blob, the algorithm, the hex.
struct Claim {
    place: String,
    blob: String,
    algo: &'static str,
    hex: String,
}

/// I5 of the module doc: the violations found, and how many digests were compared.
pub fn check_digests(store: &Path, oracle: &Oracle) -> Result<(Vec<String>, usize)> {
    let mut claims = Vec::new();
    if let Ok(opened) = beaker::Store::open(store) {
        if let Ok(manifest) = opened.read_manifest() {
            for (name, record) in &manifest.models {
                for f in record.model.files() {
                    let id = f.blob.blake3;
                    let pins = [
                        ("md5", f.upstream.md5.map(|d| d.to_hex())),
                        ("sha256", f.upstream.sha256.map(|d| d.to_hex())),
                    ];
                    for (algo, hex) in pins {
                        if let Some(hex) = hex {
                            claims.push(Claim {
                                place: format!("names/{name} ({})", f.path),
                                blob: id.to_hex(),
                                algo,
                                hex,
                            });
                        }
                    }
                }
            }
        }
    }
    let index = store.join("index");
    let entries = match std::fs::read_dir(&index) {
        Ok(rd) => rd.collect::<std::io::Result<Vec<_>>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("list {}", index.display())),
    };
    for e in entries {
        let file = e.file_name().to_string_lossy().into_owned();
        if !e.file_type()?.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if let Some(claim) = index_claim(&file, &text) {
            claims.push(claim);
        }
    }
    // Digests of blobs that are present: an absent blob's record is a stale hint beaker ignores.
    let blobs = store.join("blobs");
    let mut paths: Vec<PathBuf> = Vec::new();
    for c in &claims {
        let p = blobs.join(&c.blob);
        if !paths.contains(&p) && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
            paths.push(p);
        }
    }
    let digests = oracle.digest_files(&paths)?;
    let mut bad = Vec::new();
    let mut checked = 0;
    for c in &claims {
        let Some(i) = paths.iter().position(|p| *p == blobs.join(&c.blob)) else {
            continue;
        };
        checked += 1;
        let actual = if c.algo == "md5" {
            &digests[i].0
        } else {
            &digests[i].1
        };
        if *actual != c.hex {
            bad.push(format!(
                "I5: {} holds {} {} for blob {}, whose bytes have {} {actual}",
                c.place, c.algo, c.hex, c.blob, c.algo
            ));
        }
    }
    Ok((bad, checked))
}

/// The digest a file of `index/` holds, when it is a record beaker reads back (its check line
/// is the BLAKE3 of its body, its fields have the shape beaker writes, any version beaker
/// reads): `md5-<hex>` / `sha256-<hex>` map that digest to a blob, `blake3-<hex>` remembers a
/// blob's sha256.
fn index_claim(file: &str, text: &str) -> Option<Claim> {
    let line = text.strip_suffix('\n')?;
    let (body, check) = line.rsplit_once(" check ")?;
    if blake3::hash(body.as_bytes()).to_hex().as_str() != check {
        return None;
    }
    let fields: Vec<&str> = body.split(' ').collect();
    let (algo, hex, blob) = match fields.as_slice() {
        ["v1" | "v2", algo @ ("md5" | "sha256"), hex, "blake3", blob, "size", _]
            if file == format!("{algo}-{hex}") =>
        {
            (if *algo == "md5" { "md5" } else { "sha256" }, *hex, *blob)
        }
        ["v2", "blake3", blob, "sha256", hex, "size", _] if file == format!("blake3-{blob}") => {
            ("sha256", *hex, *blob)
        }
        _ => return None,
    };
    // A blob is named by 64 lowercase hex digits; anything else is no record beaker reads.
    beaker::digest::Blake3::from_hex(blob).ok()?;
    Some(Claim {
        place: format!("index/{file}"),
        blob: blob.to_owned(),
        algo,
        hex: hex.to_owned(),
    })
}
