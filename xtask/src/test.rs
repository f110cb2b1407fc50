//! `cargo xtask test [ARGS…]`: the README's test command. Finds ONNX Runtime the way beaker
//! does (`ORT_DYLIB_PATH`, python3's onnxruntime, the checkout's `.ort/`); when there is none,
//! installs it from PyPI into the git-ignored `.ort/` (`python3 -m pip install --no-deps
//! --target .ort onnxruntime==1.31.1`); then runs `cargo test --workspace ARGS…` with
//! `ORT_DYLIB_PATH` pointing at it, so the ONNX tests and the session doctest load it. Then the
//! Windows tests: the library, binary and integration tests built for Windows and run under wine
//! ([`windows`], which sets wine up); `BEAKER_TEST_WINDOWS=0` leaves them out of a local run.
//!
//! The registry tests need Debian's `docker-registry` and `htpasswd` (apache2-utils), the
//! oras interop test python3's venv, and the test filesystem (testkit::testfs) `/dev/fuse`,
//! with `fusermount3` (fuse3) as the mount's fallback: when a package is missing and this runs
//! as root, it is installed with apt-get; otherwise the command that installs it is printed,
//! and those tests fail saying so (they never skip). Without `/dev/fuse` this warns: the
//! test filesystem's tests fail as root (and are "not run" as another user).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

use beaker::onnx::runtime::{self, Origin};

mod windows;

/// The runtime version installed into `.ort/` (docs/design.md#onnx: what works on these machines).
const ONNXRUNTIME: &str = "onnxruntime==1.31.1";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Passed on to `cargo test --workspace` (e.g. a test name filter, `-- --nocapture`)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    system_packages()?;
    let lib = find_or_install()?;
    eprintln!("xtask test: ONNX Runtime: {}", lib.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace"])
        .args(&args.args)
        .env("ORT_DYLIB_PATH", &lib)
        .status()
        .context("cannot run cargo test")?;
    let linux = match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    };
    if std::env::var_os("BEAKER_TEST_WINDOWS").is_some_and(|v| v == "0") {
        eprintln!("xtask test: BEAKER_TEST_WINDOWS=0: the Windows tests were not run");
        return Ok(linux);
    }
    let windows = windows::run(&args.args)?;
    if status.success() && !windows {
        return Ok(ExitCode::FAILURE);
    }
    Ok(linux)
}

/// `apt-get install -y PACKAGES…` after an update, non-interactive.
fn apt_install(packages: &[&str]) -> Result<()> {
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("cannot run apt-get")
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend(packages);
    let status = apt(&install)?;
    if !status.success() {
        bail!("apt-get install {} failed ({status})", packages.join(" "));
    }
    Ok(())
}

/// The Debian packages the registry tests and the test filesystem need, installed with apt-get
/// when missing (as root).
fn system_packages() -> Result<()> {
    let have = |p: &str| beaker::fsx::user::exists(Path::new(p));
    let venv = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut missing = Vec::new();
    if !have("/usr/bin/docker-registry") {
        missing.push("docker-registry");
    }
    if !have("/usr/bin/htpasswd") {
        missing.push("apache2-utils");
    }
    if !venv {
        missing.push("python3-venv");
    }
    if !have("/usr/bin/fusermount3") && !have("/bin/fusermount3") {
        missing.push("fuse3");
    }
    if !have(testkit::testfs::DEV_FUSE) {
        eprintln!(
            "xtask test: {} is missing: the test filesystem's tests will fail (modprobe fuse; in a container: --device /dev/fuse --cap-add SYS_ADMIN)",
            testkit::testfs::DEV_FUSE
        );
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !beaker::who::is_root() {
        eprintln!(
            "xtask test: the registry tests and the test filesystem need: sudo apt-get install -y {} (they fail without it)",
            missing.join(" ")
        );
        return Ok(());
    }
    eprintln!("xtask test: installing {} with apt-get", missing.join(" "));
    apt_install(&missing)
}

/// The library the tests will load: one beaker would find, else a fresh install in `.ort/`.
fn find_or_install() -> Result<PathBuf> {
    let (found, missed) = runtime::candidates();
    if let Some((origin, path)) = found.into_iter().next() {
        if origin == Origin::Env
            && !beaker::fsx::user::metadata(&path).is_ok_and(|m| m.is_some_and(|m| m.is_file()))
        {
            bail!(
                "ORT_DYLIB_PATH={} is not a file; unset it (xtask test then finds or installs ONNX Runtime) or point it at libonnxruntime.so*",
                path.display()
            );
        }
        return Ok(path);
    }
    eprintln!(
        "xtask test: no ONNX Runtime found ({}); installing {ONNXRUNTIME} from PyPI into .ort/",
        missed.join("; ")
    );
    let capi = runtime::checkout_dir();
    let target = capi
        .ancestors()
        .nth(2)
        .map(Path::to_owned)
        .context("internal error: .ort/ has no parent")?;
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--upgrade",
            "--target",
        ])
        .arg(&target)
        .arg(ONNXRUNTIME)
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .status()
        .context("cannot run python3; install Python 3 and pip (apt-get install python3-pip)")?;
    if !status.success() {
        bail!(
            "`python3 -m pip install --no-deps --target {} {ONNXRUNTIME}` failed ({status}); is pip installed (apt-get install python3-pip) and PyPI reachable?",
            target.display()
        );
    }
    runtime::library_in(&capi).with_context(|| {
        format!(
            "pip installed {ONNXRUNTIME} but {} has no libonnxruntime.so*",
            capi.display()
        )
    })
}
