//! Finding and loading ONNX Runtime, once per process (docs/design.md#onnx).
//!
//! beaker is built with ort's `load-dynamic`: nothing links against ONNX Runtime, the shared
//! library is opened at run time by [`environment`], the first time something needs it. Where
//! from, in order:
//!
//! 1. `--ort-lib PATH` (the CLI hands it to [`set_library`]), else
//! 2. `ORT_DYLIB_PATH`; either of these, when given, is the only candidate: a wrong explicit
//!    setting is reported, never silently replaced by another runtime;
//! 3. else the `onnxruntime` package of the user's `python3` (its `capi/libonnxruntime.so*`,
//!    which is where ML users already have it), found with `importlib.util.find_spec` (which does
//!    not import the package) under a timeout;
//! 4. else the `.ort/` folder of the checkout beaker was built from, where `cargo xtask test`
//!    installs the runtime from PyPI.
//!
//! If none loads, [`RuntimeError`] is one line naming each thing tried and the `pip` command
//! that fixes it. ort panics in some paths when given a wrong library (its implicit loader, a
//! null API table), so every candidate is checked to be a regular file first, and the load runs
//! under `catch_unwind` with the panic message captured instead of printed.
//!
//! The environment lives in a `OnceLock` for the rest of the process: ONNX Runtime allows one
//! environment per process, and a failed load is remembered too (the answer will not change).
//!
//! # Limitations
//! ort keeps the first library that passes its version check in a global of its own. A library
//! that passes it and then fails (a fake or broken build whose API table is null) therefore
//! stays loaded, and later candidates of the same process fail the same way; the message names
//! the first one, which is the one to fix or remove.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The pip command that installs a runtime this beaker loads (printed in every "not found").
pub const PIP_INSTALL: &str = "python3 -m pip install onnxruntime==1.31.1";

/// The runtime's library as this platform names it, for messages.
pub const LIBRARY: &str = if cfg!(windows) {
    "onnxruntime.dll"
} else if cfg!(target_os = "macos") {
    "libonnxruntime.dylib"
} else {
    "libonnxruntime.so"
};

/// How long the `python3` probe may take before it is killed and counted as "not found".
const PYTHON_TIMEOUT: Duration = Duration::from_secs(10);

/// No ONNX Runtime could be loaded. `Display` is one line: what was tried, why each failed, and
/// the command that fixes it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("ONNX Runtime is needed but none could be loaded (tried: {}); install it with `{PIP_INSTALL}`, or point --ort-lib or ORT_DYLIB_PATH at {LIBRARY}", tried.join("; "))]
pub struct RuntimeError {
    /// One entry per candidate: where it came from, its path, why it failed.
    pub tried: Vec<String>,
}

/// Where a candidate library came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
    Python,
    Checkout,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Flag => "--ort-lib",
            Origin::Env => "ORT_DYLIB_PATH",
            Origin::Python => "python3's onnxruntime",
            Origin::Checkout => "the checkout's .ort/",
        })
    }
}

static FLAG: OnceLock<PathBuf> = OnceLock::new();

/// How much of ONNX Runtime's own log reaches stderr: 0 nothing (its errors come back as the
/// error of the call that failed, which beaker reports), 1 warnings and errors, 2 and more
/// everything down to info. Set from `-v` by the CLI.
static LOG_VERBOSITY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets [`LOG_VERBOSITY`]'s level (the CLI's `-v` count).
pub fn set_log_verbosity(level: u8) {
    LOG_VERBOSITY.store(level, std::sync::atomic::Ordering::Relaxed);
}

/// One line of ONNX Runtime's log, as beaker prints it: plain text (ONNX Runtime's own logger
/// colours its lines with ANSI escapes whatever stderr is), or `None` at this verbosity.
#[cfg(feature = "onnx")]
fn log_line(level: ort::logging::LogLevel, message: &str, verbosity: u8) -> Option<String> {
    use ort::logging::LogLevel;
    let shown = match level {
        LogLevel::Warning | LogLevel::Error | LogLevel::Fatal => verbosity >= 1,
        LogLevel::Info | LogLevel::Verbose => verbosity >= 2,
    };
    let clean: String = strip_escapes(message);
    shown.then(|| {
        format!(
            "onnxruntime {}: {}",
            format!("{level:?}").to_lowercase(),
            clean.trim()
        )
    })
}

/// `text` without ANSI escape sequences (`ESC [ … letter`) or other control characters but
/// newline and tab.
#[cfg_attr(not(feature = "onnx"), allow(dead_code))]
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if !c.is_control() || c == '\n' || c == '\t' {
            out.push(c);
        }
    }
    out
}

/// Sets the library given with `--ort-lib`; must be called before the first [`environment`].
/// Returns false if a library was already set (the first one stays).
pub fn set_library(path: PathBuf) -> bool {
    FLAG.set(path).is_ok()
}

/// The candidates, in the order they are tried (see the module docs). A candidate that does not
/// exist is still listed when it was given explicitly (so the error names it); found ones only
/// when present. The second value lists what was looked at and found nothing.
pub fn candidates() -> (Vec<(Origin, PathBuf)>, Vec<String>) {
    if let Some(p) = FLAG.get() {
        return (vec![(Origin::Flag, p.clone())], Vec::new());
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        return (vec![(Origin::Env, PathBuf::from(p))], Vec::new());
    }
    let mut found = Vec::new();
    let mut missed = vec![
        "--ort-lib: not given".to_owned(),
        "ORT_DYLIB_PATH: not set".to_owned(),
    ];
    match python_package_dir() {
        Ok(dir) => match library_in(&dir.join("capi")) {
            Some(lib) => found.push((Origin::Python, lib)),
            None => missed.push(format!(
                "python3's onnxruntime at {}: no capi/{LIBRARY}*",
                dir.display()
            )),
        },
        Err(why) => missed.push(format!("python3's onnxruntime: {why}")),
    }
    let checkout = checkout_dir();
    match library_in(&checkout) {
        Some(lib) => found.push((Origin::Checkout, lib)),
        None => missed.push(format!("{}: no {LIBRARY}*", checkout.display())),
    }
    (found, missed)
}

/// Where `cargo xtask test` installs the runtime's shared library: `.ort/onnxruntime/capi/` of the
/// checkout this beaker was built from.
pub fn checkout_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".ort/onnxruntime/capi")
}

/// Whether `name` is ONNX Runtime's shared library on `os` (`std::env::consts::OS`):
/// `libonnxruntime.so[.<version>]` on Linux, `libonnxruntime[.<version>].dylib` on macOS,
/// `onnxruntime.dll` on Windows.
fn is_runtime_library(name: &str, os: &str) -> bool {
    match os {
        "macos" => {
            name.starts_with("libonnxruntime.") && name.ends_with(".dylib")
                || name == "libonnxruntime.dylib"
        }
        "windows" => name.eq_ignore_ascii_case("onnxruntime.dll"),
        _ => name == "libonnxruntime.so" || name.starts_with("libonnxruntime.so."),
    }
}

/// ONNX Runtime's library in `dir` ([`is_runtime_library`]; the pip wheel ships only the
/// versioned file); the plain name wins if both exist.
pub fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = crate::sys::fsx::user::read_dir(dir)
        .ok()?
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            is_runtime_library(&name, std::env::consts::OS)
        })
        .filter(|p| {
            crate::sys::fsx::user::metadata(p).is_ok_and(|m| m.is_some_and(|m| m.is_file()))
        })
        .collect();
    found.sort_by_key(|p| p.as_os_str().len());
    found.into_iter().next()
}

/// The directory of the `onnxruntime` package `python3` would import, without importing it.
fn python_package_dir() -> Result<PathBuf, String> {
    const PROBE: &str = "import importlib.util as u\n\
s = u.find_spec('onnxruntime')\n\
print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";
    let mut child = Command::new("python3")
        .args(["-c", PROBE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run python3 ({e})"))?;
    let start = Instant::now();
    // Poll: the probe normally answers in tens of milliseconds; a hung interpreter is killed.
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < PYTHON_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "python3 did not answer within {}s",
                    PYTHON_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot wait for python3 ({e})")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot read python3's answer ({e})"))?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if dir.is_empty() {
        return Err("not installed".into());
    }
    Ok(PathBuf::from(dir))
}

#[cfg(feature = "onnx")]
/// The process's ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static ort::environment::Environment, RuntimeError> {
    static ENV: OnceLock<Result<ort::environment::Environment, RuntimeError>> = OnceLock::new();
    ENV.get_or_init(load).as_ref().map_err(Clone::clone)
}

#[cfg(feature = "onnx")]
/// The library [`environment`] loaded, if it did, and where it was found.
pub fn loaded_library() -> Option<(Origin, &'static Path)> {
    LOADED.get().map(|(origin, path)| (*origin, path.as_path()))
}

#[cfg(feature = "onnx")]
static LOADED: OnceLock<(Origin, PathBuf)> = OnceLock::new();

#[cfg(feature = "onnx")]
fn load() -> Result<ort::environment::Environment, RuntimeError> {
    let (candidates, mut tried) = candidates();
    for (origin, path) in candidates {
        match load_one(&path) {
            Ok(env) => {
                let _ = LOADED.set((origin, path));
                return Ok(env);
            }
            Err(why) => tried.push(format!("{origin} {}: {why}", path.display())),
        }
    }
    Err(RuntimeError { tried })
}

#[cfg(feature = "onnx")]
/// Loads one candidate library and builds the environment, turning every failure (including a
/// panic inside ort) into a reason.
fn load_one(path: &Path) -> Result<ort::environment::Environment, String> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match crate::sys::fsx::user::metadata(&path) {
        Ok(None) => return Err("no such file".into()),
        Err(e) => return Err(format!("cannot inspect it ({})", e.source)),
        Ok(Some(m)) if m.is_dir() => {
            return Err(format!(
                "is a directory; give the path of the {LIBRARY}* file"
            ))
        }
        Ok(Some(m)) if !m.is_file() => return Err("not a regular file".into()),
        Ok(Some(_)) => {}
    }
    quietly(|| -> Result<ort::environment::Environment, String> {
        let builder = ort::init_from(&path).map_err(|e| match e {
            ort::LoadDynamicError::MissingApi { .. } => {
                "not an ONNX Runtime library (it does not export OrtGetApiBase)".to_owned()
            }
            e => e.to_string(),
        })?;
        builder
            .with_name("beaker")
            .with_telemetry(false)
            .with_logger(std::sync::Arc::new(
                |level: ort::logging::LogLevel,
                 _category: &str,
                 _id: &str,
                 _at: &str,
                 message: &str| {
                    let verbosity = LOG_VERBOSITY.load(std::sync::atomic::Ordering::Relaxed);
                    if let Some(line) = log_line(level, message, verbosity) {
                        eprintln!("{line}");
                    }
                },
            ))
            .build()
            .map_err(|e| format!("loaded, but creating the environment failed: {e}"))
    })
}

/// Runs `f`, turning a panic into an `Err` with its message, without printing it: ort panics
/// on some wrong libraries, and the user should see one clear line, not a backtrace note.
#[cfg(feature = "onnx")]
pub(crate) fn quietly<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    static HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = HOOK.lock().unwrap_or_else(|p| p.into_inner());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(format!("ONNX Runtime failed inside ort: {msg}"))
        }
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn the_library_is_named_as_each_platform_names_it() {
        assert!(is_runtime_library("libonnxruntime.so.1.31.1", "linux"));
        assert!(is_runtime_library("libonnxruntime.so", "linux"));
        assert!(!is_runtime_library("libonnxruntime.1.31.1.dylib", "linux"));
        assert!(is_runtime_library("libonnxruntime.1.31.1.dylib", "macos"));
        assert!(is_runtime_library("libonnxruntime.dylib", "macos"));
        assert!(!is_runtime_library("libonnxruntime.so.1", "macos"));
        assert!(is_runtime_library("onnxruntime.dll", "windows"));
        assert!(!is_runtime_library(
            "onnxruntime_providers_shared.dll",
            "windows"
        ));
        assert!(!is_runtime_library("libonnxruntime.so", "windows"));
        assert!(!is_runtime_library(
            "libonnxruntime_providers_shared.so",
            "linux"
        ));
    }

    #[test]
    fn escapes_and_control_characters_are_stripped() {
        assert_eq!(
            strip_escapes("\u{1b}[1;31m2026 [E:onnxruntime] bad\u{1b}[m\r\n"),
            "2026 [E:onnxruntime] bad\n"
        );
        assert_eq!(strip_escapes("plain\ttext"), "plain\ttext");
    }

    #[cfg(feature = "onnx")]
    #[test]
    fn the_log_follows_verbosity() {
        use ort::logging::LogLevel;
        assert_eq!(log_line(LogLevel::Error, "x", 0), None);
        assert_eq!(
            log_line(LogLevel::Error, "\u{1b}[31mx\u{1b}[m", 1).as_deref(),
            Some("onnxruntime error: x")
        );
        assert_eq!(log_line(LogLevel::Info, "x", 1), None);
        assert_eq!(
            log_line(LogLevel::Info, "x", 2).as_deref(),
            Some("onnxruntime info: x")
        );
    }
}

#[cfg(test)]
mod tests {
    // Tests plant fake runtime libraries with raw std::fs.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    // The names it plants are Linux's (`is_runtime_library` has the other platforms' names).
    #[cfg(target_os = "linux")]
    #[test]
    fn library_in_prefers_the_plain_name_and_ignores_other_libraries() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(library_in(dir.path()), None);
        std::fs::write(dir.path().join("libonnxruntime_providers_shared.so"), b"x").unwrap();
        assert_eq!(library_in(dir.path()), None);
        std::fs::write(dir.path().join("libonnxruntime.so.1.31.1"), b"x").unwrap();
        assert_eq!(
            library_in(dir.path()),
            Some(dir.path().join("libonnxruntime.so.1.31.1"))
        );
        std::fs::write(dir.path().join("libonnxruntime.so"), b"x").unwrap();
        assert_eq!(
            library_in(dir.path()),
            Some(dir.path().join("libonnxruntime.so"))
        );
    }

    /// Only the checks made before ort is called: once another test of this process has loaded
    /// the real runtime, ort would accept any later path (see "Limitations"). Libraries that
    /// are not ONNX Runtime are tested through the binary, one process each
    /// (tests/integration/onnx.rs).
    #[cfg(feature = "onnx")]
    #[test]
    fn a_missing_file_or_a_directory_is_a_reason_before_ort_is_called() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_one(&dir.path().join("nothing.so"))
            .unwrap_err()
            .contains("no such file"));
        assert!(load_one(dir.path()).unwrap_err().contains("directory"));
    }

    #[cfg(feature = "onnx")]
    #[test]
    fn quietly_turns_a_panic_into_its_message() {
        let r: Result<(), String> = quietly(|| panic!("boom"));
        assert_eq!(r.unwrap_err(), "ONNX Runtime failed inside ort: boom");
    }
}
