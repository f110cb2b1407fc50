//! The torture campaign's workbench: a temp directory per case, the real `beaker` binary run with
//! a clean environment (no user or system configuration, no proxies), finished runs with their
//! exit code and output, deterministic test bytes, catalogues, and a seeded random source.
//!
//! Everything here only prepares files *outside* the store under test or reads the store; the
//! store is changed only by the beaker processes the cases start.

// The workbench writes catalogues and model files with raw std::fs (they are fixtures outside
// any store; the store itself is only ever written by beaker).
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Variables that would send requests elsewhere or change whom beaker trusts.
const PROXY_AND_CA_VARS: [&str; 8] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
];

/// One case's temp directory, the store path inside it and the binary under test.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
    pub bin: PathBuf,
}

impl Lab {
    /// A fresh temp directory named after `case`; the store path is `<dir>/store` (not created).
    pub fn new(bin: &Path, case: &str) -> Result<Lab> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("beaker-torture-{case}-"))
            .tempdir()
            .context("cannot create a temp directory for the campaign")?;
        let store = dir.path().join("store");
        Ok(Lab {
            dir,
            store,
            bin: bin.to_owned(),
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `bytes` to `rel` inside the temp dir (parents created) and returns its path.
    pub fn file(&self, rel: &str, bytes: &[u8]) -> Result<PathBuf> {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("mkdir {}", parent.display()))?;
        }
        std::fs::write(&p, bytes).with_context(|| format!("write {}", p.display()))?;
        Ok(p)
    }

    /// `beaker --store STORE` with a clean environment and fast network settings.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--store").arg(&self.store);
        clean_env(&mut c, self.dir.path());
        c
    }

    /// Runs `beaker --store STORE args…` to completion (killed after `LIMIT`: a hang is a finding).
    pub fn run(&self, args: &[&str]) -> Result<Run> {
        run_within(self.cmd().args(args), LIMIT)
    }
}

/// How long any one beaker process may take before the campaign calls it a hang.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Clears every variable that would make a run depend on the machine it runs on.
pub fn clean_env(c: &mut Command, dir: &Path) {
    c.env_remove("BEAKER_STORE")
        .env_remove("BEAKER_MANIFEST")
        .env_remove("BEAKER_OFFLINE")
        .env("BEAKER_CONFIG", dir.join("no-user-config.toml"))
        .env("BEAKER_SYSTEM_CONFIG", dir.join("no-system-config.toml"))
        .env("BEAKER_RETRY_BASE", "20ms")
        .env("BEAKER_STALL_TIMEOUT", "2s")
        .env("BEAKER_CONNECT_TIMEOUT", "2s")
        .stdin(Stdio::null());
    for var in PROXY_AND_CA_VARS {
        c.env_remove(var);
    }
}

/// A finished process. `code` is `None` when a signal ended it.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The exit code as a table cell (`signal` when a signal ended the process).
    pub fn code_text(&self) -> String {
        self.code
            .map_or_else(|| "signal".to_owned(), |c| c.to_string())
    }

    /// The error line beaker printed (`beaker: error: …`), else stderr's last line.
    pub fn message(&self) -> String {
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("beaker: error:"))
            .or_else(|| self.stderr.lines().last())
            .unwrap_or("");
        line.trim_start_matches("beaker: error: ").to_owned()
    }

    /// stdout's last line (what `pull`/`add` print: the model's path).
    pub fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }

    /// A one-line description for a violation report.
    pub fn describe(&self) -> String {
        format!("exit {}: {}", self.code_text(), self.message())
    }
}

/// Runs `cmd` with its output captured; kills it and reports a hang after `limit`.
pub fn run_within(cmd: &mut Command, limit: Duration) -> Result<Run> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    finish_within(child, limit)
}

/// Waits for `child` (started with piped output), killing it after `limit`.
pub fn finish_within(mut child: Child, limit: Duration) -> Result<Run> {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().context("wait for beaker")?.is_some() {
            return Ok(Run::from(child.wait_with_output()?));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            anyhow::bail!(
                "a beaker process was still running after {limit:?} (a hang): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Deterministic pseudo-random bytes (so a failing trial reproduces from its seed).
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    let mut reader = h.finalize_xof();
    out.resize(len, 0);
    reader.fill(&mut out);
    out
}

pub fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// One file of a catalogue entry: its path in the model, its bytes, its URLs.
pub struct ModelFile<'a> {
    pub path: &'a str,
    pub bytes: &'a [u8],
    pub urls: Vec<String>,
}

/// Writes a catalogue with one entry per `(name, files)`; a single file is a plain entry.
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

/// A small seeded random source (splitmix64): the campaign's choices reproduce from `--seed`.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
