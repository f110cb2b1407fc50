//! gc, verify and prune-locks on bad input: not a store, unknown format, a manifest that does not
//! parse, a store this user may not write. Always a clear error, exit 1 or 2, nothing deleted.

#[cfg(unix)]
use super::run_read_only;
use super::{add, blob_path, plant_orphan, GcJson, VerifyJson};
use crate::support::*;

#[test]
fn maintenance_refuses_a_store_whose_manifest_does_not_parse_and_deletes_nothing() {
    let env = Env::new();
    add(&env, "a", b"x");
    let orphan = plant_orphan(&env, b"orphan");
    let manifest = env.store.join("names/a.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[models.b]\nblake3 = 12\n");
    std::fs::write(&manifest, text).unwrap();
    let before = env.blob_names();
    let locks_before = list_names(&env.store.join("locks"));

    env.run(&["store", "gc"]).fails(
        2,
        &[
            "refusing to gc",
            "nothing was deleted",
            &*native("names/a.toml:"),
        ],
    );
    env.run(&["store", "gc", "--dry-run"])
        .fails(2, &[&*native("names/a.toml:")]);
    env.run(&["store", "verify"])
        .fails(2, &[&*native("names/a.toml:")]);
    env.run(&["store", "prune-locks"])
        .fails(2, &[&*native("names/a.toml:"), "nothing was removed"]);
    assert_eq!(env.blob_names(), before);
    assert!(blob_path(&env, &orphan).exists());
    assert_eq!(list_names(&env.store.join("locks")), locks_before);
}

#[test]
fn maintenance_on_something_that_is_not_a_store_is_bad_input() {
    let env = Env::new();
    let folder = env.path("folder");
    env.file("folder/notes.txt", b"mine");
    let missing = env.path("nothing-here");
    let at = |store: &std::path::Path, cmd: &str| {
        let out = std::process::Command::new(BIN)
            .arg("--store")
            .arg(store)
            .args(["store", cmd])
            .env_remove("BEAKER_STORE")
            .output()
            .unwrap();
        Run::from(out)
    };
    for cmd in ["gc", "verify", "prune-locks"] {
        at(&folder, cmd).fails(2, &["not a beaker store"]);
        at(&missing, cmd).fails(2, &["no beaker store"]);
    }
    assert!(!missing.exists(), "maintenance never creates a store");
    assert_eq!(list_names(&folder), vec!["notes.txt".to_string()]);

    // A store of a format this beaker does not know.
    add(&env, "a", b"x");
    plant_orphan(&env, b"orphan");
    std::fs::write(env.store.join("store.toml"), "format = 5\n").unwrap();
    let before = env.blob_names();
    for cmd in ["gc", "verify", "prune-locks"] {
        env.run(&["store", cmd]).fails(2, &["format 5"]);
    }
    assert_eq!(env.blob_names(), before);
}

// Unix only: a store made read-only with modes.
#[cfg(unix)]
#[test]
fn maintenance_on_a_read_only_store_fails_clearly_and_deletes_nothing() {
    let env = Env::new();
    let content = bytes(100, 1);
    let hex = add(&env, "a", &content);
    let orphan = plant_orphan(&env, b"orphan");
    let blob = blob_path(&env, &hex);
    std::process::Command::new("chmod")
        .arg("u+w")
        .arg(&blob)
        .status()
        .unwrap();
    std::fs::write(&blob, bytes(100, 2)).unwrap(); // corrupt, for verify
    let locks_before = list_names(&env.store.join("locks"));

    run_read_only(&env, &["store", "gc"]).fails(1, &["not writable"]);
    run_read_only(&env, &["store", "prune-locks"]).fails(1, &["not writable"]);
    let v = run_read_only(&env, &["--json", "store", "verify"]);
    assert_eq!(v.code, 1, "{v:#?}");
    let v: VerifyJson = v.json();
    assert_eq!(v.corrupt.len(), 1);
    assert!(v.corrupt[0].quarantined_to.is_none());
    assert!(
        v.corrupt[0]
            .quarantine_error
            .as_deref()
            .is_some_and(|e| e.contains("not writable")),
        "{v:?}"
    );
    // A dry run only looks, so it works on a store it may read.
    let dry: GcJson = run_read_only(&env, &["--json", "store", "gc", "--dry-run"]).json();
    assert_eq!(dry.removed_blobs, vec![orphan.clone()]);

    assert!(blob_path(&env, &orphan).exists() && blob.exists());
    assert_eq!(list_names(&env.store.join("locks")), locks_before);
    assert!(list_names(&env.store.join("quarantine")).is_empty());
}

#[test]
fn every_duration_flag_and_variable_speaks_one_grammar() {
    let env = Env::new();
    add(&env, "a", b"x");
    let demo = checkout().join("manifests/demo/demo.toml");
    let demo = demo.to_str().unwrap();
    let grammar = "write a number with an optional unit ms, s, m, h or d";
    // The same refusal, word for word, from a gc flag, a pull flag and a pull variable.
    env.run(&["store", "gc", "--tmp-age=-1s"])
        .fails(2, &["\"-1s\" is not a duration", grammar]);
    env.run(&[
        "--manifest",
        demo,
        "store",
        "pull",
        "tiny-add",
        "--lock-timeout=-1s",
    ])
    .fails(2, &["\"-1s\" is not a duration", grammar]);
    let r = Run::from(
        env.cmd()
            .env("BEAKER_STALL_TIMEOUT", "-1s")
            .args(["--manifest", demo, "store", "pull", "tiny-add"])
            .output()
            .expect("spawn beaker"),
    );
    r.fails(
        2,
        &["BEAKER_STALL_TIMEOUT", "\"-1s\" is not a duration", grammar],
    );
    // And the same spellings are accepted everywhere: a fraction for gc, days for pull.
    env.run(&["store", "gc", "--tmp-age", "1.5m"]).ok();
    let r = Run::from(
        env.cmd()
            .env("BEAKER_STALL_TIMEOUT", "0.5m")
            .args([
                "--manifest",
                demo,
                "store",
                "pull",
                "tiny-add",
                "--lock-timeout",
                "1d",
            ])
            .output()
            .expect("spawn beaker"),
    );
    r.ok();
}
