//! [onnx] `beaker store show` through the real binary: inputs, outputs, element types, shapes,
//! opsets, producer and metadata of every committed model, text and `--json`, with no runtime;
//! and the bad input it must refuse.

use serde::Deserialize;

use super::{demo, repo, with_lib, with_ort};
use crate::support::*;

#[derive(Debug, Deserialize, PartialEq)]
struct Shown {
    name: Option<String>,
    blake3: String,
    size: u64,
    format: Option<String>,
    inputs: Option<Vec<Io>>,
    outputs: Option<Vec<Io>>,
    opsets: Option<Vec<Opset>>,
    producer: Option<Producer>,
    ir_version: Option<i64>,
    metadata: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Io {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    shape: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Opset {
    domain: String,
    version: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Producer {
    name: String,
    version: String,
}

fn io(name: &str, ty: &str, shape: serde_json::Value) -> Io {
    Io {
        name: name.into(),
        ty: ty.into(),
        shape: serde_json::from_value(shape).unwrap(),
    }
}

#[test]
fn show_prints_inputs_outputs_types_shapes_and_opsets_of_every_committed_model() {
    use serde_json::json;
    let env = Env::new();
    let names = ["tiny-add", "tiny-mul", "tiny-relu", "tiny-multi"];
    let mut args = vec!["store", "pull"];
    args.extend(names);
    with_ort(&env, &demo(), &args).ok();

    let n = || json!(["N"]);
    let expected = [
        (
            "tiny-add",
            vec![io("a", "float32", n()), io("b", "float32", n())],
            vec![io("sum", "float32", n())],
            13,
        ),
        (
            "tiny-mul",
            vec![io("a", "float32", n()), io("b", "float32", n())],
            vec![io("product", "float32", n())],
            13,
        ),
        (
            "tiny-relu",
            vec![io("x", "float32", n())],
            vec![io("y", "float32", n())],
            13,
        ),
        (
            "tiny-multi",
            vec![
                io("x", "float32", json!(["batch", 4])),
                io("ids", "int64", json!(["batch"])),
            ],
            vec![
                io("scaled", "float32", json!(["batch", 4])),
                io("ids_out", "int64", json!(["batch"])),
            ],
            17,
        ),
    ];
    // `show` needs no runtime: run it with a runtime path that does not exist.
    let nothing = env.path("no-runtime.so");
    for (name, inputs, outputs, opset) in expected {
        let shown: Shown = with_lib(&env, &nothing, &["store", "show", name, "--json"]).json();
        assert_eq!(shown.name.as_deref(), Some(name));
        assert_eq!(shown.format.as_deref(), Some("onnx"));
        assert_eq!(shown.inputs.as_ref(), Some(&inputs), "{name}");
        assert_eq!(shown.outputs.as_ref(), Some(&outputs), "{name}");
        assert_eq!(
            shown.opsets.as_ref().unwrap()[0],
            Opset {
                domain: "ai.onnx".into(),
                version: opset
            }
        );
        assert_eq!(shown.ir_version, Some(8));
        let bytes = std::fs::read(env.store.join("blobs").join(&shown.blake3)).unwrap();
        assert_eq!(shown.size, bytes.len() as u64);
        assert_eq!(shown.blake3, blake3_hex(&bytes));

        // The same by blob hash.
        let by_hash: Shown = env.run(&["store", "show", &shown.blake3, "--json"]).json();
        assert_eq!(by_hash, shown);

        // Text: one line per input and output, with type and shape.
        let text = with_lib(&env, &nothing, &["store", "show", name]);
        assert_eq!(text.code, 0, "{text:#?}");
        for t in inputs.iter().chain(&outputs) {
            let dims: Vec<String> = t
                .shape
                .iter()
                .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned))
                .collect();
            let line = format!("{}: {}[{}]", t.name, t.ty, dims.join(", "));
            assert!(
                text.stdout.contains(&line),
                "{name}: no {line:?} in {text:#?}"
            );
        }
        assert!(
            text.stdout.contains(&format!("ai.onnx {opset}")),
            "{text:#?}"
        );
    }

    let multi: Shown = env.run(&["store", "show", "tiny-multi", "--json"]).json();
    assert_eq!(
        multi.opsets.unwrap()[1],
        Opset {
            domain: "ai.onnx.ml".into(),
            version: 3
        }
    );
    assert_eq!(
        multi.producer,
        Some(Producer {
            name: "beaker-make-onnx-models".into(),
            version: "1.0".into()
        })
    );
    let meta = multi.metadata.unwrap();
    assert_eq!(meta.get("author").map(String::as_str), Some("beaker"));
    assert_eq!(meta.get("task").map(String::as_str), Some("demo"));
    let text = env.run(&["store", "show", "tiny-multi"]);
    assert!(text.stdout.contains("author = beaker"), "{text:#?}");
    assert!(
        text.stdout.contains("beaker-make-onnx-models 1.0"),
        "{text:#?}"
    );
}

#[test]
fn show_of_a_model_that_is_not_onnx_shows_what_the_store_knows_without_a_runtime() {
    let env = Env::new();
    let src = env.file("weights.bin", b"not a model at all");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "weights"])
        .ok();
    let shown: Shown = with_lib(
        &env,
        &env.path("none.so"),
        &["store", "show", "weights", "--json"],
    )
    .json();
    assert_eq!(shown.size, 18);
    assert_eq!(shown.format, None);
    assert_eq!(shown.inputs, None);
    assert_eq!(shown.opsets, None);
}

#[test]
fn show_refuses_bad_input_with_clear_messages() {
    let env = Env::new();
    // Bytes that claim to be ONNX but are not: show says so, exit 1.
    let random = repo("tests/fixtures/onnx/random-bytes.onnx");
    env.run(&["store", "add", random.to_str().unwrap(), "--name", "fake"])
        .ok();
    env.run(&["store", "show", "fake"])
        .fails(1, &["fake", "recorded as ONNX", "not ONNX"]);
    let empty = repo("tests/fixtures/onnx/empty.onnx");
    env.run(&["store", "add", empty.to_str().unwrap(), "--name", "empty"])
        .ok();
    env.run(&["store", "show", "empty"])
        .fails(1, &["empty", "0 bytes"]);
    // Bad usage: exit 2; absent: exit 3 (like `path`).
    env.run(&["store", "show", "Not_A_Name"])
        .fails(2, &["Not_A_Name"]);
    env.run(&["store", "show", "absent"])
        .fails(3, &["absent", "not in the store"]);
    let hex = blake3_hex(b"never stored");
    env.run(&["store", "show", &hex]).fails(3, &[&hex]);
    env.run(&[
        "store",
        "add",
        "--check",
        env.path("nope.onnx").to_str().unwrap(),
        "--name",
        "n",
    ])
    .fails(2, &["no such file"]);
}
