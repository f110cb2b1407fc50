//! [bundle]: models of several files, snapshot directories with real file names, `add DIR`,
//! `export`, gc of snapshots, and the upgrade of a format-1 store (docs/design.md#snapshots), through the real
//! binary. Every printed path must be a file in `snapshots/` that *is* its blob (same inode).

// Tests plant and inspect files with raw std::fs on purpose.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use testkit::server::Fault;

use crate::pull::{partials, pull, pull_cmd};
use crate::support::*;

/// A catalogue with one model `name` of several `(path, bytes, url)` files.
fn bundle_catalogue(env: &Env, name: &str, files: &[(&str, &[u8], String)]) -> PathBuf {
    let mut text = format!("version = 1\n[models.{name}]\nformat = \"onnx\"\n");
    for (path, bytes, url) in files {
        text.push_str(&format!(
            "[[models.{name}.files]]\npath = {path:?}\nblake3 = \"{}\"\nsize = {}\nurls = [{url:?}]\n",
            blake3_hex(bytes),
            bytes.len()
        ));
    }
    env.file(&format!("catalogue/{name}.toml"), text.as_bytes())
}

fn snapshot_dirs(env: &Env) -> Vec<String> {
    list_names(&env.store.join("snapshots"))
}

#[test]
fn a_model_of_two_files_is_pulled_into_one_directory_with_real_names() {
    let (env, server) = (Env::new(), http_server());
    let (graph, weights) = (bytes(2_000, 1), bytes(200_000, 2));
    server.route("/g", &graph, &[], Fault::None);
    server.route("/w", &weights, &[], Fault::None);
    let cat = bundle_catalogue(
        &env,
        "cutout",
        &[
            ("model.onnx", &graph, server.url("/g")),
            ("model.onnx.data", &weights, server.url("/w")),
        ],
    );
    let printed = pull(&env, &cat, &["cutout"]).ok();
    assert!(
        printed.ends_with(&*native("/model.onnx")),
        "the main file: {printed}"
    );
    assert_model_file(&env.store, &printed, &graph);
    let dir = Path::new(&printed).parent().unwrap();
    assert_model_file(
        &env.store,
        dir.join("model.onnx.data").to_str().unwrap(),
        &weights,
    );
    assert_eq!(list_names(dir), ["model.onnx", "model.onnx.data"]);
    assert_eq!(
        env.run(&["store", "path", "cutout", "--dir"]).ok(),
        dir.display().to_string()
    );
    // The second pull is the fast path: no request.
    let before = server.requests();
    assert_eq!(pull(&env, &cat, &["cutout"]).ok(), printed);
    assert_eq!(server.requests(), before);
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn a_sigkill_during_a_multi_file_pull_leaves_the_name_absent_and_the_next_pull_finishes() {
    let (env, server) = (Env::new(), http_server());
    let (graph, weights) = (bytes(2_000, 3), bytes(300_000, 4));
    server.route("/g", &graph, &[], Fault::None);
    server.route("/w", &weights, &[Fault::Gate(120_000)], Fault::None);
    let cat = bundle_catalogue(
        &env,
        "m",
        &[
            ("model.onnx", &graph, server.url("/g")),
            ("model.onnx.data", &weights, server.url("/w")),
        ],
    );
    let mut child = pull_cmd(&env, &cat)
        .arg("m")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .start();
    assert!(
        server.wait_gate(std::time::Duration::from_secs(20)),
        "no request reached the gate"
    );
    // The first file is downloaded and checked, the second is half there (once its bytes are on
    // disk): kill it now.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !partials(&env)
        .iter()
        .any(|p| std::fs::metadata(env.store.join("tmp").join(p)).is_ok_and(|m| m.len() == 120_000))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the cut never reached the disk"
        );
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    server.release_gate();
    // Never half a model: the name is not recorded, no snapshot exists.
    env.run(&["store", "path", "m"])
        .fails(3, &["not in the store"]);
    assert!(snapshot_dirs(&env).is_empty());
    // Both files stay for resume: the first complete (checked, never named), the second cut.
    assert_eq!(partials(&env).len(), 2);

    let printed = pull(&env, &cat, &["m"]).ok();
    assert_model_file(&env.store, &printed, &graph);
    let seen = server.seen();
    assert_eq!(
        seen.iter().filter(|s| s.path == "/g").count(),
        1,
        "the complete first file is not downloaded again"
    );
    let last = seen.iter().rev().find(|s| s.path == "/w").unwrap();
    assert!(last.range.is_some(), "the second file resumed with Range");
    assert!(partials(&env).is_empty());
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn two_models_sharing_a_file_share_its_blob_and_rm_frees_exactly_the_unshared() {
    let env = Env::new();
    let (shared, a, b) = (bytes(50_000, 5), bytes(1_000, 6), bytes(1_000, 7));
    let files = |own: &[u8], own_name: &str| -> Vec<(String, Vec<u8>)> {
        vec![
            ("weights.bin".into(), shared.clone()),
            (own_name.into(), own.to_vec()),
        ]
    };
    for (name, own) in [("a", &a), ("b", &b)] {
        let dir = env.path(&format!("src-{name}"));
        for (path, bytes) in files(own, "config.json") {
            env.file(&format!("src-{name}/{path}"), &bytes);
        }
        env.run(&["store", "add", dir.to_str().unwrap(), "--name", name])
            .ok();
    }
    assert_eq!(env.blob_names().len(), 3, "weights.bin is stored once");
    assert_eq!(snapshot_dirs(&env).len(), 2);

    let out: serde_json::Value = env.run(&["--json", "store", "rm", "a"]).json();
    let freed: Vec<String> = env.blob_names();
    assert_eq!(
        freed.iter().collect::<std::collections::BTreeSet<_>>(),
        [blake3_hex(&shared), blake3_hex(&b)].iter().collect(),
        "{out}"
    );
    assert_eq!(snapshot_dirs(&env).len(), 1, "a's snapshot went with it");
    let dir = env.run(&["store", "path", "b", "--dir"]).ok();
    assert_model_file(
        &env.store,
        Path::new(&dir).join("weights.bin").to_str().unwrap(),
        &shared,
    );
    // gc finds nothing more to free.
    let gc: serde_json::Value = env.run(&["--json", "store", "gc"]).json();
    assert_eq!(gc["removed_blobs"].as_array().unwrap().len(), 0, "{gc}");
    assert_eq!(gc["removed_snapshots"].as_array().unwrap().len(), 0, "{gc}");
}

// Unix only: a planted symlink (wine makes none).
#[cfg(unix)]
#[test]
fn add_of_a_directory_keeps_relative_paths_and_refuses_symlinks_and_empty_dirs() {
    let env = Env::new();
    env.file("model/net.onnx", b"graph");
    env.file("model/tokenizer/vocab.txt", b"a b c");
    let dir = env.path("model");
    let printed = env
        .run(&["store", "add", dir.to_str().unwrap(), "--name", "m"])
        .ok();
    assert!(
        printed.ends_with(&*native("/net.onnx")),
        "the .onnx file is main: {printed}"
    );
    let snap = Path::new(&printed).parent().unwrap();
    assert_model_file(
        &env.store,
        snap.join("tokenizer/vocab.txt").to_str().unwrap(),
        b"a b c",
    );

    init_and(&env);
    let before = super::cli::snapshot(&env.store);
    std::os::unix::fs::symlink("/etc/passwd", env.path("model/evil")).unwrap();
    env.run(&["store", "add", dir.to_str().unwrap(), "--name", "n"])
        .fails(2, &["evil is a symlink"]);
    std::fs::create_dir(env.path("empty")).unwrap();
    env.run(&[
        "store",
        "add",
        env.path("empty").to_str().unwrap(),
        "--name",
        "n",
    ])
    .fails(2, &["holds no files"]);
    assert_eq!(super::cli::snapshot(&env.store), before, "nothing written");
}

/// The store exists (so a before/after comparison sees only what the next command changes).
fn init_and(env: &Env) {
    env.run(&["store", "init"]).ok();
}

#[test]
fn export_gives_the_same_bytes_under_the_same_names_and_never_overwrites() {
    let env = Env::new();
    env.file("model/net.onnx", b"graph");
    env.file("model/w/weights.bin", &bytes(10_000, 8));
    env.run(&[
        "store",
        "add",
        env.path("model").to_str().unwrap(),
        "--name",
        "m",
    ])
    .ok();
    let out = env.path("out");
    env.run(&["store", "export", "m", out.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read(out.join("net.onnx")).unwrap(), b"graph");
    assert_eq!(
        std::fs::read(out.join("w/weights.bin")).unwrap(),
        bytes(10_000, 8)
    );
    // By default: copies, ordinary files of the user's, not the blobs.
    let blob = env.run(&["store", "path", "m", "--blob"]).ok();
    let meta = std::fs::metadata(out.join("net.onnx")).unwrap();
    assert!(meta.is_file());
    assert_ne!(file_id(&out.join("net.onnx")), file_id(Path::new(&blob)));
    assert_eq!(
        mode(&out.join("net.onnx")) & 0o777,
        if cfg!(unix) { 0o644 } else { 0o600 }
    );
    // Again: nothing to do.
    let again: serde_json::Value = env
        .run(&["--json", "store", "export", "m", out.to_str().unwrap()])
        .json();
    assert!(again["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["how"] == "unchanged"));
    // --link, on the store's filesystem: hard links to the blobs.
    let links = env.path("links");
    env.run(&["store", "export", "m", links.to_str().unwrap(), "--link"])
        .ok();
    assert_eq!(file_id(&links.join("net.onnx")), file_id(Path::new(&blob)));
    assert_eq!(std::fs::read(links.join("net.onnx")).unwrap(), b"graph");
    // A different file in the way: refused, nothing written.
    let clash = env.path("clash");
    env.file("clash/w/weights.bin", b"mine");
    env.run(&["store", "export", "m", clash.to_str().unwrap()])
        .fails(2, &["already exists with other content"]);
    assert!(!clash.join("net.onnx").exists(), "nothing was exported");
    assert_eq!(std::fs::read(clash.join("w/weights.bin")).unwrap(), b"mine");
}

// Unix only: its fixture is unpacked with tar.
#[cfg(unix)]
#[test]
fn a_format_1_store_made_by_the_previous_release_is_upgraded_and_every_name_resolves() {
    let env = Env::new();
    let fixture = crate::support::checkout().join("tests/fixtures/format1-store.tar");
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&fixture)
        .arg("-C")
        .arg(env.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let store = env.dir.path().join("s");
    let run = |args: &[&str]| {
        Run::from(
            env.cmd()
                .arg("--store")
                .arg(&store)
                .args(args)
                .output()
                .unwrap(),
        )
    };
    // env.cmd() already passes --store for env.store; the later --store is refused by clap, so
    // point env.store at the fixture instead.
    let _ = run;
    let mut env = env;
    env.store = store;
    assert!(std::fs::read_to_string(env.store.join("store.toml"))
        .unwrap()
        .contains("format = 1"));
    let detector = env.run(&["store", "path", "bird-detector"]).ok();
    assert!(
        detector.ends_with(&*native("/bird-detector.onnx")),
        "{detector}"
    );
    assert_model_file(&env.store, &detector, b"graph bytes of a tiny model\n");
    let weights = env.run(&["store", "path", "org/weights"]).ok();
    assert!(weights.ends_with(&*native("/weights")), "{weights}");
    assert_eq!(
        env.run(&["store", "path", "alias", "--blob"]).ok(),
        env.run(&["store", "path", "bird-detector", "--blob"]).ok(),
        "two names, one blob"
    );
    assert!(std::fs::read_to_string(env.store.join("store.toml"))
        .unwrap()
        .contains("format = 4"));
    assert_eq!(snapshot_dirs(&env).len(), 3);
    // Format 3: one record per name, and no manifest.toml left.
    assert!(!env.store.join("manifest.toml").exists());
    let records = || {
        let mut all: Vec<(String, String)> = std::fs::read_dir(env.store.join("names"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let text = std::fs::read_to_string(e.path()).unwrap();
                (e.file_name().to_string_lossy().into_owned(), text)
            })
            .collect();
        all.sort();
        all
    };
    let names: Vec<String> = records().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["alias.toml", "bird-detector.toml", "org+weights.toml"]
    );
    // Idempotent: nothing changes on the next open, and the store verifies clean.
    let before = records();
    env.run(&["store", "verify"]).ok();
    assert_eq!(records(), before);
}

/// A format-1 store of `names` (name, bytes of its one blob, whether the blob is there), as the
/// release before snapshots wrote it: `store.toml`, one `manifest.toml`, `blobs/`.
fn format_1_store(root: &Path, names: &[(String, Vec<u8>, bool)]) {
    for d in ["blobs", "tmp", "locks", "quarantine"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("store.toml"),
        "format = 1\nmode = \"private\"\nlocking = \"flock\"\n",
    )
    .unwrap();
    let mut manifest = String::from("version = 1\n");
    for (name, body, present) in names {
        let hex = blake3_hex(body);
        if *present {
            let blob = root.join("blobs").join(&hex);
            std::fs::write(&blob, body).unwrap();
            chmod(&blob, 0o444);
        }
        manifest.push_str(&format!(
            "\n[models.\"{name}\"]\nblake3 = \"{hex}\"\nsize = {}\nadded = \"2026-11-28T01:36:33Z\"\n",
            body.len()
        ));
    }
    std::fs::write(root.join("manifest.toml"), manifest).unwrap();
}

/// [trust] 11: the format-1 upgrade parses `manifest.toml` once and records each name on its
/// own (it re-parsed the whole manifest per name: quadratic). What it must still do: every name
/// whose blob is there recorded with its snapshot's tree, and the snapshot complete; a name
/// whose blob is missing left as it is.
#[test]
fn a_format_1_store_of_many_names_is_upgraded_with_every_name_recorded_with_its_snapshot() {
    let env = Env::new();
    // 400 names over 40 blobs (each name has its own snapshot: its file is named after it), one
    // name with a '/', one whose blob is gone.
    let mut names: Vec<(String, Vec<u8>, bool)> = (0..400u64)
        .map(|i| (format!("m{i:03}"), bytes(64, 1000 + i % 40), true))
        .collect();
    names.push(("org/w".into(), bytes(3000, 7), true));
    names.push(("gone".into(), bytes(10, 8), false));
    format_1_store(&env.store, &names);

    let rows: Vec<serde_json::Value> = env.run(&["--json", "store", "ls"]).json();
    assert_eq!(rows.len(), names.len());
    for row in &rows {
        assert_eq!(row["present"], row["name"] != "gone", "{row}");
    }
    assert!(std::fs::read_to_string(env.store.join("store.toml"))
        .unwrap()
        .contains("format = 4"));
    assert!(!env.store.join("manifest.toml").exists());
    let store = beaker::Store::open(&env.store).unwrap();
    let manifest = store.read_manifest().unwrap();
    assert_eq!(manifest.models.len(), names.len());
    for (name, body, present) in &names {
        let name = beaker::ModelName::new(name).unwrap();
        let entry = &manifest.models[&name];
        assert_eq!(entry.model.main().blob.blake3.to_hex(), blake3_hex(body));
        let files = entry.model.model_files();
        if !present {
            assert_eq!(entry.tree, None, "{name}: recorded without its blob");
            continue;
        }
        assert_eq!(
            entry.tree,
            Some(beaker::snapshot::TreeId::of(&files)),
            "{name}"
        );
        assert_eq!(
            beaker::snapshot::check(&store, &files).unwrap(),
            beaker::snapshot::State::Complete,
            "{name}"
        );
    }
    assert_eq!(snapshot_dirs(&env).len(), 401);
    for (name, body) in [("m007", bytes(64, 1007)), ("org/w", bytes(3000, 7))] {
        let printed = env.run(&["store", "path", name]).ok();
        assert_model_file(&env.store, &printed, &body);
    }
    env.run(&["store", "path", "gone"]).fails(3, &["gone"]);
}

#[test]
fn verify_rebuilds_a_damaged_snapshot_and_path_rebuilds_a_deleted_one() {
    let env = Env::new();
    env.file("model/net.onnx", b"graph");
    env.file("model/weights.bin", b"weights");
    env.run(&[
        "store",
        "add",
        env.path("model").to_str().unwrap(),
        "--name",
        "m",
    ])
    .ok();
    let dir = PathBuf::from(env.run(&["store", "path", "m", "--dir"]).ok());
    // A file replaced by a copy with other bytes, and a stray file.
    remove(dir.join("weights.bin"));
    std::fs::write(dir.join("weights.bin"), b"tampered").unwrap();
    std::fs::write(dir.join("stray"), b"x").unwrap();
    let v: serde_json::Value = env.run(&["--json", "store", "verify"]).json();
    assert_eq!(v["snapshots_rebuilt"], serde_json::json!(["m"]), "{v}");
    assert_model_file(
        &env.store,
        dir.join("weights.bin").to_str().unwrap(),
        b"weights",
    );
    assert!(!dir.join("stray").exists());

    // A file next to the main one swapped for other bytes: `path` never hands out the directory
    // as it is, it rebuilds it first.
    remove(dir.join("weights.bin"));
    std::fs::write(dir.join("weights.bin"), b"swapped").unwrap();
    env.run(&["store", "path", "m"]).ok();
    assert_model_file(
        &env.store,
        dir.join("weights.bin").to_str().unwrap(),
        b"weights",
    );

    // The whole directory deleted by hand: `path` builds it again from the blobs.
    remove_all(&dir);
    let main = env.run(&["store", "path", "m"]).ok();
    assert_model_file(&env.store, &main, b"graph");
}

#[test]
fn bad_file_lists_are_refused_with_file_and_line_and_nothing_is_written() {
    let env = Env::new();
    let h = blake3_hex(b"x");
    for (files, needle) in [
        ("path = \"../x\"", "'..' part"),
        ("path = \"/etc/passwd\"", "is absolute"),
        ("path = \"a//b\"", "empty part"),
        ("path = \"\"", "is empty"),
    ] {
        let cat = env.file(
            "bad.toml",
            format!("version = 1\n[models.m]\n[[models.m.files]]\n{files}\nblake3 = \"{h}\"\nsize = 1\n")
                .as_bytes(),
        );
        let r = env.run(&["manifest", "check", cat.to_str().unwrap()]);
        r.fails(2, &[needle, "bad.toml:4:"]);
    }
    let cat = env.file(
        "dup.toml",
        format!("version = 1\n[models.m]\n[[models.m.files]]\npath = \"a\"\nblake3 = \"{h}\"\nsize = 1\n[[models.m.files]]\npath = \"a\"\nblake3 = \"{h}\"\nsize = 1\n").as_bytes(),
    );
    env.run(&["manifest", "check", cat.to_str().unwrap()])
        .fails(2, &["lists the file a twice", "dup.toml:2:"]);
    let cat = env.file("none.toml", b"version = 1\n[models.m]\nfiles = []\n");
    env.run(&["--manifest", cat.to_str().unwrap(), "store", "pull", "m"])
        .fails(2, &["empty `files` list", "none.toml:2:"]);
    assert!(!env.store.exists(), "nothing was written");
}

#[test]
fn ls_and_info_count_every_file_of_a_model() {
    let env = Env::new();
    env.file("model/net.onnx", &bytes(1_000, 9));
    env.file("model/weights.bin", &bytes(3_000, 10));
    env.run(&[
        "store",
        "add",
        env.path("model").to_str().unwrap(),
        "--name",
        "m",
    ])
    .ok();
    let rows: Vec<serde_json::Value> = env.run(&["--json", "store", "ls"]).json();
    assert_eq!(rows[0]["present"], true, "{rows:?}");
    assert_eq!(rows[0]["size"], 4_000);
    assert_eq!(rows[0]["files"], 2);
    assert_eq!(
        rows[0]["blake3"],
        blake3_hex(&bytes(1_000, 9)),
        "the main file's"
    );
    let info: serde_json::Value = env.run(&["--json", "store", "info"]).json();
    assert_eq!(info["referenced"]["files"], 2, "{info}");
    assert_eq!(info["unreferenced"]["files"], 0, "{info}");
    assert_eq!(info["missing"], serde_json::json!([]));
    let long = env.run(&["store", "ls", "--long"]).ok();
    assert!(long.contains("onnx") && long.contains("just now"), "{long}");
}
