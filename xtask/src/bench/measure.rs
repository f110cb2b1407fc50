//! Timing one command: wall time from spawn to exit and its peak RSS, read from the kernel's
//! `wait4` accounting (which covers the process and every child it waited for, so a `sh -c`
//! pipeline reports its largest member) in a small helper process, and min/median/max over runs.
// wait4(2) is the one libc call here: std's `Child::wait` drops the rusage the kernel returns.
#![allow(unsafe_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// One run of one command.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// Peak resident set size in bytes.
    pub rss: u64,
}

/// Runs `cmd` with stdout discarded and stderr captured; fails (with its stderr) unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<Sample> {
    let (sample, ok, stderr) = run_status(cmd)?;
    if !ok {
        bail!("{cmd:?} failed: {stderr}");
    }
    Ok(sample)
}

/// Runs `cmd` and returns its sample, whether it exited 0, and its stderr.
///
/// The command is started by a fresh `xtask bench-exec` (see [`exec_and_report`]), not by this
/// process: the kernel folds the peak RSS of the address space a process *exec'd from* into its
/// own, so a command spawned straight from a bench that has grown (it fills stores of 20,000
/// names) would report the bench's peak as its own.
pub fn run_status(cmd: &mut Command) -> Result<(Sample, bool, String)> {
    let err_file = tempfile_for_stderr()?;
    let mut helper = Command::new(std::env::current_exe().context("find the xtask binary")?);
    helper
        .arg("bench-exec")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => helper.env(key, v),
            None => helper.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        helper.current_dir(dir);
    }
    let out = helper
        .stderr(Stdio::from(
            err_file.reopen().context("reopen the stderr capture")?,
        ))
        .output()
        .with_context(|| format!("start {cmd:?}"))?;
    let stderr = beaker::fsx::user::read_to_string(err_file.path()).unwrap_or_default();
    let report = String::from_utf8_lossy(&out.stdout);
    let mut fields = report.split_whitespace().map(str::parse::<u64>);
    match (fields.next(), fields.next(), fields.next()) {
        (Some(Ok(nanos)), Some(Ok(rss)), Some(Ok(ok))) if out.status.success() => Ok((
            Sample {
                wall: Duration::from_nanos(nanos),
                rss,
            },
            ok == 1,
            stderr,
        )),
        _ => bail!("could not run {cmd:?} ({}): {stderr}", out.status),
    }
}

/// `xtask bench-exec PROGRAM ARGS…`: runs the program (stdout discarded, stderr passed on) and
/// prints `<wall nanoseconds> <peak RSS bytes> <1 if it exited 0, else 0>`. This process is
/// small and fresh, so the peak the kernel reports for the program is the program's own.
pub fn exec_and_report(program: &std::ffi::OsStr, args: &[std::ffi::OsString]) -> Result<()> {
    let start = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", program.to_string_lossy()))?;
    let (ok, rss) = wait4(child.id())?;
    let wall = start.elapsed();
    println!("{} {rss} {}", wall.as_nanos(), u8::from(ok));
    Ok(())
}

/// A spawned command that is waited for later (the concurrent pulls).
pub struct Running {
    pid: u32,
}

pub fn spawn(cmd: &mut Command) -> Result<Running> {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {cmd:?}"))?;
    Ok(Running { pid: child.id() })
}

impl Running {
    /// Waits for it; true when it exited 0.
    pub fn wait(self) -> Result<bool> {
        Ok(wait4(self.pid)?.0)
    }
}

fn tempfile_for_stderr() -> Result<StderrFile> {
    let dir = std::env::temp_dir();
    let path = beaker::fsx::user::unique_path(&dir, "beaker-bench-stderr", "txt");
    let file = beaker::fsx::user::create_new(&path, 0o600)?;
    drop(file);
    Ok(StderrFile { path })
}

/// A scratch file that receives a child's stderr and is removed when dropped.
struct StderrFile {
    path: std::path::PathBuf,
}

impl StderrFile {
    fn reopen(&self) -> std::io::Result<std::fs::File> {
        beaker::fsx::user::open_read_write(&self.path).map_err(std::io::Error::other)
    }
    fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for StderrFile {
    fn drop(&mut self) {
        let _ = beaker::fsx::user::remove_file_if_exists(&self.path);
    }
}

/// Reaps `pid` with wait4(2): (exited 0, peak RSS in bytes).
fn wait4(pid: u32) -> Result<(bool, u64)> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the types wait4 expects; pid is our child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context(format!("wait for process {pid}"));
        }
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    // ru_maxrss is in KiB on Linux.
    let rss = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    Ok((ok, rss))
}

/// min / median / max of a series.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Stats {
            min: v[0],
            median,
            max: v[v.len() - 1],
        })
    }
}

/// Every sample of one command over the runs of a job.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub samples: Vec<Sample>,
}

impl Series {
    pub fn push(&mut self, s: Sample) {
        self.samples.push(s);
    }
    /// Wall times in seconds.
    pub fn secs(&self) -> Option<Stats> {
        Stats::of(
            &self
                .samples
                .iter()
                .map(|s| s.wall.as_secs_f64())
                .collect::<Vec<_>>(),
        )
    }
    /// The largest peak RSS of any run, in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.samples.iter().map(|s| s.rss).max().unwrap_or(0)
    }
}
