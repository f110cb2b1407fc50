//! The exit-code contract (0 ok, 1 failed, 2 bad input, 3 not present) where issue 8 found it
//! inconsistent, and catalogue URLs that are not URLs beaker fetches. Each test is named after the
//! rule it pins.

use crate::pull::{catalogue, pull_cmd};
use crate::support::*;

#[test]
fn a_missing_or_unreadable_catalogue_is_bad_input_with_its_path_everywhere() {
    let env = Env::new();
    let missing = env.path("nope.toml");
    let missing = missing.to_str().unwrap();
    // A directory cannot be read as a catalogue, even by root (chmod 000 would not stop root).
    let dir = env.path("a-directory.toml");
    std::fs::create_dir(&dir).unwrap();
    let dir = dir.to_str().unwrap();
    env.run(&["store", "init"]).ok();
    for (path, why) in [(missing, NOT_FOUND), (dir, "directory")] {
        env.run(&["--manifest", path, "store", "pull", "m"])
            .fails(2, &[path, why]);
        Run::from(
            env.cmd()
                .env("BEAKER_MANIFEST", path)
                .args(["store", "pull", "m"])
                .output()
                .unwrap(),
        )
        .fails(2, &[path, why]);
        env.run(&["manifest", "check", path]).fails(2, &[path, why]);
        env.run(&["store", "gc", "--keep", path])
            .fails(2, &[path, why, "nothing was deleted"]);
    }
}

// Unix only: a planted symlink (wine makes none).
#[cfg(unix)]
#[test]
fn a_symlinked_store_toml_and_a_symlinked_blobs_dir_are_both_bad_input() {
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    env.run(&["store", "ls"]).ok();
    let config = env.store.join("store.toml");
    let moved = env.path("store.toml.elsewhere");
    std::fs::rename(&config, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &config).unwrap();
    env.run(&["store", "ls"]).fails(
        2,
        &[
            "store.toml",
            "is a symlink where the store's settings file should be",
            "cp --remove-destination",
        ],
    );
    remove(&config);
    std::fs::rename(&moved, &config).unwrap();
    env.run(&["store", "ls"]).ok();

    let blobs = env.store.join("blobs");
    let elsewhere = env.path("blobs-elsewhere");
    std::fs::rename(&blobs, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &blobs).unwrap();
    env.run(&["store", "ls"]).fails(
        2,
        &[
            "blobs",
            "is a symlink where the store's blobs/ directory should be",
        ],
    );
}

#[test]
fn store_path_on_a_store_that_does_not_exist_is_absent_exit_3() {
    let env = Env::new();
    env.run(&["store", "path", "m"])
        .fails(3, &["no beaker store at", "m is not in the store"]);
    assert!(!env.store.exists(), "path creates nothing");
    // An invalid name is still bad input, store or not.
    env.run(&["store", "path", "Bad Name"])
        .fails(2, &["Bad Name"]);
}

#[test]
fn data_javascript_unknown_schemes_and_bad_ports_are_refused_with_file_line_col() {
    let env = Env::new();
    for (url, needle) in [
        (
            "data:application/octet-stream,AAAA",
            "unsupported scheme \"data\"",
        ),
        ("javascript:alert(1)", "unsupported scheme \"javascript\""),
        ("gopher://h/m", "unsupported scheme \"gopher\""),
        (
            "http://127.0.0.1:99999/m",
            "port \"99999\" is not a number from 1 to 65535",
        ),
        ("http://127.0.0.1:0/m", "port \"0\""),
        ("http:///m", "it has no host"),
    ] {
        let cat = catalogue(&env, &[("m", b"bytes", vec![url.to_string()])]);
        let at = format!("{}:5:10: model m: url {url:?}", cat.display());
        env.run(&["manifest", "check", cat.to_str().unwrap()])
            .fails(2, &[&at, needle]);
        // Refused at catalogue load too: never tried as a relative path, never sent anywhere.
        let run = Run::from(pull_cmd(&env, &cat).arg("m").output().unwrap());
        run.fails(2, &[&at, needle]);
        assert!(!run.stderr.contains("the server answered"), "{run:#?}");
        assert!(!run.stderr.contains("no such file"), "{run:#?}");
    }
}

// Unix only: a FIFO.
#[cfg(unix)]
#[test]
fn a_directory_planted_at_a_lock_path_is_replaced_never_used() {
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    let locks = env.store.join("locks");
    let body = b"model bytes".as_slice();
    let blob_lock = locks.join(format!("{}.lock", blake3_hex(body)));
    for lock in [
        locks.join("gc.lock"),
        locks.join("manifest.lock"),
        blob_lock.clone(),
    ] {
        std::fs::create_dir(&lock).unwrap();
        std::fs::write(lock.join("inside"), b"planted").unwrap();
    }
    // pull takes all three (blob lock, gc.lock shared, manifest.lock).
    let src = env.file("catalogue/m.onnx", body);
    let cat = catalogue(&env, &[("m", body, vec!["m.onnx".into()])]);
    assert_eq!(src.parent(), cat.parent());
    let run = Run::from(pull_cmd(&env, &cat).arg("m").output().unwrap());
    run.ok();
    for lock in [
        locks.join("gc.lock"),
        locks.join("manifest.lock"),
        blob_lock,
    ] {
        let meta = std::fs::symlink_metadata(&lock).unwrap();
        assert!(meta.is_file(), "{} is a lock file now", lock.display());
    }
    // prune-locks reports a directory at a lock path as it reports a FIFO there: not a lock
    // file, left for a human (it removes only lock files nobody holds).
    let planted = locks.join("planted.lock");
    let fifo = locks.join("fifo.lock");
    std::fs::create_dir(&planted).unwrap();
    mkfifo(&fifo);
    let report: serde_json::Value = env.run(&["--json", "store", "prune-locks"]).json();
    let foreign = report["foreign"].as_array().unwrap();
    assert!(foreign.contains(&"planted.lock".into()), "{report}");
    assert!(foreign.contains(&"fifo.lock".into()), "{report}");
    // And `info` says what they are instead of flocking them.
    let info = env.run(&["store", "info"]);
    info.ok();
    assert!(
        info.stdout.contains("is a directory inside locks/"),
        "{info:#?}"
    );
    assert!(info.stdout.contains("is a FIFO inside locks/"), "{info:#?}");
}

/// [cli] 3: `--json` gives a JSON error for a command line clap refuses, as for any other
/// failure: `{"error": {message, kind: "bad_input", exit_code: 2}}` on stdout, exit 2, clap's
/// text on stderr. Without `--json` stdout stays empty; `--help` and `--version` are unchanged.
#[test]
fn json_reports_usage_errors_as_json_too() {
    let env = Env::new();
    for (args, needle) in [
        (
            &["--json", "store", "gc", "--max-size", "20parsecs"][..],
            "20parsecs",
        ),
        (
            &["--json", "store", "pul", "x"],
            "unrecognized subcommand 'pul'",
        ),
        (
            &["store", "pull", "--json", "--no-such-flag"],
            "--no-such-flag",
        ),
        (&["--json", "store"], "a subcommand is missing"),
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.describe());
        let doc: serde_json::Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {:?}", r.stdout));
        assert_eq!(doc["error"]["kind"], "bad_input", "{args:?}");
        assert_eq!(doc["error"]["exit_code"], 2, "{args:?}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{args:?}: {message}");
        assert!(!r.stderr.is_empty(), "{args:?}: clap's text on stderr");
    }
    let plain = env.run(&["store", "pul", "x"]);
    assert_eq!(plain.code, 2);
    assert!(plain.stdout.is_empty(), "{}", plain.stdout);
    let help = env.run(&["--json", "--help"]);
    assert_eq!(help.code, 0, "{}", help.describe());
    assert!(help.stdout.contains("Usage"), "{}", help.stdout);
}
