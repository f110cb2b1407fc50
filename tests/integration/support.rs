//! The integration tests' side of the test kit ([`testkit`]): [`Env`], the kit's [`Lab`] for the
//! beaker binary of this build with helpers that panic (a fixture that cannot be made is a
//! failed test), and the assertions and process helpers only these tests use.

#![allow(dead_code)] // each test module uses a different subset

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Command;

pub use testkit::lab::{blake3_hex, bytes, list_names, Lab, Run, FAST_NETWORK};
use testkit::server::Server;
#[cfg(unix)]
pub use testkit::users::{root_only, REQUIRE_ROOT_VAR};

pub const BIN: &str = env!("CARGO_BIN_EXE_beaker");

/// A temp directory for one test, with `store` a path inside it (not created): the kit's [`Lab`]
/// for this build's binary (its fields and `cmd`, `path`, `blob_names` through `Deref`).
pub struct Env(Lab);

impl Env {
    pub fn new() -> Env {
        Env(Lab::new(Path::new(BIN), "beaker-test-").unwrap_or_else(|e| panic!("{e:#}")))
    }

    /// Writes `bytes` to `rel` inside the temp dir and returns its path.
    pub fn file(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        self.0
            .file(rel, bytes)
            .unwrap_or_else(|e| panic!("a test file: {e:#}"))
    }

    /// Runs `beaker --store S args…` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(retry_spawn(|| self.cmd().args(args).output()).expect("spawn beaker"))
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Deref for Env {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.0
    }
}

impl DerefMut for Env {
    fn deref_mut(&mut self) -> &mut Lab {
        &mut self.0
    }
}

/// Makes `cmd`'s child start with the default action for SIGINT, whatever this test process
/// inherited. A test runner started with SIGINT ignored (a background job of a script, some CI
/// shells) passes SIG_IGN on to every child, and beaker deliberately keeps an inherited SIG_IGN
/// (see docs/pull.md, "Interrupting a pull"); a test that interrupts beaker must not depend on that.
#[cfg(unix)]
pub fn default_sigint(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    #[allow(
        unsafe_code,
        reason = "pre_exec runs signal(2), async-signal-safe, in the child"
    )]
    // SAFETY: between fork and exec the closure only calls signal(2), which is
    // async-signal-safe, and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::signal(libc::SIGINT, libc::SIG_DFL) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// The kit's fault HTTP server, started on a free loopback port.
pub fn http_server() -> Server {
    Server::start().unwrap_or_else(|e| panic!("the HTTP test server: {e:#}"))
}

/// Sends `signal` to the process `pid` (one of this test's children).
pub fn send_signal(pid: u32, signal: i32) {
    testkit::lab::send_signal(pid, signal).unwrap_or_else(|e| panic!("kill({pid}, {signal}): {e}"));
}

/// Runs `cmd` to completion with its output captured, killing it and failing the test if it is
/// still running after `limit`: a regression that hangs (a FIFO, an endless read) fails the
/// suite instead of hanging it.
pub fn run_within(cmd: &mut Command, limit: std::time::Duration) -> Run {
    testkit::lab::run_within(cmd, limit).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Makes a FIFO at `path` (nobody ever writes to it).
#[cfg(unix)]
pub fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// The permission bits of `path` (on Windows as beaker reads them: 0444 when read-only).
pub fn mode(path: &Path) -> u32 {
    use beaker::sys::fsx::user::Owner;
    std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
}

/// Sets the permission bits of `path` (on Unix; on Windows only whether it is read-only).
pub fn chmod(path: &Path, mode: u32) {
    #[cfg(unix)]
    let perms = std::os::unix::fs::PermissionsExt::from_mode(mode);
    #[cfg(not(unix))]
    let perms = {
        let mut perms = std::fs::metadata(path).expect("stat").permissions();
        perms.set_readonly(mode & 0o222 == 0);
        perms
    };
    std::fs::set_permissions(path, perms)
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The identity of the file at `path` (device and inode; volume and file index on Windows).
pub fn file_id(path: &Path) -> (u64, u64) {
    beaker::sys::fsx::user::file_id(path, true).expect("stat")
}

/// Asserts invariant I1 on a store: every file in blobs/ is named by the BLAKE3 of its bytes.
pub fn assert_blobs_named_by_hash(store: &Path) {
    for name in list_names(&store.join("blobs")) {
        let bytes = std::fs::read(store.join("blobs").join(&name)).expect("read blob");
        assert_eq!(
            blake3_hex(&bytes),
            name,
            "blob {name} does not hold the bytes its name says (I1)"
        );
    }
}

/// Builds the LD_PRELOAD shim `name` from C `source` once per test run with the system C
/// compiler, and returns the path of the shared object.
#[cfg(unix)]
pub fn build_shim(name: &str, source: &str) -> PathBuf {
    testkit::shim::build_for_this_run(name, source).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Asserts that `printed` (what `pull`/`add`/`path` printed) is a model file inside the store's
/// `snapshots/`, holding `bytes`, and the very inode of the blob named by their BLAKE3 (a hard
/// link: no copy).
pub fn assert_model_file(store: &Path, printed: &str, bytes: &[u8]) {
    let printed = Path::new(printed.trim());
    assert!(
        printed.starts_with(store.join("snapshots")),
        "{} is not in the store's snapshots/",
        printed.display()
    );
    assert_eq!(std::fs::read(printed).expect("read the model file"), bytes);
    let blob = store.join("blobs").join(blake3_hex(bytes));
    assert_eq!(
        file_id(printed),
        file_id(&blob),
        "the model file is the blob"
    );
}

/// A `file://` URL of the absolute path `p` (`file:///C:/…` on Windows).
pub fn file_url(p: &Path) -> String {
    let text = p.display().to_string();
    if cfg!(windows) {
        format!("file:///{}", text.replace('\\', "/"))
    } else {
        format!("file://{text}")
    }
}

/// `rel` (written with `/`) as this platform prints it, for matching messages.
pub fn native(rel: &str) -> String {
    rel.replace('/', std::path::MAIN_SEPARATOR_STR)
}

/// What a message about a missing file says here (the OS's words differ; the code is ENOENT,
/// ERROR_FILE_NOT_FOUND, both 2).
pub const NOT_FOUND: &str = if cfg!(windows) {
    // wine's words ("File not found.", "Path not found.").
    "not found"
} else {
    "No such file"
};

/// A pid that existed and is gone now: this test program, run to list its tests.
pub fn dead_pid() -> u32 {
    let mut child = Command::new(std::env::current_exe().expect("the test program"))
        .arg("--list")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run the test program");
    let pid = child.id();
    child.wait().expect("wait for it");
    pid
}

/// Deletes the file at `path` (on Windows clearing the read-only attribute a blob has first,
/// which Windows would refuse to delete; on Unix the directory's mode decides).
pub fn remove(path: impl AsRef<Path>) {
    let path = path.as_ref();
    if cfg!(windows) {
        writable(path);
    }
    std::fs::remove_file(path).unwrap_or_else(|e| panic!("rm {}: {e}", path.display()));
}

/// Deletes the directory `path` and everything in it (on Windows clearing read-only
/// attributes first).
pub fn remove_all(path: impl AsRef<Path>) {
    let path = path.as_ref();
    if cfg!(windows) {
        for entry in walkdir::WalkDir::new(path)
            .into_iter()
            .filter_map(Result::ok)
        {
            if entry.file_type().is_file() {
                writable(entry.path());
            }
        }
    }
    std::fs::remove_dir_all(path).unwrap_or_else(|e| panic!("rm -r {}: {e}", path.display()));
}

/// Clears the read-only attribute (Windows) of the file at `path`.
#[allow(
    clippy::permissions_set_readonly_false,
    reason = "Windows: clears the attribute"
)]
fn writable(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mut perms = meta.permissions();
        if perms.readonly() {
            perms.set_readonly(false);
            let _ = std::fs::set_permissions(path, perms);
        }
    }
}

/// This checkout, as the beaker under test can open it. The tests for Windows are built here
/// and run under wine, so the checkout's path is a Unix one: wine's `Z:` drive is the Unix
/// root.
pub fn checkout() -> PathBuf {
    let dir = env!("CARGO_MANIFEST_DIR");
    if cfg!(windows) && dir.starts_with('/') {
        PathBuf::from(format!("Z:{dir}"))
    } else {
        PathBuf::from(dir)
    }
}

/// Starting a process, again while wine answers `ERROR_INTERNAL_ERROR` (1359): its
/// CreateProcess fails so now and then when several processes start at once. Any other failure,
/// and that one on other systems, is the caller's.
pub fn retry_spawn<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 0;
    loop {
        match start() {
            Err(e) if cfg!(windows) && e.raw_os_error() == Some(1359) && tries < 10 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50 * tries));
            }
            other => return other,
        }
    }
}

/// [`Command::spawn`] through [`retry_spawn`]; a process that cannot start fails the test.
pub trait Start {
    fn start(&mut self) -> std::process::Child;
}

impl Start for Command {
    fn start(&mut self) -> std::process::Child {
        retry_spawn(|| self.spawn()).unwrap_or_else(|e| panic!("start {self:?}: {e}"))
    }
}
