//! Interoperability with another client: oras-py (the PyPI `oras` package, the ORAS project's
//! Python SDK) against the same real registry. It pulls what beaker pushed and gets the same
//! files under the same names, byte for byte; beaker pulls what it pushed, reads an `.onnx` it
//! pushed with its default layer type as ONNX, and refuses a directory it packed, by name.
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

/// oras-py with its defaults: an `.onnx` file gets oras' generic layer type, and is still a
/// model beaker reads as ONNX (by its title); a directory is packed into one tar+gzip layer
/// marked for unpacking, and beaker refuses it by name, with what to do, recording nothing.
/// beaker's own pushes carry `org.opencontainers.image.created`, as oras' do.
#[test]
fn what_oras_py_pushes_by_default_an_onnx_file_is_onnx_and_a_directory_is_refused_clearly() {
    let python = oras_python();
    let reg = Registry::start();
    let env = Env::new();
    let host = reg.host();
    let graph = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/demo/models/tiny-add.onnx"),
    )
    .unwrap();
    let src = env.file("oras-src/model.onnx", &graph);
    let dir = src.parent().unwrap();
    env.file("oras-src/models/a.onnx", &graph);
    env.file("oras-src/models/vocab.json", b"{\"a\": 1}");
    oras(
        &python,
        &format!(
            "import os, oras.client\nos.chdir('{}')\nc = oras.client.OrasClient(hostname='{host}', insecure=True)\nc.push(files=['model.onnx'], target='{host}/vision/add:v1')\nc.push(files=['models'], target='{host}/vision/dir:v1')\n",
            dir.display()
        ),
    );

    let printed = reg_run(&env, &["store", "pull", &reg.reference("vision/add:v1")]).ok();
    assert_model_file(&env.store, &printed, &graph);
    let shown: serde_json::Value = env.run(&["store", "show", "vision/add", "--json"]).json();
    assert_eq!(shown["format"], "onnx", "{shown:#}");
    assert!(shown["inputs"].is_array(), "{shown:#}");
    let record = std::fs::read_to_string(env.store.join("names/vision+add.toml")).unwrap();
    assert!(record.contains("format = \"onnx\""), "{record}");

    let blobs = env.blob_names();
    let r = reg_run(&env, &["store", "pull", &reg.reference("vision/dir:v1")]);
    assert!(!r.success(), "{}", r.describe());
    for needle in [
        "\"models\"",
        "directory packed into one tar archive",
        "oras push",
        "beaker store add",
    ] {
        assert!(r.stderr.contains(needle), "{needle:?} in {}", r.stderr);
    }
    assert_eq!(env.blob_names(), blobs, "nothing stored");
    assert!(!env.store.join("names/vision+dir.toml").exists());

    // beaker's push is stamped with the time its model was recorded.
    reg_run(
        &env,
        &["store", "push", "vision/add", &reg.reference("lab/add:v1")],
    )
    .ok();
    let script = format!(
        "import json, oras.client\nc = oras.client.OrasClient(hostname='{host}', insecure=True)\nm = c.get_manifest('{host}/lab/add:v1')\nopen('{}', 'w').write(json.dumps(m))\n",
        env.path("manifest.json").display()
    );
    oras(&python, &script);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("manifest.json")).unwrap()).unwrap();
    let created = manifest["annotations"]["org.opencontainers.image.created"]
        .as_str()
        .unwrap_or_else(|| panic!("{manifest:#}"));
    assert!(
        record.contains(&format!("added = \"{created}\"")),
        "{created} vs {record}"
    );
}
