//! [onnx]: loading models with ONNX Runtime through the real binary — `--check`, `check = true`,
//! `verify --deep` and a missing or wrong runtime (`check`), external data (`bundle`), every ONNX
//! file of a model (`every_file`), `store show` (`show`) — and the helpers they share: the
//! committed catalogues, the ONNX Runtime the tests load, and runners with a chosen runtime.
//!
//! Tests that load models need ONNX Runtime: [`ort_lib`] finds it the way beaker does
//! (`ORT_DYLIB_PATH`, which `cargo xtask test` sets, python3's onnxruntime, the checkout's
//! `.ort/`) or fails the test saying how to get it; nothing is skipped.

use std::path::{Path, PathBuf};

use crate::support::*;

mod bundle;
mod check;
mod every_file;
mod show;

pub fn repo(rel: &str) -> PathBuf {
    crate::support::checkout().join(rel)
}

pub fn demo() -> PathBuf {
    repo("manifests/demo/demo.toml")
}

pub fn broken() -> PathBuf {
    repo("tests/fixtures/onnx/broken.toml")
}

/// The ONNX Runtime library these tests load: the first one beaker itself would try. Fails the
/// test with what was looked at when there is none.
pub fn ort_lib() -> PathBuf {
    let (found, missed) = beaker::onnx::runtime::candidates();
    match found.into_iter().next() {
        Some((_, path)) => path,
        None => panic!(
            "this test needs ONNX Runtime and found none ({}): run the tests with `cargo xtask \
             test`, which installs it",
            missed.join("; ")
        ),
    }
}

/// Runs beaker with the test runtime, and the given catalogue.
pub fn with_ort(env: &Env, manifest: &Path, args: &[&str]) -> Run {
    let mut c = env.cmd();
    c.env("ORT_DYLIB_PATH", ort_lib())
        .arg("--manifest")
        .arg(manifest);
    Run::from(c.args(args).output().expect("spawn beaker"))
}

/// Runs beaker with `ORT_DYLIB_PATH` set to `lib` (a wrong runtime, or none).
pub fn with_lib(env: &Env, lib: &Path, args: &[&str]) -> Run {
    let mut c = env.cmd();
    c.env("ORT_DYLIB_PATH", lib).arg("--manifest").arg(demo());
    Run::from(c.args(args).output().expect("spawn beaker"))
}

/// Everything a failed command must leave as it was: blob names, the store manifest's bytes (its
/// records in `names/`, in name order), tmp/.
pub fn snapshot(env: &Env) -> (Vec<String>, Option<Vec<u8>>, Vec<String>) {
    let names = env.store.join("names");
    let records = list_names(&names)
        .into_iter()
        .flat_map(|n| {
            [
                n.clone().into_bytes(),
                std::fs::read(names.join(n)).unwrap(),
            ]
        })
        .flatten()
        .collect();
    (
        env.blob_names(),
        names.is_dir().then_some(records),
        list_names(&env.store.join("tmp")),
    )
}
