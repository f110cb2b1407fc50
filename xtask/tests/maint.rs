//! `cargo xtask gc | verify | prune-locks` do what `beaker store …` does, on the same store: the
//! store is made with the beaker library, then the built xtask binary runs against it.
// Tests damage stores on purpose (tampered blobs, planted folders) with raw std::fs.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

use beaker::lock::{acquire, Mode, Wait};
use beaker::store::InitOptions;
use beaker::{ModelName, Store};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn xtask(args: &[&str]) -> Out {
    let o = Command::new(XTASK).args(args).output().expect("run xtask");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn json(o: &Out) -> serde_json::Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", o.stdout, o.stderr))
}

fn add(store: &Store, dir: &Path, name: &str, content: &[u8]) -> String {
    let src = dir.join(format!("{name}-{}", content.len()));
    std::fs::write(&src, content).unwrap();
    let name = ModelName::new(name).unwrap();
    let p =
        beaker::add::add_file(store, &src, &name, false, &mut beaker::progress::Silent).unwrap();
    p.blake3.to_hex()
}

fn setup() -> (tempfile::TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = Store::init(&root, InitOptions::default()).unwrap();
    (dir, root, store)
}

#[test]
fn help_lists_the_maintenance_commands() {
    let o = xtask(&["--help"]);
    assert_eq!(o.code, 0);
    for cmd in ["gc", "verify", "prune-locks"] {
        assert!(o.stdout.contains(cmd), "{}", o.stdout);
    }
}

#[test]
fn xtask_gc_removes_exactly_the_unreferenced_blobs() {
    let (dir, root, store) = setup();
    let old = add(&store, dir.path(), "a", b"first");
    let new = add(&store, dir.path(), "a", b"second");
    let s = root.to_str().unwrap();
    let dry = json(&xtask(&["gc", "--store", s, "--dry-run", "--json"]));
    assert_eq!(dry["removed_blobs"], serde_json::json!([old]));
    assert!(root.join("blobs").join(&old).exists());
    let real = xtask(&["gc", "--store", s, "--json"]);
    assert_eq!(real.code, 0, "{}", real.stderr);
    let real = json(&real);
    assert_eq!(real["removed_blobs"], serde_json::json!([old]));
    assert_eq!(real["freed_bytes"], 5);
    assert_eq!(real["kept_blobs"], 1);
    assert!(!root.join("blobs").join(&old).exists());
    assert!(root.join("blobs").join(&new).exists());
}

#[test]
fn xtask_gc_takes_the_eviction_flags_of_beaker_store_gc() {
    let (dir, root, store) = setup();
    let old = add(&store, dir.path(), "old", b"old model");
    add(&store, dir.path(), "new", b"new model");
    let day = std::time::Duration::from_secs(86_400);
    for (name, ago) in [("old", 3 * day), ("new", day)] {
        let name = ModelName::new(name).unwrap();
        let when = std::time::SystemTime::now() - ago;
        beaker::uses::set_last_used(&store, &name, when).unwrap();
    }
    let s = root.to_str().unwrap();
    let out = xtask(&["gc", "--store", s, "--max-size", "10", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = json(&out);
    assert_eq!(out["evicted"][0]["name"], "old", "{out}");
    assert_eq!(out["evicted"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["removed_blobs"], serde_json::json!([old]));
    let out = xtask(&["gc", "--store", s, "--older-than=-1d"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = xtask(&["gc", "--store", s, "--max-size", "0"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn xtask_verify_quarantines_a_tampered_blob() {
    let (dir, root, store) = setup();
    let hex = add(&store, dir.path(), "a", b"precious bytes");
    let s = root.to_str().unwrap();
    assert_eq!(xtask(&["verify", "--store", s]).code, 0);
    let blob = root.join("blobs").join(&hex);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&blob, b"precious bytez").unwrap();
    let o = xtask(&["verify", "--store", s, "--json"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let v = json(&o);
    assert_eq!(v["corrupt"][0]["blake3"], serde_json::json!(hex));
    assert!(!blob.exists());
    assert!(matches!(
        store.locate(&ModelName::new("a").unwrap()),
        Err(beaker::StoreError::BlobMissing { .. })
    ));
}

#[test]
fn xtask_verify_deep_lists_an_onnx_model_that_does_not_load() {
    let (_dir, root, store) = setup();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let name = ModelName::new("bad-graph").unwrap();
    let src = repo.join("tests/fixtures/onnx/dangling.onnx");
    beaker::add::add_file(&store, &src, &name, false, &mut beaker::progress::Silent).unwrap();
    let good = ModelName::new("tiny-add").unwrap();
    let src = repo.join("manifests/demo/models/tiny-add.onnx");
    beaker::add::add_file(&store, &src, &good, false, &mut beaker::progress::Silent).unwrap();
    let (found, missed) = beaker::onnx::runtime::candidates();
    let Some((_, lib)) = found.into_iter().next() else {
        panic!(
            "this test needs ONNX Runtime and found none ({}): run it with `cargo xtask test`, which installs it",
            missed.join("; ")
        )
    };
    let o = Command::new(XTASK)
        .args([
            "verify",
            "--store",
            root.to_str().unwrap(),
            "--deep",
            "--json",
        ])
        .env("ORT_DYLIB_PATH", lib)
        .output()
        .expect("run xtask");
    let o = Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert_eq!(o.code, 1, "{}", o.stderr);
    let v = json(&o);
    assert_eq!(v["deep"]["checked"], 2);
    assert_eq!(
        v["deep"]["failed"][0]["names"],
        serde_json::json!(["bad-graph"])
    );
}

#[test]
fn xtask_prune_locks_removes_free_and_keeps_held() {
    let (dir, root, store) = setup();
    add(&store, dir.path(), "a", b"x");
    let held = store.layout().locks().join("held.lock");
    // Held by this test process: another process, as far as the xtask binary is concerned.
    let _guard = acquire(&held, Mode::Exclusive, Wait::NoWait, 0o644, &mut |_| {}).unwrap();
    let o = xtask(&["prune-locks", "--store", root.to_str().unwrap(), "--json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v = json(&o);
    assert_eq!(v["held"][0]["name"], "held.lock");
    assert_eq!(v["held"][0]["holder"]["pid"], std::process::id());
    let removed = v["removed"].as_array().unwrap();
    assert!(removed.iter().any(|r| r == "gc.lock"), "{v}");
    assert!(held.path().exists() && !root.join("locks/gc.lock").exists());
}

#[test]
fn xtask_refuses_bad_stores_and_deletes_nothing() {
    let (dir, root, store) = setup();
    let old = add(&store, dir.path(), "a", b"first");
    add(&store, dir.path(), "a", b"second");
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("notes"), b"mine").unwrap();
    for cmd in ["gc", "verify", "prune-locks"] {
        let o = xtask(&[cmd, "--store", folder.to_str().unwrap()]);
        assert_eq!(o.code, 2, "{}", o.stderr);
        assert!(o.stderr.contains("not a beaker store"), "{}", o.stderr);
    }
    let manifest = root.join("names/a.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\nbogus = 1\n");
    std::fs::write(&manifest, text).unwrap();
    for cmd in ["gc", "verify", "prune-locks"] {
        let o = xtask(&[cmd, "--store", root.to_str().unwrap()]);
        assert_eq!(o.code, 2, "{cmd}: {}", o.stderr);
        assert!(o.stderr.contains("names/a.toml:"), "{}", o.stderr);
    }
    assert!(root.join("blobs").join(&old).exists());
}

#[test]
fn xtask_gc_takes_the_flags_and_duration_grammar_of_beaker_gc() {
    let (_dir, root, _store) = setup();
    let store = root.to_str().unwrap();
    // A fraction (which xtask's own parser used to refuse) and a millisecond unit are accepted…
    for age in ["1.5m", "250ms", "7d"] {
        let o = xtask(&["gc", "--store", store, "--dry-run", "--tmp-age", age]);
        assert_eq!(o.code, 0, "{age}: {}", o.stderr);
    }
    // …and a bad one is refused with the one message every duration gets (exit 2, clap's usage).
    let o = xtask(&["gc", "--store", store, "--tmp-age=-1s"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("\"-1s\" is not a duration") && o.stderr.contains("ms, s, m, h or d"),
        "{}",
        o.stderr
    );
    let help = xtask(&["gc", "--help"]).stdout;
    for flag in [
        "--dry-run",
        "--tmp-age <D>",
        "--keep <MANIFEST>",
        "[default: 24h]",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
