//! The integration tests' side of the test kit ([`testkit`]): [`Env`], the kit's [`Lab`] for the
//! beaker binary of this build with helpers that panic (a fixture that cannot be made is a
//! failed test), and the assertions and process helpers only these tests use.

#![allow(dead_code)] // each test module uses a different subset

use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use testkit::lab::{blake3_hex, bytes, list_names, Lab, Run, FAST_NETWORK};
use testkit::server::Server;
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
        Run::from(self.cmd().args(args).output().expect("spawn beaker"))
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
pub fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

pub fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
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
pub fn build_shim(name: &str, source: &str) -> PathBuf {
    testkit::shim::build_for_this_run(name, source).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Asserts that `printed` (what `pull`/`add`/`path` printed) is a model file inside the store's
/// `snapshots/`, holding `bytes`, and the very inode of the blob named by their BLAKE3 (a hard
/// link: no copy).
pub fn assert_model_file(store: &Path, printed: &str, bytes: &[u8]) {
    use std::os::unix::fs::MetadataExt;
    let printed = Path::new(printed.trim());
    assert!(
        printed.starts_with(store.join("snapshots")),
        "{} is not in the store's snapshots/",
        printed.display()
    );
    assert_eq!(std::fs::read(printed).expect("read the model file"), bytes);
    let blob = store.join("blobs").join(blake3_hex(bytes));
    let (a, b) = (
        std::fs::metadata(printed).expect("stat model file"),
        std::fs::metadata(&blob).expect("stat blob"),
    );
    assert_eq!(
        (a.dev(), a.ino()),
        (b.dev(), b.ino()),
        "the model file is the blob"
    );
}
