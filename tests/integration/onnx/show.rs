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
    // Not ONNX: its bytes read as text, and show says so.
    assert_eq!(shown.format.as_deref(), Some("text"));
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

/// [models] 2: the short hash `ls` prints (or any start of 8 hex digits or more) names a blob
/// when no name is that; a start two blobs share lists both and asks for more (exit 2); one
/// no blob has is exit 3; a name that looks like hex stays a name.
#[test]
fn show_takes_the_start_of_a_blake3_and_refuses_one_two_blobs_share() {
    let env = Env::new();
    // Two small files whose BLAKE3s share their first 8 hex digits (found by counting: about
    // 2^16 tries).
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0u64..)
        .find_map(|i| {
            let body = format!("beaker prefix {i}\n").into_bytes();
            let start = blake3_hex(&body)[..8].to_owned();
            seen.insert(start, body.clone()).map(|other| (other, body))
        })
        .unwrap();
    let (ha, hb) = (blake3_hex(&a), blake3_hex(&b));
    assert_eq!(ha[..8], hb[..8]);
    let (fa, fb) = (env.file("a.bin", &a), env.file("b.bin", &b));
    env.run(&["store", "add", fa.to_str().unwrap(), "--name", "aa"])
        .ok();
    env.run(&["store", "add", fb.to_str().unwrap(), "--name", "bb"])
        .ok();

    // The 12 digits `ls` prints: each names its blob (and finds its name).
    let common = ha
        .chars()
        .zip(hb.chars())
        .take_while(|(x, y)| x == y)
        .count();
    for (hex, name) in [(&ha, "aa"), (&hb, "bb")] {
        let short = &hex[..(common + 1).max(12)];
        let shown: Shown = env.run(&["--json", "store", "show", short]).json();
        assert_eq!(shown.blake3, *hex, "{short}");
        assert_eq!(shown.name.as_deref(), Some(name));
        let upper: Shown = env
            .run(&["--json", "store", "show", &short.to_uppercase()])
            .json();
        assert_eq!(upper.blake3, *hex);
    }
    // The start both share: refused, both listed.
    let r = env.run(&["store", "show", &ha[..common]]);
    r.fails(
        2,
        &["is the start of 2 blobs", &ha, &hb, "give more of the hash"],
    );
    // A start no blob has, and one shorter than 8 digits (then it is a name).
    let none = if ha.starts_with("0000") {
        "ffffffff"
    } else {
        "00000000"
    };
    env.run(&["store", "show", none])
        .fails(3, &["no blob in the store starts with", none]);
    env.run(&["store", "show", &ha[..7]])
        .fails(3, &["not in the store"]);
    // A name that looks like hex is a name, even when it is the start of a blob.
    env.run(&["store", "add", fb.to_str().unwrap(), "--name", &ha[..8]])
        .ok();
    let by_name: Shown = env.run(&["--json", "store", "show", &ha[..8]]).json();
    assert_eq!(by_name.blake3, hb, "the name {} is b's", &ha[..8]);
}
