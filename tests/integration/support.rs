//! Test helpers: a per-test temp directory with a store path, and a runner for the real binary.

#![allow(dead_code)] // each test module uses a different subset

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_beaker");

/// Environment variables that would send a test's requests elsewhere or change whom it trusts.
pub const PROXY_AND_CA_VARS: [&str; 8] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
];

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

/// Sends `signal` to the process `pid` (one of this test's children).
pub fn send_signal(pid: u32, signal: i32) {
    let pid = i32::try_from(pid).expect("pid fits in pid_t");
    #[allow(
        unsafe_code,
        reason = "kill(2) has no std wrapper for signals other than SIGKILL"
    )]
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// Runs `cmd` to completion with its output captured, killing it and failing the test if it is
/// still running after `limit`: a regression that hangs (a FIFO, an endless read) fails the
/// suite instead of hanging it.
pub fn run_within(cmd: &mut Command, limit: std::time::Duration) -> Run {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => Run::from(out.expect("wait for beaker")),
        Err(_) => {
            send_signal(pid, libc::SIGKILL);
            panic!("{cmd:?} was still running after {limit:?}: it hangs");
        }
    }
}

/// Makes a FIFO at `path` (nobody ever writes to it).
pub fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// Set to `1` (CI does, in .ci/run) to make a root-only test that cannot run here fail instead of
/// reporting "not run".
pub const REQUIRE_ROOT_VAR: &str = "BEAKER_TEST_REQUIRE_ROOT";

/// What a root-only test does, given whether we are root and the value of [`REQUIRE_ROOT_VAR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootOnly {
    Run,
    /// Report "not run" on stderr and pass.
    NotRun,
    /// Fail: the environment demands that every root-only test runs.
    Fail,
}

pub fn root_only_decision(is_root: bool, require: Option<&std::ffi::OsStr>) -> RootOnly {
    match (is_root, require) {
        (true, _) => RootOnly::Run,
        (false, Some(v)) if v == "1" => RootOnly::Fail,
        (false, _) => RootOnly::NotRun,
    }
}

/// For a test that needs root (real users, ownership changes): `true` when it can run. As
/// another user it prints `not run: <test>: needs root: <reason>` on stderr and returns `false`
/// (the test returns and passes), unless `BEAKER_TEST_REQUIRE_ROOT=1`, which makes it panic.
pub fn root_only(reason: &str) -> bool {
    let current = std::thread::current();
    let test = current.name().unwrap_or("this test");
    match root_only_decision(
        beaker::who::is_root(),
        std::env::var_os(REQUIRE_ROOT_VAR).as_deref(),
    ) {
        RootOnly::Run => true,
        RootOnly::NotRun => {
            eprintln!("not run: {test}: needs root: {reason} (set {REQUIRE_ROOT_VAR}=1 to make this a failure)");
            false
        }
        RootOnly::Fail => panic!(
            "{test} needs root ({reason}), and {REQUIRE_ROOT_VAR}=1 demands that it runs; run the tests as root"
        ),
    }
}

/// A temp directory for one test; `store` is a path inside it (not created).
pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("beaker-test-")
            .tempdir()
            .expect("temp dir");
        let store = dir.path().join("store");
        Env { dir, store }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `bytes` to `rel` inside the temp dir and returns its path.
    pub fn file(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, bytes).expect("write test file");
        p
    }

    /// A `beaker` command with `--store` set to this test's store and a clean environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--store").arg(&self.store);
        c.env_remove("BEAKER_STORE")
            .env_remove("BEAKER_MANIFEST")
            .env_remove("BEAKER_OFFLINE")
            // Never the developer's or the machine's configuration files.
            .env("BEAKER_CONFIG", self.dir.path().join("no-user-config.toml"))
            .env(
                "BEAKER_SYSTEM_CONFIG",
                self.dir.path().join("no-system-config.toml"),
            )
            .stdin(Stdio::null());
        // Tests talk to loopback servers only: never through a proxy, never with a CA from outside.
        for var in PROXY_AND_CA_VARS {
            c.env_remove(var);
        }
        c
    }

    /// Runs `beaker --store S args…` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd().args(args).output().expect("spawn beaker"))
    }

    pub fn blob_names(&self) -> Vec<String> {
        list_names(&self.store.join("blobs"))
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// A finished process: exit code and captured output.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts exit 0 and returns stdout's last line.
    pub fn ok(&self) -> String {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self.stdout.lines().last().unwrap_or("").to_owned()
    }

    /// Asserts the exit code and that stderr mentions every one of `needles`.
    pub fn fails(&self, code: i32, needles: &[&str]) -> &Run {
        assert_eq!(self.code, code, "wrong exit code: {self:#?}");
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr should mention {n:?}: {self:#?}"
            );
        }
        self
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not the expected JSON ({e}): {self:#?}"))
    }
}

/// File names in `dir`, sorted (empty if it does not exist).
pub fn list_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

pub fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

/// Deterministic pseudo-random bytes (so failures reproduce).
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        let mut h = blake3::Hasher::new();
        h.update(&seed.to_le_bytes());
        h.update(&counter.to_le_bytes());
        out.extend_from_slice(h.finalize().as_bytes());
        counter += 1;
    }
    out.truncate(len);
    out
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
    let dir = std::env::temp_dir().join(format!("beaker-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let so = dir.join(format!("{name}.so"));
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .output()
        .expect("these tests need a C compiler (`cc`) to build an LD_PRELOAD shim");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    so
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

impl Run {
    /// Asserts that the failure is told in exactly one line, the last one (`beaker: error: …`),
    /// and that every other line on stderr is a download's progress line of a non-terminal
    /// (`WHAT: SIZE…` when it starts, `WHAT: SIZE in T s` when it ends).
    pub fn one_error_line(&self) -> &Run {
        let lines: Vec<&str> = self.stderr.lines().collect();
        let errors = lines
            .iter()
            .filter(|l| l.starts_with("beaker: error:"))
            .count();
        assert_eq!(errors, 1, "one error line: {self:#?}");
        assert!(
            lines
                .last()
                .is_some_and(|l| l.starts_with("beaker: error:")),
            "the error comes last: {self:#?}"
        );
        for l in &lines[..lines.len() - 1] {
            let progress = l.ends_with('…') || (l.contains(" in ") && l.ends_with(" s"));
            assert!(
                progress,
                "only progress lines besides the error: {l:?} in {self:#?}"
            );
        }
        self
    }
}
