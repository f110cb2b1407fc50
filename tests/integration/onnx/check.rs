//! [onnx] loading models through the real binary: `pull --check`, `add --check`, `check = true`,
//! `verify --deep`, and a missing or wrong ONNX Runtime, on the committed tiny models
//! (manifests/demo/) and the broken ones (tests/fixtures/onnx/, made by make_onnx_models.py).

use std::path::PathBuf;

use serde::Deserialize;

use super::{broken, demo, ort_lib, repo, snapshot, with_lib, with_ort};
use crate::support::*;

#[test]
fn pull_check_publishes_good_models_and_refuses_each_broken_one_leaving_the_store_unchanged() {
    let env = Env::new();
    with_ort(
        &env,
        &demo(),
        &[
            "store",
            "pull",
            "--check",
            "tiny-add",
            "tiny-mul",
            "tiny-relu",
            "tiny-multi",
        ],
    )
    .ok();
    assert_eq!(env.blob_names().len(), 4);
    let before = snapshot(&env);
    for (name, reason) in [
        ("broken-truncated", "Protobuf parsing failed"),
        ("broken-random-bytes", "Protobuf parsing failed"),
        ("broken-empty", "No graph was found in the protobuf"),
        ("broken-dangling", "Node input 'ghost' is not a graph input"),
    ] {
        let r = with_ort(&env, &broken(), &["store", "pull", "--check", name]);
        r.fails(1, &[name, reason, "not published"]);
        assert!(
            !r.stderr.contains(".part"),
            "the temp file's name means nothing to users: {r:#?}"
        );
        assert_eq!(snapshot(&env), before, "{name} changed the store");
    }
    // Without --check the same bytes are published: the check is what refused them.
    with_ort(&env, &broken(), &["store", "pull", "broken-dangling"]).ok();
    assert_eq!(env.blob_names().len(), 5);
}

#[test]
fn add_check_adds_good_models_and_refuses_each_broken_one_leaving_the_store_unchanged() {
    let env = Env::new();
    let good = repo("manifests/demo/models/tiny-multi.onnx");
    with_ort(
        &env,
        &demo(),
        &[
            "store",
            "add",
            "--check",
            good.to_str().unwrap(),
            "--name",
            "multi",
        ],
    )
    .ok();
    let before = snapshot(&env);
    for (file, reason) in [
        ("truncated.onnx", "Protobuf parsing failed"),
        ("random-bytes.onnx", "Protobuf parsing failed"),
        ("empty.onnx", "No graph was found in the protobuf"),
        ("dangling.onnx", "Node input 'ghost' is not a graph input"),
    ] {
        let path = repo("tests/fixtures/onnx").join(file);
        let r = with_ort(
            &env,
            &demo(),
            &[
                "store",
                "add",
                "--check",
                path.to_str().unwrap(),
                "--name",
                "bad",
            ],
        );
        r.fails(1, &[file, reason, "not published"]);
        assert_eq!(snapshot(&env), before, "{file} changed the store");
    }
}

/// A catalogue (in `env`) of one entry `name` for the repository file `rel`, pinned by BLAKE3 and
/// size, with `extra` lines appended to the entry.
fn one_entry_catalogue(env: &Env, name: &str, rel: &str, extra: &str) -> PathBuf {
    let fixture = repo(rel);
    let bytes = std::fs::read(&fixture).unwrap();
    env.file(
        &format!("{name}.toml"),
        format!(
            "version = 1\n[models.{name}]\nblake3 = \"{}\"\nsize = {}\nurls = [{:?}]\n{extra}",
            blake3_hex(&bytes),
            bytes.len(),
            fixture.display().to_string()
        )
        .as_bytes(),
    )
}

#[test]
fn a_catalogue_entry_with_check_true_is_checked_without_the_flag() {
    let env = Env::new();
    let catalogue = one_entry_catalogue(
        &env,
        "dangling",
        "tests/fixtures/onnx/dangling.onnx",
        "format = \"onnx\"\ncheck = true\n",
    );
    with_ort(&env, &catalogue, &["store", "pull", "dangling"]).fails(1, &["dangling", "ghost"]);
    assert!(env.blob_names().is_empty());
    // The demo's tiny-multi has `check = true` and loads: published. The store records the
    // model, not the instruction.
    with_ort(&env, &demo(), &["store", "pull", "tiny-multi"]).ok();
    let recorded = std::fs::read_to_string(env.store.join("names/tiny-multi.toml")).unwrap();
    // Look at the keys, not the text: the checkout's own path may contain "check" (CI's does).
    let has_check_key = recorded
        .lines()
        .any(|line| line.split('=').next().map(str::trim) == Some("check"));
    assert!(
        recorded.contains("[models.tiny-multi]") && !has_check_key,
        "{recorded}"
    );
    // `manifest check` accepts the field.
    env.run(&["manifest", "check", catalogue.to_str().unwrap()])
        .ok();
}

#[test]
fn check_of_a_model_that_is_not_onnx_is_skipped_and_says_so() {
    let env = Env::new();
    let catalogue = one_entry_catalogue(
        &env,
        "blob",
        "tests/fixtures/onnx/random-bytes.onnx",
        "format = \"other\"\n",
    );
    // No runtime at all: nothing is loaded, so none is needed.
    let mut c = env.cmd();
    c.env("ORT_DYLIB_PATH", env.path("none.so"))
        .arg("--manifest")
        .arg(&catalogue);
    let r = Run::from(
        c.args(["store", "pull", "--check", "blob"])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stderr.contains("not checked"), "{r:#?}");

    let bytes = std::fs::read(repo("tests/fixtures/onnx/random-bytes.onnx")).unwrap();
    let src = env.file("weights.bin", &bytes);
    let r = with_lib(
        &env,
        &env.path("none.so"),
        &[
            "store",
            "add",
            "--check",
            src.to_str().unwrap(),
            "--name",
            "w",
        ],
    );
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stderr.contains("not checked"), "{r:#?}");
}

#[derive(Debug, Deserialize)]
struct VerifyJson {
    corrupt: Vec<serde_json::Value>,
    deep: Deep,
}

#[derive(Debug, Deserialize)]
struct Deep {
    checked: usize,
    ok: usize,
    failed: Vec<DeepFailed>,
}

#[derive(Debug, Deserialize)]
struct DeepFailed {
    blake3: String,
    names: Vec<String>,
    reason: String,
}

#[test]
fn verify_deep_passes_a_clean_store_and_flags_a_broken_model_added_without_check() {
    let env = Env::new();
    with_ort(
        &env,
        &demo(),
        &[
            "store",
            "pull",
            "tiny-add",
            "tiny-mul",
            "tiny-relu",
            "tiny-multi",
        ],
    )
    .ok();
    let clean: VerifyJson =
        with_ort(&env, &demo(), &["store", "verify", "--deep", "--json"]).json();
    assert_eq!((clean.deep.checked, clean.deep.ok), (4, 4));
    assert!(clean.deep.failed.is_empty() && clean.corrupt.is_empty());

    let dangling = repo("tests/fixtures/onnx/dangling.onnx");
    env.run(&[
        "store",
        "add",
        dangling.to_str().unwrap(),
        "--name",
        "bad-graph",
    ])
    .ok();
    let r = with_ort(&env, &demo(), &["store", "verify", "--deep", "--json"]);
    assert_eq!(r.code, 1, "{r:#?}");
    let v: VerifyJson = r.json();
    assert_eq!((v.deep.checked, v.deep.ok), (5, 4));
    assert_eq!(v.deep.failed.len(), 1);
    assert_eq!(v.deep.failed[0].names, ["bad-graph"]);
    assert_eq!(
        v.deep.failed[0].blake3,
        blake3_hex(&std::fs::read(&dangling).unwrap())
    );
    assert!(v.deep.failed[0].reason.contains("ghost"), "{v:#?}");

    let text = with_ort(&env, &demo(), &["store", "verify", "--deep"]);
    text.fails(1, &["do not load"]);
    assert!(
        text.stdout.contains("does not load: bad-graph"),
        "{text:#?}"
    );
    // The hash check alone still passes: the bytes are what was added.
    env.run(&["store", "verify"]).ok();
    // Only the names asked for are loaded.
    with_ort(&env, &demo(), &["store", "verify", "--deep", "tiny-add"]).ok();
}

/// A shared library that is not ONNX Runtime: Windows' kernel32.dll.
#[cfg(windows)]
fn some_other_library() -> PathBuf {
    PathBuf::from(r"C:\windows\system32\kernel32.dll")
}

/// A shared library that is not ONNX Runtime: the libc this test process runs with.
#[cfg(unix)]
fn some_other_library() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .map(PathBuf::from)
        .expect("this test process maps a libc")
}

#[test]
fn a_missing_or_wrong_runtime_is_one_line_and_exit_1_and_runtime_free_commands_still_work() {
    let env = Env::new();
    let dangling = repo("tests/fixtures/onnx/dangling.onnx");
    let libc = some_other_library();
    let missing = env.path("lib/libonnxruntime.so");
    let dir = env.path("");
    for (lib, says) in [
        (missing.as_path(), "no such file"),
        (libc.as_path(), "not an ONNX Runtime library"),
        (dir.as_path(), "is a directory"),
    ] {
        let lib_text = lib.display().to_string();
        for args in [
            vec!["store", "pull", "--check", "tiny-mul"],
            vec![
                "store",
                "add",
                "--check",
                dangling.to_str().unwrap(),
                "--name",
                "d",
            ],
            vec!["store", "verify", "--deep"],
        ] {
            // verify --deep needs an ONNX blob to load: pull one first (no runtime needed).
            with_lib(&env, lib, &["store", "pull", "tiny-relu"]).ok();
            let r = with_lib(&env, lib, &args);
            r.fails(
                1,
                &[
                    "ONNX Runtime",
                    &lib_text,
                    says,
                    "python3 -m pip install onnxruntime",
                ],
            );
            r.one_error_line();
            assert!(!r.stderr.contains("panicked"), "{r:#?}");
            // Found out before anything was downloaded or copied: nothing left in tmp/.
            assert!(list_names(&env.store.join("tmp")).is_empty(), "{args:?}");
        }
        assert!(!env
            .blob_names()
            .contains(&blake3_hex(&std::fs::read(&dangling).unwrap())));
        // What needs no runtime works with the same setting.
        with_lib(&env, lib, &["store", "pull", "tiny-add"]).ok();
        with_lib(&env, lib, &["store", "show", "tiny-add"]).ok();
        with_lib(&env, lib, &["store", "ls"]).ok();
        with_lib(&env, lib, &["store", "verify"]).ok();
    }
}

#[test]
fn ort_lib_flag_comes_before_ort_dylib_path() {
    let env = Env::new();
    let good = ort_lib();
    let bad = env.path("nothing.so");
    // A bad flag wins over a good environment variable, and is named.
    let mut c = env.cmd();
    c.env("ORT_DYLIB_PATH", &good).arg("--manifest").arg(demo());
    let r = Run::from(
        c.args([
            "store",
            "pull",
            "--check",
            "tiny-add",
            "--ort-lib",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap(),
    );
    r.fails(1, &["--ort-lib", "nothing.so"]);
    // A good flag loads even when the variable is wrong.
    let r = with_lib(
        &env,
        &bad,
        &[
            "--ort-lib",
            good.to_str().unwrap(),
            "store",
            "pull",
            "--check",
            "tiny-add",
        ],
    );
    assert_eq!(r.code, 0, "{r:#?}");
}

/// Fake runtimes that pass ort's first checks and then make it panic: `OrtGetApiBase` returns
/// null, or an API table that refuses every version. beaker must turn both into its one line.
const FAKE_RUNTIMES: [(&str, &str); 2] = [
    ("null-base", "const void* OrtGetApiBase(void) { return 0; }\n"),
    (
        "no-api",
        "typedef struct { const void* (*GetApi)(unsigned); const char* (*GetVersionString)(void); } Base;\n\
         static const void* get_api(unsigned v) { (void)v; return 0; }\n\
         static const char* version(void) { return \"1.31.1\"; }\n\
         static const Base base = { get_api, version };\n\
         const Base* OrtGetApiBase(void) { return &base; }\n",
    ),
];

// Unix only: an LD_PRELOAD shim.
#[cfg(unix)]
#[test]
fn a_library_that_makes_ort_panic_is_one_line_and_exit_1_not_a_panic() {
    let env = Env::new();
    for (name, source) in FAKE_RUNTIMES {
        let so = testkit::shim::build(env.dir.path(), &format!("lib{name}"), source)
            .unwrap_or_else(|e| panic!("a fake runtime: {e:#}"));
        let r = with_lib(&env, &so, &["store", "pull", "--check", "tiny-add"]);
        r.fails(
            1,
            &[
                "ONNX Runtime",
                "failed inside ort",
                "python3 -m pip install",
            ],
        );
        r.one_error_line();
        assert!(!r.stderr.contains("panicked"), "{r:#?}");
        assert!(env.blob_names().is_empty());
    }
}

// Unix only: a planted symlink (wine makes none).
#[cfg(unix)]
#[test]
fn without_a_setting_the_runtime_of_python3s_onnxruntime_package_is_found() {
    // A python package `onnxruntime` on PYTHONPATH whose capi/ holds the real library (linked):
    // python3 finds it, and so must beaker, before the checkout's .ort/.
    let env = Env::new();
    let real = ort_lib();
    let file_name = real.file_name().expect("library file name").to_owned();
    let capi = env.path("py/onnxruntime/capi");
    std::fs::create_dir_all(&capi).unwrap();
    std::fs::write(env.path("py/onnxruntime/__init__.py"), b"").unwrap();
    std::os::unix::fs::symlink(&real, capi.join(&file_name)).unwrap();
    let mut c = env.cmd();
    c.env_remove("ORT_DYLIB_PATH")
        .env("PYTHONPATH", env.path("py"))
        .arg("--manifest")
        .arg(demo());
    let r = Run::from(
        c.args(["-v", "store", "pull", "--check", "tiny-add"])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{r:#?}");
    let expected = format!(
        "ONNX Runtime: {} (from python3's onnxruntime)",
        capi.join(&file_name).display()
    );
    assert!(r.stderr.contains(&expected), "{r:#?}");
}

/// `verify --deep` without ONNX Runtime says so first, before the hash pass reads every blob
/// (no report is printed, nothing is hashed); a store with no ONNX model needs no runtime.
#[test]
fn verify_deep_without_a_runtime_says_so_before_hashing_anything() {
    let env = Env::new();
    let src = env.file(
        "tiny-add.onnx",
        &std::fs::read(repo("manifests/demo/models/tiny-add.onnx")).unwrap(),
    );
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "add"])
        .ok();
    let r = with_lib(&env, &env.path("none.so"), &["store", "verify", "--deep"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stderr.contains("none.so"), "{r:#?}");
    assert!(
        r.stdout.is_empty(),
        "a verify report before the runtime error: {r:#?}"
    );

    let other = Env::new();
    let w = other.file("w.bin", b"weights");
    other
        .run(&["store", "add", w.to_str().unwrap(), "--name", "w"])
        .ok();
    let r = with_lib(
        &other,
        &other.path("none.so"),
        &["store", "verify", "--deep"],
    );
    assert_eq!(r.code, 0, "{r:#?}");
}
