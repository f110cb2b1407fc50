//! `beaker store pull` through the real binary against the in-process HTTP server (loopback only):
//! verification, one download for many processes, retries, mirrors, offline mode, file and
//! relative sources, upstream-only (md5) entries, bad input. Resume is in `resume`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use testkit::server::Fault;

use super::{catalogue, partials, pull, pull_cmd, LEN};
use crate::support::*;

#[derive(serde::Deserialize)]
struct Row {
    name: String,
    blake3: String,
    size: u64,
    path: String,
    downloaded: bool,
}

#[test]
fn pull_verifies_publishes_and_then_takes_the_fast_path() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 1));
    server.route("/m.onnx", &body, &[], Fault::None);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m.onnx")])]);

    let rows: Vec<Row> = pull(&env, &cat, &["m", "--json"]).json();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (r.name.as_str(), r.blake3.as_str(), r.size, r.downloaded),
        ("m", blake3_hex(&body).as_str(), LEN as u64, true)
    );
    assert_model_file(&env.store, &r.path, &body);
    assert_eq!(std::fs::read(&r.path).unwrap(), body);
    assert_eq!(mode(Path::new(&r.path)), 0o444);
    assert_eq!(
        (server.requests(), server.body_bytes()),
        (1, LEN as u64),
        "one body served"
    );
    assert!(partials(&env).is_empty());

    // Present: no request, not downloaded; the text form prints the path.
    let rows: Vec<Row> = pull(&env, &cat, &["m", "--json"]).json();
    assert!(!rows[0].downloaded);
    assert_model_file(&env.store, &pull(&env, &cat, &["m"]).ok(), &body);
    assert_eq!(server.requests(), 1);
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn eight_processes_pulling_at_once_download_once() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 2));
    // The one download pauses mid-body for 1.5 s (server-side), so every other process is
    // certainly waiting on the lock meanwhile, long enough to print who holds it.
    server.route(
        "/m",
        &body,
        &[Fault::PauseAt(LEN / 2, Duration::from_millis(1500))],
        Fault::None,
    );
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    env.run(&["store", "init"]).ok();

    let children: Vec<_> = (0..8)
        .map(|_| {
            pull_cmd(&env, &cat)
                .arg("m")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .start()
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| Run::from(c.wait_with_output().unwrap()))
        .collect();
    for r in &runs {
        assert_model_file(&env.store, &r.ok(), &body);
    }
    assert_eq!(server.requests(), 1, "one download for eight processes");
    assert_eq!(server.body_bytes(), LEN as u64);
    let told = runs
        .iter()
        .filter(|r| r.stderr.contains("waiting for m: pid "))
        .count();
    assert!(told >= 1, "waiters say who they wait for: {runs:#?}");
    assert!(
        runs.iter()
            .any(|r| r.stderr.contains(" of 292.97 KiB so far")),
        "and how far it is: {runs:#?}"
    );
    // And then follow the holder's download as their own progress (one line when it starts,
    // one when it ends, on a non-terminal).
    assert!(
        runs.iter()
            .any(|r| r.stderr.contains("m (another process): 292.97 KiB…")),
        "waiters follow the holder's progress: {runs:#?}"
    );
    assert_blobs_named_by_hash(&env.store);
    assert!(partials(&env).is_empty());
}

#[test]
fn a_flipped_byte_fails_with_both_digests_and_leaves_nothing() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 5));
    server.route("/m", &body, &[], Fault::Flip(12_345));
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    let mut bad = body.clone();
    bad[12_345] ^= 0xff;

    let r = pull(&env, &cat, &["m"]);
    r.fails(
        1,
        &[
            "blake3 mismatch for m",
            &blake3_hex(&body),
            &blake3_hex(&bad),
            &server.url("/m"),
            "no partial kept",
        ],
    );
    r.one_error_line();
    assert!(env.blob_names().is_empty(), "nothing under blobs/");
    assert!(
        partials(&env).is_empty(),
        "bad bytes are never kept for resume"
    );
    assert_eq!(
        server.requests(),
        1,
        "a mismatch is not retried from the same URL"
    );
}

#[test]
fn server_errors_are_retried_and_404_is_not() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 6));
    server.route(
        "/m",
        &body,
        &[Fault::Status(500, None), Fault::Status(503, None)],
        Fault::None,
    );
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    assert_model_file(&env.store, &pull(&env, &cat, &["m"]).ok(), &body);
    assert_eq!(server.requests(), 3);

    let (env, server) = (Env::new(), http_server());
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/gone")])]);
    let r = pull(&env, &cat, &["m"]);
    r.fails(1, &["cannot fetch m from", "HTTP 404 Not Found"]);
    // No line that reads like success before the error ("m: 0 B in 0.0 s").
    assert!(!r.stderr.contains("m: 0 B in"), "{}", r.stderr);
    assert_eq!(server.requests(), 1, "404 is not retried");
    assert!(partials(&env).is_empty() && env.blob_names().is_empty());
}

#[test]
fn retry_after_is_honoured() {
    let (env, server, body) = (Env::new(), http_server(), bytes(1000, 7));
    server.route("/m", &body, &[Fault::Status(429, Some(1))], Fault::None);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    let t = Instant::now();
    pull(&env, &cat, &["m"]).ok();
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        t.elapsed()
    );
    assert_eq!(server.requests(), 2);
}

#[test]
fn a_body_longer_than_the_manifest_size_stops_at_the_limit() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 10));
    server.route("/m", &body, &[], Fault::Oversize(LEN));
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    pull(&env, &cat, &["m"]).fails(1, &["more than the 300000 bytes"]);
    assert!(env.blob_names().is_empty() && partials(&env).is_empty());
    assert_eq!(server.requests(), 1);
}

#[test]
fn offline_never_connects() {
    let (env, server, body) = (Env::new(), http_server(), bytes(1000, 11));
    server.route("/m", &body, &[], Fault::None);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    pull(&env, &cat, &["m", "--offline"]).fails(1, &["m is not in the store", "offline"]);
    // A global flag: before the command too, and `config show` says where it came from.
    env.run(&[
        "--offline",
        "--manifest",
        cat.to_str().unwrap(),
        "pull",
        "m",
    ])
    .fails(1, &["m is not in the store", "offline"]);
    let shown = env.run(&["--offline", "config", "show"]).stdout;
    let line = shown.lines().find(|l| l.starts_with("offline")).unwrap();
    assert!(
        line.contains("true") && line.contains("(command line)"),
        "{shown}"
    );
    Run::from(
        pull_cmd(&env, &cat)
            .env("BEAKER_OFFLINE", "1")
            .arg("m")
            .output()
            .unwrap(),
    )
    .fails(1, &["offline"]);
    assert_eq!(server.requests(), 0);

    pull(&env, &cat, &["m"]).ok();
    assert_model_file(
        &env.store,
        &pull(&env, &cat, &["m", "--offline"]).ok(),
        &body,
    );
    assert_eq!(server.requests(), 1);
}

#[test]
fn mirrors_are_tried_in_order() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 12));
    server.route("/mirror", &body, &[], Fault::None);
    let cat = catalogue(
        &env,
        &[(
            "m",
            &body,
            vec![server.url("/primary"), server.url("/mirror")],
        )],
    );
    assert_model_file(&env.store, &pull(&env, &cat, &["m"]).ok(), &body);
    let paths: Vec<_> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/primary", "/mirror"]);

    // Every source failing: one line naming each.
    let (env, server) = (Env::new(), http_server());
    let cat = catalogue(
        &env,
        &[("m", &body, vec![server.url("/a"), server.url("/b")])],
    );
    pull(&env, &cat, &["m"]).fails(
        1,
        &["from any of its 2 sources", "/a: HTTP 404", "/b: HTTP 404"],
    );
}

#[test]
fn file_urls_and_paths_relative_to_the_manifest() {
    let env = Env::new();
    let (a, b) = (bytes(5000, 14), bytes(7000, 15));
    let abs = env.file("elsewhere/a.bin", &a);
    env.file("catalogue/mirror/b.bin", &b);
    let cat = catalogue(
        &env,
        &[
            ("a", &a, vec![file_url(&abs)]),
            ("b", &b, vec!["mirror/b.bin".into()]),
        ],
    );
    let r = pull(&env, &cat, &["a", "b"]);
    assert_eq!(r.code, 0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_model_file(&env.store, lines[0], &a);
    assert_model_file(&env.store, lines[1], &b);
    assert!(lines[0].ends_with(&*native("/a.bin")) && lines[1].ends_with(&*native("/b.bin")));
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn an_md5_only_entry_is_filed_under_its_blake3_and_checked() {
    let env = Env::new();
    let body = bytes(4096, 16);
    env.file("catalogue/up.onnx", &body);
    let md5 = format!("{:x}", md5_of(&body));
    let cat = env.file(
        "catalogue/models.toml",
        format!("version = 1\n[models.up]\nmd5 = \"{md5}\"\nurls = [\"up.onnx\"]\n[models.bad]\nmd5 = \"{}\"\nurls = [\"up.onnx\"]\n", "0".repeat(32)).as_bytes(),
    );
    assert_model_file(&env.store, &pull(&env, &cat, &["up"]).ok(), &body);
    let recorded = std::fs::read_to_string(env.store.join("names/up.toml")).unwrap();
    assert!(
        recorded.contains(&md5) && recorded.contains(&blake3_hex(&body)),
        "{recorded}"
    );

    // The fast path for an upstream-only entry uses the store manifest: the source is not read.
    remove(env.path("catalogue/up.onnx"));
    assert_model_file(
        &env.store,
        &pull(&env, &cat, &["up", "--offline"]).ok(),
        &body,
    );

    env.file("catalogue/up.onnx", &body);
    pull(&env, &cat, &["bad"]).fails(1, &["md5 mismatch for bad", &"0".repeat(32), &md5]);
    assert_eq!(env.blob_names(), [blake3_hex(&body)]);
}

#[test]
fn bad_input_is_one_clear_line_with_the_right_exit_code() {
    let (env, server, body) = (Env::new(), http_server(), bytes(1000, 17));
    server.route("/loop", &body, &[], Fault::Redirect("/loop".into()));
    let cat = catalogue(
        &env,
        &[
            ("looping", &body, vec![server.url("/loop")]),
            (
                "nowhere",
                &body,
                vec!["http://beaker-test.invalid/m".into()],
            ),
        ],
    );
    pull(&env, &cat, &["loopin"]).fails(2, &["unknown model \"loopin\"", "did you mean looping"]);
    pull(&env, &cat, &["looping"]).fails(1, &["redirect"]);
    pull(&env, &cat, &["nowhere"]).fails(1, &["beaker-test.invalid", "DNS"]);

    let no_url = env.file(
        "nourl.toml",
        format!(
            "version = 1\n[models.m]\nblake3 = \"{}\"\nsize = 1000\n",
            blake3_hex(&body)
        )
        .as_bytes(),
    );
    pull(&env, &no_url, &["m"]).fails(2, &["no urls"]);
    let ftp = env.file(
        "ftp.toml",
        format!(
            "version = 1\n[models.m]\nblake3 = \"{}\"\nsize = 1000\nurls = [\"ftp://h/m\"]\n",
            blake3_hex(&body)
        )
        .as_bytes(),
    );
    pull(&env, &ftp, &["m"]).fails(2, &["unsupported scheme \"ftp\""]);
    assert!(env.blob_names().is_empty() && partials(&env).is_empty());
}

#[test]
fn the_demo_catalogue_pulls_offline_from_the_repository() {
    let env = Env::new();
    let demo = crate::support::checkout().join("manifests/demo/demo.toml");
    let r = pull(&env, &demo, &["tiny-add", "tiny-mul", "tiny-relu"]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(r.stdout.lines().count(), 3);
    assert_blobs_named_by_hash(&env.store);
}

fn md5_of(bytes: &[u8]) -> u128 {
    use md5::Digest;
    u128::from_be_bytes(md5::Md5::digest(bytes).into())
}
