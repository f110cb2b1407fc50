//! The lab: a temp directory per test or case with a store path inside it, the beaker binary run
//! with a clean environment (no user or system configuration, no proxy, no outside CA), finished
//! runs with their exit code and output ([`Run`]), waits bounded so a hang is a finding
//! ([`run_within`], [`finish_within`]), deterministic test bytes, BLAKE3 hex, a seeded random
//! source ([`Rng`]), the catalogue writer, and a small tmpfs for full-disk runs ([`SmallDisk`]).
//!
//! Everything here prepares files *outside* the store under test, or reads it; the store itself
//! is only ever changed by the beaker processes a test starts.

// Fixtures (catalogues, model files) are written and listed with raw std::fs: they live outside
// any store, which is what clippy.toml's ban protects.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Variables that would send a run's requests elsewhere or change whom it trusts.
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

/// Network settings that make a lying server cost seconds, not minutes: short retry backoff,
/// stall and connect timeouts.
pub const FAST_NETWORK: [(&str, &str); 3] = [
    ("BEAKER_RETRY_BASE", "20ms"),
    ("BEAKER_STALL_TIMEOUT", "2s"),
    ("BEAKER_CONNECT_TIMEOUT", "2s"),
];

/// How long one beaker process may take in [`Lab::run`] before it counts as a hang.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Clears every variable that would make a run depend on the machine it runs on: the store,
/// catalogue and offline settings, the configuration files (pointed at files that do not exist
/// in `dir`), proxies and outside CAs; stdin is null.
pub fn clean_env<'a>(c: &'a mut Command, dir: &Path) -> &'a mut Command {
    c.env_remove("BEAKER_STORE")
        .env_remove("BEAKER_MANIFEST")
        .env_remove("BEAKER_OFFLINE")
        .env("BEAKER_CONFIG", dir.join("no-user-config.toml"))
        .env("BEAKER_SYSTEM_CONFIG", dir.join("no-system-config.toml"))
        .stdin(Stdio::null());
    for var in PROXY_AND_CA_VARS {
        c.env_remove(var);
    }
    c
}

/// One test's or case's temp directory (removed on drop), the store path inside it and the
/// binary under test.
pub struct Lab {
    pub dir: tempfile::TempDir,
    /// `<dir>/store` (not created); a test may point it elsewhere.
    pub store: PathBuf,
    pub bin: PathBuf,
    /// Variables every command of this lab sets on top of the clean environment.
    env: Vec<(String, String)>,
}

impl Lab {
    /// A fresh temp directory whose name starts with `prefix`, for the binary `bin`.
    pub fn new(bin: &Path, prefix: &str) -> Result<Lab> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context("cannot create a temp directory for the lab")?;
        let store = dir.path().join("store");
        Ok(Lab {
            dir,
            store,
            bin: bin.to_owned(),
            env: Vec::new(),
        })
    }

    /// The same lab, every command of which also sets `vars` (e.g. [`FAST_NETWORK`]).
    pub fn with_env(mut self, vars: &[(&str, &str)]) -> Lab {
        self.push_env(vars);
        self
    }

    /// Every command of this lab from now on also sets `vars`.
    pub fn push_env(&mut self, vars: &[(&str, &str)]) {
        self.env
            .extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    }

    /// `rel` inside the temp directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `bytes` to `rel` inside the temp directory (parents created); returns its path.
    pub fn file(&self, rel: &str, bytes: &[u8]) -> Result<PathBuf> {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("mkdir {}", parent.display()))?;
        }
        std::fs::write(&p, bytes).with_context(|| format!("write {}", p.display()))?;
        Ok(p)
    }

    /// Gives `c` this lab's clean environment: [`clean_env`] and the lab's own variables.
    pub fn clean<'a>(&self, c: &'a mut Command) -> &'a mut Command {
        clean_env(c, self.dir.path()).envs(self.env.iter().map(|(k, v)| (k, v)))
    }

    /// `beaker --store STORE` with this lab's clean environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--store").arg(&self.store);
        self.clean(&mut c);
        c
    }

    /// Runs `beaker --store STORE args…` to completion (killed after [`LIMIT`]: a hang is an
    /// error).
    pub fn run(&self, args: &[&str]) -> Result<Run> {
        run_within(self.cmd().args(args), LIMIT)
    }

    /// The names in the store's `blobs/`, sorted.
    pub fn blob_names(&self) -> Vec<String> {
        list_names(&self.store.join("blobs"))
    }
}

/// A finished process: exit code and captured output.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit code; -1 when a signal ended the process (then [`Run::signal`] says which).
    pub code: i32,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        #[cfg(unix)]
        let signal = std::os::unix::process::ExitStatusExt::signal(&o.status);
        #[cfg(not(unix))]
        let signal = None;
        Run {
            code: o.status.code().unwrap_or(-1),
            signal,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Exit 0.
    pub fn success(&self) -> bool {
        self.code == 0 && self.signal.is_none()
    }

    /// The exit code as a table cell (`signal` when a signal ended the process).
    pub fn code_text(&self) -> String {
        match self.signal {
            Some(_) => "signal".to_owned(),
            None => self.code.to_string(),
        }
    }

    /// The error line beaker printed (`beaker: error: …`, prefix removed), else stderr's last
    /// line.
    pub fn message(&self) -> String {
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("beaker: error:"))
            .or_else(|| self.stderr.lines().last())
            .unwrap_or("");
        line.trim_start_matches("beaker: error: ").to_owned()
    }

    /// stdout's last line (what `pull`/`add`/`path` print: the model's path).
    pub fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }

    /// A one-line description for a report: `exit CODE: MESSAGE`.
    pub fn describe(&self) -> String {
        format!("exit {}: {}", self.code_text(), self.message())
    }

    /// For tests: asserts exit 0 (panics with the whole run otherwise) and returns stdout's last
    /// line.
    pub fn ok(&self) -> String {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self.last_line().to_owned()
    }

    /// For tests: asserts the exit code and that stderr mentions every one of `needles`.
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

    /// For tests: stdout parsed as JSON (panics with the whole run when it is not `T`).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not the expected JSON ({e}): {self:#?}"))
    }

    /// For tests: asserts that the failure is told in exactly one line, the last one (`beaker:
    /// error: …`), and that every other line on stderr is a download's progress line of a
    /// non-terminal (`WHAT: SIZE…` when it starts, `WHAT: SIZE in T s` when it ends).
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

/// Runs `cmd` with its output captured; kills it and returns an error after `limit` (a hang).
pub fn run_within(cmd: &mut Command, limit: Duration) -> Result<Run> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    finish_within(child, limit).with_context(|| format!("{cmd:?}"))
}

/// Waits for `child` (started with piped output) and collects its output; SIGKILLs it and
/// returns an error with what it printed on stderr after `limit` (a hang).
pub fn finish_within(child: Child, limit: Duration) -> Result<Run> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => Ok(Run::from(out.context("wait for the process")?)),
        Err(_) => {
            let killed = send_signal(pid, SIGKILL);
            // What it said before the kill, if its output ends soon (a grandchild may hold it).
            let stderr = rx
                .recv_timeout(Duration::from_secs(5))
                .ok()
                .and_then(Result::ok)
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default();
            bail!(
                "still running after {limit:?}: it hangs ({}); stderr: {stderr}",
                match killed {
                    Ok(()) => "killed".to_owned(),
                    Err(e) => format!("and the kill failed: {e}"),
                }
            )
        }
    }
}

/// SIGKILL's number (9 everywhere); on Windows [`send_signal`] ends the process with it.
pub const SIGKILL: i32 = 9;

/// Ends the process `pid` (one of the caller's children): `taskkill /F` on Windows, which has
/// no signals.
#[cfg(windows)]
pub fn send_signal(pid: u32, _signal: i32) -> std::io::Result<()> {
    let status = std::process::Command::new("taskkill")
        .args(["/F", "/PID", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "taskkill /F /PID {pid}: {status}"
        )))
    }
}

/// Sends `signal` to the process `pid` (one of the caller's children).
#[cfg(unix)]
pub fn send_signal(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .map_err(|_| std::io::Error::other(format!("pid {pid} does not fit in pid_t")))?;
    #[allow(
        unsafe_code,
        reason = "kill(2) has no std wrapper for signals other than SIGKILL"
    )]
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// File names in `dir`, sorted (empty if it cannot be read).
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

/// Deterministic pseudo-random bytes (BLAKE3's output stream of the seed), so that a failure
/// reproduces; `bytes(n, s)` is a prefix of `bytes(m, s)` for `n < m`.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    let mut out = vec![0u8; len];
    h.finalize_xof().fill(&mut out);
    out
}

/// The BLAKE3 of `bytes`, lowercase hex (a blob's name).
pub fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// A small seeded random source (splitmix64): choices reproduce from a seed, and its output
/// does not compress.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next output.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Fills `buf` with the next outputs, little-endian, 8 bytes each.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }
}

/// One file of a catalogue entry: its path in the model, its bytes, its URLs.
pub struct ModelFile<'a> {
    pub path: &'a str,
    pub bytes: &'a [u8],
    pub urls: Vec<String>,
}

/// Writes a catalogue to `rel` in the lab with one entry per `(name, files)`, each file pinned
/// by BLAKE3 and size; a model of one file is a plain entry (`file = PATH`).
pub fn catalogue(lab: &Lab, rel: &str, models: &[(&str, Vec<ModelFile<'_>>)]) -> Result<PathBuf> {
    let mut text = String::from("version = 1\n");
    for (name, files) in models {
        if let [f] = files.as_slice() {
            text.push_str(&format!(
                "[models.{name}]\nblake3 = \"{}\"\nsize = {}\nurls = {:?}\nfile = \"{}\"\n",
                blake3_hex(f.bytes),
                f.bytes.len(),
                f.urls,
                f.path
            ));
            continue;
        }
        text.push_str(&format!("[models.{name}]\n"));
        for f in files {
            text.push_str(&format!(
                "[[models.{name}.files]]\npath = \"{}\"\nblake3 = \"{}\"\nsize = {}\nurls = {:?}\n",
                f.path,
                blake3_hex(f.bytes),
                f.bytes.len(),
                f.urls
            ));
        }
    }
    lab.file(rel, text.as_bytes())
}

/// A tmpfs of a few KiB mounted at `dir` (mode 0755) for the life of the value, to fill a real
/// disk (ENOSPC). Mounting needs root.
pub struct SmallDisk {
    pub dir: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `kib` KiB at `dir` (created if missing).
    pub fn mount(dir: &Path, kib: u64) -> Result<SmallDisk> {
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .context("run mount")?;
        if !out.status.success() {
            bail!(
                "mount a tmpfs at {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(SmallDisk {
            dir: dir.to_owned(),
        })
    }

    /// Makes room: remounts the tmpfs at `kib` KiB, keeping what it holds.
    pub fn grow(&self, kib: u64) -> Result<()> {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(&self.dir)
            .status()
            .context("run mount")?
            .success();
        anyhow::ensure!(ok, "remount {} at {kib} KiB", self.dir.display());
        Ok(())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// A filesystem made for the test (`mkfs.<fs>` on a sparse image of `mib` MiB) and loop-mounted
/// at `dir` for the life of the value. Needs root and the filesystem's mkfs (`btrfs-progs`,
/// `xfsprogs`: `.ci/run` installs them).
pub struct LoopDisk {
    pub dir: PathBuf,
}

impl LoopDisk {
    /// Makes `image` (sparse) with `mkfs.<fs> <args> image` and mounts it at `dir`.
    pub fn mount(image: &Path, dir: &Path, mib: u64, fs: &str, args: &[&str]) -> Result<LoopDisk> {
        let f =
            std::fs::File::create(image).with_context(|| format!("create {}", image.display()))?;
        f.set_len(mib << 20)
            .with_context(|| format!("size {}", image.display()))?;
        drop(f);
        let out = Command::new(format!("mkfs.{fs}"))
            .args(args)
            .arg(image)
            .output()
            .with_context(|| format!("run mkfs.{fs} (is it installed?)"))?;
        if !out.status.success() {
            bail!(
                "mkfs.{fs} {}: {}",
                image.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(dir)
            .output()
            .context("run mount")?;
        if !out.status.success() {
            bail!(
                "mount {} at {}: {}",
                image.display(),
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(LoopDisk {
            dir: dir.to_owned(),
        })
    }

    /// Bytes in use on the filesystem, after a `sync` (delayed allocation counted).
    pub fn used(&self) -> Result<u64> {
        Command::new("sync").status().context("run sync")?;
        let out = Command::new("df")
            .args(["--output=used", "-B1"])
            .arg(&self.dir)
            .output()
            .context("run df")?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("df of {}", self.dir.display()))
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_deterministic_and_prefixes_of_longer_runs() {
        assert_eq!(bytes(100, 7), bytes(100, 7));
        assert_eq!(bytes(100, 7)[..], bytes(1000, 7)[..100]);
        assert_ne!(bytes(100, 7), bytes(100, 8));
    }

    #[test]
    fn rng_fill_is_the_stream_of_next_little_endian() {
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        let mut buf = [0u8; 12];
        a.fill(&mut buf);
        assert_eq!(buf[..8], b.next_u64().to_le_bytes());
        assert_eq!(buf[8..], b.next_u64().to_le_bytes()[..4]);
    }

    #[cfg(unix)]
    #[test]
    fn a_run_ended_by_a_signal_says_so() {
        let r = Run::from(
            Command::new("sh")
                .args(["-c", "kill -9 $$"])
                .output()
                .expect("run sh"),
        );
        assert_eq!((r.code, r.signal), (-1, Some(libc::SIGKILL)));
        assert_eq!(r.code_text(), "signal");
        assert!(!r.success());
    }

    #[test]
    fn a_hang_is_killed_and_reported() {
        let t = std::time::Instant::now();
        let err = run_within(
            Command::new("sh").args(["-c", "echo waiting >&2; exec sleep 30"]),
            Duration::from_millis(300),
        )
        .expect_err("a hang is an error");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        let text = format!("{err:#}");
        assert!(
            text.contains("it hangs") && text.contains("waiting"),
            "{text}"
        );
    }
}
