//! [cli] 1 through the binary: `store export` copies by default, so writing an exported file
//! (as root, in every container) never changes the store; hard links only with `--link`; a blob
//! that is corrupt is not called missing, and both messages name `beaker store verify`.

use std::path::Path;

use crate::support::*;

/// A model of two files, `net.onnx` and `labels.txt`, added as `m`.
fn model(env: &Env) -> (Vec<u8>, Vec<u8>) {
    let (net, labels) = (bytes(5_000, 31), b"cat\ndog\n".to_vec());
    env.file("model/net.onnx", &net);
    env.file("model/labels.txt", &labels);
    let dir = env.path("model");
    env.run(&["store", "add", dir.to_str().unwrap(), "--name", "m"])
        .ok();
    (net, labels)
}

fn export(env: &Env, to: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "store", "export", "m", to.to_str().unwrap()];
    args.extend(extra);
    env.run(&args).json()
}

fn hows(out: &serde_json::Value) -> Vec<String> {
    out["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["how"].as_str().unwrap().to_owned())
        .collect()
}

fn ino(p: &Path) -> u64 {
    file_id(p).1
}

#[test]
fn export_copies_by_default_so_writing_an_exported_file_never_changes_the_store() {
    let env = Env::new();
    let (net, labels) = model(&env);
    let blob = env.store.join("blobs").join(blake3_hex(&labels));
    let here = env.path("here");
    assert_eq!(hows(&export(&env, &here, &[])), ["copied", "copied"]);
    assert_ne!(ino(&here.join("labels.txt")), ino(&blob), "not the blob");
    // A file of the user's, writable (on Windows: not read-only).
    let writable = if cfg!(unix) { 0o644 } else { 0o600 };
    assert_eq!(mode(&here.join("labels.txt")), writable);
    // What the issue did as root: the exported file changes, the store does not.
    std::fs::write(here.join("labels.txt"), b"changed\n").unwrap();
    assert_eq!(std::fs::read(&blob).unwrap(), labels);
    env.run(&["store", "verify"]).ok();
    let dir = env.run(&["store", "path", "m", "--dir"]).ok();
    assert_eq!(
        std::fs::read(Path::new(&dir).join("labels.txt")).unwrap(),
        labels
    );
    assert_eq!(std::fs::read(here.join("net.onnx")).unwrap(), net);
    // --copy is still accepted: it is the default.
    let copies = env.path("copies");
    assert_eq!(
        hows(&export(&env, &copies, &["--copy"])),
        ["copied", "copied"]
    );
    // Hard links only when asked; a plain export later turns them into copies.
    let links = env.path("links");
    assert_eq!(
        hows(&export(&env, &links, &["--link"])),
        ["linked", "linked"]
    );
    assert_eq!(ino(&links.join("labels.txt")), ino(&blob));
    assert_eq!(hows(&export(&env, &links, &[])), ["copied", "copied"]);
    assert_ne!(ino(&links.join("labels.txt")), ino(&blob));
    assert_eq!(std::fs::read(links.join("labels.txt")).unwrap(), labels);
    assert_eq!(hows(&export(&env, &links, &[])), ["unchanged", "unchanged"]);
    // Replacing the links left the blobs as they were, read-only included.
    env.run(&["store", "verify"]).ok();
    assert_eq!(mode(&blob), 0o444);
}

#[test]
fn export_of_a_corrupt_blob_says_it_is_damaged_and_of_an_absent_one_that_it_is_missing() {
    let env = Env::new();
    let (_, labels) = model(&env);
    let blob = env.store.join("blobs").join(blake3_hex(&labels));
    // Rewritten in place (as a write through a hard link does).
    chmod(&blob, 0o644);
    std::fs::write(&blob, b"changed\n!").unwrap();
    let there = env.path("there");
    let run = env.run(&["store", "export", "m", there.to_str().unwrap()]);
    run.fails(1, &["exists but is damaged", "beaker store verify"]);
    assert!(!run.stderr.contains("missing"), "{run:?}");
    // verify quarantines it; now it is missing, and the message says how it can come back.
    let v = env.run(&["store", "verify"]);
    assert_eq!(v.code, 1, "{v:?}");
    env.run(&["store", "export", "m", there.to_str().unwrap()])
        .fails(
            3,
            &[
                "is missing",
                "beaker store verify",
                "beaker store pull m",
                "beaker store add",
            ],
        );
    assert!(!there.join("labels.txt").exists());
}

// Unix only: a planted symlink (wine makes none).
#[cfg(unix)]
/// An export into the store itself (its snapshots/, its root, through a symlink) is refused
/// before anything is written.
#[test]
fn export_into_the_store_itself_is_refused() {
    let env = Env::new();
    let src = env.file("m.bin", b"model bytes");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"])
        .ok();
    let before = super::cli::snapshot(&env.store);
    let link = env.path("to-store");
    std::os::unix::fs::symlink(&env.store, &link).unwrap();
    for to in [
        env.store.join("snapshots/out"),
        env.store.clone(),
        link.join("blobs/new"),
    ] {
        env.run(&["store", "export", "m", to.to_str().unwrap()])
            .fails(2, &["is inside the store", "nothing was exported"]);
    }
    assert_eq!(super::cli::snapshot(&env.store), before);
    // Beside the store is fine.
    env.run(&["store", "export", "m", env.path("out").to_str().unwrap()])
        .ok();
}
