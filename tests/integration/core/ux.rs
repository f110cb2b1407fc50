//! [ux] through the binary: the configuration files and their precedence (`config show`,
//! `store dir`), store paths made absolute, and discovery (`catalogue ls` / `show`).

// Tests write configuration files with raw std::fs on purpose.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::*;

/// `beaker` with no --store and a clean environment, reading the config files given.
fn bare(env: &Env, user: &Path, system: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("BEAKER_STORE")
        .env_remove("BEAKER_MANIFEST")
        .env_remove("BEAKER_OFFLINE")
        .env("BEAKER_CONFIG", user)
        .env("BEAKER_SYSTEM_CONFIG", system)
        .env("HOME", env.path("home"))
        .env("XDG_CACHE_HOME", env.path("cache"))
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
    c
}

fn run(mut c: Command, args: &[&str]) -> Run {
    Run::from(c.args(args).output().expect("spawn beaker"))
}

// Unix only: its default store is found through XDG_CACHE_HOME (Windows: the Local AppData folder, which no variable moves).
#[cfg(unix)]
#[test]
fn flag_beats_env_beats_user_file_beats_system_file_beats_default() {
    let env = Env::new();
    let (user, system) = (env.path("user.toml"), env.path("system.toml"));
    let dir = |c: Command| PathBuf::from(run(c, &["store", "dir"]).ok());
    assert_eq!(
        dir(bare(&env, &user, &system)),
        env.path("cache/beaker/store")
    );
    std::fs::write(&system, "store = \"/srv/lab-models\"\nretries = 7\n").unwrap();
    assert_eq!(
        dir(bare(&env, &user, &system)),
        PathBuf::from("/srv/lab-models")
    );
    // The user's file wins, and its relative path is relative to the file.
    std::fs::write(&user, "store = \"mine\"\n").unwrap();
    assert_eq!(dir(bare(&env, &user, &system)), env.path("mine"));
    let mut c = bare(&env, &user, &system);
    c.env("BEAKER_STORE", "~/from-env");
    assert_eq!(dir(c), env.path("home/from-env"), "~ is expanded");
    let mut c = bare(&env, &user, &system);
    c.env("BEAKER_STORE", "");
    assert_eq!(dir(c), env.path("mine"), "an empty variable is unset");
    let mut c = bare(&env, &user, &system);
    c.env("BEAKER_STORE", "/from-env")
        .args(["--store", "rel/flag"]);
    assert_eq!(
        dir(c),
        env.path("rel/flag"),
        "relative flags are made absolute"
    );

    let shown: serde_json::Value =
        run(bare(&env, &user, &system), &["--json", "config", "show"]).json();
    let row = |key: &str| {
        shown["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("store")["source"]["detail"], user.display().to_string());
    assert_eq!(row("retries")["value"], "7");
    assert_eq!(
        row("retries")["source"]["detail"],
        system.display().to_string()
    );
    assert_eq!(row("stall_timeout")["source"]["kind"], "default");
}

#[test]
fn a_bad_config_file_names_its_line_and_nothing_runs() {
    let env = Env::new();
    let (user, system) = (env.path("user.toml"), env.path("system.toml"));
    std::fs::write(&user, "store = \"/s\"\nretires = 3\n").unwrap();
    run(bare(&env, &user, &system), &["store", "dir"]).fails(
        2,
        &[
            &format!("{}:2:1:", user.display()),
            "unknown field `retires`",
        ],
    );
    std::fs::write(&user, "stall_timeout = \"forever\"\n").unwrap();
    run(bare(&env, &user, &system), &["store", "ls"])
        .fails(2, &["is not a duration", "user.toml:1:"]);
}

#[test]
fn a_catalogue_from_the_config_file_is_used_and_listed() {
    let env = Env::new();
    let (user, system) = (env.path("user.toml"), env.path("system.toml"));
    let demo = crate::support::checkout().join("manifests/demo/demo.toml");
    std::fs::write(
        &user,
        format!(
            "store = \"store\"\nmanifests = [{:?}]\n",
            demo.display().to_string()
        ),
    )
    .unwrap();
    let rows: Vec<serde_json::Value> =
        run(bare(&env, &user, &system), &["--json", "catalogue", "ls"]).json();
    let find = |rows: &[serde_json::Value], n: &str| {
        rows.iter().find(|r| r["name"] == n).cloned().unwrap()
    };
    assert_eq!(find(&rows, "tiny-add")["present"], false);
    assert_eq!(find(&rows, "tiny-ext")["files"], 2);
    run(bare(&env, &user, &system), &["store", "pull", "tiny-add"]).ok();
    let rows: Vec<serde_json::Value> =
        run(bare(&env, &user, &system), &["--json", "catalogue", "ls"]).json();
    assert_eq!(find(&rows, "tiny-add")["present"], true);
    assert_eq!(find(&rows, "tiny-add")["held"], true);

    // tiny-mul's bytes held only under another name: the listing says under which, and that
    // `store path tiny-mul` does not answer (as that command says, exit 3).
    let mul = crate::support::checkout().join("manifests/demo/models/tiny-mul.onnx");
    run(
        bare(&env, &user, &system),
        &["store", "add", mul.to_str().unwrap(), "--name", "my-model"],
    )
    .ok();
    let rows: Vec<serde_json::Value> =
        run(bare(&env, &user, &system), &["--json", "catalogue", "ls"]).json();
    let row = find(&rows, "tiny-mul");
    assert_eq!(
        (&row["present"], &row["held"], &row["held_as"]),
        (
            &serde_json::json!(true),
            &serde_json::json!(false),
            &serde_json::json!(["my-model"])
        ),
        "{row}"
    );
    let listed = run(bare(&env, &user, &system), &["catalogue", "ls"]).stdout;
    let line = listed.lines().find(|l| l.starts_with("tiny-mul ")).unwrap();
    assert!(line.contains("as my-model"), "{listed}");
    let shown = run(
        bare(&env, &user, &system),
        &["catalogue", "show", "tiny-mul"],
    )
    .stdout;
    assert!(shown.contains("in store:    as my-model"), "{shown}");
    assert_eq!(
        run(bare(&env, &user, &system), &["store", "path", "tiny-mul"]).code,
        3
    );
    let text = run(
        bare(&env, &user, &system),
        &["catalogue", "show", "tiny-ext"],
    )
    .stdout;
    assert!(
        text.contains("tiny-ext.onnx.data") && text.contains("in store:    no"),
        "{text}"
    );
    run(
        bare(&env, &user, &system),
        &["catalogue", "show", "tiny-adb"],
    )
    .fails(2, &["tiny-add"]);
}

#[test]
fn with_json_an_error_is_json_on_stdout_too() {
    let env = Env::new();
    let r = env.run(&["--json", "store", "path", "nothing"]);
    assert_eq!(r.code, 3);
    let doc: serde_json::Value = r.json();
    assert_eq!(doc["error"]["kind"], "not_present", "{doc}");
    assert_eq!(doc["error"]["exit_code"], 3);
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing is not in the store"));
}

#[test]
fn a_pull_of_several_names_tries_every_one_and_reports_each() {
    let env = Env::new();
    let good = bytes(1000, 61);
    env.file("src/good.bin", &good);
    let cat = env.file(
        "cat.toml",
        format!(
            "version = 1\n[models.good]\nblake3 = \"{}\"\nsize = 1000\nurls = [\"src/good.bin\"]\n\
             [models.gone]\nblake3 = \"{}\"\nsize = 5\nurls = [\"src/gone.bin\"]\n",
            blake3_hex(&good),
            blake3_hex(b"gone!")
        )
        .as_bytes(),
    );
    let c = cat.to_str().unwrap();
    // The failing name comes first: the good one is pulled all the same.
    let r = env.run(&["--json", "--manifest", c, "store", "pull", "gone", "good"]);
    assert_eq!(r.code, 1, "{r:#?}");
    let rows: Vec<serde_json::Value> = r.json();
    assert_eq!(rows[0]["name"], "gone");
    assert_eq!(rows[0]["error"]["kind"], "failed");
    assert_eq!(rows[1]["name"], "good");
    assert_model_file(&env.store, rows[1]["path"].as_str().unwrap(), &good);
    assert!(r.stderr.contains("1 of 2 models failed: gone"), "{r:#?}");
}

#[test]
fn pull_returns_a_name_the_store_holds_that_no_catalogue_lists() {
    let env = Env::new();
    let src = env.file("mine.onnx", b"my own model");
    let added = env
        .run(&["store", "add", src.to_str().unwrap(), "--name", "mine"])
        .ok();
    let demo = crate::support::checkout().join("manifests/demo/demo.toml");
    let pulled = env
        .run(&[
            "--manifest",
            demo.to_str().unwrap(),
            "store",
            "pull",
            "mine",
        ])
        .ok();
    assert_eq!(pulled, added);
    env.run(&[
        "--manifest",
        demo.to_str().unwrap(),
        "store",
        "pull",
        "mien",
    ])
    .fails(2, &["unknown model \"mien\"", "beaker catalogue ls"]);
}

#[test]
fn rm_dry_run_says_what_would_go_and_changes_nothing() {
    let env = Env::new();
    let (a, shared) = (env.file("a.bin", b"only a"), env.file("s.bin", b"shared"));
    env.run(&["store", "add", a.to_str().unwrap(), "--name", "a"])
        .ok();
    env.run(&["store", "add", shared.to_str().unwrap(), "--name", "s1"])
        .ok();
    env.run(&["store", "add", shared.to_str().unwrap(), "--name", "s2"])
        .ok();
    let before = super::cli::snapshot(&env.store);
    let plan: serde_json::Value = env
        .run(&["--json", "store", "rm", "--dry-run", "a", "s1"])
        .json();
    assert_eq!(plan["removed"], serde_json::json!(["a", "s1"]));
    assert_eq!(
        plan["removed_blobs"],
        serde_json::json!([blake3_hex(b"only a")]),
        "s2 still uses the shared blob"
    );
    assert_eq!(plan["freed_bytes"], 6);
    assert_eq!(super::cli::snapshot(&env.store), before);
    let done: serde_json::Value = env.run(&["--json", "store", "rm", "a", "s1"]).json();
    assert_eq!(done["removed_blobs"], plan["removed_blobs"]);
}

#[test]
fn a_url_is_pulled_with_a_name_trusting_first_use_or_a_given_digest() {
    use testkit::server::Fault;
    let (env, server) = (Env::new(), http_server());
    let body = bytes(20_000, 62);
    server.route("/m.onnx", &body, &[], Fault::None);
    let url = server.url("/m.onnx");
    env.run(&["store", "pull", &url])
        .fails(2, &["with --name N"]);
    let r = env.run(&["store", "pull", &url, "--name", "m"]);
    let printed = r.ok();
    assert!(r.stderr.contains("trust on first use"), "{r:#?}");
    // The whole BLAKE3 received, to pin it by next time.
    assert!(
        r.stderr.contains(&format!("blake3 {}", blake3_hex(&body))),
        "{r:#?}"
    );
    assert!(printed.ends_with(&*native("/m.onnx")), "{printed}");
    assert_model_file(&env.store, &printed, &body);
    // The second pull is the fast path: what was recorded for the same URL.
    assert_eq!(
        env.run(&["store", "pull", &url, "--name", "m"]).ok(),
        printed
    );
    assert_eq!(server.requests(), 1);
    // Pinned to other content: refused, nothing recorded under the new name.
    let wrong = blake3_hex(b"something else");
    let r = env.run(&["store", "pull", &url, "--name", "n", "--blake3", &wrong]);
    r.fails(1, &["blake3 mismatch", "--blake3"]);
    assert!(!r.stderr.contains("catalogue pins"), "{}", r.stderr);
    env.run(&["store", "path", "n"])
        .fails(3, &["not in the store"]);
    // Pinned to the right content: recorded.
    env.run(&[
        "store",
        "pull",
        &url,
        "--name",
        "n",
        "--blake3",
        &blake3_hex(&body),
    ])
    .ok();
    env.run(&["store", "pull", "tiny-add", "--blake3", &blake3_hex(&body)])
        .fails(2, &["pin a URL"]);
    // `manifest entry URL` downloads it to hash it, and leaves the store alone.
    let before = env.blob_names();
    let entry = env.run(&["manifest", "entry", &url, "--name", "m"]).stdout;
    assert!(
        entry.contains(&blake3_hex(&body)) && entry.contains(&url),
        "{entry}"
    );
    assert_eq!(env.blob_names(), before);
}

#[test]
fn manifest_entry_prints_an_entry_that_checks_and_pulls() {
    let env = Env::new();
    let data = bytes(5_000, 63);
    let file = env.file("cat/models/w.onnx", &data);
    let out = env
        .run(&["manifest", "entry", file.to_str().unwrap(), "--name", "w"])
        .stdout;
    assert!(
        out.contains(&format!("blake3 = \"{}\"", blake3_hex(&data))),
        "{out}"
    );
    assert!(
        out.contains("size = 5000") && out.contains("format = \"onnx\""),
        "{out}"
    );
    // Saved as it is, it is a catalogue.
    assert!(out.starts_with("version = 1\n"), "{out}");
    let cat = env.file("cat/cat.toml", out.as_bytes());
    env.run(&["manifest", "check", cat.to_str().unwrap()]).ok();
    // Appended to another catalogue, its `version` line is the one to delete, and it says so.
    let other = env.file(
        "cat/other.toml",
        format!(
            "version = 1\n[models.x]\nblake3 = \"{}\"\nsize = 1\n{out}",
            blake3_hex(b"x")
        )
        .as_bytes(),
    );
    env.run(&["manifest", "check", other.to_str().unwrap()])
        .fails(2, &["other.toml:5:1", "`version`", "delete this one"]);
    // An `org/name` header left unquoted: how to quote it.
    let bad = env.file(
        "cat/bad.toml",
        b"version = 1\n[models.lab/small]\nsize = 1\n",
    );
    env.run(&["manifest", "check", bad.to_str().unwrap()])
        .fails(2, &["bad.toml:2:", "[models.\"lab/small\"]"]);
    let printed = env
        .run(&["--manifest", cat.to_str().unwrap(), "store", "pull", "w"])
        .ok();
    assert_model_file(&env.store, &printed, &data);
}

#[test]
fn an_unreachable_mirror_is_left_at_once_for_the_next_and_said_so() {
    use testkit::server::Fault;
    let (env, server) = (Env::new(), http_server());
    let body = bytes(10_000, 64);
    server.route("/m", &body, &[], Fault::None);
    // A port nothing listens on: the connection is refused.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}/m")
    };
    let cat = crate::pull::catalogue(&env, &[("m", &body, vec![dead.clone(), server.url("/m")])]);
    let r = Run::from(
        crate::pull::pull_cmd(&env, &cat)
            .env("BEAKER_RETRY_BASE", "1s")
            .arg("m")
            .output()
            .unwrap(),
    );
    assert_model_file(&env.store, &r.ok(), &body);
    assert!(
        r.stderr.contains(&format!("{dead}: ")) && r.stderr.contains("trying the next URL"),
        "{r:#?}"
    );
    assert!(
        !r.stderr.contains("retry 1 of"),
        "a refused mirror is not retried: {r:#?}"
    );
    // Not a terminal: one line when the download starts and one when it ends, no bar.
    assert!(
        r.stderr.contains("m: 9.77 KiB…") && r.stderr.contains("m: 9.77 KiB in "),
        "{r:#?}"
    );
}

#[test]
fn a_timed_out_lock_wait_names_the_flag_that_changes_it() {
    let env = Env::new();
    let body = bytes(1_000, 65);
    env.file("catalogue/src/m.bin", &body);
    let cat = crate::pull::catalogue(&env, &[("m", &body, vec!["src/m.bin".into()])]);
    env.run(&["store", "init"]).ok();
    let lock = env
        .store
        .join("locks")
        .join(format!("{}.lock", blake3_hex(&body)));
    std::fs::write(&lock, b"").unwrap();
    let _holder = crate::maint::Holder::new(&lock);
    crate::pull::pull(&env, &cat, &["m", "--lock-timeout", "200ms"])
        .fails(1, &["timed out after 200ms", "--lock-timeout"]);
}

// Unix only: SIGPIPE
#[cfg(unix)]
/// [cli] 4: a reader that closes the pipe (`beaker --json store ls | head -1`) ends beaker
/// quietly, as it ends `ls`: no panic, no exit 101, nothing on stderr.
#[test]
fn a_closed_pipe_ends_beaker_quietly_not_with_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    for args in [&["completions", "bash"][..], &["--json", "store", "ls"]] {
        let mut child = env
            .cmd()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .start();
        // The reader is gone before beaker writes its first byte.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?}, stderr: {stderr}",
            out.status
        );
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

/// A broken configuration file: `config show` still shows what the other sources say, then the
/// file's error (exit 2); the keys people reach for by mistake are answered with where they
/// belong, and the valid keys are listed once.
#[test]
fn a_broken_config_file_is_shown_with_what_to_do() {
    let env = Env::new();
    let (user, system) = (env.path("user.toml"), env.path("system.toml"));
    std::fs::write(&user, "store = \n").unwrap();
    let r = run(bare(&env, &user, &system), &["config", "show"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(
        r.stdout.contains("retries") && r.stdout.contains("(default)"),
        "{r:#?}"
    );
    assert!(r.stderr.contains("user.toml:1:"), "{r:#?}");
    assert_eq!(r.stderr.lines().count(), 1, "one line on stderr: {r:#?}");
    std::fs::write(&user, "manifest = \"x.toml\"\n").unwrap();
    let r = run(bare(&env, &user, &system), &["config", "show"]);
    assert!(
        r.stderr.contains("the key is `catalogues`, a list"),
        "{r:#?}"
    );
    assert_eq!(
        r.stderr.matches("lock_timeout").count(),
        1,
        "the keys once: {r:#?}"
    );
    std::fs::write(&user, "max_size = \"20G\"\n").unwrap();
    let r = run(bare(&env, &user, &system), &["store", "ls"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stderr.contains("in its store.toml"), "{r:#?}");
}

// Unix only: a planted symlink (wine makes none).
#[cfg(unix)]
/// The README's quick start, run as written: each line of its first `sh` block, `beaker` being
/// the binary under test, in a directory with `manifests/` (the repository's) and a
/// `my-model.onnx` of its own, the store set by `BEAKER_STORE` (the lines name none).
#[test]
fn the_readmes_quick_start_runs_as_written() {
    let env = Env::new();
    let repo = crate::support::checkout();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let start = readme
        .find("## Quick start")
        .expect("a Quick start section");
    let block = readme[start..]
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in the Quick start");
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink(repo.join("manifests"), work.join("manifests")).unwrap();
    let mine = std::fs::read(repo.join("manifests/demo/models/tiny-relu.onnx")).unwrap();
    std::fs::write(work.join("my-model.onnx"), &mine).unwrap();
    let mut ran = 0;
    for line in block.lines() {
        let command = line.split('#').next().unwrap_or("").trim();
        if command.is_empty() {
            continue;
        }
        let words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(words[0], "beaker", "{line}");
        let mut c = bare(&env, &env.path("user.toml"), &env.path("system.toml"));
        c.current_dir(&work).env("BEAKER_STORE", env.path("store"));
        let r = run(c, &words[1..]);
        assert!(r.success(), "{line}: {r:#?}");
        if words[1..] == ["store", "path", "my-model"] {
            assert_eq!(std::fs::read(r.stdout.trim()).unwrap(), mine, "{line}");
        }
        ran += 1;
    }
    assert!(ran >= 4, "the quick start has {ran} commands");
}

/// `beaker env`: the facts a bug report needs, each part saying why when it is missing; it
/// creates nothing.
#[test]
fn beaker_env_reports_what_a_bug_report_needs_and_creates_nothing() {
    let env = Env::new();
    let r = env.run(&["--json", "env"]);
    let doc: serde_json::Value = r.json();
    assert!(
        doc["store_state"]
            .as_str()
            .unwrap()
            .starts_with("not usable: no beaker store"),
        "{doc}"
    );
    assert!(doc["filesystem"].is_null(), "{doc}");
    assert!(!env.store.exists(), "env made a store");
    env.run(&["store", "init"]).ok();
    let mut c = env.cmd();
    c.env("ORT_DYLIB_PATH", env.path("none.so"))
        .args(["--json", "env"]);
    let doc: serde_json::Value = Run::from(c.output().unwrap()).json();
    assert_eq!(doc["beaker"], env!("CARGO_PKG_VERSION"));
    assert!(
        doc["store_state"].as_str().unwrap().starts_with("format 4"),
        "{doc}"
    );
    assert_eq!(doc["filesystem"]["hard_links"], true, "{doc}");
    assert!(
        doc["onnxruntime"].as_str().unwrap().starts_with("none: "),
        "{doc}"
    );
    assert!(
        doc["onnxruntime"].as_str().unwrap().contains("none.so"),
        "{doc}"
    );
    let text = env.run(&["env"]).stdout;
    for label in [
        "beaker",
        "store state",
        "filesystem",
        "config files",
        "catalogues",
        "onnxruntime",
    ] {
        assert!(text.contains(label), "{label}: {text}");
    }
}

/// `pull --to DIR` (as `hf download --local-dir`): the model in the store as ever, and its files
/// copied into DIR under their names; the main file's path there is printed. One model only.
#[test]
fn pull_to_a_directory_copies_the_models_files_there() {
    let env = Env::new();
    let demo = crate::support::checkout().join("manifests/demo/demo.toml");
    let demo = demo.to_str().unwrap();
    let to = env.path("here");
    let printed = env
        .run(&[
            "--manifest",
            demo,
            "pull",
            "tiny-ext",
            "--to",
            to.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(Path::new(&printed), to.join("tiny-ext.onnx"));
    let data = std::fs::read(to.join("tiny-ext.onnx.data")).unwrap();
    let stored = env.run(&["store", "path", "tiny-ext"]).ok();
    let stored_data = Path::new(&stored).with_file_name("tiny-ext.onnx.data");
    assert_eq!(data, std::fs::read(&stored_data).unwrap());
    assert_ne!(
        file_id(&to.join("tiny-ext.onnx.data")),
        file_id(&stored_data),
        "a copy, not the blob"
    );
    env.run(&[
        "--manifest",
        demo,
        "pull",
        "tiny-add",
        "tiny-mul",
        "--to",
        to.to_str().unwrap(),
    ])
    .fails(2, &["--to DIR takes one model"]);
}

/// One word for one thing: `--catalogue`, `BEAKER_CATALOGUE`, `catalogues` in a config file and
/// `beaker catalogue check|entry`; the older `manifest` spellings still work.
#[test]
fn catalogues_are_called_catalogues_everywhere_and_the_old_names_still_work() {
    let env = Env::new();
    let demo = crate::support::checkout().join("manifests/demo/demo.toml");
    let demo = demo.to_str().unwrap();
    for args in [
        vec!["--catalogue", demo, "catalogue", "show", "tiny-add"],
        vec!["--manifest", demo, "catalogue", "show", "tiny-add"],
        vec!["catalogue", "check", demo],
        vec!["manifest", "check", demo],
    ] {
        env.run(&args).ok();
    }
    for var in ["BEAKER_CATALOGUE", "BEAKER_MANIFEST"] {
        let mut c = env.cmd();
        c.env(var, demo).args(["catalogue", "show", "tiny-add"]);
        Run::from(c.output().unwrap()).ok();
    }
    let (user, system) = (env.path("user.toml"), env.path("system.toml"));
    for key in ["catalogues", "manifests"] {
        std::fs::write(&user, format!("{key} = [{demo:?}]\n")).unwrap();
        let shown = run(bare(&env, &user, &system), &["config", "show"]).stdout;
        let line = shown.lines().find(|l| l.starts_with("catalogues")).unwrap();
        assert!(
            line.contains("demo.toml") && line.contains("user.toml"),
            "{key}: {shown}"
        );
    }
    let file = env.file("w.bin", b"weights");
    let out = env
        .run(&["catalogue", "entry", file.to_str().unwrap(), "--name", "w"])
        .stdout;
    assert!(
        out.starts_with("version = 1\n") && out.contains("[models.w]"),
        "{out}"
    );
    let help = env.run(&["--help"]).stdout;
    assert!(
        !help.contains("  manifest "),
        "one word in the help: {help}"
    );
}
