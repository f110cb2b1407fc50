//! [maint]: gc and verify (`gc_verify`), on bad input (`bad_input`), racing add and rm (`race`),
//! prune-locks (`locks`), and the store as a cache with a budget (`evict`), through the real
//! binary; and their helpers: holding a flock from another process, ageing files, planting
//! blobs, and the JSON shapes of gc / verify / prune-locks as scripts would read them.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::support::*;

mod bad_input;
pub mod evict;
mod gc_verify;
mod locks;
mod race;

/// Another process holding an exclusive flock on a file until dropped (then it is killed, which
/// releases the lock). `flock(1)` from util-linux takes the lock on an fd the shell then hands to
/// `sleep`, so the holder is exactly one process; "locked" on its stdout says it holds the lock.
pub struct Holder {
    #[cfg(unix)]
    child: Child,
    /// On Windows the test process itself holds the lock (`LockFileEx`, through fs2): Windows
    /// has no flock(1), and a lock of another process is what beaker meets either way.
    #[cfg(windows)]
    _file: std::fs::File,
}

impl Holder {
    #[cfg(unix)]
    pub fn new(path: &Path) -> Holder {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec 9<"$1" && flock -x 9 && echo locked && exec sleep 120"#)
            .arg("sh")
            .arg(path)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn flock holder (flock(1) from util-linux)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert_eq!(
            line.trim(),
            "locked",
            "the holder must report that it holds the lock"
        );
        Holder { child }
    }

    #[cfg(windows)]
    pub fn new(path: &Path) -> Holder {
        let file = std::fs::File::open(path).expect("open the file to lock");
        fs2::FileExt::try_lock_exclusive(&file).expect("lock it");
        Holder { _file: file }
    }
}

#[cfg(unix)]
impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets `path`'s modification time `ago` into the past.
pub fn age(path: &Path, ago: Duration) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open to age");
    f.set_modified(SystemTime::now() - ago).expect("set mtime");
}

/// Sets `path`'s modification time `ahead` into the future (a writer whose clock runs ahead).
pub fn date_ahead(path: &Path, ahead: Duration) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open to date");
    f.set_modified(SystemTime::now() + ahead)
        .expect("set mtime");
}

pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(86_400);

/// Plants a valid blob nobody references (what a crash between publish and record leaves).
pub fn plant_orphan(env: &Env, content: &[u8]) -> String {
    let hex = blake3_hex(content);
    let p = env.store.join("blobs").join(&hex);
    std::fs::write(&p, content).expect("plant blob");
    crate::support::chmod(&p, 0o444);
    hex
}

/// `add` `content` as `name`, returning the blob hex.
pub fn add(env: &Env, name: &str, content: &[u8]) -> String {
    let f = env.file(&format!("src/{name}-{}", blake3_hex(content)), content);
    env.run(&["store", "add", f.to_str().expect("utf8"), "--name", name])
        .ok();
    blake3_hex(content)
}

pub fn blob_path(env: &Env, hex: &str) -> PathBuf {
    env.store.join("blobs").join(hex)
}

pub fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

/// Whether this process is root (root ignores permission bits).
pub fn is_root() -> bool {
    beaker::who::is_root()
}

// Unix only: a store its user cannot write is made with modes or setpriv
#[cfg(unix)]
/// Runs `beaker --store S args…` as a user who cannot write the store: as root, the unprivileged
/// `nobody` via setpriv (the store stays root's, 0755); otherwise ourselves, with the store's
/// directories made read-only first. Says loudly which one it does.
pub fn run_read_only(env: &Env, args: &[&str]) -> Run {
    use std::os::unix::fs::PermissionsExt;
    if is_root() {
        eprintln!("NOTE: running as root; the read-only case runs beaker as `nobody` via setpriv");
        std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            BIN,
            "--store",
        ])
        .arg(&env.store)
        .args(args)
        .env_remove("BEAKER_STORE")
        .stdin(Stdio::null());
        Run::from(c.output().expect("spawn setpriv"))
    } else {
        for d in ["", "blobs", "tmp", "locks", "quarantine"] {
            let p = env.store.join(d);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        }
        let r = env.run(args);
        for d in ["", "blobs", "tmp", "locks", "quarantine"] {
            let p = env.store.join(d);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        r
    }
}

#[derive(Debug, Deserialize)]
pub struct GcJson {
    pub dry_run: bool,
    pub removed_blobs: Vec<String>,
    pub freed_bytes: u64,
    pub removed_partials: Vec<String>,
    pub kept_blobs: usize,
    pub removed_quarantine: Vec<String>,
    pub live_partials: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct VerifyJson {
    pub checked: usize,
    pub ok: usize,
    pub corrupt: Vec<CorruptJson>,
    pub missing: Vec<String>,
    pub wrong_mode: Vec<WrongModeJson>,
}

#[derive(Debug, Deserialize)]
pub struct CorruptJson {
    pub blake3: String,
    pub quarantined_to: Option<PathBuf>,
    pub problem: String,
    pub quarantine_error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct WrongModeJson {
    pub blake3: String,
    pub mode: String,
}

#[derive(Debug, Deserialize)]
pub struct PruneJson {
    pub removed: Vec<String>,
    pub held: Vec<HeldJson>,
    pub stale_temp: Vec<TempJson>,
    pub live_temp: Vec<TempJson>,
}

#[derive(Debug, Deserialize)]
pub struct HeldJson {
    pub name: String,
    pub holder: Option<HolderJson>,
}

#[derive(Debug, Deserialize)]
pub struct HolderJson {
    pub pid: u32,
}

#[derive(Debug, Deserialize)]
pub struct TempJson {
    pub name: String,
    pub size: u64,
}
