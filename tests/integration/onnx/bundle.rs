//! A model of two files with ONNX Runtime: tiny-ext keeps its weight as ONNX external data in
//! `tiny-ext.onnx.data`, which ONNX Runtime opens by file name next to the model. Pulled, its
//! snapshot holds both files under those names, so the runtime loads it from the path beaker
//! prints; a copy of the main file alone does not load. Needs ONNX Runtime (`cargo xtask test`).

// Tests copy model files with raw std::fs on purpose.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use super::{demo, repo, with_ort};
use crate::support::*;

#[test]
fn a_model_with_external_data_loads_from_the_path_beaker_prints() {
    let env = Env::new();
    // --check loads it in ONNX Runtime from its snapshot before the name is recorded.
    let printed = with_ort(&env, &demo(), &["store", "pull", "--check", "tiny-ext"]).ok();
    assert!(printed.ends_with(&*native("/tiny-ext.onnx")), "{printed}");
    let dir = Path::new(&printed).parent().unwrap();
    assert_eq!(list_names(dir), ["tiny-ext.onnx", "tiny-ext.onnx.data"]);
    let graph = std::fs::read(repo("manifests/demo/models/tiny-ext/tiny-ext.onnx")).unwrap();
    let data = std::fs::read(repo("manifests/demo/models/tiny-ext/tiny-ext.onnx.data")).unwrap();
    assert_model_file(&env.store, &printed, &graph);
    assert_model_file(
        &env.store,
        dir.join("tiny-ext.onnx.data").to_str().unwrap(),
        &data,
    );
    // `store show` reads it (inputs/outputs need no weights).
    let show: serde_json::Value =
        with_ort(&env, &demo(), &["--json", "store", "show", "tiny-ext"]).json();
    assert_eq!(show["inputs"][0]["name"], "x", "{show}");
    assert_eq!(
        show["inputs"][0]["shape"],
        serde_json::json!(["batch", 4]),
        "{show}"
    );
    assert_eq!(show["outputs"][0]["type"], "float32", "{show}");
    // verify --deep loads it from the snapshot too (from the blob alone it would not load).
    let v: serde_json::Value =
        with_ort(&env, &demo(), &["--json", "store", "verify", "--deep"]).json();
    assert_eq!(
        (v["deep"]["checked"].as_u64(), v["deep"]["ok"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );

    // Without the data file next to it, the same bytes do not load: the directory is what works.
    let alone = env.path("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::write(alone.join("tiny-ext.onnx"), &graph).unwrap();
    let other = Env::new();
    let r = with_ort(
        &other,
        &demo(),
        &[
            "store",
            "add",
            "--check",
            alone.join("tiny-ext.onnx").to_str().unwrap(),
            "--name",
            "alone",
        ],
    );
    r.fails(1, &["not published"]);
    // Added as a directory with both files, it loads.
    std::fs::write(alone.join("tiny-ext.onnx.data"), &data).unwrap();
    let added = with_ort(
        &other,
        &demo(),
        &[
            "store",
            "add",
            "--check",
            alone.to_str().unwrap(),
            "--name",
            "both",
        ],
    )
    .ok();
    assert!(added.ends_with(&*native("/tiny-ext.onnx")), "{added}");
}
