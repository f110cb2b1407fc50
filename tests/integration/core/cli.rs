//! [core] behaviour through the real binary: add/path/ls/rm/info, manifest check, and bad input
//! that must exit 2 or 1 with one clear line and leave the store as it was.

use std::path::Path;

use serde::Deserialize;

use crate::support::*;

#[derive(Debug, Deserialize, PartialEq)]
struct LsRow {
    name: String,
    blake3: Option<String>,
    size: Option<u64>,
    present: bool,
}

#[test]
fn add_then_path_gives_the_bytes_named_by_their_hash_read_only() {
    let env = Env::new();
    let data = bytes(300_000, 1);
    let src = env.file("model.onnx", &data);

    let printed = env
        .run(&["store", "add", src.to_str().unwrap(), "--name", "bird"])
        .ok();
    let path = env.run(&["store", "path", "bird"]).ok();
    assert_eq!(printed, path);
    assert_eq!(std::fs::read(&path).unwrap(), data);
    let hex = blake3_hex(&data);
    // The model under its real file name, in its snapshot: the blob's own inode.
    assert_model_file(&env.store, &path, &data);
    assert!(path.ends_with(&*native("/model.onnx")), "{path}");
    let blob = env.run(&["store", "path", "bird", "--blob"]).ok();
    assert_eq!(Path::new(&blob), env.store.join("blobs").join(&hex));
    let dir = env.run(&["store", "path", "bird", "--dir"]).ok();
    assert_eq!(Path::new(&path).parent().unwrap(), Path::new(&dir));
    assert_eq!(mode(Path::new(&path)), 0o444);
    assert_blobs_named_by_hash(&env.store);
    assert!(
        list_names(&env.store.join("tmp")).is_empty(),
        "no temp file left behind"
    );
}

#[test]
fn same_bytes_under_two_names_share_a_blob_and_rm_keeps_the_other() {
    let env = Env::new();
    let data = bytes(10_000, 2);
    let a = env.file("a.bin", &data);
    let b = env.file("copy-of-a.bin", &data);
    env.run(&["store", "add", a.to_str().unwrap(), "--name", "one"])
        .ok();
    env.run(&["store", "add", b.to_str().unwrap(), "--name", "org/two"])
        .ok();
    assert_eq!(env.blob_names(), vec![blake3_hex(&data)]);

    let rows: Vec<LsRow> = env.run(&["--json", "store", "ls"]).json();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.present && r.size == Some(10_000)));
    assert_eq!(rows[0].blake3.as_deref(), Some(blake3_hex(&data).as_str()));

    env.run(&["store", "rm", "one"]).ok();
    assert_eq!(
        env.blob_names(),
        vec![blake3_hex(&data)],
        "org/two still uses the blob"
    );
    env.run(&["store", "path", "org/two"]).ok();
    env.run(&["store", "path", "one"])
        .fails(3, &["one is not in the store"]);

    env.run(&["store", "rm", "org/two"]).ok();
    assert!(
        env.blob_names().is_empty(),
        "the last reference is gone, so is the blob"
    );
}

#[test]
fn rm_of_an_unknown_name_changes_nothing() {
    let env = Env::new();
    let src = env.file("a", b"abc");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "keep"])
        .ok();
    let before = snapshot(&env.store);
    env.run(&["store", "rm", "keep", "nope"])
        .fails(3, &["not in the store: nope", "nothing was removed"]);
    assert_eq!(snapshot(&env.store), before);
}

/// Found by `cargo xtask torture` (R4): the rm took gc.lock and manifest.lock before it found the
/// unknown name, and taking a lock rewrites its holder record.
#[test]
fn rm_of_an_unknown_name_leaves_the_lock_files_byte_for_byte_unchanged() {
    let env = Env::new();
    let src = env.file("a", b"abc");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "keep"])
        .ok();
    let locks = |env: &Env| -> Vec<(String, Vec<u8>)> {
        list_names(&env.store.join("locks"))
            .into_iter()
            .map(|n| {
                let bytes = std::fs::read(env.store.join("locks").join(&n)).unwrap();
                (n, bytes)
            })
            .collect()
    };
    let before = locks(&env);
    assert!(
        before.iter().any(|(n, _)| n == "gc.lock"),
        "the add left gc.lock: {before:?}"
    );
    env.run(&["store", "rm", "keep", "nope"])
        .fails(3, &["not in the store: nope", "nothing was removed"]);
    assert_eq!(locks(&env), before);
}

#[test]
fn re_adding_a_name_points_it_at_the_new_content() {
    let env = Env::new();
    let v1 = env.file("v1", b"version one");
    let v2 = env.file("v2", b"version two");
    env.run(&["store", "add", v1.to_str().unwrap(), "--name", "m"])
        .ok();
    env.run(&["store", "add", v2.to_str().unwrap(), "--name", "m"])
        .ok();
    let path = env.run(&["store", "path", "m"]).ok();
    assert_eq!(std::fs::read(path).unwrap(), b"version two");
}

#[test]
fn path_exits_3_when_the_blob_is_gone() {
    let env = Env::new();
    let src = env.file("a", b"data");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"])
        .ok();
    let blob = env.run(&["store", "path", "m", "--blob"]).ok();
    remove(&blob);
    // The snapshot still links the inode, but without its blob the model is not in the store.
    env.run(&["store", "path", "m"])
        .fails(3, &["is missing", "beaker store pull m"]);
    let rows: Vec<LsRow> = env.run(&["--json", "store", "ls"]).json();
    assert!(!rows[0].present);
}

#[test]
fn a_store_directory_deleted_by_hand_is_recreated() {
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    std::fs::remove_dir(env.store.join("tmp")).unwrap();
    std::fs::remove_dir(env.store.join("quarantine")).unwrap();
    let src = env.file("a", b"abc");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"])
        .ok();
    assert!(env.store.join("tmp").is_dir() && env.store.join("quarantine").is_dir());
}

#[test]
fn info_counts_names_and_bytes() {
    let env = Env::new();
    let src = env.file("a", &bytes(4096, 3));
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"])
        .ok();
    let info: serde_json::Value = env.run(&["--json", "store", "info"]).json();
    assert_eq!(info["names"], 1);
    assert_eq!(info["blobs"]["files"], 1);
    assert_eq!(info["blobs"]["bytes"], 4096);
    assert_eq!(info["referenced"]["bytes"], 4096);
    assert_eq!(info["unreferenced"]["bytes"], 0);
    assert_eq!(info["mode"], "private");
    let text = env.run(&["store", "info"]).stdout;
    assert!(text.contains("4 KiB"), "{text}");
}

#[test]
fn store_layout_and_cachedir_tag() {
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    for d in [
        "blobs",
        "tmp",
        "locks",
        "quarantine",
        "index",
        "snapshots",
        "uses",
        "pins",
        "names",
    ] {
        assert!(env.store.join(d).is_dir(), "{d}");
    }
    let tag = std::fs::read_to_string(env.store.join("CACHEDIR.TAG")).unwrap();
    assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
    let cfg = std::fs::read_to_string(env.store.join("store.toml")).unwrap();
    assert!(
        cfg.contains("format = 4\nmode = \"private\"\nlocking = \"flock\"\n"),
        "{cfg}"
    );
    // init again with the same settings is fine; with other settings it is refused.
    env.run(&["store", "init"]).ok();
    env.run(&["store", "init", "--locking", "none"])
        .fails(2, &["already exists", "cannot be changed"]);
}

#[test]
fn global_flags_work_after_the_subcommand_and_env_sets_the_store() {
    let env = Env::new();
    let src = env.file("a", b"x");
    let out = std::process::Command::new(BIN)
        .args([
            "store",
            "add",
            src.to_str().unwrap(),
            "--name",
            "m",
            "--json",
            "-q",
        ])
        .env("BEAKER_STORE", &env.store)
        .output()
        .unwrap();
    let run = Run::from(out);
    let v: serde_json::Value = run.json();
    assert_eq!(v["name"], "m");
    assert_eq!(v["new_blob"], true);
    assert!(env.store.join("store.toml").exists());
}

#[test]
fn manifest_check_reports_file_line_column() {
    let env = Env::new();
    let good = env.file(
        "good.toml",
        format!(
            "version = 1\n[models.a]\nblake3 = \"{}\"\nsize = 1\n",
            blake3_hex(b"a")
        )
        .as_bytes(),
    );
    let bad = env.file(
        "bad.toml",
        b"version = 1\n[models.a]\nblake3 = \"nothex\"\nsize = 1\n",
    );
    env.run(&["manifest", "check", good.to_str().unwrap()]).ok();
    let r = env.run(&[
        "manifest",
        "check",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    r.fails(
        2,
        &[&format!(
            "{}:3:10: a blake3 digest is 64 hex characters",
            bad.display()
        )],
    );
    assert_eq!(
        r.stderr.lines().filter(|l| l.contains("error")).count(),
        1,
        "one clear line: {r:#?}"
    );

    let other = env.file(
        "other.toml",
        format!(
            "version = 1\n[models.a]\nblake3 = \"{}\"\nsize = 1\n",
            blake3_hex(b"b")
        )
        .as_bytes(),
    );
    env.run(&[
        "manifest",
        "check",
        good.to_str().unwrap(),
        other.to_str().unwrap(),
    ])
    .fails(2, &["model a is defined differently in"]);
    env.run(&["manifest", "check", "/nonexistent/x.toml"])
        .fails(2, &["/nonexistent/x.toml", NOT_FOUND]);
}

#[test]
fn bundled_catalogues_in_the_repo_are_valid() {
    let env = Env::new();
    let root = crate::support::checkout().join("manifests");
    let mut files = vec![root.join("models.toml")];
    for entry in walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
    {
        if entry.path().extension().is_some_and(|e| e == "toml")
            && entry.path() != root.join("models.toml")
        {
            files.push(entry.path().to_owned());
        }
    }
    for f in files {
        env.run(&["manifest", "check", f.to_str().unwrap()]).ok();
    }
}

// ---- bad input: one clear line, the right exit code, the store as it was ----

#[test]
fn add_of_a_missing_file_or_a_directory_is_bad_input() {
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    let before = snapshot(&env.store);
    env.run(&["store", "add", "/nonexistent/model.onnx", "--name", "m"])
        .fails(2, &["cannot add /nonexistent/model.onnx: no such file"]);
    let dir = env.path("adir");
    std::fs::create_dir(&dir).unwrap();
    env.run(&["store", "add", dir.to_str().unwrap(), "--name", "m"])
        .fails(2, &["holds no files"]);
    assert_eq!(snapshot(&env.store), before);
}

#[test]
fn invalid_names_are_refused_before_anything_happens() {
    let env = Env::new();
    let src = env.file("a", b"x");
    for (bad, why) in [
        ("Bird", "contains 'B'"),
        ("../x", "contains '..'"),
        ("-x", "starting with '-'"),
    ] {
        env.run(&[
            "store",
            "add",
            src.to_str().unwrap(),
            &format!("--name={bad}"),
        ])
        .fails(2, &[why]);
    }
    assert!(
        !env.store.exists(),
        "a refused name must not even create the store"
    );
    env.run(&["store", "path", "A"]).fails(2, &["contains 'A'"]);
}

#[test]
fn a_store_path_that_is_a_file_is_bad_input() {
    let env = Env::new();
    std::fs::write(&env.store, b"i am a file").unwrap();
    let src = env.file("a", b"x");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"])
        .fails(2, &["exists but is not a directory"]);
    assert_eq!(std::fs::read(&env.store).unwrap(), b"i am a file");
}

#[test]
fn a_foreign_directory_is_not_turned_into_a_store() {
    let env = Env::new();
    std::fs::create_dir(&env.store).unwrap();
    std::fs::write(env.store.join("thesis.tex"), b"precious").unwrap();
    let src = env.file("a", b"x");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"])
        .fails(2, &["is not a beaker store", "not empty"]);
    assert_eq!(list_names(&env.store), vec!["thesis.tex"]);
}

#[test]
fn unknown_store_format_is_refused() {
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    std::fs::write(env.store.join("store.toml"), b"format = 5\n").unwrap();
    let before = snapshot(&env.store);
    let src = env.file("a", b"x");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"])
        .fails(2, &["store format 5", "understands formats up to 4"]);
    env.run(&["store", "ls"]).fails(2, &["store format 5"]);
    std::fs::write(
        env.store.join("store.toml"),
        b"format = 1\nlocking = \"maybe\"\n",
    )
    .unwrap();
    env.run(&["store", "info"])
        .fails(2, &["store.toml:2:11", "unknown variant"]);
    std::fs::write(env.store.join("store.toml"), b"format = 2\n").unwrap();
    assert_eq!(snapshot(&env.store), before);
}

#[test]
fn a_corrupt_store_manifest_is_reported_with_its_position() {
    let env = Env::new();
    let src = env.file("a", b"x");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"])
        .ok();
    std::fs::write(
        env.store.join("names/m.toml"),
        b"version = 1\n[models.m]\nblake3 = 7\n",
    )
    .unwrap();
    env.run(&["store", "ls"])
        .fails(2, &[&*native("names/m.toml:3:10")]);
}

// Unix only: runs beaker as `nobody` through setpriv
#[cfg(unix)]
/// Runs `beaker` as `nobody` through setpriv (the caller is root, see `root_only`): root
/// ignores permission bits, so the tests below would prove nothing as root.
fn unprivileged(env: &Env, args: &[&str]) -> Run {
    // nobody must be able to reach the binary and the temp dir.
    chmod(env.dir.path(), 0o755);
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(BIN);
    cmd.arg("--store")
        .arg(&env.store)
        .args(args)
        .env_remove("BEAKER_STORE");
    Run::from(cmd.output().expect("spawn"))
}

fn binary_reachable_by_nobody() -> bool {
    // The binary lives under the checkout; a checkout in a 0700 home is not reachable by nobody.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(BIN)
        .arg("--version")
        .output();
    matches!(out, Ok(o) if o.status.success())
}

// Unix only: Windows has no mode that makes a file unreadable to its owner
#[cfg(unix)]
#[test]
fn unreadable_file_and_unwritable_store_fail_cleanly() {
    // As anyone but root, "another user" would be ourselves, who may write the store.
    if !root_only("it runs beaker as `nobody`, a user who cannot write the test's store") {
        return;
    }
    assert!(
        binary_reachable_by_nobody(),
        "this test runs beaker as `nobody`, but {BIN} is not reachable by nobody; \
         put the checkout where every user can read it"
    );
    let env = Env::new();
    let src = env.file("secret.onnx", b"weights");
    chmod(&src, 0o600);
    env.run(&["store", "init"]).ok();
    let before = snapshot(&env.store);

    // The store belongs to the test user and is 0755: an unprivileged user can read but not write.
    let readable = env.file("public.onnx", b"weights");
    chmod(&readable, 0o644);
    let r = unprivileged(
        &env,
        &["store", "add", readable.to_str().unwrap(), "--name", "m"],
    );
    r.fails(1, &["is not writable by", "ask its owner"]);
    r.one_error_line();

    let r = unprivileged(
        &env,
        &["store", "add", src.to_str().unwrap(), "--name", "m"],
    );
    r.fails(2, &["secret.onnx", "permission denied"]);
    assert_eq!(snapshot(&env.store), before);
}

/// Every path under `dir` with its size and mode: equal snapshots mean "left as it was".
pub fn snapshot(dir: &Path) -> Vec<(String, u64, u32)> {
    let mut v: Vec<(String, u64, u32)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| {
            let m = e.path().symlink_metadata().unwrap();
            (
                e.path().display().to_string(),
                m.len(),
                crate::support::mode(e.path()),
            )
        })
        .filter(|(p, _, _)| !p.ends_with(".lock"))
        .collect();
    v.sort();
    v
}

/// One exit code for "the store does not hold that name", whichever command asks.
#[test]
fn every_command_says_a_name_is_not_held_with_exit_3() {
    let env = Env::new();
    let src = env.file("a", b"abc");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "keep"])
        .ok();
    for args in [
        vec!["store", "path", "nope"],
        vec!["store", "show", "nope"],
        vec!["store", "pin", "nope"],
        vec!["store", "rm", "nope"],
        vec!["store", "verify", "nope"],
    ] {
        let r = env.run(&args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.describe());
        assert!(r.stderr.contains("nope"), "{args:?}: {}", r.stderr);
        let j = env.run(&[&["--json"][..], &args].concat());
        let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
        assert_eq!(v["error"]["kind"], "not_present", "{args:?}: {v}");
    }
}

/// A name re-pointed by `add` or by a pull is said, in text and JSON, with what it pointed at.
#[test]
fn re_pointing_a_name_by_add_or_by_pull_says_what_it_pointed_at() {
    let env = Env::new();
    let (one, two) = (b"first content".as_slice(), b"second content".as_slice());
    let a = env.file("a.bin", one);
    let b = env.file("b.bin", two);
    env.run(&["store", "add", a.to_str().unwrap(), "--name", "my-model"])
        .ok();
    let r = env.run(&["store", "add", b.to_str().unwrap(), "--name", "my-model"]);
    r.ok();
    let old = blake3_hex(one);
    assert!(
        r.stderr.contains(&format!(
            "my-model pointed at other content before (blake3 {}",
            &old[..12]
        )),
        "{}",
        r.stderr
    );
    let j: serde_json::Value = env
        .run(&[
            "--json",
            "store",
            "add",
            a.to_str().unwrap(),
            "--name",
            "my-model",
        ])
        .json();
    assert_eq!(j["replaced"], blake3_hex(two), "{j}");
    let j: serde_json::Value = env
        .run(&[
            "--json",
            "store",
            "add",
            a.to_str().unwrap(),
            "--name",
            "my-model",
        ])
        .json();
    assert!(j["replaced"].is_null(), "the same content again: {j}");

    // A catalogue pull of the same name switches it to the catalogue's bytes, and says so.
    let cat = env.file(
        "cat.toml",
        format!(
            "version = 1\n[models.my-model]\nblake3 = \"{}\"\nsize = {}\nurls = [{:?}]\n",
            blake3_hex(two),
            two.len(),
            b.display().to_string()
        )
        .as_bytes(),
    );
    let r = env.run(&[
        "--manifest",
        cat.to_str().unwrap(),
        "store",
        "pull",
        "my-model",
    ]);
    r.ok();
    assert!(
        r.stderr.contains(&format!(
            "my-model pointed at other content before (blake3 {}",
            &old[..12]
        )),
        "{}",
        r.stderr
    );
}

/// A typo in a held name, or a store command given without `store`, is answered with what was
/// meant.
#[test]
fn a_typo_of_a_held_name_or_a_store_command_without_store_gets_a_did_you_mean() {
    let env = Env::new();
    let src = env.file("a", b"abc");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "big-slow"])
        .ok();
    let r = env.run(&["store", "path", "big-slwo"]);
    r.fails(
        3,
        &["big-slwo is not in the store", "did you mean big-slow?"],
    );
    assert!(!r.stderr.contains("store pull big-slwo"), "{}", r.stderr);
    // Nothing close: where to look and how to fetch it, as before.
    env.run(&["store", "path", "zzz"])
        .fails(3, &["`beaker store pull zzz` fetches it"]);
    // A store command that has no short form, without `store`: the tip names it.
    env.run(&["gc"])
        .fails(2, &["unrecognized subcommand 'gc'", "beaker store gc"]);
    env.run(&["verify", "x"]).fails(2, &["beaker store verify"]);
}

/// `beaker pull|path|ls|rm` are `beaker store pull|path|ls|rm`.
#[test]
fn the_short_forms_are_the_store_commands() {
    let env = Env::new();
    let src = env.file("m.bin", b"short forms");
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"])
        .ok();
    let path = env.run(&["path", "m"]).ok();
    assert_eq!(path, env.run(&["store", "path", "m"]).ok());
    assert_eq!(env.run(&["-q", "ls"]).stdout, "m\n");
    let demo = crate::support::checkout().join("manifests/demo/demo.toml");
    let pulled = env
        .run(&["--manifest", demo.to_str().unwrap(), "pull", "tiny-add"])
        .ok();
    assert!(pulled.ends_with("tiny-add.onnx"), "{pulled}");
    env.run(&["rm", "m", "tiny-add"]).ok();
    env.run(&["path", "m"]).fails(3, &["not in the store"]);
    let help = env.run(&["--help"]);
    assert!(
        help.stdout.contains("Short for `beaker store pull`"),
        "{}",
        help.stdout
    );
}

/// `-q store ls`: the names only, one a line; the table ends with the count and total.
#[test]
fn quiet_ls_prints_names_only_and_the_table_says_how_much() {
    let env = Env::new();
    for (name, len) in [("b-model", 2048), ("a-model", 1024)] {
        let src = env.file(name, &bytes(len, len as u64));
        env.run(&["store", "add", src.to_str().unwrap(), "--name", name])
            .ok();
    }
    let r = env.run(&["-q", "store", "ls"]);
    assert_eq!(r.stdout, "a-model\nb-model\n", "{r:#?}");
    assert!(r.stderr.is_empty(), "{r:#?}");
    let r = env.run(&["store", "ls"]);
    assert!(r.stdout.starts_with("NAME"), "{r:#?}");
    assert!(r.stderr.contains("2 models, 3 KiB in all"), "{r:#?}");
}

/// `store ls NAME…` filters (`*` matches any run), `--sort size|used|name` orders, `-l` shows
/// each model's path as `store path` prints it.
#[test]
fn ls_filters_by_name_sorts_and_shows_paths() {
    let env = Env::new();
    for (name, len) in [("lab/big", 3000), ("lab/small", 1000), ("other", 2000)] {
        let src = env.file(&name.replace('/', "-"), &bytes(len, len as u64));
        env.run(&["store", "add", src.to_str().unwrap(), "--name", name])
            .ok();
    }
    assert_eq!(
        env.run(&["-q", "ls", "lab/*"]).stdout,
        "lab/big\nlab/small\n"
    );
    assert_eq!(env.run(&["-q", "ls", "*s*"]).stdout, "lab/small\n");
    assert_eq!(
        env.run(&["-q", "ls", "--sort", "size"]).stdout,
        "lab/big\nother\nlab/small\n"
    );
    // Uses a day apart (a use record's time is its mtime; at most one write a minute).
    let day = std::time::Duration::from_secs(86_400);
    for (key, ago) in [("lab+big", 2), ("other", 3), ("lab+small", 1)] {
        let at = env.store.join("uses").join(key);
        std::fs::write(&at, b"").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&at)
            .and_then(|f| f.set_modified(std::time::SystemTime::now() - day * ago))
            .unwrap();
    }
    assert_eq!(
        env.run(&["-q", "ls", "--sort", "used"])
            .stdout
            .lines()
            .next(),
        Some("lab/small")
    );
    let r = env.run(&["ls", "nothing-*"]);
    assert!(
        r.success() && r.stderr.contains("no name in the store"),
        "{r:#?}"
    );
    let long = env.run(&["store", "ls", "-l", "other"]).stdout;
    let path = env.run(&["store", "path", "other"]).ok();
    assert!(long.contains(&path), "{long}");
    let rows: Vec<serde_json::Value> = env.run(&["--json", "store", "ls", "other"]).json();
    assert_eq!(rows[0]["path"].as_str(), Some(path.as_str()));
}
