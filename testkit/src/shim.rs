//! Small shared objects built from C with the system compiler (`cc`): LD_PRELOAD shims that
//! replace or log libc calls of a real beaker process, and stand-in libraries (a fake ONNX
//! Runtime). The tests need a C compiler; they say so when there is none.

// The C source is a fixture written with raw std::fs, outside any store.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Writes `source` to `dir/NAME.c` and builds `dir/NAME.so` from it (`cc -shared -fPIC -O2
/// … -ldl`); returns the shared object's path.
pub fn build(dir: &Path, name: &str, source: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).with_context(|| format!("write {}", src.display()))?;
    let so = dir.join(format!("{name}.so"));
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .output()
        .context("building a shared object needs a C compiler (`cc`)")?;
    if !out.status.success() {
        bail!(
            "cc {} failed: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(so)
}

/// [`build`] into a directory of its own for this process (`$TMPDIR/beaker-NAME-PID`), so one
/// test run builds a shim once and every test of the run can preload it.
pub fn build_for_this_run(name: &str, source: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("beaker-{name}-{}", std::process::id()));
    build(&dir, name, source)
}
