//! Interoperability with another client: oras-py (the PyPI `oras` package, the ORAS project's
//! Python SDK) against the same real registry. It pulls what beaker pushed and gets the same
//! files under the same names, byte for byte; beaker pulls what it pushed.
//!
//! oras-py is installed into a venv under the target directory on first use (PyPI, pinned);
//! the test fails, never skips, when that cannot be done.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::server::Registry;
use super::{add_model, reg_run};
use crate::support::*;

const ORAS: &str = "oras==0.2.43";

/// The venv's python with oras importable, installing it on first use. Concurrent callers are
/// serialised by an exclusive lock on a file next to the venv.
fn oras_python() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oras-venv");
    let python = root.join("bin/python");
    let lock_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oras-venv.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("open the venv lock");
    fs2::FileExt::lock_exclusive(&lock).expect("lock the venv");
    let has_oras = |p: &Path| {
        Command::new(p)
            .args(["-c", "import oras.client"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has_oras(&python) {
        let venv = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&root)
            .output()
            .expect("run python3 -m venv");
        assert!(
            venv.status.success(),
            "cannot make a venv for oras-py (apt-get install -y python3-venv): {venv:?}"
        );
        let pip = Command::new(root.join("bin/pip"))
            .args(["install", "-q", ORAS])
            .output()
            .expect("run pip");
        assert!(pip.status.success(), "pip install {ORAS} failed: {pip:?}");
        assert!(has_oras(&python), "oras-py does not import after install");
    }
    python
}

fn oras(python: &Path, script: &str) {
    let out = Command::new(python)
        .args(["-c", script])
        .output()
        .expect("run python");
    assert!(out.status.success(), "oras-py failed: {out:?}");
}

#[test]
fn oras_py_pulls_what_beaker_pushed_and_beaker_pulls_what_oras_py_pushed() {
    let python = oras_python();
    let reg = Registry::start();
    let env = Env::new();
    let onnx = bytes(150_000, 81);
    let data = bytes(600_000, 82);
    add_model(
        &env,
        "cutout",
        &[("model.onnx", &onnx), ("model.onnx.data", &data)],
    );
    reg_run(
        &env,
        &["store", "push", "cutout", &reg.reference("lab/cutout:v1")],
    )
    .ok();

    let host = reg.host();
    let out = env.path("oras-out");
    oras(
        &python,
        &format!(
            "import oras.client\nc = oras.client.OrasClient(hostname='{host}', insecure=True)\nc.pull(target='{host}/lab/cutout:v1', outdir='{}')\n",
            out.display()
        ),
    );
    assert_eq!(std::fs::read(out.join("model.onnx")).unwrap(), onnx);
    assert_eq!(std::fs::read(out.join("model.onnx.data")).unwrap(), data);

    // oras-py pushes a file (its own config type, a title annotation), beaker pulls it.
    let payload = bytes(90_000, 83);
    let src = env.file("oras-src/weights.bin", &payload);
    oras(
        &python,
        &format!(
            "import os, oras.client\nos.chdir('{}')\nc = oras.client.OrasClient(hostname='{host}', insecure=True)\nc.push(files=['weights.bin'], target='{host}/from-oras/w:v1')\n",
            src.parent().unwrap().display()
        ),
    );
    let other = Env::new();
    let printed = reg_run(
        &other,
        &[
            "store",
            "pull",
            &reg.reference("from-oras/w:v1"),
            "--name",
            "w",
        ],
    )
    .ok();
    assert!(printed.ends_with("/weights.bin"), "{printed}");
    assert_model_file(&other.store, &printed, &payload);
}
