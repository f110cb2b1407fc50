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
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let mut child = Command::new(&self.python)
            .args(["-c", HASH_SCRIPT])
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
                "the second BLAKE3 implementation hashed {} of {} files",
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
    for (name, entry) in &manifest.models {
        let Some(files) = entry.model_files(name) else {
            bad.push(format!(
                "I3: {name} is recorded without a BLAKE3 and size per file"
            ));
            continue;
        };
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
            match std::fs::symlink_metadata(in_snap.path()) {
                Ok(m) if m.file_type().is_symlink() => {}
                Ok(m) if (m.dev(), m.ino()) == (meta.dev(), meta.ino()) => {}
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
