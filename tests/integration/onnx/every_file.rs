//! `--check`, `verify --deep` and `show` on models of several files, with ONNX Runtime: every ONNX file of
//! a model is loaded (an OCR pipeline of three graphs with one truncated fails), each with the
//! files next to it (external data resolves), and a model that failed its check fails again when
//! the same command runs again: nothing of it is published until every file passed. Needs ONNX
//! Runtime (`cargo xtask test`).

// Tests copy and truncate model files with raw std::fs on purpose.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use super::{demo, repo, with_ort};
use crate::support::*;

/// A model directory `dir` holding `files` (path in the model, bytes).
fn model_dir(dir: &Path, files: &[(&str, Vec<u8>)]) -> PathBuf {
    for (path, bytes) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    dir.to_owned()
}

/// A catalogue `catalogue.toml` in `dir` with one entry `name` of format onnx (plus `extra` lines)
/// listing every file of `files`, each pinned by BLAKE3 and size and fetched from `dir`.
fn catalogue(dir: &Path, name: &str, files: &[(&str, Vec<u8>)], extra: &str) -> PathBuf {
    model_dir(dir, files);
    let mut text = format!("version = 1\n[models.{name}]\nformat = \"onnx\"\n{extra}");
    for (path, bytes) in files {
        text.push_str(&format!(
            "[[models.{name}.files]]\npath = \"{path}\"\nblake3 = \"{}\"\nsize = {}\nurls = [{:?}]\n",
            blake3_hex(bytes),
            bytes.len(),
            dir.join(path).display().to_string()
        ));
    }
    let cat = dir.join("catalogue.toml");
    std::fs::write(&cat, text).unwrap();
    cat
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(repo(rel)).unwrap()
}

/// tiny-ext's graph and its external data cut to half: the graph parses, its weight does not
/// load.
fn ext_with_truncated_data() -> Vec<(&'static str, Vec<u8>)> {
    let graph = read("manifests/demo/models/tiny-ext/tiny-ext.onnx");
    let mut data = read("manifests/demo/models/tiny-ext/tiny-ext.onnx.data");
    data.truncate(data.len() / 2);
    vec![("tiny-ext.onnx", graph), ("tiny-ext.onnx.data", data)]
}

/// An OCR pipeline: three graphs and a config, the recogniser truncated (and sorted after the
/// main file, so a check of the main file alone passes).
fn ocr_with_truncated_rec() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("cls.onnx", read("manifests/demo/models/tiny-relu.onnx")),
        (
            "config.yaml",
            b"det: det.onnx\nrec: rec.onnx\ncls: cls.onnx\n".to_vec(),
        ),
        ("det.onnx", read("manifests/demo/models/tiny-add.onnx")),
        ("rec.onnx", read("tests/fixtures/onnx/truncated.onnx")),
    ]
}

/// The pipeline whole (a good recogniser), and tiny-ext's graph with its external data: five
/// files, four graphs, all of which load.
fn whole_ocr_with_external_data() -> Vec<(&'static str, Vec<u8>)> {
    let mut files = ocr_with_truncated_rec();
    files[3].1 = read("manifests/demo/models/tiny-mul.onnx");
    for p in ["tiny-ext.onnx", "tiny-ext.onnx.data"] {
        files.push((p, read(&format!("manifests/demo/models/tiny-ext/{p}"))));
    }
    files
}

// Unix only: wine has no POSIX delete, so the check directory of hard-linked temp blobs (still open) stays in tmp/, empty, until gc (docs/design.md#platforms).
#[cfg(unix)]
#[test]
fn a_model_of_several_files_that_failed_its_check_fails_again_and_publishes_nothing() {
    for (how, extra, flag) in [
        ("pull --check", "", Some("--check")),
        ("check = true", "check = true\n", None),
    ] {
        let env = Env::new();
        let cat = catalogue(&env.path("cat"), "ext", &ext_with_truncated_data(), extra);
        let mut args = vec!["store", "pull"];
        args.extend(flag);
        args.push("ext");
        for attempt in 1..=2 {
            let r = with_ort(&env, &cat, &args);
            assert_eq!(r.code, 1, "{how}, attempt {attempt}: {r:#?}");
            assert!(
                r.stderr.contains("not published") && r.stderr.contains("tiny-ext.onnx"),
                "{how}, attempt {attempt}: {r:#?}"
            );
            assert!(r.stdout.is_empty(), "{how}, attempt {attempt}: {r:#?}");
            // Nothing of the model is in the store: no blob, no name, no snapshot.
            assert!(env.blob_names().is_empty(), "{how}: {:?}", env.blob_names());
            assert!(list_names(&env.store.join("names")).is_empty(), "{how}");
            assert!(list_names(&env.store.join("snapshots")).is_empty(), "{how}");
            // Neither the temp blobs nor the directory they were loaded from are left behind.
            assert!(list_names(&env.store.join("tmp")).is_empty(), "{how}");
        }
        env.run(&["store", "path", "ext"]).fails(3, &[]);
    }
}

#[test]
fn every_onnx_file_of_a_model_is_checked_before_publishing_with_the_files_next_to_it() {
    let env = Env::new();
    let ocr = ocr_with_truncated_rec();
    // add --check of the directory.
    let dir = model_dir(&env.path("ocr"), &ocr);
    let r = with_ort(
        &env,
        &demo(),
        &[
            "store",
            "add",
            "--check",
            dir.to_str().unwrap(),
            "--name",
            "ocr",
        ],
    );
    r.fails(1, &["rec.onnx", "not published"]);
    assert!(list_names(&env.store.join("names")).is_empty());
    // pull --check from a catalogue.
    let cat = catalogue(&env.path("cat"), "ocr", &ocr, "");
    with_ort(&env, &cat, &["store", "pull", "--check", "ocr"])
        .fails(1, &["rec.onnx", "not published"]);
    assert!(list_names(&env.store.join("names")).is_empty());

    // The same pipeline whole, with a graph that needs its external data next to it: every
    // file loads, each from the directory the model's files are in.
    let good = whole_ocr_with_external_data();
    let other = Env::new();
    let dir = model_dir(&other.path("good"), &good);
    with_ort(
        &other,
        &demo(),
        &[
            "store",
            "add",
            "--check",
            dir.to_str().unwrap(),
            "--name",
            "ocr",
        ],
    )
    .ok();
    let cat = catalogue(&other.path("cat"), "ocr2", &good, "");
    with_ort(&other, &cat, &["store", "pull", "--check", "ocr2"]).ok();
}

#[test]
fn verify_deep_loads_every_onnx_file_of_a_model_with_the_files_next_to_it() {
    let env = Env::new();
    let dir = model_dir(&env.path("ocr"), &ocr_with_truncated_rec());
    // Added without --check, verify --deep loads every graph and names the broken one.
    env.run(&["store", "add", dir.to_str().unwrap(), "--name", "ocr"])
        .ok();
    let r = with_ort(&env, &demo(), &["--json", "store", "verify", "--deep"]);
    assert_eq!(r.code, 1, "{r:#?}");
    let v: serde_json::Value = r.json();
    assert_eq!(
        (v["deep"]["checked"].as_u64(), v["deep"]["ok"].as_u64()),
        (Some(3), Some(2)),
        "{v}"
    );
    let failed = &v["deep"]["failed"][0];
    assert_eq!(failed["names"], serde_json::json!(["ocr"]), "{v}");
    assert_eq!(failed["file"], "rec.onnx", "{v}");
    assert_eq!(
        failed["blake3"],
        blake3_hex(&read("tests/fixtures/onnx/truncated.onnx")),
        "{v}"
    );
    let text = with_ort(&env, &demo(), &["store", "verify", "--deep"]);
    text.fails(1, &["do not load"]);
    assert!(
        text.stdout.contains("does not load: ocr (rec.onnx, "),
        "{text:#?}"
    );

    // The whole pipeline and a graph with external data in one model: every graph loads.
    let good = whole_ocr_with_external_data();
    let other = Env::new();
    let dir = model_dir(&other.path("good"), &good);
    other
        .run(&["store", "add", dir.to_str().unwrap(), "--name", "good"])
        .ok();
    let v: serde_json::Value =
        with_ort(&other, &demo(), &["--json", "store", "verify", "--deep"]).json();
    assert_eq!(
        (v["deep"]["checked"].as_u64(), v["deep"]["ok"].as_u64()),
        (Some(4), Some(4)),
        "{v}"
    );
}

/// `store show` of a model of five files lists them (path, size, kind, blob) with their total,
/// and `show` of each file's BLAKE3 shows that file: its own path, kind and URL, never the
/// main file's, and never "recorded as ONNX" for a YAML file.
#[test]
fn show_of_every_file_of_a_model_says_what_that_file_is_and_the_model_lists_them_all() {
    let env = Env::new();
    let files = vec![
        (
            "tiny-ext.onnx",
            read("manifests/demo/models/tiny-ext/tiny-ext.onnx"),
        ),
        (
            "tiny-ext.onnx.data",
            read("manifests/demo/models/tiny-ext/tiny-ext.onnx.data"),
        ),
        ("config.yaml", b"det:\n  thresh: 0.3\n".to_vec()),
        ("vocab.json", br#"{"a": 1, "b": 2}"#.to_vec()),
        ("labels.txt", "cat\ndog\nchât\n".as_bytes().to_vec()),
    ];
    let cat = catalogue(&env.path("cat"), "pipe", &files, "");
    env.run(&["--manifest", cat.to_str().unwrap(), "store", "pull", "pipe"])
        .ok();
    let kinds = ["onnx", "onnx-data", "yaml", "json", "text"];

    let shown: serde_json::Value = env.run(&["store", "show", "pipe", "--json"]).json();
    let listed = shown["files"].as_array().unwrap();
    assert_eq!(listed.len(), 5, "{shown:#}");
    for ((path, bytes), (row, kind)) in files.iter().zip(listed.iter().zip(kinds)) {
        assert_eq!(row["path"], *path);
        assert_eq!(row["size"], bytes.len());
        assert_eq!(row["format"], kind, "{path}");
        assert_eq!(row["blake3"], blake3_hex(bytes));
        assert_eq!(row["main"], *path == "tiny-ext.onnx");
    }
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(shown["total_size"], total);
    assert_eq!(shown["size"], files[0].1.len(), "size is the main file's");
    let text = env.run(&["store", "show", "pipe"]).stdout;
    assert!(text.contains("5 files"), "{text}");
    assert!(
        text.contains("config.yaml") && text.contains("onnx-data"),
        "{text}"
    );

    for ((path, bytes), kind) in files.iter().zip(kinds) {
        let r = env.run(&["store", "show", &blake3_hex(bytes), "--json"]);
        assert!(r.success(), "{path}: {}", r.describe());
        let one: serde_json::Value = r.json();
        assert_eq!(one["path"], *path);
        assert_eq!(one["format"], kind, "{path}");
        assert_eq!(one["size"], bytes.len());
        let url = one["urls"][0].as_str().unwrap();
        assert!(url.ends_with(path), "{path}: shows the URL {url}");
        // Only the graph is read as ONNX.
        assert_eq!(one["inputs"].is_null(), *path != "tiny-ext.onnx", "{path}");
    }
}

/// ONNX Runtime's own log lines (coloured with ANSI escapes by its default logger, whatever
/// stderr is) never reach stderr by default: its error comes back once, in beaker's message.
/// With `-v` they do, as plain `onnxruntime error: …` lines.
#[test]
fn onnx_runtimes_log_is_beakers_to_show_plainly_and_only_with_v() {
    let env = Env::new();
    let cat = catalogue(&env.path("cat"), "ext", &ext_with_truncated_data(), "");
    let r = with_ort(&env, &cat, &["store", "pull", "--check", "ext"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(!r.stderr.contains('\u{1b}'), "an escape sequence: {r:#?}");
    assert!(!r.stderr.contains("[E:onnxruntime"), "{r:#?}");
    assert_eq!(
        r.stderr.matches("out of bounds").count(),
        1,
        "ONNX Runtime's reason once, in beaker's error: {r:#?}"
    );
    let r = with_ort(&env, &cat, &["-v", "store", "pull", "--check", "ext"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(!r.stderr.contains('\u{1b}'), "{r:#?}");
    assert!(r.stderr.contains("onnxruntime error: "), "{r:#?}");
}

/// A model's files are counted 1/N … N/N in the pull's output, a file whose bytes the store
/// already holds included.
#[test]
fn every_file_of_a_model_is_counted_in_the_progress_even_one_already_held() {
    let env = Env::new();
    let files = vec![
        ("a.bin", bytes(50_000, 71)),
        ("b.bin", bytes(60_000, 72)),
        ("c.bin", bytes(70_000, 73)),
    ];
    // c.bin's bytes are in the store already, under another name.
    let c = env.file("c.bin", &files[2].1);
    env.run(&["store", "add", c.to_str().unwrap(), "--name", "other"])
        .ok();
    let cat = catalogue(&env.path("cat"), "three", &files, "");
    let r = env.run(&[
        "--manifest",
        cat.to_str().unwrap(),
        "store",
        "pull",
        "three",
    ]);
    r.ok();
    for n in ["1/3: a.bin", "2/3: b.bin", "3/3: c.bin"] {
        assert!(r.stderr.contains(n), "{n} in {}", r.stderr);
    }
    assert!(
        r.stderr
            .contains("three (3/3: c.bin): already in the store"),
        "{}",
        r.stderr
    );
}
