//! The Windows half of `cargo xtask test`: beaker's library, binary and integration tests built
//! for `x86_64-pc-windows-gnu` and run under wine (docs/design.md#platforms), with everything
//! they need set up here, idempotently, under `target/wine/`:
//!
//! - Debian's `gcc-mingw-w64-x86-64` (the linker and the C compiler of build scripts) and
//!   `wine64` (apt-get, as root), and rustup's `x86_64-pc-windows-gnu` target;
//! - a wine prefix (`target/wine/prefix`) with a stub `bcryptprimitives.dll` in its system32:
//!   Rust's std imports `ProcessPrng` from it, which wine 8.0 lacks (programs die with
//!   c0000135); the stub, built here with mingw, answers it with `RtlGenRandom`;
//! - ONNX Runtime for Windows, `onnxruntime.dll` from PyPI's win_amd64 wheel of the same version
//!   as Linux's (`target/wine/ort/`), so the ONNX tests load a real runtime there too.
//!
//! The tests that need what Windows or wine lacks (Unix users and modes, FUSE, FIFOs, symlinks,
//! signals, the registry server) are `#[cfg(unix)]`, each with its reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::ONNXRUNTIME;

const TARGET: &str = "x86_64-pc-windows-gnu";
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";
const WINE: &str = "/usr/lib/wine/wine64";
/// The stub for wine 8.0's missing export (see the module doc).
const PRNG_STUB: &str = r#"#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) { return SystemFunction036(data, (ULONG)len); }
"#;

/// Sets up wine and runs the Windows tests with `args` (a test name filter, `-- --nocapture`);
/// whether they passed.
pub fn run(args: &[String]) -> Result<bool> {
    packages()?;
    let root = std::env::current_dir().context("the checkout")?;
    let wine = root.join("target/wine");
    beaker::fsx::user::create_dir_all(&wine)?;
    let prefix = wine.join("prefix");
    prepare_prefix(&wine, &prefix)?;
    let ort = windows_runtime(&wine)?;
    eprintln!(
        "xtask test: Windows tests under wine ({TARGET}); ONNX Runtime: {}",
        ort.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "test", "--target", TARGET, "-p", "beaker", "--lib", "--bins",
        ])
        .args(["--test", "integration"])
        .args(args)
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER", MINGW_GCC)
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", WINE)
        .env("WINEPREFIX", &prefix)
        .env("WINEDEBUG", "-all")
        // wine's Z: drive is the Unix root.
        .env("ORT_DYLIB_PATH", format!("Z:{}", ort.display()))
        .status()
        .context("cannot run cargo test for Windows")?;
    // No wineserver is left running after the tests.
    let _ = Command::new("wineserver")
        .arg("-k")
        .env("WINEPREFIX", &prefix)
        .status();
    Ok(status.success())
}

/// mingw and wine from Debian (as root), and the Rust target.
fn packages() -> Result<()> {
    let have = |p: &str| beaker::fsx::user::exists(Path::new(p));
    let mut missing = Vec::new();
    if !have(&format!("/usr/bin/{MINGW_GCC}")) {
        missing.push("gcc-mingw-w64-x86-64");
    }
    if !have(WINE) {
        missing.push("wine64");
    }
    if !missing.is_empty() {
        if !beaker::who::is_root() {
            bail!(
                "the Windows tests need: sudo apt-get install -y {}",
                missing.join(" ")
            );
        }
        eprintln!("xtask test: installing {} with apt-get", missing.join(" "));
        super::apt_install(&missing)?;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("rustup target add {TARGET} failed ({status})");
    }
    Ok(())
}

/// The wine prefix, made once, with the `ProcessPrng` stub in its system32.
fn prepare_prefix(wine: &Path, prefix: &Path) -> Result<()> {
    let system32 = prefix.join("drive_c/windows/system32");
    if !beaker::fsx::user::exists(&system32.join("kernel32.dll")) {
        eprintln!("xtask test: making a wine prefix in {}", prefix.display());
        let status = Command::new(WINE)
            .args(["wineboot", "-i"])
            .env("WINEPREFIX", prefix)
            .env("WINEDEBUG", "-all")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .context("cannot run wine")?;
        if !status.success() || !beaker::fsx::user::exists(&system32.join("kernel32.dll")) {
            bail!("wineboot -i in {} failed ({status})", prefix.display());
        }
    }
    let stub = system32.join("bcryptprimitives.dll");
    if !beaker::fsx::user::exists(&stub) {
        let source = wine.join("bcryptprimitives.c");
        beaker::fsx::user::write_file(&source, PRNG_STUB.as_bytes())?;
        let status = Command::new(MINGW_GCC)
            .args(["-shared", "-O2", "-o"])
            .arg(&stub)
            .arg(&source)
            .arg("-ladvapi32")
            .status()
            .with_context(|| format!("cannot run {MINGW_GCC}"))?;
        if !status.success() {
            bail!("{MINGW_GCC} could not build the ProcessPrng stub ({status})");
        }
    }
    Ok(())
}

/// `onnxruntime.dll` of [`ONNXRUNTIME`], from PyPI's win_amd64 wheel (downloaded once).
fn windows_runtime(wine: &Path) -> Result<PathBuf> {
    let dir = wine.join("ort");
    let dll = dir.join("onnxruntime/capi/onnxruntime.dll");
    if beaker::fsx::user::exists(&dll) {
        return Ok(dll);
    }
    eprintln!(
        "xtask test: downloading {ONNXRUNTIME} for Windows from PyPI into {}",
        dir.display()
    );
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
        ])
        .args([
            "--platform",
            "win_amd64",
            "--python-version",
            "3.11",
            "--dest",
        ])
        .arg(&dir)
        .arg(ONNXRUNTIME)
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .status()
        .context("cannot run python3 -m pip")?;
    if !status.success() {
        bail!("pip could not download {ONNXRUNTIME} for win_amd64 ({status}); is PyPI reachable?");
    }
    // The wheel is a zip: its capi/ DLLs are all the tests need.
    let unpack = "import glob, sys, zipfile\n\
        wheel = glob.glob(sys.argv[1] + '/onnxruntime-*win_amd64.whl')[0]\n\
        names = [n for n in zipfile.ZipFile(wheel).namelist() if n.startswith('onnxruntime/capi/') and n.endswith('.dll')]\n\
        zipfile.ZipFile(wheel).extractall(sys.argv[1], names)\n";
    let status = Command::new("python3")
        .args(["-c", unpack])
        .arg(&dir)
        .status()
        .context("cannot run python3")?;
    if !status.success() || !beaker::fsx::user::exists(&dll) {
        bail!("the {ONNXRUNTIME} wheel for Windows has no onnxruntime/capi/onnxruntime.dll");
    }
    Ok(dll)
}
